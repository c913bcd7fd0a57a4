"""Event contracts: the pydantic base of every event, the contract errors, and a Registry
(detail-type -> current model, upcasters of older versions, draft 4 JSON schemas).

An application subclasses `Event` for each of its events, builds one `Registry` of them and
makes it the default with `set_default_registry` (the envelopes use it when not given one).

Free text (a reason, a note, a display name) is declared with `Truncate`: a value longer
than the field's `max_length` is cut to it instead of failing, so an event built from a
long input (an id quoted in a reason) is still a valid event. Identifiers are never
truncated: they are bounded where they enter the system.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema

from eventcraft.text import ELLIPSIS, truncate

# Passed as pydantic validation context by the consumer path (`Registry.parse_detail`).
RECEIVED: Final = {"received": True}
# A detail without `version` is read as "1": first producers do not always send one.
FIRST_VERSION: Final = "1"
DRAFT4: Final = "http://json-schema.org/draft-04/schema#"

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class ContractError(ValueError):
    """An event does not satisfy its contract. Never retryable: retrying the same bytes
    fails the same way, so batch layers report the record as failed (it ends in a DLQ)."""

    retryable: ClassVar[bool] = False


class UnknownEventTypeError(ContractError):
    """The detail-type has no contract in the registry."""


class UnknownEventVersionError(ContractError):
    """The event's `version` is neither current nor upcastable by this code."""


class RegistryNotSetError(RuntimeError):
    """No registry was given and no default registry is set (a wiring error, not a record's)."""


@dataclass(frozen=True)
class Truncate:
    """Marks a free-text field: a string longer than the field's `max_length` is cut to
    it (ending in `marker`) instead of failing validation. Put it after the constraints:

        Reason = Annotated[str, StringConstraints(min_length=1, max_length=256), Truncate()]

    The JSON schema keeps `maxLength`: what producers emit always fits it.
    """

    marker: str = ELLIPSIS

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        limit = schema.get("max_length") if schema.get("type") == "str" else None
        if not isinstance(limit, int):
            raise TypeError(
                f"Truncate() on {source!r} needs a string type with a max_length before it, "
                "e.g. Annotated[str, StringConstraints(max_length=256), Truncate()]"
            )
        marker = self.marker

        def cut(value: Any) -> Any:
            return truncate(value, limit, marker=marker) if isinstance(value, str) else value

        return core_schema.no_info_before_validator_function(cut, schema)


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


