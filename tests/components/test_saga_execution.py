"""Execute the generated ASL in moto's Step Functions interpreter.

Lambda functions are created in moto and run in-process: moto's single code-running hook,
`LambdaFunction._invoke_lambda(self, event) -> (payload, errored, logs)`, is replaced by a
dispatcher that calls a Python callable by function name and records each call. Retry
waits are moto's real `time.sleep`; they are replaced by a recorder so that the tests
are fast and can assert on the waits.
"""

from __future__ import annotations

import inspect
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from eventcraft_sandbox.mock_deploy import deploy
from pulumi_eventcraft.saga import (
    COMPENSATION_RETRY,
    STEP_RETRY,
    SagaStep,
    function_arns,
    parallel_checks,
    saga_definition,
)
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs

Handler = Callable[[dict[str, Any]], Any]
FINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class LambdaError(Exception):
    """What a handler raises: `error_type` becomes the Lambda errorType (the ASL error)."""

    def __init__(self, error_type: str, message: str = "") -> None:
        super().__init__(message or error_type)
        self.error_type = error_type


def _check_hook() -> None:
    """The tests rely on moto's hook having this shape: fail loudly if moto changed it."""
    params = list(inspect.signature(LambdaFunction._invoke_lambda).parameters)
    if params != ["self", "event"]:
        pytest.fail(
            "moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> "
            f"(payload, errored, logs) changed: its parameters are now {params}; "
            "update the in-process Lambda dispatcher of these tests"
        )


@dataclass
class Sfn:
    """moto with in-process Lambdas: `deploy` a definition, `run` an execution."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    arns: dict[str, str] = field(default_factory=dict)
    role: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def function(self, name: str, handler: Handler) -> str:
        """Create a Lambda function in moto whose code is `handler`; return its ARN."""
        if not self.role:
            self.role = boto3.client("iam").create_role(
                RoleName="lambda-role", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        self.handlers[name] = handler
        self.arns[name] = boto3.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=self.role,
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        return self.arns[name]

    def invoke(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, (str, bytes)) else event
        with self.lock:
            self.calls.append((function.function_name, payload))
        handler = self.handlers[function.function_name]
        try:
            return json.dumps(handler(payload)), False, ""
        except LambdaError as exc:
            error = {"errorType": exc.error_type, "errorMessage": str(exc)}
            return json.dumps(error), True, ""

    def called(self) -> list[str]:
        return [name for name, _ in self.calls]

    def deploy(self, definition: dict[str, Any], name: str = "saga") -> str:
        return boto3.client("stepfunctions").create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=self.role
        )["stateMachineArn"]

    def run(
        self, machine: str, execution: str, data: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Start a named execution and poll DescribeExecution until it is final."""
        sfn = boto3.client("stepfunctions")
        arn = sfn.start_execution(stateMachineArn=machine, name=execution, input=json.dumps(data))[
            "executionArn"
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] in FINAL:
                return described
            time.sleep(0.02)
        raise AssertionError(f"execution {execution} still RUNNING after {timeout} s")


@pytest.fixture
def sfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sfn]:
    _check_hook()
    env = Sfn()
    # Retry waits are real sleeps in moto: record them instead.
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=env.sleeps.append))

    def invoke(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        return env.invoke(self, event)

    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        mock.patch.object(LambdaFunction, "_invoke_lambda", invoke),
    ):
        yield env


def ok(result: Any) -> Handler:
    return lambda event: result


def fails(error_type: str, message: str = "") -> Handler:
    def handler(event: dict[str, Any]) -> Any:
        raise LambdaError(error_type, message or f"{error_type} for {event.get('orderId')}")

    return handler


def flaky(error_type: str, failures: int, result: Any) -> Handler:
    """Fails `failures` times with `error_type`, then returns `result`."""
    count = {"n": 0}

    def handler(event: dict[str, Any]) -> Any:
        count["n"] += 1
        if count["n"] <= failures:
            raise LambdaError(error_type, f"attempt {count['n']}")
        return result

    return handler


