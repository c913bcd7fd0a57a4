"""An EventBridge rule and its targets, each with a retry policy, a DLQ and least privilege.

`EventRule` validates its event pattern (or its schedule expression, for a rule that runs
on a schedule) when it is declared, so a pattern EventBridge would reject fails `pulumi
preview` (and the tests) with the rule's name and the offending field, not `pulumi up`
halfway through. Targets are added with `rule.add_target(...)`; each gets:

* an explicit `RetryPolicy` (default 8 attempts within 1 hour; AWS's own default is
  185 attempts over 24 hours, which hides a broken target for a day);
* a standard SQS dead-letter queue that only this rule may send to (created as
  `{rule}-{target}-dlq` with its alarm, or an existing `DeadLetterQueue` that already
  lists `rule.as_sender()`);
* the permission to deliver, granted here because the rule knows both ends: a Lambda
  resource policy statement pinned to this rule's ARN, or a role that only EventBridge
  (of this account) can assume, allowed exactly one action on exactly one ARN (a
  durable function is targeted, and permitted, through its alias:
  `LambdaTarget.of(function)`);
* optionally what to deliver: `input` (constant JSON), `input_path` or an
  `InputTransformer`, validated.

SQS queues allow exactly one resource policy, written by the `Queue` from its
`senders`: a queue target must therefore be created with `senders=[rule.as_sender()]`,
and `add_target` checks that it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.alarms import metric_alarm
from pulumi_eventcraft.event_bus import EventBus
from pulumi_eventcraft.event_pattern import InvalidEventPatternError, Pattern, validate_pattern
from pulumi_eventcraft.iam import Statement, service_role
from pulumi_eventcraft.queue import DeadLetterQueue, DeadLetterQueueArgs, Queue, QueueSender
from pulumi_eventcraft.schedule import InvalidScheduleError, parse_schedule
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

EVENTS_SERVICE: Final = "events.amazonaws.com"
# EventBridge limits (PutTargets / PutRule API reference, quotas page).
MAX_RETRY_ATTEMPTS = 185
MIN_EVENT_AGE_SECONDS, MAX_EVENT_AGE_SECONDS = 60, 86_400
MAX_TARGETS_PER_RULE = 5
MAX_INPUT_LENGTH = 8192
MAX_INPUT_PATH_LENGTH = 256
MAX_INPUT_PATHS = 100
MAX_DESCRIPTION_LENGTH = 512
# Variables EventBridge defines for every input template (no input path needed).
PREDEFINED_TEMPLATE_VARIABLES: Final = frozenset(
    {
        "aws.events.rule-arn",
        "aws.events.rule-name",
        "aws.events.event.ingestion-time",
        "aws.events.event",
        "aws.events.event.json",
    }
)

_ACCOUNT_PLACEHOLDER = "000000000000"
_TARGET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PLACEHOLDER = re.compile(r"<([^<>\s]+)>")
_PLACEHOLDER_AS_KEY = re.compile(r"\"<[^<>\s]+>\"\s*:")
_PATH_NAME = re.compile(r"[^<>\s]+")
_BUS_NAME = re.compile(r"[/.\-_A-Za-z0-9:]{1,1600}")


# ------------------------------------------------------------- target options


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How long EventBridge keeps retrying a failed delivery before the DLQ.

    - `maximum_retry_attempts`: 8 (default), 0..185.
    - `maximum_event_age_seconds`: 3600 (default, 1 hour), 60..86400 seconds.
    """

    maximum_retry_attempts: int = 8
    maximum_event_age_seconds: int = 3600

    def __post_init__(self) -> None:
        if not 0 <= self.maximum_retry_attempts <= MAX_RETRY_ATTEMPTS:
            raise ValueError(
                f"RetryPolicy.maximum_retry_attempts: {self.maximum_retry_attempts} is "
                f"outside the allowed 0..{MAX_RETRY_ATTEMPTS}"
            )
        if not MIN_EVENT_AGE_SECONDS <= self.maximum_event_age_seconds <= MAX_EVENT_AGE_SECONDS:
            raise ValueError(
                f"RetryPolicy.maximum_event_age_seconds: {self.maximum_event_age_seconds} is "
                f"outside the allowed {MIN_EVENT_AGE_SECONDS}..{MAX_EVENT_AGE_SECONDS} seconds"
            )


