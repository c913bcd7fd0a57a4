"""reserve_inventory and release_inventory on moto: all lines or none, stock never
negative, one decision per order, release once, the Step Functions tasks."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from contracts import OrderPlacedV1, sample_detail
from eventcraft.envelopes import PoisonRecordError
from handlers import release_inventory, reserve_inventory
from handlers.reserve_inventory import InventoryUnavailable
from tests.functions.awsenv import CallRecorder
from tests.functions.handlers.conftest import (
    CONTEXT,
    SagaWorld,
    as_eventbridge,
    eventbridge,
    order_placed,
    place_sample_order,
    saga_state,
    sqs_batch,
)


def reserve_event(order_id: str = "order-1", **overrides: Any) -> dict[str, Any]:
    return eventbridge("OrderPlaced", orderId=order_id, **overrides)


def test_reserves_every_line_and_records_the_decision(aws: SagaWorld) -> None:
    aws.seed_stock()
    result = reserve_inventory.handler(reserve_event(), CONTEXT)

    assert result["status"] == "RESERVED"
    assert result["created"] is True
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (8, 4)
    reservation = aws.item("INVENTORY_TABLE", "reservation#order-1")
    assert reservation["status"] == "RESERVED"
    assert reservation["items"] == [
        {"sku": "sku-red-mug", "quantity": 2},
        {"sku": "sku-blue-pot", "quantity": 1},
    ]
    (event,) = aws.outbox_events()
    assert event["detail-type"] == "InventoryReserved"
    assert event["reservationId"] == "reservation-order-1" == result["reservationId"]
    assert event["items"] == reservation["items"]


def test_the_same_order_twice_reserves_once(aws: SagaWorld) -> None:
    aws.seed_stock()
    event = reserve_event()
    first = reserve_inventory.handler(event, CONTEXT)
    again = reserve_inventory.handler(event, CONTEXT)
    # A redelivery with another envelope (and even another event id) changes nothing.
    other = reserve_inventory.handler(reserve_event(), CONTEXT)

    assert first["created"] is True
    assert again["created"] is other["created"] is False
    assert again["eventId"] == other["eventId"] == first["eventId"]
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (8, 4)
    assert len(aws.outbox_rows()) == 1


def test_a_short_line_reserves_nothing(aws: SagaWorld) -> None:
    aws.seed_stock({"sku-red-mug": 10, "sku-blue-pot": 0})
    result = reserve_inventory.handler(reserve_event(), CONTEXT)

    assert result["status"] == "REJECTED"
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 0)
    reservation = aws.item("INVENTORY_TABLE", "reservation#order-1")
    assert reservation["status"] == "REJECTED"
    assert reservation["unavailableSkus"] == ["sku-blue-pot"]
    (event,) = aws.outbox_events()
    assert event["detail-type"] == "InventoryReservationFailed"
    assert event["unavailableSkus"] == ["sku-blue-pot"]
    assert event["reason"] == "insufficient stock for sku-blue-pot"

    # The decision sticks: stock arriving later does not turn it into a reservation.
    aws.seed_stock()
    assert reserve_inventory.handler(reserve_event(), CONTEXT)["status"] == "REJECTED"
    assert aws.stock("sku-blue-pot") == 5
    assert len(aws.outbox_rows()) == 1


def test_an_unknown_sku_is_unavailable(aws: SagaWorld) -> None:
    aws.seed_stock({"sku-red-mug": 10})  # no sku-blue-pot item at all
    result = reserve_inventory.handler(reserve_event(), CONTEXT)
    assert result["status"] == "REJECTED"
    assert aws.stock("sku-red-mug") == 10
    assert aws.outbox_events()[0]["unavailableSkus"] == ["sku-blue-pot"]


def test_a_v1_order_is_upcast(aws: SagaWorld) -> None:
    aws.seed_stock()
    fields = sample_detail("OrderPlaced", orderId="order-v1")
    fields.pop("currency")
    v1 = OrderPlacedV1.model_validate({**fields, "version": "1"}).to_detail()
    result = reserve_inventory.handler(as_eventbridge("OrderPlaced", v1), CONTEXT)
    assert result["status"] == "RESERVED"


def test_a_poison_record_fails_alone_in_an_sqs_batch(aws: SagaWorld) -> None:
    aws.seed_stock()
    good = reserve_event("order-good")
    broken = reserve_event("order-broken")
    broken["detail"]["totalCents"] = 1  # breaks the contract: total != sum of lines
    batch = sqs_batch(good, broken, "not json", reserve_event("order-good-2"))

    response = reserve_inventory.handler(batch, CONTEXT)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}
    reserved = {json.loads(r["detail"])["orderId"] for r in aws.outbox_rows("InventoryReserved")}
    assert reserved == {"order-good", "order-good-2"}
    assert aws.item("INVENTORY_TABLE", "reservation#order-broken") is None


@pytest.mark.usefixtures("serializable_moto")
def test_stock_never_goes_negative_under_concurrent_reservations(aws: SagaWorld) -> None:
    aws.seed_stock({"sku-red-mug": 7, "sku-blue-pot": 100})  # room for 3 orders of 2 mugs
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def reserve(n: int) -> None:
        try:
            results.append(reserve_inventory.handler(reserve_event(f"order-{n}"), CONTEXT))
        except BaseException as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=reserve, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    reserved = [r for r in results if r["status"] == "RESERVED"]
    assert len(reserved) == 3
    assert len(results) == 12
    assert aws.stock("sku-red-mug") == 1
    assert aws.stock("sku-blue-pot") == 97
    assert len(aws.outbox_rows("InventoryReserved")) == 3
    assert len(aws.outbox_rows("InventoryReservationFailed")) == 9


# --- release ------------------------------------------------------------------------------


def test_release_restores_the_stock_once(aws: SagaWorld) -> None:
    aws.seed_stock()
    reserve_inventory.handler(reserve_event(), CONTEXT)
    failed = eventbridge("PaymentFailed", orderId="order-1")

    first = release_inventory.handler(failed, CONTEXT)
    again = release_inventory.handler(failed, CONTEXT)
    via_shipping = release_inventory.handler(
        eventbridge("ShippingFailed", orderId="order-1"), CONTEXT
    )

    assert (first["action"], first["released"]) == ("RELEASE", True)
    assert again["action"] == via_shipping["action"] == "NOTHING"
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)
    reservation = aws.item("INVENTORY_TABLE", "reservation#order-1")
    assert reservation["status"] == "RELEASED"
    assert reservation["releaseReason"] == "PaymentFailed: card declined"
    (released,) = aws.outbox_events("InventoryReleased")
    assert released["reservationId"] == "reservation-order-1"
    assert released["items"] == reservation["items"]


def test_releasing_what_was_never_reserved_is_a_no_op_that_refuses_a_late_reservation(
    aws: SagaWorld,
) -> None:
    aws.seed_stock()
    result = release_inventory.handler(eventbridge("PaymentFailed", orderId="order-1"), CONTEXT)
    assert (result["action"], result["released"]) == ("TOMBSTONE", False)
    assert aws.outbox_rows() == []

    late = reserve_inventory.handler(reserve_event(), CONTEXT)
    assert (late["status"], late["created"]) == ("RELEASED", False)
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)
    assert aws.outbox_rows() == []


def test_releasing_a_rejected_reservation_changes_nothing(aws: SagaWorld) -> None:
    aws.seed_stock({"sku-red-mug": 1, "sku-blue-pot": 5})
    reserve_inventory.handler(reserve_event(), CONTEXT)
    result = release_inventory.handler(eventbridge("PaymentFailed", orderId="order-1"), CONTEXT)
    assert result["action"] == "NOTHING"
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (1, 5)


def test_release_reads_only_failures(aws: SagaWorld) -> None:
    with pytest.raises(PoisonRecordError, match="narrow the rule"):
        release_inventory.handler(reserve_event(), CONTEXT)
    response = release_inventory.handler(
        sqs_batch(eventbridge("PaymentFailed", orderId="order-1"), reserve_event()), CONTEXT
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


# --- orchestration tasks -----------------------------------------------------------------


def test_reserve_task_records_the_step_in_the_saga(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    result = reserve_inventory.task(saga_state(order), CONTEXT)
    again = reserve_inventory.task(saga_state(order), CONTEXT)

    assert result["status"] == "RESERVED"
    assert again["eventId"] == result["eventId"]
    saga = aws.order("order-1")
    assert saga["status"] == "RESERVED"
    assert saga["reservationId"] == "reservation-order-1"
    assert [h["event"] for h in saga["history"]] == ["OrderPlaced", "InventoryReserved"]
    assert aws.stock("sku-red-mug") == 8


def test_reserve_task_raises_inventory_unavailable_and_cancels(aws: SagaWorld) -> None:
    aws.seed_stock({"sku-red-mug": 1})
    order = place_sample_order(aws)
    with pytest.raises(InventoryUnavailable, match="insufficient stock"):
        reserve_inventory.task(saga_state(order), CONTEXT)

    saga = aws.order("order-1")
    assert (saga["status"], saga["failedStep"]) == ("CANCELLED", "inventory")
    (cancelled,) = aws.outbox_events("OrderCancelled")
    assert cancelled["failedStep"] == "inventory"
    assert cancelled["reason"].startswith("inventory failed: insufficient stock")


def test_reserve_task_starts_the_saga_record_when_the_order_has_none(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = order_placed()  # the execution carries it; the orders table does not
    reserve_inventory.task(saga_state(order), CONTEXT)
    assert aws.order("order-1")["status"] == "RESERVED"


def payment_declined(order_id: str = "order-1") -> dict[str, str]:
    return {
        "Error": "PaymentDeclined",
        "Cause": json.dumps(
            {
                "errorMessage": f"payment of order {order_id} declined",
                "errorType": "PaymentDeclined",
            }
        ),
    }


def test_release_task_compensates_and_cancels(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    reserved = reserve_inventory.task(saga_state(order), CONTEXT)
    state = saga_state(order, results={"reserve": reserved}, error=payment_declined())

    result = release_inventory.task(state, CONTEXT)
    again = release_inventory.task(state, CONTEXT)

    assert result["released"] is True
    assert again["action"] == "NOTHING"
    assert (aws.stock("sku-red-mug"), aws.stock("sku-blue-pot")) == (10, 5)
    saga = aws.order("order-1")
    assert (saga["status"], saga["failedStep"]) == ("CANCELLED", "payment")
    assert saga["failureReason"] == "PaymentDeclined: payment of order order-1 declined"
    (cancelled,) = aws.outbox_events("OrderCancelled")
    assert cancelled["failedStep"] == "payment"


def test_release_task_with_nothing_reserved_still_ends_the_saga(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    timeout = {"Error": "States.Timeout", "Cause": "the reserve task timed out"}
    result = release_inventory.task(saga_state(order, results={}, error=timeout), CONTEXT)

    assert result["action"] == "TOMBSTONE"
    saga = aws.order("order-1")
    assert (saga["status"], saga["failedStep"]) == ("CANCELLED", "inventory")
    assert len(aws.outbox_events("OrderCancelled")) == 1
    # The reservation that timed out cannot land afterwards.
    assert reserve_inventory.handler(reserve_event(), CONTEXT)["status"] == "RELEASED"
    assert aws.stock("sku-red-mug") == 10


def test_reserve_access_is_exact(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    aws.seed_stock({"sku-red-mug": 10})
    reserve_inventory.handler(reserve_event("order-rejected"), CONTEXT)  # short
    order = place_sample_order(
        aws, "order-task", items=sample_detail("OrderPlaced")["items"][:1], totalCents=2500
    )
    reserve_inventory.task(saga_state(order), CONTEXT)
    reserve_inventory.handler(reserve_event("order-task"), CONTEXT)  # duplicate: reads
    assert aws_calls.by_env() == reserve_inventory.ACCESS


def test_release_access_is_exact(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    reserve_inventory.handler(reserve_event(), CONTEXT)
    aws_calls.reset()
    release_inventory.task(saga_state(order, error=payment_declined()), CONTEXT)
    release_inventory.handler(eventbridge("PaymentFailed", orderId="order-2"), CONTEXT)
    assert aws_calls.by_env() == release_inventory.ACCESS
