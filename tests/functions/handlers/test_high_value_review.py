"""high_value_review against moto: a pending review + HighValueOrderFlagged, once."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import HighValueOrderFlagged, OrderPlaced, parse_detail, sample_event
from domain.enrichment import BelowThresholdError, flag, high_value_pattern
from eventcraft import outbox
from eventcraft.publisher import Publisher
from handlers import high_value_review
from pulumi_eventcraft.event_pattern import matches
from tests.functions.awsenv import CallRecorder, scan, stream_records
from tests.functions.handlers.fixtures_side import (
    BUS,
    OUTBOX,
    REVIEWS,
    Side,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)

THRESHOLD = 100_000


def big_order(**overrides: Any) -> dict[str, Any]:
    items = [{"sku": "sku-gold-watch", "quantity": 1, "unitPriceCents": 250_000}]
    return sample_event("OrderPlaced", items=items, totalCents=250_000, **overrides)


def relay() -> None:
    """What the outbox relay does with the outbox table's stream."""
    outbox.relay(stream_records(OUTBOX), table_name=OUTBOX, publisher=Publisher(BUS))


def test_the_routing_rule_and_the_handler_agree_on_high_value() -> None:
    pattern = high_value_pattern(THRESHOLD)
    assert matches(pattern, big_order())
    assert not matches(pattern, sample_event("OrderPlaced"))  # 7499 cents
    at_threshold = sample_event(
        "OrderPlaced",
        items=[{"sku": "sku-x", "quantity": 1, "unitPriceCents": THRESHOLD}],
        totalCents=THRESHOLD,
    )
    assert not matches(pattern, at_threshold)
    with pytest.raises(BelowThresholdError):
        flag(OrderPlaced.model_validate(at_threshold["detail"]), THRESHOLD)
    assert flag(OrderPlaced.model_validate(big_order()["detail"]), THRESHOLD).total_cents == 250_000


def test_a_high_value_order_gets_a_pending_review_and_its_event(side: Side) -> None:
    result = high_value_review.handler(big_order(), None)

    assert result["status"] == "flagged"
    [review] = scan(REVIEWS)
    assert review["pk"] == "review#order-0001"
    assert review["status"] == "PENDING"
    assert (review["totalCents"], review["thresholdCents"]) == (250_000, THRESHOLD)
    [row] = scan(OUTBOX)
    assert row["detailType"] == "HighValueOrderFlagged"

    relay()
    [detail] = side.details("HighValueOrderFlagged")
    flagged = parse_detail("HighValueOrderFlagged", detail)
    assert isinstance(flagged, HighValueOrderFlagged)
    assert (flagged.order_id, flagged.total_cents, flagged.threshold_cents) == (
        "order-0001",
        250_000,
        THRESHOLD,
    )
    assert flagged.event_id == result["eventId"]


def test_a_duplicate_delivery_writes_and_emits_nothing_more(side: Side) -> None:
    event = big_order()
    assert high_value_review.handler(event, None)["status"] == "flagged"
    assert high_value_review.handler(event, None)["status"] == "duplicate"
    assert high_value_review.handler({**event, "id": "republished"}, None)["status"] == "duplicate"

    assert len(scan(REVIEWS)) == 1
    assert len(scan(OUTBOX)) == 1
    relay()
    assert len(side.details("HighValueOrderFlagged")) == 1


def test_a_misrouted_standard_order_is_rejected_without_effect(side: Side) -> None:
    with pytest.raises(BelowThresholdError, match="HIGH_VALUE_THRESHOLD_CENTS"):
        high_value_review.handler(sample_event("OrderPlaced"), None)
    assert scan(REVIEWS) == []
    assert scan(OUTBOX) == []


def test_a_bad_threshold_setting_says_what_to_set(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIGH_VALUE_THRESHOLD_CENTS", "1000.50")
    with pytest.raises(high_value_review.ConfigurationError, match="HIGH_VALUE_THRESHOLD_CENTS"):
        high_value_review.handler(big_order(), None)
    assert scan(REVIEWS) == []


def test_access_is_what_the_code_calls(side_calls: CallRecorder) -> None:
    high_value_review.handler(big_order(), None)
    high_value_review.handler(big_order(), None)  # duplicate
    assert side_calls.by_env() == high_value_review.ACCESS


def test_every_order_an_order_may_total_is_routed_by_every_threshold_allowed() -> None:
    """#11 point 6: EventBridge compares numbers up to 5.0e9 only; an order of 6e9 cents
    skipped the review. Orders now total at most MAX_CENTS and the stack's threshold stays
    below it, so the largest order reaches review under the largest threshold, and an
    event over the bound is not an OrderPlaced at all."""
    from pydantic import ValidationError

    from contracts import MAX_CENTS
    from order_saga.config import OrderSagaConfig

    highest = OrderSagaConfig(highValueThreshold=(MAX_CENTS - 1) / 100)
    pattern = high_value_pattern(highest.high_value_threshold_cents)
    items = [{"sku": "sku-gold-bar", "quantity": 2, "unitPriceCents": MAX_CENTS // 2}]
    largest = sample_event("OrderPlaced", items=items, totalCents=MAX_CENTS)
    assert matches(pattern, largest)
    with pytest.raises(ValidationError, match="less than or equal to 5000000000"):
        over = [{"sku": "sku-gold-bar", "quantity": 3, "unitPriceCents": MAX_CENTS // 2}]
        sample_event("OrderPlaced", items=over, totalCents=3 * (MAX_CENTS // 2))
