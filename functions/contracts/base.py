"""What the order saga's contracts share: money, currency, sources and `OrderEvent`.

The generic machinery (Event, errors, Registry) is `eventcraft.contracts`.
Pure: no AWS SDK here. The Pulumi program imports this package too (schema registry).
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Final

from pydantic import Field, StringConstraints, ValidationInfo, WithJsonSchema, model_validator

from eventcraft.contracts import ContractError, Event

# Money is integer minor units of the event's `currency` (cents for USD/EUR, yen for JPY),
# never float. Why not Decimal: pydantic serializes Decimal to a JSON *string*, and
# EventBridge numeric matching (`{"numeric": [">", 100000]}`) only works on JSON numbers;
# JSON numbers with a fraction come back as float in every consumer that uses json.loads.
# Integers are exact, are numbers in JSON, match numerically, and boto3 writes them to
# DynamoDB as N (it is float that DynamoDB rejects; a DynamoDB stream gives them back as
# Decimal('1999'), which these models accept and turn back into int).
Cents = Annotated[int, Field(ge=0, description="Amount in minor units of `currency`.")]
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(description="ISO 4217 currency code, e.g. USD."),
]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]

DEFAULT_CURRENCY_ENV: Final = "DEFAULT_CURRENCY"
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class Source:
    """The `source` of each producer of the saga (EventBridge `source` field)."""

    ORDERS: Final = "order-saga.orders"
    INVENTORY: Final = "order-saga.inventory"
    PAYMENTS: Final = "order-saga.payments"
    SHIPPING: Final = "order-saga.shipping"
    ENRICHMENT: Final = "order-saga.enrichment"
    ROUTING: Final = "order-saga.routing"
    CHECKS: Final = "order-saga.checks"


def default_currency() -> str:
    """The stack's default currency: env DEFAULT_CURRENCY, "USD" when unset."""
    value = os.environ.get(DEFAULT_CURRENCY_ENV) or "USD"
    if not _CURRENCY_RE.match(value):
        raise ContractError(
            f"{DEFAULT_CURRENCY_ENV}={value!r} is not an ISO 4217 code (three capital "
            "letters): fix the stack config that sets it on the function."
        )
    return value


# The customer of an order event, as a wire type: producers always emit a string (the
# JSON schema says so); `None` exists only for events READ from before the field existed.
OptionalCustomerId = Annotated[
    NonEmptyStr | None,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "description": "The order's customer (the activity feed's partition key).",
        }
    ),
]


def _no_default(schema: dict[str, Any]) -> None:
    """Drop `default` from a field's schema (producers never rely on it)."""
    schema.pop("default", None)


class OrderEvent(Event):
    """An event about one order: `order_id` is the saga's correlation id, `customer_id`
    the order's customer (the activity feed is partitioned by it).

    `customer_id` is REQUIRED WHEN PRODUCING and optional when reading. Only OrderPlaced,
    OrderEnriched and HighValueOrderFlagged carried it from their first version (they
    narrow it to required on read too); the other types gained it later, and those
    already in the archive must still parse when replayed (`parse_detail`, validation
    context RECEIVED), so on read it may be None and a consumer that needs it falls back
    to the order's record. Constructing an event (no RECEIVED context: a producer)
    without it fails, and a test runs every producer of the repo and checks the customer
    of each event it emits.
    """

    order_id: NonEmptyStr
    customer_id: OptionalCustomerId = Field(default=None, json_schema_extra=_no_default)

    @model_validator(mode="after")
    def _producers_set_the_customer(self, info: ValidationInfo) -> OrderEvent:
        received = bool(info.context and info.context.get("received"))
        if self.customer_id is None and not received:
            raise ValueError(
                f"{type(self).__name__} of order {self.order_id} has no customerId: every "
                "producer must set it (take it from the incoming event or the order's "
                "record); only events read from before it existed may lack it"
            )
        return self
