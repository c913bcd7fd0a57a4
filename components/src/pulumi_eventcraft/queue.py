"""SQS queues with a dead-letter queue, TLS-only policies and alarms.

A `DeadLetterQueue` stands alone: EventBridge rule targets, event source mapping
on-failure destinations and Lambda async destinations point straight at it. It keeps
messages 14 days, is encrypted at rest, denies any request not made over TLS, lets only
the named `QueueSender`s (service + source ARN) send to it, and alarms as soon as one
message arrives.

A `Queue` is a work queue with its own dead-letter queue (created, or given): an
explicit `maxReceiveCount`, long polling, a redrive-allow policy on a DLQ it created
(only this queue may use it), the same TLS-only + senders policy, and an alarm when its
oldest message gets old (messages that expire in the source queue are deleted, NOT
moved to the DLQ: the age alarm is what tells you before that happens).

Encryption: `kms_master_key_id=None` (the default) is SSE-SQS, keys managed by SQS,
which every AWS service sender can use without further grants. A customer-managed key
is given by its key ARN (the access statements are scoped to it); AWS service senders
(EventBridge, SNS, ...) then also need `kms:GenerateDataKey` and `kms:Decrypt` in that
key's policy, which this component cannot grant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.alarms import metric_alarm
from pulumi_eventcraft.iam import Condition, Principal, Statement, policy_document
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

# SQS quotas (seconds unless named otherwise).
MIN_RETENTION_SECONDS = 60
MAX_RETENTION_SECONDS = 1_209_600  # 14 days
MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200  # 12 hours
MAX_RECEIVE_WAIT_SECONDS = 20
MAX_DELAY_SECONDS = 900
MAX_RECEIVE_COUNT = 1000

SEND_ACTIONS: tuple[str, ...] = ("sqs:SendMessage",)
CONSUME_ACTIONS: tuple[str, ...] = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)
# Producers of an SSE-KMS queue need both (SQS docs, "Key management"); consumers Decrypt.
KMS_SEND_ACTIONS: tuple[str, ...] = ("kms:GenerateDataKey", "kms:Decrypt")
KMS_CONSUME_ACTIONS: tuple[str, ...] = ("kms:Decrypt",)
# Every SQS action that acts on an existing queue: the deny-non-TLS statement names
# them because policy_document refuses wildcard actions ("sqs:*"). Batch APIs are
# authorized as their single-message action.
QUEUE_ACTIONS: tuple[str, ...] = (
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:SetQueueAttributes",
    "sqs:PurgeQueue",
    "sqs:DeleteQueue",
    "sqs:ListDeadLetterSourceQueues",
    "sqs:ListQueueTags",
    "sqs:TagQueue",
    "sqs:UntagQueue",
    "sqs:AddPermission",
    "sqs:RemovePermission",
    "sqs:StartMessageMoveTask",
    "sqs:CancelMessageMoveTask",
    "sqs:ListMessageMoveTasks",
)

_SERVICE_PRINCIPAL = re.compile(r"[a-z0-9][a-z0-9.-]*\.amazonaws\.com")
_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")


@dataclass(frozen=True)
class QueueSender:
    """An AWS service allowed to `sqs:SendMessage`, only on behalf of `source_arn`.

    E.g. `QueueSender("events.amazonaws.com", rule.arn)` for an EventBridge rule that
    targets the queue or uses it as its DLQ, `QueueSender("sns.amazonaws.com",
    topic.arn)` for a subscription. Lambda destinations and event source mapping
    on-failure destinations send with the function's role instead: grant that role
    `send_statements()`.
    """

    service: str
    source_arn: pulumi.Input[str]

    def __post_init__(self) -> None:
        if not _SERVICE_PRINCIPAL.fullmatch(self.service):
            raise ValueError(
                f"QueueSender.service: {self.service!r} is not an AWS service principal; "
                "use one such as 'events.amazonaws.com' or 'sns.amazonaws.com'"
            )
        if isinstance(self.source_arn, str) and (
            not self.source_arn.startswith("arn:") or "*" in self.source_arn
        ):
            raise ValueError(
                f"QueueSender.source_arn: {self.source_arn!r} must be the ARN of one "
                "resource (no wildcards), e.g. the EventBridge rule's ARN"
            )


def _check_seconds(owner: str, arg: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{owner}.{arg}: {value} is outside the allowed {low}..{high} seconds")


def _check_key(owner: str, key: pulumi.Input[str] | None) -> None:
    # An Output (e.g. `key.arn`) is taken to be a key ARN: it is only known at deploy time.
    if isinstance(key, str) and not _KEY_ARN.fullmatch(key):
        raise ValueError(
            f"{owner}.kms_master_key_id: {key!r} is not a KMS key ARN; give the key's ARN "
            "(arn:aws:kms:<region>:<account>:key/<id>) so that access statements can be "
            "scoped to it, or None for SQS-managed encryption (SSE-SQS)"
        )


def _encryption(key: pulumi.Input[str] | None) -> dict[str, Any]:
    if key is None:
        return {"sqs_managed_sse_enabled": True}
    return {"kms_master_key_id": key}


def _queue_policy(arn: pulumi.Input[str], senders: Sequence[QueueSender]) -> pulumi.Output[str]:
    """Deny any request without TLS; allow each sender SendMessage for its source only."""
    statements = [
        Statement(
            sid="DenyInsecureTransport",
            effect="Deny",
            allow_any_principal=True,
            actions=QUEUE_ACTIONS,
            resources=[arn],
            conditions=[Condition("Bool", "aws:SecureTransport", ["false"])],
        )
    ]
    for index, sender in enumerate(senders):
        statements.append(
            Statement(
                sid=f"AllowSendMessage{index}",
                principals=[Principal("Service", [sender.service])],
                actions=SEND_ACTIONS,
                resources=[arn],
                conditions=[Condition("ArnEquals", "aws:SourceArn", [sender.source_arn])],
            )
        )
    return policy_document(statements)


def _send_statements(arn: pulumi.Input[str], key: pulumi.Input[str] | None) -> list[Statement]:
    statements = [Statement(actions=SEND_ACTIONS, resources=[arn])]
    if key is not None:
        statements.append(Statement(actions=KMS_SEND_ACTIONS, resources=[key]))
    return statements


def _consume_statements(arn: pulumi.Input[str], key: pulumi.Input[str] | None) -> list[Statement]:
    statements = [Statement(actions=CONSUME_ACTIONS, resources=[arn])]
    if key is not None:
        statements.append(Statement(actions=KMS_CONSUME_ACTIONS, resources=[key]))
    return statements


@dataclass(frozen=True, kw_only=True)
class DeadLetterQueueArgs:
    """Arguments of a `DeadLetterQueue`; every default is the secure one.

    - `fifo`: False (default) = standard queue; True = FIFO (for FIFO source queues).
    - `retention_seconds`: 1_209_600 (default, 14 days, the SQS maximum); 60..1_209_600.
    - `senders`: () (default) = no AWS service may send; each `QueueSender` may
      `sqs:SendMessage` for its source ARN only.
    - `kms_master_key_id`: None (default) = SSE-SQS; else a KMS key ARN (see module doc).
    - `alarm_threshold`: 1 (default) = alarm as soon as one message is visible.
    - `alarms`: True (default); `alarm_actions`: SNS topic ARNs to notify (default none).
    - `tags`: None (default); passed to every taggable child and child component.
    """

    fifo: bool = False
    retention_seconds: int = MAX_RETENTION_SECONDS
    senders: Sequence[QueueSender] = ()
    kms_master_key_id: pulumi.Input[str] | None = None
    alarm_threshold: int = 1
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    tags: Tags = None

    def __post_init__(self) -> None:
        check_tags("DeadLetterQueueArgs", self.tags)
        _check_seconds(
            "DeadLetterQueueArgs",
            "retention_seconds",
            self.retention_seconds,
            MIN_RETENTION_SECONDS,
            MAX_RETENTION_SECONDS,
        )
        if self.alarm_threshold < 1:
            raise ValueError(
                f"DeadLetterQueueArgs.alarm_threshold: {self.alarm_threshold} is not allowed; "
                "use >= 1 (number of visible messages)"
            )
        _check_key("DeadLetterQueueArgs", self.kms_master_key_id)


class DeadLetterQueue(pulumi.ComponentResource):
    """A dead-letter queue: encrypted, TLS-only, sendable by its `senders`, alarmed.

    Children: `{name}-queue`, `{name}-policy`, `{name}-alarm` (unless `alarms=False`).
    Attributes: `queue`, `arn`, `url`, `name` (the SQS queue name), `fifo`,
    `retention_seconds`, `kms_master_key_id`, `policy`, `alarm` (or None).
    """

    queue: aws.sqs.Queue
    arn: pulumi.Output[str]
    url: pulumi.Output[str]
    name: pulumi.Output[str]
    fifo: bool
    retention_seconds: int
    kms_master_key_id: pulumi.Input[str] | None
    policy: aws.sqs.QueuePolicy
    alarm: aws.cloudwatch.MetricAlarm | None

    def __init__(
        self,
        name: str,
        args: DeadLetterQueueArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args or DeadLetterQueueArgs()
        super().__init__("eventcraft:index:DeadLetterQueue", name, None, opts)
        self.fifo = args.fifo
        self.retention_seconds = args.retention_seconds
        self.kms_master_key_id = args.kms_master_key_id
        # Who may send: an EventRule checks it is listed before targeting this queue.
        self.senders = tuple(args.senders)

        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            fifo_queue=args.fifo,
            message_retention_seconds=args.retention_seconds,
            # Long polling for whoever inspects or drains it (redrive tools, processors).
            receive_wait_time_seconds=MAX_RECEIVE_WAIT_SECONDS,
            **_encryption(args.kms_master_key_id),
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.queue.arn
        self.url = self.queue.url
        self.name = self.queue.name
        self.policy = aws.sqs.QueuePolicy(
            f"{name}-policy",
            queue_url=self.queue.url,
            policy=_queue_policy(self.queue.arn, args.senders),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.alarm = None
        if args.alarms:
            self.alarm = metric_alarm(
                f"{name}-alarm",
                namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesVisible",
                dimensions={"QueueName": self.queue.name},
                threshold=args.alarm_threshold,
                statistic="Maximum",
                alarm_actions=args.alarm_actions,
                description=(
                    f"Messages are waiting in the {name} dead-letter queue: "
                    "something failed to process them"
                ),
                parent=self,
                tags=args.tags,
            )

        self.register_outputs({"arn": self.arn, "url": self.url, "name": self.name})

    def send_statements(self) -> list[Statement]:
        """What a function role needs to send here (e.g. as its on-failure destination)."""
        return _send_statements(self.arn, self.kms_master_key_id)

    def consume_statements(self) -> list[Statement]:
        """What a consumer (redrive tool, DLQ processor) needs to read and delete messages."""
        return _consume_statements(self.arn, self.kms_master_key_id)


@dataclass(frozen=True, kw_only=True)
class QueueArgs:
    """Arguments of a `Queue`; every default is the secure one.

    - `visibility_timeout_seconds` (required, 0..43_200): consumers check it against
      their function timeout, so it is always chosen, never defaulted.
    - `fifo`: False (default). `content_based_deduplication`: False (default; FIFO
      only). `high_throughput`: False (default; FIFO only): deduplication per message
      group and throughput limit per message group id.
    - `max_receive_count`: 5 (default, 1..1000): receives before a message moves to
      the dead-letter queue.
    - `message_retention_seconds`: 345_600 (default, 4 days; 60..1_209_600).
    - `receive_wait_time_seconds`: 20 (default, long polling; 0..20).
    - `delay_seconds`: 0 (default; 0..900).
    - `kms_master_key_id`: None (default) = SSE-SQS; else a KMS key ARN.
    - `senders`: () (default); AWS services allowed to send, each for its source ARN.
    - `dead_letter`: None (default) = create `{name}-dlq` with `DeadLetterQueueArgs`
      defaults (14 days), matching `fifo`, and this queue's key and alarm settings.
    - `age_alarm_seconds`: None (default) = alarm when the oldest message is half the
      retention period old (time left to act before messages expire unprocessed);
      else that age in seconds (60 .. retention - 1).
    - `alarms`: True (default); `alarm_actions`: SNS topic ARNs to notify (default none).
    - `tags`: None (default); passed to every taggable child and child component.
    """

    visibility_timeout_seconds: int
    fifo: bool = False
    content_based_deduplication: bool = False
    high_throughput: bool = False
    max_receive_count: int = 5
    message_retention_seconds: int = 345_600
    receive_wait_time_seconds: int = MAX_RECEIVE_WAIT_SECONDS
    delay_seconds: int = 0
    kms_master_key_id: pulumi.Input[str] | None = None
    senders: Sequence[QueueSender] = ()
    dead_letter: DeadLetterQueue | None = None
    age_alarm_seconds: int | None = None
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    tags: Tags = None

    def __post_init__(self) -> None:
        owner = "QueueArgs"
        check_tags(owner, self.tags)
        _check_seconds(
            owner,
            "visibility_timeout_seconds",
            self.visibility_timeout_seconds,
            0,
            MAX_VISIBILITY_TIMEOUT_SECONDS,
        )
        _check_seconds(
            owner,
            "message_retention_seconds",
            self.message_retention_seconds,
            MIN_RETENTION_SECONDS,
            MAX_RETENTION_SECONDS,
        )
        _check_seconds(
            owner,
            "receive_wait_time_seconds",
            self.receive_wait_time_seconds,
            0,
            MAX_RECEIVE_WAIT_SECONDS,
        )
        _check_seconds(owner, "delay_seconds", self.delay_seconds, 0, MAX_DELAY_SECONDS)
        if not 1 <= self.max_receive_count <= MAX_RECEIVE_COUNT:
            raise ValueError(
                f"QueueArgs.max_receive_count: {self.max_receive_count} is outside the "
                f"allowed 1..{MAX_RECEIVE_COUNT}"
            )
        if not self.fifo:
            for arg in ("content_based_deduplication", "high_throughput"):
                if getattr(self, arg):
                    raise ValueError(
                        f"QueueArgs.{arg}: only FIFO queues support it; "
                        "set fifo=True or leave it False"
                    )
        if self.age_alarm_seconds is not None:
            _check_seconds(
                owner,
                "age_alarm_seconds",
                self.age_alarm_seconds,
                MIN_RETENTION_SECONDS,
                self.message_retention_seconds - 1,
            )
        _check_key(owner, self.kms_master_key_id)


def _check_dead_letter(name: str, args: QueueArgs, dlq: DeadLetterQueue) -> None:
    """The pairing rules SQS (and message expiry) impose on a queue and its DLQ."""
    kind = {True: "FIFO", False: "standard"}
    if dlq.fifo != args.fifo:
        raise ValueError(
            f"QueueArgs.dead_letter: {kind[args.fifo]} queue {name!r} needs a "
            f"{kind[args.fifo]} dead-letter queue; got {kind[dlq.fifo]} "
            f"{dlq.pulumi_resource_name!r}"
        )
    # Standard queues keep a message's original enqueue timestamp when it moves to the
    # DLQ, so a shorter DLQ retention deletes it sooner than expected. FIFO queues reset
    # the timestamp on the move (SQS guide, "Setting-up dead-letter queue retention").
    if not args.fifo and dlq.retention_seconds < args.message_retention_seconds:
        raise ValueError(
            f"QueueArgs.dead_letter: {dlq.pulumi_resource_name!r} keeps messages "
            f"{dlq.retention_seconds} s, less than queue {name!r} "
            f"({args.message_retention_seconds} s); a standard queue's messages keep their "
            "original enqueue time in the DLQ and would expire early: give the DLQ a "
            "retention >= the queue's"
        )


class Queue(pulumi.ComponentResource):
    """A work queue with a dead-letter queue, a TLS-only policy and alarms.

    Children: `{name}-dlq` (a `DeadLetterQueue`, unless `dead_letter` is given),
    `{name}-queue`, `{name}-policy`, `{name}-redrive-allow` (only with its own DLQ: a
    given DLQ may serve several queues, and its one redrive-allow policy would be
    overwritten by each), `{name}-age-alarm` (unless `alarms=False`).
    Attributes: `queue`, `dlq`, `arn`, `url`, `name`, `fifo`,
    `visibility_timeout_seconds`, `max_receive_count`, `policy`, `redrive_allow`
    (or None), `alarm` (or None).
    """

    queue: aws.sqs.Queue
    dlq: DeadLetterQueue
    arn: pulumi.Output[str]
    url: pulumi.Output[str]
    name: pulumi.Output[str]
    fifo: bool
    visibility_timeout_seconds: int
    max_receive_count: int
    kms_master_key_id: pulumi.Input[str] | None
    policy: aws.sqs.QueuePolicy
    redrive_allow: aws.sqs.RedriveAllowPolicy | None
    alarm: aws.cloudwatch.MetricAlarm | None

    def __init__(
        self, name: str, args: QueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.dead_letter is not None:
            _check_dead_letter(name, args, args.dead_letter)
        super().__init__("eventcraft:index:Queue", name, None, opts)
        self.fifo = args.fifo
        self.visibility_timeout_seconds = args.visibility_timeout_seconds
        self.max_receive_count = args.max_receive_count
        self.kms_master_key_id = args.kms_master_key_id
        self.senders = tuple(args.senders)

        own_dlq = args.dead_letter is None
        self.dlq = args.dead_letter or DeadLetterQueue(
            f"{name}-dlq",
            DeadLetterQueueArgs(
                fifo=args.fifo,
                kms_master_key_id=args.kms_master_key_id,
                alarms=args.alarms,
                alarm_actions=args.alarm_actions,
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        fifo_settings: dict[str, Any] = {}
        if args.fifo:
            fifo_settings = {
                "content_based_deduplication": args.content_based_deduplication,
                "deduplication_scope": "messageGroup" if args.high_throughput else "queue",
                "fifo_throughput_limit": (
                    "perMessageGroupId" if args.high_throughput else "perQueue"
                ),
            }
        max_receive_count = args.max_receive_count
        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            fifo_queue=args.fifo,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            message_retention_seconds=args.message_retention_seconds,
            receive_wait_time_seconds=args.receive_wait_time_seconds,
            delay_seconds=args.delay_seconds,
            redrive_policy=self.dlq.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count}
                )
            ),
            **fifo_settings,
            **_encryption(args.kms_master_key_id),
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.queue.arn
        self.url = self.queue.url
        self.name = self.queue.name
        self.policy = aws.sqs.QueuePolicy(
            f"{name}-policy",
            queue_url=self.queue.url,
            policy=_queue_policy(self.queue.arn, args.senders),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.redrive_allow = None
        if own_dlq:
            # Only this queue may use its DLQ as a dead-letter target. No cycle: the
            # policy is a separate resource on the DLQ, declared after both queues.
            self.redrive_allow = aws.sqs.RedriveAllowPolicy(
                f"{name}-redrive-allow",
                queue_url=self.dlq.url,
                redrive_allow_policy=self.queue.arn.apply(
                    lambda arn: json.dumps(
                        {"redrivePermission": "byQueue", "sourceQueueArns": [arn]}
                    )
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.alarm = None
        if args.alarms:
            age = args.age_alarm_seconds or args.message_retention_seconds // 2
            self.alarm = metric_alarm(
                f"{name}-age-alarm",
                namespace="AWS/SQS",
                metric_name="ApproximateAgeOfOldestMessage",
                dimensions={"QueueName": self.queue.name},
                threshold=age,
                statistic="Maximum",
                alarm_actions=args.alarm_actions,
                description=(
                    f"The oldest message in queue {name} is {age} s old: consumers are stuck "
                    f"or too slow, and messages expire after {args.message_retention_seconds} s"
                ),
                parent=self,
                tags=args.tags,
            )

        self.register_outputs(
            {"arn": self.arn, "url": self.url, "name": self.name, "dlqArn": self.dlq.arn}
        )

    def send_statements(self) -> list[Statement]:
        """`sqs:SendMessage` on this queue (plus the KMS actions on its key, if a CMK)."""
        return _send_statements(self.arn, self.kms_master_key_id)

    def consume_statements(self) -> list[Statement]:
        """Receive, delete, change visibility, read attributes (plus kms:Decrypt, if a CMK)."""
        return _consume_statements(self.arn, self.kms_master_key_id)
