"""What the runtime replaces inside moto, and the lock around moto.

`MOTO_LOCK` serialises every request moto handles; `check_moto_hooks` compares the
installed moto with the internals hooked here (`PINNED_MOTO`); the patch registry
counts what is installed; the hooks run Invoke API calls and Step Functions tasks
through the installed `LambdaRuntime`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from eventcraft_sandbox.lambda_runtime.function_spec import FunctionSpec
from eventcraft_sandbox.lambda_runtime.interface import (
    InternalInvocationError,
    LambdaRuntimeError,
    MotoHookError,
)
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.runtime import LambdaRuntime

log = logging.getLogger(__name__)


# The moto version whose internals this module hooks (see `check_moto_hooks`).
PINNED_MOTO = "5.2.5"

# ------------------------------------------------------------------ the moto lock


class MotoLock:
    """A re-entrant lock that a thread can set aside completely and take back.

    `released()` lets the owning thread give the lock up for a block however deeply
    it holds it (a Lambda invocation that arrives inside a moto request must not
    hold it while user code runs: the code's own AWS calls come from another thread).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            while self._owner is not None:
                self._cond.wait()
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("MOTO_LOCK released by a thread that does not hold it")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify()

    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        with self._cond:
            return self._owner == threading.get_ident()

    def __enter__(self) -> MotoLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """The block runs without the lock (if this thread held it), then takes it back."""
        me = threading.get_ident()
        with self._cond:
            depth = self._depth if self._owner == me else 0
            if depth:
                self._owner, self._depth = None, 0
                self._cond.notify()
        try:
            yield
        finally:
            if depth:
                with self._cond:
                    while self._owner is not None:
                        self._cond.wait()
                    self._owner, self._depth = me, depth


MOTO_LOCK = MotoLock()
"""Held while moto handles a request (every boto3 call into moto, from any thread)."""

# ----------------------------------------------------------- moto hook contracts


@dataclass(frozen=True)
class _Hook:
    module: str
    qualname: str
    parameters: tuple[str, ...]

    def resolve(self) -> Any:
        obj: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        return obj


_SFN_STATE_TASK = "moto.stepfunctions.parser.asl.component.state.exec.state_task"
SFN_LAMBDA_TASK = f"{_SFN_STATE_TASK}.state_task_lambda"
SFN_EXECUTION = "moto.stepfunctions.parser.backend.execution"
_SFN_STATE_MAP = "moto.stepfunctions.parser.asl.component.state.exec.state_map"
# Every module of moto's Step Functions interpreter that builds its AWS clients with
# `boto_client_for` (imported by name, so each keeps its own reference).
SFN_CLIENT_MODULES = (
    "moto.stepfunctions.parser.asl.utils.boto_client",
    f"{_SFN_STATE_TASK}.lambda_eval_utils",
    *(
        f"{_SFN_STATE_TASK}.service.state_task_service_{name}"
        for name in (
            "unsupported", "glue", "events", "ecs", "sqs", "sfn", "dynamodb", "batch",
            "sns", "aws_sdk",
        )
    ),
    f"{_SFN_STATE_MAP}.result_writer.resource_eval.resource_eval_s3",
    f"{_SFN_STATE_MAP}.item_reader.eval.resource_eval_s3",
)  # fmt: skip


_HOOKS = (
    _Hook("moto.awslambda.models", "LambdaFunction._invoke_lambda", ("self", "event")),
    _Hook(
        "moto.awslambda.models",
        "LambdaFunction.invoke",
        ("self", "body", "request_headers", "response_headers"),
    ),
    _Hook("moto.awslambda.responses", "LambdaResponse.invoke", ("self",)),
    _Hook("moto.awslambda.responses", "LambdaResponse.invoke_async", ("self",)),
    _Hook("moto.core.botocore_stubber", "BotocoreStubber.process_request", ("self", "request")),
    _Hook(
        "moto.core.authorization",
        "ActionAuthenticatorMixin._authenticate_and_authorize_normal_action",
        ("self", "resource"),
    ),
    _Hook(
        "moto.core.authorization",
        "ActionAuthenticatorMixin._authenticate_and_authorize_action",
        ("self", "iam_request_cls", "resource"),
    ),
    _Hook(
        "moto.iam.access_control",
        "IAMRequestBase.__init__",
        ("self", "account_id", "method", "path", "data", "body", "headers", "action"),
    ),
    _Hook(
        "moto.sts.models",
        "STSBackend.assume_role",
        (
            "self",
            "region_name",
            "role_session_name",
            "role_arn",
            "policy",
            "duration",
            "external_id",
        ),
    ),
    *(
        _Hook(module, "boto_client_for", ("region", "service", "state_credentials"))
        for module in SFN_CLIENT_MODULES
    ),
    _Hook(SFN_EXECUTION, "Execution._get_start_aws_execution_details", ("self",)),
    _Hook(SFN_LAMBDA_TASK, "StateTaskLambda._from_error", ("self", "env", "ex")),
    _Hook(
        f"{_SFN_STATE_TASK}.service.state_task_service_lambda",
        "StateTaskServiceLambda._error_cause_from_client_error",
        ("client_error",),
    ),
)

# What `eventcraft_sandbox.limits` hooks (DynamoDB item sizes), checked when it installs
# (it also wraps DynamoDBBackend.transact_write_items, passing every argument through).
LIMITS_HOOKS = (
    _Hook(
        "moto.dynamodb.models",
        "DynamoDBBackend.put_item",
        (
            "self",
            "table_name",
            "item_attrs",
            "expected",
            "condition_expression",
            "expression_attribute_names",
            "expression_attribute_values",
            "overwrite",
            "return_values_on_condition_check_failure",
        ),
    ),
    _Hook(
        "moto.dynamodb.models",
        "DynamoDBBackend.update_item",
        (
            "self",
            "table_name",
            "key",
            "update_expression",
            "expression_attribute_names",
            "expression_attribute_values",
            "attribute_updates",
            "expected",
            "condition_expression",
            "return_values_on_condition_check_failure",
        ),
    ),
    _Hook("moto.dynamodb.models", "DynamoDBBackend.get_keys_value", ("self", "table", "keys")),
    _Hook("moto.dynamodb.parsing.executors", "UpdateExpressionExecutor.execute", ("self", "node")),
    _Hook(
        "moto.dynamodb.models.dynamo_type", "LimitedSizeDict.__setitem__", ("self", "key", "value")
    ),
)


# What `eventcraft_sandbox.service_roles` hooks (the roles services are given, checked
# when they are given), checked when it installs.
ROLE_HOOKS = (
    _Hook(
        "moto.stepfunctions.models",
        "StepFunctionBackend.create_state_machine",
        (
            "self",
            "name",
            "definition",
            "roleArn",
            "tags",
            "publish",
            "loggingConfiguration",
            "tracingConfiguration",
            "encryptionConfiguration",
            "version_description",
            "sm_type",
        ),
    ),
    _Hook(
        "moto.stepfunctions.models",
        "StepFunctionBackend.update_state_machine",
        (
            "self",
            "arn",
            "definition",
            "role_arn",
            "logging_configuration",
            "tracing_configuration",
            "encryption_configuration",
            "publish",
            "version_description",
        ),
    ),
    _Hook("moto.stepfunctions.models", "StepFunctionBackend._validate_name", ("self", "name")),
    _Hook(
        "moto.stepfunctions.models", "StepFunctionBackend._validate_role_arn", ("self", "role_arn")
    ),
    _Hook("moto.awslambda.models", "LambdaBackend.create_function", ("self", "spec")),
    _Hook(
        "moto.awslambda.models",
        "LambdaBackend.update_function_configuration",
        ("self", "function_name", "qualifier", "body"),
    ),
)


def check_moto_hooks(hooks: tuple[_Hook, ...] | None = None) -> list[str]:
    """What differs between the installed moto and the internals the sandbox hooks
    (`hooks`; default: the runtime's, the limits' and the service roles').

    Empty when everything the sandbox replaces or relies on has the signature it was
    written against (moto `PINNED_MOTO`); otherwise one line per difference, each
    naming the installed moto version.
    """
    import moto

    problems = []
    for hook in (_HOOKS + LIMITS_HOOKS + ROLE_HOOKS) if hooks is None else hooks:
        name = f"{hook.module}.{hook.qualname}"
        try:
            obj = hook.resolve()
        except (ImportError, AttributeError) as exc:
            problems.append(f"moto {moto.__version__}: {name} is gone ({exc})")
            continue
        parameters = tuple(inspect.signature(obj).parameters)
        if parameters != hook.parameters:
            problems.append(
                f"moto {moto.__version__}: {name}{inspect.signature(obj)} no longer takes "
                f"({', '.join(hook.parameters)}) as in moto {PINNED_MOTO}"
            )
    return problems


def require_moto_hooks(hooks: tuple[_Hook, ...] = _HOOKS) -> None:
    problems = check_moto_hooks(hooks)
    if problems:
        raise MotoHookError(
            f"the sandbox's Lambda runtime hooks moto {PINNED_MOTO} internals that the "
            "installed moto changed:\n  "
            + "\n  ".join(problems)
            + "\nRe-read moto's source and update sandbox/lambda_runtime/ (or pin moto)."
        )


class Patches:
    """Attribute replacements (and other changes, `on_undo`), undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        # A class's own __dict__ entry keeps staticmethod/classmethod wrappers intact.
        old = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        self._undo.append(functools.partial(setattr, owner, name, old))
        setattr(owner, name, value)

    def on_undo(self, action: Callable[[], None]) -> None:
        """Run `action` when undoing, in its place among the replacements."""
        self._undo.append(action)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


INSTALL_GUARD = threading.RLock()


class Registry:
    """What is installed in this process (guarded by `INSTALL_GUARD`)."""

    lock_refs = 0
    iam_refs = 0
    runtime: LambdaRuntime | None = None


# ------------------------------------------------------ MOTO_LOCK installation

_lock_patches = Patches()


def install_moto_lock() -> None:
    """Serialise moto's request handling with `MOTO_LOCK` (counted: pair with uninstall).

    Wraps `BotocoreStubber.process_request`, the one entry of every in-process request
    (botocore's before-send hook and the `responses` mock both end there). A request
    from an invocation that already timed out is refused there; a request from handler
    code is a switch point among the invocations in flight (`interleaving`).
    """
    with INSTALL_GUARD:
        if Registry.lock_refs == 0:
            require_moto_hooks()
            from moto.core.botocore_stubber import BotocoreStubber

            original = BotocoreStubber.process_request

            def process_request(self: Any, request: Any) -> Any:
                invocation = STATE.invocation
                if invocation is None:
                    with MOTO_LOCK:
                        return original(self, request)
                invocation.enter_request()  # refused once the invocation timed out
                try:
                    invocation.request_turn()  # others in flight may go first
                    with MOTO_LOCK:
                        return original(self, request)
                finally:
                    invocation.leave_request()  # one that timed out meanwhile stops here

            functools.update_wrapper(process_request, original)
            _lock_patches.set(BotocoreStubber, "process_request", process_request)
        Registry.lock_refs += 1


def uninstall_moto_lock() -> None:
    with INSTALL_GUARD:
        if Registry.lock_refs == 0:
            return
        Registry.lock_refs -= 1
        if Registry.lock_refs == 0:
            _lock_patches.undo()


_LOG_TAIL_BYTES = 4096  # what Invoke returns with LogType=Tail


class ApiCall:
    """An Invoke API request being handled by moto on this thread."""

    def __init__(self, invocation_type: str, body: Any, qualifier: str | None) -> None:
        self.invocation_type = invocation_type
        self.body = body
        self.qualifier = qualifier
        self.used = False
        self.errored = False
        self.refusal: tuple[int, dict[str, str], str] | None = None  # Lambda's answer instead

    @property
    def payload(self) -> Any:
        body = self.body
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        return json.loads(body) if body else {}


# ----------------------------------------------------------------- moto hooks


def moto_invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replaces `LambdaFunction._invoke_lambda`: (payload, errored, log tail)."""
    runtime = Registry.runtime
    call = STATE.api_call
    if runtime is None:
        raise LambdaRuntimeError(
            f"moto invoked {fn.function_arn} but no LambdaRuntime is installed"
        )
    if call is None or call.used:
        raise InternalInvocationError(
            f"moto tried to invoke {fn.function_arn} by itself (an event source mapping, "
            "SNS subscription, S3 or log notification created in moto): the sandbox "
            "delivers events itself and never lets moto invoke functions; remove what "
            "created it in moto"
        )
    call.used = True
    if call.invocation_type == "DryRun":
        return "", False, ""
    payload = call.payload
    spec = FunctionSpec.from_moto(fn)  # under MOTO_LOCK: moto is handling the request
    invoked = spec.arn if spec.version == "$LATEST" and not call.qualifier else spec.qualified_arn
    with MOTO_LOCK.released():
        if call.invocation_type == "Event":
            if runtime.event_dispatcher is not None:
                runtime.event_dispatcher(invoked, payload)
                return "", False, ""
            outcome = runtime._invoke(spec, payload, "Event", invoked)
            if outcome.result.error_type:
                log.warning(
                    "asynchronous invocation of %s failed (%s: %s); no event_dispatcher "
                    "is set to retry it",
                    spec.name,
                    outcome.result.error_type,
                    outcome.result.error_message,
                )
            return "", False, ""
        if runtime.durable_runner is not None and getattr(fn, "durable_config", None):
            # A durable function: the invocation starts a durable execution and
            # waits for it (`eventcraft_sandbox.delivery.durable`).
            from eventcraft_sandbox.lambda_runtime.invocation import Outcome

            outcome = Outcome(runtime.durable_runner(invoked, payload), str(uuid.uuid4()))
        else:
            outcome = runtime._invoke(spec, payload, call.invocation_type, invoked)
    result = outcome.result
    if result.refused:  # throttled: the API's error, not a function error
        members = {"Reason": outcome.reason} if outcome.reason else {}
        call.refusal = lambda_error_response(
            result.status_code, result.error_type or "", result.error_message or "", **members
        )
        return "", False, ""
    text, errored = outcome.wire()
    call.errored = errored
    tail = outcome.result.logs.encode("utf-8")[-_LOG_TAIL_BYTES:].decode("utf-8", "ignore")
    return text, errored, tail


def lambda_error_response(
    status: int, code: str, message: str, **members: Any
) -> tuple[int, dict[str, str], str]:
    """An error of the Lambda API as Lambda sends it (REST-JSON: the code in a header,
    `Type` saying whose fault it is), as botocore parses it: e.g. 429
    TooManyRequestsException with its `Reason`."""
    headers = {
        "Content-Type": "application/json",
        "x-amzn-RequestId": str(uuid.uuid4()),
        "x-amzn-ErrorType": code,
    }
    message_key = "Message" if code == "ServiceException" else "message"
    body = {"Type": "Service" if status >= 500 else "User", message_key: message, **members}
    return status, headers, json.dumps(body)


def api_entry(original: Callable[[Any], Any], default_type: str) -> Callable[[Any], Any]:
    """Wraps a LambdaResponse entry (Invoke, InvokeAsync): marks the thread as handling
    an API invocation, and reports function errors as Lambda does ("Unhandled")."""

    def entry(self: Any) -> Any:
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or default_type
        qualifier = self.querystring.get("Qualifier", [None])[0]
        call = ApiCall(invocation_type, self.body, qualifier)
        previous, STATE.api_call = STATE.api_call, call
        try:
            response = original(self)
        finally:
            STATE.api_call = previous
        if call.refusal is not None:
            status, headers, body = call.refusal
            return status, {**headers, "status": str(status)}, body  # moto reads "status"
        if call.errored and isinstance(response, tuple) and len(response) == 3:
            response[1]["x-amz-function-error"] = "Unhandled"
        return response

    functools.update_wrapper(entry, original)
    return entry


def sfn_lambda_task_error(original: Callable[[Any, Any, Exception], Any]) -> Any:
    """`StateTaskLambda._from_error` (a Task whose Resource is a function's ARN) naming
    a Lambda API error as Step Functions does, `Lambda.<code>` (e.g.
    `Lambda.TooManyRequestsException` for a throttled invocation), as moto's
    `arn:aws:states:::lambda:invoke` tasks already do; moto names every one of them
    `Exception`, which no Retry on the Lambda errors AWS documents would match."""
    from botocore.exceptions import ClientError

    def _from_error(task: Any, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError):
            return original(task, env, ex)
        from moto.stepfunctions.parser.api import (
            HistoryEventType,
            LambdaFunctionFailedEventDetails,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
            CustomErrorName,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEvent,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_lambda,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        service = state_task_service_lambda.StateTaskServiceLambda
        error, cause = service._error_cause_from_client_error(ex)
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]  # as moto builds it
                lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                    error=error, cause=cause
                )
            ),
        )

    functools.update_wrapper(_from_error, original)
    return _from_error


