"""The event store contract, run against each adapter (in memory, DynamoDB on moto).

`EventStoreContract` holds the tests; each `Test...` subclass provides an `env` fixture
(an `Env`): the same tests, two adapters (eventsourcing's AggregateRecorderTestCase).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from eventcraft.eventstore import (
    ConcurrencyError,
    DynamoDBEventRecorder,
    DynamoDBReadModel,
    DynamoDBSnapshotRecorder,
    EventStore,
    InMemoryEventRecorder,
    InMemoryReadModel,
    InMemorySnapshotRecorder,
    NewEvent,
    Projector,
    Snapshot,
    SnapshotPolicy,
    StoredEvent,
    event_item,
    fold,
)
from eventcraft.eventstore.model import stored
from tests.functions.awsenv import DynamoDB, moto_dynamodb, run_threads, stream_records

# -- a small aggregate: an order whose lines add up --------------------------------------


def order_reducer(state: dict[str, Any], event: StoredEvent) -> dict[str, Any]:
    if event.type == "LineAdded":
        return {
            **state,
            "lines": state["lines"] + 1,
            "total": state["total"] + event.data["amount"],
            "last": event.version,
        }
    if event.type == "OrderShipped":
        return {**state, "status": "SHIPPED", "last": event.version}
    return {**state, "last": event.version}


INITIAL: dict[str, Any] = {"lines": 0, "total": 0, "status": "OPEN", "last": 0}


def line(amount: int = 1, event_id: str | None = None) -> NewEvent:
    if event_id is None:
        return NewEvent("LineAdded", {"amount": amount})
    return NewEvent("LineAdded", {"amount": amount}, event_id=event_id)


def expected_state(n: int) -> dict[str, Any]:
    """The state after n LineAdded events with amounts 1..n."""
    return {"lines": n, "total": n * (n + 1) // 2, "status": "OPEN", "last": n}


def history(aggregate_id: str, first: int, last: int) -> list[StoredEvent]:
    """Events first..last of `aggregate_id`, amounts equal to their version."""
    return stored(aggregate_id, first - 1, [line(v) for v in range(first, last + 1)])


# -- what each adapter provides -----------------------------------------------------------


class Env:
    """One adapter's recorders, a way to count what they read, and a bulk loader."""

    recorder: Any
    snapshots: Any
    read_model: Any

    def store(self, policy: SnapshotPolicy | None = None) -> EventStore:
        if policy is None:
            return EventStore(self.recorder)
        return EventStore(self.recorder, snapshots=self.snapshots, policy=policy)

    def seed(self, events: list[StoredEvent]) -> None:
        """Write events in bulk, bypassing append (fixtures only)."""
        raise NotImplementedError

    def reset_counts(self) -> None:
        raise NotImplementedError

    def event_items_read(self) -> int:
        raise NotImplementedError

    def snapshot_items_read(self) -> int:
        raise NotImplementedError

    def queries(self) -> int:
        raise NotImplementedError

    def set_page_size(self, size: int) -> None:
        self.recorder.page_size = size


class MemoryEnv(Env):
    def __init__(self) -> None:
        self.recorder = InMemoryEventRecorder()
        self.snapshots = InMemorySnapshotRecorder()
        self.read_model = InMemoryReadModel()

    def seed(self, events: list[StoredEvent]) -> None:
        streams: dict[str, list[StoredEvent]] = {}
        for event in events:
            streams.setdefault(event.aggregate_id, []).append(event)
        for stream in streams.values():
            for start in range(0, len(stream), 99):
                chunk = stream[start : start + 99]
                self.recorder.append(
                    chunk[0].aggregate_id,
                    chunk[0].version - 1,
                    [NewEvent(e.type, e.data, e.schema_version, e.event_id) for e in chunk],
                )

    def reset_counts(self) -> None:
        self.recorder.items_read = self.recorder.queries = 0
        self.snapshots.items_read = self.snapshots.gets = 0

    def event_items_read(self) -> int:
        return int(self.recorder.items_read)

    def snapshot_items_read(self) -> int:
        return int(self.snapshots.items_read)

    def queries(self) -> int:
        return int(self.recorder.queries)


