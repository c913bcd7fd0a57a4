"""Side information about an order: customer enrichment and high-value routing.

Pure: no boto3. The handlers `enrich_order` and `high_value_review` read the tables and
publish; the decisions (what an unknown customer is, what "high value" means, what a
review looks like) live here.

Customer record (customers table, key `customerId` S), as the enrichment reads it:
    customerId        the customer's id (the order's `customerId`)
    tier              "standard" | "gold" | "platinum" (anything else reads as "standard")
    name              optional display name
    region            optional, e.g. "eu-west"
    creditLimitCents  optional integer, minor units of the order's currency (credit check);
                      a limit over contracts.MAX_CENTS reads as MAX_CENTS (no order is larger)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, get_args

from contracts import MAX_CENTS, CustomerTier, HighValueOrderFlagged, OrderEnriched, OrderPlaced

TIERS: Final[frozenset[str]] = frozenset(get_args(CustomerTier))
# The tier an unknown customer, or one whose record holds an unknown tier, is served as:
# the most conservative one (no perks granted on data we do not have).
FALLBACK_TIER: Final[CustomerTier] = "standard"
_DERIVED_NAMESPACE: Final = uuid.UUID("6f1c8a52-4c57-4d0e-9d6b-3c1f3b2f6a10")


def derived_event_id(cause_event_id: str, role: str) -> str:
    """The id of the event that `role` emits in reaction to event `cause_event_id`.

    Deterministic: a redelivered cause yields the same id, so even if a duplicate slips
    past a handler's own idempotency, consumers (which deduplicate on eventId) see it once.
    """
    return str(uuid.uuid5(_DERIVED_NAMESPACE, f"{role}/{cause_event_id}"))


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    tier: CustomerTier
    name: str | None = None
    region: str | None = None
    credit_limit_cents: int | None = None


def _tier(value: Any) -> CustomerTier:
    text = str(value).strip().lower() if value is not None else ""
    for tier in get_args(CustomerTier):
        if text == tier:
            return tier
    return FALLBACK_TIER


def _optional_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _credit_limit(value: Any) -> int | None:
    # Events carry amounts up to MAX_CENTS; a larger limit allows the same orders.
    limit = _optional_int(value)
    return None if limit is None else min(limit, MAX_CENTS)


def customer_from_item(item: Mapping[str, Any] | None) -> Customer | None:
    """A customer from a deserialised customers-table item (numbers may be Decimal);
    None when there is no item. Malformed optional fields read as absent and an unknown
    tier as FALLBACK_TIER: one bad attribute must not stop every order of that customer."""
    if not item or not item.get("customerId"):
        return None
    name = item.get("name")
    region = item.get("region")
    return Customer(
        customer_id=str(item["customerId"]),
        tier=_tier(item.get("tier")),
        name=str(name) if name else None,
        region=str(region) if region else None,
        credit_limit_cents=_credit_limit(item.get("creditLimitCents")),
    )


def enrich(order: OrderPlaced, customer: Customer | None) -> OrderEnriched:
    """The OrderEnriched of `order`, given its customer's record (None: unknown)."""
    known = customer is not None
    return OrderEnriched(
        event_id=derived_event_id(order.event_id, OrderEnriched.DETAIL_TYPE),
        occurred_at=order.occurred_at,
        order_id=order.order_id,
        customer_id=order.customer_id,
        customer_tier=customer.tier if customer is not None else FALLBACK_TIER,
        customer_name=customer.name if customer is not None else None,
        total_cents=order.total_cents,
        currency=order.currency,
        customer_known=known,
        customer_region=customer.region if customer is not None else None,
        credit_limit_cents=customer.credit_limit_cents if customer is not None else None,
    )


# --- high-value routing ---------------------------------------------------------------


class BelowThresholdError(ValueError):
    """An order at or under the high-value threshold reached the review handler.

    Not retryable: the same order is rejected the same way every time. It means the
    routing rule and the handler disagree on the threshold (a deployment mid-way, or a
    mis-built rule): the event ends in the function's DLQ, whose alarm calls an operator.
    """

    retryable: bool = False

    def __init__(self, order_id: str, total_cents: int, threshold_cents: int) -> None:
        self.order_id = order_id
        super().__init__(
            f"order {order_id}: totalCents {total_cents} is not over the high-value "
            f"threshold {threshold_cents}: it was routed here by mistake. Make the routing "
            "rule's pattern (domain.enrichment.high_value_pattern) and the function's "
            "HIGH_VALUE_THRESHOLD_CENTS use the same threshold, then redrive the DLQ."
        )


def is_high_value(total_cents: int, threshold_cents: int) -> bool:
    """High value means strictly over the threshold (the routing rule's `>`)."""
    return total_cents > threshold_cents


def high_value_pattern(threshold_cents: int) -> dict[str, Any]:
    """The EventBridge pattern routing high-value orders to review: the same test as
    `is_high_value`, so the rule and the handler cannot drift apart."""
    return {
        "source": [OrderPlaced.SOURCE],
        "detail-type": [OrderPlaced.DETAIL_TYPE],
        "detail": {"totalCents": [{"numeric": [">", threshold_cents]}]},
    }


REVIEW_PK_PREFIX: Final = "review#"
REVIEW_PENDING: Final = "PENDING"


def review_key(order_id: str) -> str:
    return f"{REVIEW_PK_PREFIX}{order_id}"


def flag(order: OrderPlaced, threshold_cents: int) -> HighValueOrderFlagged:
    """The HighValueOrderFlagged of a high-value order; raises BelowThresholdError
    for an order that is not over the threshold."""
    if not is_high_value(order.total_cents, threshold_cents):
        raise BelowThresholdError(order.order_id, order.total_cents, threshold_cents)
    return HighValueOrderFlagged(
        event_id=derived_event_id(order.event_id, HighValueOrderFlagged.DETAIL_TYPE),
        order_id=order.order_id,
        customer_id=order.customer_id,
        total_cents=order.total_cents,
        currency=order.currency,
        threshold_cents=threshold_cents,
    )


def review_item(order: OrderPlaced, flagged: HighValueOrderFlagged) -> dict[str, Any]:
    """The reviews-table item of a flagged order (plain values; key `pk`)."""
    return {
        "pk": review_key(order.order_id),
        "orderId": order.order_id,
        "customerId": order.customer_id,
        "totalCents": order.total_cents,
        "currency": order.currency,
        "thresholdCents": flagged.threshold_cents,
        "status": REVIEW_PENDING,
        "orderEventId": order.event_id,
        "flaggedAt": flagged.occurred_at.isoformat(),
    }
