"""The saga's shipping step: hand a paid order to the (simulated) carrier, once.

`ship(order_id, customer_id, total_cents=..., currency=...)`: the carrier's answer
(`domain.shipping`) -> OrderShipped or ShippingFailed, written to the outbox in the same
transaction as the shipment record. Idempotency: a conditional write (not Powertools):
the shipment record `shipment#<orderId>` is written only if absent, with its event, so a
redelivered PaymentProcessed finds it and ships nothing twice.

Nothing is decided for an order that is not paid for and reserved (`saga.guards`): its
payment CHARGED for its total and its stock RESERVED, read from those tables (not from
the event that asked) and checked again in the shipment's transaction. Otherwise
ShipmentRefused: the event was forged, or the payment or the stock was given back since.

Shipments table (`SHIPMENTS_TABLE`, key `pk` S): `shipment#<orderId>` {orderId, status
SHIPPED|FAILED, shipmentId, carrier, trackingNumber, reason, eventType + event (the
decision's event JSON), createdAt}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import Event, OrderPlaced, OrderShipped, ShippingFailed, parse_detail, utc_now
from domain import shipping
from domain.orders import fact_from_event
from domain.shipping import CarrierConfig, ShipmentStatus, Shipped
from eventcraft import dynamodb, outbox
from eventcraft.settings import env
from saga import guards, store
from saga.guards import SHIPMENTS_TABLE_ENV
from saga.store import SagaConflictError


class ShipmentRefused(Exception):
    """The order is not paid for its total, or its stock is not reserved: nothing is
    shipped or decided. Not retryable: the event that asked is forged or stale (it goes to
    its DLQ with this message)."""


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


def load_shipment(order_id: str) -> ShipmentOutcome | None:
    """The order's shipment decision (strongly consistent), or None."""
    record = dynamodb.get(env(SHIPMENTS_TABLE_ENV), {"pk": shipping.shipment_key(order_id)})
    return _outcome(record, created=False) if record else None


def ship(
    order_id: str,
    customer_id: str,
    *,
    total_cents: int,
    currency: str,
    record_saga: bool = False,
    order: OrderPlaced | None = None,
) -> ShipmentOutcome:
    """Ship the order once (or record that it cannot be shipped). Raises ShipmentRefused
    when it is not paid (`total_cents` in `currency`, charged) and reserved.

    record_saga: record the decision in the order's saga state in the same transaction
        (orchestration); `order` starts that state if it is missing.
    """
    table = env(SHIPMENTS_TABLE_ENV)
    decision = shipping.decide(order_id, customer_id, CarrierConfig.from_env(os.environ))

    def attempt() -> ShipmentOutcome:
        found = load_shipment(order_id)
        if found is not None:
            return found  # decided before: the same answer, whatever happened since
        problem = guards.unpaid(order_id, total_cents, currency) or guards.unreserved(order_id)
        if problem is not None:
            raise ShipmentRefused(
                f"order {order_id} is not shipped: {problem}. The event that asked for it "
                "is forged or stale; nothing was decided"
            )
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
        saga = store.maybe_prepare(
            order_id, [fact_from_event(event)], record_saga=record_saga, order=order
        )
        put = outbox.put(table, record, condition="attribute_not_exists(pk)")
        checks = [
            guards.paid_check(order_id, total_cents, currency),
            guards.reserved_check(order_id),
        ]
        try:
            store.commit([put, *checks], [event], saga)
        except outbox.ConditionFailedError as exc:
            # Decided concurrently, or the payment / stock changed since it was read:
            # read again (the next attempt returns the decision or refuses).
            raise SagaConflictError(f"the shipment of order {order_id} changed") from exc
        return _outcome(record, created=True)

    outcome = store.retry_conflicts(attempt, what=f"shipping order {order_id}")
    if record_saga and not outcome.created and outcome.event is not None:
        # Found a decision made elsewhere: make sure the saga knows it (idempotent).
        store.record(order_id, [fact_from_event(outcome.event)], order=order)
    return outcome
