"""Lambda: Function, LayerVersion, Permission, FunctionEventInvokeConfig, and
EventSourceMapping (recorded for the sandbox's pollers, never created in moto)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from eventcraft_sandbox.deployers.archive import zip_bytes
from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    DeployError,
    EventSourceMappingRecord,
    ResourceRequest,
    api_shape,
    check_params,
    drop_none,
    generated_id,
    outputs,
    physical_name,
)
from eventcraft_sandbox.iam_policies import missing_actions

# Pulumi input keys whose Lambda API names are not plain PascalCase.
_RENAMES = {
    "kmsKeyArn": "KMSKeyArn",
    "destinationArn": "Destination",
    "documentDbEventSourceConfig": "DocumentDBEventSourceConfig",
}


def _code(request: ResourceRequest) -> dict[str, Any]:
    code = request.get("code")
    if code is not None:
        return {"ZipFile": zip_bytes(code)}
    if request.get("imageUri"):
        return {"ImageUri": request.get("imageUri")}
    return drop_none(
        {
            "S3Bucket": request.get("s3Bucket"),
            "S3Key": request.get("s3Key"),
            "S3ObjectVersion": request.get("s3ObjectVersion"),
        }
    )


def create_function_params(request: ResourceRequest, name: str) -> dict[str, Any]:
    """CreateFunction's parameters, as the provider builds them."""
    variables = (request.get("environment") or {}).get("variables")
    params = drop_none(
        {
            "FunctionName": name,
            "Role": request.get("role"),
            "Runtime": request.get("runtime"),
            "Handler": request.get("handler"),
            "Code": _code(request),
            "PackageType": request.get("packageType"),
            "Description": request.get("description"),
            "Timeout": request.get("timeout"),
            "MemorySize": request.get("memorySize"),
            "Publish": request.get("publish"),
            "Environment": {"Variables": dict(variables)} if variables else None,
            "TracingConfig": api_shape(request.get("tracingConfig")),
            "Layers": list(request.get("layers") or []) or None,
            "Architectures": list(request.get("architectures") or []) or None,
            "LoggingConfig": api_shape(request.get("loggingConfig")),
            "DeadLetterConfig": api_shape(request.get("deadLetterConfig")),
            "KMSKeyArn": request.get("kmsKeyArn"),
            "EphemeralStorage": api_shape(request.get("ephemeralStorage")),
            "VpcConfig": api_shape(request.get("vpcConfig")),
            "ImageConfig": api_shape(request.get("imageConfig")),
            "SnapStart": api_shape(request.get("snapStart")),
            # Durability: kept on moto's function (`eventcraft_sandbox.durable_service`).
            "DurableConfig": api_shape(
                request.get("durableConfig"), {"retentionPeriod": "RetentionPeriodInDays"}
            ),
            "FileSystemConfigs": (
                [api_shape(request.get("fileSystemConfig"))]
                if request.get("fileSystemConfig")
                else None
            ),
            "Tags": dict(request.get("tags")) if request.get("tags") else None,
        }
    )
    return params


def function(ctx: DeployContext, request: ResourceRequest) -> Created:
    client = ctx.for_request(request, "lambda")
    name = physical_name(request)
    created = client.create_function(**create_function_params(request, name))
    reserved = request.get("reservedConcurrentExecutions")
    # -1 is the provider's "unreserved" default.
    if reserved is not None and reserved >= 0:
        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
    arn = created["FunctionArn"]
    region = ctx.region_of(request)
    invoke = f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
    version = created.get("Version", "$LATEST")
    qualified = f"{arn}:{version}"
    return name, outputs(
        request,
        name=name,
        arn=arn,
        invokeArn=invoke,
        qualifiedArn=qualified,
        qualifiedInvokeArn=invoke.replace(arn, qualified),
        version=version,
        lastModified=created.get("LastModified"),
        codeSha256=created.get("CodeSha256"),
        sourceCodeHash=created.get("CodeSha256"),
        sourceCodeSize=created.get("CodeSize"),
        tagsAll=request.get("tags", {}),
    )


def layer_version(ctx: DeployContext, request: ResourceRequest) -> Created:
    client = ctx.for_request(request, "lambda")
    layer_name = request.require("layerName")
    content = (
        {"ZipFile": zip_bytes(request.get("code"))}
        if request.get("code") is not None
        else drop_none(
            {
                "S3Bucket": request.get("s3Bucket"),
                "S3Key": request.get("s3Key"),
                "S3ObjectVersion": request.get("s3ObjectVersion"),
            }
        )
    )
    params = drop_none(
        {
            "LayerName": layer_name,
            "Description": request.get("description"),
            "Content": content,
            "CompatibleRuntimes": list(request.get("compatibleRuntimes") or []) or None,
            "CompatibleArchitectures": list(request.get("compatibleArchitectures") or []) or None,
            "LicenseInfo": request.get("licenseInfo"),
        }
    )
    created = client.publish_layer_version(**params)
    arn = created["LayerVersionArn"]
    return arn, outputs(
        request,
        arn=arn,
        layerArn=created["LayerArn"],
        version=str(created["Version"]),
        createdDate=created.get("CreatedDate"),
        codeSha256=created.get("Content", {}).get("CodeSha256"),
        sourceCodeSize=created.get("Content", {}).get("CodeSize"),
    )


