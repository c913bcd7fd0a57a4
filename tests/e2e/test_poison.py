"""Poison events: malformed or contract-breaking input ends in a DLQ that names it, is
retried a bounded number of times, and does not hold up a good order beside it."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import (
    DECLINED_PREFIX,
    E2E,
    BusEvent,
    assert_invariants,
    e2e_session,
    max_receive_count,
    nonempty_dlqs,
    only,
    sqs_bodies,
)

NOT_JSON = "{not json"
# The side flows every OrderPlaced goes to, each an asynchronous Lambda target with an
# on-failure destination (output names of the DLQs).
SIDE_FLOW_DLQS = (
    "check-credit-async",
    "check-inventory-async",
    "check-shipping-quote-async",
    "enrich-order-async",
    "record-history-async",
)


@pytest.fixture(scope="module")
def e2e() -> Iterator[E2E]:
    # Choreography: OrderPlaced goes through the `reserve` SQS work queue (batches).
    with e2e_session("choreography") as started:
        yield started


def test_a_detail_that_is_not_json_is_refused_by_the_bus(e2e: E2E) -> None:
    """PutEvents refuses a detail that is not JSON (as AWS does): it never reaches a
    rule, so nothing downstream can choke on it."""
    before = len(e2e.bus.events)
    with pytest.raises(RuntimeError, match="MalformedDetail"):
        e2e.session.put_event("OrderPlaced", NOT_JSON)
    assert len(e2e.bus.events) == before


def test_poison_messages_are_dead_lettered_beside_a_good_order(e2e: E2E) -> None:
    """An OrderPlaced without orderId on the bus and a non-JSON message on the reserve
    queue, arriving together with a good order's OrderPlaced: the good order completes
    (the poison does not fail the batch), each poison is received once and sent by the
    consumer to the reserve queue's DLQ with its error (it would fail every time: #11
    point 3, a DLQ message says why it is there), the side flows dead-letter the bad
    event with the contract error, and the run ends."""
    session = e2e.session
    sku = e2e.sku(5)
    good_id = e2e.place("good-customer", sku, 1)
    poison_event_id = str(uuid.uuid4())
    poison_detail: dict[str, Any] = {
        "eventId": poison_event_id,
        "occurredAt": "2026-11-27T00:00:00Z",
        "version": "2",
        "customerId": "poison-customer",
        "items": [{"sku": sku, "quantity": 1, "unitPriceCents": 500}],
        "totalCents": 500,
        "currency": "USD",
    }
    poison_bus_ids: list[str] = []
    scheduled: list[str] = []

    def put_poison() -> None:
        session.send_message("reserve", NOT_JSON)
        poison_bus_ids.append(session.put_event("OrderPlaced", poison_detail))

    def beside_the_good_order(event: BusEvent) -> None:
        # Put the poison the moment the good order's OrderPlaced is on the bus.
        if event.order_id == good_id and event.detail_type == "OrderPlaced" and not scheduled:
            scheduled.append(event.event_id)
            session.scheduler.call_soon("e2e: put poison", put_poison)

    e2e.bus.hooks.append(beside_the_good_order)
    try:
        # Bounded: a poison retried forever raises NotQuietError instead of returning.
        e2e.run(max_virtual_seconds=6 * 3600, max_real_seconds=120)
    finally:
        e2e.bus.hooks.remove(beside_the_good_order)
    bus_event_id = only(poison_bus_ids)

    assert e2e.order(good_id)["status"] == "COMPLETED"
    assert session.stock()[sku] == 4

    def label(body: Any) -> str:
        detail = body.get("detail", {}) if isinstance(body, dict) else {}
        if body == NOT_JSON:
            return "not-json"
        if detail.get("eventId") == poison_event_id:
            return "no-orderId"
        return "good" if detail.get("orderId") == good_id else "other"

    invocations = e2e.calls.of("reserve-inventory")
    batches = [[label(b) for b in sqs_bodies(i)] for i in invocations]
    poisons = {"not-json", "no-orderId"}
    [(shared, labels)] = [(i, b) for i, b in zip(invocations, batches, strict=True) if "good" in b]
    assert poisons & set(labels), f"the good order's batch holds no poison: {labels}"
    # That batch succeeded: the poison went to the DLQ, nothing is retried.
    assert shared.result.error_type is None, shared.text
    assert shared.result.payload["batchItemFailures"] == []
    assert max_receive_count(session, "reserve") > 1
    deliveries = Counter(label for batch in batches for label in batch)
    assert deliveries == {"good": 1, "not-json": 1, "no-orderId": 1}

    dead = {label(m["body"]): m["attributes"] for m in session.dlq_messages("reserve-dlq")}
    assert set(dead) == poisons
    assert dead["not-json"]["ERROR_CODE"] == "PoisonRecordError"
    assert "payload is not JSON" in dead["not-json"]["ERROR_MESSAGE"]
    assert "orderId: Field required" in dead["no-orderId"]["ERROR_MESSAGE"]
    assert dead["no-orderId"]["SOURCE_QUEUE_ARN"] == session.outputs["queues"]["reserve"]["arn"]

    assert set(nonempty_dlqs(session)) == {"reserve-dlq", *SIDE_FLOW_DLQS}
    for dlq in SIDE_FLOW_DLQS:
        message = only(session.dlq_messages(dlq))["body"]
        assert message["requestPayload"]["id"] == bus_event_id
        assert message["requestContext"]["condition"] == "RetriesExhausted"
        assert message["requestContext"]["approximateInvokeCount"] == 3
        error = message["responsePayload"]
        assert error["errorType"] == "PoisonRecordError", error
        assert "orderId" in error["errorMessage"], error
    assert_invariants(session)


def test_reasons_longer_than_the_contract_allows_are_cut_and_every_order_ends(e2e: E2E) -> None:
    """#11 point 3: a 240-character unknown SKU, twelve unknown SKUs, or a declined
    customer whose id is 250 characters long made a failure event's `reason` longer than
    its contract's 256 characters; the event failed its own validation, the message went
    to a DLQ (without an error text), and the orders stayed PLACED or RESERVED, holding
    stock. Reasons are cut to the limit: each order is cancelled and its stock released."""
    session = e2e.session
    sku = e2e.sku(10)
    before = nonempty_dlqs(session)
    long_sku = "sku-" + "x" * 236
    twelve = [f"sku-unknown-{n:02d}-{'y' * 20}" for n in range(12)]
    declined = DECLINED_PREFIX + "z" * 241
    orders = {
        "long-sku": session.place_order("customer-long", [(sku, 1, 100), (long_sku, 1, 100)]),
        "twelve": session.place_order("customer-twelve", [(s, 1, 100) for s in twelve]),
        "declined": session.place_order(declined, [(sku, 2, 100)]),
    }
    ids = {name: str(answer["orderId"]) for name, answer in orders.items()}

    e2e.run(max_virtual_seconds=6 * 3600, max_real_seconds=300)

    assert {name: e2e.order(i)["status"] for name, i in ids.items()} == dict.fromkeys(
        ids, "CANCELLED"
    )
    assert session.stock()[sku] == 10  # the declined order's reservation was released
    reasons = {
        (name, event.detail_type): str(event.detail["reason"])
        for name, order_id in ids.items()
        for event in e2e.bus.of(order_id)
        if "reason" in event.detail
    }
    assert set(reasons) >= {
        ("long-sku", "InventoryReservationFailed"),
        ("twelve", "InventoryReservationFailed"),
        ("declined", "PaymentFailed"),
        ("declined", "OrderCancelled"),
    }
    assert all(len(reason) <= 256 for reason in reasons.values()), reasons
    assert reasons[("twelve", "InventoryReservationFailed")].endswith("...")
    assert reasons[("declined", "PaymentFailed")].startswith("card declined (customer declined-z")
    assert nonempty_dlqs(session) == before  # nothing more dead-lettered
    assert_invariants(session)
