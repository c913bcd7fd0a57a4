"""Every producer sets the customer: each handler path that emits events (to the outbox or
the bus) is run with a customer of its own, and every event it emits must name that
customer. (The autouse `emitted` fixture of conftest.py checks every handler test the
same way, less precisely: one customer per order, never none.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from contracts import sample_detail, sample_event
from domain.inventory import stock_item
from handlers import (
    aggregate_checks,
    enrich_order,
    high_value_review,
    process_payment,
    refund_payment,
    release_inventory,
    reserve_inventory,
    run_check,
    saga_progress,
    ship_order,
)
from tests.functions.awsenv import FakeContext, create_table
from tests.functions.handlers.conftest import (
    CONTEXT,
    STOCK,
    Emitted,
    SagaWorld,
    as_eventbridge,
    place_sample_order,
    saga_state,
)
from tests.functions.handlers.fixtures_side import (
    Side,
    put_customer,
    side_fixture,  # noqa: F401
)
from tests.functions.handlers.test_saga_choreography import run_saga

CUSTOMER = "customer-7f3a"


def emitted_by(emitted: Emitted, customer: str) -> list[str]:
    """The detail-types emitted; asserts that each event names `customer`."""
    wrong = [(e.DETAIL_TYPE, getattr(e, "customer_id", None)) for e in emitted.events]
    assert all(c == customer for _, c in wrong), f"expected {customer!r} on every event: {wrong}"
    return [e.DETAIL_TYPE for e in emitted.events]


# --- the choreography: place_order, reserve, pay, ship, release, refund, saga_progress ----


@pytest.mark.parametrize(
    ("customer", "stock", "expected"),
    [
        (
            CUSTOMER,
            None,
            ["OrderPlaced", "InventoryReserved", "PaymentProcessed", "OrderShipped"],
        ),
        (
            f"declined-{CUSTOMER}",
            None,
            ["OrderPlaced", "InventoryReserved", "PaymentFailed", "InventoryReleased"],
        ),
        (
            f"undeliverable-{CUSTOMER}",
            None,
            [
                "OrderPlaced",
                "InventoryReserved",
                "PaymentProcessed",
                "ShippingFailed",
                "PaymentRefunded",
                "InventoryReleased",
            ],
        ),
        (
            CUSTOMER,
            {"sku-red-mug": 1, "sku-blue-pot": 5},
            ["OrderPlaced", "InventoryReservationFailed"],
        ),
    ],
    ids=["happy", "declined", "undeliverable", "short-stock"],
)
def test_every_choreography_event_names_the_customer(
    aws: SagaWorld,
    emitted: Emitted,
    customer: str,
    stock: dict[str, int] | None,
    expected: list[str],
) -> None:
    aws.seed_stock(stock or STOCK)
    _, published = run_saga(aws, customer)

    emitted_by(emitted, customer)  # built, including those of transactions that failed
    assert {e["detail"]["customerId"] for e in published} == {customer}
    # Each path's step events, and the saga's end (saga_progress) exactly once.
    produced = [e["detail-type"] for e in published]
    assert [t for t in produced if t not in ("OrderCompleted", "OrderCancelled")] == expected
    assert produced.count("OrderCompleted") + produced.count("OrderCancelled") == 1


def test_a_late_reservation_is_released_for_the_customer(aws: SagaWorld, emitted: Emitted) -> None:
    """saga_progress's late compensation (release) names the order's customer."""
    aws.seed_stock()
    order = place_sample_order(aws, customerId=CUSTOMER)
    error = {"Error": "Lambda.ServiceException", "Cause": "{}"}
    saga_progress.record_outcome(saga_state(order, error=error), CONTEXT)
    reserve_inventory.handler(as_eventbridge("OrderPlaced", order.to_detail()), CONTEXT)
    (late,) = [e for e in aws.relay() if e["detail-type"] == "InventoryReserved"]

    saga_progress.handler(late, CONTEXT)

    assert emitted_by(emitted, CUSTOMER) == [
        "OrderCancelled",  # record_outcome
        "InventoryReserved",
        "InventoryReleased",  # the late reservation, undone
    ]


def legacy(detail_type: str, order_id: str) -> dict[str, Any]:
    """An event of `detail_type` as published before events carried customerId."""
    detail = sample_detail(detail_type, orderId=order_id)
    del detail["customerId"]
    return as_eventbridge(detail_type, detail)


def test_a_compensation_of_an_event_without_customer_takes_the_order_s(
    aws: SagaWorld, emitted: Emitted
) -> None:
    """An archived PaymentFailed / ShippingFailed (no customerId) replayed: the release
    and the refund name the customer of the order's record (payment record, saga)."""
    aws.seed_stock()
    order = place_sample_order(aws, customerId=CUSTOMER)
    reserve_inventory.handler(as_eventbridge("OrderPlaced", order.to_detail()), CONTEXT)
    process_payment.handler(legacy("InventoryReserved", order.order_id), CONTEXT)

    refund_payment.handler(legacy("ShippingFailed", order.order_id), CONTEXT)
    release_inventory.handler(legacy("PaymentFailed", order.order_id), CONTEXT)

    assert emitted_by(emitted, CUSTOMER) == [
        "InventoryReserved",
        "PaymentProcessed",
        "PaymentRefunded",
        "InventoryReleased",
    ]


# --- the orchestration tasks ---------------------------------------------------------------


