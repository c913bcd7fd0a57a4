"""The order saga as a Lambda durable function (`handlers.durable_order_saga`), run by the
official testing SDK's local runner (the real SDK against an in-memory checkpoint
service, retry waits skipped) over moto's tables: the same outcomes as the Step
Functions saga (test_saga_choreography's orchestrated tests), read from the tables and
the outbox.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_durable_execution_sdk_python.lambda_service import InvocationStatus
from aws_durable_execution_sdk_python_testing.runner import (
    DurableFunctionTestResult,
)
from botocore.exceptions import ClientError

from handlers import durable_order_saga
from order_saga.wiring import read_access
from saga import tasks
from tests.durable_runner import LambdaCrash, run_durable
from tests.functions.handlers.conftest import SagaWorld, as_eventbridge, order_placed

TASK_MODULES = (
    "handlers.reserve_inventory",
    "handlers.process_payment",
    "handlers.ship_order",
    "handlers.release_inventory",
    "handlers.refund_payment",
    "handlers.saga_progress",
)


def run(order_id: str, customer_id: str, *, name: str = "execution") -> DurableFunctionTestResult:
    """One durable execution started with the OrderPlaced event, as the rule does."""
    event = as_eventbridge(
        "OrderPlaced", order_placed(order_id, customerId=customer_id).to_detail()
    )
    return run_durable(
        durable_order_saga.handler, event, execution_timeout=900, execution_name=name
    )


def steps(result: DurableFunctionTestResult) -> list[tuple[str | None, str]]:
    return [(op.name, op.status.value) for op in result.operations]


def outbox_types(world: SagaWorld) -> list[str]:
    return sorted(e["detail-type"] for e in world.outbox_events())


def test_the_access_is_the_union_of_the_step_tasks(aws: SagaWorld) -> None:
    union: dict[str, set[str]] = {}
    for module in TASK_MODULES:
        for env, actions in read_access(module).items():
            union.setdefault(env, set()).update(actions)
    assert read_access("handlers.durable_order_saga") == {k: frozenset(v) for k, v in union.items()}


def test_a_saga_that_completes(aws: SagaWorld) -> None:
    aws.seed_stock()

    result = run("o-1", "c-1")

    assert result.status is InvocationStatus.SUCCEEDED
    assert steps(result) == [(s, "SUCCEEDED") for s in ("reserve", "pay", "ship")]
    output = json.loads(result.result or "")
    assert output["status"] == "SUCCEEDED"
    assert output["results"]["pay"]["status"] == "CHARGED"
    order = aws.order("o-1")
    assert (order["status"], order["chargedCents"]) == ("COMPLETED", 7499)
    # The same events as the other two styles, each written with its step.
    assert outbox_types(aws) == [
        "InventoryReserved",
        "OrderCompleted",
        "OrderShipped",
        "PaymentProcessed",
    ]
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (8, 4)


def test_a_declined_payment_undoes_itself_then_the_reservation(aws: SagaWorld) -> None:
    aws.seed_stock()

    result = run("o-2", "declined-d")

    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.type == "eventcraft.durable_saga.SagaFailed"
    assert "step 'pay' failed" in (result.error.message or "")
    # Not retried (a business failure); its own compensation first (nothing to refund),
    # then the reservation's; then the outcome hook.
    assert steps(result) == [
        ("reserve", "SUCCEEDED"),
        ("pay", "FAILED"),
        ("compensate-pay", "SUCCEEDED"),
        ("compensate-reserve", "SUCCEEDED"),
        ("on-failure", "SUCCEEDED"),
    ]
    order = aws.order("o-2")
    assert (order["status"], order["failedStep"], order["chargedCents"]) == (
        "CANCELLED",
        "payment",
        0,
    )
    assert order["failureReason"] == "card declined (customer declined-d)"
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)
    assert len(aws.outbox_events("OrderCancelled")) == 1


def test_a_failed_shipment_refunds_and_releases_latest_first(aws: SagaWorld) -> None:
    aws.seed_stock()

    result = run("o-3", "undeliverable-u")

    assert result.status is InvocationStatus.FAILED
    assert [name for name, _ in steps(result)] == [
        "reserve",
        "pay",
        "ship",
        "compensate-pay",
        "compensate-reserve",
        "on-failure",
    ]
    order = aws.order("o-3")
    assert (order["status"], order["failedStep"]) == ("CANCELLED", "shipping")
    assert order["refundedCents"] == order["chargedCents"] == 7499
    assert aws.item("PAYMENTS_TABLE", "payment#o-3")["status"] == "REFUNDED"
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)
    (cancelled,) = aws.outbox_events("OrderCancelled")
    assert cancelled["failedStep"] == "shipping"


def test_short_stock_cancels_the_order(aws: SagaWorld) -> None:
    aws.seed_stock({"sku-red-mug": 1, "sku-blue-pot": 5})

    result = run("o-4", "c-4")

    assert result.status is InvocationStatus.FAILED
    assert steps(result)[0] == ("reserve", "FAILED")
    order = aws.order("o-4")
    assert (order["status"], order["failedStep"]) == ("CANCELLED", "inventory")
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (1, 5)
    assert aws.item("PAYMENTS_TABLE", "payment#o-4") is None


def test_a_crash_after_the_charge_replays_the_step_and_charges_once(
    aws: SagaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lost reply: the charge is committed, the checkpoint of pay's end is not. The
    next invocation replays reserve from its checkpoint and runs pay again, which finds
    the payment decided."""
    aws.seed_stock()
    real_pay = tasks.pay
    crashed: list[str] = []
    calls: list[bool] = []

    def pay_then_crash(*args: Any, **kwargs: Any) -> Any:
        outcome = real_pay(*args, **kwargs)
        calls.append(outcome.created)
        if not crashed:
            crashed.append(outcome.order_id)
            raise LambdaCrash("pay")
        return outcome

    monkeypatch.setattr(tasks, "pay", pay_then_crash)

    result = run("o-5", "c-5")

    assert crashed == ["o-5"]
    assert result.status is InvocationStatus.SUCCEEDED
    # Run twice: the first decided, the replay found the decision (and counted no attempt).
    assert calls == [True, False]
    payment = aws.item("PAYMENTS_TABLE", "payment#o-5")
    assert (payment["status"], payment["chargedCents"], payment["attempts"]) == ("CHARGED", 7499, 1)
    assert len(aws.outbox_events("PaymentProcessed")) == 1
    assert aws.order("o-5")["status"] == "COMPLETED"


