"""place_order on moto: the order, its request record and its outbox row in one
transaction; one order per client request id; validation; the HTTP entry."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from contracts import OrderPlaced
from eventcraft.settings import ConfigurationError
from handlers import place_order
from handlers.place_order import InvalidOrderError, RequestIdReusedError
from tests.functions.awsenv import CallRecorder
from tests.functions.handlers.conftest import CONTEXT, TABLES, SagaWorld

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


# --- #11 point 10: what a request may hold, refused with the field and what is allowed ----


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # A field inside a line is refused like one of the request.
        (
            {"items": [{**LINES[0], "colour": "red"}]},
            r"items\.0\.colour: Extra inputs are not permitted",
        ),
        # Numbers are JSON integers: a string or a boolean is not converted.
        (
            {"items": [{**LINES[0], "quantity": "2"}]},
            r"items\.0\.quantity: Input should be a valid integer \(got '2', a string\)",
        ),
        (
            {"items": [{**LINES[0], "quantity": True}]},
            r"items\.0\.quantity: Input should be a valid integer \(got True, a boolean\)",
        ),
        (
            {"items": [{**LINES[0], "unitPriceCents": "1250"}]},
            r"items\.0\.unitPriceCents: Input should be a valid integer \(got '1250'",
        ),
        ({"totalCents": "2500"}, r"totalCents: Input should be a valid integer"),
        (
            {"currency": "ZZZ"},
            r"currency: Value error, 'ZZZ' is not an ISO 4217 currency code an order can be "
            r"paid in \(e\.g\. USD, EUR, JPY\)",
        ),
        # Invisible characters in ids: shown as escapes, with their name.
        (
            {"customerId": "alice\x07"},
            r"customerId: Value error, holds \\x07 \(a control character\) at position 5: an "
            r"id may hold visible characters and plain spaces only",
        ),
        (
            {"customerId": "alice\u202eecila"},
            r"customerId: .*\\u202e \(RIGHT-TO-LEFT OVERRIDE\) at position 5",
        ),
        (
            {"clientRequestId": "req\u200b-1"},
            r"clientRequestId: .*\\u200b \(ZERO WIDTH SPACE\)",
        ),
        (
            {"items": [{**LINES[0], "sku": "sku-red-mug\u2066"}]},
            r"items\.0\.sku: .*\\u2066 \(LEFT-TO-RIGHT ISOLATE\)",
        ),
        ({"customerId": " alice"}, r"customerId: .*starts or ends with a space"),
        # A control character in a field NAME is shown escaped, never raw.
        (
            {"items": [{**LINES[0], "qu\x00antity": 2}]},
            r"items\.0\.qu\\x00antity: Extra inputs are not permitted",
        ),
    ],
)
def test_a_request_is_read_strictly(
    aws: SagaWorld, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOrderError, match=message) as refused:
        place_order.handler(request(**overrides), CONTEXT)
    assert not any(c in str(refused.value) for c in "\x00\x07\u202e\u200b\u2066")
    assert aws.scan("ORDERS_TABLE") == []
    assert aws.outbox_rows() == []


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(None, "null"), (42, "a JSON int"), ("an order", "a JSON str"), ([], "a JSON list")],
)
def test_a_payload_that_is_not_an_object_is_refused_clearly(
    aws: SagaWorld, payload: Any, kind: str
) -> None:
    expected = f"the request is {kind}; send a JSON object with clientRequestId"
    with pytest.raises(InvalidOrderError, match=expected):
        place_order.handler(payload, CONTEXT)
    refused = place_order.handler(http(json.dumps(payload)), CONTEXT)
    assert refused["statusCode"] == 400
    assert expected in json.loads(refused["body"])["message"]
    assert aws.scan("ORDERS_TABLE") == []


# --- #11 points 6 and 7: amounts within what EventBridge and DynamoDB compare exactly -------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # A price or quantity beyond the bounds is refused before any arithmetic (a
        # 39-digit total failed with [<class 'decimal.Rounded'>]).
        (
            {"items": [{**LINES[0], "unitPriceCents": 10**39}]},
            r"items\.0\.unitPriceCents: Input should be less than or equal to 5000000000",
        ),
        (
            {"items": [{**LINES[0], "quantity": 10**40}]},
            r"items\.0\.quantity: Input should be less than or equal to 10000",
        ),
        # Each line within bounds, the total over what EventBridge compares numerically:
        # it would skip the high-value review.
        (
            {"items": [{**LINES[0], "unitPriceCents": 2_500_000_001}]},
            r"the order's total 5000000002 \(the sum of quantity \* unitPriceCents\) is "
            r"over the maximum of 5000000000 minor units per order: split the order",
        ),
        ({"totalCents": 10**39}, r"totalCents: Input should be less than or equal to"),
    ],
)
def test_amounts_beyond_the_bounds_are_refused(
    aws: SagaWorld, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOrderError, match=message):
        place_order.handler(request(**overrides), CONTEXT)
    assert aws.scan("ORDERS_TABLE") == []


def test_the_largest_order_is_placed(aws: SagaWorld) -> None:
    line = {"sku": "sku-gold-bar", "quantity": 2, "unitPriceCents": 2_500_000_000}
    answer = place_order.handler(request(items=[line]), CONTEXT)
    assert answer["totalCents"] == 5_000_000_000
    (row,) = aws.outbox_rows()
    assert json.loads(row["detail"])["totalCents"] == 5_000_000_000


# --- #11 point 8: request keys are unambiguous, refusals name only the customer's own ------


def test_a_hash_in_ids_does_not_make_two_customers_share_a_request(aws: SagaWorld) -> None:
    """Customer "alice#b" with request "c" and customer "alice" with request "b#c" had the
    same request key: the second was refused with the first customer's order id."""
    first = place_order.handler(request(customerId="alice#b", clientRequestId="c"), CONTEXT)
    second = place_order.handler(request(customerId="alice", clientRequestId="b#c"), CONTEXT)

    assert (first["created"], second["created"]) == (True, True)
    assert first["orderId"] != second["orderId"]
    assert aws.order(second["orderId"])["customerId"] == "alice"
    # Each request is still idempotent under its own key.
    again = place_order.handler(request(customerId="alice", clientRequestId="b#c"), CONTEXT)
    assert (again["orderId"], again["created"]) == (second["orderId"], False)
    keys = sorted(i["pk"] for i in aws.scan("ORDERS_TABLE") if i["pk"].startswith("request#"))
    assert keys == ["request#alice#b%23c", "request#alice%23b#c"]


