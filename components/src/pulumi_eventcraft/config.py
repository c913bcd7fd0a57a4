"""Typed stack configuration: read every key of a Pulumi config namespace into a
pydantic model before any resource is declared, and fail with one message that
names each bad key, its value and what is allowed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import pulumi
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A stack config value is missing, unknown or not allowed."""


def raw_config(namespace: str) -> dict[str, str]:
    """All `namespace:key` values set for the current stack, keyed by `key`.

    Pulumi passes config to the program as strings (structured values as JSON);
    both the engine's environment and values set in-process (mocks) are read.
    """
    merged: dict[str, Any] = {}
    merged.update(pulumi.runtime.get_config_env())
    merged.update(pulumi.runtime.config.CONFIG.get())
    prefix = f"{namespace}:"
    return {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}


def _decode(value: Any) -> Any:
    """Structured config arrives as a JSON string; plain strings stay strings."""
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    return value


def parse_config(model: type[M], values: Mapping[str, Any], namespace: str) -> M:
    """Validate `values` (config keys as written in Pulumi.<stack>.yaml) against `model`.

    Raises ConfigError listing every problem as `namespace:key = value: what is allowed`.
    """
    decoded = {k: _decode(v) for k, v in values.items()}
    try:
        return model.model_validate(decoded)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(config)"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(_aliases(model)))
                lines.append(
                    f"{namespace}:{key} = {err['input']!r}: unknown key; allowed keys: {allowed}"
                )
                continue
            shown = "(missing)" if err["type"] == "missing" else repr(err["input"])
            lines.append(f"{namespace}:{key} = {shown}: {_allowed(err)}")
        raise ConfigError("Invalid stack config:\n  " + "\n  ".join(lines)) from None


def load_config(model: type[M], namespace: str) -> M:
    """Read and validate the current stack's config for `namespace`."""
    return parse_config(model, raw_config(namespace), namespace)


def _aliases(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _allowed(err: Any) -> str:
    """Turn pydantic's message into 'what is allowed' wording."""
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"must be a number {err['msg'].removeprefix('Input should be ')}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    if kind.endswith("_parsing") or kind.endswith("_type"):
        return err["msg"].replace("Input should be", "must be")
    msg: str = err["msg"]
    return msg.removeprefix("Value error, ")
