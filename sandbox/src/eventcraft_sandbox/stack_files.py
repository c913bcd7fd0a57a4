"""Read a stack's config from Pulumi.<stack>.yaml the way the Pulumi CLI passes it on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class StackFileError(ValueError):
    """The stack file is missing or not a Pulumi stack config file."""


def stack_config(stack: str, root: Path) -> dict[str, str]:
    """`{"ns:key": "value"}` from `root`/Pulumi.<stack>.yaml; structured values as JSON
    strings."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise StackFileError(f"no stack file {path.name}; stacks here: {', '.join(known)}")
    data = yaml.safe_load(path.read_text()) or {}
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: 'config' must be a mapping of keys to values")
    return {str(k): _as_config_string(v) for k, v in config.items()}


def _as_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def project_name(root: Path) -> str:
    """The project's `name` in `root`'s Pulumi.yaml."""
    path = root / "Pulumi.yaml"
    if not path.is_file():
        raise StackFileError(f"no Pulumi.yaml in {root}: not a Pulumi project directory")
    data = yaml.safe_load(path.read_text()) or {}
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise StackFileError(f"{path}: 'name' must be the project's name")
    return name
