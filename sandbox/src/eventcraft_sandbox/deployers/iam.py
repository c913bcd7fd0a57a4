"""IAM: Role, RolePolicy, Policy, RolePolicyAttachment."""

from __future__ import annotations

from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    ResourceRequest,
    drop_none,
    outputs,
    physical_name,
    tag_list,
)


def role(ctx: DeployContext, request: ResourceRequest) -> Created:
    iam = ctx.client("iam")
    name = physical_name(request)
    params = drop_none(
        {
            "RoleName": name,
            "Path": request.get("path"),
            "AssumeRolePolicyDocument": request.get("assumeRolePolicy"),
            "Description": request.get("description"),
            "MaxSessionDuration": request.get("maxSessionDuration"),
            "PermissionsBoundary": request.get("permissionsBoundary"),
            "Tags": tag_list(request.get("tags")),
        }
    )
    created = iam.create_role(**params)["Role"]
    for inline in request.get("inlinePolicies") or []:
        if inline.get("name") and inline.get("policy"):
            iam.put_role_policy(
                RoleName=name, PolicyName=inline["name"], PolicyDocument=inline["policy"]
            )
    for policy_arn in request.get("managedPolicyArns") or []:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return name, outputs(
        request,
        name=name,
        arn=created["Arn"],
        uniqueId=created["RoleId"],
        createDate=created["CreateDate"].isoformat(),
        path=created.get("Path"),
        tagsAll=request.get("tags", {}),
    )


def role_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    iam = ctx.client("iam")
    name = physical_name(request)
    role_name = request.require("role")
    iam.put_role_policy(
        RoleName=role_name, PolicyName=name, PolicyDocument=request.require("policy")
    )
    return f"{role_name}:{name}", outputs(request, name=name, role=role_name)


def policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    iam = ctx.client("iam")
    name = physical_name(request)
    params = drop_none(
        {
            "PolicyName": name,
            "Path": request.get("path"),
            "Description": request.get("description"),
            "PolicyDocument": request.get("policy"),
            "Tags": tag_list(request.get("tags")),
        }
    )
    created = iam.create_policy(**params)["Policy"]
    return created["Arn"], outputs(
        request,
        name=name,
        arn=created["Arn"],
        policyId=created["PolicyId"],
        path=created.get("Path"),
        tagsAll=request.get("tags", {}),
    )


def role_policy_attachment(ctx: DeployContext, request: ResourceRequest) -> Created:
    iam = ctx.client("iam")
    role_name = request.require("role")
    policy_arn = request.require("policyArn")
    iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    return f"{role_name}/{policy_arn}", outputs(request)


DEPLOYERS: dict[str, Deployer] = {
    "aws:iam/role:Role": role,
    "aws:iam/rolePolicy:RolePolicy": role_policy,
    "aws:iam/policy:Policy": policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": role_policy_attachment,
}
