"""What the rest of the sandbox sees of the Lambda runtime: results, the
`Invoker` and `Clock` protocols, the errors it raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# ------------------------------------------------------------------ the interface


@dataclass(frozen=True)
class InvocationResult:
    """The outcome of one invocation, as Lambda reports it.

    `status_code` is the Invoke API's: 200 when the function ran (whether it returned
    or raised), 429 when Lambda throttled the invocation, 5xx when Lambda itself
    failed; in the last two the function did not run (`refused`) and `error_type` is
    the API's error code (`TooManyRequestsException`, `ServiceException`)."""

    payload: Any  # the handler's return value (JSON-compatible) or None
    error_type: str | None  # e.g. "QuotaExceeded", "Sandbox.Timedout"; None on success
    error_message: str | None
    duration_ms: float
    logs: str
    status_code: int = 200

    @property
    def refused(self) -> bool:
        """Lambda did not run the function (throttled, or its own error): an
        asynchronous event or a stream batch is retried without using up an attempt."""
        return self.status_code != 200


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

    `time()` is seconds since the epoch, like `time.time()`. A clock that also has
    `advance(seconds)` (the sandbox's `VirtualClock`) is moved forward by every sleep
    of handler code. Timeouts and the context's remaining time do not read the clock:
    they count the handler's own elapsed time (`lambda_runtime.handler_time`). The
    handler's clock (`time.time()`, `datetime.now()`) is `time()` at the invocation's
    start plus that elapsed time (`lambda_runtime.handler_clock`).
    """

    def time(self) -> float: ...


class AdminIdentity(Protocol):
    """The deployer's administrator (`eventcraft_sandbox.moto_deploy.AdminCredentials` fits):
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
