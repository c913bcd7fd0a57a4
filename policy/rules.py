"""The order-saga policy pack: the project's rules for event-driven stacks, written once.

Every rule reads a neutral view of the stack (`PolicyView`) and returns `Findings`: the
violations (each names the resource and what to fix) and what it could not check
because a value is unknown. Three adapters build views:

- `view_from_resource_args` (pulumi-policy `ResourceValidationArgs`): `props` are the
  resource's INPUTS. During `pulumi preview` an input that depends on another
  resource's output (an ARN, a rendered policy) is unknown; at `pulumi up` they are
  resolved before the policy runs. There are no outputs and no dependencies.
- `view_from_policy_resource` (pulumi-policy `StackValidationArgs.resources`): `props`
  are the resource's OUTPUTS (its state, which repeats its inputs); during preview the
  computed ones (ARNs, URLs, rendered JSON) of resources still to be created are
  unknown. `property_dependencies` says which resources an unknown property comes
  from, so references still resolve (a redrive policy to its DLQ, an alarm to its queue).
- `view_from_mock` (`eventcraft_sandbox.mock_deploy.Resource`): `props` are the recorded inputs,
  `outputs` what the mocks computed; every value is known, references resolve by value.

A view keeps both `props` (the configuration rules check) and `outputs` (identifiers:
`arn`, `url`, `name`, ... other resources refer to). Unknown values become `UNKNOWN`:
a rule never turns one into a violation, it records what it could not check in
`Findings.unchecked` (the resource's other checks still run); the pulumi-policy
wrappers then raise the SDK's
`UnknownValueError`, which Pulumi shows as an advisory "can't run policy ... during
preview" diagnostic, after reporting every violation it could establish.

`policies()` wraps each rule in a pulumi-policy policy (mandatory): rules about one
resource as `ResourceValidationPolicy`, rules across resources as
`StackValidationPolicy`. Importing this module starts nothing; only the pack's
`__main__.py` calls `PolicyPack(...)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pulumi.output import Unknown as _PulumiUnknown
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from pulumi_eventcraft.iam import PRINCIPAL_RESTRICTING_KEYS, find_violations

QUEUE = "aws:sqs/queue:Queue"
REDRIVE_POLICY = "aws:sqs/redrivePolicy:RedrivePolicy"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
FUNCTION = "aws:lambda/function:Function"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
PIPE = "aws:pipes/pipe:Pipe"
TABLE = "aws:dynamodb/table:Table"
STREAM = "aws:kinesis/stream:Stream"
TOPIC = "aws:sns/topic:Topic"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KEY_POLICY_TYPES = frozenset({"aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"})
ROLE = "aws:iam/role:Role"
POLICY_ATTACHMENT_TYPES = frozenset(
    {
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:iam/userPolicyAttachment:UserPolicyAttachment",
        "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    }
)

DLQ_METRIC_NAMESPACE = "AWS/SQS"
DLQ_METRIC = "ApproximateNumberOfMessagesVisible"
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
# Lambda's "forever" for stream mappings: retry until the record expires from the stream.
INFINITE = -1
# Properties that hold a policy document: an unknown one is a document we could not read.
POLICY_PROPERTIES = frozenset(
    {"policy", "assumeRolePolicy", "accessPolicies", "keyPolicy", "inlinePolicies"}
)
# Condition keys that scope a "*" principal (besides PRINCIPAL_RESTRICTING_KEYS).
SOURCE_ARN_KEY = "aws:sourcearn"
SOURCE_ARN_OPERATORS = frozenset({"ArnEquals", "ArnLike", "StringEquals", "StringLike"})
# AWS-managed policies that grant whole services (or everything): wildcards by another name.
_BROAD_MANAGED_POLICY = re.compile(
    r"arn:aws[a-z-]*:iam::aws:policy/(.*FullAccess|AdministratorAccess|PowerUserAccess)(-.*)?"
)
_ACCOUNT_ROOT = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:root")
# In a key policy, "*" as the resource means "this key"; find_violations sees an ARN.
_THIS_KEY = "arn:aws:kms:::key/this-key"
# Event source mappings of these kinds have no bisect/retry/batch-failure settings.
_OTHER_SOURCE_KEYS = (
    "topics",
    "queues",
    "selfManagedEventSource",
    "documentDbEventSourceConfig",
    "amazonManagedKafkaEventSourceConfig",
    "selfManagedKafkaEventSourceConfig",
)


# --------------------------------------------------------------------- the view


class _Unknown:
    """A value Pulumi does not know yet (preview): never equal to anything real."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
_SENTINELS = frozenset(
    {
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_STRING_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_OBJECT_VALUE,
    }
)


