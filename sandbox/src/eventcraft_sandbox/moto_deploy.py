"""Deploy the Pulumi program into an in-process moto: the sandbox's `pulumi up`.

The program runs under Pulumi mocks (`MotoMocks`) whose every custom resource is
created in moto with boto3, by the deployer registered for its type
(`eventcraft_sandbox.deployers`), and whose outputs are moto's real ARNs, URLs and names, so
outputs chain as in a real deployment. A type without a deployer fails the deployment
naming the type; component resources are only recorded.

    with Sandbox() as sandbox:              # moto, IAM enforced, an admin identity
        deployment = sandbox.deploy(ROOT / "__main__.py", stack="dev")
        print(deployment.summary())
        sandbox.client("sqs").list_queues()  # read back with the admin's credentials

The `Sandbox` owns the moto context: the later parts of the sandbox (the Lambda
runtime, the pollers that deliver the recorded event source mappings and pipes) run
inside it. Event source mappings are NOT created in moto (its own mappings invoke
synchronously, one record at a time, ignoring batching, filters and partial batch
failures): they are validated like Lambda does and recorded in the `SandboxDeployment`.
"""

from __future__ import annotations

import json
import os
import runpy
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from unittest import mock

import boto3
import pulumi
from moto import mock_aws
from moto.core.authorization import disable_iam_authentication, enable_iam_authentication
from moto.iam.access_control import IAMRequestBase
from moto.sqs.models import Queue as SqsQueue

from eventcraft_sandbox.deployers import DEPLOYERS
from eventcraft_sandbox.deployers.base import (
    BOTO_CONFIG,
    DeployContext,
    Deployer,
    DeployError,
    EventSourceMappingRecord,
    PipeRecord,
    Records,
    ResourceRequest,
    SchemaRecord,
    SchemaRegistryRecord,
    whole_numbers,
)
from eventcraft_sandbox.durable_service import DurableConfigPatch
from eventcraft_sandbox.limits import AwsLimits, AwsLimitsPatch
from eventcraft_sandbox.mock_deploy import REGION, Deployment, RecordingMocks, deploy
from eventcraft_sandbox.quotas import (
    DEFAULT_CONCURRENCY_QUOTA,
    ConcurrencyQuota,
    check_concurrency_quota,
)
from eventcraft_sandbox.service_roles import ServiceRoleChecks
from eventcraft_sandbox.stack_files import project_name, stack_config
from eventcraft_sandbox.summary import render

__all__ = [
    "DeployError",
    "EventSourceMappingRecord",
    "MotoMocks",
    "PipeRecord",
    "Sandbox",
    "SandboxDeployment",
    "SchemaRecord",
    "SchemaRegistryRecord",
    "UnknownResourceTypeError",
    "deploy_into_moto",
]

ADMIN_USER = "sandbox-admin"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Administrator", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}
DEFAULT_MOTO_CONFIG: dict[str, Any] = {
    # Step Functions executions really run (moto's vendored ASL interpreter).
    "stepfunctions": {"execute_state_machine": True},
}
_ENDPOINT_MODE = "AWS_ACCOUNT_ID_ENDPOINT_MODE"

Program = Callable[[], Any]


class UnknownResourceTypeError(DeployError):
    """The program declares a resource type the sandbox has no deployer for."""


@dataclass(frozen=True)
class AdminCredentials:
    """The administrator identity the deployment runs as (an IAM user in moto)."""

    user_name: str
    arn: str
    user_id: str
    access_key_id: str
    secret_access_key: str


