"""EventBridge Pipes: Pipe (created in moto, CRUD only there; recorded for delivery)."""

from __future__ import annotations

from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    PipeRecord,
    ResourceRequest,
    operation_params,
    outputs,
    physical_name,
)

_PIPE_INPUTS = (
    "description",
    "desiredState",
    "source",
    "sourceParameters",
    "enrichment",
    "enrichmentParameters",
    "target",
    "targetParameters",
    "roleArn",
    "tags",
    "logConfiguration",
    "kmsKeyIdentifier",
)


def pipe(ctx: DeployContext, request: ResourceRequest) -> Created:
    client = ctx.for_request(request, "pipes")
    name = physical_name(request)
    inputs = {"name": name, **{k: request.inputs.get(k) for k in _PIPE_INPUTS}}
    params = operation_params(client, "CreatePipe", inputs, f"{request.typ} {request.name}")
    created = client.create_pipe(**params)
    arn = created["Arn"]
    desired = params.get("DesiredState", "RUNNING")
    ctx.records.pipes.append(
        PipeRecord(
            name=request.name,
            pipe_name=name,
            arn=arn,
            source=params["Source"],
            target=params["Target"],
            role_arn=params["RoleArn"],
            desired_state=desired,
            request=params,
        )
    )
    return name, outputs(
        request, name=name, arn=arn, desiredState=desired, tagsAll=request.get("tags", {})
    )


DEPLOYERS: dict[str, Deployer] = {"aws:pipes/pipe:Pipe": pipe}
