"""Orchestrated sagas and fork/join checks as Amazon States Language (ASL), as data.

Pure functions: they return ASL definitions as dicts whose Lambda ARNs may be Pulumi
Outputs; `pulumi_eventcraft.state_machine.StateMachine` renders and deploys them. Nothing here
creates a resource, so a definition can be inspected, tested and executed (moto's ASL
interpreter) without a deployment.

A saga (`saga_definition`) runs its steps in order. Each step is a Lambda task that
retries only *transient* errors with capped exponential backoff and full jitter: the
Lambda service's own faults and throttling (`TRANSIENT_LAMBDA_ERRORS`), plus the
handler's own transient errors named in `SagaStep.transient_errors` (e.g. a
provider that did not answer, an optimistic-concurrency conflict). A business failure
(the handler raising e.g. `BookingRejected`) is never retried: retrying cannot change a
decision, it only repeats it. Any error left after the retries is caught (`$.error`)
and runs the compensations, in reverse order, then ends in a Fail state with Error
`SagaFailed`.

A step whose task may simply run again (`SagaStep.idempotent=True`: a second attempt
finds what the first one did and returns it) also retries a lost reply
(`TIMEOUT_ERRORS`: the task or the function timed out, possibly after it committed)
instead of compensating it: undoing work that was done, only because its answer was
lost, would e.g. refund an order that shipped. Only once those retries are spent does
the timeout go to the compensations, which must then check what really happened.

Which compensations run: by default (`SagaStep.compensate_own_failure=True`) a failed
step's OWN compensation runs first, then those of the steps completed before it. A step
can fail after it committed (its Lambda timed out after the write, the response was
lost, a business failure was recorded before it was raised), and only its own
compensation can undo that; compensations must therefore be idempotent and accept
"nothing to undo", which the retries of a compensation require anyway. With
`compensate_own_failure=False` a failed step is trusted to have done nothing and only
the earlier steps are undone (except after a timeout, see below).

The states of a saga with steps flight, hotel, car (flight and hotel with compensations):

    flight -> hotel -> car -> SagaSucceeded
    error in flight:  CompensateFlight -> Compensated
    error in hotel:   CompensateHotel -> CompensateFlight -> Compensated
    error in car:     CompensateHotel -> CompensateFlight -> Compensated
    Compensated (a Choice): CompensationFailed if a compensation gave up, else SagaFailed

One compensation chain is shared: a failing step enters it at its own compensation (or,
without one, at the compensation of the latest completed step that has one). Refinements:
- A step that timed out (`TIMEOUT_ERRORS`, after its retries if it is idempotent) may
  still have taken effect, so even with `compensate_own_failure=False` it enters the
  chain at its OWN compensation, and compensations should leave a tombstone so that a
  late step is refused.
- Steps retry transient errors (`STEP_RETRY`: the Lambda service's faults and a
  throttled or failed AWS call in the handler, for about 12 minutes) rather than fail
  the saga over an outage; anything else the handler raises is a business failure.
- Compensations retry every error (`COMPENSATION_RETRY`, 20 retries, about an hour):
  giving up leaves the system inconsistent. One that still fails is recorded under
  `$.compensationErrors.<step>` and the chain goes on (undo as much as possible); the
  execution then fails with `SagaCompensationFailed` instead of `SagaFailed`, which
  the state machine's ExecutionsFailed alarm reports for an operator.
- Outcome hooks: `on_failure` (a Lambda ARN) runs after the compensations, before the
  execution fails (state `RecordFailure`), and `on_success` after the last step (state
  `RecordSuccess`); each gets the whole state (the input, `$.results`, `$.error`,
  `$.compensations`) and its result goes to `$.outcome`. They record the saga's final
  state where the steps could not, e.g. CANCELLED when the first step exhausted its
  retries and no step ever reported. Hooks retry every error like compensations; a
  hook that still fails is recorded under `$.outcomeError` and the execution fails
  with `SagaOutcomeNotRecorded` (unless a compensation gave up: that is reported first).

Tasks use the plain Lambda ARN as `Resource` (not `arn:aws:states:::lambda:invoke`):
the state input is the event, the handler's return value is the result as is (no
`Payload` wrapper to select), the error names are the same (`errorType` of the handler,
`Lambda.*` for the service), and moto's interpreter runs both forms.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import pulumi

# Raised by the Lambda service or SDK around an invocation (throttling, service
# faults), never by handler code: retrying them cannot repeat a business decision.
# The set AWS generates for Lambda tasks. The timeouts are not in it: a step that
# timed out may have taken effect, so only an idempotent step repeats it.
TRANSIENT_LAMBDA_ERRORS: Final[tuple[str, ...]] = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)

# Raised inside a handler by the AWS SDK (boto3's exception class names, the Lambda
# `errorType`) once the SDK's own retries are spent: the call was throttled or the service
# failed, and nothing was decided. Only modelled errors have a class of their own, and
# `LimitExceededException` is left out: some services mean a hard limit by it.
AWS_SDK_TRANSIENT_ERRORS: Final[tuple[str, ...]] = (
    "ProvisionedThroughputExceededException",  # DynamoDB, Kinesis
    "ThrottlingException",  # DynamoDB, EventBridge, Kinesis, Logs, Scheduler
    "RequestLimitExceeded",  # DynamoDB (account throughput)
    "TransactionInProgressException",  # DynamoDB (same ClientRequestToken in flight)
    "TooManyRequestsException",  # Lambda, Schemas
    "RequestThrottled",  # SQS
    "KMSThrottlingException",  # Kinesis (its key)
    "InternalServerError",  # DynamoDB 500
    "InternalException",  # EventBridge 500
    "InternalServerException",  # Logs, Scheduler
    "ServiceException",  # Lambda 500 (a handler's own Invoke)
    "ServiceUnavailableException",  # Logs, Schemas
)

# What a step retries by default: the Lambda service's faults and the AWS SDK's.
TRANSIENT_ERRORS: Final[tuple[str, ...]] = (*TRANSIENT_LAMBDA_ERRORS, *AWS_SDK_TRANSIENT_ERRORS)

# A lost reply: the task may have run to the end and committed. `States.Timeout`: the
# task's TimeoutSeconds passed; `Sandbox.Timedout` (reported as `Lambda.Unknown` by older
# runtimes, which also report running out of memory so): the function's own timeout;
# `Lambda.ClientExecutionTimeoutException`: the Invoke call itself timed out.
TIMEOUT_ERRORS: Final[tuple[str, ...]] = (
    "States.Timeout",
    "Sandbox.Timedout",
    "Lambda.Unknown",
    "Lambda.ClientExecutionTimeoutException",
)

# A task that timed out may still complete: its own compensation must run too.
AMBIGUOUS_ERRORS: Final[tuple[str, ...]] = TIMEOUT_ERRORS

SUCCEEDED_STATE: Final = "SagaSucceeded"
FAILED_STATE: Final = "SagaFailed"
COMPENSATION_FAILED_STATE: Final = "CompensationFailed"
OUTCOME_STATE: Final = "Compensated"
FAILED_ERROR: Final = "SagaFailed"
COMPENSATION_FAILED_ERROR: Final = "SagaCompensationFailed"
FAILURE_HOOK_STATE: Final = "RecordFailure"
SUCCESS_HOOK_STATE: Final = "RecordSuccess"
OUTCOME_NOT_RECORDED_STATE: Final = "OutcomeNotRecorded"
OUTCOME_NOT_RECORDED_ERROR: Final = "SagaOutcomeNotRecorded"
_RESERVED_STATES: Final = frozenset(
    {
        SUCCEEDED_STATE,
        FAILED_STATE,
        COMPENSATION_FAILED_STATE,
        OUTCOME_STATE,
        FAILURE_HOOK_STATE,
        SUCCESS_HOOK_STATE,
        OUTCOME_NOT_RECORDED_STATE,
    }
)

MAX_STATE_NAME = 80  # ASL's limit on state names
COMPENSATION_PREFIX: Final = "Compensate"
# Names become state names and JSONPath keys ($.results.<name>): letters, digits and
# '_' only, so the path needs no quoting, starting with a letter.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_STEP_NAME = MAX_STATE_NAME - len(COMPENSATION_PREFIX)
_LAMBDA_ARN = re.compile(
    r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]+)?$"
)
_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MAX_RETRY_WAIT = 99999999  # ASL's limit on IntervalSeconds / MaxDelaySeconds


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """An ASL Retrier: which errors to retry and how long to wait between attempts.

    errors: error names to retry (default: the transient Lambda errors only).
        `States.ALL` must be alone: it matches everything, business failures included.
    interval_seconds: wait before the first retry, in seconds (default 1; ASL's minimum).
    max_attempts: retries after the first attempt (default 3; 0 disables the retrier).
    backoff_rate: multiplier of the wait after each retry (default 2.0, >= 1.0).
    max_delay_seconds: cap on any one wait, in seconds (default 30).
    jitter: "FULL" (default) waits a random time in [0, wait] so that many executions
        failing together do not retry together; "NONE" waits exactly.
    """

    errors: Sequence[str] = TRANSIENT_LAMBDA_ERRORS
    interval_seconds: int = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: int = 30
    jitter: Literal["FULL", "NONE"] = "FULL"

    def __post_init__(self) -> None:
        if isinstance(self.errors, str) or not self.errors:
            raise ValueError(
                f"RetryPolicy.errors must be a non-empty list of error names, got {self.errors!r}"
            )
        if "States.ALL" in self.errors and len(self.errors) > 1:
            raise ValueError(
                "RetryPolicy.errors: 'States.ALL' must be the only error name of its retrier "
                f"(ASL rule), got {list(self.errors)!r}"
            )
        if not 1 <= self.interval_seconds <= _MAX_RETRY_WAIT:
            raise ValueError(
                f"RetryPolicy.interval_seconds must be 1..{_MAX_RETRY_WAIT} seconds, "
                f"got {self.interval_seconds}"
            )
        if not 0 <= self.max_attempts <= 99999999:
            raise ValueError(
                f"RetryPolicy.max_attempts must be 0..99999999 (retries after the first "
                f"attempt), got {self.max_attempts}"
            )
        if self.backoff_rate < 1.0:
            raise ValueError(f"RetryPolicy.backoff_rate must be >= 1.0, got {self.backoff_rate}")
        if not self.interval_seconds <= self.max_delay_seconds <= _MAX_RETRY_WAIT:
            raise ValueError(
                "RetryPolicy.max_delay_seconds must be >= interval_seconds "
                f"({self.interval_seconds}) and <= {_MAX_RETRY_WAIT}, got {self.max_delay_seconds}"
            )
        if self.jitter not in ("FULL", "NONE"):
            raise ValueError(f"RetryPolicy.jitter must be 'FULL' or 'NONE', got {self.jitter!r}")

    def to_asl(self) -> dict[str, Any]:
        """The Retrier object of this policy."""
        return {
            "ErrorEquals": list(self.errors),
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
            "MaxDelaySeconds": self.max_delay_seconds,
            "JitterStrategy": self.jitter,
        }

    def waits(self) -> list[float]:
        """The longest wait before each retry, in seconds (before jitter shortens it)."""
        return [
            min(self.interval_seconds * self.backoff_rate**i, float(self.max_delay_seconds))
            for i in range(self.max_attempts)
        ]


# A step's default retrier: transient errors only, patient enough to ride out minutes
# of throttling or an outage (waits up to 1, 2, 4 ... 64 s, then 120 s: 12 retries over
# at most about 12 minutes, full jitter) rather than fail the saga over them. A business
# failure (anything else the handler raises) is not retried.
STEP_RETRY: Final = RetryPolicy(errors=TRANSIENT_ERRORS, max_attempts=12, max_delay_seconds=120)

# Compensations retry every error, for longer: an undo that gives up leaves the system
# inconsistent, and compensations are idempotent, so repeating them is safe. 20 retries,
# waits up to 1, 2, 4 ... 256 s then 300 s: they outlast an hour of throttling or outage.
COMPENSATION_RETRY: Final = RetryPolicy(
    errors=("States.ALL",), max_attempts=20, max_delay_seconds=300
)


@dataclass(frozen=True, kw_only=True)
class SagaStep:
    """One step of a saga: a Lambda task and the Lambda that undoes it.

    name: the step's state name and result key: a letter then letters, digits or '_',
        at most 70 characters (ASL allows 80; its compensation state is
        `Compensate<Name>`).
    task: the Lambda function ARN that performs the step (an Output is fine).
    compensation: the Lambda function ARN that undoes it; None (default) for a step
        with nothing to undo (e.g. a read or a notification).
    retry: the step's retrier (default `STEP_RETRY`: `TRANSIENT_ERRORS`, the Lambda
        service's and the AWS SDK's (a throttled or failed AWS call in the handler), 12
        retries from 1 s, backoff 2.0, capped at 120 s, full jitter: about 12 minutes).
    transient_errors: error names the step's HANDLER raises for a transient condition
        (its exception class names, e.g. "ProviderUnavailable",
        "ConcurrentUpdateError"); default none. They are added to `retry`'s errors, so
        the step retries them with the same backoff; anything else the handler raises
        is a business failure and is not retried. `States.*` names are refused here
        (give them in `retry.errors`), as is a `retry` that retries nothing or already
        retries `States.ALL`.
    idempotent: False (default). True: running the task again is safe (a second attempt
        finds what an earlier one did and returns it), so a lost reply (`TIMEOUT_ERRORS`)
        is retried with `retry`'s backoff instead of compensated; compensated only once
        those retries are spent. Needs a `retry` with attempts that does not already
        retry `States.ALL`.
    compensate_own_failure: True (default): when this step fails (after its retries),
        its OWN compensation runs first, then the earlier steps' (see the module doc):
        a step may fail after it committed, and its compensation is safe when there is
        nothing to undo. False: only the earlier steps are undone (a timeout still
        undoes this one). Without a compensation it has no effect.
    compensation_retry: the compensation's retrier (default `COMPENSATION_RETRY`: every
        error, 20 retries over up to about an hour).
    result_path: where the step's result goes in the state (default
        `$.results.<name>`); a plain `$.a.b` path.
    timeout_seconds: the task's TimeoutSeconds (default None: bounded by the function's
        own timeout). A step that times out is retried if `idempotent`, then
        compensated itself (see module doc).
    """

    name: str
    task: pulumi.Input[str]
    compensation: pulumi.Input[str] | None = None
    retry: RetryPolicy = STEP_RETRY
    transient_errors: Sequence[str] = ()
    idempotent: bool = False
    compensate_own_failure: bool = True
    compensation_retry: RetryPolicy = COMPENSATION_RETRY
    result_path: str = ""
    timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        _check_name("SagaStep.name", self.name, MAX_STEP_NAME)
        if not self.result_path:
            object.__setattr__(self, "result_path", f"$.results.{self.name}")
        _check_path(f"SagaStep {self.name!r}: result_path", self.result_path)
        if self.result_path == "$":
            raise ValueError(
                f"SagaStep {self.name!r}: result_path '$' would replace the saga's state "
                "(its input and earlier results); use a path like '$.results.<name>'"
            )
        _check_lambda_arn(f"SagaStep {self.name!r}: task", self.task)
        if self.compensation is not None:
            _check_lambda_arn(f"SagaStep {self.name!r}: compensation", self.compensation)
        if self.timeout_seconds is not None and not 1 <= self.timeout_seconds <= 99999999:
            raise ValueError(
                f"SagaStep {self.name!r}: timeout_seconds must be 1..99999999 seconds or "
                f"None, got {self.timeout_seconds}"
            )
        if self.transient_errors:
            # The step's retrier is the one place errors are retried: merge them in once,
            # so `retry.to_asl()` is what the task really does.
            object.__setattr__(self, "retry", self._with_transient_errors())
        if self.idempotent:
            object.__setattr__(self, "retry", self._with_timeouts())

    def _with_transient_errors(self) -> RetryPolicy:
        where = f"SagaStep {self.name!r}: transient_errors"
        errors = self.transient_errors
        if isinstance(errors, str):
            raise ValueError(f"{where} must be a list of error names, not a str ({errors!r})")
        if self.retry.max_attempts == 0:
            raise ValueError(
                f"{where} are retried by the step's retrier, but retry.max_attempts is 0 "
                "(no retries): give the retry policy attempts or drop transient_errors"
            )
        if "States.ALL" in self.retry.errors:
            raise ValueError(
                f"{where}: retry already retries 'States.ALL' (every error); drop "
                "transient_errors or retry only the transient errors"
            )
        seen = set(self.retry.errors)
        for error in errors:
            if not isinstance(error, str) or not error.strip() or error != error.strip():
                raise ValueError(f"{where}: {error!r} is not an error name")
            if error.startswith("States."):
                raise ValueError(
                    f"{where}: {error!r} is a Step Functions error, not one a handler "
                    "raises; put it in retry=RetryPolicy(errors=[...]) if it is transient"
                )
            if error in seen:
                raise ValueError(f"{where}: {error!r} is listed twice (or already in retry)")
            seen.add(error)
        return dataclasses.replace(self.retry, errors=(*self.retry.errors, *errors))

    def _with_timeouts(self) -> RetryPolicy:
        where = f"SagaStep {self.name!r}: idempotent"
        if self.retry.max_attempts == 0:
            raise ValueError(
                f"{where} steps retry a timed-out attempt, but retry.max_attempts is 0 (no "
                "retries): give the retry policy attempts or set idempotent=False"
            )
        if "States.ALL" in self.retry.errors:
            raise ValueError(
                f"{where}: retry already retries 'States.ALL' (every error, timeouts "
                "included); drop idempotent or retry only the transient errors"
            )
        missing = [e for e in TIMEOUT_ERRORS if e not in self.retry.errors]
        return dataclasses.replace(self.retry, errors=(*self.retry.errors, *missing))

    @property
    def compensation_state(self) -> str:
        """The name of this step's compensation state."""
        return f"{COMPENSATION_PREFIX}{self.name[:1].upper()}{self.name[1:]}"

    @property
    def compensates_itself(self) -> bool:
        """Whether any failure of this step runs its own compensation first."""
        return self.compensation is not None and self.compensate_own_failure