@dataclass(frozen=True)
class InputTransformer:
    """Deliver `template` with each `<name>` replaced by the value at `paths[name]`.

    `paths`: name -> JSON path into the event (starting with `$`), at most 100.
    `template`: at most 8192 characters; every `<name>` in it must be in `paths` or
    be one of EventBridge's predefined variables (`<aws.events.rule-name>`, ...).
    A template that is a JSON object must be valid JSON once the placeholders are
    filled, and may not use a placeholder as a key.
    """

    paths: Mapping[str, str]
    template: str

    def __post_init__(self) -> None:
        if len(self.paths) > MAX_INPUT_PATHS:
            raise ValueError(
                f"InputTransformer.paths: {len(self.paths)} paths; at most "
                f"{MAX_INPUT_PATHS} are allowed"
            )
        for key, path in self.paths.items():
            if not _PATH_NAME.fullmatch(key) or key.lower().startswith("aws."):
                raise ValueError(
                    f"InputTransformer.paths: {key!r} is not allowed as a name; use a name "
                    "without spaces or <>, not starting with 'aws.' (reserved)"
                )
            if not isinstance(path, str) or not path.startswith("$"):
                raise ValueError(
                    f"InputTransformer.paths[{key!r}]: {path!r} is not a JSON path; it must "
                    "start with '$', e.g. '$.detail.id'"
                )
            if len(path) > MAX_INPUT_PATH_LENGTH:
                raise ValueError(
                    f"InputTransformer.paths[{key!r}]: longer than {MAX_INPUT_PATH_LENGTH} "
                    "characters"
                )
        if not self.template or len(self.template) > MAX_INPUT_LENGTH:
            raise ValueError(
                f"InputTransformer.template: must have 1..{MAX_INPUT_LENGTH} characters"
            )
        undefined = sorted(
            {
                name
                for name in _PLACEHOLDER.findall(self.template)
                if name not in self.paths and name not in PREDEFINED_TEMPLATE_VARIABLES
            }
        )
        if undefined:
            raise ValueError(
                f"InputTransformer.template: uses {', '.join(f'<{n}>' for n in undefined)} "
                f"but paths define only {sorted(self.paths) or 'nothing'}; add them to "
                "paths or use a predefined variable such as <aws.events.rule-name>"
            )
        if self.template.lstrip().startswith("{"):
            if _PLACEHOLDER_AS_KEY.search(self.template):
                raise ValueError("InputTransformer.template: a placeholder cannot be an object key")
            filled = _PLACEHOLDER.sub("0", self.template)
            try:
                json.loads(filled)
            except ValueError as exc:
                raise ValueError(
                    f"InputTransformer.template: a JSON object template must be valid JSON "
                    f"once filled ({exc})"
                ) from None


@dataclass(frozen=True, kw_only=True)
class _Target:
    """What every target takes (all optional):

    - `retry_policy`: `RetryPolicy()` (default: 8 attempts within 3600 s).
    - `dead_letter_queue`: None (default) = create `{rule}-{target}-dlq`, a standard
      `DeadLetterQueue` that only this rule may send to, with its alarm; else an existing
      standard `DeadLetterQueue` created with `senders=[rule.as_sender()]`.
    - `input` (constant JSON text), `input_path` (a JSON path, `$...`) or
      `input_transformer`: what to deliver instead of the whole event (default: the
      event). At most one of the three.
    """

    KIND: ClassVar[str] = "target"

    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    dead_letter_queue: DeadLetterQueue | None = None
    input: str | None = None
    input_path: str | None = None
    input_transformer: InputTransformer | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        given = [
            arg
            for arg in ("input", "input_path", "input_transformer")
            if getattr(self, arg) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"{owner}: {' and '.join(given)} are mutually exclusive; give at most one of "
                "input, input_path, input_transformer"
            )
        if self.input is not None:
            if len(self.input) > MAX_INPUT_LENGTH:
                raise ValueError(f"{owner}.input: longer than {MAX_INPUT_LENGTH} characters")
            try:
                json.loads(self.input)
            except ValueError as exc:
                raise ValueError(f"{owner}.input: not valid JSON ({exc})") from None
        if self.input_path is not None and (
            not self.input_path.startswith("$") or len(self.input_path) > MAX_INPUT_PATH_LENGTH
        ):
            raise ValueError(
                f"{owner}.input_path: {self.input_path!r} is not a JSON path; it must start "
                f"with '$' (e.g. '$.detail') and have at most {MAX_INPUT_PATH_LENGTH} characters"
            )


