"""`eventcraft.durable_saga` run by the official testing SDK's local runner
(`DurableFunctionTestRunner`: the real SDK against an in-memory checkpoint service, waits
and retry delays skipped on a virtual clock).

A three-step saga (reserve, charge, ship; ship has nothing to undo) writes to a fake
downstream service that keys every write by the caller's idempotency key, as a
conditional put would: the tests read what a user would see there (which effects
happened, in which order, how often) and the execution's final status, result or error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.lambda_service import InvocationStatus, OperationStatus
from aws_durable_execution_sdk_python_testing.runner import (
    DurableFunctionTestResult,
    DurableFunctionTestRunner,
    StepOperation,
)

from eventcraft.durable_saga import (
    COMPENSATION_ATTEMPTS,
    STEP_ATTEMPTS,
    DurableSaga,
    SagaStep,
    StepCall,
    TransientAwsError,
    idempotency_key,
)
from tests.conftest import ROOT
from tests.durable_runner import LambdaCrash, run_durable

STEPS = ("reserve", "charge", "ship")
COMPENSATIONS = {"reserve": "release", "charge": "refund"}


class Busy(Exception):
    """A transient error of the downstream service."""


class Declined(Exception):
    """A business failure: retrying would only repeat the decision."""


@dataclass
class Downstream:
    """A fake downstream service. Every write carries an idempotency key: a repeat
    returns the first write's result without a second effect (a conditional put)."""

    effects: list[tuple[str, Any]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    keys: dict[str, list[str]] = field(default_factory=dict)
    _written: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, operation: str, key: str, value: Any) -> Any:
        with self._lock:
            self.calls[operation] += 1
            self.keys.setdefault(operation, []).append(key)
            if key not in self._written:
                self._written[key] = value
                self.effects.append((operation, value))
            return self._written[key]

    def happened(self) -> list[str]:
        return [operation for operation, _ in self.effects]


@dataclass
class Faults:
    """What goes wrong in a run, by operation name ("charge", "refund", ...)."""

    declined: str | None = None  # raises Declined (every attempt)
    busy_once: str | None = None  # raises Busy after its effect, on its first attempt
    crash_once: str | None = None  # the process dies after its effect, first run only
    always_broken: str | None = None  # raises RuntimeError on every attempt
    crashed: set[str] = field(default_factory=set)


def make_saga(downstream: Downstream, faults: Faults, **options: Any) -> DurableSaga:
    def operation(name: str, value: Callable[[StepCall], Any]) -> Callable[[StepCall], Any]:
        def run(call: StepCall) -> Any:
            if faults.declined == name:
                downstream.calls[name] += 1
                raise Declined(f"{name} declined")
            if faults.always_broken == name:
                downstream.calls[name] += 1
                raise RuntimeError(f"{name} is broken")
            result = downstream.write(name, call.idempotency_key, value(call))
            if faults.busy_once == name and call.attempt == 1:
                raise Busy(f"{name}: no answer")
            if faults.crash_once == name and name not in faults.crashed:
                faults.crashed.add(name)
                raise LambdaCrash(name)
            return result

        return run

    return DurableSaga(
        "checkout",
        [
            SagaStep(
                "reserve",
                operation("reserve", lambda call: {"reservation": f"r-{call.input['item']}"}),
                compensate=operation("release", lambda call: {"released": call.result}),
                **options,
            ),
            SagaStep(
                "charge",
                # A later step sees the earlier steps' results.
                operation("charge", lambda call: {"charge": f"c-{call.results['reserve']}"}),
                compensate=operation(
                    "refund", lambda call: {"refunded": call.result, "why": str(call.failure)}
                ),
                transient_errors=(Busy,),
            ),
            SagaStep("ship", operation("ship", lambda call: {"parcel": "p-1"})),
        ],
    )