@dataclass(frozen=True)
class PolicyView:
    """One resource, as every rule sees it.

    `type` is the Pulumi type token, `name` the logical name, `urn` the URN, `parent`
    the parent's URN. `props` is the resource's configuration in camelCase (inputs, or
    the state for stack validation) and `outputs` what the provider computed (empty
    when not available); both are plain dicts and lists with `UNKNOWN` for unknown
    values. `dependencies` maps a top-level property to the URNs of the resources its
    value comes from (stack validation only): it resolves references whose value is
    still unknown.
    """

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name the resource: `<type> '<logical name>'`."""
        return f"{self.type} '{self.name}'"

    def get(self, path: str) -> Any:
        """The configuration value at a dotted path; None when absent, UNKNOWN when unknown."""
        return _dig(self.props, path)

    def attr(self, key: str) -> Any:
        """An identifying attribute (`arn`, `url`, `name`...): outputs first, then props."""
        value = self.outputs.get(key)
        if value is None or value is UNKNOWN:
            fallback = self.props.get(key)
            return value if fallback is None else fallback
        return value


def _dig(value: Any, path: str) -> Any:
    for key in path.split("."):
        if value is UNKNOWN:
            return UNKNOWN
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def plain(value: Any) -> Any:
    """A copy of `value` with plain dicts and lists and `UNKNOWN` for every unknown value.

    Takes pulumi-policy's unknown-checking proxies (which raise `UnknownValueError` when
    an unknown element is read), its sentinel strings, and the mocks' `Unknown`.
    """
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if value is UNKNOWN or isinstance(value, _PulumiUnknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in list(value):
            try:
                out[str(key)] = plain(value[key])
            except UnknownValueError:
                out[str(key)] = UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


class MockResourceLike(Protocol):
    """What `view_from_mock` reads of `eventcraft_sandbox.mock_deploy.Resource`."""

    @property
    def typ(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def parent(self) -> str | None: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...


def view_from_mock(resource: MockResourceLike) -> PolicyView:
    """A mocked deployment's resource: props = recorded inputs, outputs = computed outputs."""
    return PolicyView(
        type=resource.typ,
        name=resource.name,
        urn=resource.urn,
        props=plain(resource.inputs),
        outputs=plain(resource.outputs),
        parent=resource.parent,
    )


def view_from_resource_args(args: ResourceValidationArgs) -> PolicyView:
    """A resource under validation: props = its inputs (unknown ones in preview)."""
    parent = getattr(args.opts, "parent", None) if args.opts is not None else None
    return PolicyView(
        type=args.resource_type,
        name=args.name,
        urn=args.urn,
        props=plain(args.props),
        parent=parent or None,
    )


def view_from_policy_resource(resource: PolicyResource) -> PolicyView:
    """A stack resource: props = its outputs (state), which also identify it."""
    props = plain(resource.props)
    return PolicyView(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=props,
        outputs=props,
        parent=resource.parent.urn if resource.parent is not None else None,
        dependencies={
            key: tuple(dep.urn for dep in deps)
            for key, deps in (resource.property_dependencies or {}).items()
        },
    )


# ---------------------------------------------------------------- rule results


@dataclass(frozen=True)
class Violation:
    """A broken rule: the resource's URN and a message naming it and the fix."""

    urn: str
    message: str


@dataclass
class Findings:
    """What a rule found: violations, and what it could not check (unknown values)."""

    violations: list[Violation] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    def violation(self, view: PolicyView, message: str) -> None:
        self.violations.append(Violation(view.urn, f"{view.label}: {message}"))

    def cannot_check(self, view: PolicyView, what: str) -> None:
        self.unchecked.append(f"{view.label}: cannot check {what}: unknown until deployed")

    @property
    def messages(self) -> list[str]:
        return [v.message for v in self.violations]


Check = Callable[[Sequence[PolicyView]], Findings]


@dataclass(frozen=True)
class Rule:
    """A rule: its policy name, description, scope and check.

    `scope="resource"` rules judge each resource alone (a ResourceValidationPolicy, run
    on each resource's inputs as it is registered); `scope="stack"` rules relate
    resources (a StackValidationPolicy, run on the whole stack's outputs).
    """

    name: str
    description: str
    scope: Literal["resource", "stack"]
    check: Check


def _of_type(views: Iterable[PolicyView], *types: str) -> Iterator[PolicyView]:
    return (v for v in views if v.type in types)


