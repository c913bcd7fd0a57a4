"""`python -m eventcraft_sandbox`: the sandbox's command line.

up [--stack dev] [--program-dir .]   deploy the program into the sandbox (an in-process
   [--concurrency-quota 1000]        moto) and print a table of what was created (like
                                     `pulumi up`); the account's Lambda concurrency
                                     quota is 1000 unless given
test-event-pattern ...               mirrors `aws events test-event-pattern`

`up` exits with status 2, printing the error, when the stack cannot be deployed: a bad
stack config, or a resource AWS would refuse (the sandbox refuses it the same way, with
AWS's error) or accept uselessly (an alarm on a metric AWS never publishes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eventcraft_sandbox.quotas import DEFAULT_CONCURRENCY_QUOTA, concurrency_quota_option
from eventcraft_sandbox.stack_files import StackFileError
from pulumi_eventcraft.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["test-event-pattern"]:
        from eventcraft_sandbox.test_event_pattern import main as test_event_pattern

        return test_event_pattern(args[1:])

    parser = argparse.ArgumentParser(
        prog="python -m eventcraft_sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="deploy a stack into the sandbox and print what it created")
    up.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml")
    up.add_argument(
        "--program-dir",
        type=Path,
        default=Path(),
        help="the Pulumi program's directory: __main__.py, Pulumi.yaml, Pulumi.<stack>.yaml "
        "(default: the current directory)",
    )
    up.add_argument(
        "--concurrency-quota",
        type=concurrency_quota_option,
        default=DEFAULT_CONCURRENCY_QUOTA,
        metavar="N",
        help="the account's Lambda concurrent executions quota: reservations that would "
        f"leave fewer than 100 unreserved fail the deploy, as on AWS (default "
        f"{DEFAULT_CONCURRENCY_QUOTA})",
    )
    commands.add_parser("test-event-pattern", help="test an event pattern against an event")
    parsed = parser.parse_args(args)

    if parsed.command == "up":
        return _up(parsed)
    return 2  # pragma: no cover (argparse rejects unknown commands)


def _up(parsed: argparse.Namespace) -> int:
    from eventcraft_sandbox.moto_deploy import DeployError, Sandbox
    from eventcraft_sandbox.speedups import speedups
    from eventcraft_sandbox.stack_files import project_name

    program_dir: Path = parsed.program_dir
    try:
        project = project_name(program_dir)
        with speedups(), Sandbox(concurrency_quota=parsed.concurrency_quota) as sandbox:
            deployment = sandbox.deploy(
                program_dir / "__main__.py", stack=parsed.stack, project=project
            )
            print(deployment.summary())
    except (ConfigError, StackFileError, DeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
