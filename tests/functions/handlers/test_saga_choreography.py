"""The choreographed saga, in process on moto: each handler is called with the events the
previous ones emitted (outbox -> relay -> bus -> capture queue), for the happy path, a
declined payment, a failed shipment and a short stock; duplicates and out-of-order
delivery leave one consistent state; saga_progress's own guarantees. Last, the same saga
orchestrated: the `task` entries run by moto's Step Functions interpreter."""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import (
    Event,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    OrderShipped,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
    ShippingFailed,
    sample_detail,
)
from domain import orders
from domain.orders import OrderStatus
from handlers import (
    place_order,
    process_payment,
    refund_payment,
    release_inventory,
    reserve_inventory,
    saga_progress,
    ship_order,
)
from pulumi_eventcraft.saga import TRANSIENT_LAMBDA_ERRORS, RetryPolicy, SagaStep, saga_definition
from tests.functions.awsenv import CallRecorder
from tests.functions.handlers.conftest import (
    CONTEXT,
    Orchestrator,
    SagaWorld,
    as_eventbridge,
    order_placed,
    place_sample_order,
    saga_state,
    sqs_batch,
)

Handler = Callable[[dict[str, Any], Any], Any]

# The choreography's rules: detail-type -> the targets it is routed to.
ROUTES: dict[str, list[Handler]] = {
    "OrderPlaced": [reserve_inventory.handler],
    "InventoryReserved": [process_payment.handler, saga_progress.handler],
    "InventoryReservationFailed": [saga_progress.handler],
    "PaymentProcessed": [ship_order.handler, saga_progress.handler],
    "PaymentFailed": [release_inventory.handler, saga_progress.handler],
    "OrderShipped": [saga_progress.handler],
    "ShippingFailed": [refund_payment.handler, release_inventory.handler, saga_progress.handler],
    "PaymentRefunded": [saga_progress.handler],
    "InventoryReleased": [saga_progress.handler],
    "OrderCompleted": [],
    "OrderCancelled": [],
}


def run_saga(
    world: SagaWorld, customer_id: str = "customer-1", *, deliveries: int = 1
) -> tuple[str, list[dict[str, Any]]]:
    """Place an order, then deliver every event the bus publishes to its targets
    (`deliveries` times each, at least once is the contract) until nothing is left.
    Returns the order id and the events, in publication order."""
    order_id = place_order.handler(
        {
            "clientRequestId": f"req-{customer_id}",
            "customerId": customer_id,
            "items": [
                {"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250},
                {"sku": "sku-blue-pot", "quantity": 1, "unitPriceCents": 4999},
            ],
        },
        CONTEXT,
    )["orderId"]
    published: list[dict[str, Any]] = []
    pending = world.relay()
    for _ in range(50):
        if not pending:
            return order_id, published
        event = pending.pop(0)
        published.append(event)
        for target in ROUTES[event["detail-type"]]:
            for _ in range(deliveries):
                target(event, CONTEXT)
        pending += world.relay()
    raise AssertionError(f"the saga did not settle: {[e['detail-type'] for e in published]}")


def types(events: Iterable[dict[str, Any]]) -> list[str]:
    return [e["detail-type"] for e in events]


def test_happy_path(aws: SagaWorld) -> None:
    aws.seed_stock()
    order_id, events = run_saga(aws)

    assert types(events) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentProcessed",
        "OrderShipped",
        "OrderCompleted",
    ]
    assert {e["detail"]["orderId"] for e in events} == {order_id}
    order = aws.order(order_id)
    assert (order["status"], order["chargedCents"], order["refundedCents"]) == (
        "COMPLETED",
        7499,
        0,
    )
    assert [(h["event"], h["status"]) for h in order["history"]] == [
        ("OrderPlaced", "PLACED"),
        ("InventoryReserved", "RESERVED"),
        ("PaymentProcessed", "PAID"),
        ("OrderShipped", "COMPLETED"),
    ]
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (8, 4)
    assert aws.item("PAYMENTS_TABLE", f"payment#{order_id}")["status"] == "CHARGED"
    assert aws.item("SHIPMENTS_TABLE", f"shipment#{order_id}")["status"] == "SHIPPED"


