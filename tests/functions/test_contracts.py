"""Event contracts: registry, upcasting, errors, JSON schemas (draft 4) and samples."""

from __future__ import annotations

import json
from decimal import Decimal

import jsonschema
import pytest
from pydantic import ValidationError

import contracts
from contracts import (
    REGISTRY,
    AllChecksComplete,
    ContractError,
    OrderPlaced,
    UnknownEventTypeError,
    UnknownEventVersionError,
    json_schemas,
    parse_detail,
    sample_detail,
    sample_event,
)

SAGA_EVENTS = {
    "OrderPlaced",
    "InventoryReserved",
    "InventoryReservationFailed",
    "PaymentProcessed",
    "PaymentFailed",
    "OrderShipped",
    "ShippingFailed",
    "PaymentRefunded",
    "InventoryReleased",
    "OrderCancelled",
    "OrderCompleted",
    "OrderEnriched",
    "HighValueOrderFlagged",
    "AllChecksComplete",
    "CheckCompleted",
}


def v1_order_placed() -> dict[str, object]:
    detail = sample_detail("OrderPlaced")
    del detail["currency"]
    detail["version"] = "1"
    return detail


def test_registry_has_every_saga_event_with_stable_names() -> None:
    assert set(REGISTRY) == SAGA_EVENTS
    for detail_type, model in REGISTRY.items():
        assert detail_type == model.DETAIL_TYPE
        assert model.SOURCE.startswith("order-saga.")
        assert contracts.version_of(model) in {"1", "2"}
    assert OrderPlaced.SOURCE == "order-saga.orders"
    assert REGISTRY["InventoryReserved"].SOURCE == "order-saga.inventory"


@pytest.mark.parametrize("detail_type", sorted(SAGA_EVENTS))
def test_sample_round_trips_through_the_consumer_path(detail_type: str) -> None:
    detail = sample_detail(detail_type)
    assert json.loads(json.dumps(detail)) == detail  # JSON-native, nothing to coerce
    assert parse_detail(detail_type, detail).to_detail() == detail
    assert sample_detail(detail_type) == detail  # deterministic


