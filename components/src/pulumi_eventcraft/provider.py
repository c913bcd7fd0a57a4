"""The components as a Pulumi component provider, for programs in any Pulumi language.

`python -m pulumi_eventcraft` (what `PulumiPlugin.yaml` runs) hosts the classes in
`COMPONENTS` with `pulumi.provider.experimental.component_provider_host`; the schema
is inferred from them: the inputs from the `<Name>Inputs` TypedDict of each class's
`args`, the outputs from its class annotations, descriptions from the docstrings.

Each class here is a facade with the component's name, not a subclass: the analyzer
reads annotations along the whole MRO, and the components annotate Python-only
attributes (child resources, plain settings). A facade maps the input dict to the
component's args dataclass, creates the component (the one resource registered, with
its own type token `eventcraft:index:<Name>`) and exposes its outputs and URN. It never
registers itself.

Inputs are plain data; what only Python can pass is left out:
- objects standing for another component are given as ARNs/names instead: a rule's
  `bus` (name or ARN), rule targets (`functionArn`, `stateMachineArn`, ...), a mapping's
  `function` and source, the relay's `bus`;
- `EventRule` SQS targets: a queue must list the rule as a sender when it is created,
  which needs the Python objects (`rule.as_sender()`);
- a given dead-letter queue (`Queue.deadLetter`, target and mapping `dead_letter_queue`,
  `OutboxRelay.dead_letter_queue`, `Function.async_on_failure` as a queue): they are
  always created by the component;
- `QueueSender`s (`senders`) of queues: they name rules' ARNs, known only after the
  queue exists when built from another language;
- `Function.layer`: `FunctionArgs.layer` takes a `DependencyLayer` object (its
  architecture and runtime are checked), not an ARN;
- `DependencyLayer.runner` (a Python callable) and the `saga` module (a Python builder of
  definitions: pass its output as `StateMachine.definition`);
- event patterns as `Pattern` builder objects: patterns are JSON objects.
Paths (`codeDir`, `requirementsFile`, ...) are read by the provider process: give them
absolute.

No `from __future__ import annotations` here: the analyzer reads the annotations as
objects (`inspect.get_annotations`), not as strings.
"""

import dataclasses
from collections.abc import Sequence
from importlib.metadata import version as _distribution_version
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft import alarms as _alarms
from pulumi_eventcraft import durable as _durable
from pulumi_eventcraft import event_bus as _event_bus
from pulumi_eventcraft import event_rule as _event_rule
from pulumi_eventcraft import event_source as _event_source
from pulumi_eventcraft import function as _function
from pulumi_eventcraft import layer as _layer
from pulumi_eventcraft import outbox_relay as _outbox_relay
from pulumi_eventcraft import queue as _queue
from pulumi_eventcraft import state_machine as _state_machine
from pulumi_eventcraft import stream as _stream
from pulumi_eventcraft import table as _table
from pulumi_eventcraft.iam import Statement

PROVIDER_NAME = "eventcraft"


def provider_version() -> str:
    """The version of the installed `pulumi-eventcraft` distribution."""
    return _distribution_version("pulumi-eventcraft")


class _Facade(pulumi.ComponentResource):
    """Base of the facades: a view of one component, never registered itself."""

    def _expose(self, component: pulumi.ComponentResource) -> None:
        # The provider answers Construct with the URN and the output attributes;
        # `Resource.urn` reads it from the instance dict (no resource registered here).
        self.__dict__["urn"] = component.urn


def _whole_numbers(value: Any) -> Any:
    """`value` with whole floats as ints, recursively: integers arrive as floats over the
    wire, and pulumi 3.272's `ComponentProvider.map_inputs` converts them but then
    stores the float again, while the args dataclasses (and ASL) want ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _present(inputs: Any, *keys: str) -> dict[str, Any]:
    """The given entries of `inputs` among `keys` (absent inputs keep the default)."""
    return {key: inputs[key] for key in keys if key in inputs}


# ------------------------------------------------------------------ EventBus


class EventBusInputs(TypedDict):
    archive: NotRequired[bool]
    """Archive received events for replay (default true)."""
    archive_retention_days: NotRequired[int]
    """Days archived events are kept: 1..3650 (default 30)."""
    archive_pattern: NotRequired[dict[str, Any]]
    """Event pattern (JSON object) choosing what to archive (default: every event)."""
    schemas: NotRequired[dict[str, dict[str, Any]]]
    """Event contracts: detail-type -> JSON Schema draft 4 document (default none)."""
    partner_account_ids: NotRequired[list[str]]
    """12-digit AWS account IDs allowed to put events on the bus (default none)."""
    organization_id: NotRequired[str]
    """AWS Organization (o-...) whose accounts may put events (default none)."""
    allowed_sources: NotRequired[list[str]]
    """Sources partners may put (default any); needs partners or an organization."""
    allowed_detail_types: NotRequired[list[str]]
    """Detail-types partners may put (default any); needs partners or an organization."""
    kms_key_identifier: NotRequired[pulumi.Input[str]]
    """Customer-managed KMS key (ARN, ID or alias) of the bus and archive (default AWS-owned)."""
    description: NotRequired[str]
    """Description of the bus (default "<name>: events")."""
    tags: NotRequired[dict[str, str]]
    """Tags of the bus, the registry and each schema."""


class EventBus(_Facade):
    """A custom EventBridge bus: encrypted, archived for a finite time, with its contracts
    in a schema registry and a narrow cross-account policy."""

    arn: pulumi.Output[str]
    """ARN of the bus."""
    name: pulumi.Output[str]
    """Name of the bus."""

    def __init__(
        self, name: str, args: EventBusInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        bus = _event_bus.EventBus(name, _event_bus.EventBusArgs(**args), opts)
        self._expose(bus)
        self.arn = bus.arn
        self.name = bus.name


# ------------------------------------------------------------------ EventRule


class RetryPolicyInputs(TypedDict):
    maximum_retry_attempts: NotRequired[int]
    """Retries before the event goes to the target's DLQ: 0..185 (default 8)."""
    maximum_event_age_seconds: NotRequired[int]
    """Seconds an event is retried at most: 60..86400 (default 3600)."""


