"""process_payment: charge an order, never twice.

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
Application function: `pay(charge)`.

Never charged twice: the payment record `payment#<orderId>` is the idempotency key of the
charge (a conditional write, not Powertools). An attempt first marks it PENDING and counts
the attempt (UpdateItem, refused once the payment is decided); the decision (CHARGED /
DECLINED) is written conditionally on PENDING, with its event: of two concurrent
attempts only one decides, a redelivery after the decision finds it and changes nothing,
and a refund that voided a PENDING payment makes the late decision fail. The provider
is called with the order id as its idempotency key (the simulated one is deterministic).

Payments table (`PAYMENTS_TABLE`, key `pk` S): `payment#<orderId>` {orderId, customerId,
amountCents, currency, status PENDING|CHARGED|DECLINED|REFUNDED|VOID, attempts, paymentId,
chargedCents, reason, eventType + event (the decision's event JSON), refundId,
refundedCents, createdAt, decidedAt, refundedAt}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from contracts import (
    Event,
    InventoryReserved,
    OrderPlaced,
    PaymentFailed,
    PaymentProcessed,
    parse_detail,
    utc_now,
)
from domain import payments
from domain.orders import fact_from_event
from domain.payments import (
    Approved,
    Charge,
    PaymentProviderUnavailable,
    PaymentStatus,
    ProviderConfig,
)
from eventkit import clients, dynamodb, envelopes, outbox
from handlers import saga_progress
from handlers.saga_progress import env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

ACCESS: dict[str, frozenset[str]] = {
    # UpdateItem: mark PENDING + count the attempt, then the decision (in the
    # transaction); GetItem: read the decision a duplicate finds.
    "PAYMENTS_TABLE": frozenset({"dynamodb:UpdateItem", "dynamodb:GetItem"}),
    # GetItem: the order's amount (handler) and its saga record (task); PutItem: the
    # saga record (task).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
}

PAYMENTS_TABLE_ENV: Final = "PAYMENTS_TABLE"

__all__ = [
    "ACCESS",
    "PaymentDeclined",
    "PaymentOutcome",
    "PaymentProviderUnavailable",
    "handler",
    "load",
    "pay",
    "task",
]


class PaymentDeclined(Exception):
    """The payment was declined (or voided by a compensation). A business outcome:
    retrying gives the same answer."""


@dataclass(frozen=True)
class PaymentOutcome:
    """The order's payment decision. `created`: this call made it (False: found)."""

    order_id: str
    status: PaymentStatus
    amount_cents: int
    currency: str
    payment_id: str | None = None
    reason: str | None = None
    event: Event | None = None
    created: bool = False

    @property
    def charged(self) -> bool:
        return self.status is PaymentStatus.CHARGED

    def to_result(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "status": self.status.value,
            "paymentId": self.payment_id,
            "amountCents": self.amount_cents,
            "currency": self.currency,
            "reason": self.reason,
            "eventId": self.event.event_id if self.event else None,
            "created": self.created,
        }


def load(order_id: str) -> dict[str, Any] | None:
    """The order's payment record (plain values, strongly consistent), or None."""
    return dynamodb.get(env(PAYMENTS_TABLE_ENV), {"pk": payments.payment_key(order_id)})


def _found(charge: Charge) -> PaymentOutcome:
    record = load(charge.order_id)
    if record is None:
        raise RuntimeError(
            f"the payment of order {charge.order_id} failed its condition but is not there: "
            "retry the invocation"
        )
    event = (
        parse_detail(str(record["eventType"]), json.loads(str(record["event"])))
        if record.get("eventType") and record.get("event")
        else None
    )
    return PaymentOutcome(
        order_id=charge.order_id,
        status=PaymentStatus(record["status"]),
        amount_cents=int(record.get("amountCents", charge.amount_cents)),
        currency=str(record.get("currency", charge.currency)),
        payment_id=record.get("paymentId"),
        reason=record.get("reason") or record.get("voidReason"),
        event=event,
    )


