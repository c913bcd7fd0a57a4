"""The sandbox's Lambda runtime: functions deployed in moto, run in-process like Lambda.

    runtime = LambdaRuntime(timeout_scale=1.0)      # or LambdaRuntime(admin=sandbox.admin)
    with runtime:                                   # install(): moto invokes through it
        result = runtime.invoke("order-saga-dev-reserve", {"orderId": "o-1"})
        result.error_type                           # None, "PaymentDeclined", "Sandbox.Timedout"

`InvocationResult` and `Invoker` are the interface to the delivery part of the
sandbox (event source pollers, rule targets, async retries): it calls `invoke`, the
runtime runs the code.

How a function runs (what Lambda does, and how it is done in one process):

- Lookup: the function (name, ARN, `name:qualifier` or qualified ARN) is read from
  moto's Lambda backend: code zip, handler, runtime, role, environment, timeout,
  memory, layers. Only python runtimes and zip packages run.
- Containers: the zip is extracted once per code hash into a private temp dir; a
  "container" is one execution environment of one function version: its own module
  namespace (the top-level names its zip provides, e.g. `handlers`, `eventkit`), its
  own boto3 default session, its own role credentials and log stream. During an
  invocation its modules are swapped into `sys.modules` (the host's or another
  container's modules of the same names are set aside) and swapped out afterwards,
  so module-level state (caches, clients, circuit breakers) survives between
  invocations of the same container and is never seen by another function.
  Third-party packages (pydantic, Powertools, boto3) come from the venv, shared as a
  layer would provide them; a layer's own pure-python modules are isolated like the
  zip's. A top-level import that neither the zip, a layer, the stdlib nor the venv
  provides fails with ModuleNotFoundError, as in Lambda (even if the repository has
  it on the host's `sys.path`). Containers are reused warm; a busy one (a function
  invoking itself) gets a sibling, as Lambda scales out.
- Environment: `os.environ` is replaced for the call by Lambda's variables
  (AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, _HANDLER, LAMBDA_TASK_ROOT, ...), the
  function's own, and the credentials of its role, then restored. Nothing of the
  host's AWS configuration leaks in (MOTO_* settings and PATH/HOME/TMPDIR are kept).
- Credentials: the function's role is assumed as the Lambda service assumes it
  (moto's STS, after checking that the role's trust policy lets
  lambda.amazonaws.com assume it). With IAM enforced in moto, a call the role does
  not allow fails with AccessDenied. moto checks most services against the resource
  "*", which would deny every resource-scoped policy; `install()` therefore also
  resolves the resources of DynamoDB, DynamoDB Streams, EventBridge, Kinesis, Step
  Functions, Lambda, SNS and CloudWatch Logs requests (see `request_permissions`),
  as AWS does (a TransactWriteItems Put needs dynamodb:PutItem on its table), uses
  AWS's action names (lambda:InvokeFunction, not moto's lambda:Invoke) and answers a
  denial on a JSON service with AccessDeniedException naming the resource.
- Timeouts: the handler runs in a worker thread; the caller waits up to the
  function's timeout (times `timeout_scale`). Past it the result is
  "Sandbox.Timedout" ("Task timed out after N.00 seconds"), the side effects made so
  far stay, the thread is not killed but frozen (any further AWS call from it is
  refused, as a frozen Lambda sandbox makes none) and its container is discarded:
  the next invocation is a cold start, as after a timeout in Lambda.
- Errors: an unhandled exception gives `error_type` = the exception's class name
  (what Step Functions' Retry/Catch match) and `error_message` = str(exc). Init
  errors are Lambda's: Runtime.ImportModuleError, Runtime.HandlerNotFound,
  Runtime.UserCodeSyntaxError, Runtime.MalformedHandlerName; an unserialisable
  result is Runtime.MarshalError.
- Logs: print(), sys.stderr, the `logging` module and Powertools' Logger are
  captured per invocation (never into another one, never to the host's stdout),
  framed like Lambda's (START / END / REPORT lines) and also written to the
  function's CloudWatch log group in moto when that group exists.

moto integration (`install()` / `uninstall()`, or `with runtime:`):
- `moto.awslambda.models.LambdaFunction._invoke_lambda` is replaced, so the Invoke
  API (boto3 `lambda.invoke`) and Step Functions Lambda tasks run here. An errored
  invocation reaches Step Functions with its error type, so Catch/Retry on
  ["PaymentDeclined"] match. InvocationType=Event through the API is handed to
  `event_dispatcher` when set (the delivery part's async queue), else run inline.
- moto invoking a function by itself (its own event source mappings, SNS
  subscriptions, S3/log notifications) raises `InternalInvocationError`: the sandbox
  delivers those events itself.
- Step Functions tasks call AWS with the state machine's role (assumed as
  states.amazonaws.com) instead of moto's fixed fake key, which IAM enforcement
  rejects.
- `MOTO_LOCK` serialises every request moto handles (moto's backends are not
  thread-safe); it is held only for each AWS call, never while user code runs.
The hooked moto internals are checked against moto 5.2.5 (`check_moto_hooks`):
`install()` raises `MotoHookError` naming what changed.

Known limits: `os.environ`, `sys.modules` and `sys.path` are process-wide, so one
handler runs at a time (others wait; a nested synchronous Invoke from a handler runs
inside it); a handler that waits for another invocation to run concurrently (polls
a Step Functions execution it started) stalls until its own timeout. Code outside a
handler that reads the environment during an invocation sees the function's.
Threads a handler starts are not part of the invocation (their output is not
captured, their Invoke calls wait for it to end). Process-wide state of shared
libraries is shared between functions: `logging` loggers by name, Powertools
Metrics/Tracer class state. Modules the host already imported (e.g. `components`)
are not hidden from a handler; only fresh imports are checked.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import inspect
import io
import json
import logging
import os
import re
import shutil
import site
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import unquote

from sandbox.lambda_context import LambdaContext

__all__ = [
    "IAM_ACTIONS",
    "MOTO_LOCK",
    "PINNED_MOTO",
    "AdminIdentity",
    "Clock",
    "EventDispatcher",
    "FunctionNotFoundError",
    "FunctionSpec",
    "InternalInvocationError",
    "InvocationFrozenError",
    "InvocationResult",
    "Invoker",
    "LambdaContext",
    "LambdaRuntime",
    "LambdaRuntimeError",
    "LayerCode",
    "MotoHookError",
    "MotoLock",
    "Permission",
    "RoleNotAssumableError",
    "aws_action",
    "check_moto_hooks",
    "install_iam_resources",
    "install_moto_lock",
    "request_permissions",
    "uninstall_iam_resources",
    "uninstall_moto_lock",
]

log = logging.getLogger(__name__)

# The moto version whose internals this module hooks (see `check_moto_hooks`).
PINNED_MOTO = "5.2.5"

# ------------------------------------------------------------------ the interface


@dataclass(frozen=True)
class InvocationResult:
    """The outcome of one invocation, as Lambda reports it."""

    payload: Any  # the handler's return value (JSON-compatible) or None
    error_type: str | None  # e.g. "PaymentDeclined", "Sandbox.Timedout"; None on success
    error_message: str | None
    duration_ms: float
    logs: str


class Invoker(Protocol):
    """Runs a function by name or ARN (moto's) and reports how it went."""

    def invoke(
        self,
        function: str,
        payload: Any,
        *,
        invocation_type: Literal["RequestResponse", "Event"] = "RequestResponse",
    ) -> InvocationResult: ...


class Clock(Protocol):
    """What the runtime needs of the sandbox's clock: the current time.

    `time()` is seconds since the epoch, like `time.time()`. With a clock, a
    context's remaining time counts down on it; the timeout itself is always real
    time (times `timeout_scale`), since handler code runs in real time.
    """

    def time(self) -> float: ...


class AdminIdentity(Protocol):
    """The deployer's administrator (`sandbox.moto_deploy.AdminCredentials` fits):
    only its ARN is used, for the default account of bare function names."""

    @property
    def arn(self) -> str: ...


SessionFactory = Callable[[], Any]  # () -> boto3.session.Session
EventDispatcher = Callable[[str, Any], None]  # (function ARN as invoked, event)

# ------------------------------------------------------------------------ errors


class LambdaRuntimeError(RuntimeError):
    """The sandbox's Lambda runtime could not do what was asked (the message says why)."""


class MotoHookError(LambdaRuntimeError):
    """The installed moto is not the one whose internals the runtime hooks."""


class FunctionNotFoundError(LambdaRuntimeError):
    """No such function in moto (Lambda's ResourceNotFoundException)."""


class InternalInvocationError(LambdaRuntimeError):
    """moto tried to invoke a function by itself: the sandbox delivers events itself."""


class InvocationFrozenError(LambdaRuntimeError):
    """An AWS call from an invocation that already timed out (its sandbox is frozen)."""


class RoleNotAssumableError(LambdaRuntimeError):
    """A role that does not exist or whose trust policy does not name the service."""


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
_SFN_STATE_MAP = "moto.stepfunctions.parser.asl.component.state.exec.state_map"
# Every module of moto's Step Functions interpreter that builds its AWS clients with
# `boto_client_for` (imported by name, so each keeps its own reference).
_SFN_CLIENT_MODULES = (
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

Resolver = Callable[["_RequestView"], list["Permission"]]

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
        for module in _SFN_CLIENT_MODULES
    ),
)


