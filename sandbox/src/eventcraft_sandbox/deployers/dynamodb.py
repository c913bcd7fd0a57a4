"""DynamoDB: Table (CreateTable, then UpdateTimeToLive and UpdateContinuousBackups)."""

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


def _key_schema(hash_key: str | None, range_key: str | None) -> list[dict[str, str]]:
    schema = []
    if hash_key:
        schema.append({"AttributeName": hash_key, "KeyType": "HASH"})
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _projection(index: dict[str, Any]) -> dict[str, Any]:
    return drop_none(
        {
            "ProjectionType": index.get("projectionType"),
            "NonKeyAttributes": index.get("nonKeyAttributes") or None,
        }
    )


def _throughput(read: Any, write: Any) -> dict[str, Any]:
    return {"ReadCapacityUnits": read or 0, "WriteCapacityUnits": write or 0}


def _global_index(index: dict[str, Any], provisioned: bool) -> dict[str, Any]:
    key_schemas = index.get("keySchemas")
    if key_schemas:
        schema = [
            {"AttributeName": k.get("attributeName"), "KeyType": k.get("keyType")}
            for k in key_schemas
        ]
    else:
        schema = _key_schema(index.get("hashKey"), index.get("rangeKey"))
    out: dict[str, Any] = {
        "IndexName": index.get("name"),
        "KeySchema": schema,
        "Projection": _projection(index),
    }
    if provisioned:
        out["ProvisionedThroughput"] = _throughput(
            index.get("readCapacity"), index.get("writeCapacity")
        )
    on_demand = index.get("onDemandThroughput")
    if on_demand:
        out["OnDemandThroughput"] = drop_none(
            {
                "MaxReadRequestUnits": on_demand.get("maxReadRequestUnits"),
                "MaxWriteRequestUnits": on_demand.get("maxWriteRequestUnits"),
            }
        )
    return out


def create_table_params(request: ResourceRequest, name: str) -> dict[str, Any]:
    """CreateTable's parameters, as the provider builds them."""
    inputs = request.inputs
    # The provider's default billing mode is PROVISIONED.
    billing = request.get("billingMode", "PROVISIONED")
    provisioned = billing == "PROVISIONED"
    params: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": a.get("name"), "AttributeType": a.get("type")}
            for a in inputs.get("attributes") or []
        ],
        "KeySchema": _key_schema(inputs.get("hashKey"), inputs.get("rangeKey")),
        "BillingMode": billing,
    }
    if provisioned:
        params["ProvisionedThroughput"] = _throughput(
            inputs.get("readCapacity"), inputs.get("writeCapacity")
        )
    if inputs.get("streamEnabled"):
        params["StreamSpecification"] = drop_none(
            {"StreamEnabled": True, "StreamViewType": inputs.get("streamViewType")}
        )
    sse = inputs.get("serverSideEncryption") or {}
    if sse.get("enabled"):
        params["SSESpecification"] = drop_none(
            {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": sse.get("kmsKeyArn")}
        )
    gsis = inputs.get("globalSecondaryIndexes") or []
    if gsis:
        params["GlobalSecondaryIndexes"] = [_global_index(g, provisioned) for g in gsis]
    lsis = inputs.get("localSecondaryIndexes") or []
    if lsis:
        params["LocalSecondaryIndexes"] = [
            {
                "IndexName": index.get("name"),
                "KeySchema": _key_schema(inputs.get("hashKey"), index.get("rangeKey")),
                "Projection": _projection(index),
            }
            for index in lsis
        ]
    if inputs.get("deletionProtectionEnabled") is not None:
        params["DeletionProtectionEnabled"] = inputs["deletionProtectionEnabled"]
    if inputs.get("tableClass"):
        params["TableClass"] = inputs["tableClass"]
    tags = tag_list(inputs.get("tags"))
    if tags:
        params["Tags"] = tags
    return params


def table(ctx: DeployContext, request: ResourceRequest) -> Created:
    ddb = ctx.for_request(request, "dynamodb")
    name = physical_name(request)
    description = ddb.create_table(**create_table_params(request, name))["TableDescription"]

    ttl = request.get("ttl") or {}
    if ttl.get("enabled"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl.get("attributeName")},
        )
    pitr = request.get("pointInTimeRecovery") or {}
    if pitr.get("enabled"):
        spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": True}
        if pitr.get("recoveryPeriodInDays") is not None:
            spec["RecoveryPeriodInDays"] = pitr["recoveryPeriodInDays"]
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=spec)

    return name, outputs(
        request,
        name=name,
        arn=description["TableArn"],
        streamArn=description.get("LatestStreamArn"),
        streamLabel=description.get("LatestStreamLabel"),
        billingMode=description.get("BillingModeSummary", {}).get(
            "BillingMode", request.get("billingMode", "PROVISIONED")
        ),
        tagsAll=request.get("tags", {}),
    )


DEPLOYERS: dict[str, Deployer] = {"aws:dynamodb/table:Table": table}