def run_saga(
    saga: DurableSaga, *, item: str = "book", execution_name: str = "execution-name"
) -> DurableFunctionTestResult:
    @durable_execution
    def durable_handler(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
        return saga.run(context, event)

    return run_durable(
        durable_handler, {"item": item}, execution_timeout=60, execution_name=execution_name
    )


def operations(result: DurableFunctionTestResult) -> list[tuple[str | None, str]]:
    return [(op.name, op.status.value) for op in result.operations]


def step(result: DurableFunctionTestResult, name: str) -> StepOperation:
    return result.get_step(name)


def test_a_saga_that_succeeds_returns_each_steps_result() -> None:
    downstream = Downstream()

    result = run_saga(make_saga(downstream, Faults()))

    assert result.status is InvocationStatus.SUCCEEDED
    assert json.loads(result.result or "") == {
        "status": "SUCCEEDED",
        "results": {
            "reserve": {"reservation": "r-book"},
            "charge": {"charge": "c-{'reservation': 'r-book'}"},
            "ship": {"parcel": "p-1"},
        },
    }
    assert downstream.happened() == ["reserve", "charge", "ship"]
    assert operations(result) == [(name, "SUCCEEDED") for name in STEPS]


@pytest.mark.parametrize(
    ("failing", "compensated"),
    [
        # A failed step is undone itself first (it may have failed after its effect),
        # then the completed ones; ship has nothing to undo.
        ("reserve", ["reserve"]),
        ("charge", ["charge", "reserve"]),
        ("ship", ["charge", "reserve"]),
    ],
)
def test_a_step_failing_for_good_compensates_itself_then_the_completed_steps_latest_first(
    failing: str, compensated: list[str]
) -> None:
    downstream = Downstream()

    result = run_saga(make_saga(downstream, Faults(declined=failing)))

    done = list(STEPS[: STEPS.index(failing)])
    undo = {"reserve": "release", "charge": "refund"}
    assert downstream.happened() == [*done, *(undo[name] for name in compensated)]
    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.type == "eventcraft.durable_saga.SagaFailed"
    assert result.error.message == (
        f"saga 'checkout': step {failing!r} failed ({Declined.__module__}.Declined: "
        f"{failing} declined); compensated, latest first: {', '.join(compensated)}"
    )
    # Each its own checkpointed step; a business failure is not retried.
    assert operations(result) == [
        *((name, "SUCCEEDED") for name in done),
        (failing, "FAILED"),
        *((f"compensate-{name}", "SUCCEEDED") for name in compensated),
    ]
    # The failed step's own compensation has no result to undo.
    if failing == "charge":
        assert dict(downstream.effects)["refund"]["refunded"] is None
    assert step(result, failing).attempt == 1
    # A compensation gets the result it undoes and the failure it answers.
    if "refund" in compensated:
        refund = dict(downstream.effects)["refund"]
        assert refund["refunded"] == {"charge": "c-{'reservation': 'r-book'}"}
        assert refund["why"].endswith("Declined: ship declined")


def test_a_transient_error_after_the_effect_is_retried_and_the_effect_happens_once() -> None:
    downstream = Downstream()

    result = run_saga(make_saga(downstream, Faults(busy_once="charge")))

    assert result.status is InvocationStatus.SUCCEEDED
    assert downstream.calls["charge"] == 2
    assert downstream.happened() == ["reserve", "charge", "ship"]
    first, second = downstream.keys["charge"]
    assert first == second
    assert step(result, "charge").attempt == 2


def test_a_step_trusted_to_do_nothing_when_it_fails_is_not_compensated_itself() -> None:
    downstream = Downstream()
    saga = make_saga(downstream, Faults(declined="reserve"), compensate_own_failure=False)

    result = run_saga(saga)

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert (result.error.message or "").endswith("latest first: nothing to compensate")
    assert downstream.happened() == []


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        ("ProvisionedThroughputExceededException", True),
        ("ThrottlingException", True),
        ("InternalServerError", True),
        ("ConditionalCheckFailedException", False),
        ("LimitExceededException", False),  # some services mean a hard limit by it
    ],
)
def test_the_aws_sdks_throttling_and_5xx_errors_are_retried_without_being_listed(
    code: str, retried: bool
) -> None:
    """A throttled DynamoDB call (botocore's ClientError, once its own retries are spent)
    is retried like the step's transient errors; a refused condition is a decision."""
    from botocore.exceptions import ClientError

    downstream = Downstream()
    calls: list[int] = []

    def write(call: StepCall) -> Any:
        calls.append(call.attempt)
        if call.attempt == 1:
            raise ClientError({"Error": {"Code": code, "Message": "no"}}, "PutItem")
        return downstream.write("charge", call.idempotency_key, {"charge": "c-1"})

    saga = DurableSaga("checkout", [SagaStep("charge", write)])
    assert isinstance(ClientError({"Error": {"Code": code}}, "PutItem"), TransientAwsError) is (
        retried
    )

    result = run_saga(saga)

    if retried:
        assert result.status is InvocationStatus.SUCCEEDED
        assert calls == [1, 2]
        assert downstream.happened() == ["charge"]
    else:
        assert result.status is InvocationStatus.FAILED
        assert calls == [1]
        assert downstream.happened() == []


