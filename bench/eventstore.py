"""Benchmark 4: rebuilding an event-sourced aggregate, with and without snapshots.

One aggregate with `events` (default 10,000) events in `eventcraft.eventstore`, rebuilt
with `EventStore.rehydrate(..., write_snapshot=False)`:
* no snapshot: every event is read and folded;
* snapshots every 50 / 100 / 500 events (`SnapshotPolicy(every=N)`): the rebuild reads
  the latest snapshot and the events after it. We measure the policy's WORST case: the
  snapshot is `every - 1` events behind the head (the most events a rebuild reads under
  the policy; right after a snapshot it would read none).
Backends: the in-memory recorders (pure Python cost of the store and the fold) and the
DynamoDB recorders on moto (in-process; what a Lambda's rebuild costs in requests and
items read, and moto's own per-item cost). Items read = event items + snapshot items.

The reducer keeps a bounded state (status, counts per type, money totals, last event),
like an order's saga state. `domain.history.apply` (the order history) is measured on
its own, in memory: its state keeps a timeline entry per event, so its fold is
quadratic and, past ~2,000 events, its state no longer fits a DynamoDB item (400 KB),
i.e. it cannot be snapshotted at this size (its docstring says so).

In memory the history is written through the store's own conditional appends (99
events per append). On moto it is written with BatchWriteItem of the recorder's own
items (`event_item`): moto 5.2.5's TransactWriteItems deep-copies the whole table once
per action, so seeding 10,000 events through appends is quadratic (hours); the
`append_probe` measures one 99-event append on an empty table and on one holding 1,000
items to show it. Snapshots are put through the snapshot recorders. Variants alternate
within each round.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

from bench import common

AGGREGATE = "order-bench-0001"
EVENT_TYPES = (
    "OrderPlaced",
    "InventoryReserved",
    "PaymentProcessed",
    "OrderShipped",
    "PaymentRefunded",
    "InventoryReleased",
)
DYNAMODB_ITEM_LIMIT = 400 * 1024


def order_totals(state: dict[str, Any], event: Any) -> dict[str, Any]:
    """A bounded aggregate state (returns a new dict; never mutates `state`)."""
    data = event.data
    counts = dict(state["counts"])
    counts[event.type] = counts.get(event.type, 0) + 1
    new = {
        **state,
        "counts": counts,
        "events": state["events"] + 1,
        "lastEventAt": event.occurred_at,
        "lastType": event.type,
    }
    amount = int(data.get("amountCents", 0))
    if event.type == "PaymentProcessed":
        new["paidCents"] = state["paidCents"] + amount
    elif event.type == "PaymentRefunded":
        new["refundedCents"] = state["refundedCents"] + amount
    return new


def initial_state() -> dict[str, Any]:
    return {"counts": {}, "events": 0, "paidCents": 0, "refundedCents": 0, "lastType": None}


def new_events(count: int) -> list[Any]:
    """`count` deterministic NewEvents (ids and times fixed; ~200-byte payloads)."""
    from eventcraft.eventstore import NewEvent

    result = []
    for n in range(count):
        kind = EVENT_TYPES[n % len(EVENT_TYPES)]
        result.append(
            NewEvent(
                type=kind,
                data={
                    "orderId": AGGREGATE,
                    "eventId": f"event-{n:06d}",
                    "amountCents": 1000 + n % 97,
                    "currency": "USD",
                    "sku": f"sku-{n % 13:02d}",
                    "note": "x" * 64,
                },
                event_id=f"event-{n:06d}",
                occurred_at=f"2026-01-{1 + n // 86400 % 28:02d}T00:00:00Z",
            )
        )
    return result


def _append_all(store: Any, events: list[Any]) -> None:
    from eventcraft.eventstore import MAX_EVENTS_PER_APPEND

    version = 0
    for start in range(0, len(events), MAX_EVENTS_PER_APPEND):
        chunk = events[start : start + MAX_EVENTS_PER_APPEND]
        store.append(AGGREGATE, version, chunk)
        version += len(chunk)


def _snapshots(store: Any, head: int, policies: list[int]) -> dict[int, tuple[int, Any]]:
    """Per `every`: (version, state) of the worst-case snapshot, folded from the store."""
    from eventcraft.eventstore import fold

    wanted = {every: max(head - (every - 1), 0) for every in policies}
    result: dict[int, tuple[int, Any]] = {}
    state, version = initial_state(), 0
    for every, at in sorted(wanted.items(), key=lambda item: item[1]):
        if at > version:
            events = store.load(AGGREGATE, version, at)
            state, version, _ = fold(state, events, order_totals, version)
        result[every] = (version, state)
    return result


def _variants(
    make_snapshots: Callable[[int], Any], recorder: Any, policies: list[int], head: int
) -> dict[str, Any]:
    """name -> EventStore: "none" and "every-N" with their snapshot seeded."""
    from eventcraft.eventstore import EventStore, Snapshot, SnapshotPolicy

    stores: dict[str, Any] = {"none": EventStore(recorder)}
    points = _snapshots(stores["none"], head, policies)
    for every in policies:
        snapshots = make_snapshots(every)
        version, state = points[every]
        if version > 0:
            snapshots.put(Snapshot(AGGREGATE, version, json.loads(json.dumps(state)), 1))
        stores[f"every-{every}"] = EventStore(
            recorder, snapshots=snapshots, policy=SnapshotPolicy(every=every)
        )
    return stores


def _rebuild(store: Any) -> Any:
    return store.rehydrate(AGGREGATE, order_totals, initial_state(), write_snapshot=False)


def _rounds(
    stores: dict[str, Any],
    rounds: dict[str, int],
    reads: Callable[[], dict[str, int]],
) -> dict[str, Any]:
    """Time `rehydrate` of each store; `reads()` returns and resets read counters."""
    samples: dict[str, list[float]] = {name: [] for name in stores}
    outcome: dict[str, Any] = {}
    reference: Any = None
    for index in range(max(rounds.values())):
        for name, store in stores.items():
            if index >= rounds.get(name, rounds["default"]):
                continue
            reads()
            seconds, result = common.timed(partial(_rebuild, store))
            samples[name].append(seconds)
            if name == "none":
                reference = result.state
            outcome[name] = {
                "version": result.version,
                "snapshot_version": result.snapshot_version,
                "events_read": result.events_read,
                "snapshot_read": result.snapshot_read,
                "items_read": result.events_read + int(result.snapshot_read),
                **reads(),
                "state": result.state,
            }
    base = common.median(samples["none"])
    report: dict[str, Any] = {}
    for name, times in samples.items():
        row = dict(outcome[name])
        row["same_state_as_full_rebuild"] = row.pop("state") == reference
        row["time"] = common.summary(times)
        row["speedup_vs_none"] = common.ratio(base, common.median(times))
        report[name] = row
    return report


def _memory(events: list[Any], policies: list[int], rounds: int) -> dict[str, Any]:
    from eventcraft.eventstore import EventStore, InMemoryEventRecorder, InMemorySnapshotRecorder

    recorder = InMemoryEventRecorder()
    _append_all(EventStore(recorder), events)
    snapshot_recorders: dict[int, Any] = {}

    def make(every: int) -> Any:
        snapshot_recorders[every] = InMemorySnapshotRecorder()
        return snapshot_recorders[every]

    stores = _variants(make, recorder, policies, len(events))

    def reads() -> dict[str, int]:
        counts = {
            "queries": recorder.queries,
            "snapshot_gets": sum(s.gets for s in snapshot_recorders.values()),
        }
        recorder.queries = recorder.items_read = 0
        for s in snapshot_recorders.values():
            s.gets = s.items_read = 0
        return counts

    return _rounds(stores, {"default": rounds}, reads)


class _DynamoDBCounter:
    """Counts Query and GetItem requests and the items they return (botocore hooks)."""

    def __init__(self, client: Any) -> None:
        self.queries = self.query_items = self.gets = 0
        client.meta.events.register("after-call.dynamodb.Query", self._query)
        client.meta.events.register("after-call.dynamodb.GetItem", self._get)

    def _query(self, parsed: dict[str, Any], **_: Any) -> None:
        self.queries += 1
        self.query_items += int(parsed.get("Count", 0))

    def _get(self, **_: Any) -> None:
        self.gets += 1

    def take(self) -> dict[str, int]:
        counts = {
            "queries": self.queries,
            "query_items": self.query_items,
            "snapshot_gets": self.gets,
        }
        self.queries = self.query_items = self.gets = 0
        return counts


def _create_tables(client: Any, policies: list[int]) -> None:
    common.create_events_table(client, "events")
    for every in policies:
        client.create_table(
            TableName=f"snapshots-{every}",
            KeySchema=[{"AttributeName": "aggregateId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "aggregateId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def _batch_seed(client: Any, table: str, records: list[Any]) -> None:
    """Write stored events as the recorder's items, 25 per BatchWriteItem."""
    from eventcraft.eventstore import event_item

    for start in range(0, len(records), 25):
        requests = [{"PutRequest": {"Item": event_item(r)}} for r in records[start : start + 25]]
        while requests:
            unprocessed = client.batch_write_item(RequestItems={table: requests})
            requests = unprocessed.get("UnprocessedItems", {}).get(table, [])