class InputTransformerInputs(TypedDict):
    paths: dict[str, str]
    """Placeholder name -> JSON path into the event (starting with `$`)."""
    template: str
    """What is delivered, with each `<name>` replaced by its path's value."""


class RuleTargetInputs(TypedDict):
    kind: str
    """What the target is: "lambda", "sfn" (state machine), "kinesis" or "bus"."""
    arn: pulumi.Input[str]
    """ARN of the function, state machine, stream or event bus."""
    name: NotRequired[str]
    """Target ID, unique per rule; names its resources (default: the kind)."""
    function_name: NotRequired[pulumi.Input[str]]
    """Name of the function ("lambda" targets; required there)."""
    qualifier: NotRequired[pulumi.Input[str]]
    """Alias the rule invokes ("lambda" only): a durable Function's `qualifier`, with its
    `targetArn` as `arn` (default none: the unqualified function)."""
    partition_key_path: NotRequired[str]
    """JSON path of the partition key, e.g. "$.detail.id" ("kinesis"; required there)."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """The stream's customer-managed key ("kinesis" only; default none)."""
    retry_policy: NotRequired[RetryPolicyInputs]
    """Retries before the DLQ (default 8 attempts within 3600 s)."""
    input: NotRequired[str]
    """Constant JSON text delivered instead of the event."""
    input_path: NotRequired[str]
    """JSON path of the part of the event delivered (e.g. "$.detail")."""
    input_transformer: NotRequired[InputTransformerInputs]
    """Template delivered instead of the event; at most one of the three input options."""


class EventRuleInputs(TypedDict):
    bus: pulumi.Input[str]
    """Name or ARN of the event bus ("default" for the account's default bus)."""
    pattern: NotRequired[dict[str, Any]]
    """Event pattern (JSON object), validated when the rule is declared."""
    schedule: NotRequired[str]
    """Schedule expression, e.g. "rate(5 minutes)" or "cron(0 12 * * ? *)" (default bus
    only); a rule needs a pattern, a schedule or both."""
    targets: NotRequired[list[RuleTargetInputs]]
    """Where matching events go (at most 5); each gets a retry policy, a DLQ and the
    permission to deliver."""
    description: NotRequired[str]
    """Description of the rule, at most 512 characters."""
    enabled: NotRequired[bool]
    """Whether the rule is enabled (default true)."""
    own_account_only: NotRequired[bool]
    """Match only events put by the deploying account (default false): for rules that
    drive internal steps on a bus other accounts may put to."""
    alarms: NotRequired[bool]
    """Alarm on events the rule failed to put in a DLQ, and on each DLQ (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarms notify (default none)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the rule, its alarm and the DLQs and roles of its targets."""


def _rule_target(index: int, spec: RuleTargetInputs) -> _event_rule.Target:
    where = f"EventRule targets[{index}]"
    common: dict[str, Any] = _present(spec, "input", "input_path")
    if "retry_policy" in spec:
        common["retry_policy"] = _event_rule.RetryPolicy(**spec["retry_policy"])
    if "input_transformer" in spec:
        transformer = spec["input_transformer"]
        common["input_transformer"] = _event_rule.InputTransformer(
            transformer["paths"], transformer["template"]
        )
    kind, arn = spec["kind"], spec["arn"]
    if kind == "lambda":
        if "function_name" not in spec:
            raise ValueError(f"{where}.functionName: a lambda target needs the function's name")
        return _event_rule.LambdaTarget(
            function_arn=arn,
            function_name=spec["function_name"],
            qualifier=spec.get("qualifier"),
            **common,
        )
    if kind == "sfn":
        return _event_rule.StateMachineTarget(state_machine_arn=arn, **common)
    if kind == "kinesis":
        if "partition_key_path" not in spec:
            raise ValueError(f"{where}.partitionKeyPath: a kinesis target needs one")
        return _event_rule.KinesisTarget(
            stream_arn=arn,
            partition_key_path=spec["partition_key_path"],
            kms_key_arn=spec.get("kms_key_arn"),
            **common,
        )
    if kind == "bus":
        return _event_rule.EventBusTarget(bus_arn=arn, **common)
    raise ValueError(
        f"{where}.kind: {kind!r} is not a target kind; use lambda, sfn, kinesis or bus"
    )