def saga_definition(
    steps: Sequence[SagaStep],
    *,
    comment: str = "Saga: each step in order; on failure, undo the completed steps.",
    fail_cause: str | None = None,
    on_failure: pulumi.Input[str] | None = None,
    on_success: pulumi.Input[str] | None = None,
    hook_retry: RetryPolicy = COMPENSATION_RETRY,
) -> dict[str, Any]:
    """The ASL definition of a saga of `steps` (see the module doc for its shape).

    comment: the definition's Comment.
    fail_cause: the Cause of the final Fail state. None (default) takes it from the
        caught error (`CausePath: $.error.Cause`, the handler's error message); a string
        is used as is, e.g. to keep handler messages out of the execution's status.
    on_failure: None (default) or a Lambda ARN run once the compensations are done,
        before the execution fails (state `RecordFailure`, result at `$.outcome`): it
        records the saga's final state (e.g. a function that stores the outcome).
    on_success: None (default) or a Lambda ARN run after the last step (state
        `RecordSuccess`, result at `$.outcome`).
    hook_retry: the hooks' retrier (default `COMPENSATION_RETRY`: every error, 20 retries;
        hooks record an outcome, so they must be idempotent).
    Raises ValueError for no steps, duplicate names, a name that collides with the saga's
    own states (SagaSucceeded, SagaFailed, CompensationFailed, Compensated,
    RecordFailure, RecordSuccess, OutcomeNotRecorded) or a hook that is not a Lambda ARN.
    """
    _check_steps(steps)
    if fail_cause is not None and not fail_cause.strip():
        raise ValueError("saga_definition: fail_cause must be None or a non-empty string")
    if on_failure is not None:
        _check_lambda_arn("saga_definition: on_failure", on_failure)
    if on_success is not None:
        _check_lambda_arn("saga_definition: on_success", on_success)

    # Where every failure path ends up once the compensations are done.
    last_resort = FAILURE_HOOK_STATE if on_failure is not None else FAILED_STATE
    compensated = [s for s in steps if s.compensation is not None]
    states: dict[str, Any] = {}
    for i, step in enumerate(steps):
        # Where a failure of this step enters the compensation chain: at its own
        # compensation (compensate_own_failure, or a timeout), else at the latest step
        # before it with a compensation.
        before = [s.compensation_state for s in steps[:i] if s.compensation is not None]
        earlier = before[-1] if before else last_resort
        if i + 1 < len(steps):
            following = steps[i + 1].name
        else:
            following = SUCCESS_HOOK_STATE if on_success is not None else SUCCEEDED_STATE
        states[step.name] = _step_task(step, following, earlier)
    # The compensation chain, latest step first, then the outcome.
    after_chain = FAILURE_HOOK_STATE if on_failure is not None else OUTCOME_STATE
    chain = [s.compensation_state for s in reversed(compensated)] + [after_chain]
    for step, following in zip(reversed(compensated), chain[1:], strict=True):
        states[step.compensation_state] = _compensation_task(step, following)

    if on_success is not None:
        states[SUCCESS_HOOK_STATE] = _hook_task(
            on_success,
            "Record the outcome of the saga that succeeded",
            hook_retry,
            following=SUCCEEDED_STATE,
            on_error=OUTCOME_NOT_RECORDED_STATE,
        )
    if on_failure is not None:
        # Both ways out of the hook go to the outcome Choice, which fails louder when
        # the hook (or a compensation) gave up.
        states[FAILURE_HOOK_STATE] = _hook_task(
            on_failure,
            "Record the outcome of the saga that failed, once its compensations ran",
            hook_retry,
            following=OUTCOME_STATE,
            on_error=OUTCOME_STATE,
        )

    states.update(
        _end_states(
            fail_cause,
            compensations=bool(compensated),
            on_failure=on_failure is not None,
            on_success=on_success is not None,
        )
    )
    return {"Comment": comment, "StartAt": steps[0].name, "States": states}


