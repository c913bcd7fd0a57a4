"""High-value OrderPlaced -> a pending review item + HighValueOrderFlagged.

Entry: `handler(event, context)`, the target of the content-based routing rule
(`domain.enrichment.high_value_pattern(threshold)`: OrderPlaced with totalCents over the
threshold).
Effect: ONE DynamoDB transaction writes the review item (REVIEWS_TABLE, key
`pk` = "review#<orderId>", status PENDING) and the outbox row of HighValueOrderFlagged
(OUTBOX_TABLE); the outbox relay publishes the event. Either both are recorded or
neither: no review without its event, no event without its review.

Idempotency: a conditional write, not Powertools. The review item is put only if it does
not exist, and the outbox row only if its (derived, deterministic) event id is new, in
the same transaction: a duplicate delivery fails the condition, writes nothing and is
answered as a duplicate. No second table, no extra round trip, and it holds across any
number of redeliveries (Powertools' record expires after 24 h; the review does not).

Misrouting: an order not over HIGH_VALUE_THRESHOLD_CENTS raises BelowThresholdError
(non-retryable, nothing written). Ignoring it would hide a rule/handler disagreement on
the threshold and could drop an order that needed review (if the rule is right and this
function's setting is stale); raising sends the event, untouched, to the function's DLQ,
whose alarm shows the disagreement and from where it is redriven once they agree.
The Lambda service retries the async invocation twice first: harmless, nothing is written.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

from contracts import OrderPlaced
from domain.enrichment import BelowThresholdError, flag, review_item
from eventcraft import outbox
from eventcraft.envelopes import from_eventbridge
from eventcraft.settings import ConfigurationError, env

ACCESS: Final[dict[str, frozenset[str]]] = {
    "REVIEWS_TABLE": frozenset({"dynamodb:PutItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
}
REVIEWS_TABLE_ENV: Final = "REVIEWS_TABLE"
OUTBOX_TABLE_ENV: Final = "OUTBOX_TABLE"
THRESHOLD_ENV: Final = "HIGH_VALUE_THRESHOLD_CENTS"

__all__ = ["ACCESS", "BelowThresholdError", "ConfigurationError", "handler", "review"]


@functools.cache
def threshold_cents() -> int:
    """HIGH_VALUE_THRESHOLD_CENTS: integer minor units (stack highValueThreshold x 100)."""
    raw = env(THRESHOLD_ENV)
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigurationError(
            f"{THRESHOLD_ENV}={raw!r} is not a whole number of cents >= 0: set it to the "
            "same threshold the routing rule uses, in minor units"
        )
    return value


def review(order: OrderPlaced) -> dict[str, Any]:
    """The use case; returns {"orderId", "status": "flagged" | "duplicate", "eventId"}."""
    flagged = flag(order, threshold_cents())
    item = outbox.put(
        env(REVIEWS_TABLE_ENV),
        review_item(order, flagged),
        condition="attribute_not_exists(#pk)",
        names={"#pk": "pk"},
    )
    try:
        outbox.write([item], [flagged], outbox_table=env(OUTBOX_TABLE_ENV))
    except outbox.ConditionFailedError:
        # The review (or the event's outbox row) exists: this delivery is a duplicate.
        status = "duplicate"
    else:
        status = "flagged"
    return {"orderId": order.order_id, "status": status, "eventId": flagged.event_id}


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    return review(from_eventbridge(event, model=OrderPlaced))
