"""The order saga under `concurrency=4`: up to four invocations of each function in
flight at once, their AWS calls interleaved (two reservations of the last units of a
SKU, a compensation beside its step), and Lambda's throttling past the limit (Step
Functions tasks retried on `Lambda.TooManyRequestsException`, asynchronous events
retried without using up their attempts). Both sagas run (the dev stack's `both` mode,
EXPRESS state machine), with a burst of orders that complete, compete for a scarce
SKU, are declined and cannot be shipped.

One run (a module fixture) is read by each test. Step Functions executions run on
their own threads, so which orders a throttle cancels can vary between runs: the tests
assert what must hold whatever the interleaving.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from order_saga.sandbox.session import FINAL_STATUSES, InvariantReport, OrderSagaSession
from tests.e2e.conftest import (
    DECLINED_PREFIX,
    DETERMINISTIC,
    UNDELIVERABLE_PREFIX,
    nonempty_dlqs,
)

LIMIT = 4
FAULTS = (f"concurrency={LIMIT}",)
SEED = 10
SCARCE_STOCK = 3
SCARCE_ORDERS = 5  # of one unit each: at most SCARCE_STOCK of them can complete


@dataclass(frozen=True)
class ConcurrentRun:
    statuses: dict[str, str]  # orderId -> status
    kinds: dict[str, str]  # orderId -> plenty / scarce / refused
    fault_counts: dict[str, int]
    peaks: dict[str, int]  # function (short name) -> most invocations in flight at once
    dead_lettered: dict[str, int]
    stock: dict[str, int]
    invariants: InvariantReport


@pytest.fixture(scope="module")
def run() -> ConcurrentRun:
    session = OrderSagaSession("dev", config=DETERMINISTIC, seed=SEED, faults=FAULTS)
    with session:
        assert session.outputs["sagaMode"] == "both"
        session.seed_stock({"sku-plenty": 100, "sku-scarce": SCARCE_STOCK})
        kinds: dict[str, str] = {}

        def place(customer: str, sku: str, quantity: int, kind: str) -> None:
            answer = session.place_order(customer, [(sku, quantity, 1250)])
            assert answer["created"] is True, answer
            kinds[str(answer["orderId"])] = kind

        for n in range(8):
            place(f"customer-{n}", "sku-plenty", 2, "plenty")
        for n in range(SCARCE_ORDERS):
            place(f"customer-scarce-{n}", "sku-scarce", 1, "scarce")
        for n in range(2):
            place(f"{DECLINED_PREFIX}{n}", "sku-plenty", 1, "refused")
            place(f"{UNDELIVERABLE_PREFIX}{n}", "sku-plenty", 1, "refused")

        session.run_until_quiet()

        orders = session.orders()
        peaks = dict(session.runtime.concurrency.peaks)
        result = ConcurrentRun(
            statuses={o: str((orders.get(o) or {}).get("status")) for o in kinds},
            kinds=kinds,
            fault_counts=session.fault_counts,
            peaks={session.short_function_name(k): v for k, v in peaks.items()},
            dead_lettered=nonempty_dlqs(session),
            stock=session.stock(),
            invariants=session.invariants(),
        )
    return result  # the session stopped: moto holds one sandbox at a time


def test_invocations_of_one_function_overlapped_up_to_the_limit(run: ConcurrentRun) -> None:
    assert run.fault_counts["concurrency"] > 50
    assert max(run.peaks.values()) == LIMIT
    assert all(peak <= LIMIT for peak in run.peaks.values()), run.peaks


def test_every_order_is_final_and_the_scarce_sku_is_never_oversold(run: ConcurrentRun) -> None:
    """Declined and undeliverable orders are cancelled; of the scarce SKU's orders, at
    most its stock complete and the rest of its units are back on the shelf. (An order
    may also be cancelled because its saga gave up on a throttled step: what AWS does
    once a Step Functions task's retries of Lambda.TooManyRequestsException run out.)"""
    assert set(run.statuses.values()) <= FINAL_STATUSES
    assert {run.statuses[o] for o, kind in run.kinds.items() if kind == "refused"} == {"CANCELLED"}
    scarce_completed = sum(
        1 for o, kind in run.kinds.items() if kind == "scarce" and run.statuses[o] == "COMPLETED"
    )
    assert scarce_completed <= SCARCE_STOCK
    assert run.stock["sku-scarce"] == SCARCE_STOCK - scarce_completed
    plenty_completed = sum(
        1 for o, kind in run.kinds.items() if kind == "plenty" and run.statuses[o] == "COMPLETED"
    )
    assert run.stock["sku-plenty"] == 100 - 2 * plenty_completed
    assert run.dead_lettered == {}


def test_every_invariant_holds(run: ConcurrentRun) -> None:
    """Money, stock, outcomes (by event id), the outbox and the read model."""
    assert run.invariants.ok, run.invariants.problems
