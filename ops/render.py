"""Human-readable output: aligned tables, durations, times. JSON output is the commands'
result dicts as they are (`to_json`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

MAX_CELL: Final = 60


def cell(value: Any) -> str:
    """One table cell: None as '-', long text cut to MAX_CELL characters."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return iso(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An aligned text table (no rows: the headers and '(none)')."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += [
        "  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    if not cells:
        lines.append("(none)")
    return "\n".join(lines)


def fields(pairs: Mapping[str, Any]) -> str:
    """`key: value` lines, keys aligned."""
    width = max((len(k) for k in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {cell(v)}" for k, v in pairs.items())


def counts(title: str, counter: Mapping[str, int]) -> str:
    rows = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return table([title, "count"], rows)


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a Z, to the second."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def duration(seconds: float | None) -> str:
    """`3d 4h`, `5h 2m`, `7m 30s`, `12s`; None as '-'."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
