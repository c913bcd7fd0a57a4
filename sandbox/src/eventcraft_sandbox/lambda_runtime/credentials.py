"""A role's credentials, assumed as an AWS service assumes it: after checking that the
role's trust policy lets the service assume it for the resource it acts for."""

from __future__ import annotations

from eventcraft_sandbox.iam_policies import service_principals, trusts
from eventcraft_sandbox.lambda_runtime.interface import RoleNotAssumableError
from eventcraft_sandbox.lambda_runtime.moto_hooks import MOTO_LOCK


def assume_role_as_service(
    role_arn: str,
    service: str,
    session_name: str,
    region: str,
    *,
    source_arn: str | None = None,
) -> dict[str, str]:
    """Credentials of `role_arn`, assumed the way `service` assumes it on behalf of
    `source_arn` (the function for Lambda, the state machine for Step Functions, the
    rule for EventBridge; None: no resource), whose account is aws:SourceAccount (the
    role's own without one).

    The trust policy is judged with those keys (`eventcraft_sandbox.iam_policies.trusts`):
    a statement pinned to another resource does not let the service in, as on AWS.
    Then straight through moto's STS backend: the caller is the AWS service, which
    moto's AssumeRole API cannot evaluate. Raises `RoleNotAssumableError`.
    """
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("role/"):
        raise RoleNotAssumableError(f"{role_arn!r} is not a role ARN")
    partition, account = parts[1], parts[4]
    source_parts = (source_arn or "").split(":")
    source_account = source_parts[4] if len(source_parts) > 4 else account
    with MOTO_LOCK:
        try:
            role = iam_backends[account][partition].get_role_by_arn(role_arn)
        except Exception as exc:
            raise RoleNotAssumableError(f"the role {role_arn} does not exist") from exc
        principals = service_principals(service, region)
        if not trusts(
            role.assume_role_policy_document,
            principals,
            source_arn=source_arn,
            source_account=source_account,
        ):
            raise RoleNotAssumableError(
                f"the role {role_arn} cannot be assumed by {service}"
                + (f" for {source_arn}" if source_arn else "")
                + ": its trust policy does not allow sts:AssumeRole to the service "
                f"principal {' or '.join(principals)}"
                + (" with that aws:SourceArn and aws:SourceAccount" if source_arn else "")
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
