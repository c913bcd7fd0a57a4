"""EventBridge: EventBus, EventArchive, EventBusPolicy, EventPermission, EventRule,
EventTarget."""

from __future__ import annotations

from typing import Any

from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    DeployError,
    ResourceRequest,
    api_shape,
    drop_none,
    generated_id,
    outputs,
    physical_name,
    tag_list,
)

DEFAULT_BUS = "default"


def event_bus(ctx: DeployContext, request: ResourceRequest) -> Created:
    events = ctx.for_request(request, "events")
    name = physical_name(request)
    params = drop_none(
        {
            "Name": name,
            "EventSourceName": request.get("eventSourceName"),
            "Description": request.get("description"),
            "KmsKeyIdentifier": request.get("kmsKeyIdentifier"),
            "DeadLetterConfig": api_shape(request.get("deadLetterConfig")),
            "LogConfig": api_shape(request.get("logConfig")),
            "Tags": tag_list(request.get("tags")),
        }
    )
    arn = events.create_event_bus(**params)["EventBusArn"]
    return name, outputs(request, name=name, arn=arn, tagsAll=request.get("tags", {}))


def event_archive(ctx: DeployContext, request: ResourceRequest) -> Created:
    events = ctx.for_request(request, "events")
    name = physical_name(request)
    params = drop_none(
        {
            "ArchiveName": name,
            "EventSourceArn": request.get("eventSourceArn"),
            "Description": request.get("description"),
            "EventPattern": request.get("eventPattern"),
            "RetentionDays": request.get("retentionDays"),
            "KmsKeyIdentifier": request.get("kmsKeyIdentifier"),
        }
    )
    arn = events.create_archive(**params)["ArchiveArn"]
    return name, outputs(request, name=name, arn=arn)


def event_bus_policy(ctx: DeployContext, request: ResourceRequest) -> Created:
    events = ctx.for_request(request, "events")
    bus = request.get("eventBusName", DEFAULT_BUS)
    events.put_permission(EventBusName=bus, Policy=request.require("policy"))
    return bus, outputs(request, eventBusName=bus)


def event_permission(ctx: DeployContext, request: ResourceRequest) -> Created:
    events = ctx.for_request(request, "events")
    bus = request.get("eventBusName", DEFAULT_BUS)
    statement_id = request.require("statementId")
    params = drop_none(
        {
            "EventBusName": bus,
            "Action": request.get("action", "events:PutEvents"),
            "Principal": request.get("principal"),
            "StatementId": statement_id,
            "Condition": api_shape(request.get("condition")),
        }
    )
    events.put_permission(**params)
    resource_id = statement_id if bus == DEFAULT_BUS else f"{bus}/{statement_id}"
    return resource_id, outputs(request, eventBusName=bus)


def _rule_state(request: ResourceRequest) -> str:
    state = request.get("state")
    if state is not None:
        return str(state)
    return "DISABLED" if request.get("isEnabled") is False else "ENABLED"


def event_rule(ctx: DeployContext, request: ResourceRequest) -> Created:
    events = ctx.for_request(request, "events")
    name = physical_name(request)
    bus = request.get("eventBusName", DEFAULT_BUS)
    params = drop_none(
        {
            "Name": name,
            "EventBusName": bus,
            "EventPattern": request.get("eventPattern"),
            "ScheduleExpression": request.get("scheduleExpression"),
            "State": _rule_state(request),
            "Description": request.get("description"),
            "RoleArn": request.get("roleArn"),
            "Tags": tag_list(request.get("tags")),
        }
    )
    arn = events.put_rule(**params)["RuleArn"]
    # The provider's id: the rule name on the default bus, "<bus>/<rule>" elsewhere.
    resource_id = name if bus == DEFAULT_BUS else f"{bus}/{name}"
    return resource_id, outputs(
        request,
        name=name,
        arn=arn,
        eventBusName=bus,
        state=params["State"],
        tagsAll=request.get("tags", {}),
    )


# Target parameter blocks: Pulumi input -> PutTargets key, and their user-map fields.
_TARGET_BLOCKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sqsTarget": ("SqsParameters", ()),
    "kinesisTarget": ("KinesisParameters", ()),
    "httpTarget": ("HttpParameters", ("headerParameters", "queryStringParameters")),
    "batchTarget": ("BatchParameters", ()),
}
_UNSUPPORTED_BLOCKS = (
    "ecsTarget",
    "runCommandTargets",
    "redshiftTarget",
    "sagemakerPipelineTarget",
    "appsyncTarget",
)


def target_params(request: ResourceRequest, target_id: str) -> dict[str, Any]:
    """One PutTargets `Targets` entry, as the provider builds it."""
    for block in _UNSUPPORTED_BLOCKS:
        if request.get(block):
            raise DeployError(
                f"{request.typ} {request.name!r}: {block} targets are not supported by the "
                "sandbox deployer"
            )
    target: dict[str, Any] = drop_none(
        {
            "Id": target_id,
            "Arn": request.require("arn"),
            "RoleArn": request.get("roleArn"),
            "Input": request.get("input"),
            "InputPath": request.get("inputPath"),
        }
    )
    transformer = request.get("inputTransformer")
    if transformer:
        target["InputTransformer"] = drop_none(
            {
                "InputPathsMap": transformer.get("inputPaths"),
                "InputTemplate": transformer.get("inputTemplate"),
            }
        )
    if request.get("retryPolicy"):
        target["RetryPolicy"] = api_shape(request.get("retryPolicy"))
    if request.get("deadLetterConfig"):
        target["DeadLetterConfig"] = api_shape(request.get("deadLetterConfig"))
    for block, (key, verbatim) in _TARGET_BLOCKS.items():
        if request.get(block):
            target[key] = api_shape(request.get(block), verbatim=verbatim)
    return target


def event_target(ctx: DeployContext, request: ResourceRequest) -> Created:
    events = ctx.for_request(request, "events")
    rule = request.require("rule")
    bus = request.get("eventBusName", DEFAULT_BUS)
    # The provider generates a unique id when none is given; the logical name is unique.
    target_id = request.get("targetId") or generated_id(request.name)
    response = events.put_targets(
        Rule=rule, EventBusName=bus, Targets=[target_params(request, target_id)]
    )
    # PutTargets reports per-target failures in the body, not as an error.
    if response.get("FailedEntryCount"):
        failures = "; ".join(
            f"{e.get('ErrorCode')}: {e.get('ErrorMessage')}"
            for e in response.get("FailedEntries", [])
        )
        raise DeployError(
            f"PutTargets failed for target {target_id!r} of rule {rule!r}: {failures}"
        )
    resource_id = f"{rule}-{target_id}" if bus == DEFAULT_BUS else f"{bus}-{rule}-{target_id}"
    return resource_id, outputs(request, targetId=target_id, eventBusName=bus)


DEPLOYERS: dict[str, Deployer] = {
    "aws:cloudwatch/eventBus:EventBus": event_bus,
    "aws:cloudwatch/eventArchive:EventArchive": event_archive,
    "aws:cloudwatch/eventBusPolicy:EventBusPolicy": event_bus_policy,
    "aws:cloudwatch/eventPermission:EventPermission": event_permission,
    "aws:cloudwatch/eventRule:EventRule": event_rule,
    "aws:cloudwatch/eventTarget:EventTarget": event_target,
}