def check_moto_hooks() -> list[str]:
    """What differs between the installed moto and the internals this module hooks.

    Empty when everything the runtime replaces or relies on has the signature it was
    written against (moto `PINNED_MOTO`); otherwise one line per difference, each
    naming the installed moto version.
    """
    import moto

    problems = []
    for hook in _HOOKS:
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


def _require_moto_hooks() -> None:
    problems = check_moto_hooks()
    if problems:
        raise MotoHookError(
            f"the sandbox's Lambda runtime hooks moto {PINNED_MOTO} internals that the "
            "installed moto changed:\n  "
            + "\n  ".join(problems)
            + "\nRe-read moto's source and update sandbox/lambda_runtime.py (or pin moto)."
        )


class _Patches:
    """Attribute replacements, undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        # A class's own __dict__ entry keeps staticmethod/classmethod wrappers intact.
        old = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        self._undo.append((owner, name, old))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self._undo:
            owner, name, old = self._undo.pop()
            setattr(owner, name, old)


_INSTALL_GUARD = threading.RLock()


class _Registry:
    """What is installed in this process (guarded by `_INSTALL_GUARD`)."""

    lock_refs = 0
    iam_refs = 0
    runtime: LambdaRuntime | None = None


# ------------------------------------------------------ MOTO_LOCK installation

_lock_patches = _Patches()


def install_moto_lock() -> None:
    """Serialise moto's request handling with `MOTO_LOCK` (counted: pair with uninstall).

    Wraps `BotocoreStubber.process_request`, the one entry of every in-process request
    (botocore's before-send hook and the `responses` mock both end there). A request
    from an invocation that already timed out is refused there.
    """
    with _INSTALL_GUARD:
        if _Registry.lock_refs == 0:
            _require_moto_hooks()
            from moto.core.botocore_stubber import BotocoreStubber

            original = BotocoreStubber.process_request

            def process_request(self: Any, request: Any) -> Any:
                invocation = _STATE.invocation
                if invocation is not None and invocation.frozen:
                    raise InvocationFrozenError(
                        f"{invocation.spec.name} (request {invocation.request_id}) timed out: "
                        "its execution environment is frozen and makes no more AWS calls"
                    )
                with MOTO_LOCK:
                    return original(self, request)

            functools.update_wrapper(process_request, original)
            _lock_patches.set(BotocoreStubber, "process_request", process_request)
        _Registry.lock_refs += 1


def uninstall_moto_lock() -> None:
    with _INSTALL_GUARD:
        if _Registry.lock_refs == 0:
            return
        _Registry.lock_refs -= 1
        if _Registry.lock_refs == 0:
            _lock_patches.undo()


# ------------------------------------------------------- IAM resource resolution


Permission = tuple[str | None, str]  # (IAM action, None = the request's own; resource ARN)


class _RequestView:
    """The parts of a moto request that name its resources."""

    def __init__(self, response: Any) -> None:
        from moto.utilities.utils import get_partition

        self.response = response
        self.account: str = response.current_account
        self.region: str = response.region
        self.partition: str = get_partition(self.region)
        self.action: str = response._get_action()
        self._json: dict[str, Any] | None = None

    @property
    def json(self) -> dict[str, Any]:
        """The request's parameters (moto's DynamoDB replaces `body` by the parsed dict)."""
        if self._json is None:
            body = self.response.body
            parsed: Any = body
            if isinstance(body, str | bytes):
                try:
                    parsed = json.loads(body) if body else {}
                except ValueError:
                    parsed = {}
            if not isinstance(parsed, dict) or not parsed:
                params = getattr(self.response, "params", None)
                parsed = params if isinstance(params, dict) else {}
            self._json = parsed
        return self._json

    def param(self, name: str) -> str | None:
        values = self.response.querystring.get(name)
        if isinstance(values, list):
            return str(values[0]) if values else None
        return str(values) if values is not None else None

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


# A TransactWriteItems / TransactGetItems entry is authorised as the single-item call.
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


def _dynamodb_permissions(req: _RequestView) -> list[Permission]:
    body = req.json

    def table(name: str) -> str:
        return name if name.startswith("arn:") else req.arn("dynamodb", f"table/{name}")

    checks: list[Permission] = []
    if isinstance(body.get("TableName"), str):
        arn = table(body["TableName"])
        if body.get("IndexName") and req.action in ("Query", "Scan"):
            arn = f"{arn}/index/{body['IndexName']}"
        checks.append((None, arn))
    for name in body.get("RequestItems") or {}:  # BatchGetItem / BatchWriteItem
        checks.append((None, table(name)))
    for item in body.get("TransactItems") or []:
        for kind, operation in item.items() if isinstance(item, dict) else ():
            if isinstance(operation, dict) and isinstance(operation.get("TableName"), str):
                checks.append((_TRANSACT_ACTIONS.get(kind), table(operation["TableName"])))
    if isinstance(body.get("ResourceArn"), str):
        checks.append((None, body["ResourceArn"]))
    return checks


def _dynamodbstreams_resources(req: _RequestView) -> list[str]:
    body = req.json
    if isinstance(body.get("StreamArn"), str):
        return [body["StreamArn"]]
    iterator = body.get("ShardIterator")
    # moto's (and AWS's) iterators start with the stream ARN: "<stream arn>|1|<id>".
    if isinstance(iterator, str) and iterator.startswith("arn:"):
        return [iterator.split("|", 1)[0]]
    return []


def _events_resources(req: _RequestView) -> list[str]:
    body = req.json

    def bus(name: str) -> str:
        return name if name.startswith("arn:") else req.arn("events", f"event-bus/{name}")

    if req.action == "PutEvents":
        return [bus(entry.get("EventBusName") or "default") for entry in body.get("Entries", [])]
    if isinstance(body.get("EventBusName"), str):
        return [bus(body["EventBusName"])]
    return []


def _kinesis_resources(req: _RequestView) -> list[str]:
    body = req.json
    if isinstance(body.get("StreamARN"), str):
        return [body["StreamARN"]]
    name = body.get("StreamName")
    if not isinstance(name, str) and isinstance(body.get("ShardIterator"), str):
        from moto.kinesis.utils import decompose_shard_iterator

        with contextlib.suppress(Exception):
            name = decompose_shard_iterator(body["ShardIterator"])[0]
    return [req.arn("kinesis", f"stream/{name}")] if isinstance(name, str) and name else []


def _states_resources(req: _RequestView) -> list[str]:
    body = req.json
    for key in ("stateMachineArn", "executionArn", "activityArn"):
        if isinstance(body.get(key), str):
            return [body[key]]
    return []


_LAMBDA_PATH = re.compile(r"^/\d{4}-\d{2}-\d{2}/functions/([^/?]+)")


def _lambda_resources(req: _RequestView) -> list[str]:
    match = _LAMBDA_PATH.match(req.response.path or "")
    if match is None:
        return []
    name = unquote(match.group(1))
    if name.startswith("arn:"):
        return [name]
    qualifier = req.param("Qualifier")
    arn = req.arn("lambda", f"function:{name}")
    return [f"{arn}:{qualifier}" if qualifier and ":" not in name else arn]


def _sns_resources(req: _RequestView) -> list[str]:
    for key in ("TopicArn", "TargetArn"):
        value = req.param(key)
        if value:
            return [value]
    return []


def _logs_resources(req: _RequestView) -> list[str]:
    body = req.json
    group = body.get("logGroupName")
    if not isinstance(group, str):
        return []
    stream = body.get("logStreamName")
    if isinstance(stream, str) and req.action in ("CreateLogStream", "PutLogEvents"):
        return [req.arn("logs", f"log-group:{group}:log-stream:{stream}")]
    return [req.arn("logs", f"log-group:{group}")]


def _on_resources(resolve: Callable[[_RequestView], list[str]]) -> Resolver:
    return lambda req: [(None, arn) for arn in resolve(req)]


_RESOLVERS: dict[str, Resolver] = {
    "dynamodb": _dynamodb_permissions,
    "dynamodbstreams": _on_resources(_dynamodbstreams_resources),
    "events": _on_resources(_events_resources),
    "kinesis": _on_resources(_kinesis_resources),
    "stepfunctions": _on_resources(_states_resources),
    "awslambda": _on_resources(_lambda_resources),
    "sns": _on_resources(_sns_resources),
    "logs": _on_resources(_logs_resources),
}


def request_permissions(response: Any) -> list[Permission]:
    """What IAM must allow for a moto request: (action, resource ARN) pairs.

    `response` is moto's `BaseResponse` for the request; an action of None is the
    request's own. Empty: unknown, moto's check against "*" stands. A request on
    several resources names each (PutEvents to two buses), and a transaction each of
    its items as the single-item action (a TransactWriteItems Put needs
    dynamodb:PutItem on its table; there is no dynamodb:TransactWriteItems action).
    """
    resolver = _RESOLVERS.get(getattr(response, "service_name", "") or "")
    if resolver is None:
        return []
    return list(dict.fromkeys(resolver(_RequestView(response))))


_iam_patches = _Patches()


# IAM actions whose name is not "<signing name>:<operation>" (what moto checks).
IAM_ACTIONS: dict[str, str] = {
    "lambda:Invoke": "lambda:InvokeFunction",
    "lambda:InvokeWithResponseStream": "lambda:InvokeFunction",
}
# Services whose signing name is not their IAM prefix.
_IAM_PREFIXES = {"monitoring": "cloudwatch", "email": "ses"}


def aws_action(action: str) -> str:
    """The IAM action AWS authorises for moto's "<signing name>:<operation>"."""
    prefix, _, operation = action.partition(":")
    action = f"{_IAM_PREFIXES.get(prefix, prefix)}:{operation}"
    return IAM_ACTIONS.get(action, action)


