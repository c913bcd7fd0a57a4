"""The event-sourced order history against moto: record_history (append, once per event),
project_order_history (incremental read model), snapshot_aggregates (every N events)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from contracts import sample_event
from domain.history import apply, initial_state
from eventcraft import clients
from eventcraft.eventstore import (
    DynamoDBEventRecorder,
    DynamoDBSnapshotRecorder,
    EventStore,
    NewEvent,
    SnapshotPolicy,
    StoredEvent,
    fold,
)
from handlers import project_order_history, record_history, snapshot_aggregates
from tests.functions.awsenv import CallRecorder, scan, stream_records
from tests.functions.handlers.fixtures_side import (
    EVENTS,
    HISTORY,
    SNAPSHOTS,
    Side,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)

SAGA = ("OrderPlaced", "InventoryReserved", "PaymentProcessed", "OrderShipped", "OrderCompleted")
EVERY = 10  # SNAPSHOT_EVERY in fixtures_side


def saga_events(order_id: str = "order-0001") -> list[dict[str, Any]]:
    return [
        sample_event(detail_type, orderId=order_id, eventId=f"{order_id}-{detail_type}")
        for detail_type in SAGA
    ]


def check_events(order_id: str, count: int) -> list[dict[str, Any]]:
    """`count` more distinct events of the order (check results, one id each)."""
    return [
        sample_event("CheckCompleted", orderId=order_id, eventId=f"{order_id}-check-{i}")
        for i in range(count)
    ]


def record_all(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record_history.handler(event, None) for event in events]


def full_rebuild(order_id: str) -> tuple[dict[str, Any], int]:
    """The state folded from every event in the store (no snapshot)."""
    store = EventStore(DynamoDBEventRecorder(EVENTS))
    state, version, _ = fold(initial_state(), store.load(order_id), apply)
    return state, version


def history_row(order_id: str) -> dict[str, Any]:
    [row] = [r for r in scan(HISTORY) if r["orderId"] == order_id]
    return row


def as_view(row: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The read model row as (view, version), numbers as ints like the reducer's."""
    view = {k: v for k, v in row.items() if k not in ("orderId", "version")}
    return _plain(view), int(row["version"])


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def project(records: list[dict[str, Any]]) -> dict[str, Any]:
    return project_order_history.handler({"Records": records}, None)


class QueryCounter:
    """Counts the Query calls the handlers' DynamoDB client makes (botocore event hook)."""

    def __init__(self) -> None:
        self.count = 0
        clients.client("dynamodb").meta.events.register("before-call.dynamodb.Query", self._count)

    def _count(self, **_: Any) -> None:
        self.count += 1


# --- record_history ---------------------------------------------------------------------


def test_saga_events_are_appended_in_order_as_versions_of_the_order(side: Side) -> None:
    results = record_all(saga_events())

    assert [r["version"] for r in results] == [1, 2, 3, 4, 5]
    assert all(r["recorded"] for r in results)
    items = sorted(scan(EVENTS), key=lambda item: item["version"])
    assert [item["type"] for item in items] == list(SAGA)
    assert {item["aggregateId"] for item in items} == {"order-0001"}
    assert items[0]["eventId"] == "order-0001-OrderPlaced"
    assert items[0]["occurredAt"] == "2025-01-15T10:30:00Z"  # event time, not arrival


def test_a_duplicate_event_is_a_no_op_by_event_id(side: Side) -> None:
    events = saga_events()
    record_all(events[:3])

    again = record_history.handler(events[1], None)
    republished = record_history.handler({**events[0], "id": "new-envelope"}, None)

    assert (again["recorded"], again["version"]) == (False, 3)
    assert republished["recorded"] is False
    assert len(scan(EVENTS)) == 3


