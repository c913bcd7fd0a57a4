"""The event store's stream -> a snapshot of an order every SNAPSHOT_EVERY events.

Entry: `handler(event, context)`, a DynamoDB Streams event source mapping on EVENTS_TABLE
(stream view NEW_IMAGE; ReportBatchItemFailures on), beside `project_order_history`
(a stream serves two readers).
Effect: for each order whose new versions in the batch reach a multiple of
SNAPSHOT_EVERY (N), rebuilds it from its latest snapshot plus the events after it
(GetItem on SNAPSHOTS_TABLE, Query on EVENTS_TABLE: at most one snapshot and N events)
and writes the new snapshot (conditional PutItem: never over a newer one). So rebuilding
any order reads at most one snapshot and N events, whatever its history's length.

Idempotency: the snapshot write is conditional on being newer than the stored one: a
redelivered batch rebuilds, finds the snapshot already there and writes nothing.
A snapshot that is due and could not be written fails the order's first record (the
stream retries it), so the bound above holds.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any, Final

from domain.history import STATE_SCHEMA_VERSION, apply, initial_state, snapshot_due

from eventkit.eventstore import (
    DynamoDBEventRecorder,
    DynamoDBSnapshotRecorder,
    EventStore,
    SnapshotPolicy,
    stored_event_from_image,
)

ACCESS: Final[dict[str, frozenset[str]]] = {
    "EVENTS_TABLE": frozenset({"dynamodb:Query"}),
    "SNAPSHOTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
}
EVENTS_TABLE_ENV: Final = "EVENTS_TABLE"
SNAPSHOTS_TABLE_ENV: Final = "SNAPSHOTS_TABLE"
SNAPSHOT_EVERY_ENV: Final = "SNAPSHOT_EVERY"

logger = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """A required environment variable is missing or invalid."""


class SnapshotNotWrittenError(RuntimeError):
    def __init__(self, aggregate_id: str, version: int) -> None:
        super().__init__(
            f"snapshot of order {aggregate_id} at version {version} is due and was not "
            "written (see the warning logged before): the stream retries the batch; check "
            "the role's PutItem on the snapshots table and the table's throttling"
        )


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"environment variable {name} is not set: the function's component must set it"
        )
    return value


def snapshot_every() -> int:
    raw = _env(SNAPSHOT_EVERY_ENV)
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(
            f"{SNAPSHOT_EVERY_ENV}={raw!r} is not a whole number >= 1 (events between "
            "snapshots): set it from the stack's snapshotEvery"
        )
    return int(raw)


@functools.cache
def _store() -> EventStore:
    return EventStore(
        DynamoDBEventRecorder(_env(EVENTS_TABLE_ENV)),
        snapshots=DynamoDBSnapshotRecorder(_env(SNAPSHOTS_TABLE_ENV)),
        policy=SnapshotPolicy(every=snapshot_every(), schema_version=STATE_SCHEMA_VERSION),
    )


def snapshot(aggregate_id: str) -> int:
    """Rebuild `aggregate_id` from its snapshot and write a new one if due; returns the
    version of the snapshot it has now."""
    store = _store()
    rebuilt = store.rehydrate(aggregate_id, apply, initial_state(), write_snapshot=True)
    assert store.policy is not None  # set in _store
    if store.policy.due(rebuilt.snapshot_version, rebuilt.version):
        raise SnapshotNotWrittenError(aggregate_id, rebuilt.version)
    return rebuilt.snapshot_version


def handler(event: Mapping[str, Any], context: object) -> dict[str, list[dict[str, str]]]:
    every = snapshot_every()
    failures: list[str] = []
    versions: dict[str, list[int]] = {}
    first_sequence: dict[str, str] = {}
    for record in event.get("Records", []):
        if record.get("eventName") != "INSERT":
            continue
        sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
        try:
            stored = stored_event_from_image(record["dynamodb"]["NewImage"])
        except (KeyError, TypeError, ValueError):
            logger.exception("stream record %s is not an event store item", sequence)
            failures.append(sequence)
            continue
        versions.setdefault(stored.aggregate_id, []).append(stored.version)
        first_sequence.setdefault(stored.aggregate_id, sequence)
    for aggregate_id, appended in versions.items():
        if not snapshot_due(appended, every):
            continue
        try:
            snapshot(aggregate_id)
        except Exception:
            logger.exception("snapshot of order %s failed; the stream retries it", aggregate_id)
            failures.append(first_sequence[aggregate_id])
    return {"batchItemFailures": [{"itemIdentifier": s} for s in failures if s]}
