"""One invocation: the handler loaded from its handler string, run on a worker
thread with its context, its result marshalled, its outcome as Invoke reports it.
Its time (what the timeout and the context's remaining time count) is a
`handler_time.HandlerTime`; its turns among the invocations in flight, its chain's
(`interleaving`)."""

from __future__ import annotations

import ctypes
import importlib
import importlib.abc
import importlib.machinery
import io
import json
import os
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventcraft_sandbox.lambda_context import LambdaContext
from eventcraft_sandbox.lambda_runtime.containers import Container
from eventcraft_sandbox.lambda_runtime.handler_time import HandlerTime, InvocationTimedOut
from eventcraft_sandbox.lambda_runtime.interface import InvocationFrozenError, InvocationResult
from eventcraft_sandbox.lambda_runtime.interleaving import BATON, Chain
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.runtime import LambdaRuntime


_PACKAGE_DIR = os.path.dirname(__file__) + os.sep
INIT_TIMEOUT_SECONDS = 10.0  # Lambda's limit for the init phase
# The errors of loading the handler (Lambda's init phase), as the runtime reports them:
# the function cannot start until its code or its layers change.
INIT_ERROR_TYPES = frozenset(
    {
        "Runtime.ImportModuleError",
        "Runtime.HandlerNotFound",
        "Runtime.UserCodeSyntaxError",
        "Runtime.MalformedHandlerName",
    }
)