def test_a_concurrent_duplicate_loses_the_race_and_changes_nothing(side: Side) -> None:
    """The same event delivered twice at once: both decide to append it at version n+1;
    one append wins, the other reloads, finds it, and appends nothing."""
    record_all(saga_events()[:2])
    event = saga_events()[2]
    store = record_history._store()
    real_append = store.recorder.append
    raced: list[int] = []

    def append_after_the_other_delivery(
        aggregate_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        if not raced:  # the other delivery appends first, between our read and write
            raced.append(expected_version)
            real_append(aggregate_id, expected_version, events)
        return real_append(aggregate_id, expected_version, events)

    store.recorder.append = append_after_the_other_delivery  # type: ignore[method-assign]
    result = record_history.handler(event, None)

    assert raced == [2]
    assert (result["recorded"], result["version"]) == (False, 3)
    assert sorted(item["version"] for item in scan(EVENTS)) == [1, 2, 3]


def test_an_event_without_an_order_is_rejected(side: Side) -> None:
    event = sample_event("OrderPlaced")
    event["detail"]["orderId"] = ""
    with pytest.raises(Exception, match="orderId"):
        record_history.handler(event, None)
    assert scan(EVENTS) == []


# --- project_order_history ----------------------------------------------------------------


def test_the_projection_follows_the_saga_and_equals_a_full_rebuild(side: Side) -> None:
    record_all(saga_events())

    assert project(stream_records(EVENTS)) == {"batchItemFailures": []}

    view, version = as_view(history_row("order-0001"))
    assert (view, version) == full_rebuild("order-0001")
    assert version == 5
    assert view["status"] == "COMPLETED"
    assert (view["customerId"], view["totalCents"], view["currency"]) == (
        "customer-0001",
        7499,
        "USD",
    )
    assert view["trackingNumber"] == "1Z999AA10123456784"
    assert [entry["type"] for entry in view["timeline"]] == list(SAGA)


def test_redelivered_stream_records_change_nothing(side: Side) -> None:
    record_all(saga_events())
    records = stream_records(EVENTS)
    project(records)
    before = history_row("order-0001")

    assert project(records) == {"batchItemFailures": []}
    assert project(records[1:3]) == {"batchItemFailures": []}
    assert history_row("order-0001") == before


def test_each_new_event_is_applied_without_re_reading_the_history(side: Side) -> None:
    events = saga_events()
    record_all(events[:4])
    project(stream_records(EVENTS))
    record_history.handler(events[4], None)
    newest = stream_records(EVENTS)[-1:]

    queries = QueryCounter()
    project(newest)

    assert queries.count == 0  # one GetItem of the row, one conditional PutItem
    view, version = as_view(history_row("order-0001"))
    assert (version, view["status"]) == (5, "COMPLETED")


def test_a_gap_is_filled_with_only_the_missing_events(side: Side) -> None:
    record_all(saga_events())
    records = stream_records(EVENTS)
    project(records[:2])

    queries = QueryCounter()
    project(records[4:])  # versions 3 and 4 never arrived

    assert queries.count == 1
    assert as_view(history_row("order-0001")) == full_rebuild("order-0001")


def test_late_events_never_move_the_status_backwards(side: Side) -> None:
    events = saga_events()
    # EventBridge does not keep order: the shipment is recorded before the reservation.
    record_all([events[0], events[3], events[1]])
    project(stream_records(EVENTS))
    view, _ = as_view(history_row("order-0001"))
    assert view["status"] == "SHIPPED"


def test_orders_are_projected_separately_and_a_broken_record_is_reported(side: Side) -> None:
    record_all(saga_events("order-a") + saga_events("order-b")[:2])
    records = stream_records(EVENTS)
    broken = {
        "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": "999", "NewImage": {"nothing": {"S": "here"}}},
    }

    result = project([*records, broken])

    assert result == {"batchItemFailures": [{"itemIdentifier": "999"}]}
    assert as_view(history_row("order-a"))[1] == 5
    assert as_view(history_row("order-b"))[1] == 2


# --- snapshot_aggregates ---------------------------------------------------------------------


