"""Each saga (choreography, orchestration), end to end: the happy path and each step
failing, with its compensations. One deployed stack per saga mode; each test uses its
own SKU and customer, so the tests do not see each other's effects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (
    DECLINED_PREFIX,
    E2E,
    SAGA_MODES,
    UNDELIVERABLE_PREFIX,
    assert_invariants,
    assert_read_model_is_fold,
    e2e_session,
    nonempty_dlqs,
)


@pytest.fixture(scope="module", params=SAGA_MODES)
def e2e(request: pytest.FixtureRequest) -> Iterator[E2E]:
    with e2e_session(request.param) as started:
        yield started


def _saga_mode(e2e: E2E) -> str:
    return str(e2e.session.outputs["sagaMode"])


def test_happy_path_completes_with_exactly_one_effect_per_step(e2e: E2E) -> None:
    """An order completes: stock decremented by its quantity, its total charged, one
    OrderCompleted, the saga's events in order, its read model row the fold of its
    event store, and every invariant holds."""
    sku = e2e.sku(10)
    order_id = e2e.place("happy-customer", sku, 3, unit_price_cents=1250)
    e2e.run()

    order = e2e.order(order_id)
    assert order["status"] == "COMPLETED"
    assert order["totalCents"] == 3750
    assert e2e.session.stock()[sku] == 7
    assert e2e.session.reservations()[order_id]["status"] == "RESERVED"
    payment = e2e.payment(order_id)
    assert payment is not None
    assert (payment["status"], payment["chargedCents"]) == ("CHARGED", 3750)
    assert payment.get("refundedCents", 0) == 0
    assert e2e.bus.saga_sequence(order_id) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentProcessed",
        "OrderShipped",
        "OrderCompleted",
    ]
    assert e2e.bus.count(order_id, "OrderCompleted") == 1
    assert e2e.session.read_model()[order_id]["status"] == "COMPLETED"
    assert_read_model_is_fold(e2e.session, order_id)
    assert nonempty_dlqs(e2e.session) == {}
    assert_invariants(e2e.session)


def test_inventory_failure_cancels_without_charging(e2e: E2E) -> None:
    """Ordering more than the stock: the reservation is rejected, nothing is
    decremented or charged, the order is CANCELLED at the inventory step."""
    sku = e2e.sku(2)
    order_id = e2e.place("greedy-customer", sku, 3)
    e2e.run()

    order = e2e.order(order_id)
    assert (order["status"], order["failedStep"]) == ("CANCELLED", "inventory")
    assert sku in order["failureReason"]
    assert e2e.session.stock()[sku] == 2
    assert e2e.session.reservations()[order_id]["status"] == "REJECTED"
    assert e2e.payment(order_id) is None
    assert e2e.bus.saga_sequence(order_id) == [
        "OrderPlaced",
        "InventoryReservationFailed",
        "OrderCancelled",
    ]
    assert_read_model_is_fold(e2e.session, order_id)
    assert_invariants(e2e.session)


def test_declined_payment_releases_the_stock_and_refunds_nothing(e2e: E2E) -> None:
    """A declined card: the reservation is released (stock back to its initial level),
    nothing was charged so nothing is refunded, the order is CANCELLED at payment."""
    sku = e2e.sku(5)
    order_id = e2e.place(f"{DECLINED_PREFIX}customer", sku, 2)
    e2e.run()

    order = e2e.order(order_id)
    assert (order["status"], order["failedStep"]) == ("CANCELLED", "payment")
    assert "declined" in order["failureReason"]
    assert e2e.session.stock()[sku] == 5
    assert e2e.session.reservations()[order_id]["status"] == "RELEASED"
    payment = e2e.payment(order_id)
    assert payment is not None
    assert payment["status"] == "DECLINED"
    assert payment.get("chargedCents", 0) == 0
    assert payment.get("refundedCents", 0) == 0
    assert e2e.bus.saga_sequence(order_id) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentFailed",
        "InventoryReleased",
        "OrderCancelled",
    ]
    assert e2e.bus.count(order_id, "PaymentRefunded") == 0
    assert_read_model_is_fold(e2e.session, order_id)
    assert_invariants(e2e.session)


def test_shipping_failure_refunds_the_charge_and_releases_the_stock(e2e: E2E) -> None:
    """An undeliverable address: the charge is refunded in full and the stock released;
    the orchestration undoes the steps in reverse order (refund, then release), the
    choreography runs both compensations off ShippingFailed."""
    sku = e2e.sku(4)
    order_id = e2e.place(f"{UNDELIVERABLE_PREFIX}customer", sku, 1, unit_price_cents=999)
    e2e.run()

    order = e2e.order(order_id)
    assert (order["status"], order["failedStep"]) == ("CANCELLED", "shipping")
    assert e2e.session.stock()[sku] == 4
    assert e2e.session.reservations()[order_id]["status"] == "RELEASED"
    payment = e2e.payment(order_id)
    assert payment is not None
    assert (payment["status"], payment["chargedCents"], payment["refundedCents"]) == (
        "REFUNDED",
        999,
        999,
    )
    sequence = e2e.bus.saga_sequence(order_id)
    assert sequence[:4] == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentProcessed",
        "ShippingFailed",
    ]
    assert sequence[-1] == "OrderCancelled"
    if _saga_mode(e2e) == "orchestration":
        assert sequence[4:-1] == ["PaymentRefunded", "InventoryReleased"]
    else:
        assert sorted(sequence[4:-1]) == ["InventoryReleased", "PaymentRefunded"]
    assert_read_model_is_fold(e2e.session, order_id)
    assert_invariants(e2e.session)
