"""Transactional outbox on moto: atomic write, then stream -> relay -> bus -> queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest

from contracts import OrderPlaced, sample_detail
from eventcraft import outbox
from eventcraft.outbox import ConditionFailedError
from eventcraft.publisher import Publisher
from tests.functions.awsenv import (
    EventsSpy,
    capture_bus,
    create_table,
    drain,
    mocked,
    scan,
    stream_records,
)

ORDERS, OUTBOX, BUS = "orders", "outbox", "saga-bus"


@pytest.fixture
def queue() -> Iterator[str]:
    """moto with the orders table, the outbox table (stream NEW_IMAGE) and a bus whose
    events land in the yielded queue."""
    with mocked():
        create_table(ORDERS)
        create_table(OUTBOX, stream=True)
        yield capture_bus(BUS)


def order(n: int = 1, **overrides: Any) -> OrderPlaced:
    fields = {"orderId": f"order-{n}", "eventId": f"event-{n}", **overrides}
    return OrderPlaced.model_validate(sample_detail("OrderPlaced", **fields))


def place(placed: OrderPlaced, *, outbox_table: str = OUTBOX) -> None:
    """The place_order use case: the order, once, with its OrderPlaced event."""
    order_item = outbox.put(
        ORDERS,
        {
            "pk": placed.order_id,
            "status": "PLACED",
            "totalCents": placed.total_cents,
            "currency": placed.currency,
        },
        condition="attribute_not_exists(pk)",
    )
    outbox.write([order_item], [placed], outbox_table=outbox_table)


def relay(records: list[dict[str, Any]], client: Any = None) -> outbox.RelayResult:
    events = client or boto3.client("events")
    return outbox.relay(records, table_name=OUTBOX, publisher=Publisher(BUS, client=events))


@pytest.mark.usefixtures("queue")
def test_order_and_outbox_row_are_written_together() -> None:
    placed = order()
    place(placed)
    assert scan(ORDERS) == [
        {"pk": "order-1", "status": "PLACED", "totalCents": 7499, "currency": "USD"}
    ]
    (row,) = scan(OUTBOX)
    assert row["pk"] == "outbox#event-1"
    assert row["eventId"] == "event-1"
    assert (row["detailType"], row["source"]) == ("OrderPlaced", "order-saga.orders")
    assert row["detail"] == placed.to_json()
    assert datetime.fromisoformat(row["createdAt"]).tzinfo is not None
    assert row["published"] is False
    assert outbox.TTL_ATTRIBUTE not in row  # no expiry until published


@pytest.mark.usefixtures("queue")
def test_a_failing_business_condition_writes_neither_the_order_nor_the_outbox_row() -> None:
    existing = {"pk": {"S": "order-1"}, "status": {"S": "SHIPPED"}}
    boto3.client("dynamodb").put_item(TableName=ORDERS, Item=existing)
    with pytest.raises(ConditionFailedError) as caught:
        place(order())
    assert caught.value.failed == [(0, ORDERS)]
    assert "do not retry it unchanged" in str(caught.value)
    assert scan(ORDERS) == [{"pk": "order-1", "status": "SHIPPED"}]  # untouched
    assert scan(OUTBOX) == []  # and no event for a change that did not happen


@pytest.mark.usefixtures("queue")
def test_the_same_event_id_cannot_be_recorded_twice() -> None:
    place(order(1))
    with pytest.raises(ConditionFailedError, match="an outbox row") as caught:
        place(order(2, eventId="event-1"))
    assert caught.value.failed == [(1, OUTBOX)]
    assert [item["pk"] for item in scan(ORDERS)] == ["order-1"]


@pytest.mark.usefixtures("queue")
def test_a_throttled_transaction_is_a_retryable_error_and_writes_nothing() -> None:
    """DynamoDB cancels a throttled transaction (reason ThrottlingError); botocore does not
    retry a TransactionCanceledException, so the outbox names it retryable: a saga step
    and a queue consumer retry it instead of taking it for a business failure."""
    from eventcraft_sandbox.fault_injection import FaultInjector
    from eventcraft_sandbox.faults import FaultPlan

    throttled = FaultInjector(FaultPlan.parse(["throttle@dynamodb=1"], seed=0), clients=True)
    with throttled.installed(), pytest.raises(outbox.TransactionThrottledError) as caught:
        place(order())
    assert isinstance(caught.value, outbox.TransactionConflictError)  # retried as one
    assert "ThrottlingError" in str(caught.value)
    assert "retry the command after a backoff" in str(caught.value)
    assert scan(ORDERS) == [] and scan(OUTBOX) == []
    place(order())  # the same command, once the throttling is over
    assert [item["pk"] for item in scan(ORDERS)] == ["order-1"]


def test_transaction_size_is_checked_before_calling_dynamodb() -> None:
    with pytest.raises(ValueError, match="DynamoDB allows 100"):
        outbox.write([{"Put": {}}] * 100, [order()], outbox_table=OUTBOX)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no events"):
        outbox.write([], [], outbox_table=OUTBOX)


def test_put_refuses_floats() -> None:
    with pytest.raises(TypeError, match="Float types are not supported"):
        outbox.put(ORDERS, {"pk": "o", "total": 74.99})


def test_relay_publishes_outbox_rows_and_marks_them(queue: str) -> None:
    placed = [order(n) for n in range(3)]
    for one in placed:
        place(one)
    records = stream_records(OUTBOX)
    assert [r["eventName"] for r in records] == ["INSERT"] * 3

    result = relay(records)

    assert sorted(result.published) == ["event-0", "event-1", "event-2"]
    assert (result.failures, result.skipped) == ([], 0)
    assert result.batch_response() == {"batchItemFailures": []}
    delivered = {d["detail"]["eventId"]: d for d in drain(queue)}
    assert sorted(delivered) == ["event-0", "event-1", "event-2"]
    for one in placed:
        event = delivered[one.event_id]
        assert event["detail"] == one.to_detail()
        assert (event["detail-type"], event["source"]) == ("OrderPlaced", "order-saga.orders")
    rows = {row["eventId"]: row for row in scan(OUTBOX)}
    for row in rows.values():
        assert row["published"] is True
        expires = int(row[outbox.TTL_ATTRIBUTE])
        assert abs(expires - (time.time() + 7 * 24 * 3600)) < 60


def test_relay_ignores_its_own_updates_and_redelivery_is_harmless(queue: str) -> None:
    place(order())
    inserts = stream_records(OUTBOX)
    relay(inserts)
    first_mark = scan(OUTBOX)[0]["publishedAt"]
    drain(queue)

    later = stream_records(OUTBOX)[len(inserts) :]
    assert [r["eventName"] for r in later] == ["MODIFY"]  # the `published` update
    ignored = relay(later)
    assert (ignored.published, ignored.skipped) == ([], 1)
    assert drain(queue) == []

    # The stream delivers the INSERT again (the relay's invocation was retried): the event
    # goes out again with the same eventId (at least once; consumers are idempotent on it)
    # and the row keeps its first mark (the conditional update is idempotent).
    again = relay(inserts)
    assert again.published == ["event-1"]
    assert [d["detail"]["eventId"] for d in drain(queue)] == ["event-1"]
    assert scan(OUTBOX)[0]["publishedAt"] == first_mark


def test_relay_reports_unpublished_rows_as_batch_item_failures(queue: str) -> None:
    for n in range(3):
        place(order(n))
    records = stream_records(OUTBOX)
    spy = EventsSpy(boto3.client("events"), fail={"order-1": ["AccessDeniedException"]})

    result = relay(records, client=spy)

    assert sorted(result.published) == ["event-0", "event-2"]
    (failure,) = result.failures
    assert failure.event_id == "event-1"
    assert "AccessDeniedException" in failure.reason
    failed_record = next(r for r in records if "event-1" in r["dynamodb"]["Keys"]["pk"]["S"])
    assert result.batch_response() == {
        "batchItemFailures": [{"itemIdentifier": failed_record["dynamodb"]["SequenceNumber"]}]
    }
    published = {row["eventId"]: row["published"] for row in scan(OUTBOX)}
    assert published == {"event-0": True, "event-1": False, "event-2": True}
    assert sorted(d["detail"]["eventId"] for d in drain(queue)) == ["event-0", "event-2"]


def test_outbox_sharing_the_business_table(queue: str) -> None:
    """Single-table design: the relay publishes only the rows with the outbox prefix."""
    boto3.client("dynamodb").update_table(
        TableName=ORDERS,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    place(order(), outbox_table=ORDERS)
    records = stream_records(ORDERS)
    assert len(records) == 2
    result = outbox.relay(
        records, table_name=ORDERS, publisher=Publisher(BUS, client=boto3.client("events"))
    )
    assert (result.published, result.skipped) == (["event-1"], 1)
    assert [d["detail"]["orderId"] for d in drain(queue)] == ["order-1"]


@pytest.mark.usefixtures("queue")
def test_a_malformed_outbox_row_fails_only_its_record() -> None:
    def insert(image: dict[str, Any], seq: str) -> dict[str, Any]:
        return {
            "eventName": "INSERT",
            "dynamodb": {
                "NewImage": {k: {"S": v} for k, v in image.items()},
                "SequenceNumber": seq,
            },
        }

    good = order()
    row = {k: v for k, v in outbox.outbox_row(good).items() if k != "published"}
    broken = {"pk": "outbox#broken", "eventId": "broken"}
    spy = EventsSpy()
    result = outbox.relay(
        [insert(broken, "1"), insert(row, "2")],
        table_name=OUTBOX,
        publisher=Publisher(BUS, client=spy),  # type: ignore[arg-type]
    )
    assert result.published == ["event-1"]
    assert [(f.sequence_number, f.event_id) for f in result.failures] == [("1", None)]
    assert "lacks detailType" in result.failures[0].reason
    assert spy.requests == [["order-1"]]


def test_a_row_too_large_to_publish_does_not_hold_back_the_others(queue: str) -> None:
    place(order(1))
    place(order(2))
    records = stream_records(OUTBOX)
    huge = json.loads(json.dumps(records[0]))
    huge["dynamodb"]["NewImage"]["detail"] = {"S": json.dumps({"blob": "x" * 300_000})}

    result = relay([*records[1:], huge])

    assert result.published == ["event-2"]
    (failure,) = result.failures
    assert (failure.event_id, failure.sequence_number) == (
        "event-1",
        huge["dynamodb"]["SequenceNumber"],
    )
    assert "EntryTooLarge" in failure.reason
    assert [d["detail"]["eventId"] for d in drain(queue)] == ["event-2"]


@pytest.mark.usefixtures("queue")
def test_relay_entry_uses_the_row_bytes_and_time() -> None:
    placed = order()
    row = outbox.outbox_row(placed)
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "NewImage": {
                **{k: {"S": v} for k, v in row.items() if isinstance(v, str)},
                "published": {"BOOL": False},
            },
            "SequenceNumber": "9",
        },
    }
    spy = _Recording()
    outbox.relay(
        [record],
        table_name=OUTBOX,
        publisher=Publisher(BUS, client=spy),  # type: ignore[arg-type]
    )
    (entry,) = spy.entries
    assert entry["Detail"] == placed.to_json()
    assert entry["Time"] == datetime.fromisoformat(row["createdAt"])
    assert json.loads(entry["Detail"])["eventId"] == placed.event_id


class _Recording:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}