STEPS = ("reserve", "pay", "ship")
COMPENSATIONS = {"reserve": "release", "pay": "refund", "ship": "cancelShipment"}
ORDER = {"orderId": "o-1", "amount": 42}


def order_saga(
    sfn: Sfn, failing: str | None = None, *, own: bool = False, **overrides: Handler
) -> str:
    """reserve -> pay -> ship, each with a compensation; `failing` declines for business.
    `own`: SagaStep.compensate_own_failure (pinned False here, the behaviour that trusts a
    failed step to have done nothing; the default, True, has its own tests below)."""
    steps = []
    for step in STEPS:
        handler = fails(f"{step.capitalize()}Declined") if step == failing else ok({step: "done"})
        undo = COMPENSATIONS[step]
        steps.append(
            SagaStep(
                name=step,
                task=sfn.function(step, overrides.get(step, handler)),
                compensation=sfn.function(undo, overrides.get(undo, ok({undo: "done"}))),
                compensate_own_failure=own,
            )
        )
    return sfn.deploy(saga_definition(steps))


def test_the_happy_path_runs_every_step_once_and_no_compensation(sfn: Sfn) -> None:
    machine = order_saga(sfn)
    result = sfn.run(machine, "happy", ORDER)
    assert result["status"] == "SUCCEEDED"
    assert sfn.called() == ["reserve", "pay", "ship"]
    output = json.loads(result["output"])
    assert output == {
        **ORDER,
        "results": {
            "reserve": {"reserve": "done"},
            "pay": {"pay": "done"},
            "ship": {"ship": "done"},
        },
    }
    # Each step saw the order and the results of the steps before it.
    assert sfn.calls[2][1] == {
        **ORDER,
        "results": {"reserve": {"reserve": "done"}, "pay": {"pay": "done"}},
    }
    assert sfn.sleeps == []


@pytest.mark.parametrize(
    ("failing", "compensations"),
    [
        ("reserve", []),
        ("pay", ["release"]),
        ("ship", ["refund", "release"]),
    ],
)
def test_a_business_failure_compensates_completed_steps_in_reverse_order(
    sfn: Sfn, failing: str, compensations: list[str]
) -> None:
    machine = order_saga(sfn, failing=failing)
    result = sfn.run(machine, f"fail-{failing}", ORDER)

    assert result["status"] == "FAILED"
    assert result["error"] == "SagaFailed"
    # The cause is the failed step's error, as the handler reported it.
    cause = json.loads(result["cause"])
    assert cause["errorType"] == f"{failing.capitalize()}Declined"
    completed = list(STEPS[: STEPS.index(failing)])
    # Not retried (a business failure), the failed step's own undo not run.
    assert sfn.called() == [*completed, failing, *compensations]
    assert sfn.sleeps == []
    # Compensations see the error and the results of the steps they undo.
    for name, event in sfn.calls[len(completed) + 1 :]:
        assert event["error"]["Error"] == f"{failing.capitalize()}Declined", name
        assert set(event["results"]) == set(completed)


def test_a_transient_error_is_retried_with_backoff_and_the_saga_succeeds(sfn: Sfn) -> None:
    machine = order_saga(
        sfn, pay=flaky("Lambda.TooManyRequestsException", failures=2, result={"pay": "done"})
    )
    result = sfn.run(machine, "throttled", ORDER)

    assert result["status"] == "SUCCEEDED"
    assert sfn.called() == ["reserve", "pay", "pay", "pay", "ship"]
    # Two waits, each jittered in [0, 1 * 2**i] (full jitter, backoff 2 from 1 s).
    assert len(sfn.sleeps) == 2
    for wait, cap in zip(sfn.sleeps, STEP_RETRY.waits(), strict=False):
        assert 0 <= wait <= cap
    assert json.loads(result["output"])["results"]["pay"] == {"pay": "done"}


