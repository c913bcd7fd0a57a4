"""import_orders against moto: a JSON Lines file in S3 -> orders placed through place_order,
once per file line; malformed lines reported on a queue, the others placed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from contracts import parse_detail
from eventcraft import outbox
from eventcraft.publisher import Publisher
from handlers import dlq_processor, import_orders
from tests.functions.awsenv import (
    CallRecorder,
    create_queue,
    create_table,
    drain,
    scan,
    stream_records,
)
from tests.functions.handlers.fixtures_side import (
    BUS,
    OUTBOX,
    Side,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)

BUCKET = "order-imports"
ORDERS = "orders"

MUG = {"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}
POT = {"sku": "sku-blue-pot", "quantity": 1, "unitPriceCents": 4999}
GOOD = [
    {"customerId": "customer-1", "items": [MUG], "currency": "USD"},
    {"customerId": "customer-2", "items": [MUG, POT], "totalCents": 7499},
    {"customerId": "customer-3", "items": [POT], "currency": "EUR"},
]


@pytest.fixture
def rejected(side: Side, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The import's setting; returns the rejected-lines queue URL."""
    create_table(ORDERS)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    url = create_queue("import-rejected-lines")
    monkeypatch.setenv("ORDERS_TABLE", ORDERS)
    monkeypatch.setenv("IMPORT_BUCKET", BUCKET)
    monkeypatch.setenv("REJECTED_LINES_QUEUE_URL", url)
    yield url


