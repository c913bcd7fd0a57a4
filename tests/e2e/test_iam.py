"""A missing IAM permission, as the sandbox enforces each function's role: the call is
denied (AccessDeniedException naming the action), the step fails visibly and the order
never completes. Each test revokes a grant in its own deployed stack."""

from __future__ import annotations

from tests.e2e.conftest import (
    E2E,
    Invocation,
    assert_invariants,
    e2e_session,
    max_receive_count,
    nonempty_dlqs,
    only,
)


def _denied(e2e: E2E, function: str, action: str) -> list[Invocation]:
    """The function's failed invocations; each must be the denial of `action`."""
    failed = e2e.calls.failed(function)
    assert failed, f"{function} never failed"
    for invocation in failed:
        assert "AccessDeniedException" in invocation.text, invocation.text
        assert f"is not authorized to perform: {action}" in invocation.text, invocation.text
    assert e2e.session.invocation_errors[function] == len(failed)
    return failed


def test_reserve_without_put_item_dead_letters_the_order() -> None:
    """Choreography, reserve-inventory without dynamodb:PutItem: its transaction (stock
    decrement + reservation decision + outbox) is denied on every receive, the
    OrderPlaced ends in the reserve queue's DLQ with the denial (the consumer sends it
    there on its last receive), and the order stays PLACED with its stock untouched."""
    with e2e_session("choreography") as e2e:
        session = e2e.session
        assert session.revoke("reserve-inventory", "dynamodb:PutItem")
        sku = e2e.sku(5)
        order_id = e2e.place("iam-customer", sku, 2)
        e2e.run()

        failed = _denied(e2e, "reserve-inventory", "dynamodb:PutItem")
        receives = max_receive_count(session, "reserve")
        assert len(e2e.calls.of("reserve-inventory")) == receives
        assert len(failed) == receives - 1  # the last one dead-letters it, with the error
        assert e2e.order(order_id)["status"] == "PLACED"
        assert session.stock()[sku] == 5
        assert order_id not in session.reservations()
        assert e2e.payment(order_id) is None
        assert e2e.bus.saga_sequence(order_id) == ["OrderPlaced"]
        assert nonempty_dlqs(session) == {"reserve-dlq": 1}
        message = only(session.dlq_messages("reserve-dlq"))
        assert message["body"]["detail-type"] == "OrderPlaced"
        assert message["body"]["detail"]["orderId"] == order_id
        assert message["attributes"]["ERROR_CODE"] == "AccessDeniedException"
        assert (
            "is not authorized to perform: dynamodb:PutItem"
            in (message["attributes"]["ERROR_MESSAGE"])
        )
        report = session.invariants()
        assert {name for name, ok in report.results.items() if not ok} == {"every_order_final"}
        assert report.problems["every_order_final"] == [f"order {order_id} is PLACED"]


def test_payment_task_without_update_item_cancels_the_order() -> None:
    """Orchestration, process-payment-task without dynamodb:UpdateItem: the payment step
    is denied (not retried: not transient), the saga releases the stock and cancels the
    order at the payment step; nothing was charged."""
    with e2e_session("orchestration") as e2e:
        session = e2e.session
        assert session.revoke("process-payment-task", "dynamodb:UpdateItem")
        sku = e2e.sku(5)
        order_id = e2e.place("iam-customer", sku, 2, unit_price_cents=700)
        e2e.run()

        denied = only(_denied(e2e, "process-payment-task", "dynamodb:UpdateItem"))
        assert session.table("payments") in str(denied.result.error_message)
        order = e2e.order(order_id)
        assert (order["status"], order["failedStep"]) == ("CANCELLED", "payment")
        assert "AccessDeniedException" in order["failureReason"]
        assert session.stock()[sku] == 5
        assert session.reservations()[order_id]["status"] == "RELEASED"
        payment = e2e.payment(order_id)
        assert payment is not None
        assert payment["status"] == "VOID"
        assert (payment.get("chargedCents", 0), payment.get("refundedCents", 0)) == (0, 0)
        assert e2e.bus.saga_sequence(order_id) == [
            "OrderPlaced",
            "InventoryReserved",
            "InventoryReleased",
            "OrderCancelled",
        ]
        assert nonempty_dlqs(session) == {}
        assert_invariants(session)