def _end_states(
    fail_cause: str | None, *, compensations: bool, on_failure: bool, on_success: bool
) -> dict[str, Any]:
    """SagaSucceeded, SagaFailed and, as needed, the outcome Choice and its Fail states."""
    states: dict[str, Any] = {}
    states[SUCCEEDED_STATE] = {"Type": "Succeed"}
    failed: dict[str, Any] = {"Type": "Fail", "Error": FAILED_ERROR}
    if fail_cause is None:
        failed["CausePath"] = "$.error.Cause"
    else:
        failed["Cause"] = fail_cause
    states[FAILED_STATE] = failed
    choices: list[dict[str, Any]] = []
    if compensations:
        choices.append(
            {
                "Variable": "$.compensationErrors",
                "IsPresent": True,
                "Next": COMPENSATION_FAILED_STATE,
            }
        )
        states[COMPENSATION_FAILED_STATE] = {
            "Type": "Fail",
            "Error": COMPENSATION_FAILED_ERROR,
            "Cause": (
                "a compensation still failed after its retries: the saga is only partly "
                "undone; see $.compensationErrors in the execution's last state"
            ),
        }
    if on_failure:
        choices.append(
            {"Variable": "$.outcomeError", "IsPresent": True, "Next": OUTCOME_NOT_RECORDED_STATE}
        )
    if on_failure or on_success:
        states[OUTCOME_NOT_RECORDED_STATE] = {
            "Type": "Fail",
            "Error": OUTCOME_NOT_RECORDED_ERROR,
            "Cause": (
                "the saga's outcome hook still failed after its retries: its final state "
                "was not recorded; see $.outcomeError in the execution's last state"
            ),
        }
    if choices:
        states[OUTCOME_STATE] = {
            "Type": "Choice",
            "Comment": (
                "Fail louder when a compensation gave up after its retries"
                if not on_failure
                else "Fail louder when a compensation or the outcome hook gave up"
            ),
            "Choices": choices,
            "Default": FAILED_STATE,
        }
    return states


