"""`python -m sandbox`: the sandbox's command line.

up [--stack dev]             deploy the program into the sandbox (an in-process moto)
                             and print a table of what was created (like `pulumi up`)
demo [--stack dev] ...       deploy, place orders, run the saga, report and verify
                             (see `sandbox.demo`; `demo --help` for the options)
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

    from sandbox import demo

    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="deploy a stack into the sandbox and print what it created")
    up.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml")
    run = commands.add_parser(
        "demo",
        help="deploy, place orders through both sagas, report and check the invariants",
        description=demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_arguments(run)
    commands.add_parser("test-event-pattern", help="test an event pattern against an event")
    parsed = parser.parse_args(args)

    try:
        if parsed.command == "up":
            from sandbox.moto_deploy import Sandbox
            from sandbox.session import PROGRAM, speedups

            with speedups(), Sandbox() as sandbox:
                print(sandbox.deploy(PROGRAM, stack=parsed.stack).summary())
            return 0
        if parsed.command == "demo":
            return demo.main(demo.options_from(parsed))
    except (ConfigError, StackFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover (argparse rejects unknown commands)


if __name__ == "__main__":
    sys.exit(main())
