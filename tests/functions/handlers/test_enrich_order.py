"""enrich_order against moto: OrderPlaced -> OrderEnriched, once per OrderPlaced."""

from __future__ import annotations

import pytest

from contracts import OrderEnriched, parse_detail, sample_event
from domain.enrichment import derived_event_id
from eventcraft.envelopes import PoisonRecordError
from handlers import enrich_order
from tests.functions.awsenv import CallRecorder, FakeContext, scan
from tests.functions.handlers.fixtures_side import (
    IDEMPOTENCY,
    Side,
    put_customer,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)


def test_a_known_customer_is_enriched_from_the_customers_table(side: Side) -> None:
    put_customer(
        "customer-0001", tier="gold", name="Ada Lovelace", region="eu-west", creditLimitCents=500000
    )
    event = sample_event("OrderPlaced")

    result = enrich_order.handler(event, FakeContext())

    [detail] = side.details("OrderEnriched")
    assert detail == result
    enriched = parse_detail("OrderEnriched", detail)
    assert isinstance(enriched, OrderEnriched)
    assert (enriched.order_id, enriched.customer_id) == ("order-0001", "customer-0001")
    assert (enriched.customer_tier, enriched.customer_name) == ("gold", "Ada Lovelace")
    assert (enriched.total_cents, enriched.currency) == (7499, "USD")
    assert detail["customerKnown"] is True
    assert detail["customerRegion"] == "eu-west"
    assert detail["creditLimitCents"] == 500000
    # Event time is the order's; the id is derived from the OrderPlaced's.
    assert detail["occurredAt"] == event["detail"]["occurredAt"]
    assert detail["eventId"] == derived_event_id(event["detail"]["eventId"], "OrderEnriched")


def test_an_unknown_customer_is_a_business_outcome_not_a_crash(side: Side) -> None:
    enrich_order.handler(sample_event("OrderPlaced", customerId="customer-404"), FakeContext())

    [detail] = side.details("OrderEnriched")
    assert detail["customerKnown"] is False
    assert detail["customerTier"] == "standard"
    assert detail["customerName"] is None
    assert detail["creditLimitCents"] is None


def test_a_customer_record_beyond_the_contract_bounds_still_enriches(side: Side) -> None:
    """A long name is cut to the contract's 256 characters and a credit limit over the
    largest amount an event carries reads as that amount (#11 points 3 and 6): the order
    is enriched instead of failing its OrderEnriched's validation."""
    put_customer("customer-0001", name="Ada " * 300, creditLimitCents=10**20)

    enrich_order.handler(sample_event("OrderPlaced"), FakeContext())

    [detail] = side.details("OrderEnriched")
    assert len(detail["customerName"]) == 256 and detail["customerName"].endswith("...")
    assert detail["creditLimitCents"] == 5_000_000_000


def test_an_unknown_tier_in_the_record_reads_as_standard(side: Side) -> None:
    put_customer("customer-0001", tier="Diamond")
    enrich_order.handler(sample_event("OrderPlaced"), FakeContext())
    [detail] = side.details("OrderEnriched")
    assert (detail["customerTier"], detail["customerKnown"]) == ("standard", True)


def test_a_duplicate_delivery_publishes_nothing_more_and_answers_the_same(side: Side) -> None:
    put_customer("customer-0001", tier="gold")
    event = sample_event("OrderPlaced")
    first = enrich_order.handler(event, FakeContext())
    # The customer changes between the deliveries: the duplicate still has no effect.
    put_customer("customer-0001", tier="platinum")
    again = enrich_order.handler(event, FakeContext())
    # Republished by the outbox relay: a new envelope id, the same eventId.
    republished = enrich_order.handler({**event, "id": "another-envelope"}, FakeContext())

    assert first == again == republished
    [detail] = side.details("OrderEnriched")
    assert detail["customerTier"] == "gold"
    assert len(scan(IDEMPOTENCY)) == 1  # one record, for the one OrderPlaced


def test_another_order_is_enriched_on_its_own(side: Side) -> None:
    put_customer("customer-0001", tier="gold")
    enrich_order.handler(sample_event("OrderPlaced"), FakeContext())
    enrich_order.handler(
        sample_event("OrderPlaced", orderId="order-0002", eventId="e-2"), FakeContext()
    )
    assert sorted(d["orderId"] for d in side.details("OrderEnriched")) == [
        "order-0001",
        "order-0002",
    ]


def test_a_broken_event_is_poison_and_publishes_nothing(side: Side) -> None:
    event = sample_event("OrderPlaced")
    del event["detail"]["eventId"]
    with pytest.raises(PoisonRecordError, match="eventId"):
        enrich_order.handler(event, FakeContext())
    assert side.published() == []


def test_a_missing_table_setting_names_the_variable(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUSTOMERS_TABLE")
    with pytest.raises(enrich_order.ConfigurationError, match="CUSTOMERS_TABLE"):
        enrich_order.handler(sample_event("OrderPlaced"), FakeContext())
    assert side.published() == []


def test_access_is_what_the_code_calls(
    side_calls: CallRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_customer("customer-0001", tier="gold")
    event = sample_event("OrderPlaced")
    enrich_order.handler(event, FakeContext())
    enrich_order.handler(event, FakeContext())  # duplicate
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")  # a failure: the record is deleted
    with pytest.raises(Exception, match="no-such-bus"):
        enrich_order.handler(sample_event("OrderPlaced", eventId="e-2"), FakeContext())

    called = side_calls.by_env()
    # Powertools reads a record only where DynamoDB does not return it with the failed
    # condition (ReturnValuesOnConditionCheckFailure): granted, never needed here.
    assert (
        called["IDEMPOTENCY_TABLE"] | {"dynamodb:GetItem"}
        == enrich_order.ACCESS["IDEMPOTENCY_TABLE"]
    )
    assert {k: v for k, v in called.items() if k != "IDEMPOTENCY_TABLE"} == {
        k: v for k, v in enrich_order.ACCESS.items() if k != "IDEMPOTENCY_TABLE"
    }
