"""Sagas as Lambda durable functions: steps and their compensations declared once, run
as checkpointed steps of the official SDK (`aws-durable-execution-sdk-python`).

    from aws_durable_execution_sdk_python import DurableContext, durable_execution
    from eventcraft.durable_saga import DurableSaga, SagaStep

    checkout = DurableSaga("checkout", [
        SagaStep("reserve", reserve_stock, compensate=release_stock),
        SagaStep("charge", charge_card, compensate=refund_card,
                 transient_errors=(ProviderBusy,)),
        SagaStep("ship", ship_parcel),
    ])

    @durable_execution
    def handler(event, context: DurableContext):
        return checkout.run(context, event)

    def charge_card(call: StepCall) -> dict:
        reservation = call.results["reserve"]          # earlier steps' results
        return payments.charge(..., idempotency_key=call.idempotency_key)

    def refund_card(call: StepCall) -> None:
        # call.result: what charge returned; None when charge itself failed for good
        # (after a charge was made, maybe): refund what the order was charged, if anything.
        payments.refund_order(call.input["order_id"], idempotency_key=call.idempotency_key)

The third saga style, beside choreography (events) and orchestration (Step Functions,
`pulumi_eventcraft.saga`), with the same outcomes:
- Steps run in order, each a `context.step` named after the step: its result is
  checkpointed, so a replay (the execution resumes after a wait, a retry, a crash)
  returns it without running the action again. Code outside the steps (this loop) runs
  again on every replay; it only decides, from the checkpoints, what comes next.
- A step retries its `transient_errors` and the AWS SDK's (`TransientAwsError`: a
  throttled call or a service's 5xx, once botocore's own retries are spent), `attempts`
  in all (STEP_ATTEMPTS: about 15 minutes of the SDK's capped exponential backoff with
  full jitter, so an outage of minutes fails no saga); any other error is a business
  failure, not retried: retrying cannot change a decision, it only repeats it. `retry=`
  takes a strategy of the SDK's instead.
- A step that fails for good (after its retries) runs its own compensation first (it
  may have failed after its effect: a charge made, then a throttled write; its
  compensation gets `call.result` None and must accept "nothing to undo"), then the
  compensations of the steps completed before it, latest first, each its own
  checkpointed step named `compensate-<step>`: after a crash mid-compensation the
  replay neither skips nor repeats a compensation that completed.
  `compensate_own_failure=False` trusts a failed step to have done nothing. The
  execution then ends FAILED with `SagaFailed` (the failed step, its error, what was
  compensated).
- Compensations retry every error (`COMPENSATION_ATTEMPTS` attempts, backoff capped at
  5 minutes: up to about 95 minutes of waits, half that on average with the jitter;
  `compensation_retry=` for more): giving up leaves the system inconsistent. One
  that still fails is recorded and the others still run (undo as much as possible); the
  execution then ends FAILED with `SagaCompensationFailed`, naming each compensation
  that gave up and its last error, for an operator. Never silently.
- `on_failure=` (the saga's failure hook) runs once the compensations are done, as a
  checkpointed step `on-failure` retried like them: it records the saga's final state
  where no step could (the Step Functions saga's `RecordFailure`).

Idempotency. A step runs at least once per attempt: Lambda may crash (or lose the
checkpoint of its result) after the action's effect, and the replay runs the action
again. Each action and compensation therefore gets `call.idempotency_key`, derived from
the execution's ARN, the saga and the step (`idempotency_key`): the same on every
attempt and replay of that step in that execution, different for another step, another
execution, and the step's compensation. Pass it to the downstream write (a conditional
put, a provider's Idempotency-Key) so the second run finds the first one's effect.
Powertools' `@idempotent` around a durable handler does not do this: it keys on the
invocation's event, which a durable replay changes (powertools-lambda-python#7762).

The SDK is imported when a saga runs, not with this module: it is the `durable` extra
(`pip install eventcraft[durable]`), which a durable function's deployment package
(its layer's requirements) must hold; the other handlers' layer goes without it.
Step results, the saga input and the return value must be JSON-serialisable (the SDK
checkpoints them as JSON).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NoReturn

if TYPE_CHECKING:
    from aws_durable_execution_sdk_python import DurableContext, StepContext
    from aws_durable_execution_sdk_python.config import StepConfig
    from aws_durable_execution_sdk_python.exceptions import DurableExecutionsError
    from aws_durable_execution_sdk_python.retries import RetryDecision
    from aws_durable_execution_sdk_python.types import LoggerInterface

RetryStrategy = Callable[[Exception, int], "RetryDecision"]
"""The SDK's retry strategy: (error, attempts made) -> retry or not, and when."""