def test_payment_declined_releases_the_stock_and_charges_nothing(aws: SagaWorld) -> None:
    aws.seed_stock()
    order_id, events = run_saga(aws, "declined-dan")

    assert types(events) == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentFailed",
        "InventoryReleased",
        "OrderCancelled",
    ]
    cancelled = events[-1]["detail"]
    assert cancelled["failedStep"] == "payment"
    assert cancelled["reason"] == "payment failed: card declined (customer declined-dan)"
    order = aws.order(order_id)
    assert (order["status"], order["chargedCents"]) == ("CANCELLED", 0)
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)
    payment = aws.item("PAYMENTS_TABLE", f"payment#{order_id}")
    assert payment["status"] == "DECLINED"
    assert "chargedCents" not in payment
    assert aws.item("SHIPMENTS_TABLE", f"shipment#{order_id}") is None


def test_shipping_failed_refunds_the_charge_and_releases_the_stock(aws: SagaWorld) -> None:
    aws.seed_stock()
    order_id, events = run_saga(aws, "undeliverable-uma")

    assert types(events)[:4] == [
        "OrderPlaced",
        "InventoryReserved",
        "PaymentProcessed",
        "ShippingFailed",
    ]
    assert Counter(types(events)[4:]) == Counter(
        {"PaymentRefunded": 1, "InventoryReleased": 1, "OrderCancelled": 1}
    )
    assert types(events)[-1] == "OrderCancelled"
    by_type = {e["detail-type"]: e["detail"] for e in events}
    assert by_type["PaymentRefunded"]["amountCents"] == by_type["PaymentProcessed"]["amountCents"]
    assert by_type["OrderCancelled"]["failedStep"] == "shipping"
    order = aws.order(order_id)
    assert (order["status"], order["chargedCents"], order["refundedCents"]) == (
        "CANCELLED",
        7499,
        7499,
    )
    payment = aws.item("PAYMENTS_TABLE", f"payment#{order_id}")
    assert (payment["status"], payment["refundedCents"]) == ("REFUNDED", payment["chargedCents"])
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)


def test_short_stock_cancels_at_once(aws: SagaWorld) -> None:
    aws.seed_stock({"sku-red-mug": 1, "sku-blue-pot": 5})
    order_id, events = run_saga(aws)
    assert types(events) == ["OrderPlaced", "InventoryReservationFailed", "OrderCancelled"]
    assert events[-1]["detail"]["failedStep"] == "inventory"
    assert aws.order(order_id)["status"] == "CANCELLED"
    assert aws.item("PAYMENTS_TABLE", f"payment#{order_id}") is None


@pytest.mark.parametrize("customer", ["customer-1", "declined-dan", "undeliverable-uma"])
def test_every_event_delivered_twice_has_one_effect(aws: SagaWorld, customer: str) -> None:
    aws.seed_stock()
    _, once = run_saga(aws, customer)
    final_once = {
        k: v
        for k, v in aws.order(once[0]["detail"]["orderId"]).items()
        if k in ("status", "chargedCents", "refundedCents", "failedStep")
    }
    stock_once = (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot"))

    aws.seed_stock()
    order_id, twice = run_saga(aws, f"{customer}-again", deliveries=2)
    final_twice = {
        k: v
        for k, v in aws.order(order_id).items()
        if k in ("status", "chargedCents", "refundedCents", "failedStep")
    }

    assert Counter(types(twice)) == Counter(types(once))
    assert final_twice == final_once
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == stock_once
    assert sum(t in ("OrderCompleted", "OrderCancelled") for t in types(twice)) == 1


# --- out-of-order delivery ------------------------------------------------------------

AT = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)


