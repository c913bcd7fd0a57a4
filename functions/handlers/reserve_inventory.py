"""reserve_inventory: reserve the stock of an order, all lines or none.

Entries:
- `handler(event, context)` (choreography): OrderPlaced, as an EventBridge event or an
  SQS batch of them -> InventoryReserved, or InventoryReservationFailed (with the SKUs
  short of stock), written to the outbox in the same transaction as the decision;
- `task(event, context)` (orchestration, Step Functions): the saga state (carrying the
  OrderPlaced) -> `{"reservationId", "items", "status": "RESERVED", ...}`, or raises
  InventoryUnavailable (a business failure: the saga must not retry it). The step is
  recorded in the order's saga state in the same transaction.
Application function: `reserve(order)`.

One transaction decides: a conditional decrement per line (`available >= quantity`: the
stock never goes negative, and with any line short nothing is decremented) and the
order's reservation item, written only if absent. If a line is short, a second
transaction records the rejection. Idempotency: that conditional reservation item (not
Powertools): a redelivered OrderPlaced finds the decision and changes nothing (the
decision's event is already in the outbox); a release that came first left a tombstone
that refuses the reservation.

Inventory table (`INVENTORY_TABLE`, key `pk` S): `sku#<sku>` {sku, available N} (seeded
by the operator: `domain.inventory.stock_item`); `reservation#<orderId>` {orderId,
status RESERVED|REJECTED|RELEASED, reservationId, items [{sku, quantity}], reason,
unavailableSkus, eventType + event (the decision's event JSON), createdAt, releasedAt}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from contracts import (
    Event,
    InventoryReservationFailed,
    InventoryReserved,
    OrderPlaced,
    StockLine,
    parse_detail,
    utc_now,
)
from domain import inventory
from domain.inventory import Reservation, ReservationStatus
from domain.orders import fact_from_event
from eventkit import dynamodb, envelopes, outbox
from handlers import saga_progress
from handlers.saga_progress import env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

ACCESS: dict[str, frozenset[str]] = {
    # UpdateItem: the stock decrements; PutItem: the reservation decision (both in the
    # transaction); GetItem: read the decision a duplicate finds.
    "INVENTORY_TABLE": frozenset({"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # task(): the order's saga record (read, then conditional put in the transaction).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
}

INVENTORY_TABLE_ENV: Final = "INVENTORY_TABLE"


class InventoryUnavailable(Exception):
    """The order cannot be reserved (stock short, or the order was already cancelled).
    A business outcome: retrying gives the same answer."""


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


def _table() -> str:
    return env(INVENTORY_TABLE_ENV)


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


def load(order_id: str) -> Reservation | None:
    """The order's reservation item (strongly consistent), or None."""
    record = dynamodb.get(_table(), {"pk": inventory.reservation_key(order_id)})
    return Reservation.from_item(record) if record else None


def _found(order_id: str) -> ReservationOutcome:
    reservation = load(order_id)
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
        transaction (orchestration; in choreography saga_progress records it from the
        event).
    """
    table = _table()
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
            saga_progress.commit(items, [event], _saga(order, event, record_saga))
        except outbox.ConditionFailedError as exc:
            if any(i == 0 for i, _ in exc.failed):
                return _found(order.order_id)
            short = [lines[i - 1].sku for i, _ in exc.failed if i >= 1]
            return _reject(order, short, record_saga=record_saga, table=table)
        return ReservationOutcome(Reservation.from_item(_plain(decision)), event, created=True)

    outcome = saga_progress.retry_conflicts(attempt, what=f"reserving order {order.order_id}")
    if record_saga and not outcome.created and outcome.event is not None:
        # Found a decision made elsewhere: make sure the saga knows it (idempotent).
        saga_progress.record(order.order_id, [fact_from_event(outcome.event)], order=order)
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
        saga_progress.commit([decision], [event], _saga(order, event, record_saga))
    except outbox.ConditionFailedError:
        return _found(order.order_id)  # decided concurrently
    return ReservationOutcome(Reservation.from_item(_plain(decision)), event, created=True)


def _saga(order: OrderPlaced, event: Event, record_saga: bool) -> saga_progress.SagaWrite | None:
    return saga_progress.maybe_prepare(
        order.order_id, [fact_from_event(event)], record_saga=record_saga, order=order
    )


def _plain(put: Any) -> dict[str, Any]:
    return dynamodb.deserialize(put["Put"]["Item"])


# --- entries ----------------------------------------------------------------------------


def on_order_placed(order: OrderPlaced) -> dict[str, Any]:
    return reserve(order).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """OrderPlaced as an EventBridge event, or an SQS batch of them."""
    return envelopes.dispatch(event, context, on_order_placed, model=OrderPlaced)


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions step: reserve the order of the saga state, or InventoryUnavailable."""
    order = saga_progress.order_from_state(event)
    outcome = reserve(order, record_saga=True)
    if not outcome.reserved:
        r = outcome.reservation
        raise InventoryUnavailable(
            f"order {order.order_id} cannot be reserved: "
            + (r.reason or "it was cancelled before its stock was reserved")
        )
    return outcome.to_result()