def _step_task(step: SagaStep, following: str, earlier: str) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Comment": f"Saga step {step.name}",
        "Resource": step.task,
        "ResultPath": step.result_path,
    }
    if step.timeout_seconds is not None:
        task["TimeoutSeconds"] = step.timeout_seconds
    if step.retry.max_attempts > 0:
        task["Retry"] = [step.retry.to_asl()]
    catches = []
    if step.compensates_itself:
        # Any failure may have committed before it surfaced: undo this step too.
        catches.append(
            {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.error",
                "Next": step.compensation_state,
            }
        )
    else:
        if step.compensation is not None:
            catches.append(
                {
                    "ErrorEquals": list(AMBIGUOUS_ERRORS),
                    "ResultPath": "$.error",
                    "Next": step.compensation_state,
                }
            )
        catches.append({"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": earlier})
    task["Catch"] = catches
    task["Next"] = following
    return task


def _compensation_task(step: SagaStep, following: str) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Comment": f"Undo saga step {step.name}",
        "Resource": step.compensation,
        "ResultPath": f"$.compensations.{step.name}",
    }
    if step.compensation_retry.max_attempts > 0:
        task["Retry"] = [step.compensation_retry.to_asl()]
    # Give up on this one, record why, and still undo the others.
    task["Catch"] = [
        {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": f"$.compensationErrors.{step.name}",
            "Next": following,
        }
    ]
    task["Next"] = following
    return task


