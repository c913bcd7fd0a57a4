"""Least-privilege IAM, as data: statements scoped to ARNs, checked before they render.

Every policy document the components produce goes through `policy_document`, which
refuses wildcard actions, `*` resources (except for the few actions AWS accepts on
nothing else) and public principals (a `*` principal is not public when a StringEquals
condition on aws:PrincipalOrgID or aws:PrincipalAccount restricts it). `find_violations`
applies the same rules to any rendered document, so tests and the policy pack check what
was actually produced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.tags import Tags, tag_input

# What AWS documents for vended log delivery (Step Functions, Pipes) to CloudWatch Logs:
# none of these can be scoped to a log group.
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
# Actions that AWS does not let you scope to a resource: the only ones allowed on "*".
ACTIONS_WITHOUT_RESOURCE_SCOPE = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        "cloudwatch:PutMetricData",
        *LOG_DELIVERY_ACTIONS,
    }
)


@dataclass(frozen=True)
class Condition:
    """An IAM condition, e.g. Condition("ArnEquals", "aws:SourceArn", [rule.arn])."""

    test: str
    variable: str
    values: Sequence[pulumi.Input[str]]


@dataclass(frozen=True)
class Principal:
    """`type` is "Service" or "AWS" (account root or role ARNs); "*" is refused."""

    type: Literal["Service", "AWS"]
    identifiers: Sequence[pulumi.Input[str]]


@dataclass(frozen=True)
class Statement:
    """One statement. Actions are explicit names (no `*`); resources are ARNs."""

    actions: Sequence[str]
    resources: Sequence[pulumi.Input[str]]
    effect: Literal["Allow", "Deny"] = "Allow"
    conditions: Sequence[Condition] = ()
    principals: Sequence[Principal] = ()
    sid: str | None = None
    # Resource policies that deny (e.g. non-TLS access) legitimately use "*"; an Allow
    # to "*" needs a StringEquals aws:PrincipalOrgID / aws:PrincipalAccount condition.
    allow_any_principal: bool = field(default=False, repr=False)


class PolicyViolation(ValueError):
    """A policy statement breaks a least-privilege rule."""


def find_violations(document: Mapping[str, Any]) -> list[str]:
    """The least-privilege rules a rendered policy document breaks (empty when clean)."""
    problems: list[str] = []
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    for index, st in enumerate(statements):
        where = st.get("Sid") or f"Statement[{index}]"
        actions = _as_list(st.get("Action", []))
        resources = _as_list(st.get("Resource", []))
        for action in actions:
            if "*" in action or "?" in action:
                problems.append(f"{where}: wildcard action {action!r}; name each action")
        if st.get("NotAction") or st.get("NotResource"):
            problems.append(f"{where}: NotAction/NotResource grant more than they name")
        if st.get("Effect") == "Allow" and "*" in resources:
            broad = sorted(set(actions) - ACTIONS_WITHOUT_RESOURCE_SCOPE)
            if broad:
                problems.append(
                    f"{where}: resource '*' for {broad}; scope them to ARNs "
                    "('*' is allowed only for actions AWS cannot scope)"
                )
        if (
            st.get("Effect") == "Allow"
            and _is_public(st.get("Principal"))
            and not _restricts_principal(st.get("Condition"))
        ):
            problems.append(
                f"{where}: public principal; name the accounts or services, or restrict "
                "'*' with a StringEquals condition on aws:PrincipalOrgID or aws:PrincipalAccount"
            )
    return problems


# Condition keys that pin a "*" principal to one organization or account: with one of
# them under StringEquals, "*" is not public (IAM guide, "aws:PrincipalOrgID").
PRINCIPAL_RESTRICTING_KEYS = frozenset({"aws:principalorgid", "aws:principalaccount"})


def _restricting_values(values: Any) -> bool:
    """Non-empty, and no value that could match everyone (empty or with wildcards)."""
    listed = _as_list(values)
    return bool(listed) and all(
        isinstance(v, str) and v.strip() and "*" not in v and "?" not in v for v in listed
    )


def _restricts_principal(conditions: Any) -> bool:
    """Whether a rendered Condition block limits the principal to named orgs/accounts.

    Only `StringEquals` counts: `...IfExists` passes when the key is absent, and
    `StringLike` takes wildcards.
    """
    if not isinstance(conditions, Mapping):
        return False
    block = conditions.get("StringEquals")
    if not isinstance(block, Mapping):
        return False
    return any(
        key.lower() in PRINCIPAL_RESTRICTING_KEYS and _restricting_values(values)
        for key, values in block.items()
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _is_public(principal: Any) -> bool:
    if principal is None:
        return False
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any("*" in _as_list(v) for v in principal.values())
    return False


def policy_document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """Render statements to a policy JSON string, refusing least-privilege violations.

    Violations in literal values raise at once (before any resource is declared);
    ARNs that are Outputs are checked again once they resolve.
    """
    if not statements:
        raise PolicyViolation("a policy needs at least one statement")
    _check(statements)

    def render(args: list[Any]) -> str:
        pos = 0
        rendered = []
        for st in statements:
            resources = args[pos : pos + len(st.resources)]
            pos += len(st.resources)
            principals: dict[str, list[str]] = {}
            for pr in st.principals:
                ids = args[pos : pos + len(pr.identifiers)]
                pos += len(pr.identifiers)
                principals.setdefault(pr.type, []).extend(ids)
            conditions: dict[str, dict[str, Any]] = {}
            for cond in st.conditions:
                values = args[pos : pos + len(cond.values)]
                pos += len(cond.values)
                conditions.setdefault(cond.test, {})[cond.variable] = (
                    values[0] if len(values) == 1 else values
                )
            doc: dict[str, Any] = {"Effect": st.effect}
            if st.sid:
                doc["Sid"] = st.sid
            if st.allow_any_principal and not principals:
                doc["Principal"] = "*"
            elif principals:
                doc["Principal"] = {k: v[0] if len(v) == 1 else v for k, v in principals.items()}
            doc["Action"] = st.actions[0] if len(st.actions) == 1 else list(st.actions)
            doc["Resource"] = resources[0] if len(resources) == 1 else resources
            if conditions:
                doc["Condition"] = conditions
            rendered.append(doc)
        document = {"Version": "2012-10-17", "Statement": rendered}
        problems = find_violations(document)
        if problems:
            raise PolicyViolation("; ".join(problems))
        return json.dumps(document, sort_keys=False)

    flat: list[pulumi.Input[str]] = []
    for st in statements:
        flat.extend(st.resources)
        for pr in st.principals:
            flat.extend(pr.identifiers)
        for cond in st.conditions:
            flat.extend(cond.values)
    return pulumi.Output.all(*flat).apply(render)


def _check(statements: Sequence[Statement]) -> None:
    for st in statements:
        if not st.actions:
            raise PolicyViolation(f"statement {st.sid or st}: no actions")
        if not st.resources:
            raise PolicyViolation(f"statement {st.sid or st.actions}: no resources")
        literal = [r for r in st.resources if isinstance(r, str)]
        doc: dict[str, Any] = {
            "Effect": st.effect,
            "Action": list(st.actions),
            "Resource": literal,
        }
        if st.sid:
            doc["Sid"] = st.sid
        if st.allow_any_principal and st.effect == "Allow" and not _restricted(st.conditions):
            raise PolicyViolation(
                f"statement {st.sid or st.actions}: Allow to any principal; restrict it with "
                "Condition('StringEquals', 'aws:PrincipalOrgID' or 'aws:PrincipalAccount', "
                "[...]) or name the principals"
            )
        problems = find_violations({"Statement": [doc]})
        if problems:
            raise PolicyViolation("; ".join(problems))


def _restricted(conditions: Sequence[Condition]) -> bool:
    """`_restricts_principal` for conditions not rendered yet (Output values count as set)."""
    return any(
        c.test == "StringEquals"
        and c.variable.lower() in PRINCIPAL_RESTRICTING_KEYS
        and bool(c.values)
        and _restricting_values([v for v in c.values if isinstance(v, str)] or ["output"])
        for c in conditions
    )


def service_assume_role_policy(
    service: str,
    *,
    source_account: pulumi.Input[str] | None = None,
    source_arn: pulumi.Input[str] | None = None,
) -> pulumi.Output[str]:
    """Trust policy for one AWS service, optionally pinned to the caller (confused deputy)."""
    conditions = []
    if source_account is not None:
        conditions.append(Condition("StringEquals", "aws:SourceAccount", [source_account]))
    if source_arn is not None:
        conditions.append(Condition("ArnLike", "aws:SourceArn", [source_arn]))
    flat: list[pulumi.Input[str]] = [c.values[0] for c in conditions]

    def render(values: list[str]) -> str:
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }
        if conditions:
            statement["Condition"] = {
                c.test: {c.variable: v} for c, v in zip(conditions, values, strict=True)
            }
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    return pulumi.Output.all(*flat).apply(render)


def service_role(
    name: str,
    *,
    service: str,
    statements: Sequence[Statement],
    parent: pulumi.Resource,
    description: str,
    source_arn: pulumi.Input[str] | None = None,
    tags: Tags = None,
) -> aws.iam.Role:
    """A role that only `service` can assume, with exactly `statements` inline, tagged
    with `tags` (default none).

    The inline policy is a separate child (`{name}-policy`) so that grants added later
    (`grant_policy`) are further children, never edits of one growing document.
    """
    account = aws.get_caller_identity_output().account_id
    role = aws.iam.Role(
        name,
        description=description,
        assume_role_policy=service_assume_role_policy(
            service, source_account=account, source_arn=source_arn
        ),
        tags=tag_input(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    if statements:
        grant_policy(f"{name}-policy", role, statements, parent=parent)
    return role


def grant_policy(
    name: str, role: aws.iam.Role, statements: Sequence[Statement], *, parent: pulumi.Resource
) -> aws.iam.RolePolicy:
    """Attach `statements` to `role` as one inline policy named `name`."""
    return aws.iam.RolePolicy(
        name,
        role=role.id,
        policy=policy_document(statements),
        opts=pulumi.ResourceOptions(parent=parent),
    )


# Stands in for "this key" while policy_document checks and renders a key policy's
# statements; it never reaches a rendered document.
_THIS_KEY = "arn:aws:kms:::key/this-key"


def key_policy_document(
    statements: Sequence[Statement], *, account_id: pulumi.Input[str]
) -> pulumi.Output[str]:
    """A KMS key policy: AWS's default statement plus `statements`.

    The first statement is the one AWS writes when a key is created without a policy:
    the account root gets `kms:*`, which hands control of the key to the account's IAM
    policies (without it the key becomes unmanageable). `statements` add what IAM
    policies cannot grant, typically to service principals. In a key policy the only
    resource is "*", meaning "this key": each statement must say `resources=["*"]`
    and name its principals; actions are still checked by `policy_document`.
    """
    for st in statements:
        if list(st.resources) != ["*"]:
            raise PolicyViolation(
                f"key policy statement {st.sid or st.actions}: resources must be ['*'] "
                "(in a key policy '*' means this key)"
            )
        if not st.principals and not st.allow_any_principal:
            raise PolicyViolation(f"key policy statement {st.sid or st.actions}: no principals")
    scoped = [
        Statement(
            actions=st.actions,
            resources=[_THIS_KEY],
            effect=st.effect,
            conditions=st.conditions,
            principals=st.principals,
            sid=st.sid,
            allow_any_principal=st.allow_any_principal,
        )
        for st in statements
    ]
    rendered = policy_document(scoped) if scoped else pulumi.Output.from_input("")

    def assemble(args: list[Any]) -> str:
        account, body = args
        root: dict[str, Any] = {
            "Sid": "EnableIamPolicies",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
        rest = json.loads(body)["Statement"] if body else []
        for st in rest:
            st["Resource"] = "*"
        return json.dumps({"Version": "2012-10-17", "Statement": [root, *rest]})

    return pulumi.Output.all(account_id, rendered).apply(assemble)