def test_a_transient_error_that_persists_exhausts_the_retries_then_compensates(
    sfn: Sfn,
) -> None:
    machine = order_saga(sfn, pay=fails("Lambda.ServiceException"))
    result = sfn.run(machine, "outage", ORDER)

    assert result["status"] == "FAILED"
    assert result["error"] == "SagaFailed"
    # 1 attempt + 12 retries (STEP_RETRY), then the completed step is undone.
    assert sfn.called() == ["reserve", *["pay"] * 13, "release"]
    assert len(sfn.sleeps) == 12
    for wait, cap in zip(sfn.sleeps, STEP_RETRY.waits(), strict=True):
        assert 0 <= wait <= cap


def test_a_failing_compensation_retries_until_it_succeeds(sfn: Sfn) -> None:
    machine = order_saga(
        sfn,
        failing="ship",
        refund=flaky("RefundUnavailable", failures=2, result={"refund": "done"}),
    )
    result = sfn.run(machine, "refund-retried", ORDER)

    assert result["status"] == "FAILED"
    assert result["error"] == "SagaFailed"
    assert sfn.called() == ["reserve", "pay", "ship", "refund", "refund", "refund", "release"]
    assert len(sfn.sleeps) == 2


def test_a_compensation_that_gives_up_still_lets_the_others_run(sfn: Sfn) -> None:
    machine = order_saga(sfn, failing="ship", refund=fails("RefundUnavailable"))
    result = sfn.run(machine, "refund-gave-up", ORDER)

    assert result["status"] == "FAILED"
    assert result["error"] == "SagaCompensationFailed"
    # 1 + 20 attempts of the refund (COMPENSATION_RETRY), then the release runs anyway.
    assert sfn.called() == ["reserve", "pay", "ship", *["refund"] * 21, "release"]
    assert len(sfn.sleeps) == COMPENSATION_RETRY.max_attempts == 20


def test_a_static_fail_cause_hides_the_handler_message(sfn: Sfn) -> None:
    definition = saga_definition(
        [SagaStep(name="pay", task=sfn.function("pay", fails("PaymentDeclined", "card 4242")))],
        fail_cause="payment failed",
    )
    result = sfn.run(sfn.deploy(definition), "static-cause", ORDER)
    assert (result["status"], result["error"], result["cause"]) == (
        "FAILED",
        "SagaFailed",
        "payment failed",
    )


def test_parallel_checks_fork_and_join_into_the_aggregate(sfn: Sfn) -> None:
    def aggregate(event: dict[str, Any]) -> dict[str, Any]:
        checks = event["checks"]
        return {
            "orderId": event["orderId"],
            "approved": all(c["ok"] for c in checks.values()),
            "quote": checks["shipping"]["quote"],
        }

    definition = parallel_checks(
        {
            "inventory": sfn.function("inventoryCheck", ok({"ok": True})),
            "credit": sfn.function("creditCheck", ok({"ok": True})),
            "shipping": sfn.function("shippingQuote", ok({"ok": True, "quote": 7})),
        },
        sfn.function("aggregateChecks", aggregate),
    )
    result = sfn.run(sfn.deploy(definition, name="checks"), "checks-1", ORDER)

    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"]) == {"orderId": "o-1", "approved": True, "quote": 7}
    assert sorted(sfn.called()[:3]) == ["creditCheck", "inventoryCheck", "shippingQuote"]
    assert sfn.called()[3] == "aggregateChecks"
    # Every branch got the order; the aggregate got the joined, named results.
    assert all(event == ORDER for _, event in sfn.calls[:3])
    assert sfn.calls[3][1] == {
        **ORDER,
        "checks": {
            "inventory": {"ok": True},
            "credit": {"ok": True},
            "shipping": {"ok": True, "quote": 7},
        },
    }


def test_a_failing_branch_fails_the_fork(sfn: Sfn) -> None:
    definition = parallel_checks(
        {
            "inventory": sfn.function("inventoryCheck", ok({"ok": True})),
            "credit": sfn.function("creditCheck", fails("CreditCheckUnavailable")),
        },
        sfn.function("aggregateChecks", ok({})),
    )
    result = sfn.run(sfn.deploy(definition, name="checks"), "checks-2", ORDER)
    assert result["status"] == "FAILED"
    assert result["error"] == "CreditCheckUnavailable"
    assert "aggregateChecks" not in sfn.called()