def saga_events(path: str, order_id: str = "order-1") -> list[Event]:
    """The saga events of one order along `path`, in causal order."""
    reserved = InventoryReserved.model_validate(
        sample_detail("InventoryReserved", orderId=order_id, eventId="e-reserved")
    )
    paid = PaymentProcessed.model_validate(
        sample_detail("PaymentProcessed", orderId=order_id, eventId="e-paid")
    )
    if path == "happy":
        return [
            reserved,
            paid,
            OrderShipped.model_validate(
                sample_detail("OrderShipped", orderId=order_id, eventId="e-shipped")
            ),
        ]
    released = InventoryReleased.model_validate(
        sample_detail("InventoryReleased", orderId=order_id, eventId="e-released")
    )
    if path == "payment":
        declined = PaymentFailed.model_validate(
            sample_detail("PaymentFailed", orderId=order_id, eventId="e-declined")
        )
        return [reserved, declined, released]
    if path == "shipping":
        failed = ShippingFailed.model_validate(
            sample_detail("ShippingFailed", orderId=order_id, eventId="e-unshipped")
        )
        refunded = PaymentRefunded.model_validate(
            sample_detail("PaymentRefunded", orderId=order_id, eventId="e-refunded")
        )
        return [reserved, paid, failed, refunded, released]
    if path == "inventory":
        return [
            InventoryReservationFailed.model_validate(
                sample_detail("InventoryReservationFailed", orderId=order_id, eventId="e-short")
            )
        ]
    raise ValueError(path)


EXPECTED = {
    "happy": (OrderStatus.COMPLETED, None, "OrderCompleted"),
    "payment": (OrderStatus.CANCELLED, "payment", "OrderCancelled"),
    "shipping": (OrderStatus.CANCELLED, "shipping", "OrderCancelled"),
    "inventory": (OrderStatus.CANCELLED, "inventory", "OrderCancelled"),
}
_RANK = {
    s: i
    for i, s in enumerate(
        [
            OrderStatus.PLACED,
            OrderStatus.RESERVED,
            OrderStatus.PAID,
            OrderStatus.SHIPPED,
            OrderStatus.COMPLETED,
        ]
    )
}


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_any_order_and_any_duplicates_reach_the_same_end(path: str) -> None:
    """The state machine alone: every permutation of the path's events, each then
    delivered again, ends in the same state with exactly one final event."""
    status, failed_step, final_event = EXPECTED[path]
    rng = random.Random(7)
    start = orders.new_saga(order_placed())
    for permutation in itertools.permutations(saga_events(path)):
        deliveries = [*permutation, *rng.sample(permutation, len(permutation))]
        state, emitted, compensations = start, [], set()
        for event in deliveries:
            before = state.status
            transition = orders.apply(state, orders.fact_from_event(event), now=AT)
            state = transition.state
            emitted += [e.DETAIL_TYPE for e in transition.emit]
            compensations |= transition.compensate
            if before in orders.FINAL:
                assert state.status == before  # final states never change
            if before in _RANK and state.status in _RANK:
                assert _RANK[state.status] >= _RANK[before]  # progress never regresses
        assert state.status is status, permutation
        assert emitted == [final_event], permutation
        assert (state.failure.step if state.failure else None) == failed_step
        assert not (state.failure and state.failure.inferred)
        # Compensations triggered by saga_progress are only for facts the failure
        # handlers compensate anyway (idempotent), never for the happy path.
        assert path != "happy" or not compensations


def test_out_of_order_delivery_to_saga_progress(aws: SagaWorld) -> None:
    place_sample_order(aws)
    aws.record_steps(*saga_events("happy"))
    statuses = []
    for event in reversed(saga_events("happy")):
        statuses.append(
            saga_progress.handler(as_eventbridge(event.DETAIL_TYPE, event.to_detail()), CONTEXT)[
                "status"
            ]
        )
    assert statuses == ["SHIPPED", "SHIPPED", "COMPLETED"]  # never regressed
    assert len(aws.outbox_events("OrderCompleted")) == 1


