"""A Python Lambda function with its own log group, least-privilege role, tracing and alarms.

`Function` deploys one handler from a code folder (`code_dir`). It owns:

- a log group `/aws/lambda/<function name>` with a retention (the function is created
  with an explicit name and logs to that group, so nothing is left to auto-creation
  with infinite retention);
- an execution role that may only write to that log group and send X-Ray traces;
  everything else is granted explicitly, one inline policy per grant
  (`grant(...)`, `grant_read(table)`, `grant_send(queue)`, ...);
- alarms on Errors >= 1 and Throttles >= 1;
- optionally, for asynchronous invocations, an on-failure destination queue;
- optionally, a recursion config allowing recursive invocations (a function that
  continues its own work in new invocations of itself);
- optionally, durable execution (`durable=DurableConfig(...)`, see
  `pulumi_eventcraft.durable`): the function is published, an alias `live` follows the
  published version, the role may checkpoint and read the state of its own executions
  (`{name}-durable-execution`), and every caller (rule targets, permissions, event
  source mappings, `invoke_statements`) uses the alias ARN, `target_arn`: Lambda
  refuses to invoke a durable function through its unqualified ARN.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft import durable as _durable
from pulumi_eventcraft.alarms import metric_alarm
from pulumi_eventcraft.durable import DurableConfig
from pulumi_eventcraft.iam import Statement, grant_policy, service_role
from pulumi_eventcraft.queue import DeadLetterQueue, DeadLetterQueueArgs
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

if TYPE_CHECKING:
    from pulumi_eventcraft.layer import DependencyLayer

Architecture = Literal["arm64", "x86_64"]
ARCHITECTURES: tuple[str, ...] = ("arm64", "x86_64")
RecursiveLoop = Literal["Terminate", "Allow"]
RECURSIVE_LOOPS: tuple[str, ...] = ("Terminate", "Allow")
# The retention values CloudWatch Logs accepts (PutRetentionPolicy), in days.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
# Levels both Lambda's application log filter and Python's logging understand.
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARN", "ERROR")
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 1, 900
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
MIN_PYTHON_MINOR = 12
# Lambda's limits for asynchronous invocation retries and event age.
MAX_ASYNC_RETRY_ATTEMPTS = 2
MIN_EVENT_AGE_SECONDS, MAX_EVENT_AGE_SECONDS = 60, 21600
# Lambda keeps this much of an account's concurrency unreserved: reservations beyond the
# account's quota minus this fail (PutFunctionConcurrency, so `pulumi up`).
MIN_UNRESERVED_CONCURRENCY = 100
# Set by the Lambda runtime; a function may not define them.
RESERVED_ENVIRONMENT = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
# Left out of the code asset: tests and caches are not code the function runs.
EXCLUDED_DIRS = frozenset({"tests", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = frozenset({".pyc", ".pyo"})
_HANDLER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_ENV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_GRANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


# ------------------------------------------------------------- what can be granted


class _Named(Protocol):
    @property
    def pulumi_resource_name(self) -> str: ...


class EventBusLike(_Named, Protocol):
    def put_events_statements(self) -> list[Statement]: ...


class TableLike(_Named, Protocol):
    def read_statements(self) -> list[Statement]: ...
    def write_statements(self) -> list[Statement]: ...
    def read_write_statements(self) -> list[Statement]: ...


class QueueLike(_Named, Protocol):
    def send_statements(self) -> list[Statement]: ...
    def consume_statements(self) -> list[Statement]: ...


class StreamLike(_Named, Protocol):
    def put_statements(self) -> list[Statement]: ...


class StateMachineLike(_Named, Protocol):
    def start_execution_statements(self) -> list[Statement]: ...


class InvocableLike(_Named, Protocol):
    def invoke_statements(self) -> list[Statement]: ...


class DeadLetterQueueLike(Protocol):
    """What a function needs of an on-failure queue: its ARN and the right to send."""

    @property
    def arn(self) -> pulumi.Output[str]: ...

    def send_statements(self) -> list[Statement]: ...


def reservable_concurrency(account_limit: int) -> int:
    """How many concurrent executions an account with this concurrency quota lets its
    functions reserve in all: the quota minus the 100 Lambda keeps unreserved."""
    return max(0, account_limit - MIN_UNRESERVED_CONCURRENCY)


# ------------------------------------------------------------------------- args


@dataclass(frozen=True, kw_only=True)
class FunctionArgs:
    """Arguments of a `Function`. `handler`, `timeout_seconds` and `code_dir` are required.

    - `handler`: "module.path.function" under `code_dir`, e.g. "handlers.notify.handler".
    - `timeout_seconds`: 1..900, no default: a timeout is a decision about the work.
    - `code_dir`: the folder deployed as the code asset (the Lambda task root), no
      default; `tests`, `__pycache__` and `*.pyc` are left out.
    - `memory_mb`: 256 (default), 128..10240 MB.
    - `architecture`: "arm64" (default) or "x86_64".
    - `runtime`: "python3.12" (default); older runtimes are refused.
    - `environment`: extra variables, merged last over POWERTOOLS_SERVICE_NAME and
      POWERTOOLS_LOG_LEVEL; default none.
    - `reserved_concurrency`: None (default, unreserved) or a cap on concurrent
      executions (backpressure on what the function calls).
    - `log_retention_days`: 14 (default); one of the values CloudWatch Logs accepts.
    - `log_level`: "INFO" (default); DEBUG, INFO, WARN or ERROR.
    - `layer`: None (default) or a `DependencyLayer` of the same architecture and runtime.
    - `async_on_failure`: False (default); True creates a `{name}-async-dlq` queue, or
      pass a DeadLetterQueue: asynchronous invocations that fail
      `async_max_retry_attempts` (2, 0..2) retries or are older than
      `async_max_event_age_seconds` (3600 s, 60..21600) are recorded there.
    - `durable`: None (default) or a `DurableConfig` (execution timeout, retention):
      a Lambda durable function, which needs python3.13 or newer; callers must invoke
      it through `Function.target_arn` (the alias). Turning it on or off replaces the
      function (Lambda sets durability at creation).
    - `recursive_loop`: "Terminate" (default, Lambda's) or "Allow". Lambda's recursive
      loop detection stops a chain of invocations of the same event after about 16 hops
      (a function invoking itself included); "Allow" is for a function that continues
      its own work in new invocations of itself, and must then guard its own progress.
    - `function_name`: None (default) = "<project>-<stack>-<name>"; the physical name.
    - `description`: None (default) = the handler.
    - `alarms`: True (default): Errors >= 1 and Throttles >= 1 per minute.
    - `alarm_actions`: SNS topic ARNs the alarms notify; default none.
    - `tags`: None (default); tags of the function, its log group, role, alarms and
      created on-failure queue.
    Tracing is always Active.
    """

    handler: str
    timeout_seconds: int
    code_dir: str | Path
    memory_mb: int = 256
    architecture: Architecture = "arm64"
    runtime: str = "python3.12"
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    log_retention_days: int = 14
    log_level: str = "INFO"
    layer: DependencyLayer | None = None
    async_on_failure: bool | DeadLetterQueueLike = False
    async_max_retry_attempts: int = 2
    async_max_event_age_seconds: int = 3600
    recursive_loop: RecursiveLoop = "Terminate"
    durable: DurableConfig | None = None
    function_name: str | None = None
    description: str | None = None
    alarms: bool = True
    alarm_actions: Sequence[pulumi.Input[str]] = ()
    tags: Tags = None

    def __post_init__(self) -> None:
        self._validate()
        check_tags("FunctionArgs", self.tags)

    def _validate(self) -> None:  # noqa: PLR0912 (one check per rule reads best)
        if isinstance(self.timeout_seconds, bool) or not isinstance(self.timeout_seconds, int):
            raise ValueError(f"timeout_seconds: {self.timeout_seconds!r} must be whole seconds")
        if not MIN_TIMEOUT_SECONDS <= self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"timeout_seconds: {self.timeout_seconds} is outside "
                f"{MIN_TIMEOUT_SECONDS}..{MAX_TIMEOUT_SECONDS} seconds"
            )
        if not MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB:
            raise ValueError(
                f"memory_mb: {self.memory_mb} is outside {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB"
            )
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture: {self.architecture!r} is not allowed; use one of "
                f"{', '.join(ARCHITECTURES)}"
            )
        match = re.fullmatch(r"python3\.(\d+)", self.runtime)
        if not match or int(match.group(1)) < MIN_PYTHON_MINOR:
            raise ValueError(
                f"runtime: {self.runtime!r} is not supported; use python3.{MIN_PYTHON_MINOR} "
                "or newer (the handlers are Python and need 3.12+)"
            )
        self._validate_handler()
        for key in self.environment:
            if not _ENV_NAME.fullmatch(key):
                raise ValueError(
                    f"environment: {key!r} is not a valid variable name (a letter, then "
                    "letters, digits or '_')"
                )
            if key in RESERVED_ENVIRONMENT:
                raise ValueError(
                    f"environment: {key!r} is reserved by the Lambda runtime; pick another name"
                )
        if self.reserved_concurrency is not None and self.reserved_concurrency < 0:
            raise ValueError(
                f"reserved_concurrency: {self.reserved_concurrency} must be None (unreserved) "
                "or >= 0 concurrent executions"
            )
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"log_retention_days: {self.log_retention_days} is not a CloudWatch Logs "
                f"retention; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        if self.log_level not in LOG_LEVELS:
            raise ValueError(
                f"log_level: {self.log_level!r} is not allowed; use one of {', '.join(LOG_LEVELS)}"
            )
        if self.layer is not None:
            if self.layer.architecture != self.architecture:
                raise ValueError(
                    f"layer: built for {self.layer.architecture} but the function runs on "
                    f"{self.architecture}; build the layer with architecture="
                    f"{self.architecture!r}"
                )
            if self.layer.runtime != self.runtime:
                raise ValueError(
                    f"layer: built for {self.layer.runtime} but the function runs "
                    f"{self.runtime}; build the layer with python_version="
                    f"{self.runtime.removeprefix('python')!r}"
                )
        if not 0 <= self.async_max_retry_attempts <= MAX_ASYNC_RETRY_ATTEMPTS:
            raise ValueError(
                f"async_max_retry_attempts: {self.async_max_retry_attempts} is outside "
                f"0..{MAX_ASYNC_RETRY_ATTEMPTS}"
            )
        if not MIN_EVENT_AGE_SECONDS <= self.async_max_event_age_seconds <= MAX_EVENT_AGE_SECONDS:
            raise ValueError(
                f"async_max_event_age_seconds: {self.async_max_event_age_seconds} is outside "
                f"{MIN_EVENT_AGE_SECONDS}..{MAX_EVENT_AGE_SECONDS} seconds"
            )
        if getattr(self.async_on_failure, "fifo", False) is True:
            raise ValueError(
                "async_on_failure: Lambda destinations cannot send to a FIFO queue; "
                "use a standard DeadLetterQueue (or True to create one)"
            )
        if self.recursive_loop not in RECURSIVE_LOOPS:
            raise ValueError(
                f"recursive_loop: {self.recursive_loop!r} is not allowed; use one of "
                f"{', '.join(RECURSIVE_LOOPS)}"
            )
        self._validate_durable()
        if self.function_name is not None and not _FUNCTION_NAME.fullmatch(self.function_name):
            raise ValueError(
                f"function_name: {self.function_name!r} must be 1..64 letters, digits, '-' or '_'"
            )

    def _validate_durable(self) -> None:
        if self.durable is None:
            return
        if not isinstance(self.durable, DurableConfig):
            raise ValueError(
                f"durable: expected a DurableConfig or None, got {type(self.durable).__name__}"
            )
        minor = int(self.runtime.removeprefix("python3."))
        if minor < _durable.MIN_PYTHON_MINOR:
            raise ValueError(
                f"runtime: {self.runtime!r} cannot run a durable function; use "
                f"python3.{_durable.MIN_PYTHON_MINOR} or newer (or durable=None)"
            )

    def _validate_handler(self) -> None:
        if not _HANDLER.fullmatch(self.handler):
            raise ValueError(
                f"handler: {self.handler!r} must be 'module.path.function', "
                "e.g. 'handlers.notify.handler'"
            )
        code_dir = Path(self.code_dir)
        if not code_dir.is_dir():
            raise ValueError(f"code_dir: {code_dir} is not a directory")
        *module, attribute = self.handler.split(".")
        candidates = [
            code_dir.joinpath(*module).with_suffix(".py"),
            code_dir.joinpath(*module, "__init__.py"),
        ]
        source = next((p for p in candidates if p.is_file()), None)
        if source is None:
            raise ValueError(
                f"handler: {self.handler!r} names module {'.'.join(module)!r}, but neither "
                f"{candidates[0].relative_to(code_dir)} nor "
                f"{candidates[1].relative_to(code_dir)} exists under {code_dir}"
            )
        try:
            names = _top_level_names(source)
        except SyntaxError as exc:
            raise ValueError(
                f"handler: {self.handler!r}: {source.relative_to(code_dir)} does not parse "
                f"(line {exc.lineno}: {exc.msg})"
            ) from None
        if attribute not in names:
            raise ValueError(
                f"handler: {self.handler!r}: {source.relative_to(code_dir)} defines no "
                f"top-level {attribute!r}"
            )


def _top_level_names(source: Path) -> set[str]:
    """Names a module binds at top level (defs, classes, assignments, imports)."""
    tree = ast.parse(source.read_text(), filename=str(source))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def code_archive(code_dir: str | Path) -> pulumi.AssetArchive:
    """The code asset: every file under `code_dir` but tests, caches and bytecode."""
    root = Path(code_dir)
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if any(part in EXCLUDED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        assets[relative.as_posix()] = pulumi.FileAsset(str(path))
    return pulumi.AssetArchive(assets)


def scoped_name(name: str, *, max_length: int = 64) -> str:
    """`<project>-<stack>-<name>`: unique per stack in an account, within `max_length`."""
    full = re.sub(r"[^A-Za-z0-9_-]", "-", f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}")
    if len(full) <= max_length:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: max_length - 9]}-{digest}"


# -------------------------------------------------------------------- component


class Function(pulumi.ComponentResource):
    """A Lambda function (`eventcraft:index:Function`); see the module docstring.

    Attributes: `function`, `arn` (unqualified), `target_arn` (the ARN to invoke it
    by: the alias ARN of a durable function, `arn` otherwise), `qualifier` (the alias
    name of a durable function, else None), `alias` (or None), `name` (physical),
    `role`, `role_policy` (its logging and tracing grants, which the function waits
    for), `log_group`, `timeout_seconds`, `architecture`, `reserved_concurrency`,
    `async_dlq` (or None), `recursion_config` (or None), `durable_policy` (or None),
    `alarms` (the MetricAlarms), `grants` (grant name -> RolePolicy), `args`.
    """

    function: aws.lambda_.Function
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup

    def __init__(
        self, name: str, args: FunctionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not isinstance(args, FunctionArgs):
            raise ValueError(f"args: expected FunctionArgs, got {type(args).__name__}")
        super().__init__("eventcraft:index:Function", name, None, opts)
        self.args = args
        self.timeout_seconds: int = args.timeout_seconds
        self.architecture: str = args.architecture
        self.reserved_concurrency: int | None = args.reserved_concurrency
        self.grants: dict[str, aws.iam.RolePolicy] = {}
        self.alarms: list[aws.cloudwatch.MetricAlarm] = []
        function_name = args.function_name or scoped_name(name)

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        log_streams = self.log_group.arn.apply(lambda arn: f"{arn}:*")
        self.role = service_role(
            f"{name}-role",
            service="lambda.amazonaws.com",
            statements=(),
            parent=self,
            description=f"Execution role of the {name} function",
            tags=args.tags,
        )
        # A handle so that the function waits for it: Lambda refuses an Active-traced
        # function whose role cannot yet call xray:PutTraceSegments.
        self.role_policy = grant_policy(
            f"{name}-role-policy",
            self.role,
            [
                # The group exists (created above), so no logs:CreateLogGroup.
                Statement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_streams],
                ),
                # X-Ray has no resource-level permissions: "*" is the only resource.
                Statement(
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                ),
            ],
            parent=self,
        )
        environment: dict[str, pulumi.Input[str]] = {
            "POWERTOOLS_SERVICE_NAME": name,
            "POWERTOOLS_LOG_LEVEL": args.log_level,
            **args.environment,
        }
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            description=args.description or args.handler,
            role=self.role.arn,
            runtime=args.runtime,
            handler=args.handler,
            code=code_archive(args.code_dir),
            architectures=[args.architecture],
            timeout=args.timeout_seconds,
            memory_size=args.memory_mb,
            reserved_concurrent_executions=args.reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            # JSON logs let Lambda filter by level; the group is ours, with its retention.
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON",
                log_group=self.log_group.name,
                application_log_level=args.log_level,
                system_log_level="WARN",
            ),
            layers=[args.layer.arn] if args.layer is not None else None,
            # A durable function is invoked through an alias of a published version.
            durable_config=(
                aws.lambda_.FunctionDurableConfigArgs(
                    execution_timeout=args.durable.execution_timeout_seconds,
                    retention_period=args.durable.retention_period_days,
                )
                if args.durable is not None
                else None
            ),
            publish=True if args.durable is not None else None,
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group, self.role_policy]),
        )
        self.arn = self.function.arn
        self.name = self.function.name
        self.target_arn: pulumi.Output[str] = self.function.arn
        self.qualifier: str | None = None
        self.alias: aws.lambda_.Alias | None = None
        self.durable_policy: aws.iam.RolePolicy | None = None
        if args.durable is not None:
            self._durable(name)

        self.async_dlq: DeadLetterQueueLike | None = None
        self.event_invoke_config: aws.lambda_.FunctionEventInvokeConfig | None = None
        if args.async_on_failure is not False:
            self._async_on_failure(name, args)
        self.recursion_config: aws.lambda_.FunctionRecursionConfig | None = None
        if args.recursive_loop != "Terminate":
            self.recursion_config = aws.lambda_.FunctionRecursionConfig(
                f"{name}-recursion",
                function_name=self.function.name,
                recursive_loop=args.recursive_loop,
                opts=pulumi.ResourceOptions(parent=self),
            )

        if args.alarms:
            self._alarm(name, "Errors", "errors", "an invocation failed")
            self._alarm(name, "Throttles", "throttles", "invocations were throttled")
            if self.async_dlq is not None:
                self._alarm(
                    name,
                    "DestinationDeliveryFailures",
                    "destination-delivery-failures",
                    "a failed asynchronous event could not be sent to its destination",
                )
        self.register_outputs(
            {
                "arn": self.arn,
                "target_arn": self.target_arn,
                "name": self.name,
                "role_arn": self.role.arn,
            }
        )

    def _async_on_failure(self, name: str, args: FunctionArgs) -> None:
        dlq: DeadLetterQueueLike
        if args.async_on_failure is True:
            dlq = DeadLetterQueue(
                f"{name}-async-dlq",
                DeadLetterQueueArgs(
                    alarms=args.alarms, alarm_actions=args.alarm_actions, tags=args.tags
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        else:
            dlq = args.async_on_failure  # type: ignore[assignment]
        self.async_dlq = dlq
        # Lambda sends destination records with the function's execution role, so the
        # role (not a queue policy) needs sqs:SendMessage on the queue.
        grant = self.grant("async-on-failure", dlq.send_statements())
        self.event_invoke_config = aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=self.function.name,
            # Lambda applies the configuration of the qualifier that was invoked.
            qualifier=self.qualifier,
            maximum_retry_attempts=args.async_max_retry_attempts,
            maximum_event_age_in_seconds=args.async_max_event_age_seconds,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=dlq.arn
                )
            ),
            # Lambda checks the role can send to the destination when it is configured.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]),
        )

    def _durable(self, name: str) -> None:
        # Lambda authorizes checkpoints against the execution's ARN, which extends the
        # version-qualified function ARN: `<arn>:*` covers every version and nothing else.
        self.durable_policy = self.grant(
            "durable-execution",
            [
                Statement(
                    actions=list(_durable.EXECUTION_ACTIONS),
                    resources=[self.function.arn.apply(lambda arn: f"{arn}:*")],
                )
            ],
        )
        self.qualifier = _durable.ALIAS_NAME
        # Callers reach the function only through the alias, so nothing invokes it
        # before its role may checkpoint.
        self.alias = aws.lambda_.Alias(
            f"{name}-alias",
            name=_durable.ALIAS_NAME,
            function_name=self.function.name,
            function_version=self.function.version,
            description="The version published by the last deployment",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.durable_policy]),
        )
        self.target_arn = self.alias.arn

    def _alarm(self, name: str, metric: str, suffix: str, what: str) -> None:
        self.alarms.append(
            metric_alarm(
                f"{name}-{suffix}",
                namespace="AWS/Lambda",
                metric_name=metric,
                dimensions={"FunctionName": self.function.name},
                threshold=1,
                statistic="Sum",
                alarm_actions=self.args.alarm_actions,
                description=f"{name}: {what} (>= 1 in a minute)",
                parent=self,
                tags=self.args.tags,
            )
        )

    # ----------------------------------------------------------------- grants

    def grant(self, name: str, statements: Sequence[Statement]) -> aws.iam.RolePolicy:
        """Attach `statements` to the role as one inline policy `{function}-{name}`."""
        if not _GRANT_NAME.fullmatch(name):
            raise ValueError(f"name: grant name {name!r} must be 1..64 letters, digits, '-', '_'")
        if name in self.grants:
            raise ValueError(
                f"name: {self.pulumi_resource_name!r} already has a grant named {name!r}; "
                "each grant needs its own name"
            )
        if not statements:
            raise ValueError(f"statements: grant {name!r} has no statements")
        policy = grant_policy(
            f"{self.pulumi_resource_name}-{name}", self.role, statements, parent=self
        )
        self.grants[name] = policy
        return policy

    def grant_put_events(self, bus: EventBusLike) -> aws.iam.RolePolicy:
        """events:PutEvents on `bus`."""
        return self.grant(f"put-events-{bus.pulumi_resource_name}", bus.put_events_statements())

    def grant_read(self, table: TableLike) -> aws.iam.RolePolicy:
        """The table's `read_statements()`."""
        return self.grant(f"read-{table.pulumi_resource_name}", table.read_statements())

    def grant_write(self, table: TableLike) -> aws.iam.RolePolicy:
        """The table's `write_statements()`."""
        return self.grant(f"write-{table.pulumi_resource_name}", table.write_statements())

    def grant_read_write(self, table: TableLike) -> aws.iam.RolePolicy:
        """The table's `read_write_statements()`."""
        return self.grant(f"read-write-{table.pulumi_resource_name}", table.read_write_statements())

    def grant_send(self, queue: QueueLike) -> aws.iam.RolePolicy:
        """The queue's `send_statements()`."""
        return self.grant(f"send-{queue.pulumi_resource_name}", queue.send_statements())

    def grant_consume(self, queue: QueueLike) -> aws.iam.RolePolicy:
        """The queue's `consume_statements()`."""
        return self.grant(f"consume-{queue.pulumi_resource_name}", queue.consume_statements())

    def grant_put_records(self, stream: StreamLike) -> aws.iam.RolePolicy:
        """The stream's `put_statements()`."""
        return self.grant(f"put-records-{stream.pulumi_resource_name}", stream.put_statements())

    def grant_start_execution(self, machine: StateMachineLike) -> aws.iam.RolePolicy:
        """The state machine's `start_execution_statements()`."""
        return self.grant(
            f"start-execution-{machine.pulumi_resource_name}",
            machine.start_execution_statements(),
        )

    def grant_invoke(self, function: InvocableLike) -> aws.iam.RolePolicy:
        """The other function's `invoke_statements()`."""
        return self.grant(f"invoke-{function.pulumi_resource_name}", function.invoke_statements())

    def invoke_statements(self) -> list[Statement]:
        """lambda:InvokeFunction on the ARN callers invoke (`target_arn`)."""
        return [Statement(actions=["lambda:InvokeFunction"], resources=[self.target_arn])]