class InvocableFunction(Protocol):
    """What a rule needs of a function to target it (a `Function` is one)."""

    @property
    def target_arn(self) -> pulumi.Output[str]: ...
    @property
    def name(self) -> pulumi.Output[str]: ...
    @property
    def qualifier(self) -> str | None: ...


@dataclass(frozen=True, kw_only=True)
class LambdaTarget(_Target):
    """Invoke a Lambda function (asynchronously): `function_arn` and `function_name`.

    The function's resource policy gets a statement (`{rule}-{target}-permission`)
    letting events.amazonaws.com invoke it for this rule's ARN only.
    `qualifier`: None (default) or the alias (or version) the rule invokes; then
    `function_arn` must be that qualified ARN and the permission names it too. A
    durable function can only be invoked that way: build the target with
    `LambdaTarget.of(function)`, which takes both from the `Function`.
    """

    KIND: ClassVar[str] = "lambda"

    function_arn: pulumi.Input[str]
    function_name: pulumi.Input[str]
    qualifier: pulumi.Input[str] | None = None

    @classmethod
    def of(cls, function: InvocableFunction, **settings: Any) -> LambdaTarget:
        """A target invoking `function` by the ARN its callers must use (`target_arn`:
        the alias of a durable function); `settings` are the other target fields."""
        return cls(
            function_arn=function.target_arn,
            function_name=function.name,
            qualifier=function.qualifier,
            **settings,
        )


@dataclass(frozen=True, kw_only=True)
class SqsTarget(_Target):
    """Send to a `Queue` or `DeadLetterQueue` created with `senders=[rule.as_sender()]`.

    `message_group_id`: required for a FIFO queue (every event of this rule goes to
    that group, in order), refused for a standard one (default None).
    A queue encrypted with a customer-managed key also needs `events.amazonaws.com`
    in that key's policy (kms:GenerateDataKey, kms:Decrypt).
    """

    KIND: ClassVar[str] = "sqs"

    queue: Queue | DeadLetterQueue
    message_group_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class StateMachineTarget(_Target):
    """Start an execution of a Step Functions state machine per event.

    A role (`{rule}-{target}-role`) only EventBridge of this account can assume, allowed
    `states:StartExecution` on `state_machine_arn` only.
    """

    KIND: ClassVar[str] = "sfn"

    state_machine_arn: pulumi.Input[str]


@dataclass(frozen=True, kw_only=True)
class KinesisTarget(_Target):
    """Put each event into a Kinesis stream, partitioned by `partition_key_path`.

    `partition_key_path`: a JSON path into the event starting with `$.`
    (e.g. `$.detail.accountId`: one account's events stay in order on one shard).
    `kms_key_arn`: the stream's customer-managed key, if any (default None): the role
    then also gets `kms:GenerateDataKey` on it. The role (`{rule}-{target}-role`) is
    allowed `kinesis:PutRecord` on `stream_arn` only.
    """

    KIND: ClassVar[str] = "kinesis"

    stream_arn: pulumi.Input[str]
    partition_key_path: str
    kms_key_arn: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        path = self.partition_key_path
        if not path.startswith("$.") or len(path) > MAX_INPUT_PATH_LENGTH:
            raise ValueError(
                f"KinesisTarget.partition_key_path: {path!r} must be a JSON path starting "
                f"with '$.' (e.g. '$.detail.id'), at most {MAX_INPUT_PATH_LENGTH} "
                "characters"
            )