def test_a_compensation_ahead_of_its_failure_waits_for_it(aws: SagaWorld) -> None:
    place_sample_order(aws)
    released, declined = saga_events("payment")[2], saga_events("payment")[1]
    first = saga_progress.handler(
        as_eventbridge("InventoryReleased", released.to_detail()), CONTEXT
    )
    assert first["status"] == "CANCELLING"
    assert aws.outbox_rows() == []
    second = saga_progress.handler(as_eventbridge("PaymentFailed", declined.to_detail()), CONTEXT)
    assert second["status"] == "CANCELLED"
    (cancelled,) = aws.outbox_events("OrderCancelled")
    assert (cancelled["failedStep"], cancelled["reason"]) == (
        "payment",
        "payment failed: card declined",
    )


def test_a_late_reservation_after_cancellation_is_released_not_resurrected(aws: SagaWorld) -> None:
    """The orchestrator gave up on the reserve step (its retries exhausted) and the saga
    ended; the reservation had gone through after all, and its event arrives late."""
    aws.seed_stock()
    order = place_sample_order(aws)
    error = {"Error": "Lambda.ServiceException", "Cause": "{}"}
    assert (
        saga_progress.record_outcome(saga_state(order, error=error), CONTEXT)["status"]
        == "CANCELLED"
    )
    reserve_inventory.handler(as_eventbridge("OrderPlaced", order.to_detail()), CONTEXT)
    assert aws.stock("sku-red-mug") == 8
    (late,) = [e for e in aws.relay() if e["detail-type"] == "InventoryReserved"]

    result = saga_progress.handler(late, CONTEXT)

    assert (result["status"], result["compensated"]) == ("CANCELLED", ["release_inventory"])
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)
    (released,) = aws.relay()
    assert released["detail-type"] == "InventoryReleased"
    saga = aws.order("order-1")
    assert saga["status"] == "CANCELLED"
    assert "arrived after the order was cancelled" in saga["history"][-1]["note"]
    # The release comes back through the bus: recorded, nothing else happens.
    answer = saga_progress.handler(released, CONTEXT)
    assert (answer["status"], answer["compensated"]) == ("CANCELLED", [])
    assert len(aws.outbox_events("OrderCancelled")) == 1


@pytest.mark.usefixtures("serializable_moto")
def test_concurrent_events_for_one_order_are_serialized(aws: SagaWorld) -> None:
    place_sample_order(aws)
    aws.record_steps(*saga_events("happy"))
    events = saga_events("happy") * 3
    threads = [
        threading.Thread(
            target=saga_progress.handler,
            args=(as_eventbridge(e.DETAIL_TYPE, e.to_detail()), CONTEXT),
        )
        for e in events
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    order = aws.order("order-1")
    assert order["status"] == "COMPLETED"
    assert sorted(order["appliedEventIds"][1:]) == ["e-paid", "e-reserved", "e-shipped"]
    assert len(aws.outbox_events("OrderCompleted")) == 1


def test_poison_records_fail_alone_in_an_sqs_batch(aws: SagaWorld) -> None:
    place_sample_order(aws)
    aws.record_steps(*saga_events("happy"))
    reserved, paid, shipped = (
        as_eventbridge(e.DETAIL_TYPE, e.to_detail()) for e in saga_events("happy")
    )
    not_a_saga_event = as_eventbridge("OrderPlaced", order_placed().to_detail())
    broken = json.loads(json.dumps(paid))
    del broken["detail"]["eventId"]  # a consumer never invents the idempotency key
    batch = sqs_batch(reserved, not_a_saga_event, broken, paid, "{", shipped)

    response = saga_progress.handler(batch, CONTEXT)

    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": "m-1"},
            {"itemIdentifier": "m-2"},
            {"itemIdentifier": "m-4"},
        ]
    }
    assert aws.order("order-1")["status"] == "COMPLETED"


