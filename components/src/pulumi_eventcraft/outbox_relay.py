"""The outbox relay: publishes each new outbox row of a table's stream to an event bus,
and its sweeper publishes the rows the relay gave up on.

Rows are written by `eventcraft.outbox.write` in the same DynamoDB transaction as the
business change; this component delivers them: the outbox table's stream -> a Lambda
event source mapping -> the relay function (`eventcraft.outbox.relay`) -> PutEvents on
the bus, then the row is marked published (which also sets its TTL).

The relay gives up on a record after its retries (an EventBridge outage longer than its
retry budget); its dead-letter queue then gets a pointer to the stream records, and the
rows stay in the table, unpublished. The sweeper (`sweeper`: a function calling
`eventcraft.outbox.sweep`, run by a scheduled rule, every 5 minutes by default)
republishes every row still unpublished `sweep_after_seconds` after it was written,
found through the table's sparse `pending` index. Relay and sweeper mark rows with the
same conditional update, so neither undoes the other; a row both publish goes out twice,
which consumers absorb (they are idempotent on the event id).

Why a function and not EventBridge Pipes (which would run no code, and was preferred).
A pipe (DynamoDB stream source, event bus target) can take DetailType, Source and Time
from the record with dynamic path parameters (`$.dynamodb.NewImage.detailType.S`), but
it cannot produce the event's *detail*:
- the row stores `detail` as the event's JSON text, published byte for byte (the
  contracts serialize it; the relay must not re-encode it). A pipe input template
  inserts a string attribute (`<$.dynamodb.NewImage.detail.S>`) as a JSON *string*,
  so consumers would get `"detail": "{\\"id\\": ...}"` and no rule could match on
  detail fields (e.g. a rule on `detail.amount`);
- storing `detail` as a DynamoDB map instead does not help: the stream carries it in
  DynamoDB's typed JSON (`{"M": {"amount": {"N": "1500"}}}`) and input templates
  cannot strip the type descriptors (numbers would arrive as strings), short of naming
  every field of every event in the template;
- the row must be marked published and given its TTL after publishing (a pipe cannot
  write back), or the outbox table grows forever;
- and moto, which the sandbox and tests run on, creates pipes but delivers nothing,
  while it does run event source mappings into Lambda.
So the relay is a function, fed by a `pulumi_eventcraft.event_source.EventSourceMapping`:
INSERT records of outbox rows only (a filter; MODIFY is the relay's own `published`
update, REMOVE the TTL), partial batch failure reporting (only the failed records are
retried), failing batches bisected, finite retries and record age, and an on-failure
queue with an alarm. For stream sources that queue receives a pointer to the failed
records (shard and sequence numbers), not the rows; the rows stay in the table with
`published = false`, which is what a redrive republishes from.

The handler contracts (the caller's own modules): the relay (`function.handler`) reads
`EVENT_BUS_NAME` and `OUTBOX_TABLE` from its environment (set here), calls
`eventcraft.outbox.relay(event["Records"], ...)` and returns `.batch_response()`; the
sweeper (`sweeper.handler`) reads the same two and `SWEEP_AFTER_SECONDS`, calls
`eventcraft.outbox.sweep(...)` and raises (`SweepIncompleteError`) when rows are left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import pulumi

from pulumi_eventcraft.event_rule import EventRule, EventRuleArgs, LambdaTarget
from pulumi_eventcraft.event_source import (
    MAX_RECORD_AGE_SECONDS,
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
)
from pulumi_eventcraft.function import DeadLetterQueueLike, Function, FunctionArgs
from pulumi_eventcraft.iam import Statement
from pulumi_eventcraft.schedule import InvalidScheduleError, parse_schedule
from pulumi_eventcraft.table import OUTBOX_PENDING_INDEX, Table
from pulumi_eventcraft.tags import Tags, check_tags

# The outbox row layout of eventcraft.outbox: key, key prefix and TTL attribute.
OUTBOX_KEY: Final = "pk"
OUTBOX_KEY_PREFIX: Final = "outbox#"
OUTBOX_TTL_ATTRIBUTE: Final = "expiresAt"
BUS_ENV: Final = "EVENT_BUS_NAME"
TABLE_ENV: Final = "OUTBOX_TABLE"
SWEEP_AFTER_ENV: Final = "SWEEP_AFTER_SECONDS"
MIN_SWEEP_AFTER_SECONDS, MAX_SWEEP_AFTER_SECONDS = 60, 604_800
# New outbox rows only: MODIFY is the relay's own `published` update, REMOVE the TTL,
# and rows of other kinds may share the table.
INSERT_FILTER: Final[dict[str, Any]] = {
    "eventName": ["INSERT"],
    "dynamodb": {"NewImage": {OUTBOX_KEY: {"S": [{"prefix": OUTBOX_KEY_PREFIX}]}}},
}


class EventBusLike(Protocol):
    """What the relay needs of a bus: its name (for the handler) and the right to put."""

    @property
    def name(self) -> pulumi.Output[str]: ...

    def put_events_statements(self) -> list[Statement]: ...


@dataclass(frozen=True, kw_only=True)
class OutboxRelayArgs:
    """Arguments of an OutboxRelay; the defaults are the safe choice.

    table: the outbox Table (`table.outbox_table()`): key `pk` alone, a NEW_IMAGE (or
        NEW_AND_OLD_IMAGES) stream, TTL on `expiresAt`.
    bus: the EventBus the rows are published to.
    function: the relay's FunctionArgs (required: its handler, code folder and limits;
        60 s is a good timeout); EVENT_BUS_NAME and OUTBOX_TABLE are always set to
        `bus` and `table`.
    sweeper: the sweeper's FunctionArgs (required: its handler, e.g. one calling
        `eventcraft.outbox.sweep`, code folder and limits; EVENT_BUS_NAME, OUTBOX_TABLE
        and SWEEP_AFTER_SECONDS are always set), or False for no sweeper: rows the relay
        gave up on then stay unpublished until someone republishes them by hand.
    sweep_schedule: when the sweeper runs, a schedule expression (default
        "rate(5 minutes)").
    sweep_after_seconds: the sweeper republishes rows still unpublished this long after
        they were written, in seconds (default 120, 60..604800); the relay publishes
        within seconds and gives up minutes into an outage.
    starting_position: "TRIM_HORIZON" (default: rows written before the mapping existed
        are relayed too) or "LATEST".
    batch_size: stream records per invocation (default 100, 1..10000).
    maximum_batching_window_seconds: wait to fill a batch, in seconds (default 0: relay
        at once; 0..300).
    maximum_retry_attempts: retries of a failing batch (default 10, finite: 0..10000).
    maximum_record_age_seconds: records older than this go to the dead-letter queue
        instead of blocking their shard (default 3600 s, 60..604800).
    bisect_on_error: split a failing batch to isolate the bad record (default True).
    parallelization_factor: concurrent batches per shard (default 1: the rows of a shard
        are relayed in order; 1..10).
    dead_letter_queue: a standard queue for the records that exhausted their retries or
        age (default None: a `<name>-stream-failures` DeadLetterQueue with its alarm).
    iterator_age_alarm_seconds: alarm when the oldest unrelayed row is this old, in
        seconds (default 300).
    alarms: the iterator-age alarm and the created queue's alarm (default True; the
        function's own alarms are set in `function`).
    alarm_actions: SNS topic ARNs the alarms notify (default none).
    tags: passed to the function (under its own `function.tags`) and the stream mapping
        (default none).
    """

    table: Table
    bus: EventBusLike
    function: FunctionArgs
    sweeper: FunctionArgs | Literal[False]
    sweep_schedule: str = "rate(5 minutes)"
    sweep_after_seconds: int = 120
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    batch_size: int = 100
    maximum_batching_window_seconds: int = 0
    maximum_retry_attempts: int = 10
    maximum_record_age_seconds: int = 3600
    bisect_on_error: bool = True
    parallelization_factor: int = 1
    dead_letter_queue: DeadLetterQueueLike | None = None
    iterator_age_alarm_seconds: int = 300
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    tags: Tags = None


class OutboxRelay(pulumi.ComponentResource):
    """The relay function, its stream mapping, its grants, dead-letter queue and alarms,
    and the sweeper.

    Children: `<name>-function` (a Function, with the grants `put-events` and
    `mark-published`), `<name>-stream` (an EventSourceMapping: the stream read grant,
    the mapping, the on-failure queue and the iterator-age alarm), and unless `sweeper`
    is False `<name>-sweeper` (a Function, grants `put-events` and `sweep`) run by
    `<name>-sweep` (a scheduled EventRule on the default bus, its target's DLQ and alarms).
    Attributes: `function`, `event_source_mapping`, `dead_letter_queue`, `sweeper` and
    `sweep_rule` (None without a sweeper).
    """

    function: Function
    event_source_mapping: EventSourceMapping
    dead_letter_queue: DeadLetterQueueLike
    sweeper: Function | None
    sweep_rule: EventRule | None

    def __init__(
        self, name: str, args: OutboxRelayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        source = _validate(args)
        table = args.table
        base = args.function
        # The handler must publish to this bus and mark rows of this table, whatever
        # the caller's environment says.
        function_args = dataclasses.replace(
            base,
            environment={**base.environment, BUS_ENV: args.bus.name, TABLE_ENV: table.name},
            tags={**(args.tags or {}), **(base.tags or {})} or None,
        )
        super().__init__("eventcraft:index:OutboxRelay", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.function = Function(f"{name}-function", function_args, opts=child)
        self.function.grant("put-events", args.bus.put_events_statements())
        # Marking a row published is one conditional UpdateItem (which sets its TTL).
        mark = [Statement(actions=["dynamodb:UpdateItem"], resources=[table.arn])]
        self.function.grant("mark-published", [*mark, *_key_statements(table)])

        self.event_source_mapping = EventSourceMapping(
            f"{name}-stream",
            EventSourceMappingArgs(
                function=self.function,
                source=source,
                alarms=args.alarms,
                alarm_actions=args.alarm_actions,
                iterator_age_alarm_seconds=args.iterator_age_alarm_seconds,
                tags=args.tags,
            ),
            opts=child,
        )
        on_failure = self.event_source_mapping.on_failure
        assert on_failure is not None  # a stream mapping always has one
        self.dead_letter_queue = on_failure

        self.sweeper = None
        self.sweep_rule = None
        if args.sweeper is not False:
            self._declare_sweeper(name, args, args.sweeper, child)
        self.register_outputs(
            {
                "functionArn": self.function.arn,
                "deadLetterQueueArn": on_failure.arn,
                "sweeperArn": self.sweeper.arn if self.sweeper is not None else None,
            }
        )

    def _declare_sweeper(
        self,
        name: str,
        args: OutboxRelayArgs,
        sweeper: FunctionArgs,
        child: pulumi.ResourceOptions,
    ) -> None:
        table = args.table
        function_args = dataclasses.replace(
            sweeper,
            environment={
                **sweeper.environment,
                BUS_ENV: args.bus.name,
                TABLE_ENV: table.name,
                SWEEP_AFTER_ENV: str(args.sweep_after_seconds),
            },
            tags={**(args.tags or {}), **(sweeper.tags or {})} or None,
        )
        self.sweeper = Function(f"{name}-sweeper", function_args, opts=child)
        self.sweeper.grant("put-events", args.bus.put_events_statements())
        # Find the unpublished rows in the pending index, mark each one published.
        index = pulumi.Output.concat(table.arn, "/index/", OUTBOX_PENDING_INDEX.name)
        sweep = [
            Statement(actions=["dynamodb:Query"], resources=[index]),
            Statement(actions=["dynamodb:UpdateItem"], resources=[table.arn]),
        ]
        self.sweeper.grant("sweep", [*sweep, *_key_statements(table)])
        self.sweep_rule = EventRule(
            f"{name}-sweep",
            EventRuleArgs(
                bus="default",
                schedule=args.sweep_schedule,
                description=(
                    f"{name}: republish the outbox rows still unpublished "
                    f"{args.sweep_after_seconds} s after they were written"
                ),
                alarms=args.alarms,
                alarm_actions=args.alarm_actions,
                tags=args.tags,
            ),
            opts=child,
        )
        self.sweep_rule.add_target(LambdaTarget.of(self.sweeper))


def _key_statements(table: Table) -> list[Statement]:
    """The table's customer-managed key, used to read and write its items (if any)."""
    if table.args.kms_key_arn is None:
        return []
    return [
        Statement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[table.args.kms_key_arn]
        )
    ]


