"""Event source mappings: a function consuming an SQS queue, a DynamoDB stream or Kinesis.

`EventSourceMapping` knows both ends, so it grants the function exactly the read
permissions on its source (and the right to send to the on-failure queue of a stream),
and declares the mapping only after that grant exists (Lambda checks the role when the
mapping is created). The mapping invokes the function's `target_arn`: the alias of a
durable function, which Lambda invokes only through a qualified ARN.

Every mapping reports partial batch failures (`ReportBatchItemFailures`): one bad
record is retried or dead-lettered alone instead of failing its whole batch. Stream
sources retry a finite number of times within a finite record age, split failing
batches, and send what still fails to an on-failure queue (created as
`{name}-failures` unless one is given), so a poison record never blocks a shard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.alarms import metric_alarm
from pulumi_eventcraft.event_pattern import validate_pattern
from pulumi_eventcraft.function import DeadLetterQueueLike
from pulumi_eventcraft.iam import Statement, grant_policy
from pulumi_eventcraft.queue import DeadLetterQueue, DeadLetterQueueArgs
from pulumi_eventcraft.table import STREAM_READ_ACTIONS
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

StartingPosition = Literal["TRIM_HORIZON", "LATEST"]
STARTING_POSITIONS: tuple[str, ...] = ("TRIM_HORIZON", "LATEST")
# Lambda's limits (CreateEventSourceMapping).
MAX_SQS_BATCH = 10_000
MAX_FIFO_BATCH = 10
MAX_STREAM_BATCH = 10_000
MAX_BATCHING_WINDOW_SECONDS = 300
MIN_MAXIMUM_CONCURRENCY, MAX_MAXIMUM_CONCURRENCY = 2, 1000
MAX_RETRY_ATTEMPTS = 10_000
MIN_RECORD_AGE_SECONDS, MAX_RECORD_AGE_SECONDS = 60, 604_800
MAX_PARALLELIZATION_FACTOR = 10
# Filters per mapping (default quota) and characters per filter pattern.
MAX_FILTERS = 5
MAX_FILTER_PATTERN_LENGTH = 4096
# AWS: a queue's visibility timeout should be at least 6 x the function timeout (plus
# the batching window), so a throttled batch can be retried before it reappears.
VISIBILITY_TIMEOUT_FACTOR = 6
_DYNAMODB_STREAM_ARN = re.compile(
    r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[^/]+/stream/.+"
)


class QueueSourceLike(Protocol):
    """What an SQS source needs of pulumi_eventcraft.queue.Queue."""

    @property
    def arn(self) -> pulumi.Output[str]: ...
    @property
    def visibility_timeout_seconds(self) -> int: ...
    @property
    def fifo(self) -> bool: ...
    def consume_statements(self) -> list[Statement]: ...


class KinesisStreamLike(Protocol):
    """What a Kinesis source needs of pulumi_eventcraft.stream.Stream."""

    @property
    def arn(self) -> pulumi.Output[str]: ...
    def read_statements(self) -> list[Statement]: ...


class TableStreamLike(Protocol):
    """What a DynamoDB stream source needs of pulumi_eventcraft.table.Table."""

    @property
    def stream_arn(self) -> pulumi.Output[str] | None: ...
    def stream_read_statements(self) -> list[Statement]: ...


class ConsumerLike(Protocol):
    """What a mapping needs of pulumi_eventcraft.function.Function."""

    @property
    def pulumi_resource_name(self) -> str: ...
    @property
    def arn(self) -> pulumi.Output[str]: ...
    @property
    def target_arn(self) -> pulumi.Output[str]: ...
    @property
    def name(self) -> pulumi.Output[str]: ...
    @property
    def role(self) -> aws.iam.Role: ...
    @property
    def timeout_seconds(self) -> int: ...
    @property
    def reserved_concurrency(self) -> int | None: ...


def dynamodb_insert_only() -> dict[str, Any]:
    """The filter pattern that passes only INSERT records of a DynamoDB stream."""
    return {"eventName": ["INSERT"]}


def _check_range(arg: str, value: int, low: int, high: int, unit: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{arg}: {value!r} is outside {low}..{high}{unit}")


@dataclass(frozen=True, kw_only=True)
class SqsSource:
    """An SQS queue as the source.

    - `queue`: the Queue (its visibility timeout is checked against the function's).
    - `batch_size`: 10 (default); 1..10000 (1..10 for FIFO); above 10 needs a batching
      window >= 1 s.
    - `maximum_batching_window_seconds`: 0 (default), 0..300 s; 0 for FIFO.
    - `maximum_concurrency`: None (default, up to 1000 concurrent invocations) or
      2..1000; use it to throttle at the poller instead of the function (backpressure).
    """

    queue: QueueSourceLike
    batch_size: int = 10
    maximum_batching_window_seconds: int = 0
    maximum_concurrency: int | None = None

    def __post_init__(self) -> None:
        fifo = bool(getattr(self.queue, "fifo", False))
        _check_range("batch_size", self.batch_size, 1, MAX_FIFO_BATCH if fifo else MAX_SQS_BATCH)
        _check_range(
            "maximum_batching_window_seconds",
            self.maximum_batching_window_seconds,
            0,
            0 if fifo else MAX_BATCHING_WINDOW_SECONDS,
            " seconds" + (" (FIFO queues take no batching window)" if fifo else ""),
        )
        if self.batch_size > MAX_FIFO_BATCH and self.maximum_batching_window_seconds < 1:
            raise ValueError(
                f"maximum_batching_window_seconds: a batch_size of {self.batch_size} (> 10) "
                "needs a batching window of at least 1 second"
            )
        if self.maximum_concurrency is not None:
            _check_range(
                "maximum_concurrency",
                self.maximum_concurrency,
                MIN_MAXIMUM_CONCURRENCY,
                MAX_MAXIMUM_CONCURRENCY,
            )


@dataclass(frozen=True, kw_only=True)
class _StreamSource:
    """Settings shared by DynamoDB and Kinesis stream sources (see their docstrings)."""

    starting_position: StartingPosition = "TRIM_HORIZON"
    batch_size: int = 100
    maximum_batching_window_seconds: int = 0
    filter_patterns: Sequence[Mapping[str, Any]] = ()
    bisect_on_error: bool = True
    maximum_retry_attempts: int = 5
    maximum_record_age_seconds: int = 3600
    on_failure: DeadLetterQueueLike | None = None
    parallelization_factor: int = 1

    def __post_init__(self) -> None:
        if self.starting_position not in STARTING_POSITIONS:
            raise ValueError(
                f"starting_position: {self.starting_position!r} is not allowed; use one of "
                f"{', '.join(STARTING_POSITIONS)}"
            )
        _check_range("batch_size", self.batch_size, 1, MAX_STREAM_BATCH)
        _check_range(
            "maximum_batching_window_seconds",
            self.maximum_batching_window_seconds,
            0,
            MAX_BATCHING_WINDOW_SECONDS,
            " seconds",
        )
        # -1 means "forever" to Lambda: a poison record would block its shard for the
        # stream's whole retention. Both limits must be finite.
        if self.maximum_retry_attempts == -1:
            raise ValueError(
                "maximum_retry_attempts: -1 (infinite retries) is refused: a failing record "
                f"would block its shard; use 0..{MAX_RETRY_ATTEMPTS} (default 5)"
            )
        _check_range("maximum_retry_attempts", self.maximum_retry_attempts, 0, MAX_RETRY_ATTEMPTS)
        if self.maximum_record_age_seconds == -1:
            raise ValueError(
                "maximum_record_age_seconds: -1 (no age limit) is refused: a failing record "
                f"would block its shard; use {MIN_RECORD_AGE_SECONDS}..{MAX_RECORD_AGE_SECONDS} "
                "seconds (default 3600)"
            )
        _check_range(
            "maximum_record_age_seconds",
            self.maximum_record_age_seconds,
            MIN_RECORD_AGE_SECONDS,
            MAX_RECORD_AGE_SECONDS,
            " seconds",
        )
        _check_range(
            "parallelization_factor", self.parallelization_factor, 1, MAX_PARALLELIZATION_FACTOR
        )
        if getattr(self.on_failure, "fifo", False) is True:
            raise ValueError(
                "on_failure: a stream's on-failure destination cannot be a FIFO queue; "
                "use a standard DeadLetterQueue (or None to create one)"
            )
        if len(self.filter_patterns) > MAX_FILTERS:
            raise ValueError(
                f"filter_patterns: {len(self.filter_patterns)} patterns; a mapping takes at "
                f"most {MAX_FILTERS} (the default quota); combine them with $or"
            )
        for index, pattern in enumerate(self.filter_patterns):
            try:
                validate_pattern(pattern, max_length=MAX_FILTER_PATTERN_LENGTH)
            except ValueError as exc:
                raise ValueError(f"filter_patterns[{index}]: {exc}") from None

    def filter_criteria(self) -> aws.lambda_.EventSourceMappingFilterCriteriaArgs | None:
        """The mapping's filter criteria (None without patterns)."""
        if not self.filter_patterns:
            return None
        return aws.lambda_.EventSourceMappingFilterCriteriaArgs(
            filters=[
                aws.lambda_.EventSourceMappingFilterCriteriaFilterArgs(
                    pattern=json.dumps(dict(p), separators=(",", ":"))
                )
                for p in self.filter_patterns
            ]
        )


@dataclass(frozen=True, kw_only=True)
class DynamoDbStreamSource(_StreamSource):
    """A DynamoDB table's stream as the source.

    - `stream`: a Table with a stream, or a stream ARN (read permissions are then
      granted on that ARN).
    - `starting_position`: "TRIM_HORIZON" (default) or "LATEST".
    - `batch_size`: 100 (default), 1..10000 records.
    - `maximum_batching_window_seconds`: 0 (default), 0..300 s.
    - `filter_patterns`: () (default) = every record; else up to 5 patterns (e.g.
      `dynamodb_insert_only()`), validated as event patterns.
    - `bisect_on_error`: True (default): a failing batch is split to isolate the record.
    - `maximum_retry_attempts`: 5 (default), 0..10000; -1 (infinite) is refused.
    - `maximum_record_age_seconds`: 3600 (default), 60..604800 s; -1 is refused.
    - `on_failure`: None (default) = a `{name}-failures` DeadLetterQueue is created;
      else the standard queue that receives records of failed batches.
    - `parallelization_factor`: 1 (default), 1..10 concurrent batches per shard.
    """

    stream: TableStreamLike | pulumi.Input[str]

    def __post_init__(self) -> None:
        table = self._table()
        if isinstance(self.stream, str) and not _DYNAMODB_STREAM_ARN.fullmatch(self.stream):
            raise ValueError(
                f"stream: {self.stream!r} is not a DynamoDB stream ARN "
                "(arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>)"
            )
        if table is not None and table.stream_arn is None:
            raise ValueError(
                "stream: the table has no stream; set TableArgs.stream_view_type "
                "(e.g. 'NEW_IMAGE') to consume it"
            )
        super().__post_init__()

    def _table(self) -> TableStreamLike | None:
        """The Table given as `stream`, or None when an ARN was given."""
        # An Output answers hasattr() for any name (attribute lifting): rule it out first.
        if isinstance(self.stream, str | pulumi.Output) or not hasattr(
            self.stream, "stream_read_statements"
        ):
            return None
        return cast("TableStreamLike", self.stream)

    @property
    def arn(self) -> pulumi.Input[str]:
        """The stream ARN."""
        table = self._table()
        if table is None:
            return cast("pulumi.Input[str]", self.stream)
        arn = table.stream_arn
        assert arn is not None  # checked in __post_init__
        return arn

    def read_statements(self) -> list[Statement]:
        """Read on the stream: the Table's `stream_read_statements()`, or the same on an ARN."""
        table = self._table()
        if table is not None:
            return list(table.stream_read_statements())
        return [Statement(actions=list(STREAM_READ_ACTIONS), resources=[self.arn])]


@dataclass(frozen=True, kw_only=True)
class KinesisSource(_StreamSource):
    """A Kinesis data stream as the source; the same settings as `DynamoDbStreamSource`.

    - `stream`: the Stream (its `read_statements()` are granted).
    - `parallelization_factor`: 1 (default), 1..10 concurrent batches per shard.
    """

    stream: KinesisStreamLike

    @property
    def arn(self) -> pulumi.Input[str]:
        """The stream ARN."""
        return self.stream.arn

    def read_statements(self) -> list[Statement]:
        """The Stream's `read_statements()`."""
        return list(self.stream.read_statements())


Source = SqsSource | DynamoDbStreamSource | KinesisSource


@dataclass(frozen=True, kw_only=True)
class EventSourceMappingArgs:
    """Arguments of an `EventSourceMapping`.

    - `function`: the consuming Function.
    - `source`: an `SqsSource`, `DynamoDbStreamSource` or `KinesisSource`.
    - `enabled`: True (default).
    - `alarms`: True (default): for DynamoDB streams, an IteratorAge alarm (the
      function is `iterator_age_alarm_seconds`, default 300 s, behind the stream; a
      Kinesis Stream has its own lag alarm), and the alarm of a created on-failure queue.
    - `alarm_actions`: SNS topic ARNs the alarms notify; default none.
    - `tags`: None (default); tags of the mapping, its alarm and a created on-failure
      queue.
    """

    function: ConsumerLike
    source: Source
    enabled: bool = True
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    iterator_age_alarm_seconds: int = 300
    tags: Tags = None

    def __post_init__(self) -> None:
        check_tags("EventSourceMappingArgs", self.tags)
        if not isinstance(self.source, SqsSource | DynamoDbStreamSource | KinesisSource):
            raise ValueError(
                f"source: {type(self.source).__name__} is not a source; use SqsSource, "
                "DynamoDbStreamSource or KinesisSource"
            )
        _check_range("iterator_age_alarm_seconds", self.iterator_age_alarm_seconds, 1, 604_800)
        if isinstance(self.source, SqsSource):
            self._check_queue(self.source)

    def _check_queue(self, source: SqsSource) -> None:
        timeout = self.function.timeout_seconds
        window = source.maximum_batching_window_seconds
        visibility = source.queue.visibility_timeout_seconds
        needed = VISIBILITY_TIMEOUT_FACTOR * timeout + window
        if visibility < needed:
            window_note = f" + the {window}s batching window" if window else ""
            raise ValueError(
                f"source.queue: visibility timeout {visibility}s is shorter than "
                f"{VISIBILITY_TIMEOUT_FACTOR} x the function timeout {timeout}s{window_note} "
                f"= {needed}s: a batch could reappear while it is still being processed; "
                f"set the queue's visibility_timeout_seconds to at least {needed} or lower "
                f"the function's timeout_seconds to at most {(visibility - window) // 6}"
            )
        reserved = self.function.reserved_concurrency
        if (
            reserved is not None
            and source.maximum_concurrency is not None
            and source.maximum_concurrency > reserved
        ):
            raise ValueError(
                f"source.maximum_concurrency: {source.maximum_concurrency} exceeds the "
                f"function's reserved_concurrency {reserved}: the extra batches would be "
                f"throttled back to the queue (and on to its DLQ); set it to at most {reserved}"
            )


class EventSourceMapping(pulumi.ComponentResource):
    """A function consuming a source (`eventcraft:index:EventSourceMapping`).

    Children: `{name}-read` (the function's inline policy for the source),
    `{name}-failures` (streams without an `on_failure` queue), `{name}-mapping`, and
    `{name}-iterator-age` (DynamoDB streams, with alarms). Attributes: `mapping`, `policy`,
    `on_failure` (None for SQS), `alarms`, `args`.
    """

    mapping: aws.lambda_.EventSourceMapping
    policy: aws.iam.RolePolicy

    def __init__(
        self,
        name: str,
        args: EventSourceMappingArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if not isinstance(args, EventSourceMappingArgs):
            raise ValueError(f"args: expected EventSourceMappingArgs, got {type(args).__name__}")
        super().__init__("eventcraft:index:EventSourceMapping", name, None, opts)
        self.args = args
        function, source = args.function, args.source
        self.on_failure: DeadLetterQueueLike | None = None
        self.alarms: list[aws.cloudwatch.MetricAlarm] = []

        if isinstance(source, SqsSource):
            statements = list(source.queue.consume_statements())
            source_arn: pulumi.Input[str] = source.queue.arn
        else:
            self.on_failure = source.on_failure or self._failure_queue(name)
            statements = [*source.read_statements(), *self.on_failure.send_statements()]
            source_arn = source.arn
        self.policy = grant_policy(f"{name}-read", function.role, statements, parent=self)

        common: dict[str, Any] = {
            # A durable function is invoked only through its alias (`target_arn`).
            "function_name": function.target_arn,
            "event_source_arn": source_arn,
            "enabled": args.enabled,
            "batch_size": source.batch_size,
            "maximum_batching_window_in_seconds": source.maximum_batching_window_seconds,
            # Only the failed records of a batch are retried (streams support it too).
            "function_response_types": ["ReportBatchItemFailures"],
        }
        if isinstance(source, SqsSource):
            extra: dict[str, Any] = {
                "scaling_config": (
                    aws.lambda_.EventSourceMappingScalingConfigArgs(
                        maximum_concurrency=source.maximum_concurrency
                    )
                    if source.maximum_concurrency is not None
                    else None
                )
            }
        else:
            assert self.on_failure is not None
            extra = {
                "starting_position": source.starting_position,
                "bisect_batch_on_function_error": source.bisect_on_error,
                "maximum_retry_attempts": source.maximum_retry_attempts,
                "maximum_record_age_in_seconds": source.maximum_record_age_seconds,
                "parallelization_factor": source.parallelization_factor,
                "filter_criteria": source.filter_criteria(),
                "destination_config": aws.lambda_.EventSourceMappingDestinationConfigArgs(
                    on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                        destination_arn=self.on_failure.arn
                    )
                ),
            }
        self.mapping = aws.lambda_.EventSourceMapping(
            f"{name}-mapping",
            **common,
            **extra,
            tags=tag_input(args.tags),
            # Lambda checks the role can read the source when the mapping is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy]),
        )

        # A Kinesis Stream alarms on its consumers' lag itself; a table has no such alarm.
        if args.alarms and isinstance(source, DynamoDbStreamSource):
            self.alarms.append(
                metric_alarm(
                    f"{name}-iterator-age",
                    namespace="AWS/Lambda",
                    metric_name="IteratorAge",
                    dimensions={"FunctionName": function.name},
                    threshold=args.iterator_age_alarm_seconds * 1000,  # the metric is in ms
                    statistic="Maximum",
                    alarm_actions=args.alarm_actions,
                    description=(
                        f"{name}: {function.pulumi_resource_name} is "
                        f">= {args.iterator_age_alarm_seconds}s behind its stream"
                    ),
                    parent=self,
                    tags=args.tags,
                )
            )
        self.register_outputs({"uuid": self.mapping.uuid})

    def _failure_queue(self, name: str) -> DeadLetterQueueLike:
        return DeadLetterQueue(
            f"{name}-failures",
            DeadLetterQueueArgs(
                alarms=self.args.alarms,
                alarm_actions=self.args.alarm_actions,
                tags=self.args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
