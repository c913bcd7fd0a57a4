"""Detail-type -> model, upcasting of older versions, and JSON schemas for the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from contracts.base import (
    RECEIVED,
    Event,
    UnknownEventTypeError,
    UnknownEventVersionError,
    default_currency,
)
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

# Current model of each detail-type.
REGISTRY: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {model.DETAIL_TYPE: model for model in EVENT_TYPES}
)

# A detail without `version` is read as "1": the first producers did not always send one.
FIRST_VERSION: Final = "1"

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _order_placed_v1_to_v2(detail: dict[str, Any]) -> dict[str, Any]:
    v1 = OrderPlacedV1.model_validate(detail, context=RECEIVED)
    fields = v1.model_dump(exclude={"version"})
    return OrderPlaced(**fields, currency=default_currency()).to_detail()


# (detail-type, version) -> function returning the detail one version later.
UPCASTERS: Final[Mapping[tuple[str, str], Upcaster]] = MappingProxyType(
    {("OrderPlaced", "1"): _order_placed_v1_to_v2}
)


def version_of(model: type[Event]) -> str:
    """The version a model reads and writes (the default of its `version` Literal)."""
    return str(model.model_fields["version"].default)


def model_for(detail_type: str) -> type[Event]:
    try:
        return REGISTRY[detail_type]
    except KeyError:
        raise UnknownEventTypeError(
            f"no contract for detail-type {detail_type!r} (known: {', '.join(REGISTRY)}): "
            "the rule routing it here matches more than this consumer reads, or the "
            "contract is missing from contracts.registry.EVENT_TYPES"
        ) from None


def _version_in(detail: Mapping[str, Any]) -> str:
    raw = detail.get("version", FIRST_VERSION)
    # A version sent as a JSON number (1) is the same version as "1".
    return str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else repr(raw)


def upcast(detail_type: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """Return `detail` at the current version of `detail_type`, applying upcasters in turn.

    Raises UnknownEventTypeError / UnknownEventVersionError (non-retryable ContractError).
    """
    current = version_of(model_for(detail_type))
    result = dict(detail)
    seen: set[str] = set()
    while (version := _version_in(result)) != current:
        upcaster = UPCASTERS.get((detail_type, version))
        if upcaster is None or version in seen:
            readable = sorted({v for (t, v) in UPCASTERS if t == detail_type} | {current})
            raise UnknownEventVersionError(
                f"{detail_type} version {version!r} is unknown to this consumer (it reads "
                f"{', '.join(repr(v) for v in readable)}): a producer runs a newer contract; "
                "deploy consumers before producers. Retrying will not help."
            )
        seen.add(version)
        result = upcaster(result)
    return result


def parse_detail(detail_type: str, detail: Mapping[str, Any]) -> Event:
    """Validate a received detail into the current model of its type (upcasting first).

    Raises pydantic.ValidationError for a detail that breaks its contract, or a
    ContractError for an unknown type or version; none of them is retryable.
    """
    model = model_for(detail_type)
    return model.model_validate(upcast(detail_type, detail), context=RECEIVED)


# --- JSON schemas for the EventBridge schema registry (type "JSONSchemaDraft4") ----------

DRAFT4: Final = "http://json-schema.org/draft-04/schema#"


def _to_draft4(node: Any) -> Any:
    """Rewrite the draft 2020-12 keywords pydantic emits into their draft 4 forms."""
    if isinstance(node, list):
        return [_to_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in ("examples", "readOnly", "writeOnly"):
            continue  # draft 6+/OpenAPI annotations; draft 4 has no such keywords
        elif key == "$defs":
            out["definitions"] = _to_draft4(value)
        else:
            out[key] = _to_draft4(value)
    return out


def detail_schema(model: type[Event]) -> dict[str, Any]:
    """Draft 4 schema of a model's `detail`, nested models under `definitions`."""
    schema = model.model_json_schema(mode="serialization", ref_template="#/definitions/{model}")
    return {"$schema": DRAFT4, **_to_draft4(schema)}


def event_schema(model: type[Event]) -> dict[str, Any]:
    """Draft 4 schema of the whole EventBridge event of a model (envelope + detail), the
    shape the schema registry discovers and generates code bindings from."""
    detail = detail_schema(model)
    del detail["$schema"]
    definitions = detail.pop("definitions", {})
    name = model.__name__
    definitions[name] = detail
    return {
        "$schema": DRAFT4,
        "title": model.DETAIL_TYPE,
        "description": (model.__doc__ or model.DETAIL_TYPE).strip().splitlines()[0],
        "type": "object",
        "required": ["detail-type", "source", "detail"],
        "properties": {
            "version": {"type": "string"},
            "id": {"type": "string"},
            "account": {"type": "string"},
            "region": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "source": {"type": "string", "enum": [model.SOURCE]},
            "detail-type": {"type": "string", "enum": [model.DETAIL_TYPE]},
            "detail": {"$ref": f"#/definitions/{name}"},
        },
        "definitions": definitions,
    }


def json_schemas(*, envelope: bool = True) -> dict[str, dict[str, Any]]:
    """detail-type -> JSON Schema (draft 4) of the current version of each event.

    `envelope=True` (default) describes the whole EventBridge event, `False` only `detail`.
    """
    build = event_schema if envelope else detail_schema
    return {detail_type: build(model) for detail_type, model in REGISTRY.items()}
