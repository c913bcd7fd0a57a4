"""`python -m sandbox`: the sandbox's command line.

up [--stack dev]             deploy the program under recording mocks and print
                             a table of what it declares (like `pulumi up`'s summary)
test-event-pattern ...       mirrors `aws events test-event-pattern`
"""

from __future__ import annotations

import argparse
import sys

from components.config import ConfigError
from sandbox.stack_files import StackFileError


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["test-event-pattern"]:
        from sandbox.test_event_pattern import main as test_event_pattern

        return test_event_pattern(args[1:])

    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="deploy a stack under mocks and print what it creates")
    up.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml")
    commands.add_parser("test-event-pattern", help="test an event pattern against an event")
    parsed = parser.parse_args(args)

    if parsed.command == "up":
        from sandbox.summary import run_up

        try:
            print(run_up(parsed.stack))
        except (ConfigError, StackFileError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    return 2  # pragma: no cover (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
