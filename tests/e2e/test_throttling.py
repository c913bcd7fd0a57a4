"""The order saga under sustained throttling (`throttle=0.3`: 30% of every AWS call
the handlers and Step Functions make is refused with the service's own throttling error,
for the whole run). Both sagas run (the dev stack's `both` mode).

Throttling decides nothing: an order the customer and the stock let complete completes,
and a declined or undeliverable one is cancelled, as without the fault. The saga's
steps retry the AWS SDK's throttling errors for minutes (`STEP_RETRY`), a throttled
DynamoDB transaction is retried (`TransactionThrottledError`), and a queue message that
runs out of receives is dead-lettered and then redriven, as an operator would.

One run (a module fixture) is read by each test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from eventcraft_sandbox.session import InvocationFailedError
from order_saga.sandbox.demo import CLIENT_REFUSALS
from order_saga.sandbox.session import FINAL_STATUSES, InvariantReport, OrderSagaSession
from tests.e2e.conftest import (
    DECLINED_PREFIX,
    DETERMINISTIC,
    UNDELIVERABLE_PREFIX,
    nonempty_dlqs,
)

FAULTS = ("throttle=0.3",)
SEED = 3
REDRIVE_ROUNDS = 3  # as `demo --redrive`
CLIENT_ATTEMPTS = 20


@dataclass(frozen=True)
class ThrottledRun:
    statuses: dict[str, str]  # orderId -> status
    expected: dict[str, str]  # orderId -> the status its customer and stock decide
    fault_counts: dict[str, int]
    left_in_dlqs: dict[str, int]
    stock: dict[str, int]
    invariants: InvariantReport


@pytest.fixture(scope="module")
def run() -> ThrottledRun:
    session = OrderSagaSession("dev", config=DETERMINISTIC, seed=SEED, faults=FAULTS)
    with session:
        assert session.outputs["sagaMode"] == "both"
        session.seed_stock({"sku-1": 100})
        expected: dict[str, str] = {}

        def place(customer: str, status: str) -> None:
            """As a careful client: a throttled request is sent again with the same
            clientRequestId (place-order answers a retry with the order it placed)."""
            for _ in range(CLIENT_ATTEMPTS):
                try:
                    answer = session.place_order(
                        customer, [("sku-1", 2, 1250)], client_request_id=f"request-{customer}"
                    )
                except InvocationFailedError as exc:
                    assert exc.result.error_type not in CLIENT_REFUSALS, exc
                    continue
                expected[str(answer["orderId"])] = status
                return
            pytest.fail(f"{customer}'s order was never placed in {CLIENT_ATTEMPTS} attempts")

        for n in range(6):
            place(f"customer-{n}", "COMPLETED")
        place(f"{DECLINED_PREFIX}1", "CANCELLED")
        place(f"{UNDELIVERABLE_PREFIX}1", "CANCELLED")

        session.run_until_quiet()
        for _ in range(REDRIVE_ROUNDS):
            if not nonempty_dlqs(session):
                break
            session.redrive_dead_letters()
            session.run_until_quiet()

        orders = session.orders()
        return ThrottledRun(
            statuses={o: str((orders.get(o) or {}).get("status")) for o in expected},
            expected=expected,
            fault_counts=session.fault_counts,
            left_in_dlqs=nonempty_dlqs(session),
            stock=session.stock(),
            invariants=session.invariants(),
        )


def test_calls_were_throttled_throughout(run: ThrottledRun) -> None:
    assert run.fault_counts["throttle"] > 100


def test_throttling_decides_no_order(run: ThrottledRun) -> None:
    """Each order ends as its customer and stock decide: no completed order is lost to
    a throttled call, in either saga."""
    assert set(run.statuses.values()) <= FINAL_STATUSES
    assert run.statuses == run.expected
    assert run.stock["sku-1"] == 100 - 6 * 2
    assert run.left_in_dlqs == {}


def test_every_invariant_holds(run: ThrottledRun) -> None:
    """Money, stock, outcomes (by event id), the outbox and the read model."""
    assert run.invariants.ok, run.invariants.problems