def _iam_enforced() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return bool(ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT)


def install_iam_resources() -> None:
    """Make moto's IAM checks those of AWS (counted: pair with uninstall).

    - Resources: moto authorises every service but SQS, IAM, STS and S3 against the
      resource "*", which no resource-scoped statement matches: a role allowed
      dynamodb:PutItem on one table would be denied on that table too. Each
      (action, resource) of `request_permissions` is checked instead (requests it
      does not know keep moto's "*").
    - Actions: moto checks "<signing name>:<operation>"; AWS's names differ for a few
      (Lambda Invoke is lambda:InvokeFunction, `IAM_ACTIONS`).
    - Errors: a denial on a JSON service (DynamoDB, Lambda, EventBridge, Kinesis,
      Step Functions, Logs) is AccessDeniedException in JSON, naming the resource,
      as AWS answers; moto answers XML there, which botocore reports as code "403".
    """
    with _INSTALL_GUARD:
        if _Registry.iam_refs == 0:
            _require_moto_hooks()
            from moto.core.authorization import ActionAuthenticatorMixin
            from moto.core.exceptions import AccessDeniedError
            from moto.iam.access_control import IAMRequest

            request_classes: dict[str | None, type[IAMRequest]] = {}

            def request_class(action: str | None) -> type[IAMRequest]:
                cls = request_classes.get(action)
                if cls is None:

                    class AwsIAMRequest(IAMRequest):
                        def __init__(self, *args: Any, **kwargs: Any) -> None:
                            super().__init__(*args, **kwargs)
                            self._action = action or aws_action(self._action)

                    cls = request_classes.setdefault(action, AwsIAMRequest)
                return cls

            original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

            def authorize(self: Any, resource: str = "*") -> None:
                checks: list[Permission] = []
                if resource == "*" and _iam_enforced():
                    try:
                        checks = request_permissions(self)
                    except Exception:  # a request we cannot read is checked as moto does
                        log.debug("could not resolve the resources of a request", exc_info=True)
                for action, arn in checks or [(None, resource)]:
                    try:
                        self._authenticate_and_authorize_action(request_class(action), arn)
                    except AccessDeniedError as denied:
                        raise _access_denied(self, denied, arn) from None

            functools.update_wrapper(authorize, original)
            _iam_patches.set(
                ActionAuthenticatorMixin, "_authenticate_and_authorize_normal_action", authorize
            )
        _Registry.iam_refs += 1


