"""The outbox sweep on moto: rows a relay gave up on are published later, once, and
the sweep and the relay never undo each other's marks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from contracts import OrderPlaced, sample_detail
from eventcraft import outbox
from eventcraft.publisher import Publisher
from tests.functions.awsenv import EventsSpy, capture_bus, drain, mocked, scan, stream_records

OUTBOX, BUS = "outbox", "saga-bus"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def create_outbox_table() -> None:
    """The layout `pulumi_eventcraft.table.outbox_table()` declares: key pk, NEW_IMAGE
    stream, the sparse `pending` index (pendingShard, createdAt)."""
    boto3.client("dynamodb").create_table(
        TableName=OUTBOX,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": outbox.PENDING_SHARD, "AttributeType": "S"},
            {"AttributeName": outbox.CREATED_AT, "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": outbox.PENDING_INDEX,
                "KeySchema": [
                    {"AttributeName": outbox.PENDING_SHARD, "KeyType": "HASH"},
                    {"AttributeName": outbox.CREATED_AT, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )


@pytest.fixture
def queue() -> Iterator[str]:
    """moto with the outbox table and a bus whose events land in the yielded queue."""
    with mocked():
        create_outbox_table()
        yield capture_bus(BUS)


def order(n: int) -> OrderPlaced:
    fields = {"orderId": f"order-{n}", "eventId": f"event-{n}"}
    return OrderPlaced.model_validate(sample_detail("OrderPlaced", **fields))


def write(n: int, at: datetime) -> OrderPlaced:
    """An order's outbox row written at `at` (the relay then gives up on it)."""
    placed = order(n)
    outbox.write([], [placed], outbox_table=OUTBOX, now=at)
    return placed


def sweep(at: datetime, events: Any = None) -> outbox.SweepResult:
    return outbox.sweep(
        OUTBOX,
        publisher=Publisher(BUS, client=events or boto3.client("events"), sleep=lambda _: None),
        now=lambda: at,
    )


def rows() -> dict[str, dict[str, Any]]:
    return {row["eventId"]: row for row in scan(OUTBOX)}


def test_rows_the_relay_gave_up_on_are_published_and_leave_the_index(queue: str) -> None:
    placed = [write(n, T0 + timedelta(seconds=n)) for n in range(3)]
    assert {row["pendingShard"] for row in rows().values()} <= {str(s) for s in range(16)}

    result = sweep(T0 + timedelta(minutes=5))

    assert sorted(result.marked) == ["event-0", "event-1", "event-2"]
    assert result.complete
    delivered = {d["detail"]["eventId"]: d for d in drain(queue)}
    for one in placed:
        assert delivered[one.event_id]["detail"] == one.to_detail()
        assert delivered[one.event_id]["detail-type"] == "OrderPlaced"
    for row in rows().values():
        assert row["published"] is True
        assert "pendingShard" not in row  # out of the sparse index
        assert int(row[outbox.TTL_ATTRIBUTE]) > (T0 + timedelta(days=6)).timestamp()
    assert list(outbox.unpublished(OUTBOX)) == []
    assert sweep(T0 + timedelta(minutes=10)).marked == []  # nothing twice
    assert drain(queue) == []


def test_young_rows_are_left_to_the_relay(queue: str) -> None:
    write(1, T0)
    write(2, T0 + timedelta(minutes=4))

    result = sweep(T0 + timedelta(minutes=5))  # rows older than 2 minutes only

    assert result.marked == ["event-1"]
    assert [d["detail"]["eventId"] for d in drain(queue)] == ["event-1"]
    assert (rows()["event-1"]["published"], rows()["event-2"]["published"]) == (True, False)


def test_unpublished_rows_are_listed_oldest_first_across_shards(queue: str) -> None:
    times = {n: T0 + timedelta(seconds=(7 * n) % 20) for n in range(20)}
    for n, at in times.items():
        write(n, at)
    listed = list(outbox.unpublished(OUTBOX))
    assert len({outbox.pending_shard(row.event_id) for row in listed}) > 1
    assert [row.created_at for row in listed] == sorted(times.values())
    cutoff = T0 + timedelta(seconds=10)
    assert {row.event_id for row in outbox.unpublished(OUTBOX, written_before=cutoff)} == {
        f"event-{n}" for n, at in times.items() if at < cutoff
    }


def test_the_relay_and_the_sweep_never_undo_each_others_mark(queue: str) -> None:
    write(1, T0)
    inserts = stream_records(OUTBOX)

    swept = sweep(T0 + timedelta(minutes=3))
    assert swept.marked == ["event-1"]
    mark = rows()["event-1"]["publishedAt"]
    # The relay's retry comes through after the sweep: the event goes out again (the
    # consumers deduplicate on eventId) and the sweep's mark stays as it was.
    relayed = outbox.relay(
        inserts, table_name=OUTBOX, publisher=Publisher(BUS, client=boto3.client("events"))
    )
    assert relayed.published == ["event-1"]
    assert rows()["event-1"]["publishedAt"] == mark
    assert [d["detail"]["eventId"] for d in drain(queue)] == ["event-1", "event-1"]


def test_a_failing_bus_stops_the_sweep_and_leaves_the_rows_for_the_next_one(queue: str) -> None:
    for n in range(3):
        write(n, T0 + timedelta(seconds=n))
    down = EventsSpy(
        boto3.client("events"), fail={f"order-{n}": ["InternalFailure"] * 4 for n in range(3)}
    )

    result = outbox.republish(
        outbox.unpublished(OUTBOX),
        table_name=OUTBOX,
        publisher=Publisher(BUS, client=down, sleep=lambda _: None),
        batch_size=2,
        now=lambda: T0,
    )

    assert result.marked == []
    assert sorted(f.event_id or "" for f in result.failures) == ["event-0", "event-1"]
    assert "InternalFailure" in result.failures[0].reason
    assert result.more_left and not result.complete  # the third batch was not tried
    assert len(down.requests) == 4  # one batch, its 4 attempts
    assert all(row["published"] is False for row in rows().values())
    assert sorted(sweep(T0 + timedelta(minutes=3)).marked) == ["event-0", "event-1", "event-2"]


def test_a_limit_and_a_deadline_stop_the_republish(queue: str) -> None:
    for n in range(5):
        write(n, T0 + timedelta(seconds=n))
    publisher = Publisher(BUS, client=boto3.client("events"))
    limited = outbox.republish(
        outbox.unpublished(OUTBOX), table_name=OUTBOX, publisher=publisher, limit=2
    )
    assert (limited.marked, limited.more_left) == (["event-0", "event-1"], True)
    timed = outbox.republish(
        outbox.unpublished(OUTBOX),
        table_name=OUTBOX,
        publisher=publisher,
        batch_size=1,
        out_of_time=lambda: True,
    )
    assert (timed.marked, timed.more_left) == (["event-2"], True)