def _text(value: Any) -> str | None:
    """A known, non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _json(value: Any) -> Any:
    """A JSON document given as text or as an object; UNKNOWN stays UNKNOWN."""
    if value is UNKNOWN or isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Mapping) or value is UNKNOWN:
        return [value]
    return list(value)


# ---------------------------------------------------------------- references


class _Index:
    """Finds the resources a value refers to, by identifier or by dependency."""

    def __init__(self, views: Sequence[PolicyView]) -> None:
        self.by_urn = {v.urn: v for v in views}
        self.by_id: dict[str, list[PolicyView]] = {}
        for view in views:
            for key in ("arn", "url", "id", "name", "streamArn"):
                ident = _text(view.attr(key))
                if ident is not None:
                    self.by_id.setdefault(ident, []).append(view)

    def find(
        self, holder: PolicyView, prop: str, value: Any, types: Iterable[str]
    ) -> tuple[list[PolicyView], bool]:
        """(the resources of `types` that `value` refers to, whether that is certain).

        A known value refers to the resources it identifies (none: something outside
        the stack or of another type). An unknown one refers to the resources its
        property depends on, when those dependencies are known; otherwise it is
        uncertain.
        """
        wanted = set(types)
        if value is UNKNOWN:
            urns = holder.dependencies.get(prop.split(".", maxsplit=1)[0])
            if urns is None:
                return [], False
            found = [self.by_urn[u] for u in urns if u in self.by_urn]
            return [v for v in found if v.type in wanted], True
        ident = _text(value)
        if ident is None:
            return [], True
        return [v for v in self.by_id.get(ident, []) if v.type in wanted], True


def queue_name(view: PolicyView) -> Any:
    """An SQS queue's name: its `name`, else the last part of its URL or ARN."""
    name = view.attr("name")
    if _text(name):
        return name
    url = _text(view.attr("url"))
    if url:
        return url.rstrip("/").rsplit("/", 1)[-1]
    arn = _text(view.attr("arn"))
    if arn:
        return arn.rsplit(":", 1)[-1]
    return UNKNOWN


# Where a queue can be named as a dead-letter destination: (type, property, JSON key).
DLQ_REFERENCES: tuple[tuple[str, str, str | None], ...] = (
    (QUEUE, "redrivePolicy", "deadLetterTargetArn"),
    (REDRIVE_POLICY, "redrivePolicy", "deadLetterTargetArn"),
    (SUBSCRIPTION, "redrivePolicy", "deadLetterTargetArn"),
    (EVENT_TARGET, "deadLetterConfig.arn", None),
    (MAPPING, "destinationConfig.onFailure.destinationArn", None),
    (INVOKE_CONFIG, "destinationConfig.onFailure.destination", None),
    (FUNCTION, "deadLetterConfig.targetArn", None),
    (PIPE, "sourceParameters.dynamodbStreamParameters.deadLetterConfig.arn", None),
    (PIPE, "sourceParameters.kinesisStreamParameters.deadLetterConfig.arn", None),
)


@dataclass
class QueueRoles:
    """Which queues are work queues with a DLQ, which are DLQs, what stayed unresolved."""

    with_dlq: set[str] = field(default_factory=set)
    dlqs: set[str] = field(default_factory=set)
    unresolved: list[tuple[PolicyView, str]] = field(default_factory=list)
    broken: list[tuple[PolicyView, str]] = field(default_factory=list)


def _dead_letter_value(holder: PolicyView, prop: str, key: str | None) -> tuple[Any, str | None]:
    """(the DLQ reference a holder makes, or None; a problem with its redrive policy)."""
    value = holder.get(prop)
    if value is None or value is UNKNOWN or key is None:
        return value, None
    if isinstance(value, str) and not value.strip():
        return None, None  # the provider's state for "no redrive policy"
    document = _json(value)
    if not isinstance(document, Mapping):
        return None, f"{prop} is not a JSON object"
    target = document.get(key)
    if target is None or target == "":
        return None, f"{prop} has no {key}"
    return target, None


def queue_roles(views: Sequence[PolicyView]) -> QueueRoles:
    """Classify the stack's queues by structure (never by name)."""
    index = _Index(views)
    roles = QueueRoles()
    for rtype, prop, key in DLQ_REFERENCES:
        for holder in _of_type(views, rtype):
            value, problem = _dead_letter_value(holder, prop, key)
            if problem is not None:
                roles.broken.append((holder, problem))
                continue
            if value is None or value == "":
                continue
            targets, certain = index.find(holder, prop, value, (QUEUE,))
            if not certain:
                roles.unresolved.append((holder, prop))
            roles.dlqs.update(t.urn for t in targets)
            if rtype == QUEUE:
                roles.with_dlq.add(holder.urn)
            elif rtype == REDRIVE_POLICY:
                sources, sure = index.find(holder, "queueUrl", holder.get("queueUrl"), (QUEUE,))
                roles.with_dlq.update(s.urn for s in sources)
                if not sure:
                    roles.unresolved.append((holder, "queueUrl"))
    return roles


# ---------------------------------------------------------------------- rules


