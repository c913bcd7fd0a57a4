"""refund_payment: give back what an order was charged, the compensation of payment
(`saga.payment_step.refund`: refunds only what was charged, once).

Entries:
- `handler(event, context)` (choreography): ShippingFailed, as an EventBridge event or an
  SQS batch of them -> the payment REFUNDED and PaymentRefunded (the amount charged)
  written to the outbox in the same transaction; nothing when nothing was charged;
- `task(event, context)` (orchestration: the compensation of the pay step): the saga
  state -> `{"refunded": bool, "action", "amountCents", ...}`; never fails for "nothing
  to undo". The caught `$.error` and the refund are recorded in the order's saga state
  in the same transaction.

An order that shipped is never refunded: either entry answers `"action": "REFUSED"` with
the reason (and logs it), whatever asked (a retry after a lost reply, a stray event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts import ShippingFailed
from eventcraft import envelopes
from saga.payment_step import refund
from saga.tasks import refund_step

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

ACCESS: dict[str, frozenset[str]] = {
    # GetItem: read the payment; UpdateItem: CHARGED -> REFUNDED, PENDING -> VOID;
    # PutItem: the VOID record of an order never charged.
    "PAYMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # task(): the order's saga record; GetItem also: the customer of an event published
    # before events carried customerId (saga.store.customer_of).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    # GetItem + ConditionCheckItem (in the transaction): a shipped order is never
    # compensated (saga.guards.shipped).
    "SHIPMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:ConditionCheckItem"}),
}


def on_shipping_failed(event: ShippingFailed) -> dict[str, Any]:
    return refund(
        event.order_id, reason=f"ShippingFailed: {event.reason}", customer_id=event.customer_id
    ).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """ShippingFailed as an EventBridge event, or an SQS batch of them."""
    return envelopes.dispatch(event, context, on_shipping_failed, model=ShippingFailed)


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions compensation of the pay step (succeeds with nothing to undo)."""
    return refund_step(event)
