"""At-least-once delivery: every system event on the bus is put a second time (same
eventId, a few virtual seconds later). Each order still has exactly one effect."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    DECLINED_PREFIX,
    SAGA_MODES,
    UNDELIVERABLE_PREFIX,
    assert_invariants,
    assert_read_model_is_fold,
    e2e_session,
    nonempty_dlqs,
)


@pytest.mark.parametrize("saga_mode", SAGA_MODES)
def test_every_event_twice_has_one_effect_per_order(saga_mode: str) -> None:
    """With duplicate_rate=1.0: stock decremented once per order, each completed order
    charged once and completed once, a declined order refunded nothing and an
    undeliverable one refunded once, the event store holds each event once, and the
    duplicates were really delivered."""
    with e2e_session(saga_mode, duplicate_rate=1.0) as e2e:
        session = e2e.session
        sku = e2e.sku(20)
        completed = [e2e.place("dup-customer-1", sku, 2), e2e.place("dup-customer-2", sku, 3)]
        declined = e2e.place(f"{DECLINED_PREFIX}dup", sku, 1)
        undeliverable = e2e.place(f"{UNDELIVERABLE_PREFIX}dup", sku, 4, unit_price_cents=300)
        e2e.run()

        assert session.duplicates["OrderPlaced"] >= 4
        assert session.duplicates["PaymentProcessed"] >= 3
        assert session.duplicates["InventoryReserved"] >= 4
        assert session.stock()[sku] == 20 - 2 - 3
        for order_id in completed:
            order = e2e.order(order_id)
            assert order["status"] == "COMPLETED"
            payment = e2e.payment(order_id)
            assert payment is not None
            assert (payment["status"], payment["chargedCents"]) == ("CHARGED", order["totalCents"])
            assert e2e.bus.count(order_id, "PaymentProcessed") == 1
            assert e2e.bus.count(order_id, "OrderCompleted") == 1
            assert e2e.bus.count(order_id, "InventoryReserved") == 1

        assert e2e.order(declined)["status"] == "CANCELLED"
        assert e2e.bus.count(declined, "PaymentRefunded") == 0
        assert e2e.bus.count(declined, "InventoryReleased") == 1

        assert e2e.order(undeliverable)["status"] == "CANCELLED"
        refund = e2e.payment(undeliverable)
        assert refund is not None
        assert (refund["status"], refund["chargedCents"], refund["refundedCents"]) == (
            "REFUNDED",
            1200,
            1200,
        )
        assert e2e.bus.count(undeliverable, "PaymentRefunded") == 1
        assert e2e.bus.count(undeliverable, "InventoryReleased") == 1

        for order_id in [*completed, declined, undeliverable]:
            assert (
                e2e.bus.count(order_id, "OrderCancelled")
                + e2e.bus.count(order_id, "OrderCompleted")
                == 1
            )
            stored = [e["eventId"] for e in session.stored_events()[order_id]]
            assert len(stored) == len(set(stored)), f"order {order_id}: an event stored twice"
            assert_read_model_is_fold(session, order_id)
        assert nonempty_dlqs(session) == {}
        assert_invariants(session)