def permission(ctx: DeployContext, request: ResourceRequest) -> Created:
    client = ctx.for_request(request, "lambda")
    prefix = request.get("statementIdPrefix")
    statement_id = request.get("statementId") or (
        f"{prefix}0000" if prefix else generated_id(request.name, 100)
    )
    params = drop_none(
        {
            "FunctionName": request.require("function"),
            "StatementId": statement_id,
            "Action": request.get("action"),
            "Principal": request.get("principal"),
            "SourceArn": request.get("sourceArn"),
            "SourceAccount": request.get("sourceAccount"),
            "EventSourceToken": request.get("eventSourceToken"),
            "Qualifier": request.get("qualifier"),
            "PrincipalOrgID": request.get("principalOrgId"),
            "FunctionUrlAuthType": request.get("functionUrlAuthType"),
        }
    )
    client.add_permission(**params)
    return statement_id, outputs(request, statementId=statement_id)


def function_event_invoke_config(ctx: DeployContext, request: ResourceRequest) -> Created:
    client = ctx.for_request(request, "lambda")
    function_name = request.require("functionName")
    qualifier = request.get("qualifier")
    params = drop_none(
        {
            "FunctionName": function_name,
            "Qualifier": qualifier,
            "MaximumRetryAttempts": request.get("maximumRetryAttempts"),
            "MaximumEventAgeInSeconds": request.get("maximumEventAgeInSeconds"),
            "DestinationConfig": api_shape(request.get("destinationConfig")),
        }
    )
    client.put_function_event_invoke_config(**params)
    resource_id = f"{function_name}:{qualifier}" if qualifier else function_name
    return resource_id, outputs(request)


_RECURSIVE_LOOPS = ("Allow", "Terminate")


def function_recursion_config(ctx: DeployContext, request: ResourceRequest) -> Created:
    """Checked as PutFunctionRecursionConfig (parameters, the function exists), not sent:
    moto has no recursion config, and the sandbox does not stop recursive loops."""
    client = ctx.for_request(request, "lambda")
    function_name = request.require("functionName")
    params = {"FunctionName": function_name, "RecursiveLoop": request.require("recursiveLoop")}
    check_params(client, "PutFunctionRecursionConfig", params)
    if params["RecursiveLoop"] not in _RECURSIVE_LOOPS:  # an enum botocore does not check
        raise DeployError(
            f"{request.typ} {request.name!r}: recursiveLoop {params['RecursiveLoop']!r} is not "
            f"one of {', '.join(_RECURSIVE_LOOPS)}; Lambda refuses it"
        )
    client.get_function(FunctionName=function_name)
    return function_name, outputs(request)


# ------------------------------------------------------------ event source mappings

_ESM_TOP_LEVEL = (
    "eventSourceArn",
    "functionName",
    "enabled",
    "batchSize",
    "filterCriteria",
    "maximumBatchingWindowInSeconds",
    "parallelizationFactor",
    "startingPosition",
    "startingPositionTimestamp",
    "destinationConfig",
    "maximumRecordAgeInSeconds",
    "bisectBatchOnFunctionError",
    "maximumRetryAttempts",
    "tumblingWindowInSeconds",
    "functionResponseTypes",
    "scalingConfig",
    "kmsKeyArn",
    "metricsConfig",
    "provisionedPollerConfig",
    "queues",
    "topics",
    "documentDbEventSourceConfig",
    "amazonManagedKafkaEventSourceConfig",
    "selfManagedKafkaEventSourceConfig",
)
_UNSUPPORTED_ESM = ("selfManagedEventSource", "sourceAccessConfigurations")

# What Lambda checks the function's role may do when a mapping is created (its
# errors name these actions), by the service of the event source ARN.
_SOURCE_ACTIONS: dict[str, tuple[str, ...]] = {
    "sqs": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "dynamodb": (
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ),
    "kinesis": (
        "kinesis:DescribeStream",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    ),
}
_STREAM_SOURCES = ("dynamodb", "kinesis")


