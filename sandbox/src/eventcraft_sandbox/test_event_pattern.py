"""`python -m eventcraft_sandbox test-event-pattern`: mirrors `aws events test-event-pattern`.

    python -m eventcraft_sandbox test-event-pattern --event-pattern JSON --event JSON

Both values may be `file://path` (relative to the working directory, UTF-8), as with
the AWS CLI. Prints `{"Result": true}` or `{"Result": false}` and exits 0; an invalid
pattern, invalid JSON (NaN and Infinity included), JSON nested more than 1000 levels
deep, an unreadable or non-UTF-8 file or an event missing a field that
TestEventPattern requires prints the reason on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pulumi_eventcraft.event_pattern import (
    MAX_PATTERN_LENGTH,
    InvalidEventPatternError,
    compile_pattern,
    parse_json,
)

# The API reference lists `resources` as mandatory too, but TestEventPattern accepts
# events without it: the AWS-confirmed conformance case minimal.json5 (an event with
# no `resources`) matches. We mirror what the service does, not what the page says.
REQUIRED_EVENT_FIELDS = ("id", "account", "source", "time", "region", "detail-type")

_OPERATION = "An error occurred ({code}) when calling the TestEventPattern operation: {message}"


class _UsageError(Exception):
    """A bad argument: reported on stderr with exit code 2."""


class _Parser(argparse.ArgumentParser):
    # argparse exits the process on bad arguments; main() must return instead.
    def error(self, message: str) -> Any:
        raise _UsageError(f"{self.prog}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m eventcraft_sandbox test-event-pattern",
        description="Test whether an event pattern matches an event, like "
        "`aws events test-event-pattern`.",
    )
    parser.add_argument("--event-pattern", required=True, help="the pattern: JSON or file://path")
    parser.add_argument("--event", required=True, help="the event: JSON or file://path")
    return parser


def _read_argument(value: str, name: str) -> str:
    """The argument's text; `file://path` reads the file, as the AWS CLI does."""
    if not value.startswith("file://"):
        return value
    path = Path(value[len("file://") :])
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _UsageError(
            f"Error parsing parameter '{name}': Unable to load paramfile {value}: {exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise _UsageError(
            f"Error parsing parameter '{name}': Unable to load paramfile {value}, text "
            f"contents could not be decoded: {path} is not UTF-8 (byte "
            f"0x{exc.object[exc.start]:02x} at offset {exc.start}: {exc.reason})"
        ) from None


def _event(text: str) -> dict[str, Any]:
    """The event as a dict; raises _UsageError as the service's ValidationException."""
    invalid = "Parameter Event is not valid."
    try:
        event = parse_json(text)  # as the service reads it: no NaN, at most 1000 levels
    except ValueError as exc:
        raise _UsageError(
            _OPERATION.format(code="ValidationException", message=f"{invalid} ({exc})")
        ) from None
    if not isinstance(event, dict):
        raise _UsageError(
            _OPERATION.format(code="ValidationException", message=f"{invalid} (not a JSON object)")
        )
    missing = [field for field in REQUIRED_EVENT_FIELDS if field not in event]
    if missing:
        message = f"{invalid} (missing required field(s): {', '.join(missing)})"
        raise _UsageError(_OPERATION.format(code="ValidationException", message=message))
    return event


def main(argv: list[str]) -> int:
    """Run the command with `argv` (without the program name); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        pattern_text = _read_argument(args.event_pattern, "--event-pattern")
        event = _event(_read_argument(args.event, "--event"))
        try:
            # TestEventPattern takes patterns up to the API's 4096-character maximum;
            # the 2048 default quota applies to rules on a bus, not to this call.
            compiled = compile_pattern(pattern_text, max_length=MAX_PATTERN_LENGTH)
        except InvalidEventPatternError as exc:
            message = f"Event pattern is not valid. Reason: {exc}"
            raise _UsageError(
                _OPERATION.format(code="InvalidEventPatternException", message=message)
            ) from None
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help: argparse printed the usage and wants to exit 0
        return exc.code if isinstance(exc.code, int) else 0
    print(json.dumps({"Result": compiled.matches(event)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
