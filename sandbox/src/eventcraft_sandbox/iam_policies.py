"""IAM policy evaluation the sandbox does itself, where moto does not.

- Resource policies and trust policies name AWS *service* principals
  (`events.amazonaws.com`, `states.amazonaws.com`), which moto's own evaluator never
  sees as a caller: `policy_allows` and `trusts` judge them, with the confused-deputy
  conditions AWS sets when a service acts for one of your resources
  (`aws:SourceArn`, `aws:SourceAccount`).
- A role's identity policies (inline and attached) are judged by moto's own evaluator,
  the one that enforces the role when handlers run: `missing_actions` over
  `role_documents`.

No import of the rest of the sandbox: the Lambda runtime, the delivery and the checks
of `eventcraft_sandbox.service_roles` all use it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

__all__ = [
    "missing_actions",
    "policy_allows",
    "role_documents",
    "service_principals",
    "trusts",
]

# Services whose trust policies may name a regional principal instead of the global
# one: Step Functions answers "Neither the global service principal
# states.amazonaws.com, nor the regional one is authorized to assume the provided role."
_REGIONAL_PRINCIPALS = frozenset({"states.amazonaws.com"})


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        services = _as_list(principal.get("Service"))
        aws = _as_list(principal.get("AWS"))
        return service in services or "*" in aws
    return False


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Conditions on the keys in `context` (case-insensitive); others are not judged,
    except `aws:SourceArn` / `aws:SourceAccount`, which fail when the caller has none."""
    keys = {k.lower(): v for k, v in context.items()}
    for operator, clauses in condition.items():
        op = operator.lower().removesuffix("ifexists")
        for key, expected in dict(clauses).items():
            actual = keys.get(key.lower())
            if actual is None:
                if key.lower() in ("aws:sourcearn", "aws:sourceaccount"):
                    return False
                continue
            values = [str(v) for v in _as_list(expected)]
            if op in ("arnequals", "stringequals"):
                ok = actual in values
            elif op in ("arnlike", "stringlike"):
                ok = any(fnmatch.fnmatchcase(actual, v) for v in values)
            elif op in ("arnnotequals", "stringnotequals"):
                ok = actual not in values
            elif op in ("arnnotlike", "stringnotlike"):
                ok = not any(fnmatch.fnmatchcase(actual, v) for v in values)
            elif op == "bool":
                ok = actual.lower() in (v.lower() for v in values)
            else:
                continue
            if not ok:
                return False
    return True


def _matches_any(value: str, patterns: list[Any], *, case: bool = True) -> bool:
    for pattern in patterns:
        p = str(pattern)
        if case and fnmatch.fnmatchcase(value, p):
            return True
        if not case and fnmatch.fnmatchcase(value.lower(), p.lower()):
            return True
    return False


def policy_allows(
    policy: str | Mapping[str, Any] | None,
    *,
    service: str,
    action: str,
    resource: str,
    source_arn: str | None = None,
    source_account: str | None = None,
) -> bool:
    """Whether a resource policy lets the AWS `service` principal call `action` on
    `resource` for `source_arn` (explicit Deny wins; no policy allows nothing)."""
    if not policy:
        return False
    document = json.loads(policy) if isinstance(policy, str) else policy
    # AWS services call each other over TLS: a DenyInsecureTransport statement
    # (`Bool aws:SecureTransport false`) does not apply to them.
    context = {"aws:SecureTransport": "true"}
    if source_arn:
        context["aws:SourceArn"] = source_arn
    if source_account:
        context["aws:SourceAccount"] = source_account
    allowed = False
    for statement in _as_list(document.get("Statement")):
        if not _principal_matches(statement.get("Principal"), service):
            continue
        if not _matches_any(action, _as_list(statement.get("Action")), case=False):
            continue
        resources = _as_list(statement.get("Resource"))
        bare = resource.removesuffix(":$LATEST")
        if resources and not (
            _matches_any(resource, resources)
            or _matches_any(bare, resources)
            or _matches_any(f"{bare}:$LATEST", resources)
        ):
            continue
        if not _condition_holds(statement.get("Condition") or {}, context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


def service_principals(service: str, region: str) -> tuple[str, ...]:
    """The principals a trust policy may name for `service` in `region`: the global
    one, and for Step Functions also the regional `states.<region>.amazonaws.com`."""
    if service in _REGIONAL_PRINCIPALS:
        name = service.split(".", 1)[0]
        return (service, f"{name}.{region}.amazonaws.com")
    return (service,)


def trusts(
    document: Any,
    principal: str | Sequence[str],
    *,
    source_arn: str | None,
    source_account: str | None,
) -> bool:
    """Whether a trust policy lets the AWS service `principal` (or any of several:
    `service_principals`) sts:AssumeRole on behalf of `source_arn` in `source_account`
    (the confused-deputy conditions)."""
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document))
        except ValueError:
            return False
    if not isinstance(document, Mapping):
        return False
    principals = [principal] if isinstance(principal, str) else list(principal)
    return any(
        policy_allows(
            document,
            service=name,
            action="sts:AssumeRole",
            resource="*",
            source_arn=source_arn,
            source_account=source_account,
        )
        for name in principals
    )


def role_documents(role: Any) -> list[Any]:
    """A moto IAM `Role`'s identity policies: its inline documents and its attached
    managed policies (whose default version counts), as moto's `IAMPolicy` takes them."""
    documents: list[Any] = [
        doc if isinstance(doc, str) else json.dumps(doc) for doc in role.policies.values()
    ]
    documents.extend(role.managed_policies.values())
    return documents


def missing_actions(documents: Iterable[Any], actions: Iterable[str], resource: str) -> list[str]:
    """The `actions` that `documents` (identity policies: JSON text or moto managed
    policies) do not allow on `resource`, judged by moto's evaluator (an explicit Deny
    in any document refuses)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    policies = [IAMPolicy(doc) for doc in documents]
    missing = []
    for action in actions:
        results = [policy.is_action_permitted(action, resource) for policy in policies]
        if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
            missing.append(action)
    return missing