def test_every_task_event_names_the_customer(aws: SagaWorld, emitted: Emitted) -> None:
    aws.seed_stock()
    order = place_sample_order(aws, customerId=CUSTOMER)
    reserved = reserve_inventory.task(saga_state(order), CONTEXT)
    paid = process_payment.task(saga_state(order), CONTEXT)
    shipped = ship_order.task(saga_state(order), CONTEXT)
    results = {"reserve": reserved, "pay": paid, "ship": shipped}
    saga_progress.record_outcome(saga_state(order, results=results), CONTEXT)

    produced = emitted_by(emitted, CUSTOMER)
    assert produced == ["InventoryReserved", "PaymentProcessed", "OrderShipped", "OrderCompleted"]


def test_every_compensation_task_event_names_the_customer(aws: SagaWorld, emitted: Emitted) -> None:
    aws.seed_stock()
    order = place_sample_order(aws, customerId=f"undeliverable-{CUSTOMER}")
    results = {
        "reserve": reserve_inventory.task(saga_state(order), CONTEXT),
        "pay": process_payment.task(saga_state(order), CONTEXT),
    }
    with pytest.raises(ship_order.ShippingUnavailable):
        ship_order.task(saga_state(order), CONTEXT)
    error = {"Error": "ShippingUnavailable", "Cause": "{}"}
    state = saga_state(order, results=results, error=error)
    refund_payment.task(state, CONTEXT)
    release_inventory.task(state, CONTEXT)
    saga_progress.record_outcome(state, CONTEXT)

    assert emitted_by(emitted, f"undeliverable-{CUSTOMER}") == [
        "InventoryReserved",
        "PaymentProcessed",
        "ShippingFailed",
        "PaymentRefunded",
        "InventoryReleased",
        "OrderCancelled",
    ]


def test_record_outcome_of_a_first_step_that_failed_names_the_customer(
    aws: SagaWorld, emitted: Emitted
) -> None:
    order = place_sample_order(aws, customerId=CUSTOMER)
    error = {"Error": "States.Timeout", "Cause": "{}"}
    saga_progress.record_outcome(saga_state(order, results={}, error=error), CONTEXT)
    assert emitted_by(emitted, CUSTOMER) == ["OrderCancelled"]


# --- side flows: checks and their join, enrichment, high-value review ------------------------


@pytest.fixture
def stocked(side: Side, monkeypatch: pytest.MonkeyPatch) -> Iterator[Side]:
    create_table("inventory")
    monkeypatch.setenv("INVENTORY_TABLE", "inventory")
    from boto3.dynamodb.types import TypeSerializer

    for sku, available in (("sku-red-mug", 5), ("sku-blue-pot", 1)):
        item = {k: TypeSerializer().serialize(v) for k, v in stock_item(sku, available).items()}
        boto3.client("dynamodb").put_item(TableName="inventory", Item=item)
    put_customer(CUSTOMER, tier="gold", creditLimitCents=10_000)
    yield side


def test_the_checks_and_their_join_name_the_customer(stocked: Side, emitted: Emitted) -> None:
    placed = sample_event("OrderPlaced", customerId=CUSTOMER)
    for entry in (
        run_check.inventory_handler,
        run_check.credit_handler,
        run_check.shipping_quote_handler,
    ):
        entry(placed, FakeContext())
    for completed in stocked.published():
        aggregate_checks.handler(completed, None)

    assert emitted_by(emitted, CUSTOMER) == ["CheckCompleted"] * 3 + ["AllChecksComplete"]
    [done] = stocked.details("AllChecksComplete")
    assert done["customerId"] == CUSTOMER


def test_the_join_keeps_the_customer_of_any_check_that_carried_it(
    stocked: Side, emitted: Emitted
) -> None:
    """Checks published before CheckCompleted carried customerId (replayed, or in flight
    at the deploy): the join names the customer of the one that carried it."""
    for check in ("inventory", "credit"):
        detail = sample_detail("CheckCompleted", check=check, eventId=f"legacy-{check}")
        del detail["customerId"]
        aggregate_checks.handler(as_eventbridge("CheckCompleted", detail), None)
    last = sample_detail("CheckCompleted", check="shippingQuote", customerId=CUSTOMER)
    aggregate_checks.handler(as_eventbridge("CheckCompleted", last), None)

    assert emitted_by(emitted, CUSTOMER) == ["AllChecksComplete"]


def test_the_aggregate_task_names_the_customer(stocked: Side) -> None:
    state = {"order": sample_detail("OrderPlaced", customerId=CUSTOMER)}
    branches = {
        "inventory": run_check.inventory_task(state, None),
        "credit": run_check.credit_task(state, None),
        "shippingQuote": run_check.shipping_quote_task(state, None),
    }
    combined = aggregate_checks.task({**state, "checks": branches}, None)
    assert combined["customerId"] == CUSTOMER


def test_enrichment_and_review_name_the_customer(side: Side, emitted: Emitted) -> None:
    items = [{"sku": "sku-gold-watch", "quantity": 1, "unitPriceCents": 250_000}]
    placed = sample_event("OrderPlaced", customerId=CUSTOMER, items=items, totalCents=250_000)
    enrich_order.handler(placed, FakeContext())
    high_value_review.handler(placed, None)

    assert emitted_by(emitted, CUSTOMER) == ["OrderEnriched", "HighValueOrderFlagged"]
