"""One customer's payment message that keeps failing does not hold the other customers'
payments (choreography): the payments queue has no global message group, so the others
complete within a bounded virtual time while the bad one is retried and dead-lettered.

Virtual time only: the completion time of each order is the sandbox clock when its
OrderCompleted is put on the bus.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from contracts import sample_detail
from tests.e2e.conftest import E2E, BusEvent, assert_invariants, e2e_session, max_receive_count

OTHER_CUSTOMERS = 5


@pytest.fixture(scope="module")
def e2e() -> Iterator[E2E]:
    with e2e_session("choreography") as started:
        yield started


def visibility_timeout(e2e: E2E, queue: str) -> int:
    attributes = e2e.session.client("sqs").get_queue_attributes(
        QueueUrl=e2e.session.queue_url(queue), AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    return int(attributes["VisibilityTimeout"])


def test_a_payment_that_keeps_failing_does_not_hold_the_others(e2e: E2E) -> None:
    """A stuck customer's InventoryReserved names an order the orders table does not have:
    process_payment fails on it at every receive (retried, then dead-lettered). Put
    first, it is ahead of every other payment in the queue; the other customers' orders
    still complete within one visibility timeout of the payments queue (in a single
    FIFO group they waited for all its receives: maxReceiveCount x the timeout)."""
    session = e2e.session
    hold = visibility_timeout(e2e, "payments")
    receives = max_receive_count(session, "payments")
    completed_at: dict[str, float] = {}

    def on_event(event: BusEvent) -> None:
        if event.detail_type == "OrderCompleted" and event.order_id:
            completed_at.setdefault(event.order_id, session.clock.now())

    e2e.bus.hooks.append(on_event)
    start = session.clock.now()
    stuck_order = str(uuid.uuid4())
    session.put_event(
        "InventoryReserved",
        sample_detail(
            "InventoryReserved",
            orderId=stuck_order,
            customerId="stuck-customer",
            eventId=str(uuid.uuid4()),
        ),
    )
    sku = e2e.sku(OTHER_CUSTOMERS)
    others = [e2e.place(f"other-customer-{n}", sku, 1) for n in range(OTHER_CUSTOMERS)]
    report = e2e.run()

    late = {o: completed_at.get(o, float("inf")) - start for o in others}
    assert all(seconds < hold for seconds in late.values()), (
        f"orders completed after {sorted(late.values())} virtual seconds; the payments "
        f"queue's visibility timeout is {hold} s"
    )
    for order_id in others:
        assert e2e.order(order_id)["status"] == "COMPLETED"
    # The bad message was retried at every visibility timeout, then dead-lettered.
    stuck = [call for call in e2e.calls.of("process-payment") if stuck_order in str(call.event)]
    assert len(stuck) == receives
    (dead,) = [m for m in session.dlq_messages("payments-dlq") if stuck_order in str(m["body"])]
    assert dead["receiveCount"] >= 1
    assert report.virtual_seconds >= (receives - 1) * hold  # the run waited for it alone
    assert_invariants(session)
