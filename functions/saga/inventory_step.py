"""The saga's inventory step: reserve an order's stock, all lines or none, and its
compensation, release.

`reserve(order)`: one transaction decides: a conditional decrement per line (`available
>= quantity`: the stock never goes negative, and with any line short nothing is
decremented) and the order's reservation item, written only if absent. If a line is
short, a second transaction records the rejection. Idempotency: that conditional
reservation item (not Powertools): a redelivered OrderPlaced finds the decision and
changes nothing (the decision's event is already in the outbox); a release that came
first left a tombstone that refuses the reservation.

`release(order_id, reason=...)`: RESERVED -> RELEASED is conditional on RESERVED, in the
transaction that restores the stock, so releasing twice restores once; an order that
reserved nothing gets a RELEASED tombstone (written only if absent), which also refuses a
reservation that would arrive later. The stock of an order that shipped is never
restored (`saga.guards.shipped`, checked again in the release's transaction): the release
refuses (REFUSED, logged with the reason). A Powertools record keyed on the event id would not
help: two different events (PaymentFailed, a late-reservation compensation, the
orchestrator) may ask for the same release.

Inventory table (`INVENTORY_TABLE`, key `pk` S): `sku#<sku>` {sku, available N} (seeded
by the operator: `domain.inventory.stock_item`); `reservation#<orderId>` {orderId,
status RESERVED|REJECTED|RELEASED, reservationId, items [{sku, quantity}], reason,
unavailableSkus, eventType + event (the decision's event JSON), createdAt, releasedAt}.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contracts import (
    Event,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    OrderPlaced,
    StockLine,
    parse_detail,
    utc_now,
)
from domain import inventory
from domain.inventory import ReleaseAction, Reservation, ReservationStatus
from domain.orders import SagaFact, clip, fact_from_event
from eventcraft import dynamodb, outbox
from eventcraft.settings import env
from saga import guards, store
from saga.guards import INVENTORY_TABLE_ENV
from saga.store import SagaConflictError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReservationOutcome:
    """The order's reservation decision. `created`: this call made it (False: found)."""

    reservation: Reservation
    event: Event | None
    created: bool

    @property
    def reserved(self) -> bool:
        return self.reservation.status is ReservationStatus.RESERVED

    def to_result(self) -> dict[str, Any]:
        r = self.reservation
        return {
            "orderId": r.order_id,
            "reservationId": r.reservation_id,
            "status": r.status.value,
            "items": [line.model_dump(mode="json") for line in r.lines],
            "eventId": self.event.event_id if self.event else None,
            "created": self.created,
        }


def _stock_decrement(table: str, line: StockLine) -> TransactWriteItemTypeDef:
    # The condition is what keeps stock >= 0; an unknown SKU fails it too (no attribute).
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": inventory.stock_key(line.sku)}},
            "UpdateExpression": "SET available = available - :q",
            "ConditionExpression": "available >= :q",
            "ExpressionAttributeValues": {":q": {"N": str(line.quantity)}},
        }
    }


def _decision_item(table: str, order_id: str, event: Event, **fields: Any) -> Any:
    return outbox.put(
        table,
        {
            "pk": inventory.reservation_key(order_id),
            "orderId": order_id,
            "reservationId": inventory.reservation_id(order_id),
            "eventType": event.DETAIL_TYPE,
            "event": event.to_json(),
            "createdAt": utc_now().isoformat(),
            **fields,
        },
        condition="attribute_not_exists(pk)",
    )


def load_reservation(order_id: str) -> Reservation | None:
    """The order's reservation item (strongly consistent), or None."""
    record = dynamodb.get(env(INVENTORY_TABLE_ENV), {"pk": inventory.reservation_key(order_id)})
    return Reservation.from_item(record) if record else None


def _found(order_id: str) -> ReservationOutcome:
    reservation = load_reservation(order_id)
    if reservation is None:
        raise RuntimeError(
            f"the reservation of order {order_id} failed its condition but is not there: "
            "retry the invocation"
        )
    event = (
        parse_detail(reservation.event_type, json.loads(reservation.event_detail))
        if reservation.event_type and reservation.event_detail
        else None
    )
    return ReservationOutcome(reservation, event, created=False)


def reserve(order: OrderPlaced, *, record_saga: bool = False) -> ReservationOutcome:
    """Reserve every line of `order`, or none; record the decision once.

    record_saga: also record the decision in the order's saga state, in the same
        transaction (orchestration; in choreography the saga_progress handler records it
        from the event).
    """
    table = env(INVENTORY_TABLE_ENV)
    lines = inventory.stock_lines(order.items)

    def attempt() -> ReservationOutcome:
        event = InventoryReserved(
            order_id=order.order_id,
            customer_id=order.customer_id,
            reservation_id=inventory.reservation_id(order.order_id),
            items=lines,
        )
        decision = _decision_item(
            table,
            order.order_id,
            event,
            status=ReservationStatus.RESERVED.value,
            items=[line.model_dump(mode="json") for line in lines],
        )
        # The decision first: when it exists, its failure is the one that matters.
        items = [decision, *(_stock_decrement(table, line) for line in lines)]
        try:
            store.commit(items, [event], _saga(order, event, record_saga))
        except outbox.ConditionFailedError as exc:
            if any(i == 0 for i, _ in exc.failed):
                return _found(order.order_id)
            short = [lines[i - 1].sku for i, _ in exc.failed if i >= 1]
            return _reject(order, short, record_saga=record_saga, table=table)
        return ReservationOutcome(Reservation.from_item(_plain(decision)), event, created=True)

    outcome = store.retry_conflicts(attempt, what=f"reserving order {order.order_id}")
    if record_saga and not outcome.created and outcome.event is not None:
        # Found a decision made elsewhere: make sure the saga knows it (idempotent).
        store.record(order.order_id, [fact_from_event(outcome.event)], order=order)
    return outcome


