"""Run a Pulumi program under mocks that record every resource it registers.

The recorder returns the outputs a provider would compute (`arn`, `id`, `name`,
`url`, ...) in camelCase so that outputs chain as in a real deployment, and it
refuses to finish when any recorded input is still unknown: an `apply` that never
ran is a failure, never a silently passing test.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.sync_await import _sync_await

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
_UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class UnknownOutputError(AssertionError):
    """A recorded input or exported output never became known."""


@dataclass(frozen=True)
class Resource:
    """One registered resource as the engine saw it."""

    typ: str
    name: str
    urn: str
    parent: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    custom: bool
    # The resource's own aliases as URNs (`pulumi.Alias` specs resolved against the
    # resource); the engine also derives aliases from the parents' aliases.
    aliases: tuple[str, ...] = ()

    @property
    def arn(self) -> str | None:
        value = self.outputs.get("arn")
        return value if isinstance(value, str) else None


def _physical_name(typ: str, name: str, inputs: Mapping[str, Any]) -> str:
    for key in ("name", "functionName", "roleName", "bucket", "topicName"):
        value = inputs.get(key)
        if isinstance(value, str) and value:
            return value
    prefix = inputs.get("namePrefix")
    if isinstance(prefix, str):
        return prefix + "0000"
    # Pulumi auto-names with a random suffix; a fixed one keeps tests deterministic.
    suffix = ".fifo" if inputs.get("fifoQueue") and typ == "aws:sqs/queue:Queue" else ""
    return f"{name}{suffix}"


def _arn(typ: str, physical: str, inputs: Mapping[str, Any], account: str, region: str) -> str:
    """The ARN AWS would give a resource of this type, for the types that have one."""
    svc = typ.split(":")[1].split("/", maxsplit=1)[0]
    kind = typ.rsplit(":", maxsplit=1)[-1]
    p = f"arn:aws:{{}}:{region}:{account}:"
    table: dict[str, str] = {
        "aws:sqs/queue:Queue": p.format("sqs") + physical,
        "aws:sns/topic:Topic": p.format("sns") + physical,
        "aws:cloudwatch/eventBus:EventBus": p.format("events") + f"event-bus/{physical}",
        "aws:cloudwatch/eventArchive:EventArchive": p.format("events") + f"archive/{physical}",
        "aws:cloudwatch/eventRule:EventRule": p.format("events")
        + (
            f"rule/{inputs['eventBusName']}/{physical}"
            if inputs.get("eventBusName") not in (None, "default")
            else f"rule/{physical}"
        ),
        "aws:cloudwatch/metricAlarm:MetricAlarm": p.format("cloudwatch") + f"alarm:{physical}",
        "aws:cloudwatch/logGroup:LogGroup": p.format("logs") + f"log-group:{physical}",
        "aws:lambda/function:Function": p.format("lambda") + f"function:{physical}",
        "aws:lambda/layerVersion:LayerVersion": p.format("lambda")
        + f"layer:{inputs.get('layerName', physical)}:1",
        "aws:iam/role:Role": f"arn:aws:iam::{account}:role/{physical}",
        "aws:iam/policy:Policy": f"arn:aws:iam::{account}:policy/{physical}",
        "aws:dynamodb/table:Table": p.format("dynamodb") + f"table/{physical}",
        "aws:kinesis/stream:Stream": p.format("kinesis") + f"stream/{physical}",
        "aws:sfn/stateMachine:StateMachine": p.format("states") + f"stateMachine:{physical}",
        "aws:s3/bucketV2:BucketV2": f"arn:aws:s3:::{physical}",
        "aws:s3/bucket:Bucket": f"arn:aws:s3:::{physical}",
        "aws:kms/key:Key": p.format("kms") + f"key/{physical}",
        "aws:schemas/registry:Registry": p.format("schemas") + f"registry/{physical}",
        "aws:schemas/schema:Schema": p.format("schemas")
        + f"schema/{inputs.get('registryName', '')}/{physical}",
        "aws:pipes/pipe:Pipe": p.format("pipes") + f"pipe/{physical}",
    }
    return table.get(typ, p.format(svc) + f"{kind[0].lower() + kind[1:]}/{physical}")


def computed_outputs(
    typ: str, name: str, inputs: Mapping[str, Any], account: str, region: str
) -> tuple[str, dict[str, Any]]:
    """The (id, outputs) a provider would return for a newly created resource."""
    physical = _physical_name(typ, name, inputs)
    arn = _arn(typ, physical, inputs, account, region)
    outputs: dict[str, Any] = {**inputs, "name": physical, "arn": arn}
    resource_id = physical
    if typ == "aws:sqs/queue:Queue":
        resource_id = f"https://sqs.{region}.amazonaws.com/{account}/{physical}"
        outputs["url"] = resource_id
    elif typ == "aws:dynamodb/table:Table":
        if inputs.get("streamEnabled"):
            outputs["streamArn"] = f"{arn}/stream/2026-01-01T00:00:00.000"
            outputs["streamLabel"] = "2026-01-01T00:00:00.000"
    elif typ == "aws:lambda/function:Function":
        outputs["invokeArn"] = (
            f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        )
        outputs["qualifiedArn"] = f"{arn}:$LATEST"
        outputs["version"] = "$LATEST"
    elif typ == "aws:kms/key:Key":
        outputs["keyId"] = physical
    elif typ == "aws:iam/role:Role":
        outputs["uniqueId"] = f"AROA{abs(hash(physical)) % 10**12:012d}"
    elif typ in ("aws:s3/bucketV2:BucketV2", "aws:s3/bucket:Bucket"):
        outputs["bucket"] = physical
    elif typ == "aws:lambda/layerVersion:LayerVersion":
        outputs["layerArn"] = arn.rsplit(":", 1)[0]
    return resource_id, outputs


def _policy_document(args: Mapping[str, Any]) -> dict[str, Any]:
    """What aws.iam.get_policy_document renders, for the argument shapes we use."""
    statements = []
    for st in args.get("statements") or []:
        out: dict[str, Any] = {"Effect": st.get("effect", "Allow")}
        if st.get("sid"):
            out["Sid"] = st["sid"]
        for key, aws_key in (("actions", "Action"), ("resources", "Resource")):
            if st.get(key):
                out[aws_key] = st[key]
        for pr in st.get("principals") or []:
            out.setdefault("Principal", {})[pr["type"]] = pr["identifiers"]
        for cond in st.get("conditions") or []:
            out.setdefault("Condition", {}).setdefault(cond["test"], {})[cond["variable"]] = cond[
                "values"
            ]
        statements.append(out)
    return {"Version": "2012-10-17", "Statement": statements}


class RecordingMocks(pulumi.runtime.Mocks):
    """Pulumi mocks that record each registration and compute provider outputs."""

    def __init__(self, account: str = ACCOUNT_ID, region: str = REGION) -> None:
        self.account = account
        self.region = region
        self.registrations: list[Resource] = []
        # The monitor tells new_resource which URN and parent it is registering.
        self.current = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        resource_id: str | None = None
        outputs: dict[str, Any] = {}
        if args.custom:  # ComponentResources have no provider outputs
            resource_id, outputs = self.create(args)
        self.registrations.append(
            Resource(
                typ=args.typ,
                name=args.name,
                urn=getattr(self.current, "urn", ""),
                parent=getattr(self.current, "parent", None),
                inputs=dict(args.inputs),
                outputs=outputs,
                custom=bool(args.custom),
                aliases=getattr(self.current, "aliases", ()),
            )
        )
        return resource_id, outputs

    def create(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Create one custom resource; the sandbox overrides this to create it in moto."""
        return computed_outputs(args.typ, args.name, args.inputs, self.account, self.region)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": self.account,
                "arn": f"arn:aws:iam::{self.account}:user/deployer",
                "userId": "AIDADEPLOYER",
                "id": self.account,
            }
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"json": json.dumps(_policy_document(args.args)), "id": "policy"}
        raise NotImplementedError(f"the mocks do not implement the invoke {token!r}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Passes each registration's URN and parent URN on to the recorder."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorder = mocks

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine forms it: a child's type is qualified by its parent's whole
        # qualified type (the mocks' own version keeps only the parent's last type);
        # the stack itself qualifies nothing.
        if parent and not parent.split("::")[2].startswith("pulumi:pulumi:Stack"):
            type_ = parent.split("::")[2] + "$" + type_
        return "::".join(["urn:pulumi:" + pulumi.get_stack(), pulumi.get_project(), type_, name])

    def RegisterResource(self, request: Any) -> Any:
        self.recorder.current.urn = self.make_urn(request.parent, request.type, request.name)
        self.recorder.current.parent = request.parent or None
        self.recorder.current.aliases = tuple(_alias_urn(request, a) for a in request.aliases)
        return super().RegisterResource(request)


def _alias_urn(request: Any, alias: Any) -> str:
    """An alias spec as the URN it names, the way the engine resolves a spec."""
    if alias.urn:
        return str(alias.urn)
    spec = alias.spec
    stack, project = spec.stack or pulumi.get_stack(), spec.project or pulumi.get_project()
    parent = "" if spec.noParent else (spec.parentUrn or request.parent)
    qualified = spec.type or request.type
    if parent and not parent.split("::")[2].startswith("pulumi:pulumi:Stack"):
        qualified = parent.split("::")[2] + "$" + qualified
    return "::".join([f"urn:pulumi:{stack}", project, qualified, spec.name or request.name])


@dataclass
class Deployment:
    """The resources a program registered, in registration order, and its stack outputs."""

    resources: list[Resource]
    outputs: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str, typ: str | None = None) -> Resource:
        """The one resource with this logical name (and type); fails loudly otherwise."""
        found = [r for r in self.resources if r.name == name and (typ is None or r.typ == typ)]
        if len(found) != 1:
            known = sorted(f"{r.typ} {r.name}" for r in self.resources)
            raise KeyError(f"{len(found)} resources named {name!r} ({typ}); registered: {known}")
        return found[0]

    def children(self, parent: Resource, typ: str | None = None) -> list[Resource]:
        return [
            r for r in self.resources if r.parent == parent.urn and (typ is None or r.typ == typ)
        ]

    def former_urns(self, resource: Resource) -> frozenset[str]:
        """Every URN the engine would match this resource to in an earlier state: its
        own, its aliases, and each of those under every former URN of its parent.

        A refactoring replaced nothing when each URN of the old state is among the
        former URNs of exactly one resource of the new program.
        """
        by_urn = {r.urn: r for r in self.resources}
        cache: dict[str, frozenset[str]] = {}

        def former(r: Resource) -> frozenset[str]:
            if r.urn not in cache:
                own = {r.urn, *r.aliases}
                parent = by_urn.get(r.parent or "")
                if parent is not None:
                    for urn in list(own):
                        _, project, qualified, name = urn.split("::", 3)
                        typ = qualified.rsplit("$", 1)[-1]
                        for old_parent in former(parent):
                            stack_part, _, parent_qualified, _ = old_parent.split("::", 3)
                            own.add(f"{stack_part}::{project}::{parent_qualified}${typ}::{name}")
                cache[r.urn] = frozenset(own)
            return cache[r.urn]

        return former(resource)

    def descendants(self, parent: Resource) -> list[Resource]:
        out: list[Resource] = []
        for child in self.children(parent):
            out.append(child)
            out.extend(self.descendants(child))
        return out


