"""process_payment and refund_payment on moto: charged once, deterministic declines and
transient failures, refunds equal to the charge and once, the Step Functions tasks."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from domain import chance, payments
from domain.payments import Charge, PaymentConfigError, ProviderConfig
from handlers import process_payment, refund_payment, reserve_inventory
from handlers.process_payment import PaymentDeclined, PaymentProviderUnavailable
from saga.store import OrderNotFoundError
from tests.functions.awsenv import CallRecorder
from tests.functions.handlers.conftest import (
    CONTEXT,
    SagaWorld,
    eventbridge,
    place_sample_order,
    saga_state,
    sqs_batch,
)


def reserved(order_id: str = "order-1") -> dict[str, Any]:
    return eventbridge("InventoryReserved", orderId=order_id)


def shipping_failed(order_id: str = "order-1") -> dict[str, Any]:
    return eventbridge("ShippingFailed", orderId=order_id)


def test_charges_the_order_total(aws: SagaWorld) -> None:
    place_sample_order(aws)
    result = process_payment.handler(reserved(), CONTEXT)

    assert (result["status"], result["amountCents"], result["currency"]) == ("CHARGED", 7499, "USD")
    record = aws.item("PAYMENTS_TABLE", "payment#order-1")
    assert (record["status"], record["chargedCents"], record["attempts"]) == ("CHARGED", 7499, 1)
    assert record["paymentId"] == payments.payment_id("order-1") == result["paymentId"]
    (event,) = aws.outbox_events()
    assert event["detail-type"] == "PaymentProcessed"
    assert (event["amountCents"], event["currency"], event["paymentId"]) == (
        7499,
        "USD",
        record["paymentId"],
    )


def test_the_same_event_twice_charges_once(aws: SagaWorld) -> None:
    place_sample_order(aws)
    event = reserved()
    first = process_payment.handler(event, CONTEXT)
    again = process_payment.handler(event, CONTEXT)
    assert (first["created"], again["created"]) == (True, False)
    assert again["eventId"] == first["eventId"]
    assert aws.item("PAYMENTS_TABLE", "payment#order-1")["attempts"] == 1
    assert len(aws.outbox_rows()) == 1


@pytest.mark.usefixtures("serializable_moto")
def test_concurrent_deliveries_charge_once(aws: SagaWorld) -> None:
    place_sample_order(aws)
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(process_payment.handler(reserved(), CONTEXT))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert {r["paymentId"] for r in results} == {payments.payment_id("order-1")}
    assert sum(r["created"] for r in results) == 1
    assert len(aws.outbox_rows("PaymentProcessed")) == 1


def test_a_declined_customer_is_not_charged(aws: SagaWorld) -> None:
    place_sample_order(aws, customerId="declined-ada")
    result = process_payment.handler(reserved(), CONTEXT)
    assert result["status"] == "DECLINED"
    assert aws.item("PAYMENTS_TABLE", "payment#order-1").get("chargedCents") is None
    (event,) = aws.outbox_events()
    assert event["detail-type"] == "PaymentFailed"
    assert event["reason"] == "card declined (customer declined-ada)"
    assert event["amountCents"] == 7499


def test_amounts_over_the_limit_are_declined(
    aws: SagaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENT_DECLINE_OVER_CENTS", "5000")
    place_sample_order(aws)
    assert process_payment.handler(reserved(), CONTEXT)["status"] == "DECLINED"
    assert "exceeds the card limit of 5000" in aws.outbox_events()[0]["reason"]


def test_a_transient_provider_failure_charges_on_retry(
    aws: SagaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENT_TRANSIENT_FAILURE_RATE", "1")
    place_sample_order(aws)
    with pytest.raises(PaymentProviderUnavailable, match="retry the payment"):
        process_payment.handler(reserved(), CONTEXT)
    record = aws.item("PAYMENTS_TABLE", "payment#order-1")
    assert (record["status"], record["attempts"]) == ("PENDING", 1)
    assert aws.outbox_rows() == []

    result = process_payment.handler(reserved(), CONTEXT)  # the retry
    assert result["status"] == "CHARGED"
    assert aws.item("PAYMENTS_TABLE", "payment#order-1")["attempts"] == 2
    assert len(aws.outbox_rows()) == 1


def test_transient_failures_are_deterministic_per_seed() -> None:
    config = ProviderConfig(transient_failure_rate=0.5, seed="seed-1")
    flaky = set()
    for n in range(200):
        charge = Charge(f"order-{n}", "customer", 100, "USD")
        try:
            payments.decide(charge, config, attempt=1)
        except PaymentProviderUnavailable:
            flaky.add(n)
        assert payments.decide(charge, config, attempt=2) == payments.decide(charge, config, 3)
    assert flaky == {n for n in range(200) if chance("seed-1", f"order-{n}") < 0.5}
    assert 60 < len(flaky) < 140


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAYMENT_TRANSIENT_FAILURE_RATE", "often"),
        ("PAYMENT_TRANSIENT_FAILURE_RATE", "2"),
        ("PAYMENT_DECLINE_OVER_CENTS", "1.5"),
    ],
)
def test_bad_provider_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(PaymentConfigError, match=name):
        ProviderConfig.from_env({name: value})


def test_an_unknown_order_is_an_error(aws: SagaWorld) -> None:
    with pytest.raises(OrderNotFoundError, match="order-1"):
        process_payment.handler(reserved(), CONTEXT)


def test_a_poison_record_fails_alone_in_an_sqs_batch(aws: SagaWorld) -> None:
    place_sample_order(aws)
    broken = reserved()
    del broken["detail"]["reservationId"]
    response = process_payment.handler(sqs_batch(broken, reserved()), CONTEXT)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert aws.item("PAYMENTS_TABLE", "payment#order-1")["status"] == "CHARGED"


# --- refunds ------------------------------------------------------------------------------


def test_refund_returns_the_charge_once(aws: SagaWorld) -> None:
    place_sample_order(aws)
    process_payment.handler(reserved(), CONTEXT)
    event = shipping_failed()
    first = refund_payment.handler(event, CONTEXT)
    again = refund_payment.handler(event, CONTEXT)

    assert (first["action"], first["amountCents"]) == ("REFUND", 7499)
    assert again["action"] == "NOTHING"
    record = aws.item("PAYMENTS_TABLE", "payment#order-1")
    assert record["status"] == "REFUNDED"
    assert record["refundedCents"] == record["chargedCents"] == 7499
    (refunded,) = aws.outbox_events("PaymentRefunded")
    assert refunded["amountCents"] == 7499
    assert refunded["paymentId"] == record["paymentId"]
    assert refunded["refundId"] == payments.refund_id("order-1")


def test_refunding_an_order_never_charged_refuses_a_late_charge(aws: SagaWorld) -> None:
    place_sample_order(aws)
    result = refund_payment.handler(shipping_failed(), CONTEXT)
    assert result["action"] == "TOMBSTONE"
    assert aws.outbox_rows() == []

    late = process_payment.handler(reserved(), CONTEXT)
    assert late["status"] == "VOID"
    assert aws.outbox_rows() == []


def test_refunding_a_pending_payment_voids_it(
    aws: SagaWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENT_TRANSIENT_FAILURE_RATE", "1")
    place_sample_order(aws)
    with pytest.raises(PaymentProviderUnavailable):
        process_payment.handler(reserved(), CONTEXT)
    assert refund_payment.handler(shipping_failed(), CONTEXT)["action"] == "VOID"

    retried = process_payment.handler(reserved(), CONTEXT)
    assert retried["status"] == "VOID"
    assert aws.item("PAYMENTS_TABLE", "payment#order-1").get("chargedCents") is None
    assert aws.outbox_rows() == []


def test_a_declined_payment_has_nothing_to_refund(aws: SagaWorld) -> None:
    place_sample_order(aws, customerId="declined-bob")
    process_payment.handler(reserved(), CONTEXT)
    assert refund_payment.handler(shipping_failed(), CONTEXT)["action"] == "NOTHING"
    assert aws.outbox_rows("PaymentRefunded") == []


# --- orchestration tasks -----------------------------------------------------------------


def test_pay_task_records_the_step(aws: SagaWorld) -> None:
    order = place_sample_order(aws)
    result = process_payment.task(saga_state(order), CONTEXT)
    assert (result["status"], result["amountCents"]) == ("CHARGED", 7499)
    saga = aws.order("order-1")
    assert (saga["status"], saga["chargedCents"], saga["paymentId"]) == (
        "PAID",
        7499,
        result["paymentId"],
    )


def test_pay_task_raises_payment_declined(aws: SagaWorld) -> None:
    order = place_sample_order(aws, customerId="declined-eve")
    with pytest.raises(PaymentDeclined, match="card declined"):
        process_payment.task(saga_state(order), CONTEXT)
    saga = aws.order("order-1")
    assert (saga["status"], saga["failedStep"]) == ("CANCELLING", "payment")
    assert aws.outbox_events("OrderCancelled") == []  # not before the release


def test_refund_task_compensates_with_the_caught_error(aws: SagaWorld) -> None:
    aws.seed_stock()
    order = place_sample_order(aws)
    results = {"reserve": reserve_inventory.task(saga_state(order), CONTEXT)}
    results["pay"] = process_payment.task(saga_state(order, results=results), CONTEXT)
    error = {
        "Error": "ShippingUnavailable",
        "Cause": json.dumps({"errorMessage": "no carrier", "errorType": "ShippingUnavailable"}),
    }
    state = saga_state(order, results=results, error=error)

    refund = refund_payment.task(state, CONTEXT)
    assert (refund["refunded"], refund["amountCents"]) == (True, 7499)
    saga = aws.order("order-1")
    assert (saga["status"], saga["failedStep"], saga["refundedCents"]) == (
        "CANCELLING",
        "shipping",
        7499,
    )
    assert refund_payment.task(state, CONTEXT)["action"] == "NOTHING"


def test_pay_access_is_exact(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    order = place_sample_order(aws)
    process_payment.task(saga_state(order), CONTEXT)
    process_payment.handler(reserved(), CONTEXT)  # duplicate: found
    assert aws_calls.by_env() == process_payment.ACCESS


def test_refund_access_is_exact(aws: SagaWorld, aws_calls: CallRecorder) -> None:
    order = place_sample_order(aws)
    process_payment.handler(reserved(), CONTEXT)
    aws_calls.reset()
    refund_payment.task(saga_state(order, error={"Error": "ShippingUnavailable"}), CONTEXT)
    refund_payment.handler(shipping_failed("order-never-charged"), CONTEXT)
    assert aws_calls.by_env() == refund_payment.ACCESS
