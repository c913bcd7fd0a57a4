"""ship_order on moto: one shipment decision per order, deterministic failures, the Step
Functions task that completes the order, and nothing decided for an order that is not
charged its total and reserved."""

from __future__ import annotations

from typing import Any
from unittest import mock

import boto3
import pytest

from contracts import InventoryReserved, PaymentFailed, sample_detail
from domain.shipping import CarrierConfig, ShippingConfigError
from handlers import process_payment, release_inventory, reserve_inventory, ship_order
from handlers.ship_order import ShipmentRefused, ShippingUnavailable
from saga import guards
from saga.payment_step import refund
from saga.store import OrderNotFoundError
from tests.functions.awsenv import CallRecorder
from tests.functions.handlers.conftest import (
    CONTEXT,
    SagaWorld,
    eventbridge,
    place_sample_order,
    saga_state,
    sqs_batch,
)


def paid(order_id: str = "order-1") -> dict[str, Any]:
    return eventbridge("PaymentProcessed", orderId=order_id)


def test_ships_a_paid_order(aws: SagaWorld) -> None:
    aws.reserve_and_charge(place_sample_order(aws))
    result = ship_order.handler(paid(), CONTEXT)

    assert (result["status"], result["carrier"]) == ("SHIPPED", "UPS")
    record = aws.item("SHIPMENTS_TABLE", "shipment#order-1")
    assert record["status"] == "SHIPPED"
    assert record["trackingNumber"] == result["trackingNumber"]
    (event,) = aws.outbox_events("OrderShipped")
    assert event["detail-type"] == "OrderShipped"
    assert (event["shipmentId"], event["trackingNumber"]) == (
        record["shipmentId"],
        record["trackingNumber"],
    )


def test_the_same_event_twice_ships_once(aws: SagaWorld) -> None:
    aws.reserve_and_charge(place_sample_order(aws))
    first = ship_order.handler(paid(), CONTEXT)
    again = ship_order.handler(paid(), CONTEXT)
    assert (first["created"], again["created"]) == (True, False)
    assert again["eventId"] == first["eventId"]
    assert len(aws.outbox_rows("OrderShipped")) == 1


def test_an_undeliverable_customer_fails_shipping(aws: SagaWorld) -> None:
    aws.reserve_and_charge(place_sample_order(aws, customerId="undeliverable-zed"))
    result = ship_order.handler(paid(), CONTEXT)
    assert result["status"] == "FAILED"
    (event,) = aws.outbox_events("ShippingFailed")
    assert event["detail-type"] == "ShippingFailed"
    assert event["reason"] == "address not deliverable (customer undeliverable-zed)"