@functools.cache
def _protocol(service: str) -> str:
    from moto.core.utils import get_service_model

    try:
        return str(get_service_model(service).protocol)
    except Exception:
        return ""


def _access_denied(response: Any, denied: Any, resource: str) -> Exception:
    """moto's AccessDenied as the service would answer it."""
    from moto.core.exceptions import JsonRESTError

    protocol = _protocol(getattr(response, "boto3_service_name", "") or "")
    if protocol not in ("json", "rest-json"):
        return denied
    message = str(denied.message)
    action = message.rsplit(" ", 1)[-1]
    if resource != "*":
        message += (
            f" on resource: {resource} because no identity-based policy allows the {action} action"
        )
    error = JsonRESTError("AccessDeniedException", message)
    error.code = 403 if protocol == "rest-json" else 400
    return error


def uninstall_iam_resources() -> None:
    with _INSTALL_GUARD:
        if _Registry.iam_refs == 0:
            return
        _Registry.iam_refs -= 1
        if _Registry.iam_refs == 0:
            _iam_patches.undo()


# ------------------------------------------------------------- role credentials


def _trusts(document: Any, service: str) -> bool:
    """Whether a trust policy lets `service` (e.g. lambda.amazonaws.com) AssumeRole."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return False
    if not isinstance(document, dict):
        return False
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal")
        if principal == "*":
            return True
        if isinstance(principal, dict):
            services = principal.get("Service", [])
            services = [services] if isinstance(services, str) else services
            if service in services or principal.get("AWS") == "*":
                return True
    return False


def _assume_role_as_service(
    role_arn: str, service: str, session_name: str, region: str
) -> dict[str, str]:
    """Credentials of `role_arn`, assumed the way `service` assumes it.

    Straight through moto's STS backend: the caller is the AWS service, which the
    trust policy names (moto's AssumeRole API cannot evaluate a Service principal).
    """
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("role/"):
        raise RoleNotAssumableError(f"{role_arn!r} is not a role ARN")
    partition, account = parts[1], parts[4]
    with MOTO_LOCK:
        try:
            role = iam_backends[account][partition].get_role_by_arn(role_arn)
        except Exception as exc:
            raise RoleNotAssumableError(f"the role {role_arn} does not exist") from exc
        if not _trusts(role.assume_role_policy_document, service):
            raise RoleNotAssumableError(
                f"the role {role_arn} cannot be assumed by {service}: its trust policy "
                f"does not allow sts:AssumeRole to the service principal {service}"
            )
        assumed = sts_backends[account][partition].assume_role(
            region_name=region,
            role_session_name=session_name[:64],
            role_arn=role_arn,
            policy="",
            duration=3600,
            external_id="",
        )
    return {
        "AccessKeyId": assumed.access_key_id,
        "SecretAccessKey": assumed.secret_access_key,
        "SessionToken": assumed.session_token,
    }


# --------------------------------------------------------------- per-thread state


class _ApiCall:
    """An Invoke API request being handled by moto on this thread."""

    def __init__(self, invocation_type: str, body: Any, qualifier: str | None) -> None:
        self.invocation_type = invocation_type
        self.body = body
        self.qualifier = qualifier
        self.used = False
        self.errored = False

    @property
    def payload(self) -> Any:
        body = self.body
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        return json.loads(body) if body else {}


class _ThreadState(threading.local):
    invocation: _Invocation | None = None
    api_call: _ApiCall | None = None


_STATE = _ThreadState()

# ------------------------------------------------------------------ log capture


class _Demux:
    """A stdout/stderr stand-in: text written on an invocation's thread goes to that
    invocation's log, anything else to the stream it wraps.

    Loggers created inside a handler (Powertools binds `sys.stdout` once) keep it and
    keep writing to the right invocation on every later call.
    """

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, text: str) -> int:
        invocation = _STATE.invocation
        if invocation is not None:
            return invocation.write_log(text)
        try:
            return int(self._target.write(text))
        except ValueError:  # the wrapped stream was closed (a finished test's capture)
            return len(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _STATE.invocation is None:
            with contextlib.suppress(ValueError, AttributeError):
                self._target.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _demux(stream: Any) -> Any:
    return stream if isinstance(stream, _Demux) else _Demux(stream)


class _LogRouter(logging.Handler):
    """Root-logger handler: records logged on an invocation's thread, in Lambda's
    text format, into its log (the AWS runtime's root handler does the same)."""

    def emit(self, record: logging.LogRecord) -> None:
        invocation = _STATE.invocation
        if invocation is None or record.name.startswith("moto"):
            return
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        stamp = _iso(record.created)
        invocation.write_log(f"[{record.levelname}]\t{stamp}\t{invocation.request_id}\t{message}\n")


_LOG_ROUTER = _LogRouter()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ------------------------------------------------------------------ import guard


class _ImportGuard(importlib.abc.MetaPathFinder):
    """On an invocation's thread, top-level imports resolve only where Lambda would
    find them: the code, the stdlib, the venv (the dependency layer), the layers."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        invocation = _STATE.invocation
        if invocation is None or path is not None or "." in fullname:
            return None
        if (
            importlib.machinery.BuiltinImporter.find_spec(fullname) is not None
            or importlib.machinery.FrozenImporter.find_spec(fullname) is not None
        ):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, invocation.container.visible_path)
        if spec is None:
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        return spec


_IMPORT_GUARD = _ImportGuard()


@functools.cache
def _runtime_paths() -> tuple[str, ...]:
    """The host's `sys.path` entries a Lambda runtime also has: stdlib and venv."""
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {Path(p).resolve() for n, p in sysconfig.get_paths().items() if n in names}
    roots |= {Path(p).resolve() for p in site.getsitepackages()}
    roots.add(Path(sys.base_prefix).resolve() / "lib")
    kept = []
    for entry in sys.path:
        if not entry:
            continue
        resolved = Path(entry).resolve()
        if any(resolved == root or root in resolved.parents for root in roots):
            kept.append(entry)
    return tuple(dict.fromkeys(kept))


# ------------------------------------------------------------ function specs


@dataclass(frozen=True)
class LayerCode:
    """One layer version's zip, as moto holds it."""

    arn: str
    sha256: str
    code: bytes = field(repr=False)


@dataclass(frozen=True)
class FunctionSpec:
    """One function version's configuration and code, read from moto."""

    name: str
    arn: str  # unqualified
    version: str
    account: str
    region: str
    handler: str
    runtime: str
    role: str
    environment: Mapping[str, str]
    timeout: float  # seconds
    memory_mb: int
    package_type: str
    code_sha256: str
    code: bytes = field(repr=False)
    layers: tuple[LayerCode, ...] = ()

    @property
    def qualified_arn(self) -> str:
        return f"{self.arn}:{self.version}"

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def key(self) -> str:
        """Identity of an execution environment: same code and configuration."""
        data = json.dumps(
            [
                self.qualified_arn, self.code_sha256, self.handler, self.runtime, self.role,
                sorted(self.environment.items()), self.timeout, self.memory_mb,
                [layer.sha256 for layer in self.layers],
            ],
            default=str,
        )  # fmt: skip
        return hashlib.sha256(data.encode()).hexdigest()

    @classmethod
    def from_moto(cls, fn: Any) -> FunctionSpec:
        """From moto's `LambdaFunction` (call with `MOTO_LOCK` held)."""
        from moto.awslambda.utils import get_backend

        backend = get_backend(fn.account_id, fn.region)
        layers = []
        for layer in fn.layers or []:
            version = backend.layers_versions_by_arn(layer["Arn"])
            if version is None:
                raise LambdaRuntimeError(f"{fn.function_name}: layer {layer['Arn']} is gone")
            layers.append(
                LayerCode(layer["Arn"], str(version.code_sha_256), bytes(version.code_bytes))
            )
        arn = f"arn:{fn.partition}:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}"
        return cls(
            name=fn.function_name,
            arn=arn,
            version=str(fn.version),
            account=fn.account_id,
            region=fn.region,
            handler=fn.handler or "",
            runtime=fn.run_time or "",
            role=fn.role,
            environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
            timeout=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            package_type=fn.package_type or "Zip",
            code_sha256=str(fn.code_sha_256),
            code=bytes(getattr(fn, "code_bytes", b"") or b""),
            layers=tuple(layers),
        )


# -------------------------------------------------------------------- containers


def _extract(code: bytes, target: Path) -> None:
    """Unzip `code` into `target` (created whole: a partial dir is never left there)."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            for member in archive.infolist():
                destination = (staging / member.filename).resolve()
                if staging.resolve() not in destination.parents and destination != staging:
                    raise LambdaRuntimeError(f"zip entry {member.filename!r} escapes the code dir")
            archive.extractall(staging)  # members checked above
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _top_level_names(directory: Path) -> set[str]:
    """The importable top-level names a code or layer directory provides."""
    names: set[str] = set()
    if not directory.is_dir():
        return names
    for entry in directory.iterdir():
        if entry.name.startswith((".", "__pycache__")) or entry.name.endswith(
            (".dist-info", ".egg-info")
        ):
            continue
        if entry.is_dir():
            if entry.name.isidentifier() and any(entry.rglob("*.py")):
                names.add(entry.name)
        elif entry.suffix in (".py", ".so", ".pyd"):
            stem = entry.name.split(".", 1)[0]
            if stem.isidentifier():
                names.add(stem)
    return names


def _layer_python_dirs(root: Path) -> list[Path]:
    """Where Lambda puts a layer on the path: /opt/python and its site-packages."""
    python = root / "python"
    dirs = [python] if python.is_dir() else []
    dirs += sorted(python.glob("lib/python3.*/site-packages"))
    return dirs


class _Container:
    """One execution environment of one function version."""

    def __init__(
        self,
        spec: FunctionSpec,
        code_dir: Path,
        layer_dirs: list[Path],
        own_names: frozenset[str],
        credentials: dict[str, str],
    ) -> None:
        self.spec = spec
        self.code_dir = code_dir
        self.layer_dirs = layer_dirs
        self.own_names = own_names
        self.credentials = credentials
        self.visible_path = [str(code_dir), *_runtime_paths(), *map(str, layer_dirs)]
        self.modules: dict[str, ModuleType] = {}
        self.boto3_session: Any = None
        self.handler: Callable[[Any, Any], Any] | None = None
        self.busy = False
        self.invocations = 0
        now = datetime.now(UTC)
        self.log_stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        self.log_stream_created = False


@dataclass
class _Swap:
    """What one invocation set aside in the process, to put back afterwards."""

    invocation: _Invocation
    modules: dict[str, ModuleType]
    path: list[str]
    environ: dict[str, str]
    stdout: Any
    stderr: Any
    boto3_session: Any


_SWAPS: list[_Swap] = []  # innermost last; guarded by the one-invocation-at-a-time rule
_RUN_LOCK = threading.Lock()  # one invocation chain at a time (process-wide state)


def _own(name: str, own_names: frozenset[str]) -> bool:
    return name.partition(".")[0] in own_names


def _swap_in(invocation: _Invocation, environ: Mapping[str, str]) -> None:
    import boto3

    container = invocation.container
    own = container.own_names
    set_aside = {n: m for n, m in list(sys.modules.items()) if _own(n, own)}
    for name in set_aside:
        sys.modules.pop(name, None)
    sys.modules.update(container.modules)
    swap = _Swap(
        invocation=invocation,
        modules=set_aside,
        path=list(sys.path),
        environ=dict(os.environ),
        stdout=sys.stdout,
        stderr=sys.stderr,
        boto3_session=boto3.DEFAULT_SESSION,
    )
    _SWAPS.append(swap)
    sys.path[:0] = [str(container.code_dir)]
    sys.path.extend(str(d) for d in container.layer_dirs)
    os.environ.clear()
    os.environ.update(environ)
    sys.stdout, sys.stderr = _demux(sys.stdout), _demux(sys.stderr)
    # botocore caches resolved credentials in a session: each container has its own
    # default session, created from its own environment on first use.
    boto3.DEFAULT_SESSION = container.boto3_session


def _undo_swap(swap: _Swap) -> None:
    import boto3

    container = swap.invocation.container
    own = container.own_names
    current = {n: m for n, m in list(sys.modules.items()) if _own(n, own)}
    for name in current:
        sys.modules.pop(name, None)
    container.modules = current
    container.boto3_session = boto3.DEFAULT_SESSION
    sys.modules.update(swap.modules)
    sys.path[:] = swap.path
    os.environ.clear()
    os.environ.update(swap.environ)
    sys.stdout, sys.stderr = swap.stdout, swap.stderr
    boto3.DEFAULT_SESSION = swap.boto3_session


def _swap_out(invocation: _Invocation) -> None:
    """Undo `invocation`'s swap, and first any nested one still in place (an outer
    invocation that timed out while an inner one ran: the inner one is frozen too)."""
    if not any(s.invocation is invocation for s in _SWAPS):
        return
    while _SWAPS:
        swap = _SWAPS.pop()
        if swap.invocation is not invocation:
            swap.invocation.frozen = True
            swap.invocation.discard = True
        _undo_swap(swap)
        if swap.invocation is invocation:
            return


# ------------------------------------------------------------------- invocations


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


class _Invocation:
    """One invocation: run on a worker thread, waited for by the caller."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        container: _Container,
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
        _STATE.invocation = self
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
            _STATE.invocation = None

    def _fail(self, error_type: str, message: str, exc: BaseException) -> None:
        self.payload = None
        self.error_type, self.error_message = error_type, message
        frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
        # The trace starts in the function's code, as in Lambda (not in this runtime).
        self.error_trace = traceback.format_list([f for f in frames if f.filename != __file__])
        if self.container.handler is None:
            self.discard = True  # an init error: the next invocation initialises again
        self.write_log(f"[ERROR] {error_type}: {message}\n")
        if self.error_trace:
            self.write_log("Traceback (most recent call last):\n" + "".join(self.error_trace))


@dataclass(frozen=True)
class _Outcome:
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


# ------------------------------------------------------------------------ runtime

_HOST_ENV_KEPT = frozenset(
    {"PATH", "HOME", "TMPDIR", "TEMP", "TMP", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT",
     "PYTHONHASHSEED"}
)  # fmt: skip
_INIT_TIMEOUT_SECONDS = 10.0  # Lambda's limit for the init phase
_LOG_TAIL_BYTES = 4096  # what Invoke returns with LogType=Tail


class LambdaRuntime:
    """Runs functions deployed in moto in-process, like Lambda (see the module docstring).

    - `account` / `region`: where a bare function name is looked up (default: the
      account of `admin` (its ARN), else of `session_factory()`'s caller identity,
      else moto's default account; the region of that session, else us-east-1).
    - `clock`: the sandbox's clock, for the context's remaining time (default: real).
    - `timeout_scale`: real seconds per second of function timeout (default 1.0;
      tests use less). Messages and the context still speak in function seconds.
    - `event_dispatcher(function_arn, event)`: where InvocationType=Event requests
      made through moto's Invoke API go (the delivery part's async queue, which
      retries); default None: run inline, the result only logged.
    - `write_logs`: also write each invocation's log to its function's CloudWatch
      log group in moto, when the group exists (default True).
    - `work_dir`: where code is extracted (default: a temp dir removed by `close()`).
    """

    def __init__(
        self,
        *,
        account: str | None = None,
        region: str | None = None,
        admin: AdminIdentity | None = None,
        session_factory: SessionFactory | None = None,
        clock: Clock | None = None,
        timeout_scale: float = 1.0,
        event_dispatcher: EventDispatcher | None = None,
        write_logs: bool = True,
        work_dir: str | Path | None = None,
    ) -> None:
        if timeout_scale <= 0:
            raise ValueError(f"timeout_scale: {timeout_scale} must be > 0")
        self._account = account
        self._region = region
        self._admin = admin
        self._session_factory = session_factory
        self.clock = clock
        self.timeout_scale = timeout_scale
        self.event_dispatcher = event_dispatcher
        self.write_logs = write_logs
        self._owns_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="sandbox-lambda-"))
        self._extract_lock = threading.Lock()
        self._extracted: dict[str, Path] = {}
        self._pool_lock = threading.Lock()
        self._idle: dict[str, list[_Container]] = {}
        self._service_credentials: dict[tuple[str, str], dict[str, str]] = {}
        # Step Functions task clients by (role, region, service): creating a botocore
        # client loads its service model (~0.1 s), too slow for every task.
        self._sfn_clients: dict[tuple[str, str, str], Any] = {}
        self._patches = _Patches()

    # ------------------------------------------------------------ defaults

    @functools.cached_property
    def default_region(self) -> str:
        if self._region:
            return self._region
        if self._session_factory is not None:
            region = getattr(self._session_factory(), "region_name", None)
            if region:
                return str(region)
        return "us-east-1"

    @functools.cached_property
    def default_account(self) -> str:
        if self._account:
            return self._account
        if self._admin is not None:
            return self._admin.arn.split(":")[4]
        if self._session_factory is not None:
            sts = self._session_factory().client("sts", region_name=self.default_region)
            return str(sts.get_caller_identity()["Account"])
        from moto.core import DEFAULT_ACCOUNT_ID

        return str(DEFAULT_ACCOUNT_ID)

    # -------------------------------------------------------------- invoke

    def invoke(
        self,
        function: str,
        payload: Any,
        *,
        invocation_type: Literal["RequestResponse", "Event"] = "RequestResponse",
    ) -> InvocationResult:
        """Run `function` (name, `name:qualifier`, ARN) with `payload` (JSON-compatible).

        Blocks until the invocation ends (a timeout included). `invocation_type` is
        recorded only: retries and destinations of async invocations are the
        caller's. Raises `FunctionNotFoundError` for an unknown function, ValueError
        for a payload that is not JSON, and LambdaRuntimeError if the runtime is not
        installed (without `install()` nothing captures logs, guards imports, freezes
        timed-out invocations or fixes moto's IAM checks).
        """
        if not self.installed:
            raise LambdaRuntimeError(
                "this LambdaRuntime is not installed: call install() first "
                "(or use `with LambdaRuntime(...) as runtime:`)"
            )
        try:
            event = json.loads(json.dumps(payload))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload is not JSON-compatible: {exc}") from exc
        spec, invoked_arn = self.function_spec(function)
        return self._invoke(spec, event, invocation_type, invoked_arn).result

    def function_spec(self, function: str) -> tuple[FunctionSpec, str]:
        """The function's spec from moto, and the ARN it is invoked by."""
        from moto.awslambda.utils import get_backend

        account, region, name, qualifier = self.default_account, self.default_region, function, None
        if function.startswith("arn:"):
            parts = function.split(":")
            if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
                raise FunctionNotFoundError(f"{function!r} is not a Lambda function ARN")
            region, account, name = parts[3], parts[4], parts[6]
            qualifier = parts[7] if len(parts) > 7 else None
        elif ":" in function:
            name, qualifier = function.split(":", 1)
        with MOTO_LOCK:
            try:
                fn = get_backend(account, region).get_function(name, qualifier)
            except Exception as exc:
                raise FunctionNotFoundError(
                    f"Function not found: {function} (account {account}, region {region})"
                ) from exc
            spec = FunctionSpec.from_moto(fn)
        invoked = spec.arn if qualifier is None else f"{spec.arn}:{qualifier}"
        return spec, invoked

    def _invoke(
        self, spec: FunctionSpec, event: Any, invocation_type: str, invoked_arn: str
    ) -> _Outcome:
        unsupported = self._unsupported(spec)
        if unsupported is not None:
            return unsupported
        nested = _STATE.invocation is not None
        if not nested:
            _RUN_LOCK.acquire()
        try:
            try:
                container = self._checkout(spec)
            except RoleNotAssumableError as exc:
                message = f"The role defined for the function cannot be assumed by Lambda. ({exc})"
                return _Outcome(
                    InvocationResult(None, "AccessDeniedException", message, 0.0, ""),
                    str(uuid.uuid4()),
                )
            invocation = _Invocation(self, container, event, invocation_type, invoked_arn)
            try:
                timed_out = self._run(invocation)
            except BaseException:
                self._checkin(container, discard=True)
                raise
        finally:
            if not nested:
                _RUN_LOCK.release()
        return self._finish(invocation, timed_out)

    def _unsupported(self, spec: FunctionSpec) -> _Outcome | None:
        problem = None
        if spec.package_type != "Zip":
            problem = f"package type {spec.package_type} (only zip packages run in the sandbox)"
        elif not spec.runtime.startswith("python3"):
            problem = f"runtime {spec.runtime or 'None'} (only python3.x runs in the sandbox)"
        elif not spec.code:
            problem = "no code (moto holds no zip for it)"
        if problem is None:
            return None
        message = f"{spec.name}: {problem}"
        return _Outcome(
            InvocationResult(None, "Sandbox.Unsupported", message, 0.0, ""), str(uuid.uuid4())
        )

    def _run(self, invocation: _Invocation) -> bool:
        """Run on a worker thread and wait; True if it timed out."""
        environ = self._environment(invocation)
        _swap_in(invocation, environ)
        try:
            worker = threading.Thread(
                target=invocation.run,
                name=f"lambda:{invocation.spec.name}:{invocation.request_id[:8]}",
                daemon=True,
            )
            worker.start()
            init_limit = max(_INIT_TIMEOUT_SECONDS, invocation.spec.timeout) * self.timeout_scale
            timed_out = not invocation.init_done.wait(init_limit)
            if not timed_out and not invocation.done.is_set():
                assert invocation.deadline is not None
                remaining = invocation.deadline - time.monotonic()
                timed_out = not invocation.done.wait(max(0.0, remaining))
            if timed_out:
                invocation.frozen = True
                invocation.discard = True
        finally:
            _swap_out(invocation)
        return timed_out

    def _finish(self, invocation: _Invocation, timed_out: bool) -> _Outcome:
        container, spec = invocation.container, invocation.spec
        self._checkin(container, discard=invocation.discard)
        end = time.perf_counter()
        started = invocation.handler_started or end
        finished = end if timed_out else (invocation.finished or end)
        duration_ms = max(0.0, (finished - started) * 1000)
        if timed_out:
            error_type: str | None = "Sandbox.Timedout"
            message: str | None = (
                f"RequestId: {invocation.request_id} Error: Task timed out after "
                f"{spec.timeout:.2f} seconds"
            )
            payload = None
            invocation.write_log(
                f"{_iso(time.time())} {invocation.request_id} Task timed out after "
                f"{spec.timeout:.2f} seconds\n"
            )
        else:
            error_type, message = invocation.error_type, invocation.error_message
            payload = invocation.payload
        logs = self._frame_log(invocation, duration_ms)
        if self.write_logs:
            self._write_cloudwatch(container, logs)
        return _Outcome(
            InvocationResult(payload, error_type, message, duration_ms, logs),
            invocation.request_id,
            tuple(invocation.error_trace),
        )

    @staticmethod
    def _frame_log(invocation: _Invocation, duration_ms: float) -> str:
        spec, rid = invocation.spec, invocation.request_id
        body = invocation.log_text
        if body and not body.endswith("\n"):
            body += "\n"
        report = (
            f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\t"
            f"Memory Size: {spec.memory_mb} MB\tMax Memory Used: {spec.memory_mb} MB"
        )
        if invocation.cold and invocation.init_ms is not None:
            report += f"\tInit Duration: {invocation.init_ms:.2f} ms"
        runtime = spec.runtime.replace("python", "python:")
        init = f"INIT_START Runtime Version: {runtime}\n" if invocation.cold else ""
        return (
            f"{init}START RequestId: {rid} Version: {spec.version}\n{body}"
            f"END RequestId: {rid}\n{report}\n"
        )

    def _environment(self, invocation: _Invocation) -> dict[str, str]:
        spec, container = invocation.spec, invocation.container
        host = os.environ
        environ = {k: v for k, v in host.items() if k in _HOST_ENV_KEPT or k.startswith("MOTO_")}
        environ.setdefault("LANG", "en_US.UTF-8")
        environ.update(spec.environment)
        credentials = container.credentials
        trace_root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        environ.update(
            {
                "_HANDLER": spec.handler,
                "_X_AMZN_TRACE_ID": f"Root={trace_root};Parent={uuid.uuid4().hex[:16]};Sampled=0",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": container.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
                # moto does not route botocore's account-based endpoints (shared notes).
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                "LAMBDA_TASK_ROOT": str(container.code_dir),
                "LAMBDA_RUNTIME_DIR": sys.prefix,
            }
        )
        return environ

    # ---------------------------------------------------------- containers

    def _checkout(self, spec: FunctionSpec) -> _Container:
        key = spec.key
        with self._pool_lock:
            idle = self._idle.get(key, [])
            while idle:
                container = idle.pop()
                if not container.busy:
                    container.busy = True
                    container.invocations += 1
                    return container
        container = self._new_container(spec)
        container.busy = True
        container.invocations += 1
        return container

    def _checkin(self, container: _Container, *, discard: bool) -> None:
        with self._pool_lock:
            container.busy = False
            if not discard:
                self._idle.setdefault(container.spec.key, []).append(container)

    def _new_container(self, spec: FunctionSpec) -> _Container:
        code_dir = self._unpacked(spec.code_sha256, spec.code, "code")
        layer_dirs: list[Path] = []
        own = set(_top_level_names(code_dir))
        for layer in spec.layers:
            for directory in _layer_python_dirs(self._unpacked(layer.sha256, layer.code, "layers")):
                layer_dirs.append(directory)
                for name in _top_level_names(directory):
                    # What the venv has is shared (the dependency layer's packages);
                    # a layer's own modules are isolated like the function's code.
                    host = importlib.machinery.PathFinder.find_spec(name, list(_runtime_paths()))
                    if host is None:
                        own.add(name)
        credentials = _assume_role_as_service(
            spec.role, "lambda.amazonaws.com", session_name=spec.name, region=spec.region
        )
        return _Container(spec, code_dir, layer_dirs, frozenset(own), credentials)

    def _unpacked(self, sha256: str, code: bytes, kind: str) -> Path:
        digest = hashlib.sha256(f"{sha256}:{len(code)}".encode()).hexdigest()[:24]
        with self._extract_lock:
            cached = self._extracted.get(f"{kind}:{digest}")
            if cached is not None:
                return cached
            target = self.work_dir / kind / digest
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                _extract(code, target)
            importlib.invalidate_caches()
            self._extracted[f"{kind}:{digest}"] = target
            return target

    def warm_containers(self, function: str) -> int:
        """How many idle execution environments the function's current version has."""
        spec, _ = self.function_spec(function)
        with self._pool_lock:
            return len(self._idle.get(spec.key, []))

    # -------------------------------------------------------------- logs

    def _write_cloudwatch(self, container: _Container, logs: str) -> None:
        from moto.logs.models import logs_backends

        spec = container.spec
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in logs.splitlines() if line]
        try:
            with MOTO_LOCK:
                backend = logs_backends[spec.account][spec.region]
                if spec.log_group not in backend.groups or not events:
                    return
                if not container.log_stream_created:
                    backend.create_log_stream(spec.log_group, container.log_stream)
                    container.log_stream_created = True
                backend.put_log_events(spec.log_group, container.log_stream, events)
        except Exception:  # logs are a courtesy: never fail an invocation over them
            log.warning("could not write %s's log to CloudWatch", spec.name, exc_info=True)

    # ------------------------------------------------------ service roles

    def service_credentials(self, role_arn: str, service: str) -> dict[str, str]:
        """Credentials of `role_arn` as `service` assumes it (cached per role)."""
        key = (role_arn, service)
        with self._pool_lock:
            cached = self._service_credentials.get(key)
        if cached is not None:
            return cached
        name = service.split(".", 1)[0]
        credentials = _assume_role_as_service(
            role_arn, service, session_name=f"{name}-{uuid.uuid4().hex[:12]}",
            region=self.default_region,
        )  # fmt: skip
        with self._pool_lock:
            return self._service_credentials.setdefault(key, credentials)

    # ----------------------------------------------------------- install

    def install(self) -> LambdaRuntime:
        """Make moto run functions through this runtime (see the module docstring).

        Raises MotoHookError if moto's hooked internals changed, and
        LambdaRuntimeError if another runtime is installed.
        """
        with _INSTALL_GUARD:
            if _Registry.runtime is self:
                return self
            if _Registry.runtime is not None:
                raise LambdaRuntimeError(
                    "another LambdaRuntime is installed (moto's hook is process-wide): "
                    "uninstall it first"
                )
            _require_moto_hooks()
            install_moto_lock()
            install_iam_resources()
            try:
                self._install_hooks()
            except BaseException:
                self._patches.undo()
                uninstall_iam_resources()
                uninstall_moto_lock()
                raise
            _Registry.runtime = self
        return self

    def _install_hooks(self) -> None:
        from moto.awslambda.models import LambdaFunction
        from moto.awslambda.responses import LambdaResponse

        self._patches.set(LambdaFunction, "_invoke_lambda", _moto_invoke_lambda)
        self._patches.set(
            LambdaResponse, "invoke", _api_entry(LambdaResponse.invoke, "RequestResponse")
        )
        self._patches.set(
            LambdaResponse, "invoke_async", _api_entry(LambdaResponse.invoke_async, "Event")
        )
        for name in _SFN_CLIENT_MODULES:
            module = importlib.import_module(name)
            original = module.boto_client_for
            self._patches.set(module, "boto_client_for", _sfn_client_factory(original))
        root = logging.getLogger()
        if _LOG_ROUTER not in root.handlers:
            root.addHandler(_LOG_ROUTER)
        if _IMPORT_GUARD not in sys.meta_path:
            sys.meta_path.insert(0, _IMPORT_GUARD)

    def uninstall(self) -> None:
        """Undo `install()` (idempotent)."""
        with _INSTALL_GUARD:
            if _Registry.runtime is not self:
                return
            self._patches.undo()
            logging.getLogger().removeHandler(_LOG_ROUTER)
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_IMPORT_GUARD)
            uninstall_iam_resources()
            uninstall_moto_lock()
            _Registry.runtime = None

    @property
    def installed(self) -> bool:
        return _Registry.runtime is self

    def close(self) -> None:
        """Uninstall, forget every container and remove the extracted code."""
        self.uninstall()
        with self._pool_lock:
            self._idle.clear()
            self._service_credentials.clear()
            self._sfn_clients.clear()
        with self._extract_lock:
            self._extracted.clear()
            if self._owns_work_dir:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LambdaRuntime:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ----------------------------------------------------------------- moto hooks


