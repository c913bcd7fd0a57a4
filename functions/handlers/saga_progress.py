"""saga_progress: keeps each order's saga state in the orders table from the saga events.

Entries:
- `handler(event, context)` (choreography): an EventBridge event (Lambda target) or an
  SQS batch of them (rule -> queue -> function; partial batch failures). It reads the
  saga events (InventoryReserved, InventoryReservationFailed, PaymentProcessed,
  PaymentFailed, OrderShipped, ShippingFailed, PaymentRefunded, InventoryReleased),
  applies each to the order's saga state (`domain.orders`) and stores the result
  (`saga.store.record`); the transition that ends the saga writes OrderCompleted or
  OrderCancelled to the outbox in the same transaction. A reservation or charge that
  arrives after the saga failed is undone here (release / refund, both idempotent). A
  PaymentProcessed or OrderShipped that its step did not record (`saga.guards.unrecorded`:
  forged) is refused (UnrecordedEventError: it ends in the DLQ with the reason) and the
  order is left as it was.
- `record_outcome(event, context)` (orchestration): the saga's final state on the
  failure path.

Idempotency: a conditional write, not Powertools. The order item remembers the ids of
the events applied to it, and is written only if its `version` is still the one read: a
duplicate changes nothing, and two events for one order applied concurrently are
serialized. A Powertools record keyed on the event id would add a table and two writes
per event, and could not serialize two *different* events racing on one order, which
the version does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts import Event
from domain import orders
from eventcraft import envelopes
from saga import guards, store, tasks
from saga.compensation import compensate_late

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

ACCESS: dict[str, frozenset[str]] = {
    # GetItem: read the order; PutItem: the conditional write of its new state.
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    # The OrderCompleted / OrderCancelled outbox row, in the same transaction.
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # Late compensations (saga.inventory_step.release / saga.payment_step.refund).
    "INVENTORY_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}),
    "PAYMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}),
    # ... never for an order that shipped (saga.guards.shipped, in their transaction);
    # GetItem also: a PaymentProcessed / OrderShipped is what its step recorded (above:
    # PAYMENTS_TABLE's GetItem).
    "SHIPMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:ConditionCheckItem"}),
}


class UnrecordedEventError(ValueError):
    """A saga event claims a charge or a shipment that its step never recorded: forged.
    Not retryable: it ends in the DLQ; the order is left as it was."""


def record_outcome(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions task, the saga's failure hook: record its outcome from its state
    and return the order's status (`saga.tasks.record_outcome`)."""
    return tasks.record_outcome(event)


def progress(event: Event) -> dict[str, Any]:
    """Apply one saga event to its order; trigger the compensations it calls for."""
    problem = guards.unrecorded(event)
    if problem is not None:
        raise UnrecordedEventError(f"{problem}: the event is not applied to the order")
    fact = orders.fact_from_event(event)
    order_id = str(getattr(event, "order_id", ""))
    saga = store.record(order_id, [fact])
    (transition,) = saga.transitions
    compensate_late(
        order_id,
        saga.compensations,
        reason=f"late {event.DETAIL_TYPE}",
        customer_id=saga.state.customer_id,
    )
    return {
        "orderId": order_id,
        "status": saga.state.status.value,
        "duplicate": transition.duplicate,
        "emitted": [e.DETAIL_TYPE for e in transition.emit],
        "compensated": sorted(saga.compensations),
    }


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """An EventBridge saga event, or an SQS batch of them (partial batch response; a
    record that will not succeed goes to the queue's DLQ with its error)."""
    return envelopes.dispatch(event, context, progress, dead_letter=True)