def sfn_client_factory(original: Callable[..., Any]) -> Callable[..., Any]:
    """`boto_client_for` for moto's Step Functions interpreter, with the state
    machine's (or the task's `Credentials`) role instead of a fixed fake key, assumed
    as Step Functions assumes it: for the state machine (its aws:SourceArn)."""

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        runtime = Registry.runtime
        role_arn = getattr(state_credentials, "role_arn", None)
        if runtime is None or not isinstance(role_arn, str) or not role_arn.startswith("arn:"):
            return original(region, service, state_credentials)
        import boto3
        from botocore.config import Config
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
            TimeoutSeconds,
        )

        # The execution's role knows its state machine (`sfn_execution_details`).
        source_arn = getattr(role_arn, "state_machine_arn", None)
        key = (str(role_arn), source_arn or "", region, service)
        with runtime._pool_lock:
            cached = runtime._sfn_clients.get(key)
        if cached is not None:
            return cached
        credentials = runtime.service_credentials(
            role_arn, "states.amazonaws.com", source_arn=source_arn
        )
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=region,
        )
        client = session.client(
            service,  # type: ignore[call-overload]
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                account_id_endpoint_mode="disabled",
            ),
        )
        with runtime._pool_lock:
            return runtime._sfn_clients.setdefault(key, client)

    functools.update_wrapper(boto_client_for, original)
    return boto_client_for


class StateMachineRoleArn(str):
    """A state machine's role ARN that knows the state machine it is the role of:
    Step Functions assumes it with that ARN as aws:SourceArn. moto's interpreter hands
    the execution's role ARN, a plain string, to every client it builds
    (`StateCredentials`); this one carries the state machine along."""

    state_machine_arn: str

    def __new__(cls, role_arn: str, state_machine_arn: str) -> StateMachineRoleArn:
        made = super().__new__(cls, role_arn)
        made.state_machine_arn = state_machine_arn
        return made

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # copies keep it
        return (str(self), self.state_machine_arn)


def sfn_execution_details(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`Execution._get_start_aws_execution_details` whose role ARN is a
    `StateMachineRoleArn`: the tasks' clients (`sfn_client_factory`) assume the role
    for the state machine (a version's executions: for the state machine it is a
    version of)."""

    def details(execution: Any) -> Any:
        made = original(execution)
        machine = execution.state_machine
        machine_arn = getattr(machine, "source_arn", None) or machine.arn
        if isinstance(made.role_arn, str) and machine_arn:
            made.role_arn = StateMachineRoleArn(made.role_arn, machine_arn)
        return made

    functools.update_wrapper(details, original)
    return details
