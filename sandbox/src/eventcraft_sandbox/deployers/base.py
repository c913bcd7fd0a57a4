"""What every deployer shares: the request it gets, the context it calls moto through,
the records of what the sandbox delivers itself, and input -> API translation helpers.

A deployer creates one resource the way the AWS provider would: it translates the
Pulumi inputs (camelCase, as the engine serialises them) into the API's parameters
and makes the real calls, so boto3's parameter validation and moto's own checks see
exactly what AWS would. It does not pre-sanitise: a value AWS rejects fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.validate import validate_parameters

# botocore >= 1.44 sends some calls (e.g. dynamodbstreams DescribeStream) to
# account-based endpoints that moto does not route (see shared notes/moto.md).
BOTO_CONFIG = Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 1})


class DeployError(RuntimeError):
    """A resource could not be created in the sandbox (the message names it)."""


@dataclass(frozen=True)
class ResourceRequest:
    """One custom resource to create: its type token, logical name and inputs.

    `inputs` are camelCase like the engine sends them, with whole-number floats turned
    back into ints (the engine carries every number as a float; boto3 refuses 3.0 for
    an integer parameter).
    """

    typ: str
    name: str
    inputs: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.inputs.get(key)
        return default if value is None else value

    def require(self, key: str) -> Any:
        value = self.inputs.get(key)
        if value is None:
            raise DeployError(f"{self.typ} {self.name!r}: the required input {key!r} is missing")
        return value


# ------------------------------------------------------------------------ records


@dataclass(frozen=True)
class EventSourceMappingRecord:
    """An event source mapping the sandbox's own pollers deliver (never created in moto).

    `request` holds the CreateEventSourceMapping parameters as the API takes them
    (validated by botocore), with `FunctionName` resolved to the function's ARN.
    """

    name: str
    uuid: str
    arn: str
    function_arn: str
    event_source_arn: str | None
    enabled: bool
    request: dict[str, Any]


@dataclass(frozen=True)
class PipeRecord:
    """A pipe created in moto (CRUD only there); the sandbox delivers it itself."""

    name: str
    pipe_name: str
    arn: str
    source: str
    target: str
    role_arn: str
    desired_state: str
    request: dict[str, Any]


@dataclass(frozen=True)
class SchemaRegistryRecord:
    """A schema registry (moto has no schemas service: recorded only)."""

    name: str
    registry_name: str
    arn: str
    description: str | None


@dataclass(frozen=True)
class SchemaRecord:
    """A schema whose content was checked to be a valid JSON schema / OpenAPI 3 document."""

    name: str
    schema_name: str
    registry_name: str
    arn: str
    type: str
    content: dict[str, Any]
    version: str


@dataclass
class Records:
    """What the deployers recorded for the parts of the sandbox that deliver events."""

    event_source_mappings: list[EventSourceMappingRecord] = field(default_factory=list)
    pipes: list[PipeRecord] = field(default_factory=list)
    schema_registries: dict[str, SchemaRegistryRecord] = field(default_factory=dict)
    schemas: list[SchemaRecord] = field(default_factory=list)


# ------------------------------------------------------------------------ context


class DeployContext:
    """The account, region, boto3 clients (with the deployer's credentials) and records."""

    def __init__(
        self,
        session: boto3.session.Session,
        *,
        account: str,
        region: str,
        records: Records | None = None,
    ) -> None:
        self.session = session
        self.account = account
        self.region = region
        self.records = records or Records()
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client for `service` in `region` (default: the deployment's), cached."""
        key = (service, region or self.region)
        if key not in self._clients:
            # boto3-stubs types `client` per service literal; the name is dynamic here.
            make_client: Any = self.session.client
            self._clients[key] = make_client(service, region_name=key[1], config=BOTO_CONFIG)
        return self._clients[key]

    def for_request(self, request: ResourceRequest, service: str) -> Any:
        """The client for `service` in the resource's own `region` input, if it has one."""
        return self.client(service, request.get("region"))

    def region_of(self, request: ResourceRequest) -> str:
        region = request.get("region")
        return region if isinstance(region, str) else self.region


Created = tuple[str, dict[str, Any]]
Deployer = Callable[[DeployContext, ResourceRequest], Created]


# ------------------------------------------------------------- translation helpers


def whole_numbers(value: Any) -> Any:
    """`value` with every whole-number float turned into an int, recursively."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def pascal(key: str) -> str:
    return key[:1].upper() + key[1:]


def api_shape(
    value: Any,
    renames: Mapping[str, str] | None = None,
    verbatim: Iterable[str] = (),
) -> Any:
    """A Pulumi input structure in the API's shape: camelCase keys -> PascalCase.

    `renames` maps camelCase keys whose API names are not plain PascalCase
    (`kmsMasterKeyId` -> `KMSMasterKeyID`); the values of `verbatim` keys are user maps
    (tags, environment variables, input paths) copied as they are. None values are
    dropped: the provider does not send unset arguments.
    """
    renames = renames or {}
    keep = set(verbatim)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            api_key = renames.get(key, pascal(key))
            out[api_key] = item if key in keep else api_shape(item, renames, keep)
        return out
    if isinstance(value, list):
        return [api_shape(item, renames, keep) for item in value]
    return value


def drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def tag_list(
    tags: Mapping[str, str] | None, key: str = "Key", value: str = "Value"
) -> list[dict[str, str]] | None:
    if not tags:
        return None
    return [{key: k, value: v} for k, v in tags.items()]


def physical_name(request: ResourceRequest, key: str = "name", suffix: str = "") -> str:
    """The resource's name: the given one, else `namePrefix` + a fixed id, else auto-named.

    Pulumi auto-names with a random suffix; the logical name (as the recording mocks
    use) keeps sandbox names deterministic and equal to what the mocked runs show.
    """
    given = request.inputs.get(key)
    if isinstance(given, str) and given:
        return given
    prefix = request.inputs.get("namePrefix")
    if isinstance(prefix, str):
        return f"{prefix}0000{suffix}"
    return f"{request.name}{suffix}"


def generated_id(name: str, max_length: int = 64) -> str:
    """An identifier the provider would generate (target ids, statement ids), from `name`."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", name)
    return cleaned[:max_length] or "sandbox"


def check_params(client: Any, operation: str, params: Mapping[str, Any]) -> None:
    """boto3's parameter validation, for calls the sandbox records instead of sending."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    validate_parameters(dict(params), shape)


def outputs(request: ResourceRequest, **computed: Any) -> dict[str, Any]:
    """The provider's state: the inputs plus the computed attributes (None ones dropped)."""
    return {**request.inputs, **{k: v for k, v in computed.items() if v is not None}}


def shaped(value: Any, shape: Any, path: str) -> Any:
    """A Pulumi input structure in the shape botocore describes for the API.

    Keys are matched to the shape's members ignoring case (`dynamodbStreamParameters`
    -> `DynamoDBStreamParameters`), then without a plural `s` (Pulumi pluralises some
    names: `includeExecutionDatas`); map keys are the user's and kept. A key the API
    has no member for is an error, never silently dropped.
    """
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = {m.lower(): m for m in shape.members}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            member = members.get(key.lower()) or members.get(key.lower().removesuffix("s"))
            if member is None:
                raise DeployError(f"{path}.{key}: the API has no such parameter")
            out[member] = shaped(item, shape.members[member], f"{path}.{key}")
        return out
    if kind == "list" and isinstance(value, list):
        return [shaped(v, shape.member, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        return {k: shaped(v, shape.value, f"{path}.{k}") for k, v in value.items()}
    return value


def operation_params(
    client: Any, operation: str, inputs: Mapping[str, Any], path: str
) -> dict[str, Any]:
    """`inputs` (camelCase) as the parameters of `operation`, keyed as its input shape."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    result = shaped(dict(inputs), shape, path)
    assert isinstance(result, dict)
    return result
