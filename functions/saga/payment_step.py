"""The saga's payment step: charge an order, never twice, and its compensation, refund.

`pay(charge)`: the payment record `payment#<orderId>` is the idempotency key of the
charge (a conditional write, not Powertools). An attempt first marks it PENDING and
counts the attempt (UpdateItem, refused once the payment is decided); the decision
(CHARGED / DECLINED) is written conditionally on PENDING, with its event: of two
concurrent attempts only one decides, a redelivery after the decision finds it and
changes nothing, and a refund that voided a PENDING payment makes the late decision
fail. The provider is called with the order id as its idempotency key (the simulated one
is deterministic).

`refund(order_id, reason=...)`: refund only what was charged, once. CHARGED -> REFUNDED
is conditional on CHARGED and refunds `chargedCents` from the record, so two refunds
return the money once; a PENDING payment is voided (its late decision then fails its
condition), and an order never charged gets a VOID record that refuses a later charge. A
Powertools record keyed on the event id would not stop two different events
(ShippingFailed, the orchestrator, a late-charge compensation) from refunding twice; the
record's status does. An order that shipped is never refunded (`saga.guards.shipped`,
checked again in the refund's transaction): a compensation that comes after a lost
reply, a retry or a stray event refuses (REFUSED, logged with the reason).

Payments table (`PAYMENTS_TABLE`, key `pk` S): `payment#<orderId>` {orderId, customerId,
amountCents, currency, status PENDING|CHARGED|DECLINED|REFUNDED|VOID, attempts, paymentId,
chargedCents, reason, eventType + event (the decision's event JSON), refundId,
refundedCents, createdAt, decidedAt, refundedAt}.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contracts import (
    Event,
    OrderPlaced,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
    parse_detail,
    utc_now,
)
from domain import payments
from domain.orders import SagaFact, clip, fact_from_event
from domain.payments import (
    Approved,
    Charge,
    PaymentStatus,
    ProviderConfig,
    RefundAction,
)
from eventcraft import clients, dynamodb, outbox
from eventcraft.settings import env
from saga import guards, store
from saga.guards import PAYMENTS_TABLE_ENV
from saga.store import SagaConflictError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

logger = logging.getLogger(__name__)


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


def load_payment(order_id: str) -> dict[str, Any] | None:
    """The order's payment record (plain values, strongly consistent), or None."""
    return dynamodb.get(env(PAYMENTS_TABLE_ENV), {"pk": payments.payment_key(order_id)})


def _found(charge: Charge) -> PaymentOutcome:
    record = load_payment(charge.order_id)
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
        store.record(charge.order_id, [fact_from_event(outcome.event)], order=order)
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
        saga = store.maybe_prepare(
            charge.order_id, [fact_from_event(event)], record_saga=record_saga, order=order
        )
        try:
            store.commit([_decision(charge, event)], [event], saga)
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

    return store.retry_conflicts(attempt, what=f"paying order {charge.order_id}")


def charge_of(order: OrderPlaced) -> Charge:
    """What the order is charged."""
    return Charge(order.order_id, order.customer_id, order.total_cents, order.currency)


# --- the compensation ------------------------------------------------------------------


@dataclass(frozen=True)
class RefundOutcome:
    """What a refund did: REFUND (this call refunded `amount_cents`), VOID (a pending
    charge was stopped), TOMBSTONE (nothing charged; later charges refused), NOTHING,
    REFUSED (the order shipped: `reason`)."""

    order_id: str
    action: RefundAction
    amount_cents: int = 0
    currency: str | None = None
    refund_id: str | None = None
    event: Event | None = None
    reason: str | None = None

    @property
    def refunded(self) -> bool:
        return self.action is RefundAction.REFUND

    def to_result(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "action": self.action.value,
            "refunded": self.refunded,
            "amountCents": self.amount_cents,
            "currency": self.currency,
            "refundId": self.refund_id,
            "eventId": self.event.event_id if self.event else None,
            "reason": self.reason,
        }


def _update(
    table: str, order_id: str, *, expect: PaymentStatus, set_: str, values: dict[str, Any]
) -> TransactWriteItemTypeDef:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": payments.payment_key(order_id)}},
            "UpdateExpression": f"SET {set_}",
            "ConditionExpression": "#s = :expected",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":expected": {"S": expect.value}, **values},
        }
    }