def test_a_timed_out_step_is_compensated_itself_then_the_earlier_ones(sfn: Sfn) -> None:
    def slow(event: dict[str, Any]) -> Any:
        time.sleep(1.5)  # longer than the step's 1 s TimeoutSeconds
        return {"pay": "late"}

    steps = [
        SagaStep(
            name="reserve",
            task=sfn.function("reserve", ok({})),
            compensation=sfn.function("release", ok({})),
        ),
        SagaStep(
            name="pay",
            task=sfn.function("pay", slow),
            compensation=sfn.function("refund", ok({})),
            timeout_seconds=1,
        ),
    ]
    result = sfn.run(sfn.deploy(saga_definition(steps)), "pay-timed-out", ORDER)

    assert (result["status"], result["error"]) == ("FAILED", "SagaFailed")
    # The payment may have gone through after the timeout: it is refunded too.
    assert sfn.called() == ["reserve", "pay", "refund", "release"]
    assert sfn.calls[2][1]["error"]["Error"] == "States.Timeout"


def test_an_idempotent_step_whose_reply_was_lost_is_retried_not_compensated(sfn: Sfn) -> None:
    """ship ran and committed, but Step Functions saw the function time out: an
    idempotent step runs again (and finds what it did) instead of undoing the steps."""
    steps = [
        SagaStep(
            name="pay",
            task=sfn.function("pay", ok({})),
            compensation=sfn.function("refund", ok({})),
            idempotent=True,
        ),
        SagaStep(
            name="ship",
            task=sfn.function(
                "ship", flaky("Sandbox.Timedout", failures=1, result={"shipped": True})
            ),
            idempotent=True,
        ),
    ]
    result = sfn.run(sfn.deploy(saga_definition(steps)), "ship-reply-lost", ORDER)
    assert result["status"] == "SUCCEEDED"
    assert sfn.called() == ["pay", "ship", "ship"]
    assert json.loads(result["output"])["results"]["ship"] == {"shipped": True}


def test_the_definition_the_state_machine_component_renders_runs(sfn: Sfn) -> None:
    steps = [
        SagaStep(
            name=step,
            task=sfn.function(step, fails("ShipDeclined") if step == "ship" else ok({})),
            compensation=sfn.function(COMPENSATIONS[step], ok({})),
            compensate_own_failure=False,
        )
        for step in STEPS
    ]

    def program() -> None:
        StateMachine(
            "orders",
            StateMachineArgs(
                definition=saga_definition(steps), task_function_arns=function_arns(steps)
            ),
        )

    rendered = deploy(program).named("orders-sm").inputs["definition"]
    machine = boto3.client("stepfunctions").create_state_machine(
        name="rendered", definition=rendered, roleArn=sfn.role
    )["stateMachineArn"]
    result = sfn.run(machine, "rendered-1", ORDER)
    assert (result["status"], result["error"]) == ("FAILED", "SagaFailed")
    assert sfn.called() == ["reserve", "pay", "ship", "refund", "release"]


# --------------------------------------------- own compensation, transient errors, hooks


@pytest.mark.parametrize(
    ("failing", "compensations"),
    [
        ("reserve", ["release"]),
        ("pay", ["refund", "release"]),
        ("ship", ["cancelShipment", "refund", "release"]),
    ],
)
def test_by_default_the_failed_step_is_undone_too_then_the_earlier_ones(
    sfn: Sfn, failing: str, compensations: list[str]
) -> None:
    machine = order_saga(sfn, failing=failing, own=True)
    result = sfn.run(machine, f"own-{failing}", ORDER)

    assert (result["status"], result["error"]) == ("FAILED", "SagaFailed")
    completed = list(STEPS[: STEPS.index(failing)])
    assert sfn.called() == [*completed, failing, *compensations]
    # The failed step's own compensation sees what failed (and that it has no result).
    own_undo = sfn.calls[len(completed) + 1][1]
    assert own_undo["error"]["Error"] == f"{failing.capitalize()}Declined"
    assert failing not in own_undo.get("results", {})