def test_saga_progress_access(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    saga_progress.record_outcome(
        saga_state(order, error={"Error": "Lambda.ServiceException"}), CONTEXT
    )
    reserve_inventory.handler(as_eventbridge("OrderPlaced", order.to_detail()), CONTEXT)
    process_payment.handler(
        as_eventbridge("InventoryReserved", sample_detail("InventoryReserved", orderId="order-1")),
        CONTEXT,
    )
    late = [e for e in aws.relay() if e["detail-type"] in ("InventoryReserved", "PaymentProcessed")]
    aws_calls.reset()
    for event in late:  # both late: release the stock, refund the charge
        saga_progress.handler(event, CONTEXT)
    recorded = aws_calls.by_env()
    assert aws.item("PAYMENTS_TABLE", "payment#order-1")["status"] == "REFUNDED"
    # Every recorded call is declared; the declared PutItems on the inventory and payments
    # tables are the tombstones, which this path only reaches in a race.
    for env, actions in recorded.items():
        assert actions <= saga_progress.ACCESS[env], env
    assert recorded["ORDERS_TABLE"] == saga_progress.ACCESS["ORDERS_TABLE"]
    assert saga_progress.ACCESS["INVENTORY_TABLE"] - recorded["INVENTORY_TABLE"] == {
        "dynamodb:PutItem"
    }
    assert saga_progress.ACCESS["PAYMENTS_TABLE"] - recorded["PAYMENTS_TABLE"] == {
        "dynamodb:PutItem"
    }


# --- the same saga, orchestrated (pulumi_eventcraft.saga ASL, moto's interpreter) -------------


def orchestrated_saga(
    orchestrator: Orchestrator, *, pay_retry: RetryPolicy | None = None
) -> dict[str, Any]:
    """reserve -> pay -> ship, compensated by release and refund, as the system wires it."""
    fn = orchestrator.function
    return saga_definition(
        [
            SagaStep(
                name="reserve",
                task=fn("reserve", reserve_inventory.task),
                compensation=fn("release", release_inventory.task),
            ),
            SagaStep(
                name="pay",
                task=fn("pay", process_payment.task),
                compensation=fn("refund", refund_payment.task),
                **({"retry": pay_retry} if pay_retry else {}),
            ),
            SagaStep(name="ship", task=fn("ship", ship_order.task)),
        ]
    )


def start(order_id: str, customer_id: str) -> dict[str, Any]:
    """The execution's input: the OrderPlaced event, as a rule would start it."""
    return as_eventbridge("OrderPlaced", order_placed(order_id, customerId=customer_id).to_detail())


def test_orchestrated_happy_path(orchestrator: Orchestrator) -> None:
    world = orchestrator.world
    world.seed_stock()
    execution = orchestrator.run(orchestrated_saga(orchestrator), "happy", start("o-1", "c-1"))

    assert execution["status"] == "SUCCEEDED"
    assert orchestrator.calls == ["reserve", "pay", "ship"]
    output = json.loads(execution["output"])
    assert set(output["results"]) == {"reserve", "pay", "ship"}
    order = world.order("o-1")
    assert (order["status"], order["chargedCents"]) == ("COMPLETED", 7499)
    # Each step's event, and the one OrderCompleted, went to the outbox with the step.
    assert sorted(types(world.outbox_events())) == [
        "InventoryReserved",
        "OrderCompleted",
        "OrderShipped",
        "PaymentProcessed",
    ]
    assert (world.stock("sku-red-mug"), world.stock("sku-blue-pot")) == (8, 4)


def test_orchestrated_payment_declined(orchestrator: Orchestrator) -> None:
    world = orchestrator.world
    world.seed_stock()
    execution = orchestrator.run(
        orchestrated_saga(orchestrator), "declined", start("o-2", "declined-d")
    )

    assert (execution["status"], execution["error"]) == ("FAILED", "SagaFailed")
    # PaymentDeclined is not retried; the failed step's own compensation (refund, with
    # nothing to refund) runs first, then the completed steps' in reverse order.
    assert orchestrator.calls == ["reserve", "pay", "refund", "release"]
    order = world.order("o-2")
    assert (order["status"], order["failedStep"], order["chargedCents"]) == (
        "CANCELLED",
        "payment",
        0,
    )
    assert order["failureReason"] == "card declined (customer declined-d)"
    assert (world.stock("sku-red-mug"), world.stock("sku-blue-pot")) == (10, 5)
    assert len(world.outbox_events("OrderCancelled")) == 1


def test_orchestrated_shipping_failed(orchestrator: Orchestrator) -> None:
    world = orchestrator.world
    world.seed_stock()
    execution = orchestrator.run(
        orchestrated_saga(orchestrator), "unshipped", start("o-3", "undeliverable-u")
    )

    assert execution["status"] == "FAILED"
    assert orchestrator.calls == ["reserve", "pay", "ship", "refund", "release"]
    order = world.order("o-3")
    assert (order["status"], order["failedStep"]) == ("CANCELLED", "shipping")
    assert order["refundedCents"] == order["chargedCents"] == 7499
    assert world.item("PAYMENTS_TABLE", "payment#o-3")["status"] == "REFUNDED"
    assert (world.stock("sku-red-mug"), world.stock("sku-blue-pot")) == (10, 5)
    (cancelled,) = world.outbox_events("OrderCancelled")
    assert cancelled["failedStep"] == "shipping"


def test_orchestrated_transient_payment_failure_is_retried(
    orchestrator: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's transient failure is a handler error: the pay step must list it in
    its Retry (the default retries only the Lambda service's own errors)."""
    monkeypatch.setenv("PAYMENT_TRANSIENT_FAILURE_RATE", "1")
    world = orchestrator.world
    world.seed_stock()
    retry = RetryPolicy(errors=(*TRANSIENT_LAMBDA_ERRORS, "PaymentProviderUnavailable"))
    execution = orchestrator.run(
        orchestrated_saga(orchestrator, pay_retry=retry), "flaky", start("o-4", "c-4")
    )

    assert execution["status"] == "SUCCEEDED"
    assert orchestrator.calls == ["reserve", "pay", "pay", "ship"]
    assert len(orchestrator.sleeps) == 1
    assert world.item("PAYMENTS_TABLE", "payment#o-4")["attempts"] == 2
    assert world.order("o-4")["status"] == "COMPLETED"


# --- compensations after the order shipped (a lost reply, a stray event) -----------------


def test_orchestrated_ship_replies_all_lost_never_undo_the_shipment(
    orchestrator: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ship commits every time, but Step Functions only ever sees a timeout: once the
    saga gives up on it, the compensations read the shipments table and refuse. The
    order stays COMPLETED, charged its total, its stock gone."""
    world = orchestrator.world
    world.seed_stock()
    invoke = orchestrator.invoke

    def reply_lost(name: str, event: Any) -> tuple[str, bool, str]:
        answer = invoke(name, event)
        if name != "ship":
            return answer
        timeout = {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 30.00"}
        return json.dumps(timeout), True, ""

    monkeypatch.setattr(orchestrator, "invoke", reply_lost)
    execution = orchestrator.run(orchestrated_saga(orchestrator), "lost", start("o-5", "c-5"))

    assert execution["status"] == "FAILED"
    assert orchestrator.calls == ["reserve", "pay", "ship", "refund", "release"]
    order = world.order("o-5")
    assert (order["status"], order["chargedCents"], order["refundedCents"]) == (
        "COMPLETED",
        7499,
        0,
    )
    payment = world.item("PAYMENTS_TABLE", "payment#o-5")
    assert (payment["status"], payment["chargedCents"]) == ("CHARGED", 7499)
    assert world.item("INVENTORY_TABLE", "reservation#o-5")["status"] == "RESERVED"
    assert (world.stock("sku-red-mug"), world.stock("sku-blue-pot")) == (8, 4)
    assert world.outbox_events("PaymentRefunded") == world.outbox_events("InventoryReleased") == []
    assert world.outbox_events("OrderCancelled") == []


def test_a_compensation_after_the_order_shipped_is_refused(aws: SagaWorld) -> None:
    """A ShippingFailed / PaymentFailed delivered after the order shipped (a stray or
    replayed event): the refund and the release read the shipments table and refuse,
    saying why; the order stays COMPLETED, its charge and its stock as they were."""
    aws.seed_stock()
    order_id, _ = run_saga(aws)
    stock = (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot"))
    stray = [
        as_eventbridge(
            detail_type,
            sample_detail(detail_type, orderId=order_id, customerId="customer-1", eventId=e),
        )
        for detail_type, e in (("ShippingFailed", "e-x"), ("PaymentFailed", "e-y"))
    ]
    refunded = refund_payment.handler(stray[0], CONTEXT)
    released = [release_inventory.handler(event, CONTEXT) for event in stray]

    assert refunded["action"] == "REFUSED"
    assert refunded["reason"].startswith(f"order {order_id} has shipped (shipment ")
    assert [r["action"] for r in released] == ["REFUSED", "REFUSED"]
    payment = aws.item("PAYMENTS_TABLE", f"payment#{order_id}")
    assert (payment["status"], payment.get("refundedCents")) == ("CHARGED", None)
    assert aws.item("INVENTORY_TABLE", f"reservation#{order_id}")["status"] == "RESERVED"
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == stock
    assert aws.relay() == []  # no PaymentRefunded, no InventoryReleased
    assert aws.order(order_id)["status"] == "COMPLETED"


def test_compensation_tasks_after_the_order_shipped_refuse(aws: SagaWorld) -> None:
    """The orchestrator's compensations, run for a shipped order (its ship reply lost),
    refuse and record only the caught error in the history."""
    aws.seed_stock()
    order = place_sample_order(aws)
    results = {"reserve": reserve_inventory.task(saga_state(order), CONTEXT)}
    results["pay"] = process_payment.task(saga_state(order, results=results), CONTEXT)
    ship_order.task(saga_state(order, results=results), CONTEXT)
    lost = saga_state(
        order, results=results, error={"Error": "Sandbox.Timedout", "Cause": "timed out"}
    )

    refund = refund_payment.task(lost, CONTEXT)
    release = release_inventory.task(lost, CONTEXT)

    assert (refund["action"], release["action"]) == ("REFUSED", "REFUSED")
    assert "has shipped" in refund["reason"] and "has shipped" in release["reason"]
    saga = aws.order("order-1")
    assert (saga["status"], saga["refundedCents"]) == ("COMPLETED", 0)
    assert saga["history"][-1]["note"] == "ignored: the order was already completed"
    assert aws.outbox_events("PaymentRefunded") == aws.outbox_events("InventoryReleased") == []


def test_saga_progress_refuses_a_charge_or_shipment_its_step_never_recorded(
    aws: SagaWorld,
) -> None:
    """A forged PaymentProcessed (1 cent) or OrderShipped: saga_progress reads the
    payments / shipments table, refuses the event (it goes to the DLQ with the reason)
    and leaves the order as it was."""
    place_sample_order(aws)
    before = aws.order("order-1")
    forged_payment = as_eventbridge(
        "PaymentProcessed", sample_detail("PaymentProcessed", orderId="order-1", amountCents=1)
    )
    with pytest.raises(
        saga_progress.UnrecordedEventError,
        match=r"says order order-1 was charged 1 USD cents .*the payments table has no payment",
    ):
        saga_progress.handler(forged_payment, CONTEXT)
    reserved = as_eventbridge(
        "InventoryReserved", sample_detail("InventoryReserved", orderId="order-1")
    )
    forged_shipment = as_eventbridge(
        "OrderShipped", sample_detail("OrderShipped", orderId="order-1")
    )
    response = saga_progress.handler(sqs_batch(forged_shipment, reserved), CONTEXT)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    order = aws.order("order-1")
    assert (order["status"], order["facts"], order["chargedCents"]) == ("RESERVED", ["reserved"], 0)
    assert len(order["history"]) == len(before["history"]) + 1