def refund(
    order_id: str,
    *,
    reason: str,
    customer_id: str | None = None,
    record_saga: bool = False,
    order: OrderPlaced | None = None,
    facts: Sequence[SagaFact] = (),
) -> RefundOutcome:
    """Refund what the order was charged, once; a no-op when nothing was charged;
    REFUSED when the order shipped.

    customer_id: the order's customer, for PaymentRefunded (default: `order`'s, else the
        payment record's, else the order's record: `saga.store.customer_of`).
    record_saga: record `facts` and the refund in the order's saga state in the same
        transaction (orchestration); `order` starts that state if it is missing.
    """
    table = env(PAYMENTS_TABLE_ENV)
    reason = clip(reason)

    def saga(*extra: SagaFact) -> store.SagaWrite | None:
        wanted = [*facts, *extra]
        return store.maybe_prepare(order_id, wanted, record_saga=record_saga, order=order)

    def attempt() -> RefundOutcome:
        gone = guards.shipped(order_id)
        if gone is not None:
            logger.warning("not refunding order %s (asked: %s): %s", order_id, reason, gone)
            store.commit([], [], saga())
            return RefundOutcome(order_id, RefundAction.REFUSED, reason=gone)
        record = load_payment(order_id)
        status = PaymentStatus(record["status"]) if record else None
        action = payments.refund_action(status)
        now = utc_now().isoformat()
        try:
            if record is not None and action is RefundAction.REFUND:
                amount = payments.refund_amount(status, int(record.get("chargedCents", 0)))
                event = PaymentRefunded(
                    order_id=order_id,
                    customer_id=store.customer_of(
                        order_id,
                        customer_id,
                        order.customer_id if order else None,
                        record.get("customerId"),
                    ),
                    payment_id=str(record["paymentId"]),
                    refund_id=payments.refund_id(order_id),
                    amount_cents=amount,
                    currency=str(record["currency"]),
                )
                refunded = _update(
                    table,
                    order_id,
                    expect=PaymentStatus.CHARGED,
                    set_=(
                        "#s = :refunded, refundedCents = :a, refundId = :rid, "
                        "refundEventId = :e, refundedAt = :at, refundReason = :why"
                    ),
                    values={
                        ":refunded": {"S": PaymentStatus.REFUNDED.value},
                        ":a": {"N": str(amount)},
                        ":rid": {"S": event.refund_id},
                        ":e": {"S": event.event_id},
                        ":at": {"S": now},
                        ":why": {"S": reason},
                    },
                )
                shipped_since = guards.not_shipped_check(order_id)
                store.commit([refunded, shipped_since], [event], saga(fact_from_event(event)))
                return RefundOutcome(
                    order_id, action, amount, event.currency, event.refund_id, event
                )
            if action is RefundAction.VOID:
                void = _update(
                    table,
                    order_id,
                    expect=PaymentStatus.PENDING,
                    set_="#s = :void, voidedAt = :at, voidReason = :why",
                    values={
                        ":void": {"S": PaymentStatus.VOID.value},
                        ":at": {"S": now},
                        ":why": {"S": reason},
                    },
                )
                store.commit([void], [], saga())
                return RefundOutcome(order_id, action)
            if action is RefundAction.TOMBSTONE:
                tombstone = outbox.put(
                    table,
                    {
                        "pk": payments.payment_key(order_id),
                        "orderId": order_id,
                        "status": PaymentStatus.VOID.value,
                        "voidReason": f"compensated before any charge: {reason}",
                        "createdAt": now,
                        "voidedAt": now,
                    },
                    condition="attribute_not_exists(pk)",
                )
                store.commit([tombstone], [], saga())
                return RefundOutcome(order_id, action)
        except outbox.ConditionFailedError as exc:
            # The payment changed (or the order shipped) between our reads and our write:
            # read again.
            raise SagaConflictError(f"the payment of order {order_id} changed") from exc
        store.commit([], [], saga())
        return RefundOutcome(order_id, action)

    return store.retry_conflicts(attempt, what=f"refunding order {order_id}")
