"""The event-sourced order history: one aggregate per order, its state, its read model.

Pure: no boto3. The same reducer folds the event store's events into the aggregate state
(what `record_history` decides on, what snapshots hold) and into the read model row
(what `project_order_history` keeps up to date), so a projected row equals a full
rebuild from the store, by construction and by test.

Stored events (eventcraft.eventstore, aggregate id = order id): `type` = detail-type,
`data` = the detail as its producer published it (upcast to the current version),
`schemaVersion` = the contract's version, `eventId` = the producer's eventId,
`occurredAt` = its event time.

State / view (a dict of JSON values; the read model stores each key as an attribute):
    status        progress of the saga (STATUSES), never moving backwards: EventBridge
                  does not keep order, so a late InventoryReserved cannot undo SHIPPED
    customerId, totalCents, currency, itemCount      from OrderPlaced
    customerTier  from OrderEnriched;   highValue  true once HighValueOrderFlagged
    checksPassed  from AllChecksComplete
    failedStep, reason                  from a failure / OrderCancelled
    reservationId, paymentId, shipmentId, carrier, trackingNumber
    firstEventAt, lastEventAt           event times (ISO 8601)
    timeline      [{version, type, eventId, occurredAt}] in append order: the history,
                  and the set of event ids already recorded (duplicates are no-ops)
An order's saga has about ten events; the timeline costs ~150 bytes per event, so the
row and its snapshot stay far below DynamoDB's 400 KB item limit (about 2000 events).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from contracts import OrderEvent, version_of
from eventcraft.eventstore import NewEvent, SnapshotPolicy, StoredEvent, stored_event_from_image

# The shape of the state; bump when it changes, so older snapshots are rebuilt.
STATE_SCHEMA_VERSION: Final = 1
SNAPSHOT_EVERY_ENV: Final = "SNAPSHOT_EVERY"

STATUSES: Final[Mapping[str, int]] = {
    "NEW": 0,
    "PLACED": 1,
    "INVENTORY_RESERVED": 2,
    "PAID": 3,
    "SHIPPED": 4,
    "INVENTORY_FAILED": 5,
    "PAYMENT_FAILED": 5,
    "SHIPPING_FAILED": 5,
    "COMPENSATING": 6,
    "COMPLETED": 9,
    "CANCELLED": 9,
}
STATUS_OF: Final[Mapping[str, str]] = {
    "OrderPlaced": "PLACED",
    "InventoryReserved": "INVENTORY_RESERVED",
    "PaymentProcessed": "PAID",
    "OrderShipped": "SHIPPED",
    "InventoryReservationFailed": "INVENTORY_FAILED",
    "PaymentFailed": "PAYMENT_FAILED",
    "ShippingFailed": "SHIPPING_FAILED",
    "PaymentRefunded": "COMPENSATING",
    "InventoryReleased": "COMPENSATING",
    "OrderCompleted": "COMPLETED",
    "OrderCancelled": "CANCELLED",
}
FAILED_STEP_OF: Final[Mapping[str, str]] = {
    "InventoryReservationFailed": "inventory",
    "PaymentFailed": "payment",
    "ShippingFailed": "shipping",
}
# detail field -> state field, copied when present.
_COPIED: Final[Mapping[str, tuple[str, ...]]] = {
    "OrderPlaced": ("customerId", "totalCents", "currency"),
    "InventoryReserved": ("reservationId",),
    "PaymentProcessed": ("paymentId",),
    "OrderShipped": ("shipmentId", "carrier", "trackingNumber"),
    "OrderCancelled": ("failedStep", "reason"),
    "InventoryReservationFailed": ("reason",),
    "PaymentFailed": ("reason",),
    "ShippingFailed": ("reason",),
}


def initial_state() -> dict[str, Any]:
    return {"status": "NEW", "timeline": []}


def to_new_event(event: OrderEvent) -> NewEvent:
    """The event store record of a saga event (its own id and event time are kept)."""
    return NewEvent(
        type=event.DETAIL_TYPE,
        data=event.to_detail(),
        schema_version=int(version_of(type(event))),
        event_id=event.event_id,
        occurred_at=event.occurred_at.isoformat().replace("+00:00", "Z"),
    )


def recorded(state: Mapping[str, Any], event_id: str) -> bool:
    """Whether the event with this id is already in the history."""
    return any(entry.get("eventId") == event_id for entry in state.get("timeline", ()))


def decide(state: Mapping[str, Any], event: NewEvent) -> Sequence[NewEvent]:
    """Record `event` unless it is already in the history (a redelivery): a no-op."""
    return [] if recorded(state, event.event_id) else [event]


def apply(state: Mapping[str, Any], event: StoredEvent) -> dict[str, Any]:
    """The reducer: `state` after `event`. Returns a new dict; `state` is not changed."""
    data = event.data
    new = dict(state)
    new["timeline"] = [
        *state.get("timeline", ()),
        {
            "version": event.version,
            "type": event.type,
            "eventId": event.event_id,
            "occurredAt": event.occurred_at,
        },
    ]
    new.setdefault("firstEventAt", event.occurred_at)
    new["lastEventAt"] = event.occurred_at
    for name in _COPIED.get(event.type, ()):
        if data.get(name) is not None:
            new[name] = data[name]
    if event.type == "OrderPlaced":
        new["itemCount"] = sum(int(line.get("quantity", 0)) for line in data.get("items", ()))
    elif event.type == "OrderEnriched":
        new["customerTier"] = data.get("customerTier")
    elif event.type == "HighValueOrderFlagged":
        new["highValue"] = True
    elif event.type == "AllChecksComplete":
        new["checksPassed"] = bool(data.get("allPassed"))
    if event.type in FAILED_STEP_OF:
        new["failedStep"] = FAILED_STEP_OF[event.type]
    status = STATUS_OF.get(event.type)
    # Only forward: the first terminal status stands, late events do not undo progress.
    if status is not None and STATUSES[status] > STATUSES.get(str(state.get("status")), 0):
        new["status"] = status
    return new


def snapshot_due(versions: Sequence[int], every: int) -> bool:
    """Whether newly appended `versions` of one aggregate reach a multiple of `every`:
    the snapshotter then writes one, so a rebuild reads at most a snapshot and `every`
    events. Checking multiples (not each event) keeps the snapshotter to one rebuild per
    `every` events; a redelivered batch rebuilds again and writes nothing new."""
    return any(version % every == 0 for version in versions)


class HistoryConfigError(ValueError):
    """The history's configuration is invalid."""