@dataclass(frozen=True, kw_only=True)
class EventBusTarget(_Target):
    """Forward events to another event bus (typically in another account or Region).

    A role (`{rule}-{target}-role`) only EventBridge of this account can assume, allowed
    `events:PutEvents` on `bus_arn` only. The receiving bus's policy must allow this
    account (or this role) to put events: see `EventBusArgs.partner_account_ids`.
    """

    KIND: ClassVar[str] = "bus"

    bus_arn: pulumi.Input[str]

    def __post_init__(self) -> None:
        super().__post_init__()
        arn = self.bus_arn
        if isinstance(arn, str) and not re.fullmatch(
            r"arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[/.\-_A-Za-z0-9]+", arn
        ):
            raise ValueError(
                f"EventBusTarget.bus_arn: {arn!r} is not an event bus ARN "
                "(arn:aws:events:<region>:<account>:event-bus/<name>)"
            )


Target = LambdaTarget | SqsTarget | StateMachineTarget | KinesisTarget | EventBusTarget


# ---------------------------------------------------------------------- rule


@dataclass(frozen=True, kw_only=True)
class EventRuleArgs:
    """Arguments of an `EventRule`; every default is the secure one.

    - `bus` (required): the `EventBus`, or a bus name or ARN (`"default"` for the
      account's default bus).
    - `pattern`: the event pattern, a dict or a `Pattern`; validated when the rule is
      declared. `schedule`: a schedule expression (`rate(5 minutes)`, `cron(0 12 * * ?
      *)`, see `pulumi_eventcraft.schedule`): the rule then also fires on that schedule
      (UTC), delivering a `Scheduled Event` from `aws.events`; only on the default bus.
      At least one of the two (default None).
    - `description`: None (default); at most 512 characters.
    - `enabled`: True (default).
    - `own_account_only`: False (default). True: only events put by the deploying AWS
      account match (an `account` filter with its id, from `aws.get_caller_identity`,
      is added to the deployed pattern): for rules that drive internal steps on a bus
      that other accounts may put to. The pattern must not filter `account` itself.
    - `alarms`: True (default): an alarm on events this rule failed to put in a DLQ
      (`{name}-dlq-failure-alarm`) and the alarm of each DLQ it creates.
      `alarm_actions`: SNS topic ARNs to notify (default none).
    - `tags`: None (default); tags of the rule, its alarm and the DLQs and roles its
      targets create.
    """

    bus: EventBus | pulumi.Input[str]
    pattern: Mapping[str, Any] | Pattern | None = None
    schedule: str | None = None
    description: str | None = None
    enabled: bool = True
    own_account_only: bool = False
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    tags: Tags = None

    def __post_init__(self) -> None:
        check_tags("EventRuleArgs", self.tags)
        if self.description is not None and len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise ValueError(
                f"EventRuleArgs.description: {len(self.description)} characters; at most "
                f"{MAX_DESCRIPTION_LENGTH} are allowed"
            )
        if isinstance(self.bus, str) and not _BUS_NAME.fullmatch(self.bus):
            raise ValueError(
                f"EventRuleArgs.bus: {self.bus!r} is not an event bus name or ARN; give the "
                "EventBus, its name, or 'default'"
            )
        if self.pattern is None and self.schedule is None:
            raise ValueError(
                "EventRuleArgs: give a pattern (the events the rule matches), a schedule "
                "(when it fires), or both"
            )
        if self.pattern is not None and not isinstance(self.pattern, Pattern | Mapping):
            raise ValueError(
                f"EventRuleArgs.pattern: give a dict or a Pattern, not "
                f"{type(self.pattern).__name__}"
            )
        if self.schedule is not None:
            try:
                parse_schedule(self.schedule)
            except InvalidScheduleError as exc:
                raise ValueError(f"EventRuleArgs.schedule: {exc}") from None
            if not _is_default_bus(self.bus):
                raise ValueError(
                    "EventRuleArgs.schedule: scheduled rules run on the default event bus "
                    "only; give bus='default'"
                )