def check_queues_have_dlq(views: Sequence[PolicyView]) -> Findings:
    """Rule 1: every SQS queue either has a DLQ (a redrive policy) or is one."""
    findings = Findings()
    roles = queue_roles(views)
    for holder, problem in roles.broken:
        findings.violation(
            holder,
            f"{problem}; give it a JSON redrive policy "
            '{"deadLetterTargetArn": <DLQ ARN>, "maxReceiveCount": <n>}',
        )
    broken = {holder.urn for holder, _ in roles.broken}
    for queue in _of_type(views, QUEUE):
        if queue.urn in roles.with_dlq or queue.urn in roles.dlqs or queue.urn in broken:
            continue
        if roles.unresolved:
            holder, prop = roles.unresolved[0]
            findings.cannot_check(
                queue, f"whether it is a dead-letter queue ({holder.label} {prop})"
            )
            continue
        findings.violation(
            queue,
            "has no dead-letter queue (no redrivePolicy) and is not the dead-letter queue "
            "of any queue, rule target, event source mapping or Lambda destination; give it "
            'redrive_policy={"deadLetterTargetArn": <DLQ ARN>, "maxReceiveCount": <n>} '
            "(pulumi_eventcraft.queue.Queue does)",
        )
    return findings


def check_rule_targets(views: Sequence[PolicyView]) -> Findings:
    """Rule 2: every EventBridge rule target has a dead-letter queue and a retry policy."""
    findings = Findings()
    for target in _of_type(views, EVENT_TARGET):
        dlq = target.get("deadLetterConfig.arn")
        if dlq is UNKNOWN and target.get("deadLetterConfig") is UNKNOWN:
            findings.cannot_check(target, "deadLetterConfig")
        elif not (dlq is UNKNOWN or _text(dlq)):
            findings.violation(
                target,
                "has no deadLetterConfig: events it fails to deliver are dropped; set "
                "dead_letter_config={'arn': <standard SQS queue ARN>} "
                "(pulumi_eventcraft.event_rule.EventRule.add_target does)",
            )
        retry = target.get("retryPolicy")
        if retry is UNKNOWN:
            findings.cannot_check(target, "retryPolicy")
        elif not isinstance(retry, Mapping):
            findings.violation(
                target,
                "has no explicit retryPolicy (EventBridge's default retries 185 times over "
                "24 hours, hiding a broken target for a day); set retry_policy with "
                "maximum_retry_attempts and maximum_event_age_in_seconds",
            )
        else:
            missing = [
                key
                for key in ("maximumRetryAttempts", "maximumEventAgeInSeconds")
                if retry.get(key) is None
            ]
            if missing:
                findings.violation(
                    target, f"retryPolicy does not set {', '.join(missing)}; set both explicitly"
                )
    return findings


def _truthy(findings: Findings, view: PolicyView, path: str) -> bool | None:
    """True/False for a known value at `path`; None (recorded as unchecked) if unknown."""
    value = view.get(path)
    if value is UNKNOWN:
        findings.cannot_check(view, path)
        return None
    return value is True


def _key_set(view: PolicyView, path: str) -> bool:
    """A key is configured at `path` (an unknown value counts: it is a key's ARN)."""
    value = view.get(path)
    return value is UNKNOWN or bool(_text(value))


def check_encryption(views: Sequence[PolicyView]) -> Findings:
    """Rule 3: queues, tables, Kinesis streams and SNS topics are encrypted at rest."""
    findings = Findings()
    for queue in _of_type(views, QUEUE):
        if _key_set(queue, "kmsMasterKeyId"):
            continue
        if _truthy(findings, queue, "sqsManagedSseEnabled") is False:
            findings.violation(
                queue,
                "is not encrypted at rest; set sqs_managed_sse_enabled=True (SSE-SQS) or "
                "kms_master_key_id=<KMS key ARN>",
            )
    for table in _of_type(views, TABLE):
        if _truthy(findings, table, "serverSideEncryption.enabled") is False:
            findings.violation(
                table,
                "serverSideEncryption is not enabled (only DynamoDB's AWS-owned key, which "
                "you cannot audit or control); set server_side_encryption={'enabled': True} "
                "for the AWS-managed key, or with kms_key_arn for your own key "
                "(pulumi_eventcraft.table.Table does)",
            )
    for stream in _of_type(views, STREAM):
        kind = stream.get("encryptionType")
        if kind is UNKNOWN:
            findings.cannot_check(stream, "encryptionType")
        elif kind != "KMS" or not _key_set(stream, "kmsKeyId"):
            findings.violation(
                stream,
                "is not encrypted at rest; set encryption_type='KMS' and kms_key_id "
                "('alias/aws/kinesis' or a key ARN; pulumi_eventcraft.stream.Stream does)",
            )
    for topic in _of_type(views, TOPIC):
        if not _key_set(topic, "kmsMasterKeyId"):
            findings.violation(
                topic,
                "is not encrypted at rest; set kms_master_key_id to a KMS key (a "
                "customer-managed one if CloudWatch alarms publish to it, as "
                "pulumi_eventcraft.alarms.Alerts creates)",
            )
    return findings