Action = Callable[["StepCall"], Any]
"""A step's action or compensation: called with the `StepCall`, returns a JSON value."""

# A step name is its operation's name and a dictionary key: plain and short.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
COMPENSATION_PREFIX: Final = "compensate-"
ON_FAILURE_STEP: Final = "on-failure"
# A step's attempts for its transient errors, the first one included: from 5 s, doubling,
# capped at 5 minutes, full jitter: at most 5 + 10 + ... + 160 + 2 x 300 s (about 15
# minutes) of waits before the step fails for good.
STEP_ATTEMPTS: Final = 9
# What the AWS SDK raises for a throttled call or a service fault once botocore's own
# retries are spent (botocore ClientError codes): nothing was decided, retry later.
# `LimitExceededException` is left out: some services mean a hard limit by it.
AWS_TRANSIENT_ERROR_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "KMSThrottlingException",
        "SlowDown",
        "InternalServerError",
        "InternalException",
        "InternalFailure",
        "InternalServerException",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
# A compensation's attempts for any error: from 5 s, doubling, capped at 5 minutes, with
# full jitter: at most 5 + 10 + ... + 160 + 18 x 300 s (about 95 minutes) before it gives up.
COMPENSATION_ATTEMPTS: Final = 25
COMPENSATION_MAX_DELAY_SECONDS: Final = 300


def idempotency_key(execution_arn: str, saga: str, operation: str) -> str:
    """The key of one step (`operation` = its name) or compensation (`compensate-<name>`)
    of a saga in one durable execution: 64 hex digits, stable across replays."""
    material = "\n".join((execution_arn, saga, operation)).encode()
    return hashlib.sha256(material).hexdigest()