class DynamoDBEnv(Env):
    def __init__(self, ddb: DynamoDB) -> None:
        self.ddb = ddb
        ddb.create_table("events", "aggregateId", ("version", "N"), stream=True)
        ddb.create_table("snapshots", "aggregateId")
        ddb.create_table("orders-view", "aggregateId")
        self.recorder = DynamoDBEventRecorder("events", client=ddb.client)
        self.snapshots = DynamoDBSnapshotRecorder("snapshots", client=ddb.client)
        self.read_model = DynamoDBReadModel("orders-view", client=ddb.client)

    def seed(self, events: list[StoredEvent]) -> None:
        self.ddb.batch_put("events", [event_item(e) for e in events])

    def reset_counts(self) -> None:
        self.ddb.reads.reset()

    # Counted by botocore hooks on the client: what DynamoDB actually returned.
    def event_items_read(self) -> int:
        return self.ddb.reads.query_items

    def snapshot_items_read(self) -> int:
        return self.ddb.reads.get_items

    def queries(self) -> int:
        return self.ddb.reads.query_calls


# -- the contract -------------------------------------------------------------------------


class EventStoreContract:
    """Abstract (not collected: no Test prefix). Subclasses define the `env` fixture."""

    LARGE_HISTORY = 10_000

    @pytest.fixture
    def env(self) -> Iterator[Env]:
        raise NotImplementedError

    # appends and reads

    def test_append_then_load_returns_the_events_in_order(self, env: Env) -> None:
        store = env.store()
        first = NewEvent("OrderPlaced", {"customer": "c-1", "price": 10.25, "tags": ["a"]})
        written = store.append("order-1", 0, [first])
        store.append("order-1", 1, [line(2), line(3)])

        events = list(store.load("order-1"))

        assert [(e.version, e.type) for e in events] == [
            (1, "OrderPlaced"),
            (2, "LineAdded"),
            (3, "LineAdded"),
        ]
        assert events[0] == written[0]
        assert events[0].data == {"customer": "c-1", "price": 10.25, "tags": ["a"]}
        assert events[0].event_id == first.event_id
        assert events[0].occurred_at == first.occurred_at
        assert [e.version for e in store.load("order-1", after_version=1)] == [2, 3]
        assert list(store.load("order-2")) == []

    def test_an_unknown_aggregate_rehydrates_to_the_initial_state(self, env: Env) -> None:
        result = env.store().rehydrate("nobody", order_reducer, INITIAL)
        assert (result.state, result.version, result.events_read) == (INITIAL, 0, 0)

    def test_a_stale_writer_gets_a_concurrency_error_and_writes_nothing(self, env: Env) -> None:
        store = env.store()
        store.append("order-1", 0, [line(1), line(2)])

        with pytest.raises(ConcurrencyError) as raised:
            store.append("order-1", 1, [line(20), line(30)])

        message = str(raised.value)
        assert "'order-1'" in message
        assert "version 2 already exists" in message
        assert "Reload the aggregate" in message
        assert "retry" in message
        assert (raised.value.aggregate_id, raised.value.conflicting_version) == ("order-1", 2)
        # All or nothing: version 3 of the rejected batch was not written either.
        assert [e.data["amount"] for e in store.load("order-1")] == [1, 2]

    def test_a_second_creator_of_the_same_aggregate_loses(self, env: Env) -> None:
        store = env.store()
        store.append("order-1", 0, [line(1)])
        with pytest.raises(ConcurrencyError, match="version 1 already exists"):
            store.append("order-1", 0, [line(9)])
        assert [e.data["amount"] for e in store.load("order-1")] == [1]

    def test_an_expected_version_ahead_of_the_stream_is_refused(self, env: Env) -> None:
        store = env.store()
        store.append("order-1", 0, [line(1)])
        with pytest.raises(ConcurrencyError, match="no event at version 5") as raised:
            store.append("order-1", 5, [line(6)])
        assert raised.value.reason == "ahead"
        assert [e.version for e in store.load("order-1")] == [1]

    def test_concurrent_appends_at_the_same_version_have_exactly_one_winner(self, env: Env) -> None:
        store = env.store()
        head = store.append("order-1", 0, [line(0)])[-1].version
        for round_ in range(10):

            def write(writer: int, at: int = head, r: int = round_) -> list[StoredEvent]:
                return store.append("order-1", at, [line(writer, f"r{r}-w{writer}"), line(writer)])

            results = run_threads(6, write)

            winners = [r for r in results if isinstance(r, list)]
            losers = [r for r in results if isinstance(r, ConcurrencyError)]
            assert (len(winners), len(losers)) == (1, 5), results
            assert all(e.expected_version == head for e in losers)
            # The history holds the winner's two events and nobody else's.
            events = list(store.load("order-1", after_version=head))
            assert [e.event_id for e in events] == [e.event_id for e in winners[0]]
            head = events[-1].version
        assert [e.version for e in store.load("order-1")] == list(range(1, 22))

    def test_load_pages_through_a_long_history_in_version_order(self, env: Env) -> None:
        env.set_page_size(7)
        store = env.store()
        env.seed(history("order-1", 1, 50))
        env.reset_counts()

        events = list(store.load("order-1", after_version=10))

        assert [e.version for e in events] == list(range(11, 51))
        assert env.event_items_read() == 40
        assert env.queries() >= 6  # 40 items in pages of 7
        assert [e.version for e in store.load("order-1", 10, 20)] == list(range(11, 21))
        assert list(store.load("order-1", 20, 20)) == []

    # snapshots

    def test_commands_write_a_snapshot_every_n_events(self, env: Env) -> None:
        store = env.store(SnapshotPolicy(every=10))
        for _ in range(14):  # 3 events per command: 42 events
            store.execute(
                "order-1",
                lambda s: [line(s["last"] + 1 + i) for i in range(3)],
                order_reducer,
                INITIAL,
            )

        snapshot = env.snapshots.get("order-1")
        assert snapshot is not None
        # Snapshots at 12, 24, 36: each once 10+ events have accumulated since the last.
        assert snapshot.version == 36
        assert snapshot.state == expected_state(36)
        env.reset_counts()

        rebuilt = store.rehydrate("order-1", order_reducer, INITIAL)

        assert rebuilt.state == expected_state(42)
        assert (rebuilt.version, rebuilt.snapshot_version, rebuilt.events_read) == (42, 36, 6)
        assert env.snapshot_items_read() == 1
        assert env.event_items_read() == 6

    def test_a_stale_snapshot_never_overwrites_a_newer_one(self, env: Env) -> None:
        assert env.snapshots.put(Snapshot("order-1", 20, {"v": 20}, schema_version=1))
        assert not env.snapshots.put(Snapshot("order-1", 10, {"v": 10}, schema_version=1))
        assert not env.snapshots.put(Snapshot("order-1", 20, {"v": "again"}, schema_version=1))
        # A newer state schema replaces it even at an older version.
        assert env.snapshots.put(Snapshot("order-1", 15, {"v": 15}, schema_version=2))
        stored_snapshot = env.snapshots.get("order-1")
        assert stored_snapshot is not None
        assert (stored_snapshot.version, stored_snapshot.state) == (15, {"v": 15})

    def test_a_snapshot_of_an_older_schema_is_ignored_and_replaced(self, env: Env) -> None:
        env.seed(history("order-1", 1, 30))
        env.snapshots.put(Snapshot("order-1", 25, {"garbage": True}, schema_version=1))
        store = env.store(SnapshotPolicy(every=10, schema_version=2))

        rebuilt = store.rehydrate("order-1", order_reducer, INITIAL)

        assert rebuilt.state == expected_state(30)
        assert rebuilt.events_read == 30
        replaced = env.snapshots.get("order-1")
        assert replaced is not None
        assert (replaced.version, replaced.schema_version) == (30, 2)
        assert replaced.state == expected_state(30)

    def test_a_rebuild_that_reads_n_events_past_the_snapshot_writes_one(self, env: Env) -> None:
        env.seed(history("order-1", 1, 25))
        store = env.store(SnapshotPolicy(every=10))

        assert store.rehydrate("order-1", order_reducer, INITIAL).snapshot_version == 25
        env.seed(history("order-1", 26, 29))
        assert store.rehydrate("order-1", order_reducer, INITIAL).snapshot_version == 25
        readonly = store.rehydrate("order-1", order_reducer, INITIAL, write_snapshot=False)
        assert readonly.events_read == 4

    def test_rebuilding_a_10000_event_history_reads_one_snapshot_and_at_most_100_events(
        self, env: Env
    ) -> None:
        n, tail = self.LARGE_HISTORY, 63
        store = env.store(SnapshotPolicy(every=100))
        started = time.perf_counter()
        env.seed(history("order-1", 1, n - tail))
        first = store.rehydrate("order-1", order_reducer, INITIAL)  # writes the snapshot
        env.seed(history("order-1", n - tail + 1, n))  # other writers append 63 more
        setup = time.perf_counter() - started
        assert first.snapshot_version == n - tail
        env.reset_counts()

        rebuilt = store.rehydrate("order-1", order_reducer, INITIAL)

        assert rebuilt.state == expected_state(n)
        assert env.snapshot_items_read() == 1
        assert env.event_items_read() == tail <= 100
        assert (rebuilt.snapshot_read, rebuilt.events_read) == (True, tail)
        print(f"{type(self).__name__}: {n} events seeded + first rebuild in {setup:.1f}s")

    # projection

    def projector(self, env: Env) -> Projector[dict[str, Any]]:
        return Projector(env.read_model, env.store(), order_reducer, INITIAL)

    def test_the_projection_applies_each_new_event_without_reading_history(self, env: Env) -> None:
        store, projector = env.store(), self.projector(env)
        for version in range(1, 6):
            (record,) = store.append("order-1", version - 1, [line(version)])
            env.reset_counts()
            (outcome,) = projector.project([record])
            assert (outcome.version, outcome.applied, outcome.gap_filled) == (version, 1, 0)
            assert env.event_items_read() == 0

        assert env.read_model.get("order-1") == (expected_state(5), 5)

    def test_a_duplicate_event_is_a_no_op(self, env: Env) -> None:
        store, projector = env.store(), self.projector(env)
        records = store.append("order-1", 0, [line(1), line(2)])
        projector.project(records)

        (outcome,) = projector.project([records[0]])

        assert (outcome.applied, outcome.duplicates, outcome.version) == (0, 1, 2)
        assert env.read_model.get("order-1") == (expected_state(2), 2)

    def test_a_gap_is_filled_from_the_store_reading_only_the_missing_events(self, env: Env) -> None:
        env.seed(history("order-1", 1, 300))
        projector = self.projector(env)
        projector.project(history("order-1", 1, 200))
        env.reset_counts()

        # 205 arrives before 201..204 (out of order delivery).
        (outcome,) = projector.project(history("order-1", 205, 205))

        assert (outcome.version, outcome.applied, outcome.gap_filled) == (205, 5, 4)
        assert env.event_items_read() == 4
        assert env.read_model.get("order-1") == (expected_state(205), 205)
        # The late ones then arrive: duplicates now.
        (late,) = projector.project(history("order-1", 201, 204))
        assert (late.applied, late.duplicates) == (0, 4)

    def test_a_shuffled_batch_with_holes_and_duplicates_projects_once(self, env: Env) -> None:
        env.seed(history("order-1", 1, 10) + history("order-2", 1, 3))
        projector = self.projector(env)
        batch = [*history("order-1", 7, 7), *history("order-2", 2, 3), *history("order-1", 2, 3)]
        batch += history("order-1", 3, 3)

        outcomes = {o.aggregate_id: o for o in projector.project(batch)}

        assert outcomes["order-1"].version == 7
        assert outcomes["order-1"].gap_filled == 4  # 1, 4, 5, 6
        assert outcomes["order-2"].version == 3
        assert env.read_model.get("order-1") == (expected_state(7), 7)
        assert env.read_model.get("order-2") == (expected_state(3), 3)

    def test_concurrent_projectors_apply_every_event_exactly_once(self, env: Env) -> None:
        env.seed(history("order-1", 1, 40))
        events = history("order-1", 1, 40)

        results = run_threads(
            4, lambda worker: [self.projector(env).project([e]) for e in events[worker::4]]
        )

        assert not [r for r in results if isinstance(r, Exception)], results
        assert env.read_model.get("order-1") == (expected_state(40), 40)


