"""A role's credentials, assumed as an AWS service assumes it (after checking
that the role's trust policy names the service)."""

from __future__ import annotations

import json
from typing import Any

from eventcraft_sandbox.lambda_runtime.interface import RoleNotAssumableError
from eventcraft_sandbox.lambda_runtime.moto_hooks import MOTO_LOCK


def _trusts(document: Any, service: str) -> bool:
    """Whether a trust policy lets `service` (e.g. lambda.amazonaws.com) AssumeRole."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return False
    if not isinstance(document, dict):
        return False
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal")
        if principal == "*":
            return True
        if isinstance(principal, dict):
            services = principal.get("Service", [])
            services = [services] if isinstance(services, str) else services
            if service in services or principal.get("AWS") == "*":
                return True
    return False


def assume_role_as_service(
    role_arn: str, service: str, session_name: str, region: str
) -> dict[str, str]:
    """Credentials of `role_arn`, assumed the way `service` assumes it.

    Straight through moto's STS backend: the caller is the AWS service, which the
    trust policy names (moto's AssumeRole API cannot evaluate a Service principal).
    """
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("role/"):
        raise RoleNotAssumableError(f"{role_arn!r} is not a role ARN")
    partition, account = parts[1], parts[4]
    with MOTO_LOCK:
        try:
            role = iam_backends[account][partition].get_role_by_arn(role_arn)
        except Exception as exc:
            raise RoleNotAssumableError(f"the role {role_arn} does not exist") from exc
        if not _trusts(role.assume_role_policy_document, service):
            raise RoleNotAssumableError(
                f"the role {role_arn} cannot be assumed by {service}: its trust policy "
                f"does not allow sts:AssumeRole to the service principal {service}"
            )
        assumed = sts_backends[account][partition].assume_role(
            region_name=region,
            role_session_name=session_name[:64],
            role_arn=role_arn,
            policy="",
            duration=3600,
            external_id="",
        )
    return {
        "AccessKeyId": assumed.access_key_id,
        "SecretAccessKey": assumed.secret_access_key,
        "SessionToken": assumed.session_token,
    }