def test_wire_format_is_camel_case_with_integer_cents() -> None:
    detail = sample_detail("OrderPlaced")
    assert detail["version"] == "2"
    assert detail["totalCents"] == 7499
    assert detail["items"][0] == {"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}
    assert detail["occurredAt"] == "2025-01-15T10:30:00Z"


def test_order_placed_v1_is_upcast_with_the_default_currency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEFAULT_CURRENCY", raising=False)
    v1 = v1_order_placed()
    event = parse_detail("OrderPlaced", v1)
    assert isinstance(event, OrderPlaced)
    assert (event.version, event.currency) == ("2", "USD")
    assert event.event_id == v1["eventId"]  # identity survives the upcast
    assert event.total_cents == v1["totalCents"]

    monkeypatch.setenv("DEFAULT_CURRENCY", "EUR")
    assert parse_detail("OrderPlaced", v1).currency == "EUR"


def test_a_detail_without_version_is_read_as_version_1() -> None:
    v1 = v1_order_placed()
    del v1["version"]
    assert parse_detail("OrderPlaced", v1).version == "2"


def test_a_bad_default_currency_says_which_setting_to_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEFAULT_CURRENCY", "dollars")
    with pytest.raises(ContractError, match="DEFAULT_CURRENCY='dollars'"):
        parse_detail("OrderPlaced", v1_order_placed())


def test_unknown_version_is_a_non_retryable_contract_error() -> None:
    detail = sample_detail("OrderPlaced") | {"version": "3"}
    with pytest.raises(UnknownEventVersionError) as caught:
        parse_detail("OrderPlaced", detail)
    assert isinstance(caught.value, ContractError)
    assert caught.value.retryable is False
    assert "'3'" in str(caught.value)
    assert "'1', '2'" in str(caught.value)  # what this consumer can read

    with pytest.raises(UnknownEventVersionError):
        parse_detail("PaymentFailed", sample_detail("PaymentFailed") | {"version": "0"})


def test_unknown_detail_type() -> None:
    with pytest.raises(UnknownEventTypeError, match="'OrderTeleported'"):
        parse_detail("OrderTeleported", {})


def test_received_events_must_carry_their_identity() -> None:
    detail = sample_detail("OrderShipped")
    del detail["eventId"]
    with pytest.raises(ValidationError, match="eventId is the idempotency key"):
        parse_detail("OrderShipped", detail)
    # Constructing an event (producer side) fills it.
    shipped = contracts.OrderShipped(
        order_id="o-1", customer_id="c-1", shipment_id="s-1", carrier="UPS", tracking_number="1Z"
    )
    assert shipped.event_id
    assert shipped.occurred_at.tzinfo is not None


def test_money_is_exact() -> None:
    detail = sample_detail("PaymentProcessed")
    # DynamoDB streams give numbers back as Decimal: whole amounts are accepted.
    assert (
        parse_detail("PaymentProcessed", detail | {"amountCents": Decimal(7499)}).amount_cents
        == 7499
    )
    with pytest.raises(ValidationError):
        parse_detail("PaymentProcessed", detail | {"amountCents": 74.99})
    with pytest.raises(ValidationError):
        parse_detail("PaymentProcessed", detail | {"amountCents": -1})
    with pytest.raises(ValidationError):
        parse_detail("PaymentProcessed", detail | {"currency": "usd"})


def test_order_total_must_be_the_sum_of_its_lines() -> None:
    with pytest.raises(ValidationError, match="totalCents 1 != sum"):
        sample_detail("OrderPlaced", totalCents=1)


def test_events_are_frozen_facts() -> None:
    event = parse_detail("OrderCompleted", sample_detail("OrderCompleted"))
    with pytest.raises(ValidationError):
        event.order_id = "other"  # type: ignore[misc]


def test_tolerant_reader_ignores_fields_it_does_not_know() -> None:
    detail = sample_detail("ShippingFailed") | {"newOptionalField": 1}
    assert "newOptionalField" not in parse_detail("ShippingFailed", detail).to_detail()


def test_all_checks_complete_derives_all_passed() -> None:
    failed = {"passed": False, "reason": "credit limit", "quoteCents": None}
    detail = sample_detail("AllChecksComplete", credit=failed)
    assert detail["allPassed"] is False
    # A sender's own allPassed cannot contradict the results.
    event = parse_detail("AllChecksComplete", detail | {"allPassed": True})
    assert isinstance(event, AllChecksComplete)
    assert event.all_passed is False
    assert set(contracts.CHECKS) == {"inventory", "credit", "shippingQuote"}


@pytest.mark.parametrize("detail_type", sorted(SAGA_EVENTS))
def test_json_schema_is_draft4_and_accepts_what_producers_emit(detail_type: str) -> None:
    schema = json_schemas()[detail_type]
    jsonschema.Draft4Validator.check_schema(schema)
    validator = jsonschema.Draft4Validator(schema)
    validator.validate(sample_event(detail_type))
    text = json.dumps(schema)
    for newer_keyword in ('"$defs"', '"const"', '"examples"', '"readOnly"'):
        assert newer_keyword not in text
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["properties"]["detail-type"]["enum"] == [detail_type]
    assert schema["properties"]["source"]["enum"] == [REGISTRY[detail_type].SOURCE]


def test_json_schema_rejects_what_breaks_the_contract() -> None:
    validator = jsonschema.Draft4Validator(json_schemas()["OrderPlaced"])
    event = sample_event("OrderPlaced")
    del event["detail"]["currency"]  # a v1 detail is not the current contract
    assert not validator.is_valid(event)
    event = sample_event("OrderPlaced")
    event["detail"]["items"][0]["quantity"] = 0  # exclusiveMinimum, draft 4 style
    assert not validator.is_valid(event)
    event = sample_event("OrderPlaced")
    event["source"] = "someone-else"
    assert not validator.is_valid(event)


def test_detail_only_schemas() -> None:
    schema = json_schemas(envelope=False)["PaymentRefunded"]
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema).validate(sample_detail("PaymentRefunded"))


