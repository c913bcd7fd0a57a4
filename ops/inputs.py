"""What the user hands `ops` (the `--outputs` file, `--detail @FILE` or stdin): read as
UTF-8 JSON, with a usage error (exit code 2) naming the file and the problem."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ops.errors import UsageError


def not_utf8(exc: UnicodeDecodeError) -> str:
    """Why the bytes are not text, e.g. "not UTF-8 text (byte 0xff at offset 13)"."""
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"


def read_text(path: Path, what: str, hint: str = "") -> str:
    """`path`'s text as UTF-8; `what` names the file in the error ("cannot read
    {what} {path}: {reason}{hint}"), which covers both a missing file and bytes that
    are not UTF-8 (a file saved in another encoding)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = str(exc.strerror or exc)
    except UnicodeDecodeError as exc:
        reason = f"it is {not_utf8(exc)}; save it as UTF-8"
    raise UsageError(f"cannot read {what} {path}: {reason}{hint}")


def read_stdin(origin: str) -> str:
    """Standard input as UTF-8, whatever the locale says (its bytes when it has them)."""
    buffer = getattr(sys.stdin, "buffer", None)
    try:
        return buffer.read().decode("utf-8") if buffer is not None else sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise UsageError(f"{origin}: standard input is {not_utf8(exc)}") from None


def _no_constant(name: str) -> Any:
    # Python's json takes NaN and Infinity; JSON (and every AWS API) does not.
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, origin: str, hint: str = "") -> Any:
    """The JSON value of `text`; a usage error "{origin} is not JSON: {why}{hint}"."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        why = str(exc)
    except RecursionError:
        why = "it is nested too deeply to read"
    raise UsageError(f"{origin} is not JSON: {why}{hint}")
