"""S3: Bucket / BucketV2 and the bucket configuration resources (encryption, public
access block, versioning, policy, notifications with EventBridge)."""

from __future__ import annotations

from typing import Any

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

# The hosted zone of S3 website endpoints in us-east-1 (the provider returns it).
_US_EAST_1_ZONE = "Z3AQBSTGFYJSTF"


def bucket(ctx: DeployContext, request: ResourceRequest) -> Created:
    s3 = ctx.for_request(request, "s3")
    region = ctx.region_of(request)
    name = physical_name(request, key="bucket")
    if not request.get("bucket") and request.get("bucketPrefix"):
        name = f"{request.get('bucketPrefix')}0000"
    params: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if request.get("objectLockEnabled"):
        params["ObjectLockEnabledForBucket"] = True
    s3.create_bucket(**params)
    tags = tag_list(request.get("tags"))
    if tags:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})
    return name, outputs(
        request,
        bucket=name,
        arn=f"arn:aws:s3:::{name}",
        bucketDomainName=f"{name}.s3.amazonaws.com",
        bucketRegionalDomainName=f"{name}.s3.{region}.amazonaws.com",
        region=region,
        hostedZoneId=_US_EAST_1_ZONE if region == "us-east-1" else None,
        tagsAll=request.get("tags", {}),
    )


def _bucket_of(request: ResourceRequest) -> str:
    return str(request.require("bucket"))


def bucket_encryption(ctx: DeployContext, request: ResourceRequest) -> Created:
    s3 = ctx.for_request(request, "s3")
    name = _bucket_of(request)
    rules = []
    for rule in request.get("rules") or []:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        rules.append(
            drop_none(
                {
                    "ApplyServerSideEncryptionByDefault": drop_none(
                        {
                            "SSEAlgorithm": default.get("sseAlgorithm"),
                            "KMSMasterKeyID": default.get("kmsMasterKeyId"),
                        }
                    )
                    or None,
                    "BucketKeyEnabled": rule.get("bucketKeyEnabled"),
                }
            )
        )
    s3.put_bucket_encryption(
        **drop_none(
            {
                "Bucket": name,
                "ServerSideEncryptionConfiguration": {"Rules": rules},
                "ExpectedBucketOwner": request.get("expectedBucketOwner"),
            }
        )
    )
    return name, outputs(request)


def public_access_block(ctx: DeployContext, request: ResourceRequest) -> Created:
    s3 = ctx.for_request(request, "s3")
    name = _bucket_of(request)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(request.get("blockPublicAcls", False)),
            "IgnorePublicAcls": bool(request.get("ignorePublicAcls", False)),
            "BlockPublicPolicy": bool(request.get("blockPublicPolicy", False)),
            "RestrictPublicBuckets": bool(request.get("restrictPublicBuckets", False)),
        },
    )
    return name, outputs(request)


def bucket_versioning(ctx: DeployContext, request: ResourceRequest) -> Created:
    s3 = ctx.for_request(request, "s3")
    name = _bucket_of(request)
    config = request.get("versioningConfiguration") or {}
    s3.put_bucket_versioning(
        **drop_none(
            {
                "Bucket": name,
                "VersioningConfiguration": drop_none(
                    {"Status": config.get("status"), "MFADelete": config.get("mfaDelete")}
                ),
                "MFA": request.get("mfa"),
                "ExpectedBucketOwner": request.get("expectedBucketOwner"),
            }
        )
    )
    return name, outputs(request)


def bucket_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    s3 = ctx.for_request(request, "s3")
    name = _bucket_of(request)
    s3.put_bucket_policy(Bucket=name, Policy=request.require("policy"))
    return name, outputs(request)


def _filter(config: dict[str, Any]) -> dict[str, Any] | None:
    rules = [
        {"Name": kind, "Value": config[key]}
        for kind, key in (("prefix", "filterPrefix"), ("suffix", "filterSuffix"))
        if config.get(key)
    ]
    return {"Key": {"FilterRules": rules}} if rules else None


def _notification(config: dict[str, Any], arn_key: str, api_arn_key: str) -> dict[str, Any]:
    return drop_none(
        {
            "Id": config.get("id"),
            api_arn_key: config.get(arn_key),
            "Events": config.get("events"),
            "Filter": _filter(config),
        }
    )


def bucket_notification(ctx: DeployContext, request: ResourceRequest) -> Created:
    s3 = ctx.for_request(request, "s3")
    name = _bucket_of(request)
    configuration: dict[str, Any] = {}
    if request.get("eventbridge"):
        configuration["EventBridgeConfiguration"] = {}
    for key, arn_key, api_key, api_arn_key in (
        ("queues", "queueArn", "QueueConfigurations", "QueueArn"),
        ("topics", "topicArn", "TopicConfigurations", "TopicArn"),
        (
            "lambdaFunctions",
            "lambdaFunctionArn",
            "LambdaFunctionConfigurations",
            "LambdaFunctionArn",
        ),
    ):
        items = request.get(key) or []
        if items:
            configuration[api_key] = [_notification(i, arn_key, api_arn_key) for i in items]
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=configuration)
    return name, outputs(request)


DEPLOYERS: dict[str, Deployer] = {
    "aws:s3/bucket:Bucket": bucket,
    "aws:s3/bucketV2:BucketV2": bucket,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        bucket_encryption
    ),
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": (
        bucket_encryption
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": public_access_block,
    "aws:s3/bucketVersioning:BucketVersioning": bucket_versioning,
    "aws:s3/bucketVersioningV2:BucketVersioningV2": bucket_versioning,
    "aws:s3/bucketPolicy:BucketPolicy": bucket_policy,
    "aws:s3/bucketNotification:BucketNotification": bucket_notification,
}
