"""What a command returns: its JSON-ready data, its human text and its exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.errors import EXIT_OK


@dataclass(frozen=True)
class Result:
    """`data` is printed with --json, `text` otherwise; `exit_code` 0 ok, 1 failed."""

    data: dict[str, Any]
    text: str
    exit_code: int = EXIT_OK
