"""Lambda durable functions' execution service, served by moto (which has none of it).

A function created with `DurableConfig` (`durableConfig` of the Pulumi Function; moto
drops the parameter, so the sandbox keeps it on moto's function and returns it from
GetFunction / GetFunctionConfiguration) is durable: each invocation of it starts a
*durable execution*, and Lambda runs the handler with an envelope instead of the event:

    {"DurableExecutionArn": "arn:aws:lambda:<region>:<account>:function:<name>:$LATEST"
                            "/durable-execution/<execution name>/<execution id>",
     "CheckpointToken": "<token>",
     "InitialExecutionState": {"Operations": [<the checkpoint log>], "NextMarker": ""}}

The first operation of the log is the execution's own (`Type` EXECUTION, `Id` the
execution id, `ExecutionDetails.InputPayload` the event as JSON): the SDK
(`aws-durable-execution-sdk-python`'s `@durable_execution`) hands that input to the
handler, replays the completed operations from the log without running them, and
answers `{"Status": "SUCCEEDED", "Result": "<json>"}`, `{"Status": "FAILED", "Error":
{...}}` or `{"Status": "PENDING"}` (it suspended: a wait, a step retry's backoff).

The APIs the SDK calls, served here as moto serves the rest of Lambda (the same IAM
checks: the caller's policies must allow `lambda:<Operation>` on the execution's ARN,
e.g. `arn:aws:lambda:<region>:<account>:function:<name>:*`, as AWS authorises them):

- `CheckpointDurableExecution`: the token given must be the execution's current one (a
  token is used once: the answer carries the next one), else `InvalidParameterValueException`
  "Invalid checkpoint token" (a duplicate, a stale token, one of an earlier
  invocation); its updates are applied in order (STEP START / SUCCEED / FAIL / RETRY,
  WAIT START / CANCEL, CONTEXT START / SUCCEED / FAIL, EXECUTION SUCCEED / FAIL). A
  step RETRY is PENDING until `NextAttemptDelaySeconds` have passed (then READY); a
  WAIT START is STARTED until `WaitSeconds` have passed (then SUCCEEDED): on the
  virtual clock, when the delivery resumes the execution (`delivery.durable`). The
  answer's `NewExecutionState.Operations` are the operations the updates touched; an
  execution that has ended (its EXECUTION update, a timeout, a stop) gives no next
  token, which tells the SDK to stop checkpointing.
- `GetDurableExecutionState`: the log, paged (`Marker`, `MaxItems`), for the holder of
  the current token.
- `GetDurableExecution`, `ListDurableExecutionsByFunction`, `StopDurableExecution`:
  as the console and the CLI use them (status RUNNING, SUCCEEDED, FAILED, TIMED_OUT,
  STOPPED; `Result`, `Error`, `ExpectedExecutionTimeoutTimestamp`, `DurableConfig`).

Not modelled: callbacks (`CALLBACK`, `SendDurableExecutionCallback*`) and chained
invokes (`CHAINED_INVOKE`) are refused with `InvalidParameterValueException` naming
the operation type; `GetDurableExecutionHistory` and the execution data's KMS
encryption are not served; retention (`RetentionPeriodInDays`, 14 days by default) is
recorded and reported, executions are never deleted; payload size limits are not
checked; versions and aliases (executions always run `$LATEST`).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from eventcraft_sandbox.clock import Patches

__all__ = [
    "DEFAULT_EXECUTION_TIMEOUT",
    "DEFAULT_RETENTION_DAYS",
    "INVALID_TOKEN",
    "DurableConfigPatch",
    "DurableExecution",
    "DurableExecutionService",
    "DurableServiceError",
    "durable_config",
]

# AWS's defaults when DurableConfig leaves them out.
DEFAULT_EXECUTION_TIMEOUT = 86_400
DEFAULT_RETENTION_DAYS = 14
# The SDK matches this prefix to tell a stale token (retry the invocation) from a bad
# request (fail the execution).
INVALID_TOKEN = "Invalid checkpoint token"
_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"})
_UNSUPPORTED_TYPES = frozenset({"CALLBACK", "CHAINED_INVOKE"})


class DurableServiceError(Exception):
    """An API error as Lambda answers it (`code`, HTTP `status`, `message`)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _invalid(message: str) -> DurableServiceError:
    return DurableServiceError("InvalidParameterValueException", message)