def test_the_failure_rate_is_deterministic(aws: SagaWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPPING_FAILURE_RATE", "1")
    monkeypatch.setenv("SHIPPING_CARRIER", "DHL")
    aws.reserve_and_charge(place_sample_order(aws))
    assert ship_order.handler(paid(), CONTEXT)["status"] == "FAILED"
    assert "no carrier capacity" in aws.outbox_events("ShippingFailed")[0]["reason"]


def test_bad_shipping_settings_name_the_variable() -> None:
    with pytest.raises(ShippingConfigError, match="SHIPPING_FAILURE_RATE"):
        CarrierConfig.from_env({"SHIPPING_FAILURE_RATE": "sometimes"})


def test_an_unknown_order_is_an_error(aws: SagaWorld) -> None:
    with pytest.raises(OrderNotFoundError):
        ship_order.handler(paid(), CONTEXT)


def test_a_poison_record_fails_alone_in_an_sqs_batch(aws: SagaWorld) -> None:
    aws.reserve_and_charge(place_sample_order(aws))
    broken = paid()
    broken["detail"]["amountCents"] = -1
    response = ship_order.handler(sqs_batch(paid(), broken), CONTEXT)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert len(aws.outbox_rows("OrderShipped")) == 1


def test_ship_task_completes_the_order_once(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    results = {"reserve": reserve_inventory.task(saga_state(order), CONTEXT)}
    results["pay"] = process_payment.task(saga_state(order, results=results), CONTEXT)
    shipped = ship_order.task(saga_state(order, results=results), CONTEXT)
    again = ship_order.task(saga_state(order, results=results), CONTEXT)

    assert shipped["status"] == "SHIPPED"
    assert again["eventId"] == shipped["eventId"]
    saga = aws.order("order-1")
    assert saga["status"] == "COMPLETED"
    assert saga["closedAt"]
    assert [h["event"] for h in saga["history"]] == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentProcessed",
        "OrderShipped",
    ]
    assert len(aws.outbox_events("OrderCompleted")) == 1


def test_ship_task_raises_shipping_unavailable(aws: SagaWorld) -> None:
    order = place_sample_order(aws, customerId="undeliverable-amy")
    aws.reserve_and_charge(order)
    with pytest.raises(ShippingUnavailable, match="address not deliverable"):
        ship_order.task(saga_state(order), CONTEXT)
    saga = aws.order("order-1")
    assert (saga["status"], saga["failedStep"]) == ("CANCELLING", "shipping")


def test_ship_access_is_exact(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    order = place_sample_order(aws)
    aws.reserve_and_charge(order)
    aws_calls.reset()
    ship_order.task(saga_state(order), CONTEXT)
    ship_order.handler(paid(), CONTEXT)  # duplicate: found
    assert aws_calls.by_env() == ship_order.ACCESS


def test_a_forged_payment_for_a_declined_order_ships_nothing(aws: SagaWorld) -> None:
    """A PaymentProcessed for 1 cent, of an order whose payment was declined: shipping
    reads the payments table, refuses, and decides nothing (the event goes to the DLQ
    with the reason)."""
    order = place_sample_order(aws, customerId="declined-dan")
    aws.seed_stock()
    process_payment.on_inventory_reserved(
        InventoryReserved.model_validate(sample_detail("InventoryReserved", orderId="order-1"))
    )
    assert aws.item("PAYMENTS_TABLE", "payment#order-1")["status"] == "DECLINED"
    forged = eventbridge("PaymentProcessed", orderId="order-1", amountCents=1)
    with pytest.raises(ShipmentRefused, match=r"payment of order order-1 is DECLINED, not CHARGED"):
        ship_order.handler(forged, CONTEXT)
    with pytest.raises(ShipmentRefused, match="forged or stale"):
        ship_order.task(saga_state(order), CONTEXT)
    assert aws.item("SHIPMENTS_TABLE", "shipment#order-1") is None
    assert aws.outbox_rows("OrderShipped") == aws.outbox_rows("ShippingFailed") == []


def test_an_order_charged_less_than_its_total_ships_nothing(aws: SagaWorld) -> None:
    order = place_sample_order(aws)
    aws.reserve_and_charge(order)
    boto3.client("dynamodb").update_item(
        TableName="payments",
        Key={"pk": {"S": "payment#order-1"}},
        UpdateExpression="SET chargedCents = :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    with pytest.raises(
        ShipmentRefused,
        match=rf"order-1 was charged 1 USD cents, its total is {order.total_cents} USD cents",
    ):
        ship_order.handler(paid(), CONTEXT)
    assert aws.item("SHIPMENTS_TABLE", "shipment#order-1") is None


def test_an_order_whose_stock_was_released_ships_nothing(aws: SagaWorld) -> None:
    order = place_sample_order(aws)
    aws.reserve_and_charge(order)
    release_inventory.on_failure(
        PaymentFailed.model_validate(sample_detail("PaymentFailed", orderId="order-1"))
    )
    with pytest.raises(ShipmentRefused, match=r"reservation of order order-1 is RELEASED"):
        ship_order.handler(paid(), CONTEXT)
    assert aws.item("SHIPMENTS_TABLE", "shipment#order-1") is None


def test_a_refund_committed_first_makes_the_shipment_transaction_fail(aws: SagaWorld) -> None:
    """The facts are checked again inside the shipment's transaction: a refund between
    shipping's read and its write cancels the shipment (and the retry refuses)."""
    order = place_sample_order(aws)
    aws.reserve_and_charge(order)
    original = guards.unpaid
    calls = {"n": 0}

    def refund_right_after_the_read(*args: Any) -> str | None:
        answer = original(*args)
        calls["n"] += 1
        if calls["n"] == 1:  # the payment is refunded between the read and the write
            refund("order-1", reason="concurrent compensation")
        return answer

    with (
        mock.patch.object(guards, "unpaid", refund_right_after_the_read),
        pytest.raises(ShipmentRefused, match="is REFUNDED, not CHARGED"),
    ):
        ship_order.handler(paid(), CONTEXT)
    assert aws.item("SHIPMENTS_TABLE", "shipment#order-1") is None
    assert aws.outbox_rows("OrderShipped") == []
    assert len(aws.outbox_rows("PaymentRefunded")) == 1