class Sandbox:
    """The in-process AWS: a moto context with IAM enforced and an administrator.

    `start()` (or `with Sandbox() as sandbox:`) starts moto with `moto_config` merged
    over `DEFAULT_MOTO_CONFIG`, creates the IAM user `sandbox-admin` with an
    allow-everything policy and an access key, then turns IAM enforcement on: from
    then on every request is checked against the caller's policies, so the handlers
    (run with their functions' roles) get exactly the rights their roles grant.
    `enforce_iam=False` leaves moto's default (no checks). `stop()` ends the moto
    context and all state in it. Only one sandbox can run at a time (moto's state is
    process-wide).

    While it runs: AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled (moto does not route
    account-based endpoints), the moto bugs in `_moto_fixes` are patched, and AWS's
    payload and item limits are enforced on every request, whoever makes it
    (`limits`, default `AwsLimits()`: AWS's own; see `eventcraft_sandbox.limits`), and
    so is the account's Lambda concurrency quota (`concurrency_quota`, a whole number
    >= 1, default 1000, AWS's usual one): a function's reserved concurrency that would
    leave fewer than 100 unreserved executions is refused as Lambda refuses it
    (`eventcraft_sandbox.quotas`). And
    the roles services are given are checked when AWS checks them: a state machine or
    function whose role the service cannot assume for it, or whose role lacks what its
    logging or tracing needs, is refused with AWS's error
    (`eventcraft_sandbox.service_roles`).
    """

    _running: Sandbox | None = None
    _running_lock = threading.Lock()

    def __init__(
        self,
        *,
        region: str = REGION,
        moto_config: Mapping[str, Any] | None = None,
        enforce_iam: bool = True,
        limits: AwsLimits | None = None,
        concurrency_quota: int = DEFAULT_CONCURRENCY_QUOTA,
    ) -> None:
        self.region = region
        self.limits = limits or AwsLimits()
        self.concurrency_quota = check_concurrency_quota(concurrency_quota)
        # Merged per section: {"lambda": {...}} keeps the stepfunctions default.
        self.moto_config: dict[str, Any] = {k: dict(v) for k, v in DEFAULT_MOTO_CONFIG.items()}
        for section, settings in (moto_config or {}).items():
            self.moto_config.setdefault(section, {}).update(settings)
        self.enforce_iam = enforce_iam
        self.deployments: list[SandboxDeployment] = []
        self._stack: ExitStack | None = None
        self._admin: AdminCredentials | None = None
        self._session: boto3.session.Session | None = None
        # boto3 sessions are not thread-safe; the sandbox's pollers create clients too.
        self._client_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        with Sandbox._running_lock:
            if Sandbox._running is not None:
                raise RuntimeError(
                    "a sandbox is already running in this process (moto's state is "
                    "process-wide): stop it first"
                )
            Sandbox._running = self
        stack = ExitStack()
        try:
            previous = os.environ.get(_ENDPOINT_MODE)
            # moto does not route account-based endpoints (dynamodbstreams, see
            # shared notes/moto.md): every client created inside the sandbox needs this.
            os.environ[_ENDPOINT_MODE] = "disabled"
            stack.callback(_restore_env, _ENDPOINT_MODE, previous)
            # moto types its config as a TypedDict; ours is a plain merged dict.
            moto_config: Any = self.moto_config
            moto_mock = mock_aws(config=moto_config)
            moto_mock.start()
            stack.callback(moto_mock.stop)
            stack.enter_context(AwsLimitsPatch(self.limits))
            stack.enter_context(ConcurrencyQuota(self.concurrency_quota))
            stack.enter_context(ServiceRoleChecks())
            with disable_iam_authentication():
                self._admin = self._create_admin()
            for fix in _moto_fixes():
                stack.enter_context(fix)
            if self.enforce_iam:
                stack.enter_context(enable_iam_authentication())
        except BaseException:
            stack.close()
            Sandbox._running = None
            raise
        self._stack = stack
        self._session = self.new_session()
        return self

    def stop(self) -> None:
        if self._stack is None:
            return
        try:
            self._stack.close()
        finally:
            self._stack = None
            self._session = None
            with Sandbox._running_lock:
                Sandbox._running = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._stack is not None

    def _create_admin(self) -> AdminCredentials:
        # Runs with IAM checks off: nobody exists yet who could be allowed to do it.
        iam = boto3.client("iam", region_name=self.region, config=BOTO_CONFIG)
        user = iam.create_user(UserName=ADMIN_USER)["User"]
        iam.put_user_policy(
            UserName=ADMIN_USER,
            PolicyName="AdministratorAccess",
            PolicyDocument=json.dumps(ADMIN_POLICY),
        )
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        return AdminCredentials(
            user_name=ADMIN_USER,
            arn=user["Arn"],
            user_id=user["UserId"],
            access_key_id=key["AccessKeyId"],
            secret_access_key=key["SecretAccessKey"],
        )

    # ------------------------------------------------------------------- clients

    def _require_running(self) -> None:
        if self._stack is None:
            raise RuntimeError("the sandbox is not running: call start() or use `with Sandbox()`")

    @property
    def admin(self) -> AdminCredentials:
        self._require_running()
        assert self._admin is not None
        return self._admin

    @property
    def account(self) -> str:
        return self.admin.arn.split(":")[4]

    @property
    def session(self) -> boto3.session.Session:
        """A boto3 session with the administrator's credentials."""
        self._require_running()
        assert self._session is not None
        return self._session

    def new_session(self) -> boto3.session.Session:
        """A fresh boto3 session as the administrator (one per thread that needs one)."""
        admin = self.admin
        return boto3.session.Session(
            aws_access_key_id=admin.access_key_id,
            aws_secret_access_key=admin.secret_access_key,
            region_name=self.region,
        )

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client on moto, as the administrator."""
        make_client: Any = self.session.client  # typed per service literal by the stubs
        with self._client_lock:
            return make_client(service, region_name=region or self.region, config=BOTO_CONFIG)

    # -------------------------------------------------------------------- deploy

    def deploy(
        self,
        program_or_path: Program | str | Path,
        *,
        stack: str = "dev",
        config: Mapping[str, Any] | None = None,
        project: str | None = None,
    ) -> SandboxDeployment:
        """Deploy a program (a callable or a program file) into this sandbox."""
        return deploy_into_moto(
            program_or_path, stack=stack, config=config, project=project, sandbox=self
        )


# ------------------------------------------------------------------ moto fixes
# Bugs of moto 5.2.5 that would make the sandbox differ from AWS, patched for the
# sandbox's lifetime only (moto is pinned; re-check these when upgrading).

_original_create_aws_request = IAMRequestBase._create_aws_request
_original_set_queue_attributes = SqsQueue._set_attributes
_BODILESS_METHODS = ("GET", "HEAD", "DELETE")


def _create_aws_request(self: Any) -> Any:
    """moto's request to re-sign, without the body moto invents for a bodiless request.

    moto re-signs a request to check its signature with `data=body or data`, where
    `data` falls back to the query string, then to the HEADERS, when there is no body:
    once IAM is enforced, every GET/DELETE of a REST service (lambda GetFunction,
    ListFunctions, ...) fails with SignatureDoesNotMatch. botocore signs those with an
    empty payload, and so does this.
    """
    if not self._body and self._method in _BODILESS_METHODS:
        saved = self._data
        self._data = b""
        try:
            return _original_create_aws_request(self)
        finally:
            self._data = saved
    return _original_create_aws_request(self)


def _set_queue_attributes(self: Any, attributes: dict[str, Any], now: float | None = None) -> None:
    """moto's SetQueueAttributes, without erasing the queue policy.

    moto sets `policy = attributes.get("Policy")` on every call, so setting any other
    attribute (a RedriveAllowPolicy on a DLQ that already has its policy) deletes the
    policy; AWS changes only the attributes given. Also gives every queue a
    RedriveAllowPolicy attribute (moto stores it but never returns it).
    """
    policy = getattr(self, "policy", None)
    if not hasattr(self, "redrive_allow_policy"):
        self.redrive_allow_policy = None
    _original_set_queue_attributes(self, attributes, now)
    if "Policy" not in attributes:
        self.policy = policy


def _moto_fixes() -> list[AbstractContextManager[Any]]:
    return [
        DurableConfigPatch(),  # functions are deployed before the delivery starts
        mock.patch.object(IAMRequestBase, "_create_aws_request", _create_aws_request),
        mock.patch.object(SqsQueue, "_set_attributes", _set_queue_attributes),
        mock.patch.object(
            SqsQueue, "BASE_ATTRIBUTES", [*SqsQueue.BASE_ATTRIBUTES, "RedriveAllowPolicy"]
        ),
    ]


def _restore_env(key: str, previous: str | None) -> None:
    if previous is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = previous


class MotoMocks(RecordingMocks):
    """Recording mocks that create each custom resource in the sandbox's moto.

    `create` dispatches on the type token to `deployers` (default: all of
    `eventcraft_sandbox.deployers.DEPLOYERS`); creations are serialised (the engine registers
    resources from several threads, and moto's state is not meant for concurrent
    writers). `ids` holds each resource's provider id (queue URL, table name, ...) by
    (type, logical name); `records` what the sandbox delivers itself.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        region: str | None = None,
        deployers: Mapping[str, Deployer] | None = None,
    ) -> None:
        super().__init__(account=sandbox.account, region=region or sandbox.region)
        self.sandbox = sandbox
        self.records = Records()
        # Its own session: creations run on the engine's threads, not the caller's.
        self.context = DeployContext(
            sandbox.new_session(), account=self.account, region=self.region, records=self.records
        )
        self.deployers: dict[str, Deployer] = dict(DEPLOYERS if deployers is None else deployers)
        self.ids: dict[tuple[str, str], str] = {}
        self._provider_regions: dict[str, str] = {}
        self._lock = threading.Lock()

    def create(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ.startswith("pulumi:providers:"):
            # An explicit provider: nothing to create; its resources land in the sandbox,
            # in its region. Resources name it by "<urn>::<id>".
            reference = f"{getattr(self.current, 'urn', '')}::{args.name}"
            region = args.inputs.get("region")
            if isinstance(region, str):
                self._provider_regions[reference] = region
            return args.name, dict(args.inputs)
        if args.resource_id:
            raise DeployError(
                f"{args.typ} {args.name!r}: importing or reading an existing resource "
                f"({args.resource_id!r}) is not supported by the sandbox"
            )
        deployer = self.deployers.get(args.typ)
        if deployer is None:
            raise UnknownResourceTypeError(
                f"the sandbox cannot deploy resource type {args.typ!r} ({args.name!r}): "
                "no deployer is registered for it (add one in sandbox/deployers/)"
            )
        inputs = whole_numbers(dict(args.inputs))
        provider_region = self._provider_regions.get(args.provider or "")
        if provider_region and not inputs.get("region"):
            inputs["region"] = provider_region
        request = ResourceRequest(args.typ, args.name, inputs)
        with self._lock:
            try:
                resource_id, outputs = deployer(self.context, request)
            except DeployError as exc:
                if args.name in str(exc):
                    raise
                raise DeployError(f"{args.typ} {args.name!r}: {exc}") from exc
            except Exception as exc:
                raise DeployError(
                    f"creating {args.typ} {args.name!r} in the sandbox failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self.ids[(args.typ, args.name)] = resource_id
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            admin = self.sandbox.admin
            return {
                "accountId": self.account,
                "arn": admin.arn,
                "userId": admin.user_id,
                "id": self.account,
            }
        return super().call(args)


@dataclass
class SandboxDeployment(Deployment):
    """A program deployed into the sandbox: its resources (with moto's outputs), its
    stack outputs, the provider ids, and what the sandbox delivers itself.

    If `deploy_into_moto` started the sandbox for it (`owns_sandbox`), `close()` (or
    leaving a `with` block) stops that sandbox.
    """

    stack: str = "dev"
    project: str = "project"
    sandbox: Sandbox | None = None
    records: Records = field(default_factory=Records)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    owns_sandbox: bool = False

    @property
    def event_source_mappings(self) -> list[EventSourceMappingRecord]:
        return self.records.event_source_mappings

    @property
    def pipes(self) -> list[PipeRecord]:
        return self.records.pipes

    @property
    def schema_registries(self) -> dict[str, SchemaRegistryRecord]:
        return self.records.schema_registries

    @property
    def schemas(self) -> list[SchemaRecord]:
        return self.records.schemas

    def by_type(self) -> dict[str, list[str]]:
        """Logical names of the custom resources, by type token."""
        out: dict[str, list[str]] = {}
        for resource in self.resources:
            if resource.custom:
                out.setdefault(resource.typ, []).append(resource.name)
        return out

    def arn(self, name: str, typ: str | None = None) -> str:
        """The moto ARN of the one resource with this logical name (and type)."""
        resource = self.named(name, typ)
        if resource.arn is None:
            raise KeyError(f"{resource.typ} {name!r} has no ARN")
        return resource.arn

    @property
    def arns(self) -> dict[tuple[str, str], str]:
        """Every custom resource's moto ARN, by (type, logical name)."""
        return {(r.typ, r.name): r.arn for r in self.resources if r.custom and r.arn}

    def resource_id(self, name: str, typ: str | None = None) -> str:
        """The provider id (queue URL, table name, ...) of a resource."""
        resource = self.named(name, typ)
        return self.ids[(resource.typ, resource.name)]

    def summary(self) -> str:
        """The `sandbox up` table, then what the sandbox delivers itself."""
        lines = [
            render(
                self,
                self.stack,
                project=self.project,
                note="sandbox: deployed into an in-process moto",
                created=True,
            )
        ]
        extra: list[str] = []
        for esm in self.event_source_mappings:
            state = "enabled" if esm.enabled else "disabled"
            batch = esm.request.get("BatchSize")
            extra.append(
                f"  event source mapping {esm.name}: {esm.event_source_arn} -> "
                f"{esm.function_arn} ({state}{f', batch {batch}' if batch else ''})"
            )
        for pipe in self.pipes:
            extra.append(f"  pipe {pipe.pipe_name}: {pipe.source} -> {pipe.target}")
        for schema in self.schemas:
            extra.append(f"  schema {schema.registry_name}/{schema.schema_name} ({schema.type})")
        if extra:
            lines += ["", "Delivered by the sandbox (not by moto):", *extra]
        return "\n".join(lines)

    def close(self) -> None:
        if self.owns_sandbox and self.sandbox is not None:
            self.sandbox.stop()

    def __enter__(self) -> SandboxDeployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def deploy_into_moto(
    program_or_path: Program | str | Path,
    *,
    stack: str = "dev",
    config: Mapping[str, Any] | None = None,
    project: str | None = None,
    sandbox: Sandbox | None = None,
) -> SandboxDeployment:
    """Deploy a program into `sandbox` (a running `Sandbox`; default: start a new one).

    `program_or_path` is a callable or a program file such as `__main__.py`, run as
    the Pulumi CLI would. `config` keys are full (`ns:key`) or bare (project
    namespace); for a file, None reads `Pulumi.<stack>.yaml` beside it, and the project
    is the one its Pulumi.yaml names (default for a callable: "project"). The
    deployment's region is `aws:region` from the config (default: the sandbox's).
    A sandbox started here is owned by the returned deployment: `close()` it (or use
    `with deploy_into_moto(...) as deployment:`). Raises `UnknownResourceTypeError`
    for a type without a deployer, `DeployError` when moto or boto3 rejects a
    resource, and whatever the program raises.
    """
    owns = sandbox is None
    target = sandbox if sandbox is not None else Sandbox().start()
    try:
        if not target.running:
            raise RuntimeError("the sandbox is not running: call start() or use `with Sandbox()`")
        program: Program
        if isinstance(program_or_path, str | Path):
            path = Path(program_or_path)
            if not path.is_file():
                raise FileNotFoundError(f"no Pulumi program at {path}")

            def program() -> None:
                runpy.run_path(str(path), run_name="__main__")

            if config is None:
                config = stack_config(stack, root=path.parent)
            if project is None and (path.parent / "Pulumi.yaml").is_file():
                project = project_name(path.parent)
        else:
            program = program_or_path
        project = project or "project"
        full_config = dict(config or {})
        region = full_config.get("aws:region")
        mocks = MotoMocks(target, region=region if isinstance(region, str) else None)
        deployment = deploy(
            program, config=full_config, project=project, stack=stack, mocks=mocks, preview=False
        )
    except BaseException:
        if owns:
            target.stop()
        raise
    result = SandboxDeployment(
        resources=deployment.resources,
        outputs=deployment.outputs,
        stack=stack,
        project=project,
        sandbox=target,
        records=mocks.records,
        ids=dict(mocks.ids),
        owns_sandbox=owns,
    )
    target.deployments.append(result)
    return result
