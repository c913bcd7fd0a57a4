"""EventBridge schema registry: Registry, Schema.

moto has no schemas service, so both are recorded only, after the checks AWS makes:
the parameters (botocore), a registry that exists and is not a duplicate, a schema
whose content is a valid JSON Schema draft 4 document (or an OpenAPI 3 document whose
component schemas are).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from eventcraft_sandbox.deployers.base import (
    Created,
    DeployContext,
    Deployer,
    DeployError,
    ResourceRequest,
    SchemaRecord,
    SchemaRegistryRecord,
    check_params,
    drop_none,
    outputs,
    physical_name,
)

SCHEMA_TYPES = ("OpenApi3", "JSONSchemaDraft4")


def registry(ctx: DeployContext, request: ResourceRequest) -> Created:
    name = physical_name(request)
    params = drop_none(
        {
            "RegistryName": name,
            "Description": request.get("description"),
            "Tags": request.get("tags"),
        }
    )
    check_params(ctx.for_request(request, "schemas"), "CreateRegistry", params)
    if name in ctx.records.schema_registries:
        raise DeployError(f"{request.typ} {request.name!r}: registry {name!r} already exists")
    arn = f"arn:aws:schemas:{ctx.region_of(request)}:{ctx.account}:registry/{name}"
    ctx.records.schema_registries[name] = SchemaRegistryRecord(
        name=request.name, registry_name=name, arn=arn, description=request.get("description")
    )
    return name, outputs(request, name=name, arn=arn, tagsAll=request.get("tags", {}))


def _check_content(request: ResourceRequest, schema_type: str, content: str) -> dict[str, Any]:
    where = f"{request.typ} {request.name!r}"
    try:
        document = json.loads(content)
    except json.JSONDecodeError as exc:
        raise DeployError(f"{where}: content is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise DeployError(f"{where}: content must be a JSON object")
    try:
        if schema_type == "JSONSchemaDraft4":
            jsonschema.Draft4Validator.check_schema(document)
        else:
            version = str(document.get("openapi", ""))
            if not version.startswith("3."):
                raise DeployError(f'{where}: an OpenApi3 schema needs "openapi": "3.x"')
            components = (document.get("components") or {}).get("schemas") or {}
            if not components:
                raise DeployError(f"{where}: an OpenApi3 schema needs components.schemas")
            for component in components.values():
                jsonschema.Draft4Validator.check_schema(component)
    except jsonschema.SchemaError as exc:
        raise DeployError(f"{where}: content is not a valid JSON schema: {exc.message}") from exc
    return document


def schema(ctx: DeployContext, request: ResourceRequest) -> Created:
    name = physical_name(request)
    registry_name = request.require("registryName")
    schema_type = request.require("type")
    content = request.require("content")
    params = drop_none(
        {
            "RegistryName": registry_name,
            "SchemaName": name,
            "Type": schema_type,
            "Content": content,
            "Description": request.get("description"),
            "Tags": request.get("tags"),
        }
    )
    check_params(ctx.for_request(request, "schemas"), "CreateSchema", params)
    where = f"{request.typ} {request.name!r}"
    if schema_type not in SCHEMA_TYPES:
        raise DeployError(f"{where}: type {schema_type!r} is not one of {', '.join(SCHEMA_TYPES)}")
    if registry_name not in ctx.records.schema_registries:
        raise DeployError(f"{where}: registry {registry_name!r} does not exist")
    if any(s.registry_name == registry_name and s.schema_name == name for s in ctx.records.schemas):
        raise DeployError(f"{where}: schema {name!r} already exists in {registry_name!r}")
    document = _check_content(request, schema_type, content)
    region = ctx.region_of(request)
    arn = f"arn:aws:schemas:{region}:{ctx.account}:schema/{registry_name}/{name}"
    now = datetime.now(UTC).isoformat()
    ctx.records.schemas.append(
        SchemaRecord(
            name=request.name,
            schema_name=name,
            registry_name=registry_name,
            arn=arn,
            type=schema_type,
            content=document,
            version="1",
        )
    )
    return f"{name}/{registry_name}", outputs(
        request,
        name=name,
        arn=arn,
        version="1",
        versionCreatedDate=now,
        lastModified=now,
        tagsAll=request.get("tags", {}),
    )


DEPLOYERS: dict[str, Deployer] = {
    "aws:schemas/registry:Registry": registry,
    "aws:schemas/schema:Schema": schema,
}
