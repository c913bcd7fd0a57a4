"""The `python -m ops` command line.

    python -m ops [--stack NAME | --outputs FILE] [--region R] [--profile P]
                  [--endpoint-url URL] [--json] COMMAND ...

    replay start --from ISO --to ISO [--rules RULE,...] [--name N] [--watch]
    replay watch NAME [--timeout S] [--interval S]
    dlq list
    dlq inspect QUEUE [--max N]
    dlq redrive QUEUE [--to bus|QUEUE] [--max N] [--dry-run]
    outbox list [--older-than S] [--max N]
    outbox republish [--older-than S] [--max N] [--dry-run]
    order show ORDER_ID [--max-executions N] [--last-events N]
    events put --detail-type T --detail JSON|@FILE|- [--source S]
    events sample DETAIL_TYPE

The common options may come before or after the command. Output: a human-readable
report, or with --json one JSON document on stdout (progress lines go to stderr).
Exit codes: 0 ok, 1 the operation failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from ops import dlq, events, orders, outbox, replay
from ops.aws import Clients, describe_aws_error
from ops.errors import EXIT_USAGE, OpsError
from ops.outputs import StackOutputs, load
from ops.render import to_json
from ops.result import Result

OutputsLoader = Callable[[argparse.Namespace], StackOutputs]


def _common() -> argparse.ArgumentParser:
    """The options every command takes; SUPPRESS keeps a value given before the command
    from being reset by the subcommand's default."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("stack and AWS")
    group.add_argument(
        "--stack", default=argparse.SUPPRESS, help="read outputs with `pulumi stack output --json`"
    )
    group.add_argument(
        "--outputs",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="the JSON of `pulumi stack output --json`, saved to FILE",
    )
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: env)")
    group.add_argument("--profile", default=argparse.SUPPRESS, help="AWS profile (default: env)")
    group.add_argument(
        "--endpoint-url", default=argparse.SUPPRESS, help="an AWS emulator's endpoint"
    )
    group.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for machines"
    )
    return common


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _age(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="python -m ops",
        description=(
            "Operate a deployed order-saga stack: replays, DLQs, the outbox, orders, test events."
        ),
        parents=[common],
        epilog="Exit codes: 0 ok, 1 the operation failed, 2 bad usage or configuration.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay_parser = commands.add_parser("replay", help="replay archived events to the bus")
    replay_commands = replay_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = replay_commands.add_parser(
        "start", parents=[common], help="start a replay of a time window from the archive"
    )
    start.add_argument("--from", dest="start", required=True, metavar="ISO", help="window start")
    start.add_argument("--to", dest="end", required=True, metavar="ISO", help="window end, or now")
    start.add_argument(
        "--rules", default="", metavar="RULE,...", help="only these rules' targets (names or ARNs)"
    )
    start.add_argument("--name", help="the replay's name (default: ops-<from>-<now>)")
    start.add_argument("--watch", action="store_true", help="then watch it until it ends")
    _watch_options(start)
    watch = replay_commands.add_parser(
        "watch", parents=[common], help="poll a replay until it completes, fails or is cancelled"
    )
    watch.add_argument("name", metavar="NAME")
    _watch_options(watch)

    dlq_parser = commands.add_parser("dlq", help="dead-letter queues")
    dlq_commands = dlq_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    dlq_commands.add_parser(
        "list", parents=[common], help="every DLQ with its depth and oldest message"
    )
    inspect = dlq_commands.add_parser(
        "inspect", parents=[common], help="summarise a DLQ's messages without consuming them"
    )
    inspect.add_argument("queue", metavar="QUEUE", help="output name, queue name, URL or ARN")
    inspect.add_argument("--max", type=_positive_int, default=dlq.DEFAULT_MAX, metavar="N")
    redrive = dlq_commands.add_parser(
        "redrive", parents=[common], help="move a DLQ's messages back to their source"
    )
    redrive.add_argument("queue", metavar="QUEUE", help="output name, queue name, URL or ARN")
    redrive.add_argument(
        "--to",
        metavar="SOURCE",
        help="`bus`, or a queue (output name, name, URL, ARN); default: each message's source",
    )
    redrive.add_argument("--max", type=_positive_int, default=dlq.DEFAULT_MAX, metavar="N")
    redrive.add_argument("--dry-run", action="store_true", help="show where each would go")

    outbox_parser = commands.add_parser("outbox", help="outbox rows not yet published")
    outbox_commands = outbox_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = outbox_commands.add_parser(
        "list", parents=[common], help="the unpublished outbox rows, oldest first"
    )
    republish = outbox_commands.add_parser(
        "republish", parents=[common], help="publish the unpublished outbox rows and mark them"
    )
    for sub in (listing, republish):
        sub.add_argument(
            "--older-than",
            type=_age,
            default=outbox.DEFAULT_OLDER_THAN,
            metavar="S",
            help="only rows written at least S seconds ago (default %(default)s: rows the "
            "relay is still publishing are left to it)",
        )
        sub.add_argument("--max", type=_positive_int, default=outbox.DEFAULT_MAX, metavar="N")
    republish.add_argument("--dry-run", action="store_true", help="show which rows would go")

    order_parser = commands.add_parser("order", help="orders")
    order_commands = order_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = order_commands.add_parser(
        "show", parents=[common], help="an order's saga state, history and execution"
    )
    show.add_argument("order_id", metavar="ORDER_ID")
    show.add_argument(
        "--max-executions",
        type=_positive_int,
        default=orders.DEFAULT_MAX_EXECUTIONS,
        metavar="N",
        help="newest executions searched for the order (default %(default)s)",
    )
    show.add_argument(
        "--last-events", type=_positive_int, default=orders.DEFAULT_LAST_EVENTS, metavar="N"
    )

    events_parser = commands.add_parser("events", help="test events")
    events_commands = events_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = events_commands.add_parser(
        "put", parents=[common], help="validate an event against its contract and put it"
    )
    put.add_argument("--detail-type", required=True, metavar="T")
    put.add_argument("--detail", required=True, metavar="JSON", help="JSON, @FILE or - (stdin)")
    put.add_argument("--source", metavar="S", help="default: the contract's source")
    sample = events_commands.add_parser(
        "sample", parents=[common], help="print a valid sample detail"
    )
    sample.add_argument("detail_type", metavar="DETAIL_TYPE")
    return parser


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=replay.DEFAULT_TIMEOUT_SECONDS,
        help="stop watching after this many seconds (default %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=replay.DEFAULT_INTERVAL_SECONDS,
        help="seconds between polls (default %(default)s)",
    )