def create_event_source_mapping_params(request: ResourceRequest) -> dict[str, Any]:
    for key in _UNSUPPORTED_ESM:
        if request.get(key):
            raise DeployError(
                f"{request.typ} {request.name!r}: {key} is not supported by the sandbox"
            )
    shaped = api_shape(
        {k: request.inputs.get(k) for k in _ESM_TOP_LEVEL},
        renames=_RENAMES,
    )
    assert isinstance(shaped, dict)
    shaped.setdefault("Enabled", True)
    return shaped


def _role_policies(ctx: DeployContext, role_name: str) -> list[str]:
    iam = ctx.client("iam")
    documents = []
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        documents.append(doc if isinstance(doc, str) else json.dumps(doc))
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        meta = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=meta["DefaultVersionId"]
        )["PolicyVersion"]["Document"]
        documents.append(version if isinstance(version, str) else json.dumps(version))
    return documents


def _check_source_exists(ctx: DeployContext, service: str, arn: str) -> None:
    region = arn.split(":")[3] or None
    if service == "sqs":
        *_, account, queue_name = arn.split(":")
        ctx.client("sqs", region).get_queue_url(
            QueueName=queue_name, QueueOwnerAWSAccountId=account
        )
    elif service == "dynamodb":
        ctx.client("dynamodbstreams", region).describe_stream(StreamArn=arn)
    elif service == "kinesis":
        ctx.client("kinesis", region).describe_stream_summary(StreamARN=arn)


def event_source_mapping(ctx: DeployContext, request: ResourceRequest) -> Created:
    """Validated and recorded like CreateEventSourceMapping, but not created in moto.

    moto's own mappings invoke synchronously one record at a time and ignore batching,
    filters and partial failures, so the sandbox's pollers deliver from the record.
    Checked as Lambda checks at creation: parameters (botocore), that the function and
    the source exist, a starting position for streams, and that the function's role
    may read the source and send to the on-failure destination.
    """
    client = ctx.for_request(request, "lambda")
    params = create_event_source_mapping_params(request)
    check_params(client, "CreateEventSourceMapping", params)
    configuration = client.get_function(FunctionName=params["FunctionName"])["Configuration"]
    function_arn = configuration["FunctionArn"]
    role_name = configuration["Role"].rsplit("/", 1)[-1]
    documents = _role_policies(ctx, role_name)

    source_arn = params.get("EventSourceArn")
    if isinstance(source_arn, str):
        service = source_arn.split(":")[2]
        _check_source_exists(ctx, service, source_arn)
        if service in _STREAM_SOURCES and "StartingPosition" not in params:
            raise DeployError(
                f"{request.typ} {request.name!r}: a {service} stream source needs "
                "startingPosition (TRIM_HORIZON or LATEST); Lambda refuses the mapping"
            )
        missing = missing_actions(documents, _SOURCE_ACTIONS.get(service, ()), source_arn)
        if missing:
            raise DeployError(
                f"{request.typ} {request.name!r}: the execution role {role_name!r} of "
                f"{function_arn} may not {', '.join(missing)} on {source_arn}; Lambda "
                "refuses to create the mapping"
            )
    destination = params.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    sqs_destination = isinstance(destination, str) and destination.split(":")[2] == "sqs"
    if sqs_destination and missing_actions(documents, ("sqs:SendMessage",), destination):
        raise DeployError(
            f"{request.typ} {request.name!r}: the execution role {role_name!r} may not "
            f"sqs:SendMessage to the on-failure destination {destination}"
        )

    mapping_uuid = str(uuid.uuid4())
    region = ctx.region_of(request)
    arn = f"arn:aws:lambda:{region}:{ctx.account}:event-source-mapping:{mapping_uuid}"
    enabled = bool(params.get("Enabled", True))
    ctx.records.event_source_mappings.append(
        EventSourceMappingRecord(
            name=request.name,
            uuid=mapping_uuid,
            arn=arn,
            function_arn=function_arn,
            event_source_arn=source_arn if isinstance(source_arn, str) else None,
            enabled=enabled,
            request={**params, "FunctionName": function_arn},
        )
    )
    return mapping_uuid, outputs(
        request,
        uuid=mapping_uuid,
        arn=arn,
        functionArn=function_arn,
        state="Enabled" if enabled else "Disabled",
        stateTransitionReason="USER_INITIATED",
        lastProcessingResult="No records processed",
    )


DEPLOYERS: dict[str, Deployer] = {
    "aws:lambda/function:Function": function,
    "aws:lambda/layerVersion:LayerVersion": layer_version,
    "aws:lambda/permission:Permission": permission,
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": (
        function_event_invoke_config
    ),
    "aws:lambda/eventSourceMapping:EventSourceMapping": event_source_mapping,
    "aws:lambda/functionRecursionConfig:FunctionRecursionConfig": function_recursion_config,
}
