"""order_status on moto: the read model query (status, amounts, history), a clear
not-found answer, the HTTP entry; and saga_progress.record_outcome, the orchestration's
final-state recorder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers import order_status, place_order, process_payment, reserve_inventory, ship_order
from handlers.order_status import InvalidQueryError
from handlers.saga_progress import record_outcome
from tests.functions.awsenv import CallRecorder
from tests.functions.handlers.conftest import (
    CONTEXT,
    SagaWorld,
    place_sample_order,
    saga_state,
)

REQUEST = {
    "clientRequestId": "req-1",
    "customerId": "customer-1",
    "items": [{"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}],
}


def test_an_unknown_order_is_a_clear_not_found(aws: SagaWorld) -> None:
    answer = order_status.handler({"orderId": "nope"}, CONTEXT)
    assert answer == {
        "found": False,
        "orderId": "nope",
        "message": "no order nope: check the id returned when it was placed",
    }


def test_a_placed_order(aws: SagaWorld) -> None:
    order_id = place_order.handler(REQUEST, CONTEXT)["orderId"]
    answer = order_status.handler({"orderId": order_id}, CONTEXT)
    assert answer["found"] is True
    order = answer["order"]
    assert (order["orderId"], order["status"], order["final"]) == (order_id, "PLACED", False)
    assert (order["totalCents"], order["chargedCents"], order["refundedCents"]) == (2500, 0, 0)
    assert order["items"] == REQUEST["items"]
    assert [h["event"] for h in order["history"]] == ["OrderPlaced"]
    assert order["history"][0]["status"] == "PLACED"


def test_a_completed_order_shows_its_amounts_shipment_and_history(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    results: dict[str, Any] = {}
    results["reserve"] = reserve_inventory.task(saga_state(order), CONTEXT)
    results["pay"] = process_payment.task(saga_state(order, results=results), CONTEXT)
    results["ship"] = ship_order.task(saga_state(order, results=results), CONTEXT)

    view = order_status.handler({"orderId": "order-1"}, CONTEXT)["order"]
    assert (view["status"], view["final"], view["chargedCents"]) == ("COMPLETED", True, 7499)
    assert view["shipment"] == {
        "shipmentId": results["ship"]["shipmentId"],
        "carrier": "UPS",
        "trackingNumber": results["ship"]["trackingNumber"],
    }
    assert [(h["event"], h["status"]) for h in view["history"]] == [
        ("OrderPlaced", "PLACED"),
        ("InventoryReserved", "RESERVED"),
        ("PaymentProcessed", "PAID"),
        ("OrderShipped", "COMPLETED"),
    ]
    assert view["closedAt"] is not None


def http(**request: Any) -> dict[str, Any]:
    return {"requestContext": {"http": {"method": "GET"}}, **request}


def test_http_entry(aws: SagaWorld) -> None:
    order_id = place_order.handler(REQUEST, CONTEXT)["orderId"]
    found = order_status.handler(http(pathParameters={"orderId": order_id}), CONTEXT)
    assert found["statusCode"] == 200
    assert json.loads(found["body"])["order"]["status"] == "PLACED"

    by_query = order_status.handler(http(queryStringParameters={"orderId": order_id}), CONTEXT)
    assert by_query["statusCode"] == 200

    missing = order_status.handler(http(pathParameters={"orderId": "nope"}), CONTEXT)
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["found"] is False

    assert order_status.handler(http(), CONTEXT)["statusCode"] == 400


def test_a_query_without_an_order_id_says_what_to_send(aws: SagaWorld) -> None:
    with pytest.raises(InvalidQueryError, match="orderId"):
        order_status.handler({}, CONTEXT)


def test_order_status_access_is_read_only(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    order_status.handler({"orderId": "nope"}, CONTEXT)
    assert (
        aws_calls.by_env()
        == order_status.ACCESS
        == {"ORDERS_TABLE": frozenset({"dynamodb:GetItem"})}
    )


# --- record_outcome: the orchestration's final-state recorder ---------------------------


def test_record_outcome_ends_a_saga_whose_first_step_gave_up(aws: SagaWorld) -> None:
    order = place_sample_order(aws)
    error = {
        "Error": "Lambda.TooManyRequestsException",
        "Cause": json.dumps({"errorMessage": "Rate exceeded", "errorType": "TooManyRequests"}),
    }
    state = saga_state(order, error=error)

    first = record_outcome(state, CONTEXT)
    again = record_outcome(state, CONTEXT)

    assert first == again == {"orderId": "order-1", "status": "CANCELLED", "final": True}
    view = order_status.handler({"orderId": "order-1"}, CONTEXT)["order"]
    assert view["failedStep"] == "inventory"
    assert view["failureReason"] == "Lambda.TooManyRequestsException: Rate exceeded"
    (cancelled,) = aws.outbox_events("OrderCancelled")
    assert cancelled["failedStep"] == "inventory"


def test_record_outcome_keeps_a_completed_order(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    results: dict[str, Any] = {"reserve": reserve_inventory.task(saga_state(order), CONTEXT)}
    results["pay"] = process_payment.task(saga_state(order, results=results), CONTEXT)
    results["ship"] = ship_order.task(saga_state(order, results=results), CONTEXT)
    answer = record_outcome(saga_state(order, results=results), CONTEXT)
    assert answer["status"] == "COMPLETED"
    assert len(aws.outbox_events("OrderCompleted")) == 1