def _outputs(args: argparse.Namespace) -> StackOutputs:
    return load(outputs_file=getattr(args, "outputs", None), stack=getattr(args, "stack", None))


@dataclass(frozen=True)
class Context:
    """What a command runs with."""

    args: argparse.Namespace
    clients: Clients
    outputs: OutputsLoader
    progress: Callable[[str], None]
    sleep: Callable[[float], None]

    def stack(self) -> StackOutputs:
        return self.outputs(self.args)


def _replay_start(ctx: Context) -> Result:
    args = ctx.args
    started = replay.start(
        ctx.clients,
        ctx.stack(),
        start_text=args.start,
        end_text=args.end,
        rules=[r.strip() for r in args.rules.split(",") if r.strip()],
        name=args.name,
    )
    if not args.watch:
        return started
    ctx.progress(started.text)
    watched = _watch(ctx, started.data["replayName"])
    return Result({**started.data, "watch": watched.data}, watched.text, watched.exit_code)


def _watch(ctx: Context, name: str) -> Result:
    return replay.watch(
        ctx.clients,
        name,
        interval=ctx.args.interval,
        timeout=ctx.args.timeout,
        progress=ctx.progress,
        sleep=ctx.sleep,
    )


COMMANDS: dict[tuple[str, str], Callable[[Context], Result]] = {
    ("replay", "start"): _replay_start,
    ("replay", "watch"): lambda ctx: _watch(ctx, ctx.args.name),
    ("dlq", "list"): lambda ctx: dlq.list_dlqs(ctx.clients, ctx.stack()),
    ("dlq", "inspect"): lambda ctx: dlq.inspect(
        ctx.clients, ctx.stack(), ctx.args.queue, limit=ctx.args.max
    ),
    ("dlq", "redrive"): lambda ctx: dlq.redrive(
        ctx.clients,
        ctx.stack(),
        ctx.args.queue,
        to=ctx.args.to,
        limit=ctx.args.max,
        dry_run=ctx.args.dry_run,
        sleep=ctx.sleep,
    ),
    ("outbox", "list"): lambda ctx: outbox.list_rows(
        ctx.clients, ctx.stack(), older_than=ctx.args.older_than, limit=ctx.args.max
    ),
    ("outbox", "republish"): lambda ctx: outbox.republish(
        ctx.clients,
        ctx.stack(),
        older_than=ctx.args.older_than,
        limit=ctx.args.max,
        dry_run=ctx.args.dry_run,
        sleep=ctx.sleep,
    ),
    ("order", "show"): lambda ctx: orders.show(
        ctx.clients,
        ctx.stack(),
        ctx.args.order_id,
        max_executions=ctx.args.max_executions,
        last_events=ctx.args.last_events,
    ),
    ("events", "put"): lambda ctx: events.put(
        ctx.clients,
        ctx.stack(),
        detail_type=ctx.args.detail_type,
        detail_text=ctx.args.detail,
        source=ctx.args.source,
        sleep=ctx.sleep,
    ),
    ("events", "sample"): lambda ctx: events.sample(ctx.args.detail_type),
}


def main(
    argv: Sequence[str] | None = None,
    *,
    clients: Clients | None = None,
    outputs: OutputsLoader = _outputs,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed, 2 bad usage/config)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    as_json = bool(getattr(args, "json", False))
    clients = clients or Clients(
        region=getattr(args, "region", None),
        profile=getattr(args, "profile", None),
        endpoint_url=getattr(args, "endpoint_url", None),
    )

    def progress(line: str) -> None:
        print(line, file=err if as_json else out, flush=True)

    try:
        command = COMMANDS[(args.command, args.action)]
        result = command(Context(args, clients, outputs, progress, sleep))
    except OpsError as exc:
        return _fail(exc, as_json, out, err)
    except (ClientError, BotoCoreError) as exc:
        return _fail(describe_aws_error(exc, f"{args.command} {args.action}"), as_json, out, err)
    print(to_json(result.data) if as_json else result.text, file=out)
    if as_json and result.exit_code:
        print(result.text, file=err)  # why it failed, for the human watching the machine
    return result.exit_code


def _fail(exc: OpsError, as_json: bool, out: TextIO, err: TextIO) -> int:
    print(f"ops: error: {exc}", file=err)
    if as_json:
        error: dict[str, Any] = {"error": str(exc), "exitCode": exc.exit_code}
        print(to_json(error), file=out)
    return exc.exit_code