def test_sample_overrides_are_validated() -> None:
    flagged = sample_detail("HighValueOrderFlagged", totalCents=500000)
    assert flagged["totalCents"] == 500000
    with pytest.raises(ValidationError):
        sample_detail("OrderCancelled", failedStep="teleport")


def test_s3_object_created_parses_the_aws_shape() -> None:
    detail = {
        "version": "0",
        "bucket": {"name": "imports"},
        "object": {"key": "orders/2025-01-15.jsonl", "size": 1024, "etag": "abc"},
        "request-id": "r-1",
        "requester": "123456789012",
        "reason": "PutObject",
    }
    created = contracts.S3ObjectCreated.model_validate(detail)
    assert (created.bucket.name, created.object.key, created.request_id) == (
        "imports",
        "orders/2025-01-15.jsonl",
        "r-1",
    )
    assert "Object Created" not in REGISTRY  # AWS's contract, not ours


# --- the customer: on every event, set by every producer, optional only on read ---------------

# The types that carried customerId from their first version: required on read too.
ALWAYS_WITH_CUSTOMER = {"OrderPlaced", "OrderEnriched", "HighValueOrderFlagged"}


@pytest.mark.parametrize("detail_type", sorted(SAGA_EVENTS))
def test_every_event_carries_its_customer(detail_type: str) -> None:
    model = REGISTRY[detail_type]
    assert issubclass(model, contracts.OrderEvent)
    detail = sample_detail(detail_type)
    assert detail["customerId"] == "customer-0001"
    event = parse_detail(detail_type, detail)
    assert isinstance(event, contracts.OrderEvent)
    assert event.customer_id == "customer-0001"
    # The registry's schema: a required string (what producers emit).
    schema = json_schemas(envelope=False)[detail_type]
    assert "customerId" in schema["required"]
    assert schema["properties"]["customerId"]["type"] == "string"
    assert "default" not in schema["properties"]["customerId"]


@pytest.mark.parametrize("detail_type", sorted(SAGA_EVENTS))
def test_a_producer_cannot_leave_the_customer_out(detail_type: str) -> None:
    without = sample_detail(detail_type)
    del without["customerId"]
    model = REGISTRY[detail_type]
    with pytest.raises(ValidationError, match=r"customerId|customer_id"):
        model.model_validate(without)  # no RECEIVED context: a producer building it
    with pytest.raises(ValidationError):
        model.model_validate(sample_detail(detail_type) | {"customerId": ""})


@pytest.mark.parametrize("detail_type", sorted(SAGA_EVENTS - ALWAYS_WITH_CUSTOMER))
def test_an_archived_event_without_customer_still_parses(detail_type: str) -> None:
    """Replaying the archive: events published before they carried customerId."""
    archived = sample_detail(detail_type)
    del archived["customerId"]
    event = parse_detail(detail_type, archived)
    assert isinstance(event, contracts.OrderEvent)
    assert event.customer_id is None
    assert event.event_id == archived["eventId"]


@pytest.mark.parametrize("detail_type", sorted(ALWAYS_WITH_CUSTOMER))
def test_events_that_always_carried_the_customer_require_it_on_read(detail_type: str) -> None:
    detail = sample_detail(detail_type)
    del detail["customerId"]
    with pytest.raises(ValidationError, match="customerId"):
        parse_detail(detail_type, detail)
    upcast = parse_detail("OrderPlaced", v1_order_placed())  # v1 carried it too
    assert isinstance(upcast, OrderPlaced)
    assert upcast.customer_id == "customer-0001"
