"""The saga's orchestrated steps: what each step of reserve -> pay -> ship, its
compensation and the outcome hook do with a saga state (`saga.sfn_state`: the order,
`results`, a caught `error`). Step Functions runs them as Lambda tasks (the `task`
entries of the handler modules) and the durable function as checkpointed steps
(`handlers.durable_order_saga`): one use case per step, whichever runs it.

A step that cannot succeed raises a business failure (InventoryUnavailable,
PaymentDeclined, ShippingUnavailable: their class names are the error names the
orchestrators match, so they are not retried); a transient one raises what its use case
raises (ConcurrentUpdateError, PaymentProviderUnavailable, an AWS error), which the
orchestrators retry. Each step is recorded in the order's saga state in the same
transaction as its decision, and finds what an earlier attempt decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from saga import store
from saga.compensation import compensation_task
from saga.inventory_step import release, reserve
from saga.payment_step import charge_of, pay, refund
from saga.sfn_state import aborted_from_state, order_from_state
from saga.shipping_step import ship


class InventoryUnavailable(Exception):
    """The order cannot be reserved (stock short, or the order was already cancelled).
    A business outcome: retrying gives the same answer."""


class PaymentDeclined(Exception):
    """The payment was declined (or voided by a compensation). A business outcome:
    retrying gives the same answer."""


class ShippingUnavailable(Exception):
    """The carrier cannot ship the order. A business outcome: retrying gives the same
    answer."""


def reserve_step(state: Mapping[str, Any]) -> dict[str, Any]:
    """Reserve the order of the saga state, or InventoryUnavailable."""
    order = order_from_state(state)
    outcome = reserve(order, record_saga=True)
    if not outcome.reserved:
        r = outcome.reservation
        raise InventoryUnavailable(
            f"order {order.order_id} cannot be reserved: "
            + (r.reason or "it was cancelled before its stock was reserved")
        )
    return outcome.to_result()


def pay_step(state: Mapping[str, Any]) -> dict[str, Any]:
    """Charge the order of the saga state, or PaymentDeclined."""
    order = order_from_state(state)
    outcome = pay(charge_of(order), record_saga=True, order=order)
    if not outcome.charged:
        raise PaymentDeclined(
            f"payment of order {order.order_id} {outcome.status.value.lower()}: "
            + (outcome.reason or "it was compensated before it was charged")
        )
    return outcome.to_result()


def ship_step(state: Mapping[str, Any]) -> dict[str, Any]:
    """Ship the order of the saga state, or ShippingUnavailable."""
    order = order_from_state(state)
    outcome = ship(
        order.order_id,
        order.customer_id,
        total_cents=order.total_cents,
        currency=order.currency,
        record_saga=True,
        order=order,
    )
    if not outcome.shipped:
        raise ShippingUnavailable(
            f"order {order.order_id} cannot be shipped: {outcome.reason or 'refused'}"
        )
    return outcome.to_result()


def release_step(state: Mapping[str, Any]) -> dict[str, Any]:
    """The reserve step's compensation (succeeds with nothing to undo)."""
    return compensation_task(state, release)


def refund_step(state: Mapping[str, Any]) -> dict[str, Any]:
    """The pay step's compensation (succeeds with nothing to undo)."""
    return compensation_task(state, refund)


def record_outcome(state: Mapping[str, Any]) -> dict[str, Any]:
    """The failure hook: record the saga's outcome from its state (a caught `$.error`
    marks the failed step; compensations already recorded are kept) and return the
    order's status. Idempotent: the failure fact has one id per order.

    The steps record their own facts; this is for a failure no step reported (a first
    step that exhausted its retries), as a final state of the failure path.
    """
    order = order_from_state(state)
    fact = aborted_from_state(state, order.order_id)
    saga = store.record(order.order_id, [fact] if fact else [], order=order)
    return {
        "orderId": order.order_id,
        "status": saga.state.status.value,
        "final": saga.state.final,
    }