def _hook_task(
    resource: pulumi.Input[str], comment: str, retry: RetryPolicy, *, following: str, on_error: str
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Comment": comment,
        "Resource": resource,
        "ResultPath": "$.outcome",
    }
    if retry.max_attempts > 0:
        task["Retry"] = [retry.to_asl()]
    task["Catch"] = [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.outcomeError", "Next": on_error}
    ]
    task["Next"] = following
    return task


def _check_steps(steps: Sequence[SagaStep]) -> None:
    """At least one step; state names unique and not the saga's own; result paths unique."""
    if isinstance(steps, SagaStep) or not steps:
        raise ValueError("saga_definition: steps must be a non-empty sequence of SagaStep")
    names: dict[str, str] = {}
    for step in steps:
        for state, what in ((step.name, "step"), (step.compensation_state, "compensation")):
            if state in _RESERVED_STATES:
                raise ValueError(
                    f"saga_definition: {what} state name {state!r} is reserved for the saga's "
                    f"own states {sorted(_RESERVED_STATES)}; rename step {step.name!r}"
                )
            if state in names:
                raise ValueError(
                    f"saga_definition: duplicate state name {state!r} ({what} of step "
                    f"{step.name!r} and {names[state]}); step names must be unique"
                )
            names[state] = f"{what} of step {step.name!r}"
    paths = [s.result_path for s in steps]
    if len(set(paths)) != len(paths):
        raise ValueError(f"saga_definition: result paths must be unique, got {paths}")


