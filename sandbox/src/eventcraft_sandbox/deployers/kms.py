"""KMS: Key (CreateKey, then EnableKeyRotation) and Alias."""

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


def key(ctx: DeployContext, request: ResourceRequest) -> Created:
    kms = ctx.for_request(request, "kms")
    params = drop_none(
        {
            "Description": request.get("description"),
            "KeyUsage": request.get("keyUsage"),
            "KeySpec": request.get("customerMasterKeySpec"),
            "Policy": request.get("policy"),
            "BypassPolicyLockoutSafetyCheck": request.get("bypassPolicyLockoutSafetyCheck"),
            "MultiRegion": request.get("multiRegion"),
            "CustomKeyStoreId": request.get("customKeyStoreId"),
            "XksKeyId": request.get("xksKeyId"),
            "Tags": tag_list(request.get("tags"), key="TagKey", value="TagValue"),
        }
    )
    metadata = kms.create_key(**params)["KeyMetadata"]
    key_id = metadata["KeyId"]
    if request.get("enableKeyRotation"):
        rotation = drop_none(
            {"KeyId": key_id, "RotationPeriodInDays": request.get("rotationPeriodInDays")}
        )
        kms.enable_key_rotation(**rotation)
    if request.get("isEnabled") is False:
        kms.disable_key(KeyId=key_id)
    return key_id, outputs(
        request, keyId=key_id, arn=metadata["Arn"], tagsAll=request.get("tags", {})
    )


def alias(ctx: DeployContext, request: ResourceRequest) -> Created:
    kms = ctx.for_request(request, "kms")
    name = physical_name(request)
    if not request.get("name") and not request.get("namePrefix"):
        name = f"alias/{request.name}"
    target = request.require("targetKeyId")
    kms.create_alias(AliasName=name, TargetKeyId=target)
    metadata = kms.describe_key(KeyId=target)["KeyMetadata"]
    region = ctx.region_of(request)
    return name, outputs(
        request,
        name=name,
        arn=f"arn:aws:kms:{region}:{ctx.account}:{name}",
        targetKeyArn=metadata["Arn"],
    )


DEPLOYERS: dict[str, Deployer] = {
    "aws:kms/key:Key": key,
    "aws:kms/alias:Alias": alias,
}