class EventRule(_Facade):
    """An EventBridge rule with a validated pattern; each target gets an explicit retry
    policy, its own dead-letter queue and exactly the permission to deliver."""

    arn: pulumi.Output[str]
    """ARN of the rule."""
    name: pulumi.Output[str]
    """Name of the rule."""

    def __init__(
        self, name: str, args: EventRuleInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        # Every target is checked before the rule is declared.
        targets = [_rule_target(i, spec) for i, spec in enumerate(args.get("targets", []))]
        rule = _event_rule.EventRule(
            name,
            _event_rule.EventRuleArgs(
                bus=args["bus"],
                **_present(
                    args,
                    "pattern",
                    "schedule",
                    "description",
                    "enabled",
                    "own_account_only",
                    "alarms",
                    "alarm_actions",
                    "tags",
                ),
            ),
            opts,
        )
        for spec, target in zip(args.get("targets", []), targets, strict=True):
            rule.add_target(target, name=spec.get("name"))
        self._expose(rule)
        self.arn = rule.arn
        self.name = rule.name


# ------------------------------------------------------------------ queues


class DeadLetterQueueInputs(TypedDict):
    fifo: NotRequired[bool]
    """FIFO queue, for FIFO source queues (default false)."""
    retention_seconds: NotRequired[int]
    """Seconds messages are kept: 60..1209600 (default 1209600, 14 days)."""
    kms_master_key_id: NotRequired[pulumi.Input[str]]
    """Customer-managed KMS key ARN (default SQS-managed encryption)."""
    alarm_threshold: NotRequired[int]
    """Visible messages that raise the alarm, >= 1 (default 1)."""
    alarms: NotRequired[bool]
    """Alarm when messages arrive (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarm notifies (default none)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the queue and its alarm."""


class DeadLetterQueue(_Facade):
    """A dead-letter queue: encrypted, TLS-only, kept 14 days, alarmed on the first message."""

    arn: pulumi.Output[str]
    """ARN of the queue."""
    url: pulumi.Output[str]
    """URL of the queue."""
    name: pulumi.Output[str]
    """Name of the SQS queue."""

    def __init__(
        self, name: str, args: DeadLetterQueueInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        dlq = _queue.DeadLetterQueue(name, _queue.DeadLetterQueueArgs(**args), opts)
        self._expose(dlq)
        self.arn = dlq.arn
        self.url = dlq.url
        self.name = dlq.name


class QueueInputs(TypedDict):
    visibility_timeout_seconds: int
    """Seconds a received message stays invisible: 0..43200 (consumers check it against
    their timeout)."""
    fifo: NotRequired[bool]
    """FIFO queue (default false)."""
    content_based_deduplication: NotRequired[bool]
    """FIFO only: deduplicate by content (default false)."""
    high_throughput: NotRequired[bool]
    """FIFO only: deduplication and throughput per message group (default false)."""
    max_receive_count: NotRequired[int]
    """Receives before a message moves to the DLQ: 1..1000 (default 5)."""
    message_retention_seconds: NotRequired[int]
    """Seconds messages are kept: 60..1209600 (default 345600, 4 days)."""
    receive_wait_time_seconds: NotRequired[int]
    """Long-polling wait in seconds: 0..20 (default 20)."""
    delay_seconds: NotRequired[int]
    """Delivery delay in seconds: 0..900 (default 0)."""
    kms_master_key_id: NotRequired[pulumi.Input[str]]
    """Customer-managed KMS key ARN (default SQS-managed encryption)."""
    age_alarm_seconds: NotRequired[int]
    """Age of the oldest message that raises the alarm (default half the retention)."""
    alarms: NotRequired[bool]
    """Alarms on the queue and its DLQ (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarms notify (default none)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the queue, its DLQ and their alarms."""


class Queue(_Facade):
    """A work queue with its own dead-letter queue (`<name>-dlq`), a TLS-only policy and
    an alarm on the age of its oldest message."""

    arn: pulumi.Output[str]
    """ARN of the queue."""
    url: pulumi.Output[str]
    """URL of the queue."""
    name: pulumi.Output[str]
    """Name of the SQS queue."""
    dlq_arn: pulumi.Output[str]
    """ARN of its dead-letter queue."""
    dlq_url: pulumi.Output[str]
    """URL of its dead-letter queue."""

    def __init__(
        self, name: str, args: QueueInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        queue = _queue.Queue(name, _queue.QueueArgs(**args), opts)
        self._expose(queue)
        self.arn = queue.arn
        self.url = queue.url
        self.name = queue.name
        self.dlq_arn = queue.dlq.arn
        self.dlq_url = queue.dlq.url


# ------------------------------------------------------------------ Stream


class StreamInputs(TypedDict):
    mode: NotRequired[str]
    """Capacity mode: "ON_DEMAND" (default) or "PROVISIONED"."""
    shard_count: NotRequired[int]
    """Shards, >= 1; required with PROVISIONED, refused with ON_DEMAND."""
    retention_hours: NotRequired[int]
    """Hours records are kept: 24..8760 (default 24)."""
    kms_key_id: NotRequired[pulumi.Input[str]]
    """"alias/aws/kinesis" (default, AWS-managed) or a customer-managed key ARN."""
    iterator_age_alarm_ms: NotRequired[int]
    """Consumer lag in milliseconds that raises the alarm (default 60000)."""
    alarms: NotRequired[bool]
    """Alarm on consumer lag (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarm notifies (default none)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the stream and its alarm."""


class Stream(_Facade):
    """A Kinesis data stream: KMS-encrypted, on demand by default, alarmed on consumer lag."""

    arn: pulumi.Output[str]
    """ARN of the stream."""
    name: pulumi.Output[str]
    """Name of the stream."""

    def __init__(
        self, name: str, args: StreamInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        stream = _stream.Stream(name, _stream.StreamArgs(**args), opts)  # type: ignore[arg-type]
        self._expose(stream)
        self.arn = stream.arn
        self.name = stream.name


# ------------------------------------------------------------------ Table


class KeyAttributeInputs(TypedDict):
    name: str
    """Attribute name."""
    type: NotRequired[str]
    """DynamoDB type: "S" (default), "N" or "B"."""


class GlobalSecondaryIndexInputs(TypedDict):
    name: str
    """Index name, 3..255 characters."""
    hash_key: KeyAttributeInputs
    """Partition key of the index."""
    range_key: NotRequired[KeyAttributeInputs]
    """Sort key of the index (default none)."""
    projection_type: NotRequired[str]
    """"ALL" (default), "KEYS_ONLY" or "INCLUDE"."""
    non_key_attributes: NotRequired[list[str]]
    """Attributes projected with INCLUDE."""
    read_capacity: NotRequired[int]
    """Read units per second (PROVISIONED tables only, required there)."""
    write_capacity: NotRequired[int]
    """Write units per second (PROVISIONED tables only, required there)."""


def _key(spec: KeyAttributeInputs) -> _table.KeyAttribute:
    return _table.KeyAttribute(spec["name"], spec.get("type", "S"))  # type: ignore[arg-type]


def _index(spec: GlobalSecondaryIndexInputs) -> _table.GlobalSecondaryIndex:
    return _table.GlobalSecondaryIndex(
        name=spec["name"],
        hash_key=_key(spec["hash_key"]),
        range_key=_key(spec["range_key"]) if "range_key" in spec else None,
        **_present(
            spec, "projection_type", "non_key_attributes", "read_capacity", "write_capacity"
        ),
    )


class TableInputs(TypedDict):
    hash_key: KeyAttributeInputs
    """Partition key."""
    range_key: NotRequired[KeyAttributeInputs]
    """Sort key (default none)."""
    stream_view_type: NotRequired[str]
    """Stream view: NEW_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY or OLD_IMAGE (default no stream)."""
    ttl_attribute: NotRequired[str]
    """Number attribute holding the expiry time in epoch seconds (default no TTL)."""
    billing_mode: NotRequired[str]
    """"PAY_PER_REQUEST" (default) or "PROVISIONED"."""
    read_capacity: NotRequired[int]
    """Read units per second (PROVISIONED only, required there)."""
    write_capacity: NotRequired[int]
    """Write units per second (PROVISIONED only, required there)."""
    point_in_time_recovery: NotRequired[bool]
    """35 days of continuous backups (default true)."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """Customer-managed KMS key ARN (default the AWS-managed DynamoDB key)."""
    deletion_protection: NotRequired[bool]
    """Refuse deletion (default false)."""
    global_secondary_indexes: NotRequired[list[GlobalSecondaryIndexInputs]]
    """Global secondary indexes (default none)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the table."""


class Table(_Facade):
    """A DynamoDB table: encrypted with KMS, point-in-time recovery on, on demand by default."""

    arn: pulumi.Output[str]
    """ARN of the table."""
    name: pulumi.Output[str]
    """Name of the table."""
    stream_arn: pulumi.Output[str] | None
    """ARN of the table's stream (absent without `streamViewType`)."""

    def __init__(
        self, name: str, args: TableInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        table = _table.Table(
            name,
            _table.TableArgs(
                hash_key=_key(args["hash_key"]),
                range_key=_key(args["range_key"]) if "range_key" in args else None,
                global_secondary_indexes=[
                    _index(spec) for spec in args.get("global_secondary_indexes", [])
                ],
                **_present(
                    args,
                    "stream_view_type",
                    "ttl_attribute",
                    "billing_mode",
                    "read_capacity",
                    "write_capacity",
                    "point_in_time_recovery",
                    "kms_key_arn",
                    "deletion_protection",
                    "tags",
                ),
            ),
            opts,
        )
        self._expose(table)
        self.arn = table.arn
        self.name = table.name
        self.stream_arn = table.stream_arn


# ------------------------------------------------------------------ Function


class GrantInputs(TypedDict):
    name: str
    """Name of the inline policy (1..64 of A-Z a-z 0-9 _ -), unique per function."""
    actions: list[str]
    """IAM actions, each named (no wildcards)."""
    resources: list[pulumi.Input[str]]
    """ARNs the actions are allowed on."""


class DurableInputs(TypedDict):
    execution_timeout_seconds: int
    """Longest run of a whole durable execution: 1..31622400 seconds (366 days)."""
    retention_period_days: NotRequired[int]
    """Days the history of a closed execution is kept: 1..90 (default 14)."""


class FunctionInputs(TypedDict):
    handler: str
    """"module.path.function" under `codeDir`, e.g. "handlers.notify.handler"."""
    timeout_seconds: int
    """Timeout in seconds: 1..900."""
    code_dir: str
    """Folder deployed as the code (absolute path); tests and caches are left out."""
    memory_mb: NotRequired[int]
    """Memory in MB: 128..10240 (default 256)."""
    architecture: NotRequired[str]
    """"arm64" (default) or "x86_64"."""
    runtime: NotRequired[str]
    """Python runtime, python3.12 or newer (default "python3.12")."""
    environment: NotRequired[dict[str, pulumi.Input[str]]]
    """Extra environment variables (default none)."""
    reserved_concurrency: NotRequired[int]
    """Cap on concurrent executions (default unreserved)."""
    log_retention_days: NotRequired[int]
    """Days logs are kept, a CloudWatch Logs retention (default 14)."""
    log_level: NotRequired[str]
    """DEBUG, INFO (default), WARN or ERROR."""
    async_on_failure: NotRequired[bool]
    """Create `<name>-async-dlq` for failed asynchronous invocations (default false)."""
    async_max_retry_attempts: NotRequired[int]
    """Retries of a failed asynchronous invocation: 0..2 (default 2)."""
    async_max_event_age_seconds: NotRequired[int]
    """Seconds an asynchronous event is retried at most: 60..21600 (default 3600)."""
    function_name: NotRequired[str]
    """Physical name (default "<project>-<stack>-<name>")."""
    description: NotRequired[str]
    """Description (default the handler)."""
    alarms: NotRequired[bool]
    """Alarms on errors and throttles (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarms notify (default none)."""
    durable: NotRequired[DurableInputs]
    """Make it a Lambda durable function (python3.13 or newer), invoked through its alias
    `targetArn` (default: not durable)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the function, its log group, role, alarms and on-failure queue."""
    grants: NotRequired[list[GrantInputs]]
    """Permissions of the execution role, one inline policy each (default none: the role
    may only write its logs and traces)."""


def _function_args(spec: FunctionInputs) -> _function.FunctionArgs:
    settings: dict[str, Any] = {key: value for key, value in spec.items() if key != "grants"}
    if "durable" in settings:
        settings["durable"] = _durable.DurableConfig(**settings["durable"])
    return _function.FunctionArgs(**settings)


def _grant(function: _function.Function, grants: Sequence[GrantInputs]) -> None:
    for grant in grants:
        function.grant(
            grant["name"], [Statement(actions=grant["actions"], resources=grant["resources"])]
        )


class Function(_Facade):
    """A Python Lambda function with its own log group, least-privilege role, active
    tracing and alarms on errors and throttles."""

    arn: pulumi.Output[str]
    """ARN of the function."""
    target_arn: pulumi.Output[str]
    """ARN to invoke the function by (rule targets, mappings, grants): the alias ARN of a
    durable function, `arn` otherwise."""
    qualifier: pulumi.Output[str] | None
    """Alias a durable function is invoked through (absent otherwise)."""
    name: pulumi.Output[str]
    """Name of the function."""
    role_arn: pulumi.Output[str]
    """ARN of the execution role."""
    role_name: pulumi.Output[str]
    """Name of the execution role (for an EventSourceMapping's `function.roleName`)."""

    def __init__(
        self, name: str, args: FunctionInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        function = _function.Function(name, _function_args(args), opts)
        _grant(function, args.get("grants", []))
        self._expose(function)
        self.arn = function.arn
        self.target_arn = function.target_arn
        self.qualifier = (
            pulumi.Output.from_input(function.qualifier) if function.qualifier else None
        )
        self.name = function.name
        self.role_arn = function.role.arn
        self.role_name = function.role.name


# ------------------------------------------------------------------ DependencyLayer


class DependencyLayerInputs(TypedDict):
    requirements_file: str
    """pip requirements file of the layer (absolute path)."""
    packages: NotRequired[list[str]]
    """Local Python projects (folders with a pyproject.toml) whose wheels go in the layer."""
    architecture: NotRequired[str]
    """"arm64" (default) or "x86_64"; must match the functions using it."""
    python_version: NotRequired[str]
    """"3.12" (default) or newer."""
    cache_dir: NotRequired[str]
    """Where built zips are kept (default `.build/layers` under the working directory)."""
    tags: NotRequired[dict[str, str]]
    """Checked and kept for uniformity: a layer version takes no tags."""


def _paths(inputs: Any, *keys: str) -> dict[str, Any]:
    return {key: Path(inputs[key]) for key in keys if key in inputs}


class DependencyLayer(_Facade):
    """A Lambda layer version of a requirements file, built for Lambda's platform."""

    arn: pulumi.Output[str]
    """ARN of the layer version."""
    runtime: pulumi.Output[str]
    """Lambda runtime the layer is built for, e.g. "python3.12"."""

    def __init__(
        self, name: str, args: DependencyLayerInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        layer = _layer.DependencyLayer(
            name,
            _layer.DependencyLayerArgs(
                requirements_file=Path(args["requirements_file"]),
                packages=[Path(p) for p in args.get("packages", [])],
                **_present(args, "architecture", "python_version", "tags"),
                **_paths(args, "cache_dir"),
            ),
            opts,
        )
        self._expose(layer)
        self.arn = layer.arn
        self.runtime = pulumi.Output.from_input(layer.runtime)


# ------------------------------------------------------------------ EventSourceMapping


@dataclasses.dataclass(frozen=True)
class _Consumer:
    """A function given by ARN, name and role (what `ConsumerLike` asks)."""

    pulumi_resource_name: str
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    role: aws.iam.Role
    timeout_seconds: int
    reserved_concurrency: int | None

    @property
    def target_arn(self) -> pulumi.Output[str]:
        """The ARN the mapping invokes: the one given (a durable function's alias ARN)."""
        return self.arn


@dataclasses.dataclass(frozen=True)
class _QueueRef:
    """A queue given by ARN (what `QueueSourceLike` asks)."""

    arn: pulumi.Output[str]
    visibility_timeout_seconds: int
    fifo: bool
    kms_key_arn: pulumi.Input[str] | None

    def consume_statements(self) -> list[Statement]:
        statements = [Statement(actions=_queue.CONSUME_ACTIONS, resources=[self.arn])]
        if self.kms_key_arn is not None:
            statements.append(
                Statement(actions=_queue.KMS_CONSUME_ACTIONS, resources=[self.kms_key_arn])
            )
        return statements


@dataclasses.dataclass(frozen=True)
class _KinesisRef:
    """A Kinesis stream given by ARN (what `KinesisStreamLike` asks)."""

    arn: pulumi.Output[str]
    kms_key_arn: pulumi.Input[str] | None

    def read_statements(self) -> list[Statement]:
        statements = [Statement(actions=_stream.READ_ACTIONS, resources=[self.arn])]
        if self.kms_key_arn is not None:
            statements.append(
                Statement(actions=_stream.KMS_READ_ACTIONS, resources=[self.kms_key_arn])
            )
        return statements


class ConsumerInputs(TypedDict):
    arn: pulumi.Input[str]
    """ARN the mapping invokes: a Function's `targetArn` (a durable function's alias)."""
    name: pulumi.Input[str]
    """Name of the function."""
    role_name: pulumi.Input[str]
    """Name of its execution role (gets the read permissions on the source)."""
    timeout_seconds: int
    """The function's timeout in seconds (an SQS queue's visibility timeout is checked
    against it)."""
    reserved_concurrency: NotRequired[int]
    """The function's reserved concurrency, if any."""


class SqsSourceInputs(TypedDict):
    queue_arn: pulumi.Input[str]
    """ARN of the queue."""
    visibility_timeout_seconds: int
    """The queue's visibility timeout in seconds (>= 6 x the function timeout + window)."""
    fifo: NotRequired[bool]
    """Whether the queue is FIFO (default false)."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """The queue's customer-managed key (default none)."""
    batch_size: NotRequired[int]
    """Messages per batch: 1..10000, 1..10 for FIFO (default 10)."""
    maximum_batching_window_seconds: NotRequired[int]
    """Seconds to wait to fill a batch: 0..300 (default 0)."""
    maximum_concurrency: NotRequired[int]
    """Concurrent invocations: 2..1000 (default unlimited up to 1000)."""


class StreamSourceInputs(TypedDict):
    stream_arn: pulumi.Input[str]
    """ARN of the DynamoDB stream or Kinesis stream."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """Kinesis only: the stream's customer-managed key (default none)."""
    starting_position: NotRequired[str]
    """"TRIM_HORIZON" (default) or "LATEST"."""
    batch_size: NotRequired[int]
    """Records per batch: 1..10000 (default 100)."""
    maximum_batching_window_seconds: NotRequired[int]
    """Seconds to wait to fill a batch: 0..300 (default 0)."""
    filter_patterns: NotRequired[list[dict[str, Any]]]
    """Up to 5 event patterns a record must match (default every record)."""
    bisect_on_error: NotRequired[bool]
    """Split a failing batch to isolate the bad record (default true)."""
    maximum_retry_attempts: NotRequired[int]
    """Retries of a failing batch: 0..10000 (default 5)."""
    maximum_record_age_seconds: NotRequired[int]
    """Record age in seconds after which it goes to the failure queue: 60..604800
    (default 3600)."""
    parallelization_factor: NotRequired[int]
    """Concurrent batches per shard: 1..10 (default 1)."""


_STREAM_SETTINGS = (
    "starting_position",
    "batch_size",
    "maximum_batching_window_seconds",
    "filter_patterns",
    "bisect_on_error",
    "maximum_retry_attempts",
    "maximum_record_age_seconds",
    "parallelization_factor",
)


class EventSourceMappingInputs(TypedDict):
    function: ConsumerInputs
    """The consuming function (e.g. a Function's arn, name, roleName and timeout)."""
    sqs_queue: NotRequired[SqsSourceInputs]
    """An SQS queue as the source; give exactly one of sqsQueue, dynamodbStream,
    kinesisStream."""
    dynamodb_stream: NotRequired[StreamSourceInputs]
    """A DynamoDB table's stream as the source."""
    kinesis_stream: NotRequired[StreamSourceInputs]
    """A Kinesis data stream as the source."""
    enabled: NotRequired[bool]
    """Whether the mapping is enabled (default true)."""
    alarms: NotRequired[bool]
    """DynamoDB streams: alarm on the function's lag; and the failure queue's alarm
    (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarms notify (default none)."""
    iterator_age_alarm_seconds: NotRequired[int]
    """Lag in seconds that raises the DynamoDB stream alarm (default 300)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the mapping, its alarm and its failure queue."""


def _source(args: EventSourceMappingInputs) -> _event_source.Source:
    given = [key for key in ("sqs_queue", "dynamodb_stream", "kinesis_stream") if key in args]
    if len(given) != 1:
        raise ValueError(
            "EventSourceMapping: give exactly one of sqsQueue, dynamodbStream, kinesisStream; "
            f"got {len(given)}"
        )
    if "sqs_queue" in args:
        sqs = args["sqs_queue"]
        return _event_source.SqsSource(
            queue=_QueueRef(
                pulumi.Output.from_input(sqs["queue_arn"]),
                sqs["visibility_timeout_seconds"],
                sqs.get("fifo", False),
                sqs.get("kms_key_arn"),
            ),
            **_present(sqs, "batch_size", "maximum_batching_window_seconds", "maximum_concurrency"),
        )
    if "dynamodb_stream" in args:
        spec = args["dynamodb_stream"]
        return _event_source.DynamoDbStreamSource(
            stream=spec["stream_arn"], **_present(spec, *_STREAM_SETTINGS)
        )
    spec = args["kinesis_stream"]
    return _event_source.KinesisSource(
        stream=_KinesisRef(pulumi.Output.from_input(spec["stream_arn"]), spec.get("kms_key_arn")),
        **_present(spec, *_STREAM_SETTINGS),
    )


class EventSourceMapping(_Facade):
    """A function consuming an SQS queue, a DynamoDB stream or a Kinesis stream: read
    permissions granted on the source, partial batch failures, finite retries and a
    failure queue for streams."""

    uuid: pulumi.Output[str]
    """ID of the event source mapping."""
    on_failure_arn: pulumi.Output[str] | None
    """ARN of the failure queue of a stream source (absent for SQS)."""

    def __init__(
        self,
        name: str,
        args: EventSourceMappingInputs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = _whole_numbers(args)
        source = _source(args)
        spec = args["function"]
        # The existing role, read (not managed) so that the grant can name it.
        role = aws.iam.Role.get(
            f"{name}-consumer-role",
            spec["role_name"],
            opts=pulumi.ResourceOptions(parent=opts.parent if opts else None),
        )
        consumer = _Consumer(
            pulumi_resource_name=name,
            arn=pulumi.Output.from_input(spec["arn"]),
            name=pulumi.Output.from_input(spec["name"]),
            role=role,
            timeout_seconds=spec["timeout_seconds"],
            reserved_concurrency=spec.get("reserved_concurrency"),
        )
        mapping = _event_source.EventSourceMapping(
            name,
            _event_source.EventSourceMappingArgs(
                function=consumer,
                source=source,
                **_present(
                    args, "enabled", "alarms", "alarm_actions", "iterator_age_alarm_seconds", "tags"
                ),
            ),
            opts,
        )
        self._expose(mapping)
        self.uuid = mapping.mapping.uuid
        self.on_failure_arn = mapping.on_failure.arn if mapping.on_failure else None


# ------------------------------------------------------------------ StateMachine


class StateMachineInputs(TypedDict):
    definition: dict[str, Any]
    """The ASL definition (StartAt, States, ...) as a JSON object."""
    task_function_arns: NotRequired[list[pulumi.Input[str]]]
    """Lambda function ARNs the definition invokes; the role may invoke exactly these."""
    type: NotRequired[str]
    """"STANDARD" (default) or "EXPRESS" (refused when its worst case can outlast 5
    minutes)."""
    max_task_seconds: NotRequired[int]
    """The longest a task without TimeoutSeconds runs, in seconds, for the EXPRESS check
    (default: Lambda's 900 s)."""
    log_level: NotRequired[str]
    """"ERROR" (default), "ALL", "FATAL" or "OFF"."""
    include_execution_data: NotRequired[bool]
    """Log states' input and output (default false)."""
    log_retention_days: NotRequired[int]
    """Days logs are kept (default 14)."""
    log_kms_key_arn: NotRequired[pulumi.Input[str]]
    """KMS key of the log group (default CloudWatch's encryption)."""
    tracing: NotRequired[bool]
    """X-Ray tracing of executions (default true)."""
    alarms: NotRequired[bool]
    """Alarms on failed and timed-out executions (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarms notify (default none)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the state machine, its role, log group and alarms."""


class StateMachine(_Facade):
    """A Step Functions state machine with a role that may invoke exactly its task
    functions, logs and alarms on failed and timed-out executions."""

    arn: pulumi.Output[str]
    """ARN of the state machine."""
    name: pulumi.Output[str]
    """Name of the state machine."""
    role_arn: pulumi.Output[str]
    """ARN of its role."""

    def __init__(
        self, name: str, args: StateMachineInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        machine = _state_machine.StateMachine(
            name,
            _state_machine.StateMachineArgs(**args),  # type: ignore[arg-type]
            opts,
        )
        self._expose(machine)
        self.arn = machine.arn
        self.name = machine.name
        self.role_arn = machine.role.arn


# ------------------------------------------------------------------ OutboxRelay


@dataclasses.dataclass(frozen=True)
class _BusRef:
    """An event bus given by name and ARN (what the relay's `EventBusLike` asks)."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def put_events_statements(self) -> list[Statement]:
        return [Statement(actions=_event_bus.PUT_EVENTS_ACTIONS, resources=[self.arn])]


class BusInputs(TypedDict):
    name: pulumi.Input[str]
    """Name of the event bus."""
    arn: pulumi.Input[str]
    """ARN of the event bus."""


class OutboxRelayInputs(TypedDict):
    bus: BusInputs
    """The event bus the outbox rows are published to."""
    function: FunctionInputs
    """The relay function: its handler (e.g. one calling `eventcraft.outbox.relay`), code
    folder and limits."""
    sweeper: NotRequired[FunctionInputs]
    """The sweeper function (e.g. one calling `eventcraft.outbox.sweep`), run on a schedule
    to republish the rows the relay gave up on; omit it for no sweeper."""
    sweep_schedule: NotRequired[str]
    """When the sweeper runs (default "rate(5 minutes)")."""
    sweep_after_seconds: NotRequired[int]
    """Rows still unpublished this many seconds after they were written are republished
    (default 120)."""
    table_kms_key_arn: NotRequired[pulumi.Input[str]]
    """Customer-managed KMS key of the outbox table (default the AWS-managed key)."""
    starting_position: NotRequired[str]
    """"TRIM_HORIZON" (default) or "LATEST"."""
    batch_size: NotRequired[int]
    """Stream records per invocation: 1..10000 (default 100)."""
    maximum_batching_window_seconds: NotRequired[int]
    """Seconds to wait to fill a batch (default 0)."""
    maximum_retry_attempts: NotRequired[int]
    """Retries of a failing batch: 0..10000 (default 10)."""
    maximum_record_age_seconds: NotRequired[int]
    """Record age in seconds after which it goes to the dead-letter queue (default 3600)."""
    bisect_on_error: NotRequired[bool]
    """Split a failing batch to isolate the bad record (default true)."""
    parallelization_factor: NotRequired[int]
    """Concurrent batches per shard (default 1: rows relayed in order)."""
    iterator_age_alarm_seconds: NotRequired[int]
    """Age in seconds of the oldest unrelayed row that raises the alarm (default 300)."""
    alarms: NotRequired[bool]
    """The iterator-age alarm and the dead-letter queue's alarm (default true)."""
    alarm_actions: NotRequired[list[pulumi.Input[str]]]
    """SNS topic ARNs the alarms notify (default none)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the outbox table, the function and the stream mapping."""


class OutboxRelay(_Facade):
    """The transactional outbox: an outbox table (`<name>-outbox`, a Table beside the
    relay) and the relay publishing each new row to the bus."""

    table_name: pulumi.Output[str]
    """Name of the outbox table, where the application writes its outbox rows."""
    table_arn: pulumi.Output[str]
    """ARN of the outbox table."""
    function_arn: pulumi.Output[str]
    """ARN of the relay function."""
    dead_letter_queue_arn: pulumi.Output[str]
    """ARN of the queue receiving records that exhausted their retries."""
    sweeper_arn: pulumi.Output[str | None]
    """ARN of the sweeper function (none without a sweeper)."""

    def __init__(
        self, name: str, args: OutboxRelayInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        tags = args.get("tags")
        table = _table.Table(
            f"{name}-outbox",
            _table.outbox_table(kms_key_arn=args.get("table_kms_key_arn"), tags=tags),
            opts,
        )
        bus = args["bus"]
        relay = _outbox_relay.OutboxRelay(
            name,
            _outbox_relay.OutboxRelayArgs(
                table=table,
                bus=_BusRef(
                    pulumi.Output.from_input(bus["name"]), pulumi.Output.from_input(bus["arn"])
                ),
                function=_function_args(args["function"]),
                sweeper=_function_args(args["sweeper"]) if "sweeper" in args else False,
                **_present(
                    args,
                    "sweep_schedule",
                    "sweep_after_seconds",
                    "starting_position",
                    "batch_size",
                    "maximum_batching_window_seconds",
                    "maximum_retry_attempts",
                    "maximum_record_age_seconds",
                    "bisect_on_error",
                    "parallelization_factor",
                    "iterator_age_alarm_seconds",
                    "alarms",
                    "alarm_actions",
                    "tags",
                ),
            ),
            opts,
        )
        _grant(relay.function, args["function"].get("grants", []))
        if relay.sweeper is not None:
            _grant(relay.sweeper, args["sweeper"].get("grants", []))
        self._expose(relay)
        self.table_name = table.name
        self.table_arn = table.arn
        self.function_arn = relay.function.arn
        self.dead_letter_queue_arn = relay.dead_letter_queue.arn
        self.sweeper_arn = (
            relay.sweeper.arn if relay.sweeper is not None else pulumi.Output.from_input(None)
        )


# ------------------------------------------------------------------ Alerts


class AlertsInputs(TypedDict):
    email: NotRequired[str]
    """Address subscribed to the topic (AWS mails a confirmation link first)."""
    kms_master_key_id: NotRequired[str]
    """Your own KMS key for the topic, allowing CloudWatch (default: one is created)."""
    tags: NotRequired[dict[str, str]]
    """Tags of the key and the topic."""


class Alerts(_Facade):
    """An SNS topic for alarm notifications: encrypted, publishable by CloudWatch only;
    pass `topicArn` as the other components' `alarmActions`."""

    topic_arn: pulumi.Output[str]
    """ARN of the topic."""

    def __init__(
        self, name: str, args: AlertsInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = _whole_numbers(args)
        alerts = _alarms.Alerts(name, _alarms.AlertsArgs(**args), opts)
        self._expose(alerts)
        self.topic_arn = alerts.topic_arn


COMPONENTS: list[type[pulumi.ComponentResource]] = [
    EventBus,
    EventRule,
    Queue,
    DeadLetterQueue,
    Stream,
    Table,
    Function,
    DependencyLayer,
    EventSourceMapping,
    StateMachine,
    OutboxRelay,
    Alerts,
]
"""The components the provider hosts, each as `eventcraft:index:<ClassName>`."""


def main() -> None:
    """Run the provider (the Pulumi engine starts it as a plugin)."""
    from pulumi.provider.experimental import component_provider_host

    component_provider_host(components=COMPONENTS, name=PROVIDER_NAME, version=provider_version())
