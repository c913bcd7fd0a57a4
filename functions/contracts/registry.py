"""The order saga's registry: its events by detail-type, the upcasters of older versions.

`REGISTRY` is an `eventcraft.contracts.Registry`, made the envelopes' default registry when
this package is imported; the module-level functions are its methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from contracts.base import default_currency
from contracts.events import (
    AllChecksComplete,
    CheckCompleted,
    HighValueOrderFlagged,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    OrderCancelled,
    OrderCompleted,
    OrderEnriched,
    OrderPlaced,
    OrderPlacedV1,
    OrderShipped,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
    ShippingFailed,
)
from eventcraft.contracts import (
    RECEIVED,
    Event,
    Registry,
    Upcaster,
    detail_schema,
    event_schema,
    set_default_registry,
    version_of,
)

EVENT_TYPES: Final[tuple[type[Event], ...]] = (
    OrderPlaced,
    InventoryReserved,
    InventoryReservationFailed,
    PaymentProcessed,
    PaymentFailed,
    OrderShipped,
    ShippingFailed,
    PaymentRefunded,
    InventoryReleased,
    OrderCancelled,
    OrderCompleted,
    OrderEnriched,
    HighValueOrderFlagged,
    CheckCompleted,
    AllChecksComplete,
)


def _order_placed_v1_to_v2(detail: dict[str, Any]) -> dict[str, Any]:
    v1 = OrderPlacedV1.model_validate(detail, context=RECEIVED)
    fields = v1.model_dump(exclude={"version"})
    return OrderPlaced(**fields, currency=default_currency()).to_detail()


REGISTRY: Final = Registry(
    EVENT_TYPES,
    # (detail-type, version) -> function returning the detail one version later.
    upcasters={("OrderPlaced", "1"): _order_placed_v1_to_v2},
    name="contracts.registry.EVENT_TYPES",
)
set_default_registry(REGISTRY)

UPCASTERS: Final[Mapping[tuple[str, str], Upcaster]] = REGISTRY.upcasters

model_for = REGISTRY.model_for
upcast = REGISTRY.upcast
parse_detail = REGISTRY.parse_detail
json_schemas = REGISTRY.json_schemas

__all__ = [
    "EVENT_TYPES",
    "REGISTRY",
    "UPCASTERS",
    "detail_schema",
    "event_schema",
    "json_schemas",
    "model_for",
    "parse_detail",
    "upcast",
    "version_of",
]