def policy_documents(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every IAM policy document in a resource's props, with its property path.

    A document is a JSON string or an object with a `Statement`. A document property
    (`policy`, `assumeRolePolicy`, ...) whose value is unknown yields UNKNOWN.
    """
    if value is UNKNOWN:
        if path.rsplit(".", 1)[-1].split("[", maxsplit=1)[0] in POLICY_PROPERTIES:
            yield path, UNKNOWN
        return
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{") and "Statement" in text:
            parsed = _json(text)
            if parsed is not None:
                yield from policy_documents(parsed, path)
        return
    if isinstance(value, Mapping):
        if isinstance(value.get("Statement"), list | Mapping):
            yield path, value
            return
        for key, item in value.items():
            yield from policy_documents(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from policy_documents(item, f"{path}[{index}]")


def statements(document: Mapping[str, Any]) -> list[Any]:
    return _as_list(document.get("Statement"))


def _key_policy_for_iam_check(document: Mapping[str, Any]) -> dict[str, Any]:
    """A key policy as find_violations should judge it.

    In a key policy "*" is the only resource and means "this key"; and AWS's default
    statement (the account root allowed `kms:*`) is what keeps the key manageable
    through IAM. Statements keep their original positions in messages.
    """
    kept = []
    for index, st in enumerate(statements(document)):
        if not isinstance(st, Mapping):
            continue
        principal = st.get("Principal")
        aws_principals = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
        if (
            st.get("Effect") == "Allow"
            and _as_list(st.get("Action")) == ["kms:*"]
            and aws_principals
            and all(isinstance(p, str) and _ACCOUNT_ROOT.fullmatch(p) for p in aws_principals)
            and not st.get("Condition")
        ):
            continue
        resources = [_THIS_KEY if r == "*" else r for r in _as_list(st.get("Resource"))]
        kept.append({**st, "Sid": st.get("Sid") or f"Statement[{index}]", "Resource": resources})
    return {**document, "Statement": kept}


def check_least_privilege(views: Sequence[PolicyView]) -> Findings:
    """Rule 4: no wildcard actions, no '*' resources AWS does not require, no *FullAccess.

    Applies `pulumi_eventcraft.iam.find_violations` to every policy document of every resource
    (its public-principal finding is rule 5's, which also accepts aws:SourceArn).
    """
    findings = Findings()
    for view in views:
        for path, document in policy_documents(view.props):
            if document is UNKNOWN:
                findings.cannot_check(view, f"the policy document at {path}")
                continue
            judged = (
                _key_policy_for_iam_check(document) if view.type in KEY_POLICY_TYPES else document
            )
            for problem in find_violations(judged):
                if "public principal" not in problem:
                    findings.violation(view, f"{path} {problem}")
        attached = [*_as_list(view.get("managedPolicyArns"))] if view.type == ROLE else []
        if view.type in POLICY_ATTACHMENT_TYPES:
            attached.append(view.get("policyArn"))
        for arn in attached:
            if isinstance(arn, str) and _BROAD_MANAGED_POLICY.fullmatch(arn):
                findings.violation(
                    view,
                    f"attaches {arn}, which grants wildcard actions; grant the named actions "
                    "on the resources' ARNs instead (pulumi_eventcraft.iam.Statement)",
                )
    return findings


def _is_public(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any("*" in _as_list(v) for v in principal.values())
    return False


def _specific(values: Any) -> bool:
    listed = _as_list(values)
    return bool(listed) and all(
        isinstance(v, str) and v.strip() and "*" not in v and "?" not in v for v in listed
    )


def _scopes_principal(conditions: Any) -> bool:
    """A condition pinning '*' to an org/account (StringEquals) or to one source ARN."""
    if not isinstance(conditions, Mapping):
        return False
    for operator, block in conditions.items():
        if not isinstance(block, Mapping):
            continue
        for key, values in block.items():
            k = str(key).lower()
            if not _specific(values):
                continue
            if operator == "StringEquals" and k in PRINCIPAL_RESTRICTING_KEYS:
                return True
            if operator in SOURCE_ARN_OPERATORS and k == SOURCE_ARN_KEY:
                return True
    return False


def check_public_principals(views: Sequence[PolicyView]) -> Findings:
    """Rule 5: an Allow to principal '*' only when a condition scopes it (or in a Deny)."""
    findings = Findings()
    for view in views:
        for path, document in policy_documents(view.props):
            if document is UNKNOWN:
                findings.cannot_check(view, f"the policy document at {path}")
                continue
            for index, st in enumerate(statements(document)):
                if not isinstance(st, Mapping) or st.get("Effect") != "Allow":
                    continue
                where = st.get("Sid") or f"Statement[{index}]"
                if st.get("NotPrincipal") is not None:
                    findings.violation(
                        view,
                        f"{path} {where}: Allow with NotPrincipal grants everyone not listed; "
                        "name the principals with Principal",
                    )
                elif _is_public(st.get("Principal")) and not _scopes_principal(st.get("Condition")):
                    findings.violation(
                        view,
                        f"{path} {where}: allows principal '*' (anyone); name the principals, "
                        "or scope '*' with a StringEquals condition on aws:PrincipalOrgID or "
                        "aws:PrincipalAccount, or an ArnEquals condition on aws:SourceArn",
                    )
    return findings


def _type_of_urn(urn: str) -> str:
    """The type token in a URN (`urn:pulumi:<stack>::<project>::<parents$>type::<name>`)."""
    parts = urn.rsplit("::", 2)
    return parts[-2].rsplit("$", 1)[-1] if len(parts) == 3 else ""


def _source_of_arn(arn: str) -> Literal["sqs", "stream", "other"]:
    service = arn.split(":")[2] if arn.count(":") >= 2 else ""
    if service == "sqs":
        return "sqs"
    if service == "kinesis" or (service == "dynamodb" and "/stream/" in arn):
        return "stream"
    return "other"


def mapping_source(view: PolicyView) -> Literal["sqs", "stream", "other", "unknown"]:
    """What an event source mapping consumes: by its source ARN, else by its settings."""
    arn = view.get("eventSourceArn")
    text = _text(arn)
    if text is not None:
        return _source_of_arn(text)
    # Kafka, MQ and DocumentDB sources carry settings of their own (set, even if unknown).
    if any(view.get(key) is not None for key in _OTHER_SOURCE_KEYS) or arn is not UNKNOWN:
        return "other"
    kinds = {_type_of_urn(urn) for urn in view.dependencies.get("eventSourceArn", ())}
    if kinds & {QUEUE, TABLE, STREAM}:
        return "sqs" if QUEUE in kinds else "stream"
    # The ARN is unknown (preview): of the remaining sources only Kinesis and DynamoDB
    # streams take a starting position; SQS never does.
    position = view.get("startingPosition")
    if position is UNKNOWN:
        return "unknown"
    return "stream" if position is not None else "sqs"


def _finite(findings: Findings, view: PolicyView, key: str, allowed: str) -> None:
    value = view.get(key)
    if value is UNKNOWN:
        findings.cannot_check(view, key)
    elif value is None or value == INFINITE:
        shown = "unset (Lambda's default -1)" if value is None else "-1"
        findings.violation(
            view,
            f"{key} is {shown}: a failing record is retried until it expires, blocking its "
            f"shard; set it to {allowed}",
        )


def check_stream_mappings(views: Sequence[PolicyView]) -> Findings:
    """Rule 6: stream mappings bisect, retry finitely, age out, and keep what fails."""
    findings = Findings()
    for mapping in _of_type(views, MAPPING):
        kind = mapping_source(mapping)
        if kind == "unknown":
            findings.cannot_check(mapping, "eventSourceArn (stream or queue)")
        if kind != "stream":
            continue
        if _truthy(findings, mapping, "bisectBatchOnFunctionError") is False:
            findings.violation(
                mapping,
                "bisectBatchOnFunctionError is not true: a failing batch is retried whole; "
                "set bisect_batch_on_function_error=True to isolate the bad record",
            )
        _finite(findings, mapping, "maximumRetryAttempts", "0..10000 (e.g. 5)")
        _finite(findings, mapping, "maximumRecordAgeInSeconds", "60..604800 (e.g. 3600)")
        if not _key_set(mapping, "destinationConfig.onFailure.destinationArn"):
            findings.violation(
                mapping,
                "has no on-failure destination: records that exhaust their retries are "
                "dropped; set destination_config.on_failure.destination_arn to a standard "
                "SQS queue (pulumi_eventcraft.event_source.EventSourceMapping does)",
            )
    return findings


def check_batch_item_failures(views: Sequence[PolicyView]) -> Findings:
    """Rule 7: SQS and stream mappings report partial batch failures."""
    findings = Findings()
    for mapping in _of_type(views, MAPPING):
        kind = mapping_source(mapping)
        if kind == "unknown":
            findings.cannot_check(mapping, "eventSourceArn (stream or queue)")
        if kind not in ("sqs", "stream"):
            continue
        types = mapping.get("functionResponseTypes")
        if types is UNKNOWN:
            findings.cannot_check(mapping, "functionResponseTypes")
        elif REPORT_BATCH_ITEM_FAILURES not in _as_list(types):
            findings.violation(
                mapping,
                f"functionResponseTypes lacks '{REPORT_BATCH_ITEM_FAILURES}': one failing "
                "record fails (and retries) its whole batch; set "
                "function_response_types=['ReportBatchItemFailures'] and return "
                "batchItemFailures from the handler",
            )
    return findings


def check_state_machines(views: Sequence[PolicyView]) -> Findings:
    """Rule 8: state machines log (a level other than OFF, to a destination) and trace."""
    findings = Findings()
    for machine in _of_type(views, STATE_MACHINE):
        level = machine.get("loggingConfiguration.level")
        if level is UNKNOWN:
            findings.cannot_check(machine, "loggingConfiguration.level")
        elif level in (None, "", "OFF"):
            findings.violation(
                machine,
                "does not log executions (loggingConfiguration level is OFF or unset); set "
                "logging_configuration with level 'ERROR' (or 'ALL'/'FATAL') and "
                "log_destination '<log group ARN>:*' "
                "(pulumi_eventcraft.state_machine.StateMachine does)",
            )
        elif not _key_set(machine, "loggingConfiguration.logDestination"):
            findings.violation(
                machine,
                "loggingConfiguration has no logDestination; set it to '<log group ARN>:*'",
            )
        if _truthy(findings, machine, "tracingConfiguration.enabled") is False:
            findings.violation(
                machine,
                "X-Ray tracing is off; set tracing_configuration={'enabled': True}",
            )
    return findings


def _alarm_metrics(alarm: PolicyView) -> Iterator[tuple[Any, Any, Any, str]]:
    """(namespace, metric name, dimensions, property) of the alarm and its metric queries."""
    yield (alarm.get("namespace"), alarm.get("metricName"), alarm.get("dimensions"), "dimensions")
    queries = alarm.get("metricQueries")
    for query in queries if isinstance(queries, list) else []:
        metric = query.get("metric") if isinstance(query, Mapping) else None
        if isinstance(metric, Mapping):
            yield (
                metric.get("namespace"),
                metric.get("metricName"),
                metric.get("dimensions"),
                "metricQueries",
            )


def _dlq_alarmed(
    dlq: PolicyView, alarms: Sequence[PolicyView], index: _Index
) -> tuple[bool, list[str]]:
    """(whether an alarm watches the DLQ's visible messages, what could not be told)."""
    name = queue_name(dlq)
    unsure: list[str] = []
    for alarm in alarms:
        for namespace, metric, dimensions, prop in _alarm_metrics(alarm):
            if namespace is UNKNOWN or metric is UNKNOWN:
                unsure.append(f"{alarm.label} {prop}")
                continue
            if namespace != DLQ_METRIC_NAMESPACE or metric != DLQ_METRIC:
                continue
            if dimensions is UNKNOWN:
                queue = UNKNOWN
            else:
                queue = dimensions.get("QueueName") if isinstance(dimensions, Mapping) else None
            if queue is UNKNOWN:
                found, certain = index.find(alarm, prop, UNKNOWN, (QUEUE,))
                if any(q.urn == dlq.urn for q in found):
                    return True, []
                if not certain:
                    unsure.append(f"{alarm.label} {prop}.QueueName")
            elif name is UNKNOWN:
                unsure.append(f"the name of {dlq.label}")
            elif queue == name:
                return True, []
    return False, unsure


def check_dlq_alarms(views: Sequence[PolicyView]) -> Findings:
    """Rule 9: every dead-letter queue (by structure, as in rule 1) has an alarm."""
    findings = Findings()
    roles = queue_roles(views)
    for holder, prop in roles.unresolved:
        findings.cannot_check(holder, f"{prop} (which queue is its dead-letter queue)")
    index = _Index(views)
    alarms = list(_of_type(views, ALARM))
    for dlq in _of_type(views, QUEUE):
        if dlq.urn not in roles.dlqs:
            continue
        alarmed, unsure = _dlq_alarmed(dlq, alarms, index)
        if alarmed:
            continue
        if unsure:
            findings.cannot_check(dlq, f"whether it has an alarm ({unsure[0]})")
            continue
        name = queue_name(dlq)
        findings.violation(
            dlq,
            "is a dead-letter queue without a CloudWatch alarm: failed messages would pile "
            f"up unnoticed; add an aws.cloudwatch.MetricAlarm on {DLQ_METRIC_NAMESPACE} "
            f"{DLQ_METRIC} with dimensions {{'QueueName': '{name}'}} "
            "(pulumi_eventcraft.queue.DeadLetterQueue creates one)",
        )
    return findings


def check_lambda_tracing(views: Sequence[PolicyView]) -> Findings:
    """Rule 10a: Lambda functions trace with X-Ray (tracingConfig.mode Active)."""
    findings = Findings()
    for function in _of_type(views, FUNCTION):
        mode = function.get("tracingConfig.mode")
        if mode is UNKNOWN:
            findings.cannot_check(function, "tracingConfig.mode")
        elif mode != "Active":
            findings.violation(
                function,
                f"X-Ray tracing is {mode or 'unset'!s}, not Active; set "
                "tracing_config={'mode': 'Active'} (pulumi_eventcraft.function.Function does)",
            )
    return findings


def _default_log_group(function: PolicyView) -> str | None:
    """`/aws/lambda/<function name>`: where Lambda logs unless told otherwise."""
    name = _text(function.attr("name"))
    return f"/aws/lambda/{name}" if name else None


def _function_log_group(
    function: PolicyView, groups: Sequence[PolicyView], index: _Index
) -> tuple[PolicyView | None, str | None]:
    """(its log group in the stack, the group name it logs to); (None, None) if unknown."""
    configured = function.get("loggingConfig.logGroup")
    if configured is UNKNOWN:
        found, _ = index.find(function, "loggingConfig", UNKNOWN, (LOG_GROUP,))
        return (found[0], "") if found else (None, None)
    name = _text(configured) or _default_log_group(function)
    for group in groups:
        if name is not None and group.attr("name") == name:
            return group, name
    return None, name


def check_lambda_log_retention(views: Sequence[PolicyView]) -> Findings:
    """Rule 10b: every function logs to a log group of this stack with a retention."""
    findings = Findings()
    index = _Index(views)
    groups = list(_of_type(views, LOG_GROUP))
    for function in _of_type(views, FUNCTION):
        group, name = _function_log_group(function, groups, index)
        if name is None:
            findings.cannot_check(function, "its log group (name or loggingConfig.logGroup)")
            continue
        if group is None:
            # A group other than the default is declared elsewhere (e.g. a shared stack):
            # not this stack's to judge. The state of a created function names the
            # default group even when nobody declared it, so that one must be here.
            if name != _default_log_group(function):
                continue
            findings.violation(
                function,
                f"has no log group: Lambda creates {name} on first use and keeps its logs "
                f"forever; declare an aws.cloudwatch.LogGroup named '{name}' with "
                "retention_in_days (pulumi_eventcraft.function.Function does)",
            )
            continue
        retention = group.get("retentionInDays")
        if retention is UNKNOWN:
            findings.cannot_check(group, "retentionInDays")
        elif not retention:
            findings.violation(
                group,
                f"keeps the logs of {function.label} forever (no retentionInDays); set "
                "retention_in_days (e.g. 14)",
            )
    return findings


RULES: tuple[Rule, ...] = (
    Rule(
        "sqs-queues-have-dlq",
        "Every SQS queue has a dead-letter queue (redrive policy) or is one.",
        "stack",
        check_queues_have_dlq,
    ),
    Rule(
        "rule-targets-have-dlq-and-retry",
        "Every EventBridge rule target has a deadLetterConfig and an explicit retryPolicy.",
        "resource",
        check_rule_targets,
    ),
    Rule(
        "encrypted-at-rest",
        "SQS queues, DynamoDB tables, Kinesis streams and SNS topics are encrypted with KMS.",
        "resource",
        check_encryption,
    ),
    Rule(
        "least-privilege-iam",
        "Policy documents name their actions and scope resources to ARNs "
        "(pulumi_eventcraft.iam.find_violations); no *FullAccess managed policies.",
        "resource",
        check_least_privilege,
    ),
    Rule(
        "no-public-principals",
        "Resource policies allow '*' only scoped by aws:PrincipalOrgID, aws:PrincipalAccount "
        "or aws:SourceArn.",
        "resource",
        check_public_principals,
    ),
    Rule(
        "stream-mappings-bounded-retries",
        "Kinesis/DynamoDB stream mappings bisect failing batches, retry a finite number of "
        "times within a finite record age, and have an on-failure destination.",
        "resource",
        check_stream_mappings,
    ),
    Rule(
        "mappings-report-batch-item-failures",
        "SQS and stream event source mappings report batch item failures.",
        "resource",
        check_batch_item_failures,
    ),
    Rule(
        "state-machines-log-and-trace",
        "Step Functions state machines log executions to a destination and trace with X-Ray.",
        "resource",
        check_state_machines,
    ),
    Rule(
        "dlqs-have-alarms",
        "Every dead-letter queue has a CloudWatch alarm on its visible messages.",
        "stack",
        check_dlq_alarms,
    ),
    Rule(
        "lambda-tracing-active",
        "Lambda functions trace with X-Ray (tracing mode Active).",
        "resource",
        check_lambda_tracing,
    ),
    Rule(
        "lambda-log-retention",
        "Lambda functions log to a log group of the stack that has a retention.",
        "stack",
        check_lambda_log_retention,
    ),
)


def check_all(views: Sequence[PolicyView]) -> dict[str, Findings]:
    """Every rule over the same views (e.g. a whole mocked deployment), by rule name."""
    return {rule.name: rule.check(views) for rule in RULES}


# ----------------------------------------------------------- pulumi-policy glue


def _report(findings: Findings, report_violation: ReportViolation) -> None:
    for violation in findings.violations:
        report_violation(violation.message, violation.urn)
    if findings.unchecked:
        # The SDK turns this into an advisory "can't run policy ... during preview"
        # diagnostic; the violations above are already reported.
        error = UnknownValueError(UNKNOWN_STRING_VALUE, [])
        error.message = "; ".join(findings.unchecked)
        raise error


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        _report(rule.check([view_from_resource_args(args)]), report_violation)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        views = [view_from_policy_resource(r) for r in args.resources]
        _report(rule.check(views), report_violation)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def policies() -> list[Policy]:
    """Every rule as a mandatory pulumi-policy policy, in `RULES` order."""
    return [
        _resource_policy(rule) if rule.scope == "resource" else _stack_policy(rule)
        for rule in RULES
    ]