def upload(key: str, lines: list[Any]) -> dict[str, Any]:
    """Put the file; return the EventBridge "Object Created" event S3 sends for it."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    response = boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    etag = response["ETag"].strip('"')
    return {
        "version": "0",
        "id": f"s3-event-{etag}",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2025-01-15T10:30:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key, "size": len(text), "etag": etag, "sequencer": "00A1"},
            "request-id": "REQ1",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def orders() -> list[dict[str, Any]]:
    return [item for item in scan(ORDERS) if item["pk"].startswith("order#")]


def test_each_line_is_placed_through_place_order(side: Side, rejected: str) -> None:
    result = import_orders.handler(upload("batch-1.jsonl", GOOD), None)

    assert (result["lines"], result["placed"], result["alreadyPlaced"]) == (3, 3, 0)
    assert result["rejected"] == []
    placed = sorted(orders(), key=lambda o: o["customerId"])
    assert [(o["customerId"], int(o["totalCents"]), o["currency"]) for o in placed] == [
        ("customer-1", 2500, "USD"),
        ("customer-2", 7499, "USD"),  # the stack's default currency
        ("customer-3", 4999, "EUR"),
    ]
    assert all(o["status"] == "PLACED" for o in placed)
    # Their OrderPlaced events, through the outbox, as for any order.
    outbox.relay(stream_records(OUTBOX), table_name=OUTBOX, publisher=Publisher(BUS))
    events = [parse_detail("OrderPlaced", d) for d in side.details("OrderPlaced")]
    assert sorted(e.order_id for e in events) == sorted(o["orderId"] for o in placed)


def test_the_same_event_again_places_nothing(side: Side, rejected: str) -> None:
    event = upload("batch-1.jsonl", GOOD)
    import_orders.handler(event, None)

    again = import_orders.handler(event, None)

    assert (again["placed"], again["alreadyPlaced"]) == (0, 3)
    assert len(orders()) == 3
    assert len(scan(OUTBOX)) == 3


def test_an_identical_file_uploaded_again_places_nothing(side: Side, rejected: str) -> None:
    import_orders.handler(upload("batch-1.jsonl", GOOD), None)

    reupload = upload("batch-1.jsonl", GOOD)  # same key, same content: same ETag
    result = import_orders.handler(reupload, None)

    assert (result["placed"], result["alreadyPlaced"]) == (0, 3)
    assert len(orders()) == 3


def test_a_changed_file_is_a_new_import(side: Side, rejected: str) -> None:
    import_orders.handler(upload("batch-1.jsonl", GOOD), None)
    result = import_orders.handler(upload("batch-1.jsonl", [*GOOD, GOOD[0]]), None)
    assert (result["placed"], result["alreadyPlaced"]) == (4, 0)
    assert len(orders()) == 7


def test_malformed_lines_are_reported_and_the_others_placed(side: Side, rejected: str) -> None:
    lines = [
        GOOD[0],
        "",  # blank: skipped, but numbering goes on
        "{not json",
        {"customerId": "customer-9", "items": [{**MUG, "quantity": 0}]},
        ["an", "array"],
        {**GOOD[1], "clientRequestId": "mine"},
        {**GOOD[2], "coupon": "FREE"},
        GOOD[2],
    ]

    result = import_orders.handler(upload("mixed.jsonl", lines), None)

    assert (result["lines"], result["placed"]) == (7, 2)
    assert [(r["line"], r["code"]) for r in result["rejected"]] == [
        (3, "NotJson"),
        (4, "InvalidOrderLine"),
        (5, "NotAnObject"),
        (6, "InvalidOrderLine"),
        (7, "InvalidOrderLine"),
    ]
    assert len(orders()) == 2
    reports = sorted(drain(rejected), key=lambda r: r["line"])
    assert [r["line"] for r in reports] == [3, 4, 5, 6, 7]
    assert reports[0]["text"] == "{not json"
    assert {(r["bucket"], r["key"]) for r in reports} == {(BUCKET, "mixed.jsonl")}
    assert "coupon" in reports[-1]["error"]


def test_the_dlq_tool_summarises_the_rejected_lines(
    side: Side, rejected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_orders.handler(upload("bad.jsonl", ["{not json", "[1]", "nope", GOOD[0]]), None)
    monkeypatch.setenv("DLQ_URL", rejected)

    report = dlq_processor.handler({"action": "inspect"}, None)

    assert report["byError"] == {"NotJson": 2, "NotAnObject": 1}


def test_an_overwritten_file_supersedes_its_older_event(side: Side, rejected: str) -> None:
    old = upload("batch-1.jsonl", GOOD)
    upload("batch-1.jsonl", GOOD[:1])

    result = import_orders.handler(old, None)

    assert result["superseded"] is True
    assert orders() == []


def test_a_transient_failure_fails_the_invocation_and_the_retry_completes(
    side: Side, rejected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = upload("batch-1.jsonl", [*GOOD, "{broken"])
    monkeypatch.setenv("ORDERS_TABLE", "orders-not-there-yet")

    with pytest.raises(import_orders.ImportIncompleteError, match="lines 1, 2, 3"):
        import_orders.handler(event, None)
    assert [r["line"] for r in drain(rejected)] == [4]  # reported all the same

    monkeypatch.setenv("ORDERS_TABLE", ORDERS)
    result = import_orders.handler(event, None)  # EventBridge's retry
    assert result["placed"] == 3
    assert len(orders()) == 3


def test_events_of_another_bucket_are_refused(side: Side, rejected: str) -> None:
    event = upload("batch-1.jsonl", GOOD)
    event["detail"]["bucket"]["name"] = "someone-elses-bucket"
    with pytest.raises(import_orders.WrongBucketError, match="IMPORT_BUCKET"):
        import_orders.handler(event, None)
    assert orders() == []


def test_the_idempotency_key_is_bucket_key_etag_and_line() -> None:
    key = import_orders.client_request_id("b", "k", "e", 1)
    assert key.startswith("import-") and len(key) <= 512
    assert key == import_orders.client_request_id("b", "k", "e", 1)
    others = {
        import_orders.client_request_id("b", "k", "e", 2),
        import_orders.client_request_id("b", "k", "f", 1),
        import_orders.client_request_id("b", "j", "e", 1),
        import_orders.client_request_id("c", "k", "e", 1),
    }
    assert key not in others and len(others) == 4


def test_access_covers_what_place_order_needs() -> None:
    from handlers import place_order

    assert {k: import_orders.ACCESS[k] for k in place_order.ACCESS} == place_order.ACCESS


def test_access_is_what_the_code_calls(side: Side, rejected: str, side_calls: CallRecorder) -> None:
    event = upload("batch-1.jsonl", [*GOOD, "{broken"])
    import_orders.handler(event, None)
    import_orders.handler(event, None)  # duplicate: place_order reads the first order
    assert side_calls.by_env() == import_orders.ACCESS
