"""Text that leaves a handler: cut to a limit, made printable, made acceptable to SQS.

- `truncate(text, limit)`: at most `limit` characters, the cut marked with "...";
- `printable(text)`: control, formatting and other invisible characters written as
  escapes (`\\x00`, `\\u202e`), so an error message quoting user input shows what it
  holds and cannot reorder or hide the text around it;
- `sqs_text(text, limit)`: a value SQS accepts in a message body or attribute (it refuses
  characters outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF and
  fails the whole SendMessage), made printable and cut to `limit`.
"""

from __future__ import annotations

import unicodedata
from typing import Final

ELLIPSIS: Final = "..."
# Unicode categories written as escapes by `printable`: control, format (e.g. U+202E
# RIGHT-TO-LEFT OVERRIDE, zero-width characters), surrogate, private use, unassigned,
# line and paragraph separators.
INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def truncate(text: str, limit: int, *, marker: str = ELLIPSIS) -> str:
    """`text` if it has at most `limit` characters, else its start ending in `marker`,
    `limit` characters in all."""
    if limit < len(marker):
        raise ValueError(f"limit: {limit} is shorter than the marker {marker!r}")
    return text if len(text) <= limit else text[: limit - len(marker)] + marker


def is_invisible(char: str) -> bool:
    """Whether `char` is a control, formatting or other character that shows nothing."""
    return unicodedata.category(char) in INVISIBLE_CATEGORIES


def escape(char: str) -> str:
    """`char` as a Python-style escape: \\x07, \\u202e, \\U000e0001."""
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every invisible character (see `is_invisible`) written as its escape."""
    if not any(is_invisible(c) for c in text):
        return text
    return "".join(escape(c) if is_invisible(c) else c for c in text)


def sqs_text(text: str, limit: int | None = None) -> str:
    """`text` made acceptable to SQS (see the module doc), cut to `limit` characters."""
    safe = printable(text)
    return truncate(safe, limit) if limit is not None else safe