def test_a_transient_error_is_retried_only_up_to_the_steps_attempts() -> None:
    downstream = Downstream()
    saga = make_saga(downstream, Faults())
    always_busy = SagaStep("charge", _always(Busy("no answer")), transient_errors=(Busy,))
    saga = DurableSaga("checkout", [saga.steps[0], always_busy])

    result = run_saga(saga)

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert "step 'charge' failed" in (result.error.message or "")
    assert step(result, "charge").attempt == STEP_ATTEMPTS == 9
    assert downstream.happened() == ["reserve", "release"]


def test_a_crash_after_a_steps_effect_replays_the_step_with_the_same_key_once() -> None:
    """The lost reply: charge's effect happened, the checkpoint of its end did not.
    The next invocation replays reserve from its checkpoint (not run again) and runs
    charge again, whose repeated write finds the first one."""
    downstream = Downstream()

    result = run_saga(make_saga(downstream, Faults(crash_once="charge")))

    assert result.status is InvocationStatus.SUCCEEDED
    assert downstream.happened() == ["reserve", "charge", "ship"]
    assert downstream.calls == Counter({"reserve": 1, "charge": 2, "ship": 1})
    first, second = downstream.keys["charge"]
    assert first == second


@pytest.mark.parametrize("crashing", ["refund", "release"])
def test_a_crash_mid_compensation_neither_skips_nor_repeats_a_compensation(
    crashing: str,
) -> None:
    downstream = Downstream()

    result = run_saga(make_saga(downstream, Faults(declined="ship", crash_once=crashing)))

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.type == "eventcraft.durable_saga.SagaFailed"
    assert (result.error.message or "").endswith("compensated, latest first: charge, reserve")
    assert downstream.happened() == ["reserve", "charge", "refund", "release"]
    # The crashed compensation ran again (same key); the one checkpointed before the
    # crash did not.
    expected = Counter({"reserve": 1, "charge": 1, "ship": 1, "refund": 1, "release": 1})
    expected[crashing] = 2
    assert downstream.calls == expected
    assert len(set(downstream.keys[crashing])) == 1


def test_a_compensation_failing_then_succeeding_is_retried() -> None:
    downstream = Downstream()

    result = run_saga(make_saga(downstream, Faults(declined="ship", busy_once="refund")))

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.type == "eventcraft.durable_saga.SagaFailed"
    assert (result.error.message or "").endswith("compensated, latest first: charge, reserve")
    assert downstream.happened() == ["reserve", "charge", "refund", "release"]
    assert step(result, "compensate-charge").attempt == 2
    assert downstream.calls["refund"] == 2


def test_a_compensation_that_cannot_succeed_fails_the_execution_naming_it() -> None:
    """The other compensations still run (undo as much as possible), then the execution
    ends FAILED with SagaCompensationFailed, never silently."""
    downstream = Downstream()

    result = run_saga(make_saga(downstream, Faults(declined="ship", always_broken="refund")))

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.type == "eventcraft.durable_saga.SagaCompensationFailed"
    assert result.error.message == (
        f"saga 'checkout': step 'ship' failed ({Declined.__module__}.Declined: ship "
        "declined) and the compensation of charge (RuntimeError: refund is broken) gave up "
        "after its retries: undo it by hand. Compensated, latest first: reserve"
    )
    assert downstream.happened() == ["reserve", "charge", "release"]
    assert downstream.calls["refund"] == COMPENSATION_ATTEMPTS
    assert step(result, "compensate-charge").status is OperationStatus.FAILED
    assert step(result, "compensate-reserve").status is OperationStatus.SUCCEEDED


def test_the_failure_hook_runs_once_after_the_compensations_with_the_failure() -> None:
    downstream = Downstream()
    seen: list[StepCall] = []

    def record(call: StepCall) -> Any:
        seen.append(call)
        return downstream.write("record", call.idempotency_key, {"failed": str(call.failure)})

    saga = make_saga(downstream, Faults(declined="ship"))
    saga = DurableSaga("checkout", saga.steps, on_failure=record)

    result = run_saga(saga)

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.type == "eventcraft.durable_saga.SagaFailed"
    assert downstream.happened() == ["reserve", "charge", "refund", "release", "record"]
    assert operations(result)[-1] == ("on-failure", "SUCCEEDED")
    (call,) = seen
    assert call.failure is not None and call.failure.step == "ship"
    assert set(call.results) == {"reserve", "charge"}
    assert call.result is None


