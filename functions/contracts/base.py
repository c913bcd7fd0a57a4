"""What the order saga's contracts share: money, currency, sources and `OrderEvent`.

The generic machinery (Event, errors, Registry) is `eventcraft.contracts`.
Pure: no AWS SDK here. The Pulumi program imports this package too (schema registry).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from eventcraft.contracts import ContractError, Event, Truncate

# The largest amount an event carries, in minor units. EventBridge numeric matching only
# compares numbers within +-5.0e9 (a rule on `totalCents` would silently miss a larger
# one), and every amount stays far within DynamoDB's 38 digits.
MAX_CENTS: Final = 5_000_000_000
# Units of one SKU in one order (split larger orders): bounds every line's arithmetic.
MAX_QUANTITY: Final = 10_000
# Free text (reasons) and ids in events, in characters.
MAX_TEXT: Final = 256

# ISO 4217 codes of the currencies an order can be paid in: the active codes, without
# the fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW), precious metals, bond
# units, SDR, and the testing / no-currency codes (XTS, XXX).
ISO_4217: Final = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
    BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
    MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG ZWL""".split()  # noqa: SIM905 - a table, kept compact
)


def _iso_currency(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError(
            f"{code!r} is not an ISO 4217 currency code an order can be paid in (e.g. USD, "
            "EUR, JPY)"
        )
    return code


# Money is integer minor units of the event's `currency` (cents for USD/EUR, yen for JPY),
# never float. Why not Decimal: pydantic serializes Decimal to a JSON *string*, and
# EventBridge numeric matching (`{"numeric": [">", 100000]}`) only works on JSON numbers;
# JSON numbers with a fraction come back as float in every consumer that uses json.loads.
# Integers are exact, are numbers in JSON, match numerically, and boto3 writes them to
# DynamoDB as N (it is float that DynamoDB rejects; a DynamoDB stream gives them back as
# Decimal('1999'), which these models accept and turn back into int).
Cents = Annotated[
    int, Field(ge=0, le=MAX_CENTS, description="Amount in minor units of `currency`.")
]
Quantity = Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_iso_currency),
    Field(description="ISO 4217 currency code, e.g. USD."),
]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
# Free text: a longer value is cut to MAX_TEXT characters (ending in "..."), never refused.
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT), Truncate()]
OptionalText = Annotated[str, StringConstraints(max_length=MAX_TEXT), Truncate()] | None

DEFAULT_CURRENCY_ENV: Final = "DEFAULT_CURRENCY"


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
    if value not in ISO_4217:
        raise ContractError(
            f"{DEFAULT_CURRENCY_ENV}={value!r} is not an ISO 4217 currency code an order "
            "can be paid in: fix the stack config that sets it on the function."
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
            "maxLength": MAX_TEXT,
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