# -- the adapters -------------------------------------------------------------------------


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def env(self) -> Iterator[Env]:
        yield MemoryEnv()

    def test_10000_events_appended_by_commands_keep_every_rebuild_short(self, env: Env) -> None:
        """The policy on the write path, at full size: 10,000 events appended by 2,500
        commands of 1..7 events, each rebuilding first as a handler does. No rebuild, from
        the first command to the last, reads more than one snapshot and 99 events."""
        store = env.store(SnapshotPolicy(every=100))
        worst, size, version = 0, 0, 0
        while version < 10_000:
            size = size % 7 + 1
            env.reset_counts()
            version = store.execute(
                "order-1",
                lambda s, k=size: [line(s["last"] + 1 + i) for i in range(k)],
                order_reducer,
                INITIAL,
            ).version
            worst = max(worst, env.event_items_read())
            assert env.snapshot_items_read() <= 1
        env.reset_counts()

        rebuilt = store.rehydrate("order-1", order_reducer, INITIAL)

        assert env.snapshot_items_read() == 1
        assert env.event_items_read() == rebuilt.events_read < 100
        assert worst < 100
        assert rebuilt.state == expected_state(rebuilt.version)
        assert rebuilt.state == fold(dict(INITIAL), store.load("order-1"), order_reducer)[0]