@dataclass
class DurableExecution:
    """One durable execution: its log of operations and where it stands."""

    arn: str
    name: str
    id: str
    function_arn: str  # unqualified
    version: str
    input_payload: str
    started: float
    timeout: int
    retention_days: int
    config: dict[str, Any]
    status: str = "RUNNING"
    ended: float | None = None
    result: str | None = None
    error: dict[str, Any] | None = None
    token: str | None = None
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    invocations: int = 0

    @property
    def done(self) -> bool:
        return self.status in _TERMINAL

    @property
    def timeout_at(self) -> float:
        return self.started + self.timeout

    def due_at(self) -> float | None:
        """When the service has something to resume: the earliest wait's end or step
        retry (None: nothing is waiting)."""
        times = [t for op in self.operations.values() if (t := _due(op)) is not None]
        return min(times) if times else None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "DurableExecutionArn": self.arn,
            "DurableExecutionName": self.name,
            "FunctionArn": f"{self.function_arn}:{self.version}",
            "Status": self.status,
            "StartTimestamp": self.started,
        }
        if self.ended is not None:
            out["EndTimestamp"] = self.ended
        return out


def _due(op: dict[str, Any]) -> float | None:
    if op["Type"] == "WAIT" and op["Status"] == "STARTED":
        return float(op["WaitDetails"]["ScheduledEndTimestamp"])
    if op["Type"] == "STEP" and op["Status"] == "PENDING":
        return float(op["StepDetails"]["NextAttemptTimestamp"])
    return None


_TIMESTAMPS = ("StartTimestamp", "EndTimestamp")
_DETAIL_TIMESTAMPS = (
    ("StepDetails", "NextAttemptTimestamp"),
    ("WaitDetails", "ScheduledEndTimestamp"),
)


def _copy(op: dict[str, Any], scale: float) -> dict[str, Any]:
    """`op` with its timestamps in seconds (the API's JSON) or milliseconds (the
    invocation envelope, as Lambda sends it)."""
    out = json.loads(json.dumps(op))
    for key in _TIMESTAMPS:
        if key in out:
            out[key] = int(out[key] * 1000) if scale == 1000 else out[key]
    for details, key in _DETAIL_TIMESTAMPS:
        if key in out.get(details, {}):
            value = out[details][key]
            out[details][key] = int(value * 1000) if scale == 1000 else value
    return out


def _transition(op: dict[str, Any], update: dict[str, Any], now: float) -> None:
    """Apply a STEP / WAIT / CONTEXT update's action to its operation."""
    kind, action = op["Type"], update["Action"]
    details_key = {"STEP": "StepDetails", "CONTEXT": "ContextDetails"}.get(kind)
    if action == "START":
        op["Status"] = "STARTED"
        if kind == "WAIT":
            seconds = int((update.get("WaitOptions") or {}).get("WaitSeconds") or 0)
            op["WaitDetails"] = {"ScheduledEndTimestamp": now + seconds}
    elif action in ("SUCCEED", "FAIL") and details_key is not None:
        op["Status"], op["EndTimestamp"] = ("SUCCEEDED" if action == "SUCCEED" else "FAILED"), now
        details = op.setdefault(details_key, {})
        if action == "SUCCEED":
            details["Result"] = update.get("Payload")
        else:
            details["Error"] = update.get("Error") or {}
        if kind == "STEP":
            details["Attempt"] = int(details.get("Attempt", 0)) + 1
    elif action == "RETRY" and kind == "STEP":
        delay = int((update.get("StepOptions") or {}).get("NextAttemptDelaySeconds") or 1)
        details = op["StepDetails"]
        details["Attempt"] = int(details.get("Attempt", 0)) + 1
        details["NextAttemptTimestamp"] = now + delay
        if update.get("Error"):
            details["Error"] = update["Error"]
        op["Status"] = "PENDING"
    elif action == "CANCEL" and kind == "WAIT":
        op["Status"], op["EndTimestamp"] = "CANCELLED", now
    else:
        raise _invalid(f"Action {action} is not valid for a {kind} operation")


def durable_config(function: Any) -> dict[str, Any] | None:
    """The DurableConfig moto's `LambdaFunction` was created with (None: not durable)."""
    return getattr(function, "durable_config", None)


