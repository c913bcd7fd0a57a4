"""OrderPlaced -> OrderEnriched: the order plus what the customers table knows.

Entry: `handler(event, context)`, an EventBridge rule target (OrderPlaced).
Effect: reads the customer (GetItem on CUSTOMERS_TABLE, key `customerId`), publishes one
OrderEnriched (see domain.enrichment.enrich). An unknown customer is a business
outcome: OrderEnriched with `customerKnown: false` and the fallback tier.

Idempotency: Powertools, keyed on the OrderPlaced's eventId. The effect is a publish,
which no conditional write can guard, and the customer record may change between two
deliveries: the first result is stored and replayed to duplicates, so one OrderEnriched
goes out, with one content. Its eventId is derived from the OrderPlaced's, so even a
duplicate that slips through (the record write failed after the publish) is the same
event to consumers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from contracts import OrderPlaced
from domain.enrichment import enrich
from eventcraft.envelopes import from_eventbridge
from eventcraft.publisher import Publisher
from eventcraft.settings import ConfigurationError
from saga.customers import load_customer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

ACCESS: Final[dict[str, frozenset[str]]] = {
    "CUSTOMERS_TABLE": frozenset({"dynamodb:GetItem"}),
    "EVENT_BUS_NAME": frozenset({"events:PutEvents"}),
    "IDEMPOTENCY_TABLE": frozenset(
        {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    ),
}
__all__ = ["ACCESS", "ConfigurationError", "enrich_order", "handler"]


def enrich_order(order: OrderPlaced) -> dict[str, Any]:
    """The use case: read the customer, publish OrderEnriched; returns its detail."""
    enriched = enrich(order, load_customer(order.customer_id))
    _publisher().publish([enriched])
    return enriched.to_detail()


@functools.cache
def _publisher() -> Publisher:
    return Publisher()


@functools.cache
def _idempotency() -> tuple[IdempotencyConfig, Callable[..., dict[str, Any]]]:
    """`enrich_order` made idempotent on the OrderPlaced's eventId, built on first use
    (Powertools is imported and the table name read then, not at cold start)."""
    from eventcraft import idempotency

    config = idempotency.config(idempotency.CONTRACT_EVENT_ID)
    once = idempotency.idempotent_function(
        data_keyword_argument="order", config=config, persistence_store=idempotency.persistence()
    )(enrich_order)
    return config, once


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    order = from_eventbridge(event, model=OrderPlaced)
    config, once = _idempotency()
    if context is not None:
        config.register_lambda_context(context)
    return once(order=order)
