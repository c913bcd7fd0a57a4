"""Saga events -> the order's history in the event store (one aggregate per order).

Entry: `handler(event, context)`, an EventBridge rule target for the saga's events (every
contract event with an orderId: OrderPlaced ... OrderCompleted/OrderCancelled, and the
side-flow events).
Effect: appends the event to EVENTS_TABLE (aggregate id = orderId, the next version,
conditional on the expected version). The table's stream feeds `project_order_history`
(read model) and `snapshot_aggregates` (snapshots).

Idempotency: by event id, in the aggregate itself: the decision reads the order's
history (latest snapshot + the events after it, from SNAPSHOTS_TABLE and EVENTS_TABLE)
and appends nothing if the eventId is already in it. Two concurrent deliveries of the
same event both decide to append at version n+1; the append is conditional, so one
wins and the other reloads, finds the event and does nothing. No Powertools record:
the history is the record, and it never expires.

This function only reads snapshots (SnapshotPolicy is needed to read them); writing them
is `snapshot_aggregates`' job, so its role may not write the snapshots table.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

from contracts import OrderEvent
from domain.history import (
    SNAPSHOT_EVERY_ENV,
    apply,
    decide,
    initial_state,
    snapshot_policy,
    to_new_event,
)
from eventcraft.envelopes import PoisonRecordError, from_eventbridge
from eventcraft.eventstore import (
    DynamoDBEventRecorder,
    DynamoDBSnapshotRecorder,
    EventStore,
    NewEvent,
    Snapshot,
)
from eventcraft.settings import env

ACCESS: Final[dict[str, frozenset[str]]] = {
    # PutItem: the first event; ConditionCheckItem + PutItem: a later one (transaction);
    # Query: reading the history after the snapshot.
    "EVENTS_TABLE": frozenset(
        {"dynamodb:PutItem", "dynamodb:ConditionCheckItem", "dynamodb:Query"}
    ),
    "SNAPSHOTS_TABLE": frozenset({"dynamodb:GetItem"}),
}
EVENTS_TABLE_ENV: Final = "EVENTS_TABLE"
SNAPSHOTS_TABLE_ENV: Final = "SNAPSHOTS_TABLE"
# Concurrent events of one order race for the next version; each loser reloads.
MAX_ATTEMPTS: Final = 5


class _ReadOnlySnapshots:
    """Reads snapshots; never writes them (see the module doc)."""

    def __init__(self, inner: DynamoDBSnapshotRecorder) -> None:
        self.inner = inner

    def get(self, aggregate_id: str) -> Snapshot | None:
        return self.inner.get(aggregate_id)

    def put(self, snapshot: Snapshot) -> bool:
        return False


@functools.cache
def _store() -> EventStore:
    return EventStore(
        DynamoDBEventRecorder(env(EVENTS_TABLE_ENV)),
        snapshots=_ReadOnlySnapshots(DynamoDBSnapshotRecorder(env(SNAPSHOTS_TABLE_ENV))),
        policy=snapshot_policy(os.environ.get(SNAPSHOT_EVERY_ENV)),
    )


def record(event: OrderEvent) -> dict[str, Any]:
    """Append `event` to its order's history unless it is there already."""
    new = to_new_event(event)
    appended: list[bool] = []

    def decide_once(state: dict[str, Any]) -> Sequence[NewEvent]:
        events = decide(state, new)
        appended.append(bool(events))  # the last decision is the one that stands
        return events

    result = _store().execute(
        event.order_id, decide_once, apply, initial_state(), max_attempts=MAX_ATTEMPTS
    )
    return {
        "orderId": event.order_id,
        "eventId": event.event_id,
        "recorded": appended[-1],
        "version": result.version,
    }


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    parsed = from_eventbridge(event)
    if not isinstance(parsed, OrderEvent):
        raise PoisonRecordError(
            "eventbridge",
            event.get("id"),
            f"{parsed.DETAIL_TYPE} is not about an order (no orderId): narrow the rule "
            "that routes events to the order history",
        )
    return record(parsed)