class _RuntimeFault(Exception):
    """An error the Lambda runtime itself reports (init and marshalling errors)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _decimal(value: Any) -> Any:
    # The AWS Python runtime serialises Decimal (what boto3's DynamoDB types use) as float.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _marshal(result: Any) -> tuple[Any, int]:
    """The result as JSON sees it, and its size in bytes as the runtime sends it."""
    try:
        text = json.dumps(result, default=_decimal)
    except (TypeError, ValueError) as exc:
        raise _RuntimeFault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from exc
    return json.loads(text), len(text.encode("utf-8"))


def _load_handler(handler: str) -> Callable[[Any, Any], Any]:
    module_name, dot, attribute = handler.rpartition(".")
    if not dot or not module_name or not attribute:
        raise _RuntimeFault(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler}': not enough values to unpack (expected 2, got 1)",
        )
    try:
        # Lambda's messages name the module as the handler string does ("dir/mod").
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _RuntimeFault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise _RuntimeFault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise _RuntimeFault(
            "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'"
        )
    return function


class Invocation:
    """One invocation: run on a worker thread, waited for by the caller."""

    time: HandlerTime  # its elapsed time, its clock (handler_time)

    def __init__(
        self,
        runtime: LambdaRuntime,
        container: Container,
        event: Any,
        invocation_type: str,
        invoked_arn: str,
        *,
        chain: Chain,
    ) -> None:
        self.runtime = runtime
        self.container = container
        self.chain = chain
        self.spec = container.spec
        self.event = event
        self.invocation_type = invocation_type
        self.invoked_arn = invoked_arn
        self.request_id = str(uuid.uuid4())
        self.cold = container.handler is None
        self.frozen = False
        self.discard = False
        # Guards `frozen`, the AWS requests in flight and whether handler code runs:
        # `freeze` interrupts the thread only where that leaves nothing half done.
        self._guard = threading.Lock()
        self._requests = 0
        self._in_handler = False
        self._thread_id: int | None = None
        self.init_done = threading.Event()
        self.done = threading.Event()
        caller = STATE.invocation  # made on the caller's thread: a handler invoking this
        self.time = HandlerTime(
            timeout_scale=runtime.timeout_scale,
            clock=runtime.clock,
            caller=caller.time if caller is not None else None,
        )
        self.handler_started = False
        self.duration_ms = 0.0  # the handler phase, in function milliseconds
        self.init_ms: float | None = None
        self.payload: Any = None
        self.payload_bytes = 0
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.error_trace: list[str] = []
        self._log = io.StringIO()
        self._log_lock = threading.Lock()

    def write_log(self, text: str) -> int:
        with self._log_lock:
            return self._log.write(text)

    @property
    def log_text(self) -> str:
        with self._log_lock:
            return self._log.getvalue()

    # -- stopping a timed-out invocation ------------------------------------------------

    def freeze(self) -> None:
        """The invocation timed out: it makes no more AWS calls, its container is not
        reused, and its thread is stopped (an `InvocationTimedOut` raised in it) as soon
        as it runs handler code outside an AWS request: a busy loop ends at once, a
        request in flight completes first (moto's state stays whole), a thread blocked
        outside Python stays blocked until it returns to it."""
        with self._guard:
            self.frozen = True
            self.discard = True
            self.time.stop()
            if self._in_handler and self._requests == 0 and self._thread_id is not None:
                _raise_in_thread(self._thread_id, InvocationTimedOut)

    def enter_request(self) -> None:
        """An AWS request from this invocation's thread starts (refused once frozen)."""
        with self._guard:
            if self.frozen:
                raise InvocationFrozenError(
                    f"{self.spec.name} (request {self.request_id}) timed out: its execution "
                    "environment is frozen and makes no more AWS calls"
                )
            self._requests += 1

    @property
    def in_request(self) -> bool:
        """An AWS request of this invocation is being handled (moto runs it on the
        invocation's thread): read on that thread."""
        return self._requests > 0

    def leave_request(self) -> None:
        """The request ended: a thread frozen meanwhile stops here."""
        with self._guard:
            self._requests -= 1
            stop = self.frozen and self._requests == 0 and self._in_handler
        if stop:
            raise InvocationTimedOut

    # -- turns among invocations in flight (`interleaving`) -----------------------------

    def request_turn(self) -> None:
        """A switch point before an AWS request (between `enter_request` and
        `leave_request`, so a freeze while parked is not raised inside the wait): other
        invocations in flight may run first; refused if this one timed out meanwhile."""
        if not self.handler_started:  # never inside an import (module docstring)
            return
        BATON.switch(self.chain)
        with self._guard:
            if self.frozen:
                raise InvocationFrozenError(
                    f"{self.spec.name} (request {self.request_id}) timed out while "
                    "others ran: it makes no more AWS calls"
                )

    def sleep_turn(self) -> None:
        """A switch point at a sleep of the handler's code (the others run meanwhile)."""
        if not self.handler_started:
            return
        with self._guard:
            if self.frozen:
                raise InvocationTimedOut
            self._requests += 1  # no stop raised while parked
        try:
            BATON.switch(self.chain)
        finally:
            self.leave_request()

    def _call_handler(self, handler: Callable[[Any, Any], Any], context: LambdaContext) -> Any:
        with self._guard:
            self._in_handler = True
        try:
            return handler(self.event, context)
        finally:
            with self._guard:
                self._in_handler = False
                if self.frozen:  # drop a stop that would land outside handler code
                    _raise_in_thread(threading.get_ident(), None)

    def remaining_ms(self) -> int:
        """The context's remaining time: the timeout less the handler's elapsed time."""
        if not self.handler_started:
            return int(self.spec.timeout * 1000)
        return int(self.time.remaining() * 1000)

    def run(self) -> None:
        """The worker thread's body."""
        STATE.invocation = self
        self._thread_id = threading.get_ident()
        try:
            timeout = self.spec.timeout
            if self.container.handler is None:
                self.time.start(max(INIT_TIMEOUT_SECONDS, timeout))
                try:
                    self.container.handler = _load_handler(self.spec.handler)
                finally:
                    self.init_ms = self.time.elapsed() * 1000
            handler = self.container.handler
            context = LambdaContext(
                aws_request_id=self.request_id,
                function_name=self.spec.name,
                function_version=self.spec.version,
                invoked_function_arn=self.invoked_arn,
                memory_limit_in_mb=str(self.spec.memory_mb),
                log_group_name=self.spec.log_group,
                log_stream_name=self.container.log_stream,
                remaining_time_in_millis=self.remaining_ms,
            )
            self.time.start(timeout)
            self.handler_started = True
            self.init_done.set()
            self.payload, self.payload_bytes = _marshal(self._call_handler(handler, context))
        except InvocationTimedOut:
            pass  # out of time mid-sleep: the caller reports the timeout
        except _RuntimeFault as fault:
            self._fail(fault.error_type, fault.message, fault)
        except BaseException as exc:  # everything a handler raises is its error
            self._fail(type(exc).__name__, str(exc), exc)
        finally:
            if self.handler_started:
                self.duration_ms = self.time.elapsed() * 1000
            self.time.finish()
            self.init_done.set()
            self.done.set()
            STATE.invocation = None

    def _fail(self, error_type: str, message: str, exc: BaseException) -> None:
        self.payload = None
        self.error_type, self.error_message = error_type, message
        frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
        # The trace starts in the function's code, as in Lambda (not in this runtime).
        self.error_trace = traceback.format_list(
            [f for f in frames if not f.filename.startswith(_PACKAGE_DIR)]
        )
        if self.container.handler is None:
            self.discard = True  # an init error: the next invocation initialises again
        self.write_log(f"[ERROR] {error_type}: {message}\n")
        if self.error_trace:
            self.write_log("Traceback (most recent call last):\n" + "".join(self.error_trace))


def _raise_in_thread(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise `exception` in thread `thread_id` when it next runs Python code (None:
    cancel one pending). CPython's PyThreadState_SetAsyncExc."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )


@dataclass(frozen=True)
class Outcome:
    result: InvocationResult
    request_id: str
    error_trace: tuple[str, ...] = ()
    reason: str | None = None  # why Lambda refused it (TooManyRequestsException's Reason)

    def wire(self) -> tuple[str, bool]:
        """The payload as the Invoke API returns it, and whether it is an error."""
        result = self.result
        if result.error_type is None:
            return json.dumps(result.payload), False
        error: dict[str, Any] = {
            "errorMessage": result.error_message or "",
            "errorType": result.error_type,
            "requestId": self.request_id,
        }
        if self.error_trace:
            error["stackTrace"] = list(self.error_trace)
        return json.dumps(error), True
