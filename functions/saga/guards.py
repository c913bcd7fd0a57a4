"""What a step or a compensation checks before it acts: the facts the other steps
recorded in their own tables, never what an event claims.

A saga event may arrive twice, late, after its reply was lost and the step was retried
or compensated, or forged. So:

- shipping needs the order's payment CHARGED for the order's total (in the payments
  table) and its stock RESERVED (in the inventory table): `unpaid`, `unreserved`;
- a refund or a release needs the order NOT shipped (in the shipments table): the goods
  are gone, and nothing undoes a shipment: `shipped`;
- the order's saga state records a charge or a shipment only as its step recorded it
  (`unrecorded`): a genuine PaymentProcessed / OrderShipped is written in the same
  transaction as its step's record, so a mismatch means the event is forged.

Each fact is read (strongly consistent) to decide and to say why, and is checked again
by a ConditionCheck in the step's own transaction (`*_check`), so it cannot change
between the read and the write: a shipment and a refund of the same order exclude each
other whatever their timing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from contracts import Event, OrderShipped, PaymentProcessed
from domain import inventory, payments, shipping
from domain.inventory import ReservationStatus
from domain.payments import PaymentStatus
from domain.shipping import ShipmentStatus
from eventcraft import dynamodb
from eventcraft.settings import env

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

INVENTORY_TABLE_ENV: Final = "INVENTORY_TABLE"
PAYMENTS_TABLE_ENV: Final = "PAYMENTS_TABLE"
SHIPMENTS_TABLE_ENV: Final = "SHIPMENTS_TABLE"


def _check(table_env: str, key: str, condition: str, values: dict[str, Any]) -> Any:
    """A ConditionCheck of the item `key` (`#s` is its status) in the table of `table_env`."""
    return {
        "ConditionCheck": {
            "TableName": env(table_env),
            "Key": {"pk": {"S": key}},
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
    }


# --- shipped: no compensation after it -------------------------------------------------


def shipped(order_id: str) -> str | None:
    """Why the order's reservation and payment must not be undone (it shipped), or None."""
    record = dynamodb.get(env(SHIPMENTS_TABLE_ENV), {"pk": shipping.shipment_key(order_id)})
    if record is None or record.get("status") != ShipmentStatus.SHIPPED.value:
        return None
    return (
        f"order {order_id} has shipped (shipment {record.get('shipmentId')}, "
        f"{record.get('carrier')} {record.get('trackingNumber')}): the goods are gone"
    )


def not_shipped_check(order_id: str) -> TransactWriteItemTypeDef:
    """Fails the transaction if the order has shipped meanwhile."""
    check: TransactWriteItemTypeDef = _check(
        SHIPMENTS_TABLE_ENV,
        shipping.shipment_key(order_id),
        "attribute_not_exists(pk) OR #s <> :shipped",
        {":shipped": {"S": ShipmentStatus.SHIPPED.value}},
    )
    return check


# --- paid and reserved: what shipping needs --------------------------------------------


def unpaid(order_id: str, total_cents: int, currency: str) -> str | None:
    """Why the order is not paid for (None: its payment is CHARGED, `total_cents` in
    `currency`)."""
    record = dynamodb.get(env(PAYMENTS_TABLE_ENV), {"pk": payments.payment_key(order_id)})
    if record is None:
        return f"order {order_id} has no payment"
    status = record.get("status")
    if status != PaymentStatus.CHARGED.value:
        return f"the payment of order {order_id} is {status}, not {PaymentStatus.CHARGED.value}"
    charged, paid_in = int(record.get("chargedCents", 0)), record.get("currency")
    if charged != total_cents or paid_in != currency:
        return (
            f"order {order_id} was charged {charged} {paid_in} cents, its total is "
            f"{total_cents} {currency} cents"
        )
    return None


def paid_check(order_id: str, total_cents: int, currency: str) -> TransactWriteItemTypeDef:
    """Fails the transaction unless the payment is still CHARGED for the total."""
    check: TransactWriteItemTypeDef = _check(
        PAYMENTS_TABLE_ENV,
        payments.payment_key(order_id),
        "#s = :charged AND chargedCents = :total AND currency = :currency",
        {
            ":charged": {"S": PaymentStatus.CHARGED.value},
            ":total": {"N": str(total_cents)},
            ":currency": {"S": currency},
        },
    )
    return check


def unreserved(order_id: str) -> str | None:
    """Why the order's stock is not held for it (None: its reservation is RESERVED)."""
    record = dynamodb.get(env(INVENTORY_TABLE_ENV), {"pk": inventory.reservation_key(order_id)})
    if record is None:
        return f"order {order_id} has no reservation"
    status = record.get("status")
    if status != ReservationStatus.RESERVED.value:
        return (
            f"the reservation of order {order_id} is {status}, not "
            f"{ReservationStatus.RESERVED.value}"
        )
    return None


def reserved_check(order_id: str) -> TransactWriteItemTypeDef:
    """Fails the transaction unless the reservation is still RESERVED."""
    check: TransactWriteItemTypeDef = _check(
        INVENTORY_TABLE_ENV,
        inventory.reservation_key(order_id),
        "#s = :reserved",
        {":reserved": {"S": ReservationStatus.RESERVED.value}},
    )
    return check


# --- what a saga event claims ----------------------------------------------------------


def unrecorded(event: Event) -> str | None:
    """Why a PaymentProcessed or an OrderShipped is not what its step recorded (the
    payments / shipments table), or None (it is, or it is another event)."""
    if isinstance(event, PaymentProcessed):
        key = payments.payment_key(event.order_id)
        record = dynamodb.get(env(PAYMENTS_TABLE_ENV), {"pk": key}) or {}
        # CHARGED, or REFUNDED since: either way it was charged as the event says.
        charged = record.get("status") in (PaymentStatus.CHARGED, PaymentStatus.REFUNDED)
        if not charged or (
            int(record.get("chargedCents", 0)),
            record.get("currency"),
            record.get("paymentId"),
        ) != (event.amount_cents, event.currency, event.payment_id):
            return (
                f"PaymentProcessed {event.event_id} says order {event.order_id} was charged "
                f"{event.amount_cents} {event.currency} cents ({event.payment_id}); the payments "
                f"table has {record.get('status', 'no payment')}, charged "
                f"{record.get('chargedCents', 0)} {record.get('currency', '')} cents "
                f"({record.get('paymentId')})"
            )
    if isinstance(event, OrderShipped):
        key = shipping.shipment_key(event.order_id)
        record = dynamodb.get(env(SHIPMENTS_TABLE_ENV), {"pk": key}) or {}
        if (record.get("status"), record.get("shipmentId")) != (
            ShipmentStatus.SHIPPED,
            event.shipment_id,
        ):
            return (
                f"OrderShipped {event.event_id} says order {event.order_id} shipped as "
                f"{event.shipment_id}; the shipments table has "
                f"{record.get('status', 'no shipment')} ({record.get('shipmentId')})"
            )
    return None
