"""Kinesis: Stream (CreateStream, retention, encryption, shard-level metrics)."""

from __future__ import annotations

from typing import Any

from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    ResourceRequest,
    outputs,
    physical_name,
)

DEFAULT_RETENTION_HOURS = 24


def stream(ctx: DeployContext, request: ResourceRequest) -> Created:
    kinesis = ctx.for_request(request, "kinesis")
    name = physical_name(request)
    mode = (request.get("streamModeDetails") or {}).get("streamMode", "PROVISIONED")
    params: dict[str, Any] = {"StreamName": name, "StreamModeDetails": {"StreamMode": mode}}
    if request.get("shardCount") is not None:
        params["ShardCount"] = request.get("shardCount")
    if request.get("tags"):
        params["Tags"] = dict(request.get("tags"))
    kinesis.create_stream(**params)

    retention = request.get("retentionPeriod", DEFAULT_RETENTION_HOURS)
    if retention > DEFAULT_RETENTION_HOURS:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=retention)
    if request.get("encryptionType", "NONE") != "NONE":
        kinesis.start_stream_encryption(
            StreamName=name,
            EncryptionType=request.get("encryptionType"),
            KeyId=request.get("kmsKeyId"),
        )
    metrics = request.get("shardLevelMetrics") or []
    if metrics:
        kinesis.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=list(metrics))

    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    arn = summary["StreamARN"]
    # The provider's id of a stream is its ARN.
    return arn, outputs(
        request,
        name=name,
        arn=arn,
        retentionPeriod=summary["RetentionPeriodHours"],
        encryptionType=summary.get("EncryptionType"),
        tagsAll=request.get("tags", {}),
    )


DEPLOYERS: dict[str, Deployer] = {"aws:kinesis/stream:Stream": stream}