def _reject(
    order: OrderPlaced, short: Sequence[str], *, record_saga: bool, table: str
) -> ReservationOutcome:
    reason = inventory.rejection_reason(short)
    event = InventoryReservationFailed(
        order_id=order.order_id,
        customer_id=order.customer_id,
        reason=reason,
        unavailable_skus=list(short),
    )
    decision = _decision_item(
        table,
        order.order_id,
        event,
        status=ReservationStatus.REJECTED.value,
        reason=reason,
        unavailableSkus=list(short),
    )
    try:
        store.commit([decision], [event], _saga(order, event, record_saga))
    except outbox.ConditionFailedError:
        return _found(order.order_id)  # decided concurrently
    return ReservationOutcome(Reservation.from_item(_plain(decision)), event, created=True)


def _saga(order: OrderPlaced, event: Event, record_saga: bool) -> store.SagaWrite | None:
    return store.maybe_prepare(
        order.order_id, [fact_from_event(event)], record_saga=record_saga, order=order
    )


def _plain(put: Any) -> dict[str, Any]:
    return dynamodb.deserialize(put["Put"]["Item"])


# --- the compensation ------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseOutcome:
    """What a release did: RELEASE (this call restored `lines`), TOMBSTONE (nothing was
    reserved; later reservations are refused), NOTHING (already released/rejected) or
    REFUSED (the order shipped: `reason`)."""

    order_id: str
    action: ReleaseAction
    lines: tuple[StockLine, ...] = ()
    event: Event | None = None
    reason: str | None = None

    @property
    def released(self) -> bool:
        return self.action is ReleaseAction.RELEASE

    def to_result(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "action": self.action.value,
            "released": self.released,
            "items": [line.model_dump(mode="json") for line in self.lines],
            "eventId": self.event.event_id if self.event else None,
            "reason": self.reason,
        }


def _stock_increment(table: str, line: StockLine) -> TransactWriteItemTypeDef:
    # ADD, not SET: restores the units even if the SKU's item was deleted meanwhile.
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": inventory.stock_key(line.sku)}},
            "UpdateExpression": "ADD available :q",
            "ExpressionAttributeValues": {":q": {"N": str(line.quantity)}},
        }
    }


def release(
    order_id: str,
    *,
    reason: str,
    customer_id: str | None = None,
    record_saga: bool = False,
    order: OrderPlaced | None = None,
    facts: Sequence[SagaFact] = (),
) -> ReleaseOutcome:
    """Release the order's reservation, once; a no-op when there is nothing to release;
    REFUSED when the order shipped.

    customer_id: the order's customer, for InventoryReleased (default: `order`'s, else
        the order's record: `saga.store.customer_of`).
    record_saga: record `facts` and the release in the order's saga state in the same
        transaction (orchestration); `order` starts that state if it is missing.
    """
    table = env(INVENTORY_TABLE_ENV)
    reason = clip(reason)

    def saga(*extra: SagaFact) -> store.SagaWrite | None:
        wanted = [*facts, *extra]
        return store.maybe_prepare(order_id, wanted, record_saga=record_saga, order=order)

    def attempt() -> ReleaseOutcome:
        gone = guards.shipped(order_id)
        if gone is not None:
            logger.warning("not releasing order %s (asked: %s): %s", order_id, reason, gone)
            store.commit([], [], saga())
            return ReleaseOutcome(order_id, ReleaseAction.REFUSED, reason=gone)
        reservation = load_reservation(order_id)
        action = inventory.release_action(reservation.status if reservation else None)
        now = utc_now().isoformat()
        try:
            if reservation is not None and action is ReleaseAction.RELEASE:
                event = InventoryReleased(
                    order_id=order_id,
                    customer_id=store.customer_of(
                        order_id, customer_id, order.customer_id if order else None
                    ),
                    reservation_id=reservation.reservation_id,
                    items=list(reservation.lines),
                )
                released: TransactWriteItemTypeDef = {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": inventory.reservation_key(order_id)}},
                        "UpdateExpression": (
                            "SET #s = :released, releasedAt = :at, releaseReason = :why, "
                            "releaseEventId = :event"
                        ),
                        "ConditionExpression": "#s = :reserved",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":released": {"S": ReservationStatus.RELEASED.value},
                            ":reserved": {"S": ReservationStatus.RESERVED.value},
                            ":at": {"S": now},
                            ":why": {"S": reason},
                            ":event": {"S": event.event_id},
                        },
                    }
                }
                items = [
                    released,
                    *(_stock_increment(table, ln) for ln in reservation.lines),
                    guards.not_shipped_check(order_id),
                ]
                store.commit(items, [event], saga(fact_from_event(event)))
                return ReleaseOutcome(order_id, action, reservation.lines, event)
            if action is ReleaseAction.TOMBSTONE:
                tombstone = outbox.put(
                    table,
                    {
                        "pk": inventory.reservation_key(order_id),
                        "orderId": order_id,
                        "reservationId": inventory.reservation_id(order_id),
                        "status": ReservationStatus.RELEASED.value,
                        "reason": f"released before anything was reserved: {reason}",
                        "createdAt": now,
                        "releasedAt": now,
                    },
                    condition="attribute_not_exists(pk)",
                )
                store.commit([tombstone], [], saga())
                return ReleaseOutcome(order_id, action)
        except outbox.ConditionFailedError as exc:
            # The reservation changed (or the order shipped) between our reads and our
            # write: read again.
            raise SagaConflictError(f"the reservation of order {order_id} changed") from exc
        store.commit([], [], saga())
        return ReleaseOutcome(order_id, action)

    return store.retry_conflicts(attempt, what=f"releasing order {order_id}")
