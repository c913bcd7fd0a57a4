"""ship_order on moto: one shipment decision per order, deterministic failures, the Step
Functions task that completes the order."""

from __future__ import annotations

from typing import Any

import pytest

from domain.shipping import CarrierConfig, ShippingConfigError
from handlers import process_payment, reserve_inventory, ship_order
from handlers.ship_order import ShippingUnavailable
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
    place_sample_order(aws)
    result = ship_order.handler(paid(), CONTEXT)

    assert (result["status"], result["carrier"]) == ("SHIPPED", "UPS")
    record = aws.item("SHIPMENTS_TABLE", "shipment#order-1")
    assert record["status"] == "SHIPPED"
    assert record["trackingNumber"] == result["trackingNumber"]
    (event,) = aws.outbox_events()
    assert event["detail-type"] == "OrderShipped"
    assert (event["shipmentId"], event["trackingNumber"]) == (
        record["shipmentId"],
        record["trackingNumber"],
    )


def test_the_same_event_twice_ships_once(aws: SagaWorld) -> None:
    place_sample_order(aws)
    first = ship_order.handler(paid(), CONTEXT)
    again = ship_order.handler(paid(), CONTEXT)
    assert (first["created"], again["created"]) == (True, False)
    assert again["eventId"] == first["eventId"]
    assert len(aws.outbox_rows()) == 1


def test_an_undeliverable_customer_fails_shipping(aws: SagaWorld) -> None:
    place_sample_order(aws, customerId="undeliverable-zed")
    result = ship_order.handler(paid(), CONTEXT)
    assert result["status"] == "FAILED"
    (event,) = aws.outbox_events()
    assert event["detail-type"] == "ShippingFailed"
    assert event["reason"] == "address not deliverable (customer undeliverable-zed)"


def test_the_failure_rate_is_deterministic(aws: SagaWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPPING_FAILURE_RATE", "1")
    monkeypatch.setenv("SHIPPING_CARRIER", "DHL")
    place_sample_order(aws)
    assert ship_order.handler(paid(), CONTEXT)["status"] == "FAILED"
    assert "no carrier capacity" in aws.outbox_events()[0]["reason"]


def test_bad_shipping_settings_name_the_variable() -> None:
    with pytest.raises(ShippingConfigError, match="SHIPPING_FAILURE_RATE"):
        CarrierConfig.from_env({"SHIPPING_FAILURE_RATE": "sometimes"})


def test_an_unknown_order_is_an_error(aws: SagaWorld) -> None:
    with pytest.raises(OrderNotFoundError):
        ship_order.handler(paid(), CONTEXT)


def test_a_poison_record_fails_alone_in_an_sqs_batch(aws: SagaWorld) -> None:
    place_sample_order(aws)
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
    with pytest.raises(ShippingUnavailable, match="address not deliverable"):
        ship_order.task(saga_state(order), CONTEXT)
    saga = aws.order("order-1")
    assert (saga["status"], saga["failedStep"]) == ("CANCELLING", "shipping")


def test_ship_access_is_exact(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    order = place_sample_order(aws)
    ship_order.task(saga_state(order), CONTEXT)
    ship_order.handler(paid(), CONTEXT)  # duplicate: found
    assert aws_calls.by_env() == ship_order.ACCESS
