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

from domain.history import (
    SNAPSHOT_EVERY_ENV,
    apply,
    for_each_order,
    initial_state,
    snapshot_due,
    snapshot_policy,
)
from eventcraft.eventstore import (
    DynamoDBEventRecorder,
    DynamoDBSnapshotRecorder,
    EventStore,
    SnapshotPolicy,
    StoredEvent,
)
from eventcraft.settings import env

ACCESS: Final[dict[str, frozenset[str]]] = {
    "EVENTS_TABLE": frozenset({"dynamodb:Query"}),
    "SNAPSHOTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
}
EVENTS_TABLE_ENV: Final = "EVENTS_TABLE"
SNAPSHOTS_TABLE_ENV: Final = "SNAPSHOTS_TABLE"

logger = logging.getLogger(__name__)


class SnapshotNotWrittenError(RuntimeError):
    def __init__(self, aggregate_id: str, version: int) -> None:
        super().__init__(
            f"snapshot of order {aggregate_id} at version {version} is due and was not "
            "written (see the warning logged before): the stream retries the batch; check "
            "the role's PutItem on the snapshots table and the table's throttling"
        )


@functools.cache
def _policy() -> SnapshotPolicy:
    return snapshot_policy(os.environ.get(SNAPSHOT_EVERY_ENV))


@functools.cache
def _store() -> EventStore:
    return EventStore(
        DynamoDBEventRecorder(env(EVENTS_TABLE_ENV)),
        snapshots=DynamoDBSnapshotRecorder(env(SNAPSHOTS_TABLE_ENV)),
        policy=_policy(),
    )


def snapshot(aggregate_id: str) -> int:
    """Rebuild `aggregate_id` from its snapshot and write a new one if due; returns the
    version of the snapshot it has now."""
    rebuilt = _store().rehydrate(aggregate_id, apply, initial_state(), write_snapshot=True)
    if _policy().due(rebuilt.snapshot_version, rebuilt.version):
        raise SnapshotNotWrittenError(aggregate_id, rebuilt.version)
    return rebuilt.snapshot_version


def handler(event: Mapping[str, Any], context: object) -> dict[str, list[dict[str, str]]]:
    every = _policy().every

    def snapshot_if_due(order_id: str, events: list[StoredEvent]) -> None:
        if snapshot_due([e.version for e in events], every):
            snapshot(order_id)

    return for_each_order(event.get("Records", []), snapshot_if_due, what="snapshot", logger=logger)
