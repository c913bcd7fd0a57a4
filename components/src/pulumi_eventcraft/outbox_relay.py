"""The outbox relay: publishes each new outbox row of a table's stream to an event bus.

Rows are written by `eventcraft.outbox.write` in the same DynamoDB transaction as the
business change; this component delivers them: the outbox table's stream -> a Lambda
event source mapping -> the relay function (`eventcraft.outbox.relay`) -> PutEvents on
the bus, then the row is marked published (which also sets its TTL).

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

The handler contract (`function.handler`, the caller's own module): it reads
`EVENT_BUS_NAME` and `OUTBOX_TABLE` from its environment (set here), calls
`eventcraft.outbox.relay(event["Records"], ...)` and returns `.batch_response()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import pulumi

from pulumi_eventcraft.event_source import (
    MAX_RECORD_AGE_SECONDS,
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
)
from pulumi_eventcraft.function import DeadLetterQueueLike, Function, FunctionArgs
from pulumi_eventcraft.iam import Statement
from pulumi_eventcraft.table import Table
from pulumi_eventcraft.tags import Tags, check_tags

# The outbox row layout of eventcraft.outbox: key, key prefix and TTL attribute.
OUTBOX_KEY: Final = "pk"
OUTBOX_KEY_PREFIX: Final = "outbox#"
OUTBOX_TTL_ATTRIBUTE: Final = "expiresAt"
BUS_ENV: Final = "EVENT_BUS_NAME"
TABLE_ENV: Final = "OUTBOX_TABLE"
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
    """The relay function, its stream mapping, its grants, dead-letter queue and alarms.

    Children: `<name>-function` (a Function, with the grants `put-events` and
    `mark-published`) and `<name>-stream` (an EventSourceMapping: the stream read grant,
    the mapping, the on-failure queue and the iterator-age alarm).
    Attributes: `function`, `event_source_mapping`, `dead_letter_queue`.
    """

    function: Function
    event_source_mapping: EventSourceMapping
    dead_letter_queue: DeadLetterQueueLike

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
        if table.args.kms_key_arn is not None:
            mark.append(
                Statement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[table.args.kms_key_arn],
                )
            )
        self.function.grant("mark-published", mark)

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
        self.register_outputs(
            {"functionArn": self.function.arn, "deadLetterQueueArn": on_failure.arn}
        )


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
