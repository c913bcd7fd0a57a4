"""Event contracts of the order saga: one pydantic model per event, with versions,
upcasters, a detail-type registry, JSON schemas and samples.

Built on `eventcraft.contracts` (Event, errors, Registry); importing this package makes
`REGISTRY` the default registry of `eventcraft.envelopes`.

Pure Python (pydantic only): the handlers, the Pulumi program (schema registry) and the
tests all import it.
"""

from __future__ import annotations

from contracts.base import (
    DEFAULT_CURRENCY_ENV,
    Cents,
    Currency,
    OrderEvent,
    Source,
    default_currency,
)
from contracts.events import (
    CHECKS,
    AllChecksComplete,
    CheckCompleted,
    CheckName,
    CheckResult,
    CustomerTier,
    HighValueOrderFlagged,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    OrderCancelled,
    OrderCompleted,
    OrderEnriched,
    OrderLine,
    OrderPlaced,
    OrderPlacedV1,
    OrderShipped,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
    SagaStep,
    ShippingFailed,
    StockLine,
)
from contracts.registry import (
    EVENT_TYPES,
    REGISTRY,
    UPCASTERS,
    detail_schema,
    event_schema,
    json_schemas,
    model_for,
    parse_detail,
    upcast,
    version_of,
)
from contracts.s3 import S3ObjectCreated
from contracts.samples import sample_detail, sample_event
from eventcraft.contracts import (
    ContractError,
    ContractModel,
    Event,
    UnknownEventTypeError,
    UnknownEventVersionError,
    new_event_id,
    utc_now,
)

__all__ = [
    "CHECKS",
    "DEFAULT_CURRENCY_ENV",
    "EVENT_TYPES",
    "REGISTRY",
    "UPCASTERS",
    "AllChecksComplete",
    "Cents",
    "CheckCompleted",
    "CheckName",
    "CheckResult",
    "ContractError",
    "ContractModel",
    "Currency",
    "CustomerTier",
    "Event",
    "HighValueOrderFlagged",
    "InventoryReleased",
    "InventoryReservationFailed",
    "InventoryReserved",
    "OrderCancelled",
    "OrderCompleted",
    "OrderEnriched",
    "OrderEvent",
    "OrderLine",
    "OrderPlaced",
    "OrderPlacedV1",
    "OrderShipped",
    "PaymentFailed",
    "PaymentProcessed",
    "PaymentRefunded",
    "S3ObjectCreated",
    "SagaStep",
    "ShippingFailed",
    "Source",
    "StockLine",
    "UnknownEventTypeError",
    "UnknownEventVersionError",
    "default_currency",
    "detail_schema",
    "event_schema",
    "json_schemas",
    "model_for",
    "new_event_id",
    "parse_detail",
    "sample_detail",
    "sample_event",
    "upcast",
    "utc_now",
    "version_of",
]
