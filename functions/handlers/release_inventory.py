"""release_inventory: give back an order's reserved stock, the compensation of reserve
(`saga.inventory_step.release`: idempotent, a no-op when there is nothing to release).

Entries:
- `handler(event, context)` (choreography): PaymentFailed or ShippingFailed, as an
  EventBridge event or an SQS batch of them -> the stock restored and InventoryReleased
  written to the outbox in the same transaction (nothing when there is nothing to
  release);
- `task(event, context)` (orchestration: the compensation of the reserve step): the saga
  state -> `{"released": bool, "action", "items", ...}`; never fails for "nothing to
  undo". The caught `$.error` and the release are recorded in the order's saga state in
  the same transaction.

The stock of an order that shipped is never restored: either entry answers
`"action": "REFUSED"` with the reason (and logs it), whatever asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from contracts import Event, PaymentFailed, ShippingFailed
from eventcraft import envelopes
from saga.inventory_step import release
from saga.tasks import release_step

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

ACCESS: dict[str, frozenset[str]] = {
    # GetItem: read the reservation; UpdateItem: RESERVED -> RELEASED and the stock
    # increments (one transaction); PutItem: the tombstone when nothing was reserved.
    "INVENTORY_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # task(): the order's saga record; GetItem also: the customer of an event published
    # before events carried customerId (saga.store.customer_of).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    # GetItem + ConditionCheckItem (in the transaction): a shipped order is never
    # compensated (saga.guards.shipped).
    "SHIPMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:ConditionCheckItem"}),
}

TRIGGERS: Final = (PaymentFailed, ShippingFailed)


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
        from eventcraft import batch  # lazy: Powertools batch only for SQS deliveries

        return batch.process_batch(event, context, _on_record, kind="sqs")
    return on_failure(envelopes.from_eventbridge(event), event.get("id"))


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions compensation of the reserve step (succeeds with nothing to undo)."""
    return release_step(event)
