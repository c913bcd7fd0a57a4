"""Lost replies: a step that committed, whose caller only saw a timeout, is retried (it
finds what it did) and never compensated into undoing a shipped order; a compensation
that arrives after the order shipped refuses.

The fault is injected from outside, as AWS produces it: the function runs to the end
and its writes stand, then its caller (a Step Functions task, the Lambda async invoker)
gets `Sandbox.Timedout` instead of its answer (`lost_replies` wraps the session's
Lambda runtime). Each test checks the final tables: the order COMPLETED, charged its
total and not refunded, its stock shipped (on hand + reserved + shipped = initial).
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contracts import sample_detail
from eventcraft_sandbox.lambda_runtime import InvocationResult
from order_saga.sandbox.session import OrderSagaSession
from pulumi_eventcraft.saga import STEP_RETRY
from tests.e2e.conftest import E2E, assert_invariants, e2e_session

QUANTITY, PRICE = 2, 12_500


@dataclasses.dataclass
class LostReplies:
    """How many replies were lost, per function (short name)."""

    lost: dict[str, int] = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def lost_replies(session: OrderSagaSession, budget: dict[str, int | None]) -> Iterator[LostReplies]:
    """While active, each function of `budget` (short name -> how many replies to lose,
    None: all) runs to the end, then its caller gets a timeout instead of its reply."""
    runtime = session.runtime
    original = runtime._invoke
    deployed = {session.function_name(short): short for short in budget}
    record = LostReplies()

    def invoke(spec: Any, event: Any, invocation_type: str, invoked_arn: str) -> Any:
        outcome = original(spec, event, invocation_type, invoked_arn)
        short = deployed.get(spec.name)
        if short is None or outcome.result.error_type is not None:
            return outcome
        allowed = budget[short]
        if allowed is not None and record.lost.get(short, 0) >= allowed:
            return outcome
        record.lost[short] = record.lost.get(short, 0) + 1
        timed_out = InvocationResult(
            None,
            "Sandbox.Timedout",
            f"RequestId: {outcome.request_id} Error: Task timed out after "
            f"{spec.timeout:.2f} seconds",
            outcome.result.duration_ms,
            outcome.result.logs,
        )
        return dataclasses.replace(outcome, result=timed_out)

    runtime._invoke = invoke  # type: ignore[method-assign]
    try:
        yield record
    finally:
        runtime._invoke = original  # type: ignore[method-assign]


def assert_shipped_and_paid(e2e: E2E, order_id: str, sku: str, initial: int) -> None:
    """COMPLETED, charged its total and not refunded, its stock gone for good."""
    order = e2e.order(order_id)
    total = QUANTITY * PRICE
    assert (order["status"], order["totalCents"]) == ("COMPLETED", total)
    payment = e2e.payment(order_id)
    assert payment is not None
    assert (payment["status"], payment["chargedCents"]) == ("CHARGED", total)
    assert payment.get("refundedCents", 0) == 0
    reservation = e2e.session.reservations()[order_id]
    assert reservation["status"] == "RESERVED"  # held by a COMPLETED order: shipped
    shipped = sum(int(line["quantity"]) for line in reservation["items"])
    assert e2e.session.stock()[sku] + shipped == initial
    assert e2e.bus.count(order_id, "PaymentRefunded") == 0
    assert e2e.bus.count(order_id, "InventoryReleased") == 0
    assert e2e.bus.count(order_id, "OrderCompleted") == 1
    assert e2e.bus.count(order_id, "OrderCancelled") == 0


def results_for(e2e: E2E, function: str, order_id: str) -> list[dict[str, Any]]:
    """The answers `function` gave for the order (Step Functions tasks)."""
    return [
        dict(call.result.payload)
        for call in e2e.calls.of(function)
        if isinstance(call.result.payload, dict) and call.result.payload.get("orderId") == order_id
    ]


# One stack per saga mode, for the tests of its class (torn down at the class's end: one
# sandbox runs at a time).
@pytest.fixture(scope="class")
def orchestrated() -> Iterator[E2E]:
    with e2e_session("orchestration") as started:
        yield started


@pytest.fixture(scope="class")
def choreographed() -> Iterator[E2E]:
    with e2e_session("choreography") as started:
        yield started


class TestOrchestration:
    """One orchestration stack (the class's session)."""

    def test_a_lost_ship_reply_is_retried_and_the_order_completes(self, orchestrated: E2E) -> None:
        """The ship task commits (shipment SHIPPED, OrderCompleted), Step Functions sees
        Sandbox.Timedout: the step is retried (it finds its shipment), nothing is refunded
        or restocked."""
        e2e = orchestrated
        sku = e2e.sku(10)
        with lost_replies(e2e.session, {"ship-order-task": 1}) as faults:
            order_id = e2e.place("lost-reply-customer", sku, QUANTITY, PRICE)
            e2e.run()
        assert faults.lost == {"ship-order-task": 1}

        assert_shipped_and_paid(e2e, order_id, sku, initial=10)
        shipped = results_for(e2e, "ship-order-task", order_id)
        assert [r["created"] for r in shipped] == [True, False]  # the retry found it
        assert results_for(e2e, "refund-payment-task", order_id) == []
        assert results_for(e2e, "release-inventory-task", order_id) == []
        assert_invariants(e2e.session)

    def test_when_every_ship_reply_is_lost_the_compensations_refuse(
        self, orchestrated: E2E
    ) -> None:
        """The retries are spent too (every reply lost): the saga runs its compensations,
        which read the shipments table and refuse. The order stays COMPLETED and paid."""
        e2e = orchestrated
        sku = e2e.sku(10)
        with lost_replies(e2e.session, {"ship-order-task": None}) as faults:
            order_id = e2e.place("unlucky-customer", sku, QUANTITY, PRICE)
            e2e.run()
        # The first attempt and its retries (STEP_RETRY: a lost reply of an idempotent step
        # is retried like a transient error).
        assert faults.lost["ship-order-task"] == 1 + STEP_RETRY.max_attempts

        assert_shipped_and_paid(e2e, order_id, sku, initial=10)
        (refund,) = results_for(e2e, "refund-payment-task", order_id)
        (release,) = results_for(e2e, "release-inventory-task", order_id)
        assert (refund["action"], release["action"]) == ("REFUSED", "REFUSED")
        assert refund["reason"].startswith(f"order {order_id} has shipped (shipment ")
        assert_invariants(e2e.session)


class TestChoreography:
    """One choreography stack (the class's session)."""

    def test_every_step_retried_after_a_lost_reply_has_one_effect(self, choreographed: E2E) -> None:
        """Each step's first reply lost (SQS redelivers after the visibility timeout, Lambda
        retries the async event): one reservation, one charge, one shipment, one outcome."""
        e2e = choreographed
        sku = e2e.sku(10)
        budget: dict[str, int | None] = {
            "reserve-inventory": 1,
            "process-payment": 1,
            "ship-order": 1,
            "saga-progress": 1,
        }
        with lost_replies(e2e.session, budget) as faults:
            order_id = e2e.place("retried-customer", sku, QUANTITY, PRICE)
            e2e.run()
        assert faults.lost == budget

        assert_shipped_and_paid(e2e, order_id, sku, initial=10)
        for detail_type in ("InventoryReserved", "PaymentProcessed", "OrderShipped"):
            assert e2e.bus.count(order_id, detail_type) == 1, detail_type
        assert_invariants(e2e.session)

    def test_a_compensation_arriving_after_shipping_is_refused(self, choreographed: E2E) -> None:
        """A ShippingFailed and a PaymentFailed for an order that shipped (a stray, replayed
        or redelivered event): refund_payment and release_inventory read the shipments
        table and refuse; the money and the stock stay where they are."""
        e2e = choreographed
        sku = e2e.sku(10)
        order_id = e2e.place("shipped-customer", sku, QUANTITY, PRICE)
        e2e.run()
        assert e2e.order(order_id)["status"] == "COMPLETED"

        for detail_type in ("ShippingFailed", "PaymentFailed"):
            e2e.session.put_event(
                detail_type,
                sample_detail(
                    detail_type,
                    orderId=order_id,
                    customerId="shipped-customer",
                    eventId=str(uuid.uuid4()),
                ),
            )
        e2e.run()

        assert_shipped_and_paid(e2e, order_id, sku, initial=10)
        refusals = [
            call
            for function in ("refund-payment", "release-inventory")
            for call in e2e.calls.of(function)
            if isinstance(call.result.payload, dict)
            and call.result.payload.get("orderId") == order_id
        ]
        assert [c.result.payload["action"] for c in refusals] == ["REFUSED"] * 3
        # Each says why, in its answer and in its log.
        for call in refusals:
            assert call.result.payload["reason"].startswith(f"order {order_id} has shipped")
            assert f"{order_id} has shipped" in call.result.logs
        assert "not refunding order" in refusals[0].result.logs
        assert_invariants(e2e.session)
