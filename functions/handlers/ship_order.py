"""ship_order: hand a paid order to the (simulated) carrier, once
(`saga.shipping_step.ship`).

Entries:
- `handler(event, context)` (choreography): PaymentProcessed, as an EventBridge event or
  an SQS batch of them -> the order read from the orders table, the carrier's answer
  (`domain.shipping`) -> OrderShipped or ShippingFailed, written to the outbox in the
  same transaction as the shipment record;
- `task(event, context)` (orchestration): the saga state -> `{"shipmentId", "carrier",
  "trackingNumber", "status": "SHIPPED"}`, or raises ShippingUnavailable (a business
  failure: not to be retried). The step is recorded in the order's saga state in the
  same transaction (shipping is the last step: that write completes the order).

Both raise ShipmentRefused, deciding nothing, when the order's payment is not CHARGED
for its total or its stock not RESERVED (read from the payments and inventory tables,
not from the event): a forged or stale PaymentProcessed ends in the DLQ with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts import PaymentProcessed
from eventcraft import envelopes
from saga import store
from saga.shipping_step import ShipmentRefused, ship
from saga.tasks import ShippingUnavailable, ship_step

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

ACCESS: dict[str, frozenset[str]] = {
    # PutItem: the shipment decision (in the transaction); GetItem: read the decision a
    # duplicate finds.
    "SHIPMENTS_TABLE": frozenset({"dynamodb:PutItem", "dynamodb:GetItem"}),
    # GetItem: the order's customer (handler) and its saga record (task); PutItem: the
    # saga record (task).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # GetItem + ConditionCheckItem (in the transaction): the order is charged its total
    # and its stock reserved (saga.guards).
    "PAYMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:ConditionCheckItem"}),
    "INVENTORY_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:ConditionCheckItem"}),
}

__all__ = ["ACCESS", "ShipmentRefused", "ShippingUnavailable", "handler", "task"]


def on_payment_processed(event: PaymentProcessed) -> dict[str, Any]:
    state = store.load(event.order_id)
    if state is None:
        raise store.OrderNotFoundError(
            f"no order {event.order_id} in the orders table: cannot know where to ship; the "
            "event is retried, then dead-lettered"
        )
    return ship(
        state.order_id, state.customer_id, total_cents=state.total_cents, currency=state.currency
    ).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """PaymentProcessed as an EventBridge event, or an SQS batch of them."""
    return envelopes.dispatch(event, context, on_payment_processed, model=PaymentProcessed)


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions step: ship the order of the saga state, or ShippingUnavailable
    (`saga.tasks.ship_step`)."""
    return ship_step(event)