class _TransientAwsErrorType(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return is_transient_aws_error(instance)


class TransientAwsError(Exception, metaclass=_TransientAwsErrorType):
    """Not raised: a class for `isinstance` (and the SDK's `retryable_error_types`) that
    every botocore ClientError whose code is in AWS_TRANSIENT_ERROR_CODES is an
    instance of, and so is a timeout or a lost connection of botocore's."""


def is_transient_aws_error(error: object) -> bool:
    """Whether `error` is a throttled AWS call, a service fault or a network failure,
    raised once botocore's own retries were spent: the same call may succeed later."""
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        code = (response.get("Error") or {}).get("Code")
        return code in AWS_TRANSIENT_ERROR_CODES
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import ReadTimeoutError
    except ImportError:  # pragma: no cover - botocore is in every Lambda runtime
        return False
    return isinstance(error, ReadTimeoutError | BotoConnectionError)


@dataclass(frozen=True)
class StepFailure:
    """Why a saga is being compensated: the step that failed for good and its last error
    (`error_type` as the SDK records it: the exception's qualified class name)."""

    step: str
    error_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


@dataclass(frozen=True)
class StepCall:
    """What an action or a compensation is called with.

    saga, step: the saga's and the step's names.
    idempotency_key: the same on every attempt and replay of this action (or of this
        compensation) in this execution; pass it to downstream writes.
    input: the saga's input (what `DurableSaga.run` was given).
    results: the results of the steps completed before this one, by step name; for a
        compensation, every completed step's.
    attempt: 1 for the first attempt, then 2, 3... (retries, not replays of a crash).
    logger: the SDK's step logger (deduplicated across replays).
    result: for a compensation, the result of the action it undoes; None for an action,
        and for the compensation of the step that failed (it has no result).
    failure: for a compensation, the step failure being compensated; None for an action.
    """

    saga: str
    step: str
    idempotency_key: str
    input: Any
    results: Mapping[str, Any]
    attempt: int
    logger: LoggerInterface
    result: Any = None
    failure: StepFailure | None = None


@dataclass(frozen=True)
class SagaStep:
    """One step of a durable saga: its action and, if it has something to undo, the
    compensation.

    name: the step's operation name and result key: a letter, then letters, digits, '-'
        or '_', at most 64 characters.
    action: called with a `StepCall`; its return value (JSON) is the step's result.
    compensate: None (default) for a step with nothing to undo; else called with a
        `StepCall` whose `result` is the action's result. Must be idempotent (use
        `call.idempotency_key`) and accept "nothing to undo".
    transient_errors: exception classes the action raises for a transient condition;
        retried up to `attempts` attempts in all, as the AWS SDK's own transient errors
        (`TransientAwsError`) always are. Anything else is not retried.
    attempts: STEP_ATTEMPTS (default), the first attempt included.
    compensate_own_failure: True (default): when this step fails for good, its own
        compensation runs first (with `call.result` None), then the earlier steps'.
        False: the failed step is trusted to have done nothing.
    retry: an SDK retry strategy replacing `transient_errors`/`attempts` (e.g.
        `RetryPresets.transient()`).
    compensation_retry: an SDK retry strategy for the compensation; default every error,
        COMPENSATION_ATTEMPTS attempts.
    """

    name: str
    action: Action
    compensate: Action | None = None
    transient_errors: tuple[type[Exception], ...] = ()
    attempts: int = STEP_ATTEMPTS
    retry: RetryStrategy | None = field(default=None, repr=False)
    compensation_retry: RetryStrategy | None = field(default=None, repr=False)
    compensate_own_failure: bool = True

    def __post_init__(self) -> None:
        _check_name(f"SagaStep.name ({self.name!r})", self.name)
        where = f"SagaStep {self.name!r}"
        if not callable(self.action):
            raise TypeError(f"{where}: action must be callable, got {self.action!r}")
        if self.compensate is not None and not callable(self.compensate):
            raise TypeError(
                f"{where}: compensate must be callable or None, got {self.compensate!r}"
            )
        if not isinstance(self.transient_errors, tuple) or not all(
            isinstance(e, type) and issubclass(e, Exception) for e in self.transient_errors
        ):
            raise TypeError(
                f"{where}: transient_errors must be a tuple of exception classes, got "
                f"{self.transient_errors!r}"
            )
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"{where}: attempts must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"{where}: attempts must be >= 1 (the first attempt counts)")
        if self.retry is not None and (self.transient_errors or self.attempts != STEP_ATTEMPTS):
            raise ValueError(
                f"{where}: give either retry (an SDK retry strategy) or "
                "transient_errors/attempts, not both"
            )

    @property
    def compensation_name(self) -> str:
        """The compensation's operation name: `compensate-<name>`."""
        return COMPENSATION_PREFIX + self.name

    def step_config(self) -> StepConfig:
        """The SDK configuration of the action's step."""
        from aws_durable_execution_sdk_python.config import StepConfig
        from aws_durable_execution_sdk_python.retries import (
            RetryStrategyConfig,
            create_retry_strategy,
        )

        if self.retry is not None:
            return StepConfig(retry_strategy=self.retry)
        # Empty message patterns: only the listed types are retried (None would match all).
        retry = create_retry_strategy(
            RetryStrategyConfig(
                max_attempts=self.attempts,
                retryable_errors=[],
                retryable_error_types=[*self.transient_errors, TransientAwsError],
            )
        )
        return StepConfig(retry_strategy=retry)

    def compensation_config(self) -> StepConfig:
        """The SDK configuration of the compensation's step."""
        return _undo_config(self.compensation_retry)


class SagaFailed(Exception):
    """A step failed for good; the steps completed before it were compensated."""

    def __init__(self, saga: str, failure: StepFailure, compensated: Sequence[str]) -> None:
        self.saga = saga
        self.failure = failure
        self.compensated = tuple(compensated)
        undone = ", ".join(self.compensated) or "nothing to compensate"
        super().__init__(
            f"saga {saga!r}: step {failure.step!r} failed ({failure}); compensated, latest "
            f"first: {undone}"
        )


class SagaOutcomeNotRecorded(Exception):
    """The saga failed and was compensated, but its `on_failure` hook gave up after its
    retries: its final state was not recorded."""

    def __init__(
        self, saga: str, failure: StepFailure, compensated: Sequence[str], error: str
    ) -> None:
        self.saga = saga
        self.failure = failure
        self.compensated = tuple(compensated)
        self.error = error
        undone = ", ".join(self.compensated) or "nothing to compensate"
        super().__init__(
            f"saga {saga!r}: step {failure.step!r} failed ({failure}); compensated, latest "
            f"first: {undone}; but its failure hook gave up ({error}): the saga's final "
            "state was not recorded"
        )


class SagaCompensationFailed(Exception):
    """A step failed for good and at least one compensation gave up after its retries:
    the system is left inconsistent until an operator finishes the undo."""

    def __init__(
        self,
        saga: str,
        failure: StepFailure,
        compensated: Sequence[str],
        gave_up: Mapping[str, str],
    ) -> None:
        self.saga = saga
        self.failure = failure
        self.compensated = tuple(compensated)
        self.gave_up = dict(gave_up)
        failed = "; ".join(f"{step} ({error})" for step, error in self.gave_up.items())
        undone = ", ".join(self.compensated) or "none"
        super().__init__(
            f"saga {saga!r}: step {failure.step!r} failed ({failure}) and the compensation "
            f"of {failed} gave up after its retries: undo it by hand. Compensated, latest "
            f"first: {undone}"
        )


@dataclass(frozen=True)
class DurableSaga:
    """A saga run inside a durable function: `run(context, input)` (module doc).

    name: the saga's name (part of every idempotency key): a letter, then letters,
        digits, '-' or '_', at most 64 characters.
    steps: the steps, in order; at least one, names unique.
    on_failure: None (default) or an action run once the compensations are done, before
        the execution fails: it records the saga's final state where the steps could
        not (e.g. CANCELLED when the first step failed before it recorded anything). A
        checkpointed step named `on-failure`, called with a `StepCall` whose `failure`
        is the step failure, `results` the completed steps' and `result` None; retried
        like a compensation. One that gives up ends the execution with
        SagaOutcomeNotRecorded (unless a compensation gave up: that is reported).
    """

    name: str
    steps: Sequence[SagaStep]
    on_failure: Action | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_name(f"DurableSaga.name ({self.name!r})", self.name)
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise ValueError(f"DurableSaga {self.name!r}: steps must hold at least one SagaStep")
        for step in self.steps:
            if not isinstance(step, SagaStep):
                raise TypeError(f"DurableSaga {self.name!r}: steps must be SagaSteps, got {step!r}")
        if self.on_failure is not None and not callable(self.on_failure):
            raise TypeError(
                f"DurableSaga {self.name!r}: on_failure must be callable or None, got "
                f"{self.on_failure!r}"
            )
        names = [s.name for s in self.steps]
        if ON_FAILURE_STEP in names:
            raise ValueError(
                f"DurableSaga {self.name!r}: {ON_FAILURE_STEP!r} names the failure hook's "
                "step; name the step otherwise"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"DurableSaga {self.name!r}: step names must be unique (each names its "
                f"checkpoint); repeated: {', '.join(repeated)}"
            )

    def run(self, context: DurableContext, saga_input: Any = None) -> dict[str, Any]:
        """Run the steps in `context` (the durable handler's); return
        `{"status": "SUCCEEDED", "results": {step: result}}`, or raise `SagaFailed` /
        `SagaCompensationFailed` / `SagaOutcomeNotRecorded` after the compensations and
        the failure hook (the execution ends FAILED)."""
        arn = context.execution_context.durable_execution_arn
        results: dict[str, Any] = {}
        completed: list[SagaStep] = []
        for step in self.steps:
            attempt = self._attempt(step, arn, saga_input, results)
            try:
                results[step.name] = context.step(
                    attempt, name=step.name, config=step.step_config()
                )
            except _operation_errors() as error:
                failure = StepFailure(step.name, *_described(error))
                if step.compensate_own_failure:
                    completed.append(step)  # it may have failed after its effect
                break
            completed.append(step)
        else:
            return {"status": "SUCCEEDED", "results": results}
        self._compensate(context, arn, saga_input, results, completed, failure=failure)

    def _compensate(
        self,
        context: DurableContext,
        arn: str,
        saga_input: Any,
        results: Mapping[str, Any],
        completed: Sequence[SagaStep],
        *,
        failure: StepFailure,
    ) -> NoReturn:
        compensated: list[str] = []
        gave_up: dict[str, str] = {}
        for step in reversed(completed):
            if step.compensate is None:
                continue
            attempt = self._attempt(step, arn, saga_input, results, failure=failure)
            try:
                context.step(
                    attempt, name=step.compensation_name, config=step.compensation_config()
                )
            except _operation_errors() as error:
                gave_up[step.name] = "{}: {}".format(*_described(error))
                continue
            compensated.append(step.name)
        hook_error = self._record_failure(context, arn, saga_input, results, failure)
        if gave_up:
            raise SagaCompensationFailed(self.name, failure, compensated, gave_up)
        if hook_error is not None:
            raise SagaOutcomeNotRecorded(self.name, failure, compensated, hook_error)
        raise SagaFailed(self.name, failure, compensated)

    def _record_failure(
        self,
        context: DurableContext,
        arn: str,
        saga_input: Any,
        results: Mapping[str, Any],
        failure: StepFailure,
    ) -> str | None:
        """Run `on_failure` as a checkpointed step; its error if it gave up."""
        hook = self.on_failure
        if hook is None:
            return None
        run_hook = self._caller(
            hook,
            step=ON_FAILURE_STEP,
            operation=ON_FAILURE_STEP,
            arn=arn,
            saga_input=saga_input,
            results=results,
            failure=failure,
        )
        try:
            context.step(run_hook, name=ON_FAILURE_STEP, config=_undo_config(None))
        except _operation_errors() as error:
            return "{}: {}".format(*_described(error))
        return None

    def _attempt(
        self,
        step: SagaStep,
        arn: str,
        saga_input: Any,
        results: Mapping[str, Any],
        *,
        failure: StepFailure | None = None,
    ) -> Callable[[StepContext], Any]:
        """What `context.step` runs: the step's action, or with a `failure` its
        compensation, called with its key and this attempt's number and logger."""
        if failure is None:
            function, operation, result = step.action, step.name, None
        else:
            assert step.compensate is not None  # only steps with one are compensated
            function, operation, result = (
                step.compensate,
                step.compensation_name,
                results.get(step.name),  # None: the failed step's own compensation
            )
        return self._caller(
            function,
            step=step.name,
            operation=operation,
            arn=arn,
            saga_input=saga_input,
            results=results,
            result=result,
            failure=failure,
        )

    def _caller(
        self,
        function: Action,
        *,
        step: str,
        operation: str,
        arn: str,
        saga_input: Any,
        results: Mapping[str, Any],
        result: Any = None,
        failure: StepFailure | None = None,
    ) -> Callable[[StepContext], Any]:
        """`function` as `context.step` runs it: called with the `StepCall` of `step`, the
        key of `operation` in this execution and the attempt's number and logger."""
        key = idempotency_key(arn, self.name, operation)
        earlier = MappingProxyType(dict(results))  # a snapshot: later steps add theirs

        def run(step_context: StepContext) -> Any:
            return function(
                StepCall(
                    saga=self.name,
                    step=step,
                    idempotency_key=key,
                    input=saga_input,
                    results=earlier,
                    attempt=step_context.attempt,
                    logger=step_context.logger,
                    result=result,
                    failure=failure,
                )
            )

        return run


def _undo_config(retry: RetryStrategy | None) -> StepConfig:
    """A compensation's or the failure hook's step configuration: `retry`, or every
    error, COMPENSATION_ATTEMPTS attempts, waits capped at 5 minutes."""
    from aws_durable_execution_sdk_python.config import Duration, StepConfig
    from aws_durable_execution_sdk_python.retries import (
        RetryStrategyConfig,
        create_retry_strategy,
    )

    strategy = retry or create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=COMPENSATION_ATTEMPTS,
            max_delay=Duration.from_seconds(COMPENSATION_MAX_DELAY_SECONDS),
        )
    )
    return StepConfig(retry_strategy=strategy)


def _operation_errors() -> tuple[type[DurableExecutionsError], ...]:
    """What `context.step` raises once a step failed for good: StepError (the action's
    error after its retries) and SerDesError (a result that is not JSON)."""
    from aws_durable_execution_sdk_python.exceptions import SerDesError, StepError

    return (StepError, SerDesError)


def _described(error: DurableExecutionsError) -> tuple[str, str]:
    """(error type, message) of a failed step, as the SDK checkpointed them."""
    error_type = getattr(error, "error_type", None) or type(error).__name__
    message = getattr(error, "message", None) or str(error)
    return str(error_type), str(message)


def _check_name(field_name: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{field_name} is not allowed: use a letter, then letters, digits, '-' or '_', "
            "at most 64 characters"
        )