def _moto_invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replaces `LambdaFunction._invoke_lambda`: (payload, errored, log tail)."""
    runtime = _Registry.runtime
    call = _STATE.api_call
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
        outcome = runtime._invoke(spec, payload, call.invocation_type, invoked)
    text, errored = outcome.wire()
    call.errored = errored
    tail = outcome.result.logs.encode("utf-8")[-_LOG_TAIL_BYTES:].decode("utf-8", "ignore")
    return text, errored, tail


def _api_entry(original: Callable[[Any], Any], default_type: str) -> Callable[[Any], Any]:
    """Wraps a LambdaResponse entry (Invoke, InvokeAsync): marks the thread as handling
    an API invocation, and reports function errors as Lambda does ("Unhandled")."""

    def entry(self: Any) -> Any:
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or default_type
        qualifier = self.querystring.get("Qualifier", [None])[0]
        call = _ApiCall(invocation_type, self.body, qualifier)
        previous, _STATE.api_call = _STATE.api_call, call
        try:
            response = original(self)
        finally:
            _STATE.api_call = previous
        if call.errored and isinstance(response, tuple) and len(response) == 3:
            response[1]["x-amz-function-error"] = "Unhandled"
        return response

    functools.update_wrapper(entry, original)
    return entry


def _sfn_client_factory(original: Callable[..., Any]) -> Callable[..., Any]:
    """`boto_client_for` for moto's Step Functions interpreter, with the state
    machine's (or the task's `Credentials`) role instead of a fixed fake key."""

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        runtime = _Registry.runtime
        role_arn = getattr(state_credentials, "role_arn", None)
        if runtime is None or not isinstance(role_arn, str) or not role_arn.startswith("arn:"):
            return original(region, service, state_credentials)
        import boto3
        from botocore.config import Config
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
            TimeoutSeconds,
        )

        key = (role_arn, region, service)
        with runtime._pool_lock:
            cached = runtime._sfn_clients.get(key)
        if cached is not None:
            return cached
        credentials = runtime.service_credentials(role_arn, "states.amazonaws.com")
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