class DurableExecutionService:
    """The executions and the API (module docstring). `now`: the clock timestamps and
    delays are read from (the delivery's virtual clock); `on_end(execution)`: called
    once when an execution ends, however it ends."""

    _installed: DurableExecutionService | None = None

    def __init__(
        self,
        now: Callable[[], float] = time.time,
        on_end: Callable[[DurableExecution], None] | None = None,
    ) -> None:
        self.now = now
        self.on_end = on_end
        self.executions: dict[str, DurableExecution] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._patches = Patches()
        self._config: DurableConfigPatch | None = None

    # -- executions -----------------------------------------------------------------

    def start(
        self, function_arn: str, payload: Any, config: dict[str, Any], name: str | None = None
    ) -> DurableExecution:
        """A new RUNNING execution of `function_arn` (unqualified) with `payload`."""
        with self._lock:
            execution_id = str(uuid.uuid4())
            name = name or execution_id
            arn = f"{function_arn}:$LATEST/durable-execution/{name}/{execution_id}"
            now = self.now()
            input_payload = json.dumps(payload)
            execution = DurableExecution(
                arn=arn,
                name=name,
                id=execution_id,
                function_arn=function_arn,
                version="$LATEST",
                input_payload=input_payload,
                started=now,
                timeout=int(config.get("ExecutionTimeout") or DEFAULT_EXECUTION_TIMEOUT),
                retention_days=int(config.get("RetentionPeriodInDays") or DEFAULT_RETENTION_DAYS),
                config=dict(config),
            )
            execution.operations[execution_id] = {
                "Id": execution_id,
                "Type": "EXECUTION",
                "Status": "STARTED",
                "StartTimestamp": now,
                "ExecutionDetails": {"InputPayload": input_payload},
            }
            self.executions[arn] = execution
            return execution

    def envelope(self, execution: DurableExecution) -> dict[str, Any]:
        """The event of the execution's next invocation, with a fresh token (the
        previous invocation's is no longer accepted)."""
        with self._lock:
            execution.invocations += 1
            execution.token = self._new_token(execution)
            return {
                "DurableExecutionArn": execution.arn,
                "CheckpointToken": execution.token,
                "InitialExecutionState": {
                    "Operations": [_copy(op, 1000) for op in execution.operations.values()],
                    "NextMarker": "",
                },
            }

    def resume_due(self, execution: DurableExecution) -> bool:
        """Complete the waits and ready the step retries whose time has come; whether
        any did."""
        with self._lock:
            now, changed = self.now(), False
            for op in execution.operations.values():
                due = _due(op)
                if due is None or due > now:
                    continue
                changed = True
                if op["Type"] == "WAIT":
                    op["Status"], op["EndTimestamp"] = "SUCCEEDED", now
                else:
                    op["Status"] = "READY"
            return changed

    def finish(
        self,
        execution: DurableExecution,
        status: str,
        *,
        result: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """End the execution (False if it had already ended: the first end stands)."""
        with self._lock:
            if execution.done:
                return False
            execution.status, execution.ended = status, self.now()
            execution.token = None  # no further checkpoint is accepted
            if result is not None:
                execution.result = result
            if error is not None:
                execution.error = error
            op = execution.operations[execution.id]
            op["Status"], op["EndTimestamp"] = status, execution.ended
        if self.on_end is not None:
            self.on_end(execution)
        return True

    def _new_token(self, execution: DurableExecution) -> str:
        raw = f"{execution.id}:{next(self._ids)}:{uuid.uuid4().hex}"
        return base64.b64encode(raw.encode()).decode()

    def _execution(self, arn: str) -> DurableExecution:
        execution = self.executions.get(arn)
        if execution is None:
            raise DurableServiceError(
                "ResourceNotFoundException", f"Durable execution not found: {arn}", 404
            )
        return execution

    # -- the API --------------------------------------------------------------------

    def checkpoint(self, arn: str, token: str, updates: list[dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            execution = self._execution(arn)
            if execution.token is None or token != execution.token:
                raise _invalid(f"{INVALID_TOKEN}: {token}")
            for update in updates:  # all refused before any applies
                if update.get("Type") in _UNSUPPORTED_TYPES:
                    raise _invalid(
                        f"Operation type {update['Type']} is not supported by the sandbox "
                        "(callbacks and chained invokes are not modelled)"
                    )
            touched: dict[str, dict[str, Any]] = {}
            for update in updates:
                op = self._apply(execution, update)
                touched[op["Id"]] = op
            execution.token = None if execution.done else self._new_token(execution)
            answer: dict[str, Any] = {
                "NewExecutionState": {"Operations": [_copy(op, 1) for op in touched.values()]}
            }
            if execution.token is not None:
                answer["CheckpointToken"] = execution.token
            return answer

    def _apply(self, execution: DurableExecution, update: dict[str, Any]) -> dict[str, Any]:
        if update["Type"] == "EXECUTION":
            return self._end_by_checkpoint(execution, update)
        op = self._operation(execution, update)
        _transition(op, update, self.now())
        return op

    def _end_by_checkpoint(
        self, execution: DurableExecution, update: dict[str, Any]
    ) -> dict[str, Any]:
        action = update["Action"]
        if action == "SUCCEED":
            self.finish(execution, "SUCCEEDED", result=update.get("Payload") or "")
        elif action == "FAIL":
            self.finish(execution, "FAILED", error=update.get("Error") or {})
        else:
            raise _invalid(f"Action {action} is not valid for an EXECUTION operation")
        return execution.operations[execution.id]

    def _operation(self, execution: DurableExecution, update: dict[str, Any]) -> dict[str, Any]:
        """The operation `update` is about; a START (or a step's first SUCCEED / FAIL,
        whose START was batched away) creates it."""
        kind, action, op_id = update["Type"], update["Action"], update["Id"]
        op = execution.operations.get(op_id)
        if op is not None:
            if op["Type"] != kind:
                raise _invalid(f"Operation {op_id} is a {op['Type']}, not a {kind}")
            return op
        if action != "START" and not (kind == "STEP" and action in ("SUCCEED", "FAIL")):
            raise _invalid(f"Operation {op_id} does not exist: its first action must be START")
        op = {"Id": op_id, "Type": kind, "StartTimestamp": self.now(), "Status": "STARTED"}
        op |= {key: update[key] for key in ("ParentId", "Name", "SubType") if update.get(key)}
        if kind == "STEP":
            op["StepDetails"] = {"Attempt": 0}
        execution.operations[op_id] = op
        return op

    def state(
        self, arn: str, token: str, marker: str | None, max_items: int | None
    ) -> dict[str, Any]:
        with self._lock:
            execution = self._execution(arn)
            if execution.token is None or token != execution.token:
                raise _invalid(f"{INVALID_TOKEN}: {token}")
            ops = [_copy(op, 1) for op in execution.operations.values()]
            start = int(marker) if marker else 0
            size = max_items or 1000
            page = ops[start : start + size]
            answer: dict[str, Any] = {"Operations": page}
            if start + size < len(ops):
                answer["NextMarker"] = str(start + size)
            return answer

    def describe(self, arn: str) -> dict[str, Any]:
        with self._lock:
            execution = self._execution(arn)
            out = execution.summary()
            out |= {
                "InputPayload": execution.input_payload,
                "Version": execution.version,
                "DurableConfig": {
                    "ExecutionTimeout": execution.timeout,
                    "RetentionPeriodInDays": execution.retention_days,
                },
                "ExpectedExecutionTimeoutTimestamp": execution.timeout_at,
            }
            if execution.result is not None:
                out["Result"] = execution.result
            if execution.error is not None:
                out["Error"] = execution.error
            return out

    def list_by_function(self, function_arn: str, statuses: list[str]) -> dict[str, Any]:
        unqualified = ":".join(function_arn.split(":")[:7])
        with self._lock:
            found = [
                e.summary()
                for e in self.executions.values()
                if e.function_arn == unqualified and (not statuses or e.status in statuses)
            ]
        return {"DurableExecutions": found}

    def stop(self, arn: str, error: dict[str, Any] | None) -> dict[str, Any]:
        with self._lock:
            execution = self._execution(arn)
            if execution.done:
                raise _invalid(f"Durable execution {arn} has already ended ({execution.status})")
            self.finish(execution, "STOPPED", error=error)
            return {"StopTimestamp": execution.ended}

    # -- moto -----------------------------------------------------------------------

    def install(self) -> DurableExecutionService:
        """Serve the API from moto's Lambda and keep DurableConfig on its functions."""
        if DurableExecutionService._installed is not None:
            raise RuntimeError("another DurableExecutionService is installed")
        from moto.awslambda import urls
        from moto.awslambda.responses import LambdaResponse

        DurableExecutionService._installed = self
        for path in _URL_PATHS:
            urls.url_paths.setdefault(path, LambdaResponse.dispatch)
        for name, method in _RESPONSE_METHODS.items():
            self._patches.set(LambdaResponse, name, method)
        self._config = DurableConfigPatch().install()
        return self

    def uninstall(self) -> None:
        from moto.awslambda import urls

        self._patches.restore()
        if self._config is not None:
            self._config.uninstall()
            self._config = None
        for path in _URL_PATHS:
            urls.url_paths.pop(path, None)
        if DurableExecutionService._installed is self:
            DurableExecutionService._installed = None


class DurableConfigPatch:
    """Keeps CreateFunction's DurableConfig on moto's function (moto drops it) and
    returns it from GetFunctionConfiguration. Counted: the `Sandbox` installs it for
    its whole run (functions are deployed before the delivery starts), a
    `DurableExecutionService` too (for a bare `mock_aws`)."""

    _refs = 0
    _patches = Patches()
    _lock = threading.Lock()

    def install(self) -> DurableConfigPatch:
        from moto.awslambda.models import LambdaFunction

        with DurableConfigPatch._lock:
            DurableConfigPatch._refs += 1
            if DurableConfigPatch._refs > 1:
                return self
            original_init = LambdaFunction.__init__
            original_configuration = LambdaFunction.get_configuration

            def init(
                function: Any, account_id: str, spec: dict[str, Any], *a: Any, **kw: Any
            ) -> None:
                original_init(function, account_id, spec, *a, **kw)
                function.durable_config = spec.get("DurableConfig") or None

            def get_configuration(function: Any, *a: Any, **kw: Any) -> dict[str, Any]:
                configuration = dict(original_configuration(function, *a, **kw))
                if durable_config(function):
                    configuration["DurableConfig"] = durable_config(function)
                return configuration

            DurableConfigPatch._patches.set(LambdaFunction, "__init__", init)
            DurableConfigPatch._patches.set(LambdaFunction, "get_configuration", get_configuration)
        return self

    def uninstall(self) -> None:
        with DurableConfigPatch._lock:
            DurableConfigPatch._refs -= 1
            if DurableConfigPatch._refs == 0:
                DurableConfigPatch._patches.restore()

    def __enter__(self) -> DurableConfigPatch:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


# moto routes by URL to LambdaResponse.dispatch, which finds the operation from
# botocore's model and calls the method of its name after its IAM check.
_URL_PATHS = (
    r"{0}/(?P<api_version>[^/]+)/durable-executions/(?P<durable_execution_arn>[^/]+)/?$",
    r"{0}/(?P<api_version>[^/]+)/durable-executions/(?P<durable_execution_arn>[^/]+)/(?P<verb>checkpoint|state|stop|history)$",
    r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[^/]+)/durable-executions$",
)


def _served(call: Callable[[Any, DurableExecutionService], dict[str, Any]]) -> Any:
    def method(response: Any) -> tuple[int, dict[str, str], str]:
        service = DurableExecutionService._installed
        try:
            if service is None:
                raise DurableServiceError(
                    "ServiceException", "durable executions need the sandbox's delivery", 500
                )
            return 200, {}, json.dumps(call(response, service))
        except DurableServiceError as error:
            from moto.core.exceptions import JsonRESTError

            raised = JsonRESTError(error.code, error.message)
            raised.code = error.status
            raise raised from None

    return method


def _path_arn(response: Any) -> str:
    # /<version>/durable-executions/<url-encoded ARN>[/verb]
    return unquote(response.path.split("/")[3])


def _body(response: Any) -> dict[str, Any]:
    return json.loads(response.body) if response.body else {}


def _query(response: Any, name: str) -> str | None:
    values = response.querystring.get(name)
    return str(values[0]) if values else None


_RESPONSE_METHODS: dict[str, Any] = {
    "checkpoint_durable_execution": _served(
        lambda r, s: s.checkpoint(
            _path_arn(r), _body(r).get("CheckpointToken", ""), _body(r).get("Updates") or []
        )
    ),
    "get_durable_execution_state": _served(
        lambda r, s: s.state(
            _path_arn(r),
            _query(r, "CheckpointToken") or "",
            _query(r, "Marker"),
            int(_query(r, "MaxItems") or 0) or None,
        )
    ),
    "get_durable_execution": _served(lambda r, s: s.describe(_path_arn(r))),
    # StopDurableExecution's body is the ErrorObject itself (its `payload` member).
    "stop_durable_execution": _served(lambda r, s: s.stop(_path_arn(r), _body(r) or None)),
    "list_durable_executions_by_function": _served(
        lambda r, s: s.list_by_function(
            _function_arn(r, unquote(r.path.split("/")[3])),
            list(r.querystring.get("Statuses") or []),
        )
    ),
}


def _function_arn(response: Any, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:lambda:{response.region}:{response.current_account}:function:{name}"