class TestDynamoDBEventStore(EventStoreContract):
    @pytest.fixture
    def env(self) -> Iterator[Env]:
        with moto_dynamodb() as ddb:
            yield DynamoDBEnv(ddb)

    def test_the_projection_runs_from_the_events_table_stream(self, env: Env) -> None:
        from eventcraft.eventstore import stored_events_from_stream

        assert isinstance(env, DynamoDBEnv)
        store, projector = env.store(), self.projector(env)
        store.append("order-1", 0, [line(1)])
        store.append("order-1", 1, [line(2), line(3)])

        events = stored_events_from_stream({"Records": stream_records("events")})
        outcomes = projector.project(events + events)  # delivered twice

        assert [e.version for e in events] == [1, 2, 3]
        assert outcomes[0].version == 3
        item = env.ddb.raw.get_item(TableName="orders-view", Key={"aggregateId": {"S": "order-1"}})
        assert item["Item"]["total"] == {"N": "6"}
        assert item["Item"]["version"] == {"N": "3"}
        assert item["Item"]["status"] == {"S": "OPEN"}

    def test_the_default_client_comes_from_eventkit_clients(self, env: Env) -> None:
        store = EventStore(DynamoDBEventRecorder("events"))
        store.append("order-1", 0, [line(1)])
        assert [e.version for e in env.store().load("order-1")] == [1]
