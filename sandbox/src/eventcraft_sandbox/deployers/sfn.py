"""Step Functions: StateMachine (the API's parameters are camelCase already)."""

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


def _logging(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    out = drop_none(
        {"level": config.get("level"), "includeExecutionData": config.get("includeExecutionData")}
    )
    if config.get("logDestination"):
        out["destinations"] = [
            {"cloudWatchLogsLogGroup": {"logGroupArn": config["logDestination"]}}
        ]
    return out


def state_machine(ctx: DeployContext, request: ResourceRequest) -> Created:
    sfn = ctx.for_request(request, "stepfunctions")
    name = physical_name(request)
    tracing = request.get("tracingConfiguration")
    encryption = request.get("encryptionConfiguration")
    params = drop_none(
        {
            "name": name,
            "definition": request.get("definition"),
            "roleArn": request.get("roleArn"),
            "type": request.get("type", "STANDARD"),
            "loggingConfiguration": _logging(request.get("loggingConfiguration")),
            "tracingConfiguration": (
                {"enabled": bool(tracing.get("enabled"))} if tracing is not None else None
            ),
            "encryptionConfiguration": drop_none(dict(encryption)) if encryption else None,
            "publish": request.get("publish"),
            "versionDescription": request.get("versionDescription"),
            "tags": tag_list(request.get("tags"), key="key", value="value"),
        }
    )
    created = sfn.create_state_machine(**params)
    arn = created["stateMachineArn"]
    described = sfn.describe_state_machine(stateMachineArn=arn)
    return arn, outputs(
        request,
        name=name,
        arn=arn,
        creationDate=created["creationDate"].isoformat(),
        status=described.get("status", "ACTIVE"),
        revisionId=described.get("revisionId"),
        stateMachineVersionArn=created.get("stateMachineVersionArn", ""),
        tagsAll=request.get("tags", {}),
    )


DEPLOYERS: dict[str, Deployer] = {"aws:sfn/stateMachine:StateMachine": state_machine}