def _validate(args: OutboxRelayArgs) -> DynamoDbStreamSource:
    """Check the args; return the stream source (its own checks name the bad arg)."""
    check_tags("OutboxRelayArgs", args.tags)
    table = args.table
    if not isinstance(table, Table):
        raise ValueError(f"OutboxRelayArgs.table: expected a Table, got {type(table).__name__}")
    where = f"OutboxRelayArgs.table: {table.pulumi_resource_name!r}"
    view = table.args.stream_view_type
    if view not in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        raise ValueError(
            f"{where} has stream view {view!r}; the relay reads the new row from the stream: "
            "use table.outbox_table() (NEW_IMAGE) or NEW_AND_OLD_IMAGES"
        )
    if table.args.hash_key.name != OUTBOX_KEY or table.args.range_key is not None:
        raise ValueError(
            f"{where} must be keyed by {OUTBOX_KEY!r} alone (the outbox row layout of "
            "eventcraft.outbox); use table.outbox_table()"
        )
    if table.args.ttl_attribute != OUTBOX_TTL_ATTRIBUTE:
        raise ValueError(
            f"{where} has TTL attribute {table.args.ttl_attribute!r}; the relay sets "
            f"{OUTBOX_TTL_ATTRIBUTE!r} on published rows, which would then never expire"
        )
    if not 1 <= args.iterator_age_alarm_seconds <= MAX_RECORD_AGE_SECONDS:
        raise ValueError(
            "OutboxRelayArgs.iterator_age_alarm_seconds: "
            f"{args.iterator_age_alarm_seconds!r} is outside 1..{MAX_RECORD_AGE_SECONDS} seconds"
        )
    if not isinstance(args.function, FunctionArgs):
        raise ValueError(
            f"OutboxRelayArgs.function: expected FunctionArgs, got {type(args.function).__name__}"
        )
    if args.sweeper is not False:
        _validate_sweeper(args, where)
    try:
        return DynamoDbStreamSource(
            stream=table,
            starting_position=args.starting_position,
            batch_size=args.batch_size,
            maximum_batching_window_seconds=args.maximum_batching_window_seconds,
            filter_patterns=[INSERT_FILTER],
            bisect_on_error=args.bisect_on_error,
            maximum_retry_attempts=args.maximum_retry_attempts,
            maximum_record_age_seconds=args.maximum_record_age_seconds,
            on_failure=args.dead_letter_queue,
            parallelization_factor=args.parallelization_factor,
        )
    except ValueError as exc:
        raise ValueError(f"OutboxRelayArgs.{exc}") from None


def _validate_sweeper(args: OutboxRelayArgs, where: str) -> None:
    if not isinstance(args.sweeper, FunctionArgs):
        raise ValueError(
            "OutboxRelayArgs.sweeper: expected FunctionArgs, or False for no sweeper; got "
            f"{type(args.sweeper).__name__}"
        )
    if OUTBOX_PENDING_INDEX not in args.table.args.global_secondary_indexes:
        raise ValueError(
            f"{where} has no index {OUTBOX_PENDING_INDEX.name!r} (pendingShard, createdAt): the "
            "sweeper finds the unpublished rows through it; use table.outbox_table()"
        )
    try:
        parse_schedule(args.sweep_schedule)
    except InvalidScheduleError as exc:
        raise ValueError(f"OutboxRelayArgs.sweep_schedule: {exc}") from None
    if not MIN_SWEEP_AFTER_SECONDS <= args.sweep_after_seconds <= MAX_SWEEP_AFTER_SECONDS:
        raise ValueError(
            f"OutboxRelayArgs.sweep_after_seconds: {args.sweep_after_seconds!r} is outside "
            f"{MIN_SWEEP_AFTER_SECONDS}..{MAX_SWEEP_AFTER_SECONDS} seconds"
        )
