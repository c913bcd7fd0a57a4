"""`python -m order_saga`: the order-saga application's command line.

demo [--stack dev] ...       deploy into the sandbox, place orders, run the saga, report
                             and verify (see `order_saga.sandbox.demo`; `demo --help`)
reliability [--orders 200]   every fault x saga mode, each a demo run; writes
                             RELIABILITY.md (`order_saga.sandbox.reliability`)
"""

from __future__ import annotations

import argparse
import sys

from eventcraft_sandbox.faults import FaultError
from eventcraft_sandbox.moto_deploy import DeployError
from eventcraft_sandbox.stack_files import StackFileError
from pulumi_eventcraft.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    from order_saga.sandbox import demo, reliability

    parser = argparse.ArgumentParser(
        prog="python -m order_saga",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "demo",
        help="deploy, place orders through both sagas, report and check the invariants",
        description=demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_arguments(run)
    matrix = commands.add_parser(
        "reliability",
        help="run every fault x saga mode and write RELIABILITY.md",
        description=reliability.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reliability.add_arguments(matrix)
    parsed = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if parsed.command == "reliability":
        return reliability.main(parsed)
    if parsed.stock_file is not None and parsed.orders_file is None:
        run.error("--stock: only with --orders-file (the generated mix stocks itself)")

    try:
        return demo.main(demo.options_from(parsed))
    except (ConfigError, StackFileError, FaultError, DeployError, demo.DemoInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
