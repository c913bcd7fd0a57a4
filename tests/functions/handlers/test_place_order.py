"""place_order on moto: the order, its request record and its outbox row in one
transaction; one order per client request id; validation; the HTTP entry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import OrderPlaced
from eventcraft.settings import ConfigurationError
from handlers import place_order
from handlers.place_order import InvalidOrderError, RequestIdReusedError
from tests.functions.awsenv import CallRecorder
from tests.functions.handlers.conftest import CONTEXT, SagaWorld

LINES = [
    {"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250},
    {"sku": "sku-blue-pot", "quantity": 1, "unitPriceCents": 4999},
]


def request(**overrides: Any) -> dict[str, Any]:
    return {
        "clientRequestId": "req-1",
        "customerId": "customer-1",
        "items": LINES,
        "currency": "USD",
        **overrides,
    }


def test_places_the_order_with_its_event_in_one_write(aws: SagaWorld) -> None:
    answer = place_order.handler(request(), CONTEXT)

    order_id = answer["orderId"]
    assert answer == {
        "orderId": order_id,
        "status": "PLACED",
        "created": True,
        "totalCents": 7499,
        "currency": "USD",
    }
    order = aws.order(order_id)
    assert order["status"] == "PLACED"
    assert order["version"] == 1
    assert (order["customerId"], order["totalCents"], order["currency"]) == (
        "customer-1",
        7499,
        "USD",
    )
    assert order["clientRequestId"] == "req-1"
    assert [h["event"] for h in order["history"]] == ["OrderPlaced"]
    assert aws.item("ORDERS_TABLE", "request#customer-1#req-1")["orderId"] == order_id

    (row,) = aws.outbox_rows()
    assert (row["detailType"], row["source"], row["published"]) == (
        "OrderPlaced",
        "order-saga.orders",
        False,
    )
    placed = OrderPlaced.model_validate_json(row["detail"])
    assert placed.order_id == order_id
    assert placed.total_cents == 7499
    assert order["appliedEventIds"] == [placed.event_id]

    # The relay publishes it: consumers get OrderPlaced v2 with its eventId.
    (event,) = aws.relay()
    assert event["detail-type"] == "OrderPlaced"
    assert event["detail"]["orderId"] == order_id
    assert event["detail"]["eventId"] == placed.event_id
    assert event["detail"]["version"] == "2"


def test_the_same_request_twice_places_one_order(aws: SagaWorld) -> None:
    first = place_order.handler(request(), CONTEXT)
    second = place_order.handler(request(), CONTEXT)

    assert second["orderId"] == first["orderId"]
    assert (first["created"], second["created"]) == (True, False)
    assert len(aws.outbox_rows()) == 1
    assert len([i for i in aws.scan("ORDERS_TABLE") if i["pk"].startswith("order#")]) == 1


def test_a_reused_request_id_for_another_order_is_refused(aws: SagaWorld) -> None:
    first = place_order.handler(request(), CONTEXT)
    with pytest.raises(RequestIdReusedError, match="use a new clientRequestId") as caught:
        place_order.handler(request(items=LINES[:1]), CONTEXT)
    assert first["orderId"] in str(caught.value)
    assert len(aws.outbox_rows()) == 1


def test_request_ids_are_scoped_per_customer(aws: SagaWorld) -> None:
    a = place_order.handler(request(), CONTEXT)
    b = place_order.handler(request(customerId="customer-2"), CONTEXT)
    assert a["orderId"] != b["orderId"]
    assert b["created"] is True
    assert len(aws.outbox_rows("OrderPlaced")) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"items": []}, "items"),
        ({"items": [LINES[0], LINES[0]]}, "one line per sku"),
        ({"totalCents": 1}, "omit totalCents or send the right sum"),
        ({"items": [{**LINES[0], "quantity": 0}]}, "quantity"),
        ({"currency": "usd"}, "currency"),
        ({"itmes": LINES}, "itmes"),
        ({"clientRequestId": ""}, "clientRequestId"),
    ],
)
def test_invalid_requests_write_nothing(
    aws: SagaWorld, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOrderError, match=message):
        place_order.handler(request(**overrides), CONTEXT)
    assert aws.scan("ORDERS_TABLE") == []
    assert aws.outbox_rows() == []


def test_currency_defaults_to_the_stack_currency(
    aws: SagaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFAULT_CURRENCY", "EUR")
    body = request()
    del body["currency"]
    answer = place_order.handler(body, CONTEXT)
    assert answer["currency"] == "EUR"
    assert json.loads(aws.outbox_rows()[0]["detail"])["currency"] == "EUR"


def http(body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "requestContext": {"http": {"method": "POST"}},
        "headers": headers or {},
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


def test_http_entry(aws: SagaWorld) -> None:
    body = request()
    del body["clientRequestId"]
    created = place_order.handler(http(body, {"Idempotency-Key": "key-1"}), CONTEXT)
    again = place_order.handler(http(body, {"Idempotency-Key": "key-1"}), CONTEXT)
    assert (created["statusCode"], again["statusCode"]) == (201, 200)
    assert json.loads(created["body"])["orderId"] == json.loads(again["body"])["orderId"]

    bad = place_order.handler(http("{not json"), CONTEXT)
    assert bad["statusCode"] == 400
    assert "not JSON" in json.loads(bad["body"])["message"]

    reused = place_order.handler(
        http({**body, "items": LINES[:1]}, {"idempotency-key": "key-1"}), CONTEXT
    )
    assert reused["statusCode"] == 409
    assert len(aws.outbox_rows()) == 1


def test_missing_configuration_names_the_variable(
    aws: SagaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTBOX_TABLE")
    with pytest.raises(ConfigurationError, match="OUTBOX_TABLE"):
        place_order.handler(request(), CONTEXT)


def test_access_is_exactly_what_the_code_calls(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    place_order.handler(request(), CONTEXT)
    place_order.handler(request(), CONTEXT)  # the replay path reads
    assert aws_calls.by_env() == place_order.ACCESS
