"""reserve_inventory: reserve the stock of an order, all lines or none
(`saga.inventory_step.reserve`).

Entries:
- `handler(event, context)` (choreography): OrderPlaced, as an EventBridge event or an
  SQS batch of them -> InventoryReserved, or InventoryReservationFailed (with the SKUs
  short of stock), written to the outbox in the same transaction as the decision;
- `task(event, context)` (orchestration, Step Functions): the saga state (carrying the
  OrderPlaced) -> `{"reservationId", "items", "status": "RESERVED", ...}`, or raises
  InventoryUnavailable (a business failure: the saga must not retry it). The step is
  recorded in the order's saga state in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts import OrderPlaced
from eventcraft import envelopes
from saga.inventory_step import reserve
from saga.tasks import InventoryUnavailable, reserve_step

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

ACCESS: dict[str, frozenset[str]] = {
    # UpdateItem: the stock decrements; PutItem: the reservation decision (both in the
    # transaction); GetItem: read the decision a duplicate finds.
    "INVENTORY_TABLE": frozenset({"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # task(): the order's saga record (read, then conditional put in the transaction).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
}

__all__ = ["ACCESS", "InventoryUnavailable", "handler", "task"]


def on_order_placed(order: OrderPlaced) -> dict[str, Any]:
    return reserve(order).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """OrderPlaced as an EventBridge event, or an SQS batch of them (a record that will
    not succeed goes to the queue's DLQ with its error: `eventcraft.batch`)."""
    return envelopes.dispatch(event, context, on_order_placed, model=OrderPlaced, dead_letter=True)


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions step: reserve the order of the saga state, or InventoryUnavailable
    (`saga.tasks.reserve_step`)."""
    return reserve_step(event)