def test_a_failure_hook_that_gives_up_fails_the_execution_louder() -> None:
    downstream = Downstream()
    saga = make_saga(downstream, Faults(declined="charge"), compensate_own_failure=False)
    saga = DurableSaga("checkout", saga.steps, on_failure=_always(RuntimeError("db down")))

    result = run_saga(saga)

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.type == "eventcraft.durable_saga.SagaOutcomeNotRecorded"
    assert "its failure hook gave up (RuntimeError: db down)" in (result.error.message or "")
    assert downstream.happened() == ["reserve", "refund", "release"]
    assert result.get_step("on-failure").attempt == COMPENSATION_ATTEMPTS


def test_idempotency_keys_differ_by_execution_step_and_compensation() -> None:
    downstream = Downstream()

    run_saga(make_saga(downstream, Faults(declined="ship")), execution_name="first")
    run_saga(make_saga(downstream, Faults(declined="ship")), execution_name="second")

    keys = [key for operation in ("reserve", "release") for key in downstream.keys[operation]]
    assert len(keys) == len(set(keys)) == 4
    # Each execution wrote its own (the second one's writes were not refused).
    assert downstream.happened().count("reserve") == 2
    assert idempotency_key("arn:1", "checkout", "reserve") == idempotency_key(
        "arn:1", "checkout", "reserve"
    )
    assert len(idempotency_key("arn:1", "checkout", "reserve")) == 64


def _always(error: Exception) -> Callable[[StepCall], Any]:
    def action(call: StepCall) -> Any:
        raise error

    return action


def _noop(call: StepCall) -> None:
    return None


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda: SagaStep("", _noop), "SagaStep.name ('') is not allowed"),
        (lambda: SagaStep("pay me", _noop), "SagaStep.name ('pay me') is not allowed"),
        (
            lambda: SagaStep("pay", "refund"),  # type: ignore[arg-type]
            "SagaStep 'pay': action must be callable",
        ),
        (
            lambda: SagaStep("pay", _noop, compensate="refund"),  # type: ignore[arg-type]
            "SagaStep 'pay': compensate must be callable or None",
        ),
        (
            lambda: SagaStep("pay", _noop, transient_errors=(Busy, "Timeout")),  # type: ignore[arg-type]
            "SagaStep 'pay': transient_errors must be a tuple of exception classes",
        ),
        (lambda: SagaStep("pay", _noop, attempts=0), "SagaStep 'pay': attempts must be >= 1"),
        (
            lambda: SagaStep("pay", _noop, transient_errors=(Busy,), retry=lambda e, n: None),  # type: ignore[arg-type,return-value]
            "SagaStep 'pay': give either retry",
        ),
        (lambda: DurableSaga("checkout", []), "DurableSaga 'checkout': steps must hold"),
        (
            lambda: DurableSaga("checkout", [SagaStep("pay", _noop), SagaStep("pay", _noop)]),
            "DurableSaga 'checkout': step names must be unique (each names its checkpoint); "
            "repeated: pay",
        ),
        (lambda: DurableSaga("check out", [SagaStep("pay", _noop)]), "DurableSaga.name"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_field(
    declare: Callable[[], object], message: str
) -> None:
    with pytest.raises((ValueError, TypeError)) as refused:
        declare()
    assert str(refused.value).startswith(message)


def test_the_module_imports_without_the_sdk() -> None:
    """The other handlers' layer goes without the SDK (the `durable` extra), and every
    module of the handler library must import from it."""
    blocked = (
        "import sys; sys.modules['aws_durable_execution_sdk_python'] = None; "
        "import eventcraft.durable_saga as m; print(m.DurableSaga.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked],
        env={"PYTHONPATH": str(ROOT / "eventcraft" / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "DurableSaga"), done.stderr


def test_the_readme_example_compensates_the_reservation() -> None:
    readme = (ROOT / "eventcraft" / "README.md").read_text()
    (code,) = (
        block
        for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
        if "DurableSaga(" in block
    )
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(code, namespace)

    with DurableFunctionTestRunner(handler=namespace["handler"]) as runner:
        result = runner.run(input=json.dumps({"item": "book"}), execution_timeout=60)

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.message == (
        "saga 'checkout': step 'charge' failed (RuntimeError: card declined); compensated, "
        "latest first: reserve"
    )
    assert sorted(namespace["ledger"].values(), key=str) == [
        {"released": "r-book"},
        {"reservation": "r-book"},
    ]