def _is_default_bus(bus: EventBus | pulumi.Input[str]) -> bool:
    return isinstance(bus, str) and (bus == "default" or bus.endswith(":event-bus/default"))


def _compact(pattern: Mapping[str, Any]) -> str:
    # Compact: the 2048-character pattern limit counts the text AWS receives.
    return json.dumps(pattern, separators=(",", ":"))


class InvalidRulePatternError(InvalidEventPatternError):
    """A rule's event pattern that EventBridge would reject; names the rule and field."""

    def __init__(self, rule: str, error: InvalidEventPatternError) -> None:
        ValueError.__init__(
            self, f"EventRule {rule!r}: invalid event pattern at {error.path}: {error.reason}"
        )
        self.rule = rule
        self.path = error.path
        self.reason = error.reason


class EventRule(pulumi.ComponentResource):
    """An EventBridge rule on a bus; add targets with `add_target`.

    Children: `{name}-rule`, `{name}-dlq-failure-alarm` (unless `alarms=False`), and per
    target `{name}-{target}` plus, by kind, `{name}-{target}-permission` (Lambda) or
    `{name}-{target}-role` (+ `-role-policy`), and `{name}-{target}-dlq` unless a DLQ
    is given. Attributes: `rule`, `arn`, `name` (the rule name), `bus_name`, `pattern`
    (the validated dict, without the `account` filter that `own_account_only` adds when
    deployed), `alarm` (or None), and dicts keyed by target name: `targets`,
    `dead_letter_queues`, `roles`, `permissions`.
    """

    rule: aws.cloudwatch.EventRule
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    bus_name: pulumi.Input[str]
    pattern: dict[str, Any] | None
    schedule: str | None
    alarm: aws.cloudwatch.MetricAlarm | None
    targets: dict[str, aws.cloudwatch.EventTarget]
    dead_letter_queues: dict[str, DeadLetterQueue]
    roles: dict[str, aws.iam.Role]
    permissions: dict[str, aws.lambda_.Permission]

    def __init__(
        self, name: str, args: EventRuleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        pattern: dict[str, Any] | None = None
        if args.pattern is not None:
            raw = args.pattern.to_dict() if isinstance(args.pattern, Pattern) else args.pattern
            if args.own_account_only and isinstance(raw, Mapping) and "account" in raw:
                raise ValueError(
                    f"EventRule {name!r}: own_account_only adds the `account` filter, but the "
                    "pattern already has one; drop one of them"
                )
            try:
                pattern = validate_pattern(raw)
                if args.own_account_only:
                    # What will be deployed, with an account id of the real length.
                    validate_pattern({**pattern, "account": [_ACCOUNT_PLACEHOLDER]})
            except InvalidEventPatternError as exc:
                raise InvalidRulePatternError(name, exc) from None
        super().__init__("eventcraft:index:EventRule", name, None, opts)
        self._component_name = name
        self._alarms = args.alarms
        self._alarm_actions = tuple(args.alarm_actions)
        self._tags = args.tags
        self.pattern = pattern
        self.schedule = args.schedule
        self.bus_name = args.bus.name if isinstance(args.bus, EventBus) else args.bus
        self.targets = {}
        self.dead_letter_queues = {}
        self.roles = {}
        self.permissions = {}

        event_pattern: pulumi.Input[str] | None = None
        if pattern is not None:
            matched = pattern
            event_pattern = _compact(matched)
            # A schedule's own events are the account's: the filter is for the pattern.
            if args.own_account_only:
                account = aws.get_caller_identity_output(
                    opts=pulumi.InvokeOptions(parent=self)
                ).account_id
                event_pattern = account.apply(lambda a: _compact({**matched, "account": [a]}))
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            event_bus_name=self.bus_name,
            event_pattern=event_pattern,
            schedule_expression=args.schedule,
            description=args.description,
            state="ENABLED" if args.enabled else "DISABLED",
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.rule.arn
        self.name = self.rule.name

        self.alarm = None
        if args.alarms:
            # Metrics of rules on a custom bus carry both dimensions; on the default
            # bus only RuleName (EventBridge guide, "eb-monitoring").
            dimensions: dict[str, pulumi.Input[str]] = {"RuleName": self.rule.name}
            if not (isinstance(self.bus_name, str) and self.bus_name == "default"):
                dimensions["EventBusName"] = self.bus_name
            self.alarm = metric_alarm(
                f"{name}-dlq-failure-alarm",
                namespace="AWS/Events",
                metric_name="InvocationsFailedToBeSentToDlq",
                dimensions=dimensions,
                threshold=1,
                statistic="Sum",
                alarm_actions=self._alarm_actions,
                description=(
                    f"Rule {name} could not put failed events in their dead-letter queue: "
                    "those events are lost (check the DLQ's policy, key and existence)"
                ),
                parent=self,
                tags=args.tags,
            )

        self.register_outputs({"arn": self.arn, "name": self.name})

    def as_sender(self) -> QueueSender:
        """The `QueueSender` a queue needs to accept this rule's events (target or DLQ)."""
        return QueueSender(EVENTS_SERVICE, self.arn)

    def _allows_this_rule(self, queue: Queue | DeadLetterQueue) -> bool:
        """Whether `queue` was created with `senders=[self.as_sender()]`."""
        # Identity, not equality: the ARN is an Output, only known at deploy time.
        return any(s.service == EVENTS_SERVICE and s.source_arn is self.arn for s in queue.senders)

    def _queue_label(self, queue: Queue | DeadLetterQueue) -> str:
        return queue.pulumi_resource_name

    def add_target(self, target: Target, *, name: str | None = None) -> aws.cloudwatch.EventTarget:
        """Deliver matching events to `target`; returns the `aws.cloudwatch.EventTarget`.

        `name` (default: the target's kind: lambda, sqs, sfn, kinesis, bus) names its
        resources `{rule}-{name}...` and is the EventBridge target ID; unique per rule,
        1..64 of A-Z a-z 0-9 _ . -. Everything is checked before any resource is declared.
        """
        rule = self._component_name
        target_name = name or target.KIND
        where = f"EventRule {rule!r} target {target_name!r}"
        if not _TARGET_NAME.fullmatch(target_name):
            raise ValueError(f"{where}: name must be 1..64 characters of A-Z a-z 0-9 _ . -")
        if target_name in self.targets:
            raise ValueError(
                f"{where}: the rule already has a target named {target_name!r}; pass "
                "add_target(..., name=...) with another name"
            )
        if len(self.targets) >= MAX_TARGETS_PER_RULE:
            raise ValueError(
                f"{where}: a rule has at most {MAX_TARGETS_PER_RULE} targets; add another "
                "rule with the same pattern"
            )
        self._check_target(where, target)

        prefix = f"{rule}-{target_name}"
        child = pulumi.ResourceOptions(parent=self)
        dlq = target.dead_letter_queue or DeadLetterQueue(
            f"{prefix}-dlq",
            DeadLetterQueueArgs(
                senders=[self.as_sender()],
                alarms=self._alarms,
                alarm_actions=self._alarm_actions,
                tags=self._tags,
            ),
            opts=child,
        )
        if target.dead_letter_queue is None:
            self.dead_letter_queues[target_name] = dlq

        settings: dict[str, Any] = {}
        if isinstance(target, LambdaTarget):
            arn = target.function_arn
            self.permissions[target_name] = aws.lambda_.Permission(
                f"{prefix}-permission",
                action="lambda:InvokeFunction",
                function=target.function_name,
                # Lambda matches a permission to the ARN invoked, qualifier included.
                qualifier=target.qualifier,
                principal=EVENTS_SERVICE,
                source_arn=self.arn,
                opts=child,
            )
        elif isinstance(target, SqsTarget):
            arn = target.queue.arn
            if target.message_group_id is not None:
                settings["sqs_target"] = aws.cloudwatch.EventTargetSqsTargetArgs(
                    message_group_id=target.message_group_id
                )
        else:
            arn, statements, what = self._role_grant(target)
            role = service_role(
                f"{prefix}-role",
                service=EVENTS_SERVICE,
                statements=statements,
                parent=self,
                description=f"EventBridge rule {rule}: {what}",
                tags=self._tags,
            )
            self.roles[target_name] = role
            settings["role_arn"] = role.arn
            if isinstance(target, KinesisTarget):
                settings["kinesis_target"] = aws.cloudwatch.EventTargetKinesisTargetArgs(
                    partition_key_path=target.partition_key_path
                )

        if target.input is not None:
            settings["input"] = target.input
        if target.input_path is not None:
            settings["input_path"] = target.input_path
        if target.input_transformer is not None:
            settings["input_transformer"] = aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths=dict(target.input_transformer.paths),
                input_template=target.input_transformer.template,
            )

        created = aws.cloudwatch.EventTarget(
            prefix,
            rule=self.rule.name,
            event_bus_name=self.bus_name,
            target_id=target_name,
            arn=arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_retry_attempts=target.retry_policy.maximum_retry_attempts,
                maximum_event_age_in_seconds=target.retry_policy.maximum_event_age_seconds,
            ),
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=dlq.arn),
            **settings,
            opts=child,
        )
        self.targets[target_name] = created
        return created

    def _check_target(self, where: str, target: Target) -> None:
        rule = self._component_name
        if isinstance(target, SqsTarget):
            queue = target.queue
            label = self._queue_label(queue)
            if queue.fifo and target.message_group_id is None:
                raise ValueError(
                    f"{where}: FIFO queue {label!r} needs SqsTarget.message_group_id "
                    "(the message group every event of this rule is sent to)"
                )
            if not queue.fifo and target.message_group_id is not None:
                raise ValueError(
                    f"{where}: SqsTarget.message_group_id is only for FIFO queues; "
                    f"{label!r} is a standard queue"
                )
            if not self._allows_this_rule(queue):
                raise ValueError(
                    f"{where}: queue {label!r} does not let this rule send to it; create it "
                    f"with senders=[{rule}.as_sender()] (an SQS queue has a single policy, "
                    "written by the queue itself)"
                )
        given = target.dead_letter_queue
        if given is not None:
            label = self._queue_label(given)
            if given.fifo:
                raise ValueError(
                    f"{where}: dead_letter_queue {label!r} is a FIFO queue; an EventBridge "
                    "dead-letter queue must be a standard queue (even for a FIFO target)"
                )
            if not self._allows_this_rule(given):
                raise ValueError(
                    f"{where}: dead_letter_queue {label!r} does not let this rule send to "
                    f"it; create it with DeadLetterQueueArgs(senders=[{rule}.as_sender()])"
                )

    def _role_grant(
        self, target: StateMachineTarget | KinesisTarget | EventBusTarget
    ) -> tuple[pulumi.Input[str], list[Statement], str]:
        """The target ARN, the role's statements (exactly one action per ARN), a summary."""
        if isinstance(target, StateMachineTarget):
            arn = target.state_machine_arn
            return (
                arn,
                [
                    Statement(
                        sid="StartExecution", actions=["states:StartExecution"], resources=[arn]
                    )
                ],
                "start executions of one state machine",
            )
        if isinstance(target, KinesisTarget):
            arn = target.stream_arn
            statements = [
                Statement(sid="PutRecord", actions=["kinesis:PutRecord"], resources=[arn])
            ]
            if target.kms_key_arn is not None:
                statements.append(
                    Statement(
                        sid="EncryptRecords",
                        actions=["kms:GenerateDataKey"],
                        resources=[target.kms_key_arn],
                    )
                )
            return arn, statements, "put records into one stream"
        arn = target.bus_arn
        return (
            arn,
            [Statement(sid="PutEvents", actions=["events:PutEvents"], resources=[arn])],
            "forward events to one event bus",
        )