class ContractModel(BaseModel):
    """Base of every model in a contract: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored (tolerant reader: a producer may add an optional field
    before its consumers know it). Models are frozen: an event is a fact.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="ignore",
        # The schema describes what producers emit: every field, defaults included.
        json_schema_serialization_defaults_required=True,
        # Build each validator on first use: a handler pays only for the models it uses
        # (cold start), not for all of them at import.
        defer_build=True,
    )


class Event(ContractModel):
    """An event. Subclasses set DETAIL_TYPE, SOURCE and `version: Literal[...] = "<n>"`.

    `event_id` is assigned once by the producer and survives republishing (the outbox relay
    may publish a row twice; EventBridge gives each PutEvents its own envelope `id`), so it
    is THE idempotency key. Constructing an event fills `event_id` and `occurred_at`;
    reading one (`parse_detail`) requires them, so a consumer never invents a key.
    """

    DETAIL_TYPE: ClassVar[str]
    SOURCE: ClassVar[str]

    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=128)
    occurred_at: AwareDatetime = Field(
        default_factory=utc_now, description="When the fact happened (event time), UTC."
    )

    @model_validator(mode="before")
    @classmethod
    def _received_events_carry_their_identity(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get("received") and isinstance(data, dict):
            missing = [k for k in ("eventId", "occurredAt") if k not in data]
            if missing:
                raise ValueError(
                    f"received {cls.__name__} lacks {', '.join(missing)}: producers must "
                    "set them (eventId is the idempotency key); build events with the "
                    "contract models so they are always present"
                )
        return data

    def to_detail(self) -> dict[str, Any]:
        """The EventBridge `detail` (JSON-compatible dict, camelCase keys)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The EventBridge `Detail` string of a PutEvents entry."""
        return self.model_dump_json()


def version_of(model: type[Event]) -> str:
    """The version a model reads and writes (the default of its `version` Literal)."""
    return str(model.model_fields["version"].default)


def _version_in(detail: Mapping[str, Any]) -> str:
    raw = detail.get("version", FIRST_VERSION)
    # A version sent as a JSON number (1) is the same version as "1".
    return str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else repr(raw)


class Registry(Mapping[str, type[Event]]):
    """The current model of each detail-type, and the upcasters of older versions.

    A read-only mapping detail-type -> model. `upcasters` maps (detail-type, version) to a
    function returning the detail one version later. `name` says where the models are
    listed, for the error raised on an unknown detail-type (default "the registry").
    Raises ValueError for two models of one detail-type, or an upcaster of a detail-type
    that has no model.
    """

    def __init__(
        self,
        models: Iterable[type[Event]],
        *,
        upcasters: Mapping[tuple[str, str], Upcaster] | None = None,
        name: str = "the registry",
    ) -> None:
        by_type: dict[str, type[Event]] = {}
        for model in models:
            if model.DETAIL_TYPE in by_type:
                raise ValueError(
                    f"Registry models: {by_type[model.DETAIL_TYPE].__name__} and "
                    f"{model.__name__} both have detail-type {model.DETAIL_TYPE!r}: register "
                    "only the current model of each type, older versions go in upcasters"
                )
            by_type[model.DETAIL_TYPE] = model
        orphans = sorted({t for (t, _) in upcasters or {}} - set(by_type))
        if orphans:
            raise ValueError(
                f"Registry upcasters: no model for detail-type {', '.join(map(repr, orphans))}: "
                "register the current model of every type that has upcasters"
            )
        self._models: Mapping[str, type[Event]] = MappingProxyType(by_type)
        self.upcasters: Mapping[tuple[str, str], Upcaster] = MappingProxyType(dict(upcasters or {}))
        self.name = name

    def __getitem__(self, detail_type: str) -> type[Event]:
        return self._models[detail_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._models)}; name={self.name!r})"

    def model_for(self, detail_type: str) -> type[Event]:
        """The current model of `detail_type`; UnknownEventTypeError if none."""
        try:
            return self._models[detail_type]
        except KeyError:
            raise UnknownEventTypeError(
                f"no contract for detail-type {detail_type!r} (known: {', '.join(self)}): "
                "the rule routing it here matches more than this consumer reads, or the "
                f"contract is missing from {self.name}"
            ) from None

    def upcast(self, detail_type: str, detail: Mapping[str, Any]) -> dict[str, Any]:
        """Return `detail` at the current version of `detail_type`, applying upcasters in
        turn. Raises UnknownEventTypeError / UnknownEventVersionError (ContractError)."""
        current = version_of(self.model_for(detail_type))
        result = dict(detail)
        seen: set[str] = set()
        while (version := _version_in(result)) != current:
            upcaster = self.upcasters.get((detail_type, version))
            if upcaster is None or version in seen:
                readable = sorted({v for (t, v) in self.upcasters if t == detail_type} | {current})
                raise UnknownEventVersionError(
                    f"{detail_type} version {version!r} is unknown to this consumer (it reads "
                    f"{', '.join(repr(v) for v in readable)}): a producer runs a newer "
                    "contract; deploy consumers before producers. Retrying will not help."
                )
            seen.add(version)
            result = upcaster(result)
        return result

    def parse_detail(self, detail_type: str, detail: Mapping[str, Any]) -> Event:
        """Validate a received detail into the current model of its type (upcasting first).

        Raises pydantic.ValidationError for a detail that breaks its contract, or a
        ContractError for an unknown type or version; none of them is retryable.
        """
        model = self.model_for(detail_type)
        return model.model_validate(self.upcast(detail_type, detail), context=RECEIVED)

    def json_schemas(self, *, envelope: bool = True) -> dict[str, dict[str, Any]]:
        """detail-type -> JSON Schema (draft 4) of the current version of each event.

        `envelope=True` (default) describes the whole EventBridge event, `False` only
        `detail`: the documents of an EventBridge schema registry (type JSONSchemaDraft4).
        """
        build = event_schema if envelope else detail_schema
        return {detail_type: build(model) for detail_type, model in self.items()}


_default_registry: Registry | None = None


def set_default_registry(registry: Registry) -> None:
    """Make `registry` the one the envelopes use when not given `registry=`."""
    global _default_registry  # noqa: PLW0603 - the one process-wide default, set at import
    _default_registry = registry


def default_registry() -> Registry:
    """The registry set by `set_default_registry`; RegistryNotSetError if none is."""
    if _default_registry is None:
        raise RegistryNotSetError(
            "no event registry: pass registry= to the envelope function, or call "
            "eventcraft.contracts.set_default_registry(...) with your application's "
            "Registry (its contracts package usually does it when imported)"
        )
    return _default_registry


# --- JSON schemas for the EventBridge schema registry (type "JSONSchemaDraft4") ----------


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
