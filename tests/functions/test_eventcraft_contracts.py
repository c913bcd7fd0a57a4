"""eventcraft.contracts on a registry of its own (not the order saga's): register, upcast,
parse, errors, draft 4 schemas; and the envelopes given that registry."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import jsonschema
import pytest
from pydantic import Field, StringConstraints, ValidationError

from eventcraft import contracts as ec
from eventcraft import envelopes
from eventcraft.contracts import (
    ContractError,
    Event,
    Registry,
    RegistryNotSetError,
    UnknownEventTypeError,
    UnknownEventVersionError,
)
from eventcraft.envelopes import PoisonRecordError


class PingV1(Event):
    """A ping, first version: no payload."""

    DETAIL_TYPE: ClassVar[str] = "Ping"
    SOURCE: ClassVar[str] = "tests.pings"

    version: Literal["1"] = "1"


class Ping(Event):
    """A ping with how loud it is."""

    DETAIL_TYPE: ClassVar[str] = "Ping"
    SOURCE: ClassVar[str] = "tests.pings"

    version: Literal["2"] = "2"
    loudness: int = Field(gt=0, description="Decibels.")
    kind: Literal["short"] = "short"


class Pong(Event):
    """A pong."""

    DETAIL_TYPE: ClassVar[str] = "Pong"
    SOURCE: ClassVar[str] = "tests.pongs"

    version: Literal["1"] = "1"
    ratio: float = Field(gt=0, lt=1)


def _ping_v1_to_v2(detail: dict[str, Any]) -> dict[str, Any]:
    return {**detail, "version": "2", "loudness": 1}


PINGS = Registry([Ping, Pong], upcasters={("Ping", "1"): _ping_v1_to_v2}, name="tests.PINGS")
TIME = "2025-01-15T10:30:00Z"


def ping_v1() -> dict[str, Any]:
    return {"eventId": "e-1", "occurredAt": TIME}  # no version: read as "1"


def eventbridge(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"id": "eb-1", "detail-type": detail_type, "source": "tests", "detail": detail}


def test_a_registry_is_a_read_only_mapping_of_the_current_models() -> None:
    assert dict(PINGS) == {"Ping": Ping, "Pong": Pong}
    assert PINGS.model_for("Pong") is Pong
    assert dict(PINGS.upcasters) == {("Ping", "1"): _ping_v1_to_v2}
    assert ec.version_of(Ping) == "2"
    with pytest.raises(TypeError):
        PINGS.upcasters[("Pong", "0")] = _ping_v1_to_v2  # type: ignore[index]


def test_two_models_of_one_detail_type_or_an_orphan_upcaster_are_refused() -> None:
    with pytest.raises(ValueError, match="PingV1 and Ping both have detail-type 'Ping'"):
        Registry([PingV1, Ping])
    with pytest.raises(ValueError, match="no model for detail-type 'Pang'"):
        Registry([Ping], upcasters={("Pang", "1"): _ping_v1_to_v2})


def test_an_old_version_is_upcast_then_parsed_with_its_identity() -> None:
    assert PINGS.upcast("Ping", ping_v1()) == {**ping_v1(), "version": "2", "loudness": 1}
    parsed = PINGS.parse_detail("Ping", {**ping_v1(), "version": 1})  # a JSON number
    assert parsed == Ping(event_id="e-1", occurred_at=TIME, loudness=1)  # type: ignore[arg-type]
    assert parsed.to_detail()["occurredAt"] == "2025-01-15T10:30:00Z"
    with pytest.raises(ValidationError, match="eventId is the idempotency key"):
        PINGS.parse_detail("Pong", {"version": "1", "ratio": 0.5})


def test_unknown_types_and_versions_are_contract_errors_that_say_what_to_do() -> None:
    with pytest.raises(UnknownEventTypeError, match=r"'Pang'.*missing from tests\.PINGS"):
        PINGS.parse_detail("Pang", ping_v1())
    with pytest.raises(UnknownEventVersionError, match=r"reads '1', '2'.*deploy consumers") as err:
        PINGS.parse_detail("Ping", {**ping_v1(), "version": "3"})
    assert isinstance(err.value, ContractError)
    assert not err.value.retryable
    with pytest.raises(UnknownEventVersionError, match="version '0'"):
        PINGS.upcast("Pong", {"version": "0"})


def test_schemas_are_draft_4_and_describe_the_events_producers_emit() -> None:
    detail = PINGS.json_schemas(envelope=False)["Ping"]
    assert detail["$schema"] == "http://json-schema.org/draft-04/schema#"
    jsonschema.Draft4Validator.check_schema(detail)
    properties = detail["properties"]
    assert properties["kind"]["enum"] == ["short"]  # `const` is draft 6
    assert "const" not in json.dumps(detail)
    assert properties["loudness"] == {
        "description": "Decibels.",
        "exclusiveMinimum": True,
        "minimum": 0,
        "title": "Loudness",
        "type": "integer",
    }
    assert set(detail["required"]) >= {"eventId", "occurredAt", "version", "loudness"}
    jsonschema.validate(Ping(loudness=3).to_detail(), detail, cls=jsonschema.Draft4Validator)

    event = PINGS.json_schemas()["Pong"]
    jsonschema.Draft4Validator.check_schema(event)
    assert event["properties"]["source"]["enum"] == ["tests.pongs"]
    assert event["description"] == "A pong."
    assert event["definitions"]["Pong"]["properties"]["ratio"]["exclusiveMaximum"] is True
    pong = {**eventbridge("Pong", Pong(ratio=0.5).to_detail()), "source": "tests.pongs"}
    jsonschema.validate(pong, event, cls=jsonschema.Draft4Validator)


def test_the_envelopes_use_the_registry_they_are_given() -> None:
    parsed = envelopes.from_eventbridge(eventbridge("Ping", ping_v1()), registry=PINGS)
    assert isinstance(parsed, Ping)
    assert parsed.loudness == 1
    typed = envelopes.from_eventbridge(eventbridge("Ping", ping_v1()), model=Ping, registry=PINGS)
    assert typed == parsed
    with pytest.raises(PoisonRecordError, match="Pang breaks its contract") as caught:
        envelopes.from_eventbridge(eventbridge("Pang", {}), registry=PINGS)
    assert isinstance(caught.value.cause, UnknownEventTypeError)


def test_without_any_registry_the_envelopes_say_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ec, "_default_registry", None)
    with pytest.raises(RegistryNotSetError, match=r"pass registry=.*set_default_registry"):
        envelopes.from_eventbridge(eventbridge("Ping", ping_v1()))
    with pytest.raises(RegistryNotSetError):
        envelopes.from_eventbridge(eventbridge("Ping", ping_v1()), model=Ping)
    ec.set_default_registry(PINGS)
    assert isinstance(envelopes.from_eventbridge(eventbridge("Ping", ping_v1())), Ping)


APPLICATION_PACKAGES = frozenset({"contracts", "domain", "handlers", "saga", "order_saga"})


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_handler_library_imports_nothing_of_the_application() -> None:
    root = Path(__file__).parents[2] / "eventcraft" / "src" / "eventcraft"
    modules = sorted(root.rglob("*.py"))
    assert len(modules) > 10
    offenders = {
        f"{path.relative_to(root)}: {name}"
        for path in modules
        for name in _imported(ast.parse(path.read_text(), filename=str(path)))
        if name.partition(".")[0] in APPLICATION_PACKAGES
    }
    assert offenders == set()


# --- free text: Truncate (#11 point 3) ------------------------------------------------------


class Refused(Event):
    """Something was refused, with why (free text)."""

    DETAIL_TYPE: ClassVar[str] = "Refused"
    SOURCE: ClassVar[str] = "tests.refusals"

    version: Literal["1"] = "1"
    reason: Annotated[str, StringConstraints(min_length=1, max_length=20), ec.Truncate()]
    note: Annotated[str, StringConstraints(max_length=10), ec.Truncate(marker="~")] | None = None


def test_free_text_longer_than_its_limit_is_cut_not_refused() -> None:
    refused = Refused(reason="x" * 30, note="n" * 11)
    assert refused.reason == "x" * 17 + "..."
    assert refused.note == "n" * 9 + "~"
    assert Refused(reason="short").reason == "short"  # within the limit: as is
    with pytest.raises(ValidationError, match="at least 1 character"):
        Refused(reason="")  # the other constraints still hold
    # The schema producers are checked against keeps the limit: what they emit fits it.
    schema = ec.detail_schema(Refused)
    assert schema["properties"]["reason"]["maxLength"] == 20
    assert Refused(reason="y" * 99).to_detail()["reason"] == "y" * 17 + "..."


def test_truncate_needs_a_limit_to_cut_to() -> None:
    with pytest.raises(TypeError, match="needs a string type with a max_length before it"):

        class Unbounded(Event):
            DETAIL_TYPE: ClassVar[str] = "Unbounded"
            SOURCE: ClassVar[str] = "tests"
            reason: Annotated[str, ec.Truncate()]

        Unbounded(reason="x")


def test_text_shown_to_people_and_sent_to_sqs() -> None:
    from eventcraft import text

    assert text.truncate("abcdef", 5) == "ab..."
    assert text.printable("a\x00b\u202ec\U000e0001") == "a\\x00b\\u202ec\\U000e0001"
    assert text.printable("plain text, accents: é") == "plain text, accents: é"
    assert text.sqs_text("bad\ud800char\x07", 12) == "bad\\ud800..."