def function_arns(
    steps: Sequence[SagaStep],
    *,
    on_failure: pulumi.Input[str] | None = None,
    on_success: pulumi.Input[str] | None = None,
) -> list[pulumi.Input[str]]:
    """Every Lambda ARN the saga invokes (tasks, then compensations, then the hooks given
    to `saga_definition`): the `task_function_arns` its StateMachine's role may invoke."""
    arns: list[pulumi.Input[str]] = [s.task for s in steps]
    arns.extend(s.compensation for s in steps if s.compensation is not None)
    arns.extend(hook for hook in (on_failure, on_success) if hook is not None)
    return arns


def parallel_checks(
    branches: Mapping[str, pulumi.Input[str]],
    aggregate: pulumi.Input[str],
    result_path: str = "$.checks",
    *,
    name: str = "Checks",
    aggregate_name: str = "Aggregate",
    aggregate_result_path: str = "$",
    retry: RetryPolicy | None = None,
    comment: str = "Fork/join: run the checks in parallel, then aggregate their results.",
) -> dict[str, Any]:
    """The ASL definition of a fork/join: one Parallel state, then an aggregate task.

    branches: branch name -> Lambda ARN, e.g. {"address": ..., "credit": ...}. Each
        branch gets the state input; the Parallel state gathers their results into
        one object keyed by branch name at `result_path` (default `$.checks`), so the
        aggregate reads `$.checks.address` rather than positions in an array.
    aggregate: the Lambda ARN that combines them; its result goes to
        `aggregate_result_path` (default `$`: it becomes the execution's output).
    name / aggregate_name: the state names (defaults "Checks", "Aggregate").
    retry: the retrier of every task (default `STEP_RETRY`: transient errors only).
    A branch that still fails fails the Parallel state and the execution (nothing to
    compensate: checks only read).
    """
    policy = retry if retry is not None else STEP_RETRY
    if not branches:
        raise ValueError("parallel_checks: branches must map at least one name to a Lambda ARN")
    for state_name, what in ((name, "name"), (aggregate_name, "aggregate_name")):
        _check_name(f"parallel_checks: {what}", state_name, MAX_STATE_NAME)
    if name == aggregate_name:
        raise ValueError(f"parallel_checks: name and aggregate_name must differ, both {name!r}")
    for branch, arn in branches.items():
        _check_name("parallel_checks: branch name", branch, MAX_STATE_NAME)
        _check_lambda_arn(f"parallel_checks: branch {branch!r}", arn)
    _check_lambda_arn("parallel_checks: aggregate", aggregate)
    _check_path("parallel_checks: result_path", result_path)
    _check_path("parallel_checks: aggregate_result_path", aggregate_result_path)

    def task(resource: pulumi.Input[str], **extra: Any) -> dict[str, Any]:
        state: dict[str, Any] = {"Type": "Task", "Resource": resource}
        if policy.max_attempts > 0:
            state["Retry"] = [policy.to_asl()]
        state.update(extra)
        return state

    parallel = {
        "Type": "Parallel",
        "Comment": "Fork: every check gets the same input",
        "Branches": [
            {"StartAt": branch, "States": {branch: task(arn, End=True)}}
            for branch, arn in branches.items()
        ],
        # Join: the branch outputs arrive as an array in branch order; name them.
        "ResultSelector": {f"{branch}.$": f"$[{i}]" for i, branch in enumerate(branches)},
        "ResultPath": result_path,
        "Next": aggregate_name,
    }
    return {
        "Comment": comment,
        "StartAt": name,
        "States": {
            name: parallel,
            aggregate_name: task(aggregate, ResultPath=aggregate_result_path, End=True),
        },
    }


def _check_name(what: str, value: str, max_length: int) -> None:
    if not isinstance(value, str) or not _NAME.match(value) or len(value) > max_length:
        raise ValueError(
            f"{what} must be 1-{max_length} characters: a letter, then letters, digits or "
            f"'_' (it becomes an ASL state name and a JSONPath key), got {value!r}"
        )


def _check_path(what: str, value: str) -> None:
    if not isinstance(value, str) or not _PATH.match(value):
        raise ValueError(f"{what} must be a JSONPath like '$.results.step', got {value!r}")


def _check_lambda_arn(what: str, value: Any) -> None:
    """Literal ARNs are checked now; Outputs are checked by StateMachine once known."""
    if isinstance(value, str) and not _LAMBDA_ARN.match(value):
        raise ValueError(
            f"{what} must be a Lambda function ARN "
            f"(arn:aws:lambda:<region>:<account>:function:<name>), got {value!r}"
        )
    if value is None:
        raise ValueError(f"{what} must be a Lambda function ARN, got None")
