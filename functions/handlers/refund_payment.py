"""refund_payment: give back what an order was charged (the compensation of payment).

Entries:
- `handler(event, context)` (choreography): ShippingFailed, as an EventBridge event or an
  SQS batch of them -> the payment REFUNDED and PaymentRefunded (the amount charged)
  written to the outbox in the same transaction; nothing when nothing was charged;
- `task(event, context)` (orchestration: the compensation of the pay step): the saga
  state -> `{"refunded": bool, "action", "amountCents", ...}`; never fails for "nothing
  to undo". The caught `$.error` and the refund are recorded in the order's saga state
  in the same transaction.
Application function: `refund(order_id, reason=...)`.

Refund only what was charged, once: a conditional write on the payment record (not
Powertools). CHARGED -> REFUNDED is conditional on CHARGED and refunds `chargedCents`
from the record, so two refunds return the money once; a PENDING payment is voided (its
late decision then fails its condition), and an order never charged gets a VOID record
that refuses a later charge. A Powertools record keyed on the event id would not stop two
different events (ShippingFailed, the orchestrator, a late-charge compensation) from
refunding twice; the record's status does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from contracts import Event, OrderPlaced, PaymentRefunded, ShippingFailed, utc_now
from domain import payments
from domain.orders import SagaFact, clip, fact_from_event
from domain.payments import PaymentStatus, RefundAction
from eventkit import envelopes, outbox
from handlers import process_payment, saga_progress
from handlers.saga_progress import SagaConflictError, env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

ACCESS: dict[str, frozenset[str]] = {
    # GetItem: read the payment; UpdateItem: CHARGED -> REFUNDED, PENDING -> VOID;
    # PutItem: the VOID record of an order never charged.
    "PAYMENTS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    # task(): the order's saga record; GetItem also: the customer of an event published
    # before events carried customerId (saga_progress.customer_of).
    "ORDERS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
}

PAYMENTS_TABLE_ENV: Final = "PAYMENTS_TABLE"


@dataclass(frozen=True)
class RefundOutcome:
    """What a refund did: REFUND (this call refunded `amount_cents`), VOID (a pending
    charge was stopped), TOMBSTONE (nothing charged; later charges refused), NOTHING."""

    order_id: str
    action: RefundAction
    amount_cents: int = 0
    currency: str | None = None
    refund_id: str | None = None
    event: Event | None = None

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
    """Refund what the order was charged, once; a no-op when nothing was charged.

    customer_id: the order's customer, for PaymentRefunded (default: `order`'s, else the
        payment record's, else the order's record: `saga_progress.customer_of`).
    record_saga: record `facts` and the refund in the order's saga state in the same
        transaction (orchestration); `order` starts that state if it is missing.
    """
    table = env(PAYMENTS_TABLE_ENV)
    reason = clip(reason)

    def saga(*extra: SagaFact) -> saga_progress.SagaWrite | None:
        wanted = [*facts, *extra]
        return saga_progress.maybe_prepare(order_id, wanted, record_saga=record_saga, order=order)

    def attempt() -> RefundOutcome:
        record = process_payment.load(order_id)
        status = PaymentStatus(record["status"]) if record else None
        action = payments.refund_action(status)
        now = utc_now().isoformat()
        try:
            if record is not None and action is RefundAction.REFUND:
                amount = payments.refund_amount(status, int(record.get("chargedCents", 0)))
                event = PaymentRefunded(
                    order_id=order_id,
                    customer_id=saga_progress.customer_of(
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
                saga_progress.commit([refunded], [event], saga(fact_from_event(event)))
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
                saga_progress.commit([void], [], saga())
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
                saga_progress.commit([tombstone], [], saga())
                return RefundOutcome(order_id, action)
        except outbox.ConditionFailedError as exc:
            # The payment changed between our read and our write: read it again.
            raise SagaConflictError(f"the payment of order {order_id} changed") from exc
        saga_progress.commit([], [], saga())
        return RefundOutcome(order_id, action)

    return saga_progress.retry_conflicts(attempt, what=f"refunding order {order_id}")


# --- entries ----------------------------------------------------------------------------


def on_shipping_failed(event: ShippingFailed) -> dict[str, Any]:
    return refund(
        event.order_id, reason=f"ShippingFailed: {event.reason}", customer_id=event.customer_id
    ).to_result()


def handler(event: Mapping[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    """ShippingFailed as an EventBridge event, or an SQS batch of them."""
    return envelopes.dispatch(event, context, on_shipping_failed, model=ShippingFailed)


def task(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions compensation of the pay step (succeeds with nothing to undo)."""
    return saga_progress.compensation_task(event, refund)
