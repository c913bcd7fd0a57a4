"""SQS: Queue, QueuePolicy, RedriveAllowPolicy."""

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

# Pulumi input -> SQS queue attribute.
QUEUE_ATTRIBUTES: dict[str, str] = {
    "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "deduplicationScope": "DeduplicationScope",
    "fifoThroughputLimit": "FifoThroughputLimit",
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "redrivePolicy": "RedrivePolicy",
    "redriveAllowPolicy": "RedriveAllowPolicy",
    "policy": "Policy",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
}


def _attribute_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def queue_attributes(request: ResourceRequest) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, attribute in QUEUE_ATTRIBUTES.items():
        value = request.inputs.get(key)
        # Like the provider, a false boolean is not sent on create: AWS refuses
        # FifoQueue=false ("Unknown Attribute") on a standard queue.
        if value is None or value is False or value == "":
            continue
        attributes[attribute] = _attribute_value(value)
    return attributes


def queue(ctx: DeployContext, request: ResourceRequest) -> Created:
    sqs = ctx.for_request(request, "sqs")
    name = physical_name(request, suffix=".fifo" if request.get("fifoQueue") else "")
    params: dict[str, Any] = {"QueueName": name, "Attributes": queue_attributes(request)}
    if request.get("tags"):
        params["tags"] = dict(request.get("tags"))
    url = sqs.create_queue(**params)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, outputs(request, name=name, arn=arn, url=url, tagsAll=request.get("tags", {}))


def _set_attribute(
    ctx: DeployContext, request: ResourceRequest, input_key: str, attribute: str
) -> Created:
    sqs = ctx.for_request(request, "sqs")
    url = request.require("queueUrl")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={attribute: request.require(input_key)})
    return url, outputs(request)


def queue_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    return _set_attribute(ctx, request, "policy", "Policy")


def redrive_allow_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    return _set_attribute(ctx, request, "redriveAllowPolicy", "RedriveAllowPolicy")


def redrive_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    return _set_attribute(ctx, request, "redrivePolicy", "RedrivePolicy")


DEPLOYERS: dict[str, Deployer] = {
    "aws:sqs/queue:Queue": queue,
    "aws:sqs/queuePolicy:QueuePolicy": queue_policy,
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": redrive_allow_policy,
    "aws:sqs/redrivePolicy:RedrivePolicy": redrive_policy,
}
