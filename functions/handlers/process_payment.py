"""process_payment: charge an order, never twice (`saga.payment_step.pay`).

Entries:
- `handler(event, context)` (choreography): InventoryReserved, as an EventBridge event
  or an SQS batch of them -> the order read from the orders table, charged through the
  simulated provider (`domain.payments`) -> PaymentProcessed or PaymentFailed, written to
  the outbox in the same transaction as the decision;
- `task(event, context)` (orchestration): the saga state -> `{"paymentId",
  "amountCents", "currency", "status": "CHARGED", ...}`, or raises PaymentDeclined (a
  business failure: not to be retried) or PaymentProviderUnavailable (transient: the
  state machine should retry it). The step is recorded in the order's saga state in the
  same transaction as the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts import InventoryReserved
from domain.payments import Charge, PaymentProviderUnavailable
from eventcraft import envelopes
from saga import store
from saga.payment_step import pay
from saga.tasks import PaymentDeclined, pay_step

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

ACCESS: dict[str, frozenset[str]] = {
    # UpdateItem: mark PENDING + count the attempt, then the decision (in the
    # transaction); GetItem: read the decision a duplicate finds.
    "PAYMENTS_TABLE": frozenset({"dynamodb:UpdateItem", "dynamodb:GetItem"}),
    # GetItem: the order's amount (handler) and its saga record (task); PutItem: the
    # saga record (task).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
}

__all__ = ["ACCESS", "PaymentDeclined", "PaymentProviderUnavailable", "handler", "task"]


def on_inventory_reserved(event: InventoryReserved) -> dict[str, Any]:
    state = store.load(event.order_id)
    if state is None:
        raise store.OrderNotFoundError(
            f"no order {event.order_id} in the orders table: cannot know what to charge; the "
            "event is retried, then dead-lettered"
        )
    charge = Charge(state.order_id, state.customer_id, state.total_cents, state.currency)
    return pay(charge).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """InventoryReserved as an EventBridge event, or an SQS batch of them (a record that
    will not succeed goes to the queue's DLQ with its error: `eventcraft.batch`)."""
    return envelopes.dispatch(
        event, context, on_inventory_reserved, model=InventoryReserved, dead_letter=True
    )


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions step: charge the order of the saga state, or PaymentDeclined
    (`saga.tasks.pay_step`)."""
    return pay_step(event)
