"""The order saga under AWS's delivery faults: at-least-once delivery everywhere
(`redeliver=0.3`: SQS messages, async events, stream batches, rule targets and EXPRESS
starts made again with the same ids) and out-of-order delivery (`reorder=5`: rule
targets and standard queues within 5 virtual seconds). Both sagas run (the dev stack's
`both` mode, EXPRESS state machine), with orders that complete, run out of stock, are
declined and cannot be shipped.

One run (a module fixture) is read by each test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from order_saga.sandbox.session import FINAL_STATUSES, InvariantReport, OrderSagaSession
from tests.e2e.conftest import (
    DECLINED_PREFIX,
    DETERMINISTIC,
    SAGA_EVENTS,
    UNDELIVERABLE_PREFIX,
    EventLog,
    nonempty_dlqs,
)

FAULTS = ("redeliver=0.3", "reorder=5")
SEED = 10
OUTCOMES = ("OrderCompleted", "OrderCancelled")


@dataclass(frozen=True)
class FaultyRun:
    statuses: dict[str, str]  # orderId -> status
    expected: dict[str, str]  # orderId -> the status its customer and stock decide
    outcome_event_ids: dict[str, set[str]]  # orderId -> eventIds of its outcome events
    fault_counts: dict[str, int]
    dead_lettered: dict[str, int]
    stock: dict[str, int]
    invariants: InvariantReport


@pytest.fixture(scope="module")
def run() -> FaultyRun:
    bus = EventLog()
    session = OrderSagaSession("dev", config=DETERMINISTIC, seed=SEED, on_event=bus, faults=FAULTS)
    with session:
        assert session.outputs["sagaMode"] == "both"
        session.seed_stock({"sku-plenty": 100, "sku-scarce": 3})
        expected: dict[str, str] = {}

        def place(customer: str, sku: str, quantity: int, status: str) -> None:
            answer = session.place_order(customer, [(sku, quantity, 1250)])
            assert answer["created"] is True, answer
            expected[str(answer["orderId"])] = status

        for n in range(8):
            place(f"customer-{n}", "sku-plenty", 2, "COMPLETED")
        # 3 + 1 of 3 units: whichever reserves first completes (order is not promised).
        place("customer-scarce-1", "sku-scarce", 3, "EITHER")
        place("customer-scarce-2", "sku-scarce", 1, "EITHER")
        for n in range(2):
            place(f"{DECLINED_PREFIX}{n}", "sku-plenty", 1, "CANCELLED")
            place(f"{UNDELIVERABLE_PREFIX}{n}", "sku-plenty", 1, "CANCELLED")

        session.run_until_quiet()

        orders = session.orders()
        outcome_ids: dict[str, set[str]] = {order_id: set() for order_id in expected}
        for event in bus.events:
            if event.detail_type in OUTCOMES and event.order_id in outcome_ids:
                outcome_ids[event.order_id].add(event.event_id)
        result = FaultyRun(
            statuses={o: str((orders.get(o) or {}).get("status")) for o in expected},
            expected=expected,
            outcome_event_ids=outcome_ids,
            fault_counts=session.fault_counts,
            dead_lettered=nonempty_dlqs(session),
            stock=session.stock(),
            invariants=session.invariants(),
        )
    return result  # the session stopped: moto holds one sandbox at a time


def test_the_faults_were_injected(run: FaultyRun) -> None:
    assert run.fault_counts["redeliver"] > 20
    assert run.fault_counts["reorder"] > 50


def test_every_order_reaches_the_status_its_customer_and_stock_decide(run: FaultyRun) -> None:
    assert set(run.statuses.values()) <= FINAL_STATUSES
    decided = {o: s for o, s in run.expected.items() if s != "EITHER"}
    assert {o: run.statuses[o] for o in decided} == decided
    scarce = sorted(run.statuses[o] for o in run.expected if run.expected[o] == "EITHER")
    assert scarce == ["CANCELLED", "COMPLETED"]
    # The declined and undeliverable orders' units came back; the scarce SKU kept what
    # the cancelled one of its two orders did not take.
    assert run.stock["sku-plenty"] == 100 - 8 * 2
    assert run.stock["sku-scarce"] in (0, 2)
    assert run.dead_lettered == {}


def test_each_order_has_one_outcome_event_by_event_id(run: FaultyRun) -> None:
    """Counted by eventId (what a consumer deduplicating by eventId sees), each order
    has exactly one outcome event, whatever the deliveries did (the outbox relay's
    stream batches read again publish some of them twice)."""
    assert Counter(len(ids) for ids in run.outcome_event_ids.values()) == {1: len(run.expected)}


def test_every_invariant_holds(run: FaultyRun) -> None:
    """Money, stock, outcomes (by event id), the outbox and the read model."""
    assert run.invariants.ok, run.invariants.problems


def test_a_fault_on_a_function_named_by_its_short_name_covers_its_deliveries_only() -> None:
    """`redeliver@outbox-relay=1`: every batch of the relay's outbox stream is read
    twice, so each event it publishes is put twice with the same eventId; nothing else
    is delivered twice, and the order still completes once."""
    bus = EventLog()
    session = OrderSagaSession(
        "dev",
        config={**DETERMINISTIC, "sagaMode": "choreography"},
        on_event=bus,
        faults=["redeliver@outbox-relay=1"],
    )
    with session:
        session.seed_stock({"sku-1": 5})
        order_id = str(session.place_order("customer-1", [("sku-1", 1, 1250)])["orderId"])
        session.run_until_quiet()

        redelivered = Counter(
            (entry.kind, entry.target)
            for entry in session.delivery.log
            if entry.outcome == "redeliver"
        )
        assert set(redelivered) == {("stream.batch", session.function_name("outbox-relay"))}
        assert session.fault_counts == {"redeliver": redelivered.total()}
        # The saga's events go through the outbox (a side flow's may not).
        puts = Counter(
            (e.detail_type, e.event_id) for e in bus.of(order_id) if e.detail_type in SAGA_EVENTS
        )
        assert set(puts.values()) == {2}, puts
        assert Counter(detail_type for detail_type, _ in puts)["OrderCompleted"] == 1
        assert str((session.order(order_id) or {}).get("status")) == "COMPLETED"
