"""SNS: Topic, TopicPolicy, TopicSubscription."""

from __future__ import annotations

from typing import Any

from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    ResourceRequest,
    outputs,
    physical_name,
    tag_list,
)

# Pulumi input -> topic attribute (CreateTopic Attributes).
TOPIC_ATTRIBUTES: dict[str, str] = {
    "displayName": "DisplayName",
    "policy": "Policy",
    "deliveryPolicy": "DeliveryPolicy",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "fifoTopic": "FifoTopic",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "signatureVersion": "SignatureVersion",
    "tracingConfig": "TracingConfig",
    "archivePolicy": "ArchivePolicy",
    "fifoThroughputScope": "FifoThroughputScope",
}
SUBSCRIPTION_ATTRIBUTES: dict[str, str] = {
    "filterPolicy": "FilterPolicy",
    "filterPolicyScope": "FilterPolicyScope",
    "rawMessageDelivery": "RawMessageDelivery",
    "redrivePolicy": "RedrivePolicy",
    "deliveryPolicy": "DeliveryPolicy",
    "subscriptionRoleArn": "SubscriptionRoleArn",
    "replayPolicy": "ReplayPolicy",
}


def _attributes(request: ResourceRequest, names: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, attribute in names.items():
        value = request.get(key)
        # As the provider does: false booleans and empty strings are not sent on create.
        if value is None or value is False or value == "":
            continue
        out[attribute] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def topic(ctx: DeployContext, request: ResourceRequest) -> Created:
    sns = ctx.for_request(request, "sns")
    name = physical_name(request, suffix=".fifo" if request.get("fifoTopic") else "")
    params: dict[str, Any] = {"Name": name, "Attributes": _attributes(request, TOPIC_ATTRIBUTES)}
    tags = tag_list(request.get("tags"))
    if tags:
        params["Tags"] = tags
    arn = sns.create_topic(**params)["TopicArn"]
    return arn, outputs(request, name=name, arn=arn, tagsAll=request.get("tags", {}))


def topic_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    sns = ctx.for_request(request, "sns")
    arn = request.require("arn")
    sns.set_topic_attributes(
        TopicArn=arn, AttributeName="Policy", AttributeValue=request.require("policy")
    )
    return arn, outputs(request, owner=ctx.account)


def topic_subscription(ctx: DeployContext, request: ResourceRequest) -> Created:
    sns = ctx.for_request(request, "sns")
    params: dict[str, Any] = {
        "TopicArn": request.require("topic"),
        "Protocol": request.require("protocol"),
        "Endpoint": request.get("endpoint"),
        "ReturnSubscriptionArn": True,
    }
    attributes = _attributes(request, SUBSCRIPTION_ATTRIBUTES)
    if attributes:
        params["Attributes"] = attributes
    arn = sns.subscribe(**{k: v for k, v in params.items() if v is not None})["SubscriptionArn"]
    # Email subscriptions wait for the recipient to confirm (moto confirms them).
    pending = request.get("protocol") in ("email", "email-json") and arn == "pending confirmation"
    return arn, outputs(request, arn=arn, ownerId=ctx.account, pendingConfirmation=pending)


DEPLOYERS: dict[str, Deployer] = {
    "aws:sns/topic:Topic": topic,
    "aws:sns/topicPolicy:TopicPolicy": topic_policy,
    "aws:sns/topicSubscription:TopicSubscription": topic_subscription,
}