def snapshot_policy(every: str | None) -> SnapshotPolicy:
    """The snapshot policy of order histories, `every` being the SNAPSHOT_EVERY setting."""
    if not every or not every.isdigit() or int(every) < 1:
        raise HistoryConfigError(
            f"{SNAPSHOT_EVERY_ENV}={every!r} is not a whole number >= 1 (events between "
            "snapshots): the function's component must set it from the stack's snapshotEvery"
        )
    return SnapshotPolicy(every=int(every), schema_version=STATE_SCHEMA_VERSION)


@dataclass
class Inserted:
    """The events of an event store stream batch, per order, in stream order.

    first_sequence: per order, the sequence number of its first record (what to report
    when that order fails: the stream is retried from there). unreadable: sequence numbers
    of records that are not event store items.
    """

    by_order: dict[str, list[StoredEvent]] = field(default_factory=dict)
    first_sequence: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def inserted_events(records: Iterable[Mapping[str, Any]]) -> Inserted:
    """Read a DynamoDB Streams batch of the events table (NEW_IMAGE): INSERT records
    only (MODIFY/REMOVE are not new events)."""
    result = Inserted()
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
        try:
            event = stored_event_from_image(record["dynamodb"]["NewImage"])
        except (KeyError, TypeError, ValueError):
            result.unreadable.append(sequence)
            continue
        result.by_order.setdefault(event.aggregate_id, []).append(event)
        result.first_sequence.setdefault(event.aggregate_id, sequence)
    return result


def for_each_order(
    records: Iterable[Mapping[str, Any]],
    act: Callable[[str, list[StoredEvent]], object],
    *,
    what: str,
    logger: logging.Logger,
) -> dict[str, list[dict[str, str]]]:
    """Run `act(order_id, events)` for each order of a stream batch of the events table
    (`inserted_events`); the partial batch response (ReportBatchItemFailures on).

    A record that is not an event store item is reported by its sequence number; an order
    whose `act` raises (logged on `logger`: "<what> of order <id> failed") by the sequence
    number of its first record, so that the stream retries it from there.
    """
    batch = inserted_events(records)
    failures = list(batch.unreadable)
    for sequence in batch.unreadable:
        logger.error("stream record %s is not an event store item", sequence)
    for order_id, events in batch.by_order.items():
        try:
            act(order_id, events)
        except Exception:
            logger.exception("%s of order %s failed; the stream retries it", what, order_id)
            failures.append(batch.first_sequence[order_id])
    return {"batchItemFailures": [{"itemIdentifier": s} for s in failures if s]}