def test_a_throttled_call_is_retried_not_taken_for_a_business_failure(
    aws: SagaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB throttled ship's write (botocore's retries spent): the step is retried,
    the order completes."""
    aws.seed_stock()
    real_ship = tasks.ship
    throttled: list[str] = []

    def throttled_once(*args: Any, **kwargs: Any) -> Any:
        if not throttled:
            throttled.append("ship")
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            raise ClientError({"Error": error}, "TransactWriteItems")
        return real_ship(*args, **kwargs)

    monkeypatch.setattr(tasks, "ship", throttled_once)

    result = run("o-6", "c-6")

    assert throttled == ["ship"]
    assert result.status is InvocationStatus.SUCCEEDED
    assert result.get_step("ship").attempt == 2
    assert aws.order("o-6")["status"] == "COMPLETED"


def test_a_second_execution_for_the_same_order_changes_nothing(aws: SagaWorld) -> None:
    """EventBridge delivered OrderPlaced twice: each step of the second execution finds
    what the first decided; one charge, one reservation, one outcome event."""
    aws.seed_stock()

    first = run("o-7", "c-7", name="first")
    second = run("o-7", "c-7", name="second")

    assert first.status is second.status is InvocationStatus.SUCCEEDED
    assert aws.item("PAYMENTS_TABLE", "payment#o-7")["chargedCents"] == 7499
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (8, 4)
    assert outbox_types(aws) == [
        "InventoryReserved",
        "OrderCompleted",
        "OrderShipped",
        "PaymentProcessed",
    ]
