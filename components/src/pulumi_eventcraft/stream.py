"""Kinesis data streams: KMS-encrypted, on-demand by default, alarmed on consumer lag.

A `Stream` is encrypted at rest with KMS (the AWS-managed `alias/aws/kinesis` key unless
a customer key ARN is given), scales on demand unless given a shard count, keeps records
24 hours, and alarms when the oldest record its consumers have yet to read gets old
(`GetRecords.IteratorAgeMilliseconds`): a stuck consumer is the one failure a stream's
own retries never surface, and records past retention are gone.

Access: `put_statements()` for producers, `read_statements()` for what a Lambda event
source mapping (standard iterator) needs, each scoped to this stream's ARN.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.alarms import metric_alarm
from pulumi_eventcraft.iam import Statement
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

StreamMode = Literal["ON_DEMAND", "PROVISIONED"]
STREAM_MODES: tuple[str, ...] = ("ON_DEMAND", "PROVISIONED")
MIN_RETENTION_HOURS = 24
MAX_RETENTION_HOURS = 8760  # 365 days
# The AWS-managed Kinesis key: its key policy lets principals of the account use it
# through Kinesis, so no KMS statements are needed with it.
AWS_MANAGED_KINESIS_KEY = "alias/aws/kinesis"

PUT_ACTIONS: tuple[str, ...] = ("kinesis:PutRecord", "kinesis:PutRecords")
# The Lambda guide's list for a Kinesis event source mapping, minus
# kinesis:SubscribeToShard, which only enhanced fan-out consumers use (and which is
# scoped to a consumer ARN, not the stream). kinesis:ListStreams (older guides) cannot
# be scoped to a stream and the mapping does not need it.
READ_ACTIONS: tuple[str, ...] = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
)
KMS_PUT_ACTIONS: tuple[str, ...] = ("kms:GenerateDataKey",)
KMS_READ_ACTIONS: tuple[str, ...] = ("kms:Decrypt",)

_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")


@dataclass(frozen=True, kw_only=True)
class StreamArgs:
    """Arguments of a `Stream`; every default is the secure one.

    - `mode`: "ON_DEMAND" (default, AWS scales the shards) or "PROVISIONED".
    - `shard_count`: None (default); required (>= 1) with PROVISIONED, refused with
      ON_DEMAND.
    - `retention_hours`: 24 (default; 24..8760 hours).
    - `kms_key_id`: "alias/aws/kinesis" (default, the AWS-managed key); else a
      customer-managed key ARN, and the access statements then include the KMS
      actions on it.
    - `iterator_age_alarm_ms`: 60_000 (default, 1 minute): alarm when the Maximum
      `GetRecords.IteratorAgeMilliseconds` reaches it; must be below the retention.
    - `alarms`: True (default); `alarm_actions`: SNS topic ARNs to notify (default none).
    - `tags`: None (default); passed to every taggable child and child component.
    """

    mode: StreamMode = "ON_DEMAND"
    shard_count: int | None = None
    retention_hours: int = MIN_RETENTION_HOURS
    kms_key_id: pulumi.Input[str] = AWS_MANAGED_KINESIS_KEY
    iterator_age_alarm_ms: int = 60_000
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    tags: Tags = None

    def __post_init__(self) -> None:
        check_tags("StreamArgs", self.tags)
        if self.mode not in STREAM_MODES:
            raise ValueError(
                f"StreamArgs.mode: {self.mode!r} is not allowed; use ON_DEMAND or PROVISIONED"
            )
        if self.mode == "PROVISIONED" and (self.shard_count is None or self.shard_count < 1):
            raise ValueError(
                f"StreamArgs.shard_count: a PROVISIONED stream needs shard_count >= 1; "
                f"got {self.shard_count}"
            )
        if self.mode == "ON_DEMAND" and self.shard_count is not None:
            raise ValueError(
                f"StreamArgs.shard_count: an ON_DEMAND stream manages its own shards; "
                f"leave shard_count None or use mode='PROVISIONED' (got {self.shard_count})"
            )
        if not MIN_RETENTION_HOURS <= self.retention_hours <= MAX_RETENTION_HOURS:
            raise ValueError(
                f"StreamArgs.retention_hours: {self.retention_hours} is outside the allowed "
                f"{MIN_RETENTION_HOURS}..{MAX_RETENTION_HOURS} hours"
            )
        retention_ms = self.retention_hours * 3_600_000
        if not 0 < self.iterator_age_alarm_ms < retention_ms:
            raise ValueError(
                f"StreamArgs.iterator_age_alarm_ms: {self.iterator_age_alarm_ms} is not "
                f"allowed; use 1..{retention_ms - 1} ms (below the retention, or the alarm "
                "would fire only after records expired)"
            )
        if isinstance(self.kms_key_id, str) and not (
            self.kms_key_id == AWS_MANAGED_KINESIS_KEY or _KEY_ARN.fullmatch(self.kms_key_id)
        ):
            raise ValueError(
                f"StreamArgs.kms_key_id: {self.kms_key_id!r} is not allowed; use "
                f"{AWS_MANAGED_KINESIS_KEY!r} or a KMS key ARN "
                "(arn:aws:kms:<region>:<account>:key/<id>) so that access statements can "
                "be scoped to it"
            )


class Stream(pulumi.ComponentResource):
    """A Kinesis data stream with KMS encryption and an iterator-age alarm.

    Children: `{name}-stream`, `{name}-iterator-age-alarm` (unless `alarms=False`).
    Attributes: `stream`, `arn`, `name` (the stream's name), `mode`, `retention_hours`,
    `kms_key_id`, `alarm` (or None).
    """

    stream: aws.kinesis.Stream
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    mode: StreamMode
    retention_hours: int
    kms_key_id: pulumi.Input[str]
    alarm: aws.cloudwatch.MetricAlarm | None

    def __init__(
        self,
        name: str,
        args: StreamArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args or StreamArgs()
        super().__init__("eventcraft:index:Stream", name, None, opts)
        self.mode = args.mode
        self.retention_hours = args.retention_hours
        self.kms_key_id = args.kms_key_id

        self.stream = aws.kinesis.Stream(
            f"{name}-stream",
            encryption_type="KMS",
            kms_key_id=args.kms_key_id,
            retention_period=args.retention_hours,
            stream_mode_details=aws.kinesis.StreamStreamModeDetailsArgs(stream_mode=args.mode),
            shard_count=args.shard_count,
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.stream.arn
        self.name = self.stream.name

        self.alarm = None
        if args.alarms:
            self.alarm = metric_alarm(
                f"{name}-iterator-age-alarm",
                namespace="AWS/Kinesis",
                metric_name="GetRecords.IteratorAgeMilliseconds",
                dimensions={"StreamName": self.stream.name},
                threshold=args.iterator_age_alarm_ms,
                statistic="Maximum",
                alarm_actions=args.alarm_actions,
                description=(
                    f"Consumers of stream {name} are {args.iterator_age_alarm_ms} ms behind: "
                    f"records expire after {args.retention_hours} h"
                ),
                parent=self,
                tags=args.tags,
            )

        self.register_outputs({"arn": self.arn, "name": self.name})

    @property
    def _customer_key(self) -> pulumi.Input[str] | None:
        return None if self.kms_key_id == AWS_MANAGED_KINESIS_KEY else self.kms_key_id

    def put_statements(self) -> list[Statement]:
        """PutRecord and PutRecords on this stream (plus kms:GenerateDataKey, if a CMK)."""
        statements = [Statement(actions=PUT_ACTIONS, resources=[self.arn])]
        key = self._customer_key
        if key is not None:
            statements.append(Statement(actions=KMS_PUT_ACTIONS, resources=[key]))
        return statements

    def read_statements(self) -> list[Statement]:
        """What a Lambda event source mapping reading this stream needs (plus kms:Decrypt)."""
        statements = [Statement(actions=READ_ACTIONS, resources=[self.arn])]
        key = self._customer_key
        if key is not None:
            statements.append(Statement(actions=KMS_READ_ACTIONS, resources=[key]))
        return statements