def _append_probe(client: Any, events: list[Any], sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Seconds of ONE 99-event append (`DynamoDBEventRecorder.append`, a
    TransactWriteItems) when the table already holds `size` items: moto 5.2.5
    deep-copies the whole table once per action of a transaction."""
    from eventcraft.eventstore import MAX_EVENTS_PER_APPEND, DynamoDBEventRecorder
    from eventcraft.eventstore.model import stored

    common.create_events_table(client, "append-probe")
    recorder = DynamoDBEventRecorder("append-probe", client=client)
    records = stored(AGGREGATE, 0, events)
    version = 0
    probes: list[dict[str, Any]] = []
    for size in sorted(sizes):
        if size > version:
            _batch_seed(client, "append-probe", records[version:size])
            version = size
        chunk = events[version : version + MAX_EVENTS_PER_APPEND]
        if len(chunk) < MAX_EVENTS_PER_APPEND:
            break
        seconds, _ = common.timed(partial(recorder.append, AGGREGATE, version, chunk))
        version += len(chunk)
        probes.append({"table_items": size, "events": len(chunk), "seconds": seconds})
    return probes


def _moto(
    events: list[Any],
    policies: list[int],
    rounds: int,
    full_rounds: int,
    probe_sizes: tuple[int, ...],
) -> dict[str, Any]:
    import boto3
    from botocore.config import Config
    from moto import mock_aws

    from eventcraft.eventstore import DynamoDBEventRecorder, DynamoDBSnapshotRecorder
    from eventcraft.eventstore.model import stored

    with mock_aws():
        client = boto3.session.Session().client(
            "dynamodb", config=Config(retries={"mode": "standard"})
        )
        _create_tables(client, policies)
        probes = _append_probe(client, events, probe_sizes)
        # Seeded with BatchWriteItem of the recorder's own items: the store's appends
        # (transactions) are quadratic in the table size on moto (see the probe).
        seed_seconds, _ = common.timed(
            lambda: _batch_seed(client, "events", stored(AGGREGATE, 0, events))
        )
        recorder = DynamoDBEventRecorder("events", client=client)
        stores = _variants(
            lambda every: DynamoDBSnapshotRecorder(f"snapshots-{every}", client=client),
            recorder,
            policies,
            len(events),
        )
        counter = _DynamoDBCounter(client)
        report = _rounds(stores, {"default": rounds, "none": full_rounds}, counter.take)
    return {"seed_seconds": seed_seconds, "append_probe": probes, "variants": report}


def _history_reducer(events: list[Any], rounds: int) -> dict[str, Any]:
    """domain.history.apply over the same history, in memory, no snapshot."""
    from domain.history import apply, initial_state
    from eventcraft.eventstore import EventStore, InMemoryEventRecorder

    recorder = InMemoryEventRecorder()
    store = EventStore(recorder)
    _append_all(store, events)
    times: list[float] = []
    state: Any = None
    for _ in range(rounds):
        seconds, result = common.timed(
            lambda: store.rehydrate(AGGREGATE, apply, initial_state(), write_snapshot=False)
        )
        times.append(seconds)
        state = result.state
    size = len(json.dumps(state, separators=(",", ":")).encode())
    return {
        "time": common.summary(times),
        "state_json_bytes": size,
        "dynamodb_item_limit_bytes": DYNAMODB_ITEM_LIMIT,
        "snapshot_fits_in_dynamodb": size < DYNAMODB_ITEM_LIMIT,
    }


def run(
    *,
    events: int = 10_000,
    policies: tuple[int, ...] = (50, 100, 500),
    memory_rounds: int = 9,
    moto_rounds: int = 5,
    moto_full_rounds: int = 3,
    history_rounds: int = 3,
    append_probe_sizes: tuple[int, ...] = (0, 1000),
) -> dict[str, Any]:
    """The whole benchmark; sizes are parameters so the smoke test can run it tiny."""
    common.moto_environment()
    history = new_events(events)
    return {
        "events": events,
        "policies": list(policies),
        "memory": _memory(history, list(policies), memory_rounds),
        "moto": _moto(history, list(policies), moto_rounds, moto_full_rounds, append_probe_sizes),
        "history_reducer_memory": _history_reducer(history, history_rounds),
    }
