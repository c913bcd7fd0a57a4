"""Step Functions on the virtual clock: Retry intervals and Wait states cost no real
time, and run_until_quiet waits for executions in flight."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import (
    FakeInvoker,
    FakeMapping,
    FakeRecords,
    World,
    function_name,
)

T0 = 1_800_000_000.0
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}}


class PaymentDeclined(Exception):
    pass


def saga_definition(arns: dict[str, str]) -> str:
    return json.dumps(
        {
            "StartAt": "Reserve",
            "States": {
                "Reserve": {"Type": "Task", "Resource": arns["reserve"], "Next": "Pay"},
                "Pay": {
                    "Type": "Task",
                    "Resource": arns["pay"],
                    "Retry": [
                        {
                            "ErrorEquals": ["States.ALL"],
                            "IntervalSeconds": 30,
                            "MaxAttempts": 3,
                            "BackoffRate": 2,
                        }
                    ],
                    "Catch": [
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Release"}
                    ],
                    "Next": "WaitForCourier",
                },
                "WaitForCourier": {"Type": "Wait", "Seconds": 3600, "Next": "Ship"},
                "Ship": {"Type": "Task", "Resource": arns["ship"], "End": True},
                "Release": {"Type": "Task", "Resource": arns["release"], "Next": "Cancelled"},
                "Cancelled": {"Type": "Fail", "Error": "OrderCancelled"},
            },
        }
    )


class Saga:
    """A saga-like state machine whose Lambda tasks run Python callables."""

    def __init__(self, world: World, clock: VirtualClock) -> None:
        self.world = world
        self.clock = clock
        self.calls: list[tuple[str, str, float]] = []
        self.pay_failures: dict[str, int] = {}
        self.invoker = FakeInvoker(
            {
                "reserve": self.step("reserve"),
                "pay": self.pay,
                "ship": self.step("ship"),
                "release": self.step("release"),
            }
        )
        arns = {name: world.function(name) for name in ("reserve", "pay", "ship", "release")}
        role = world.role("saga-role", "states.amazonaws.com")
        self.arn = str(
            world.sfn.create_state_machine(
                name="order-saga", definition=saga_definition(arns), roleArn=role
            )["stateMachineArn"]
        )

    def step(self, name: str) -> Any:
        def run(event: dict[str, Any]) -> dict[str, Any]:
            self.calls.append((name, event["orderId"], self.clock.now() - T0))
            return event

        return run

    def pay(self, event: dict[str, Any]) -> dict[str, Any]:
        order = event["orderId"]
        self.calls.append(("pay", order, self.clock.now() - T0))
        left = self.pay_failures.get(order, 0)
        if left:
            self.pay_failures[order] = left - 1
            raise PaymentDeclined(f"gateway timeout for {order}")
        return event

    def start(self, order: str) -> str:
        return str(
            self.world.sfn.start_execution(
                stateMachineArn=self.arn, name=order, input=json.dumps({"orderId": order})
            )["executionArn"]
        )

    def status(self, execution: str) -> str:
        return str(self.world.sfn.describe_execution(executionArn=execution)["status"])

    def of(self, order: str) -> list[tuple[str, float]]:
        return [(step, at) for step, o, at in self.calls if o == order]


@pytest.fixture
def saga() -> Iterator[tuple[Saga, Delivery]]:
    with mock_aws(config=MOTO_CONFIG):
        clock = VirtualClock(start=T0)
        world = World()
        saga = Saga(world, clock)
        with (
            saga.invoker.in_moto_lambda(),
            Delivery(Scheduler(clock), saga.invoker, FakeRecords()) as delivery,
        ):
            yield saga, delivery


def test_a_saga_with_retries_and_a_wait_completes_in_virtual_time(
    saga: tuple[Saga, Delivery],
) -> None:
    machine, delivery = saga
    machine.pay_failures["o-1"] = 2
    started = time.monotonic()
    execution = machine.start("o-1")

    report = delivery.run_until_quiet()

    assert time.monotonic() - started < 2
    assert machine.status(execution) == "SUCCEEDED"
    # Retry: 30 s, then 30 x 2 = 60 s later; then the one-hour Wait.
    assert machine.of("o-1") == [
        ("reserve", 0),
        ("pay", 0),
        ("pay", 30),
        ("pay", 90),
        ("ship", 3690),
    ]
    assert report.virtual_seconds == pytest.approx(3690, abs=1)


def test_concurrent_executions_interleave_in_virtual_time_and_compensate(
    saga: tuple[Saga, Delivery],
) -> None:
    machine, delivery = saga
    machine.pay_failures["o-1"] = 1
    machine.pay_failures["o-2"] = 10  # always declined: retries exhausted, then Catch
    first = machine.start("o-1")
    second = machine.start("o-2")

    started = time.monotonic()
    delivery.run_until_quiet()

    assert time.monotonic() - started < 3
    assert machine.status(first) == "SUCCEEDED"
    assert machine.status(second) == "FAILED"
    assert machine.of("o-1") == [("reserve", 0), ("pay", 0), ("pay", 30), ("ship", 3630)]
    assert machine.of("o-2") == [
        ("reserve", 0),
        ("pay", 0),
        ("pay", 30),
        ("pay", 90),
        ("pay", 210),
        ("release", 210),
    ]
    assert delivery.stepfunctions.in_flight() == []


def test_an_eventbridge_rule_starts_the_saga(saga: tuple[Saga, Delivery]) -> None:
    machine, delivery = saga
    world = machine.world
    world.events.create_event_bus(Name="orders")
    world.events.put_rule(
        Name="start-saga", EventBusName="orders", EventPattern='{"detail-type": ["OrderPlaced"]}'
    )
    role = world.role("events-start-saga", "events.amazonaws.com")
    world.events.put_targets(
        Rule="start-saga",
        EventBusName="orders",
        Targets=[{"Id": "saga", "Arn": machine.arn, "RoleArn": role, "InputPath": "$.detail"}],
    )
    machine.pay_failures["o-9"] = 1
    world.events.put_events(
        Entries=[
            {
                "Source": "order-saga.orders",
                "DetailType": "OrderPlaced",
                "Detail": json.dumps({"orderId": "o-9"}),
                "EventBusName": "orders",
            }
        ]
    )

    delivery.run_until_quiet()

    (execution,) = world.sfn.list_executions(stateMachineArn=machine.arn)["executions"]
    assert execution["status"] == "SUCCEEDED"
    assert [step for step, _ in machine.of("o-9")] == ["reserve", "pay", "pay", "ship"]


def test_the_real_lambda_runtime_runs_the_saga_tasks() -> None:
    runtime_module = pytest.importorskip("eventcraft_sandbox.lambda_runtime")
    runtime_cls = getattr(runtime_module, "LambdaRuntime", None)
    if runtime_cls is None:
        pytest.skip("eventcraft_sandbox.lambda_runtime.LambdaRuntime is not there yet")
    source = (
        "import os\n"
        "ATTEMPTS = {}\n"
        "class PaymentDeclined(Exception):\n"
        "    pass\n"
        "def handler(event, context):\n"
        "    name = os.environ['AWS_LAMBDA_FUNCTION_NAME']\n"
        "    key = (name, event['orderId'])\n"
        "    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1\n"
        "    if name == 'pay' and ATTEMPTS[key] < 3:\n"
        "        raise PaymentDeclined('gateway timeout')\n"
        "    return event\n"
    )
    with mock_aws(config=MOTO_CONFIG):
        clock = VirtualClock(start=T0)
        world = World()
        arns = {
            name: world.function(name, files={"handler.py": source})
            for name in ("reserve", "pay", "ship", "release")
        }
        role = world.role("saga-role", "states.amazonaws.com")
        machine = world.sfn.create_state_machine(
            name="order-saga", definition=saga_definition(arns), roleArn=role
        )["stateMachineArn"]
        with runtime_cls(clock=clock) as runtime:
            delivery = Delivery(Scheduler(clock), runtime, FakeRecords())
            runtime.event_dispatcher = delivery.dispatch_event
            with delivery:
                execution = world.sfn.start_execution(
                    stateMachineArn=machine, name="o-1", input='{"orderId": "o-1"}'
                )["executionArn"]
                started = time.monotonic()
                report = delivery.run_until_quiet()
                elapsed = time.monotonic() - started
        described = world.sfn.describe_execution(executionArn=execution)

    assert described["status"] == "SUCCEEDED", described
    assert report.virtual_seconds == pytest.approx(30 + 60 + 3600, abs=1)
    assert elapsed < 10
    assert function_name(arns["pay"]) == "pay"


def test_parallel_branches_and_a_timestamp_wait_keep_virtual_time(
    saga: tuple[Saga, Delivery],
) -> None:
    machine, delivery = saga
    world = machine.world
    arns = {
        name: world.lambda_.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        for name in ("pay", "ship")
    }
    until = VirtualClock(start=T0 + 40).iso()
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Next": "Until",
                "Branches": [
                    {
                        "StartAt": "Pay",
                        "States": {
                            "Pay": {
                                "Type": "Task",
                                "Resource": arns["pay"],
                                "Retry": [
                                    {
                                        "ErrorEquals": ["States.ALL"],
                                        "IntervalSeconds": 10,
                                        "MaxAttempts": 3,
                                        "BackoffRate": 1,
                                    }
                                ],
                                "End": True,
                            }
                        },
                    },
                    {
                        "StartAt": "Later",
                        "States": {
                            "Later": {"Type": "Wait", "Seconds": 25, "Next": "Ship"},
                            "Ship": {"Type": "Task", "Resource": arns["ship"], "End": True},
                        },
                    },
                ],
            },
            "Until": {"Type": "Wait", "Timestamp": until, "End": True},
        },
    }
    role = world.role("parallel-role", "states.amazonaws.com")
    parallel = world.sfn.create_state_machine(
        name="parallel", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    machine.pay_failures["p-1"] = 2
    execution = world.sfn.start_execution(
        stateMachineArn=parallel, name="p-1", input='{"orderId": "p-1"}'
    )["executionArn"]

    report = delivery.run_until_quiet()

    assert machine.status(execution) == "SUCCEEDED"
    assert machine.of("p-1") == [("pay", 0), ("pay", 10), ("pay", 20), ("ship", 25)]
    assert report.virtual_seconds == 40


@pytest.mark.parametrize("woken_late", [False, True], ids=["prompt", "woken-late"])
def test_a_task_token_wait_lets_delivery_go_on_until_the_token_comes_back(
    saga: tuple[Saga, Delivery], monkeypatch: pytest.MonkeyPatch, woken_late: bool
) -> None:
    if woken_late:
        # On a loaded machine the execution's thread may get the CPU long after the
        # token came back: the sandbox must not call itself quiet meanwhile.
        from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

        original_wait = CallbackEndpoint.wait

        def descheduled_wait(endpoint: Any, timeout: float | None = None) -> Any:
            outcome = original_wait(endpoint, timeout)
            time.sleep(0.5)  # 25 x the scheduler's settle period
            return outcome

        monkeypatch.setattr(CallbackEndpoint, "wait", descheduled_wait)
    machine, delivery = saga
    world = machine.world
    url, queue_arn = world.queue("approvals")
    definition = {
        "StartAt": "AskForApproval",
        "States": {
            "AskForApproval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": url,
                    "MessageBody": {"orderId.$": "$.orderId", "token.$": "$$.Task.Token"},
                },
                "Next": "Ship",
            },
            "Ship": {
                "Type": "Task",
                "Resource": world.lambda_.get_function(FunctionName="ship")["Configuration"][
                    "FunctionArn"
                ],
                "End": True,
            },
        },
    }
    role = world.role("approval-role", "states.amazonaws.com")
    approval = world.sfn.create_state_machine(
        name="approval", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    approver = world.function("approver")

    def approve(event: dict[str, Any]) -> None:
        for record in event["Records"]:
            body = json.loads(record["body"])
            machine.calls.append(("approve", body["orderId"], machine.clock.now() - T0))
            world.sfn.send_task_success(
                taskToken=body["token"], output=json.dumps({"orderId": body["orderId"]})
            )

    machine.invoker.register("approver", approve)
    delivery.add_mapping(FakeMapping(approver, queue_arn, {}))
    execution = world.sfn.start_execution(
        stateMachineArn=approval, name="a-1", input='{"orderId": "a-1"}'
    )["executionArn"]

    delivery.run_until_quiet()

    assert machine.status(execution) == "SUCCEEDED"
    assert [step for step, _ in machine.of("a-1")] == ["approve", "ship"]


# ------------------------------------------------------------ EXPRESS's 5 minutes


def function_arn(machine: Saga, name: str) -> str:
    return str(
        machine.world.lambda_.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    )


def waiting_machine(machine: Saga, name: str, seconds: int, kind: str) -> str:
    """Wait `seconds`, then the `ship` task: a machine of type `kind`."""
    ship = function_arn(machine, "ship")
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": seconds, "Next": "Ship"},
            "Ship": {"Type": "Task", "Resource": ship, "End": True},
        },
    }
    role = machine.world.role(f"{name}-role", "states.amazonaws.com")
    return str(
        machine.world.sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=role, type=kind
        )["stateMachineArn"]
    )


def timed_out_event(machine: Saga, execution: str) -> dict[str, Any]:
    history = machine.world.sfn.get_execution_history(executionArn=execution)["events"]
    return next(e for e in history if e["type"] == "ExecutionTimedOut")


def test_an_express_execution_still_waiting_at_300_virtual_seconds_is_timed_out(
    saga: tuple[Saga, Delivery],
) -> None:
    """AWS stops an EXPRESS execution after 5 minutes, wherever it is: a Wait of 400 s
    ends at 300 s TIMED_OUT (no error on the execution, States.Timeout in its history),
    the state after it never runs, and virtual time stops there."""
    machine, delivery = saga
    express = waiting_machine(machine, "express-400", 400, "EXPRESS")
    execution = machine.world.sfn.start_execution(
        stateMachineArn=express, name="e-1", input='{"orderId": "e-1"}'
    )["executionArn"]

    report = delivery.run_until_quiet()

    described = machine.world.sfn.describe_execution(executionArn=execution)
    assert described["status"] == "TIMED_OUT"
    assert "error" not in described and "cause" not in described
    assert timed_out_event(machine, execution)["executionTimedOutEventDetails"]["error"] == (
        "States.Timeout"
    )
    assert machine.of("e-1") == []
    assert report.virtual_seconds == 300
    log = [(e.time - T0, e.source, e.target, e.outcome) for e in delivery.log]
    assert (300, "express-400", "e-1", "timed-out") in log


def test_an_express_execution_that_ends_within_5_minutes_succeeds_and_standard_has_no_limit(
    saga: tuple[Saga, Delivery],
) -> None:
    machine, delivery = saga
    express = waiting_machine(machine, "express-200", 200, "EXPRESS")
    standard = waiting_machine(machine, "standard-400", 400, "STANDARD")
    executions = {
        order: machine.world.sfn.start_execution(
            stateMachineArn=arn, name=order, input=json.dumps({"orderId": order})
        )["executionArn"]
        for order, arn in (("e-2", express), ("s-1", standard))
    }

    report = delivery.run_until_quiet()

    assert {o: machine.status(arn) for o, arn in executions.items()} == {
        "e-2": "SUCCEEDED",
        "s-1": "SUCCEEDED",
    }
    assert machine.of("e-2") == [("ship", 200)]
    assert machine.of("s-1") == [("ship", 400)]
    # The EXPRESS deadline left nothing behind: the run ends with the last wait.
    assert report.virtual_seconds == 400
    assert delivery.log.of("stepfunctions.timeout") == []


def test_an_express_execution_retrying_past_5_minutes_is_timed_out_between_attempts(
    saga: tuple[Saga, Delivery],
) -> None:
    """Retry intervals count too: pay fails every time, retried after 120 s, then 240 s:
    at 300 s the execution is stopped mid-wait, before its third attempt (due at 360 s)."""
    machine, delivery = saga
    steps = ("reserve", "pay", "ship", "release")
    definition = json.loads(saga_definition({n: function_arn(machine, n) for n in steps}))
    definition["States"]["Pay"]["Retry"][0].update(IntervalSeconds=120, MaxAttempts=5)
    role = machine.world.role("express-saga-role", "states.amazonaws.com")
    express = machine.world.sfn.create_state_machine(
        name="express-saga", definition=json.dumps(definition), roleArn=role, type="EXPRESS"
    )["stateMachineArn"]
    machine.pay_failures["x-1"] = 10
    execution = machine.world.sfn.start_execution(
        stateMachineArn=express, name="x-1", input='{"orderId": "x-1"}'
    )["executionArn"]

    report = delivery.run_until_quiet()

    assert machine.status(execution) == "TIMED_OUT"
    assert machine.of("x-1") == [("reserve", 0), ("pay", 0), ("pay", 120)]
    assert report.virtual_seconds == 300
