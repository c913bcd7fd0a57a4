"""ship_order: hand a paid order to the (simulated) carrier, once.

Entries:
- `handler(event, context)` (choreography): PaymentProcessed, as an EventBridge event or
  an SQS batch of them -> the order read from the orders table, the carrier's answer
  (`domain.shipping`) -> OrderShipped or ShippingFailed, written to the outbox in the
  same transaction as the shipment record;
- `task(event, context)` (orchestration): the saga state -> `{"shipmentId", "carrier",
  "trackingNumber", "status": "SHIPPED"}`, or raises ShippingUnavailable (a business
  failure: not to be retried). The step is recorded in the order's saga state in the
  same transaction (shipping is the last step: that write completes the order).
Application function: `ship(order_id, customer_id)`.

Idempotency: a conditional write (not Powertools): the shipment record
`shipment#<orderId>` is written only if absent, with its event, so a redelivered
PaymentProcessed finds it and ships nothing twice.

Shipments table (`SHIPMENTS_TABLE`, key `pk` S): `shipment#<orderId>` {orderId, status
SHIPPED|FAILED, shipmentId, carrier, trackingNumber, reason, eventType + event (the
decision's event JSON), createdAt}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from contracts import (
    Event,
    OrderPlaced,
    OrderShipped,
    PaymentProcessed,
    ShippingFailed,
    parse_detail,
    utc_now,
)
from domain import shipping
from domain.orders import fact_from_event
from domain.shipping import CarrierConfig, ShipmentStatus, Shipped
from eventkit import dynamodb, envelopes, outbox
from handlers import saga_progress
from handlers.saga_progress import env

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
}

SHIPMENTS_TABLE_ENV: Final = "SHIPMENTS_TABLE"


class ShippingUnavailable(Exception):
    """The carrier cannot ship the order. A business outcome: retrying gives the same
    answer."""


@dataclass(frozen=True)
class ShipmentOutcome:
    """The order's shipment decision. `created`: this call made it (False: found)."""

    order_id: str
    status: ShipmentStatus
    shipment_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    reason: str | None = None
    event: Event | None = None
    created: bool = False

    @property
    def shipped(self) -> bool:
        return self.status is ShipmentStatus.SHIPPED

    def to_result(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "status": self.status.value,
            "shipmentId": self.shipment_id,
            "carrier": self.carrier,
            "trackingNumber": self.tracking_number,
            "reason": self.reason,
            "eventId": self.event.event_id if self.event else None,
            "created": self.created,
        }


def _outcome(record: Mapping[str, Any], *, created: bool) -> ShipmentOutcome:
    event = (
        parse_detail(str(record["eventType"]), json.loads(str(record["event"])))
        if record.get("eventType") and record.get("event")
        else None
    )
    return ShipmentOutcome(
        order_id=str(record["orderId"]),
        status=ShipmentStatus(record["status"]),
        shipment_id=record.get("shipmentId"),
        carrier=record.get("carrier"),
        tracking_number=record.get("trackingNumber"),
        reason=record.get("reason"),
        event=event,
        created=created,
    )


def load(order_id: str) -> ShipmentOutcome | None:
    """The order's shipment decision (strongly consistent), or None."""
    record = dynamodb.get(env(SHIPMENTS_TABLE_ENV), {"pk": shipping.shipment_key(order_id)})
    return _outcome(record, created=False) if record else None


def ship(
    order_id: str,
    customer_id: str,
    *,
    record_saga: bool = False,
    order: OrderPlaced | None = None,
) -> ShipmentOutcome:
    """Ship the order once (or record that it cannot be shipped).

    record_saga: record the decision in the order's saga state in the same transaction
        (orchestration); `order` starts that state if it is missing.
    """
    table = env(SHIPMENTS_TABLE_ENV)
    decision = shipping.decide(order_id, customer_id, CarrierConfig.from_env(os.environ))

    def attempt() -> ShipmentOutcome:
        event: OrderShipped | ShippingFailed
        fields: dict[str, Any]
        if isinstance(decision, Shipped):
            event = OrderShipped(
                order_id=order_id,
                customer_id=customer_id,
                shipment_id=decision.shipment_id,
                carrier=decision.carrier,
                tracking_number=decision.tracking_number,
            )
            fields = {
                "status": ShipmentStatus.SHIPPED.value,
                "shipmentId": decision.shipment_id,
                "carrier": decision.carrier,
                "trackingNumber": decision.tracking_number,
            }
        else:
            event = ShippingFailed(
                order_id=order_id, customer_id=customer_id, reason=decision.reason
            )
            fields = {"status": ShipmentStatus.FAILED.value, "reason": decision.reason}
        record = {
            "pk": shipping.shipment_key(order_id),
            "orderId": order_id,
            "eventType": event.DETAIL_TYPE,
            "event": event.to_json(),
            "createdAt": utc_now().isoformat(),
            **fields,
        }
        saga = saga_progress.maybe_prepare(
            order_id, [fact_from_event(event)], record_saga=record_saga, order=order
        )
        put = outbox.put(table, record, condition="attribute_not_exists(pk)")
        try:
            saga_progress.commit([put], [event], saga)
        except outbox.ConditionFailedError:
            found = load(order_id)
            if found is None:
                raise RuntimeError(
                    f"the shipment of order {order_id} failed its condition but is not "
                    "there: retry the invocation"
                ) from None
            return found
        return _outcome(record, created=True)

    outcome = saga_progress.retry_conflicts(attempt, what=f"shipping order {order_id}")
    if record_saga and not outcome.created and outcome.event is not None:
        # Found a decision made elsewhere: make sure the saga knows it (idempotent).
        saga_progress.record(order_id, [fact_from_event(outcome.event)], order=order)
    return outcome


# --- entries ----------------------------------------------------------------------------


def on_payment_processed(event: PaymentProcessed) -> dict[str, Any]:
    state = saga_progress.load(event.order_id)
    if state is None:
        raise saga_progress.OrderNotFoundError(
            f"no order {event.order_id} in the orders table: cannot know where to ship; the "
            "event is retried, then dead-lettered"
        )
    return ship(state.order_id, state.customer_id).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """PaymentProcessed as an EventBridge event, or an SQS batch of them."""
    return envelopes.dispatch(event, context, on_payment_processed, model=PaymentProcessed)


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions step: ship the order of the saga state, or ShippingUnavailable."""
    order = saga_progress.order_from_state(event)
    outcome = ship(order.order_id, order.customer_id, record_saga=True, order=order)
    if not outcome.shipped:
        raise ShippingUnavailable(
            f"order {order.order_id} cannot be shipped: {outcome.reason or 'refused'}"
        )
    return outcome.to_result()