def test_an_escape_sequence_in_an_id_is_not_read_as_a_hash(aws: SagaWorld) -> None:
    first = place_order.handler(request(customerId="bob%23x", clientRequestId="r"), CONTEXT)
    second = place_order.handler(request(customerId="bob#x", clientRequestId="r"), CONTEXT)
    assert first["orderId"] != second["orderId"]
    assert second["created"] is True


def test_a_request_record_from_before_the_escaping_still_answers_its_retry(
    aws: SagaWorld,
) -> None:
    """A record written under the former key (ids unescaped) answers a retry of ITS
    request, and never one of another customer that the former key scheme mixed up."""
    earlier = place_order.handler(request(customerId="alice#b", clientRequestId="c"), CONTEXT)
    # Move its record to the key the former code wrote it under (ids unescaped).
    table = boto3.resource("dynamodb").Table(TABLES["ORDERS_TABLE"])
    record = aws.item("ORDERS_TABLE", "request#alice%23b#c")
    assert record is not None
    table.delete_item(Key={"pk": "request#alice%23b#c"})
    table.put_item(Item={**record, "pk": "request#alice#b#c"})

    retry = place_order.handler(request(customerId="alice#b", clientRequestId="c"), CONTEXT)
    other = place_order.handler(request(customerId="alice", clientRequestId="b#c"), CONTEXT)

    assert (retry["orderId"], retry["created"]) == (earlier["orderId"], False)
    assert other["created"] is True and other["orderId"] != earlier["orderId"]
    with pytest.raises(RequestIdReusedError) as reused:
        place_order.handler(
            request(customerId="alice#b", clientRequestId="c", items=LINES[:1]), CONTEXT
        )
    assert earlier["orderId"] in str(reused.value)  # the customer's own order
    assert len(aws.outbox_rows("OrderPlaced")) == 2


def test_a_refused_request_id_never_names_another_customers_order(aws: SagaWorld) -> None:
    theirs = place_order.handler(request(customerId="alice#b", clientRequestId="c"), CONTEXT)
    mine = place_order.handler(request(customerId="alice", clientRequestId="b#c"), CONTEXT)
    with pytest.raises(RequestIdReusedError) as refused:
        place_order.handler(
            request(customerId="alice", clientRequestId="b#c", items=LINES[:1]), CONTEXT
        )
    assert mine["orderId"] in str(refused.value)
    assert theirs["orderId"] not in str(refused.value)