def _begin(charge: Charge) -> int | None:
    """Mark the payment PENDING and count this attempt; None when already decided."""
    ddb = clients.client("dynamodb")
    try:
        response = ddb.update_item(
            TableName=env(PAYMENTS_TABLE_ENV),
            Key={"pk": {"S": payments.payment_key(charge.order_id)}},
            UpdateExpression=(
                "SET #s = if_not_exists(#s, :pending), orderId = :o, customerId = :c, "
                "amountCents = :a, currency = :cur, createdAt = if_not_exists(createdAt, :now) "
                "ADD attempts :one"
            ),
            ConditionExpression="attribute_not_exists(pk) OR #s = :pending",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":pending": {"S": PaymentStatus.PENDING.value},
                ":o": {"S": charge.order_id},
                ":c": {"S": charge.customer_id},
                ":a": {"N": str(charge.amount_cents)},
                ":cur": {"S": charge.currency},
                ":now": {"S": utc_now().isoformat()},
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return None
    return int(response["Attributes"]["attempts"]["N"])


def _decision(charge: Charge, event: PaymentProcessed | PaymentFailed) -> TransactWriteItemTypeDef:
    charged = isinstance(event, PaymentProcessed)
    values: dict[str, Any] = {
        ":pending": {"S": PaymentStatus.PENDING.value},
        ":status": {"S": (PaymentStatus.CHARGED if charged else PaymentStatus.DECLINED).value},
        ":type": {"S": event.DETAIL_TYPE},
        ":event": {"S": event.to_json()},
        ":at": {"S": utc_now().isoformat()},
    }
    if isinstance(event, PaymentProcessed):
        extra = "paymentId = :pid, chargedCents = :a"
        values |= {":pid": {"S": event.payment_id}, ":a": {"N": str(event.amount_cents)}}
    else:
        extra = "reason = :why"
        values[":why"] = {"S": event.reason}
    return {
        "Update": {
            "TableName": env(PAYMENTS_TABLE_ENV),
            "Key": {"pk": {"S": payments.payment_key(charge.order_id)}},
            "UpdateExpression": (
                f"SET #s = :status, eventType = :type, event = :event, decidedAt = :at, {extra}"
            ),
            "ConditionExpression": "#s = :pending",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
    }


def pay(
    charge: Charge, *, record_saga: bool = False, order: OrderPlaced | None = None
) -> PaymentOutcome:
    """Charge `charge` once. Raises PaymentProviderUnavailable (transient: retry later).

    record_saga: record the decision in the order's saga state in the same transaction
        (orchestration); `order` starts that state if it is missing.
    """
    config = ProviderConfig.from_env(os.environ)
    attempts = _begin(charge)
    outcome = (
        _found(charge)
        if attempts is None
        else _decide(charge, attempts, config, record_saga=record_saga, order=order)
    )
    if record_saga and not outcome.created and outcome.event is not None:
        # Found a decision made elsewhere: make sure the saga knows it (idempotent).
        saga_progress.record(charge.order_id, [fact_from_event(outcome.event)], order=order)
    return outcome


def _decide(
    charge: Charge,
    attempts: int,
    config: ProviderConfig,
    *,
    record_saga: bool,
    order: OrderPlaced | None,
) -> PaymentOutcome:
    """Ask the provider, then write its decision (conditional on PENDING) with its event
    (and the saga record when `record_saga`)."""
    decision = payments.decide(charge, config, attempts)  # may raise: stays PENDING

    def attempt() -> PaymentOutcome:
        event: PaymentProcessed | PaymentFailed
        if isinstance(decision, Approved):
            event = PaymentProcessed(
                order_id=charge.order_id,
                customer_id=charge.customer_id,
                payment_id=decision.payment_id,
                amount_cents=charge.amount_cents,
                currency=charge.currency,
            )
        else:
            event = PaymentFailed(
                order_id=charge.order_id,
                customer_id=charge.customer_id,
                reason=decision.reason,
                amount_cents=charge.amount_cents,
                currency=charge.currency,
            )
        saga = saga_progress.maybe_prepare(
            charge.order_id, [fact_from_event(event)], record_saga=record_saga, order=order
        )
        try:
            saga_progress.commit([_decision(charge, event)], [event], saga)
        except outbox.ConditionFailedError:
            return _found(charge)  # decided (or voided) concurrently: that decision stands
        return PaymentOutcome(
            order_id=charge.order_id,
            status=(
                PaymentStatus.CHARGED
                if isinstance(event, PaymentProcessed)
                else PaymentStatus.DECLINED
            ),
            amount_cents=charge.amount_cents,
            currency=charge.currency,
            payment_id=getattr(event, "payment_id", None),
            reason=getattr(event, "reason", None),
            event=event,
            created=True,
        )

    return saga_progress.retry_conflicts(attempt, what=f"paying order {charge.order_id}")


# --- entries ----------------------------------------------------------------------------


def charge_of(order: OrderPlaced) -> Charge:
    return Charge(order.order_id, order.customer_id, order.total_cents, order.currency)


def on_inventory_reserved(event: InventoryReserved) -> dict[str, Any]:
    state = saga_progress.load(event.order_id)
    if state is None:
        raise saga_progress.OrderNotFoundError(
            f"no order {event.order_id} in the orders table: cannot know what to charge; the "
            "event is retried, then dead-lettered"
        )
    charge = Charge(state.order_id, state.customer_id, state.total_cents, state.currency)
    return pay(charge).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """InventoryReserved as an EventBridge event, or an SQS batch of them."""
    return envelopes.dispatch(event, context, on_inventory_reserved, model=InventoryReserved)


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions step: charge the order of the saga state, or PaymentDeclined."""
    order = saga_progress.order_from_state(event)
    outcome = pay(charge_of(order), record_saga=True, order=order)
    if not outcome.charged:
        raise PaymentDeclined(
            f"payment of order {order.order_id} {outcome.status.value.lower()}: "
            + (outcome.reason or "it was compensated before it was charged")
        )
    return outcome.to_result()