def _find_unknown(value: Any, path: str) -> str | None:
    if isinstance(value, Unknown) or (isinstance(value, str) and value == _UNKNOWN_SENTINEL):
        return path
    if isinstance(value, dict):
        for k, v in value.items():
            found = _find_unknown(v, f"{path}.{k}")
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_unknown(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _resolve(value: Any, path: str) -> Any:
    """Wait for an exported value; an unknown one is an error, not a pass."""
    output = pulumi.Output.from_input(value)
    result = _sync_await(output.future())
    if not _sync_await(output.is_known()):
        raise UnknownOutputError(f"stack output {path} is unknown: an apply never ran")
    return result


def deploy(
    program: Callable[[], Any],
    *,
    config: Mapping[str, Any] | None = None,
    project: str = "project",
    stack: str = "dev",
    mocks: RecordingMocks | None = None,
    preview: bool = True,
) -> Deployment:
    """Run `program` under recording mocks; `config` keys are full (`ns:key`) or bare.

    Returns every resource with fully known inputs. Raises what the program raises.
    By default it runs as `pulumi preview` does: an output the mocks did not compute
    stays unknown, so an input that depends on it fails the deployment here (under
    `preview=False` a missing output would silently read as None).
    """
    recorder = mocks or RecordingMocks()
    # Each run gets a fresh event loop and fresh runtime settings.
    asyncio.set_event_loop(asyncio.new_event_loop())
    # A fresh root stack, so exports of an earlier run (even a failed one) don't leak in.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        recorder, project=project, stack=stack, preview=preview, monitor=RecordingMonitor(recorder)
    )
    full: dict[str, str] = {}
    for key, value in (config or {}).items():
        full_key = key if ":" in key else f"{project}:{key}"
        full[full_key] = value if isinstance(value, str) else json.dumps(value)
    pulumi.runtime.set_all_config(full)

    exported: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> None:
        program()
        root = pulumi.runtime.get_root_resource()
        stack_outputs = dict(getattr(root, "outputs", {}) or {})
        for key, value in stack_outputs.items():
            exported[key] = _resolve(value, key)

    run()

    for resource in recorder.registrations:
        where = _find_unknown(resource.inputs, f"{resource.typ} {resource.name}")
        if where:
            raise UnknownOutputError(
                f"input {where} is unknown: it depends on an output the mocks never computed"
            )
    return Deployment(resources=list(recorder.registrations), outputs=exported)


def run_program_file(
    path: str | Path, *, stack: str, config: Mapping[str, Any], project: str | None = None
) -> Deployment:
    """Deploy a Pulumi program file (e.g. __main__.py) as the CLI would run it; the
    project is the `name` in the Pulumi.yaml beside it unless given."""
    program_path = Path(path)
    return deploy(
        lambda: runpy.run_path(str(program_path), run_name="__main__"),
        config=config,
        stack=stack,
        project=project or _project_beside(program_path),
    )


def _project_beside(program: Path) -> str:
    from eventcraft_sandbox.stack_files import project_name

    return project_name(program.parent) if (program.parent / "Pulumi.yaml").is_file() else "project"
