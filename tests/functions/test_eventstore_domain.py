"""Event store rules that do not depend on an adapter: validation, the snapshot policy,
command retries, decoding stream images, error messages."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from eventcraft.eventstore import (
    MAX_EVENTS_PER_APPEND,
    AppendTooLargeError,
    ConcurrencyError,
    EventOrderError,
    EventStore,
    InMemoryEventRecorder,
    InMemorySnapshotRecorder,
    NewEvent,
    SnapshotPolicy,
    StoredEvent,
    fold,
    stored_event_from_image,
    stored_events_from_stream,
)
from eventcraft.eventstore.dynamodb import _concurrency_error, event_item
from tests.functions.test_eventstore_contract import INITIAL, expected_state, line, order_reducer


def memory_store(policy: SnapshotPolicy | None = None) -> EventStore:
    if policy is None:
        return EventStore(InMemoryEventRecorder())
    return EventStore(InMemoryEventRecorder(), snapshots=InMemorySnapshotRecorder(), policy=policy)


@pytest.mark.parametrize(
    ("aggregate_id", "expected_version", "events", "error", "message"),
    [
        ("", 0, [line()], ValueError, "aggregate_id must be a non-empty string"),
        ("o", -1, [line()], ValueError, "expected_version must be >= 0"),
        ("o", 0, [], ValueError, "no events given"),
        ("o", 0, [line()] * 100, AppendTooLargeError, "at most 99 fit in one atomic append"),
    ],
)
def test_invalid_appends_are_refused_before_any_write(
    aggregate_id: str, expected_version: int, events: list[NewEvent], error: type, message: str
) -> None:
    store = memory_store()
    with pytest.raises(error, match=message):
        store.append(aggregate_id, expected_version, events)
    assert list(store.load("o")) == []


def test_the_largest_append_fits() -> None:
    store = memory_store()
    store.append("o", 0, [line()] * MAX_EVENTS_PER_APPEND)
    assert len(list(store.load("o"))) == 99


def test_snapshot_policy_counts_from_the_last_snapshot() -> None:
    policy = SnapshotPolicy(every=100)
    assert not policy.due(0, 99)
    assert policy.due(0, 100)
    assert not policy.due(102, 201)
    assert policy.due(102, 202)
    with pytest.raises(ValueError, match="every must be >= 1"):
        SnapshotPolicy(every=0)
    with pytest.raises(ValueError, match="schema_version must be >= 1"):
        SnapshotPolicy(every=1, schema_version=0)


def test_snapshots_and_policy_come_together() -> None:
    with pytest.raises(ValueError, match="pass both `snapshots`"):
        EventStore(InMemoryEventRecorder(), policy=SnapshotPolicy(every=10))
    with pytest.raises(ValueError, match="pass both `snapshots`"):
        EventStore(InMemoryEventRecorder(), snapshots=InMemorySnapshotRecorder())


def test_execute_reloads_and_decides_again_after_losing_a_race() -> None:
    store = memory_store()
    store.append("o", 0, [line(1)])
    seen: list[int] = []

    def decide(state: dict[str, Any]) -> list[NewEvent]:
        seen.append(state["last"])
        if len(seen) == 1:  # another writer gets in between our read and our append
            store.append("o", 1, [line(2)])
        return [line(state["last"] + 1)]

    result = store.execute("o", decide, order_reducer, INITIAL)

    assert seen == [1, 2]
    assert result.version == 3
    assert result.state == expected_state(3)


def test_execute_gives_up_after_max_attempts() -> None:
    store = memory_store()

    def always_raced(state: dict[str, Any]) -> list[NewEvent]:
        store.append("o", state["last"], [line(state["last"] + 1)])
        return [line()]

    with pytest.raises(ConcurrencyError, match="Reload the aggregate"):
        store.execute("o", always_raced, order_reducer, INITIAL, max_attempts=2)


def test_execute_with_no_new_events_appends_nothing() -> None:
    store = memory_store()
    result = store.execute("o", lambda state: [], order_reducer, INITIAL)
    assert (result.version, list(store.load("o"))) == (0, [])


def test_a_failed_snapshot_write_never_fails_the_append(caplog: pytest.LogCaptureFixture) -> None:
    store = memory_store(SnapshotPolicy(every=2, encode=lambda state: {"bad": object()}))
    current = store.rehydrate("o", order_reducer, INITIAL)

    with caplog.at_level(logging.WARNING):
        result = store.append_from(current, [line(1), line(2)], order_reducer)

    assert (result.version, result.snapshot_version) == (2, 0)
    assert [e.version for e in store.load("o")] == [1, 2]
    assert "Snapshot of 'o' at version 2 not written" in caplog.text


def test_the_initial_state_is_never_mutated() -> None:
    initial: dict[str, Any] = {"seen": []}

    def mutating(state: dict[str, Any], event: StoredEvent) -> dict[str, Any]:
        state["seen"].append(event.version)
        return state

    store = memory_store()
    store.append("o", 0, [line(), line()])
    assert store.rehydrate("o", mutating, initial).state == {"seen": [1, 2]}
    assert initial == {"seen": []}


def test_fold_refuses_a_history_with_a_hole() -> None:
    events = [
        StoredEvent("o", 1, "LineAdded", {"amount": 1}, "t", "e1"),
        StoredEvent("o", 3, "LineAdded", {"amount": 3}, "t", "e3"),
    ]
    with pytest.raises(EventOrderError, match=r"restore the missing items"):
        fold(dict(INITIAL), events, order_reducer)


def test_cancellation_reasons_map_to_errors_that_say_what_happened() -> None:
    taken = _concurrency_error("o", 4, ["None", "None", "ConditionalCheckFailed"], 1)
    assert isinstance(taken, ConcurrencyError)
    assert "version 6 already exists" in str(taken)
    ahead = _concurrency_error("o", 4, ["ConditionalCheckFailed", "None"], 1)
    assert isinstance(ahead, ConcurrencyError)
    assert ahead.reason == "ahead"
    in_flight = _concurrency_error("o", 0, ["TransactionConflict", "None"], 0)
    assert isinstance(in_flight, ConcurrencyError)
    assert "another transaction was writing version 1" in str(in_flight)
    assert "retry" in str(in_flight)
    other = _concurrency_error("o", 0, ["ThrottlingError"], 0)
    assert not isinstance(other, ConcurrencyError)
    assert "ThrottlingError" in str(other)


def test_stream_images_decode_in_both_shapes() -> None:
    event = StoredEvent("o", 7, "LineAdded", {"amount": 1.5, "sku": "x"}, "2024-01-01Z", "e7", 2)
    low_level = event_item(event)
    assert stored_event_from_image(low_level) == event
    # Powertools' DynamoDBRecord hands over deserialised images (numbers as Decimal).
    from decimal import Decimal

    deserialised = {
        "aggregateId": "o",
        "version": Decimal(7),
        "type": "LineAdded",
        "data": '{"amount":1.5,"sku":"x"}',
        "occurredAt": "2024-01-01Z",
        "eventId": "e7",
        "schemaVersion": Decimal(2),
    }
    assert stored_event_from_image(deserialised) == event
    # A map-shaped `data` (written by another tool) is accepted too.
    as_map = {**low_level, "data": {"M": {"amount": {"N": "1.5"}, "sku": {"S": "x"}}}}
    assert stored_event_from_image(as_map) == event
    stream_event = {
        "Records": [
            {"eventName": "INSERT", "dynamodb": {"NewImage": low_level}},
            {"eventName": "MODIFY", "dynamodb": {"NewImage": low_level}},
        ]
    }
    assert stored_events_from_stream(stream_event) == [event]
