"""window_aggregate against moto: the Kinesis activity stream -> event-time windows,
late events within the lateness update their window, later ones are reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

from contracts import sample_event
from handlers import dlq_processor, window_aggregate
from tests.functions.awsenv import CallRecorder, create_queue, drain, kinesis_event, scan
from tests.functions.handlers.fixtures_side import (
    WINDOWS,
    Side,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)

STREAM = "order-activity"
# WINDOW_SECONDS=300, ALLOWED_LATENESS_SECONDS=120 (fixtures_side).


@pytest.fixture
def late_queue(side: Side, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    boto3.client("kinesis").create_stream(StreamName=STREAM, ShardCount=1)
    url = create_queue("late-events")
    monkeypatch.setenv("LATE_EVENTS_QUEUE_URL", url)
    yield url


def order(minute: int, second: int = 0, n: int = 0, total: int = 7499) -> dict[str, Any]:
    """An OrderPlaced that happened at 10:<minute>:<second> (event time)."""
    items = [{"sku": "sku-red-mug", "quantity": 1, "unitPriceCents": total}]
    return sample_event(
        "OrderPlaced",
        orderId=f"order-{minute}-{second}-{n}",
        eventId=f"event-{minute}-{second}-{n}",
        occurredAt=f"2025-01-15T10:{minute:02d}:{second:02d}Z",
        items=items,
        totalCents=total,
    )


def put(*events: dict[str, Any] | bytes) -> None:
    kinesis = boto3.client("kinesis")
    for event in events:
        data = event if isinstance(event, bytes) else json.dumps(event).encode()
        key = "x" if isinstance(event, bytes) else event["detail"].get("customerId", "x")
        kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey=key)


def process(skip: int = 0) -> dict[str, Any]:
    """Deliver the stream's records after the first `skip` as one batch."""
    batch = kinesis_event(STREAM)
    batch["Records"] = batch["Records"][skip:]
    return window_aggregate.handler(batch, None)


def windows() -> dict[tuple[str, str], tuple[int, int]]:
    """(key, window start HH:MM) -> (count, total) of every window item."""
    from datetime import UTC, datetime

    result = {}
    for item in scan(WINDOWS):
        if item["windowKey"].startswith("#"):
            continue  # the watermark item
        start = datetime.fromtimestamp(int(item["windowStart"]) / 1000, UTC).strftime("%H:%M")
        result[(item["windowKey"], start)] = (int(item["count"]), int(Decimal(item["total"])))
    return result


def test_events_are_grouped_by_event_time_not_arrival(late_queue: str) -> None:
    # Arrival order differs from event time order.
    put(order(31, n=1, total=100), order(36, total=1000), order(30, total=200), order(34, total=50))

    assert process() == {"batchItemFailures": []}

    assert windows() == {
        ("OrderPlaced#USD", "10:30"): (3, 350),
        ("OrderPlaced#USD", "10:35"): (1, 1000),
    }
    assert drain(late_queue) == []


def test_a_late_event_within_the_lateness_updates_its_window(late_queue: str) -> None:
    put(order(30), order(36))  # 10:36: the 10:30 window is complete
    process()
    # 10:34:59 is in the 10:30 window, complete since 10:36, but the watermark
    # (10:36 - 2 min = 10:34) has not passed its end (10:35): a late update, counted.
    put(order(34, 59, total=1))

    process(skip=2)

    assert windows()[("OrderPlaced#USD", "10:30")] == (2, 7500)
    assert drain(late_queue) == []


def test_an_event_later_than_the_lateness_is_reported_not_counted(late_queue: str) -> None:
    put(order(30), order(41))  # watermark 10:39 > 10:35, the end of the 10:30 window
    process()
    late = order(33)
    put(late)

    assert process(skip=2) == {"batchItemFailures": []}

    assert windows()[("OrderPlaced#USD", "10:30")] == (1, 7499)
    [report] = drain(late_queue)
    assert report["type"] == "LateEventRejected"
    assert report["eventId"] == late["detail"]["eventId"]
    assert (report["windowStart"], report["windowEnd"]) == (
        "2025-01-15T10:30:00+00:00",
        "2025-01-15T10:35:00+00:00",
    )
    assert report["watermark"] == "2025-01-15T10:39:00+00:00"
    assert report["detail"] == late["detail"]  # nothing lost: the event is in the report


def test_late_reports_are_inspectable_with_the_dlq_tool(
    late_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(order(30), order(45), order(31))
    process()
    monkeypatch.setenv("DLQ_URL", late_queue)
    report = dlq_processor.handler({"action": "inspect"}, None)
    assert report["byError"] == {"LateEventRejected": 1}


def test_a_redelivered_batch_changes_nothing(late_queue: str) -> None:
    put(order(30), order(31), order(36))
    process()
    before = windows()

    process()
    process(skip=1)

    assert windows() == before


def test_events_without_money_and_other_currencies_have_their_own_windows(
    late_queue: str,
) -> None:
    shipped = sample_event("OrderShipped", occurredAt="2025-01-15T10:32:00Z")
    euro = sample_event(
        "PaymentProcessed", eventId="p-eur", currency="EUR", occurredAt="2025-01-15T10:33:00Z"
    )
    put(order(31), shipped, euro)
    process()
    assert windows() == {
        ("OrderPlaced#USD", "10:30"): (1, 7499),
        ("OrderShipped", "10:30"): (1, 0),
        ("PaymentProcessed#EUR", "10:30"): (1, 7499),
    }


def test_a_record_that_is_not_an_event_is_reported_the_others_counted(late_queue: str) -> None:
    put(order(30), b"not json", order(31))
    batch = kinesis_event(STREAM)
    poison = batch["Records"][1]["kinesis"]["sequenceNumber"]

    result = window_aggregate.handler(batch, None)

    assert result == {"batchItemFailures": [{"itemIdentifier": poison}]}
    assert windows() == {("OrderPlaced#USD", "10:30"): (2, 14998)}


def test_window_settings_are_validated_by_name(
    late_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINDOW_SECONDS", "0")
    with pytest.raises(ValueError, match="WINDOW_SECONDS"):
        window_aggregate.handler({"Records": []}, None)
    monkeypatch.setenv("WINDOW_SECONDS", "60")
    monkeypatch.delenv("ALLOWED_LATENESS_SECONDS")
    with pytest.raises(ValueError, match="ALLOWED_LATENESS_SECONDS"):
        window_aggregate.handler({"Records": []}, None)


def test_access_is_what_the_code_calls(late_queue: str, side_calls: CallRecorder) -> None:
    put(order(30), order(45), order(31))  # the last one is too late: reported
    process()
    assert side_calls.by_env() == window_aggregate.ACCESS