def test_snapshots_every_n_events_bound_what_a_rebuild_reads(side: Side) -> None:
    order = "order-long"
    events = saga_events(order) + check_events(order, 32)  # 37 events
    # Each append reaches the snapshotter through the stream (batches of one record).
    for event in events:
        record_history.handler(event, None)
        newest = stream_records(EVENTS)[-1:]
        assert snapshot_aggregates.handler({"Records": newest}, None) == {"batchItemFailures": []}

    [snapshot] = scan(SNAPSHOTS)
    assert int(snapshot["version"]) == 30
    store = EventStore(
        DynamoDBEventRecorder(EVENTS),
        snapshots=DynamoDBSnapshotRecorder(SNAPSHOTS),
        policy=SnapshotPolicy(every=EVERY),
    )
    rebuilt = store.rehydrate(order, apply, initial_state(), write_snapshot=False)

    assert rebuilt.snapshot_read and rebuilt.snapshot_version == 30
    assert rebuilt.events_read == 7 <= EVERY
    assert (rebuilt.state, rebuilt.version) == full_rebuild(order)
    # The read model, built incrementally, is the same state.
    project(stream_records(EVENTS))
    assert as_view(history_row(order)) == full_rebuild(order)


def test_a_batch_snapshots_at_its_head_and_a_rebuild_stays_bounded(side: Side) -> None:
    order = "order-0001"
    record_all(saga_events() + check_events(order, 20))  # 25 events, one late batch
    snapshot_aggregates.handler({"Records": stream_records(EVENTS)}, None)
    store = EventStore(
        DynamoDBEventRecorder(EVENTS),
        snapshots=DynamoDBSnapshotRecorder(SNAPSHOTS),
        policy=SnapshotPolicy(every=EVERY),
    )
    rebuilt = store.rehydrate(order, apply, initial_state(), write_snapshot=False)
    assert (rebuilt.snapshot_version, rebuilt.events_read) == (25, 0)
    assert (rebuilt.state, rebuilt.version) == full_rebuild(order)


def test_a_redelivered_batch_writes_no_new_snapshot(side: Side) -> None:
    record_all(saga_events() + check_events("order-0001", 5))  # versions 1..10
    records = stream_records(EVENTS)
    snapshot_aggregates.handler({"Records": records}, None)
    [first] = scan(SNAPSHOTS)

    snapshot_aggregates.handler({"Records": records}, None)

    assert scan(SNAPSHOTS) == [first]
    assert int(first["version"]) == 10


def test_record_history_reads_the_snapshot_and_never_writes_one(side: Side) -> None:
    order = "order-0001"
    record_all(saga_events() + check_events(order, 10))  # 15 events
    assert scan(SNAPSHOTS) == []  # only snapshot_aggregates writes them
    snapshot_aggregates.handler({"Records": stream_records(EVENTS)}, None)
    assert int(scan(SNAPSHOTS)[0]["version"]) == 15

    # Duplicates of events from before the snapshot are still recognised.
    assert record_history.handler(saga_events()[0], None)["recorded"] is False
    new = record_history.handler(check_events(order, 11)[-1], None)
    assert (new["recorded"], new["version"]) == (True, 16)


def test_a_missing_snapshot_setting_is_a_clear_error(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPSHOT_EVERY", "0")
    with pytest.raises(ValueError, match="SNAPSHOT_EVERY"):
        record_history.handler(saga_events()[0], None)
    monkeypatch.delenv("SNAPSHOT_EVERY")
    with pytest.raises(ValueError, match="SNAPSHOT_EVERY"):
        snapshot_aggregates.handler({"Records": []}, None)


def test_each_handler_calls_what_its_access_lists(side_calls: CallRecorder) -> None:
    events = saga_events() + check_events("order-0001", 5)  # 10 events: one snapshot
    record_all([*events, events[0]])
    assert side_calls.by_env() == record_history.ACCESS

    side_calls.reset()
    records = stream_records(EVENTS)
    project(records[:2])
    project(records[4:])  # a gap: filled from the store
    assert side_calls.by_env() == project_order_history.ACCESS

    side_calls.reset()
    snapshot_aggregates.handler({"Records": records}, None)
    assert side_calls.by_env() == snapshot_aggregates.ACCESS
