"""release_inventory: give back an order's reserved stock (the compensation of reserve).

Entries:
- `handler(event, context)` (choreography): PaymentFailed or ShippingFailed, as an
  EventBridge event or an SQS batch of them -> the stock restored and InventoryReleased
  written to the outbox in the same transaction (nothing when there is nothing to
  release);
- `task(event, context)` (orchestration: the compensation of the reserve step): the saga
  state -> `{"released": bool, "action", "items", ...}`; never fails for "nothing to
  undo". The caught `$.error` and the release are recorded in the order's saga state in
  the same transaction.
Application function: `release(order_id, reason=...)` (also used by saga_progress for a
reservation that arrived after the order was cancelled).

Idempotency: a conditional write on the reservation item (not Powertools). RESERVED ->
RELEASED is conditional on RESERVED, in the transaction that restores the stock, so
releasing twice restores once; an order that reserved nothing gets a RELEASED tombstone
(written only if absent), which also refuses a reservation that would arrive later.
A Powertools record keyed on the event id would not help: two different events
(PaymentFailed, a late-reservation compensation, the orchestrator) may ask for the same
release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from contracts import (
    Event,
    InventoryReleased,
    OrderPlaced,
    PaymentFailed,
    ShippingFailed,
    StockLine,
    utc_now,
)
from domain import inventory
from domain.inventory import ReleaseAction, ReservationStatus
from domain.orders import SagaFact, clip, fact_from_event
from eventkit import envelopes, outbox
from handlers import reserve_inventory, saga_progress
from handlers.saga_progress import SagaConflictError, env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

ACCESS: dict[str, frozenset[str]] = {
    # GetItem: read the reservation; UpdateItem: RESERVED -> RELEASED and the stock
    # increments (one transaction); PutItem: the tombstone when nothing was reserved.
    "INVENTORY_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # task(): the order's saga record; GetItem also: the customer of an event published
    # before events carried customerId (saga_progress.customer_of).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
}

INVENTORY_TABLE_ENV: Final = "INVENTORY_TABLE"
TRIGGERS: Final = (PaymentFailed, ShippingFailed)


@dataclass(frozen=True)
class ReleaseOutcome:
    """What a release did: RELEASE (this call restored `lines`), TOMBSTONE (nothing was
    reserved; later reservations are refused) or NOTHING (already released/rejected)."""

    order_id: str
    action: ReleaseAction
    lines: tuple[StockLine, ...] = ()
    event: Event | None = None

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
    """Release the order's reservation, once; a no-op when there is nothing to release.

    customer_id: the order's customer, for InventoryReleased (default: `order`'s, else
        the order's record: `saga_progress.customer_of`).
    record_saga: record `facts` and the release in the order's saga state in the same
        transaction (orchestration); `order` starts that state if it is missing.
    """
    table = env(INVENTORY_TABLE_ENV)
    reason = clip(reason)

    def saga(*extra: SagaFact) -> saga_progress.SagaWrite | None:
        wanted = [*facts, *extra]
        return saga_progress.maybe_prepare(order_id, wanted, record_saga=record_saga, order=order)

    def attempt() -> ReleaseOutcome:
        reservation = reserve_inventory.load(order_id)
        action = inventory.release_action(reservation.status if reservation else None)
        now = utc_now().isoformat()
        try:
            if reservation is not None and action is ReleaseAction.RELEASE:
                event = InventoryReleased(
                    order_id=order_id,
                    customer_id=saga_progress.customer_of(
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
                items = [released, *(_stock_increment(table, ln) for ln in reservation.lines)]
                saga_progress.commit(items, [event], saga(fact_from_event(event)))
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
                saga_progress.commit([tombstone], [], saga())
                return ReleaseOutcome(order_id, action)
        except outbox.ConditionFailedError as exc:
            # The reservation changed between our read and our write: read it again.
            raise SagaConflictError(f"the reservation of order {order_id} changed") from exc
        saga_progress.commit([], [], saga())
        return ReleaseOutcome(order_id, action)

    return saga_progress.retry_conflicts(attempt, what=f"releasing order {order_id}")


# --- entries ----------------------------------------------------------------------------


def on_failure(event: Event, record_id: str | None = None) -> dict[str, Any]:
    if not isinstance(event, TRIGGERS):
        raise envelopes.PoisonRecordError(
            "eventbridge",
            record_id,
            f"release_inventory reads PaymentFailed and ShippingFailed, not "
            f"{event.DETAIL_TYPE}: narrow the rule that routes it here",
        )
    reason = f"{event.DETAIL_TYPE}: {event.reason}"
    return release(event.order_id, reason=reason, customer_id=event.customer_id).to_result()


def _on_record(record: SQSRecord) -> dict[str, Any]:
    return on_failure(envelopes.from_sqs(record), record.message_id)


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """PaymentFailed / ShippingFailed as an EventBridge event, or an SQS batch of them."""
    if "Records" in event:
        from eventkit import batch  # lazy: Powertools batch only for SQS deliveries

        return batch.process_batch(event, context, _on_record, kind="sqs")
    return on_failure(envelopes.from_eventbridge(event), event.get("id"))


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions compensation of the reserve step (succeeds with nothing to undo)."""
    return saga_progress.compensation_task(event, release)