def test_a_handlers_transient_error_is_retried_when_the_step_names_it(sfn: Sfn) -> None:
    steps = [
        SagaStep(
            name="pay",
            task=sfn.function(
                "pay", flaky("PaymentProviderUnavailable", failures=2, result={"paid": True})
            ),
            compensation=sfn.function("refund", ok({})),
            transient_errors=("PaymentProviderUnavailable",),
        )
    ]
    result = sfn.run(sfn.deploy(saga_definition(steps)), "provider-flaky", ORDER)
    assert result["status"] == "SUCCEEDED"
    assert sfn.called() == ["pay", "pay", "pay"]
    assert len(sfn.sleeps) == 2


def test_an_unnamed_handler_error_is_a_business_failure_and_not_retried(sfn: Sfn) -> None:
    steps = [
        SagaStep(
            name="pay",
            task=sfn.function(
                "pay", flaky("PaymentProviderUnavailable", failures=2, result={"paid": True})
            ),
            compensation=sfn.function("refund", ok({})),
        )
    ]
    result = sfn.run(sfn.deploy(saga_definition(steps)), "provider-unnamed", ORDER)
    assert (result["status"], result["error"]) == ("FAILED", "SagaFailed")
    assert sfn.called() == ["pay", "refund"]
    assert sfn.sleeps == []


def test_the_failure_hook_records_a_first_step_that_exhausted_its_retries(sfn: Sfn) -> None:
    steps = [
        SagaStep(
            name=step,
            task=sfn.function(
                step, fails("Lambda.ServiceException") if step == "reserve" else ok({})
            ),
            compensation=sfn.function(COMPENSATIONS[step], ok({})),
        )
        for step in STEPS
    ]
    hook = sfn.function("recordOutcome", ok({"status": "CANCELLED", "final": True}))
    definition = saga_definition(steps, on_failure=hook)
    result = sfn.run(sfn.deploy(definition), "reserve-outage", ORDER)

    assert (result["status"], result["error"]) == ("FAILED", "SagaFailed")
    assert sfn.called() == [*["reserve"] * 13, "release", "recordOutcome"]
    # The hook sees the order, the caught error and what was compensated.
    state = sfn.calls[-1][1]
    assert state["orderId"] == "o-1"
    assert state["error"]["Error"] == "Lambda.ServiceException"
    assert set(state["compensations"]) == {"reserve"}
    assert "results" not in state


def test_a_failure_hook_that_gives_up_fails_the_execution_louder(sfn: Sfn) -> None:
    steps = [SagaStep(name="pay", task=sfn.function("pay", fails("PaymentDeclined")))]
    definition = saga_definition(steps, on_failure=sfn.function("recordOutcome", fails("Boom")))
    result = sfn.run(sfn.deploy(definition), "hook-gave-up", ORDER)
    assert (result["status"], result["error"]) == ("FAILED", "SagaOutcomeNotRecorded")
    assert sfn.called() == ["pay", *["recordOutcome"] * 21]


def test_the_success_hook_runs_once_after_the_last_step(sfn: Sfn) -> None:
    steps = [SagaStep(name=step, task=sfn.function(step, ok({step: "done"}))) for step in STEPS]
    hook = sfn.function("recordOutcome", ok({"status": "COMPLETED"}))
    definition = saga_definition(steps, on_success=hook, on_failure=hook)
    result = sfn.run(sfn.deploy(definition), "happy-hook", ORDER)
    assert result["status"] == "SUCCEEDED"
    assert sfn.called() == [*STEPS, "recordOutcome"]
    output = json.loads(result["output"])
    assert output["outcome"] == {"status": "COMPLETED"}
    assert set(output["results"]) == set(STEPS)
