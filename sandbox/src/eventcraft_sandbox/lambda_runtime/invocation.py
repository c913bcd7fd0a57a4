"""One invocation: the handler loaded from its handler string, run on a worker
thread with its context, its result marshalled, its outcome as Invoke reports it."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import io
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventcraft_sandbox.lambda_context import LambdaContext
from eventcraft_sandbox.lambda_runtime.containers import Container
from eventcraft_sandbox.lambda_runtime.interface import InvocationResult
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.runtime import LambdaRuntime


_PACKAGE_DIR = os.path.dirname(__file__) + os.sep


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


def _marshal(result: Any) -> Any:
    try:
        text = json.dumps(result, default=_decimal)
    except (TypeError, ValueError) as exc:
        raise _RuntimeFault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from exc
    return json.loads(text)


def _load_handler(handler: str) -> Callable[[Any, Any], Any]:
    module_name, dot, attribute = handler.rpartition(".")
    if not dot or not module_name or not attribute:
        raise _RuntimeFault(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler}': not enough values to unpack (expected 2, got 1)",
        )
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
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

    def __init__(
        self,
        runtime: LambdaRuntime,
        container: Container,
        event: Any,
        invocation_type: str,
        invoked_arn: str,
    ) -> None:
        self.runtime = runtime
        self.container = container
        self.spec = container.spec
        self.event = event
        self.invocation_type = invocation_type
        self.invoked_arn = invoked_arn
        self.request_id = str(uuid.uuid4())
        self.cold = container.handler is None
        self.frozen = False
        self.discard = False
        self.init_done = threading.Event()
        self.done = threading.Event()
        self.deadline: float | None = None  # time.monotonic()
        self.deadline_epoch_ms: float | None = None  # on the runtime's clock
        self.handler_started: float | None = None  # time.perf_counter()
        self.finished: float | None = None
        self.init_ms: float | None = None
        self.payload: Any = None
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

    def remaining_ms(self) -> int:
        clock = self.runtime.clock
        if clock is not None and self.deadline_epoch_ms is not None:
            return int(self.deadline_epoch_ms - clock.time() * 1000)
        if self.deadline is None:
            return int(self.spec.timeout * 1000)
        return int((self.deadline - time.monotonic()) / self.runtime.timeout_scale * 1000)

    def run(self) -> None:
        """The worker thread's body."""
        STATE.invocation = self
        try:
            if self.container.handler is None:
                started = time.perf_counter()
                try:
                    self.container.handler = _load_handler(self.spec.handler)
                finally:
                    self.init_ms = (time.perf_counter() - started) * 1000
            handler = self.container.handler
            timeout = self.spec.timeout
            self.deadline = time.monotonic() + timeout * self.runtime.timeout_scale
            if self.runtime.clock is not None:
                self.deadline_epoch_ms = self.runtime.clock.time() * 1000 + timeout * 1000
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
            self.handler_started = time.perf_counter()
            self.init_done.set()
            self.payload = _marshal(handler(self.event, context))
        except _RuntimeFault as fault:
            self._fail(fault.error_type, fault.message, fault)
        except BaseException as exc:  # everything a handler raises is its error
            self._fail(type(exc).__name__, str(exc), exc)
        finally:
            self.finished = time.perf_counter()
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


@dataclass(frozen=True)
class Outcome:
    result: InvocationResult
    request_id: str
    error_trace: tuple[str, ...] = ()

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
