"""One object that runs the whole sandbox for a program's stack: `SandboxSession`.

    with SandboxSession(Path("app/__main__.py"), "dev") as session:  # deploy + runtime + delivery
        session.put_event("JobSubmitted", {"jobId": "j-1"}, source="app.jobs")
        session.run_until_quiet()                      # deliver it all, in virtual time
        session.scan("jobs")                           # the items of the `jobs` table

It is the wiring of the sandbox's parts (the `Sandbox` with the program deployed into
it, the `LambdaRuntime` running the handlers with their roles, the `Delivery` with AWS's
semantics on a virtual clock), plus what a user of the sandbox needs around them:

* stack config overrides (`config`, bare keys of the project's namespace, merged over
  `Pulumi.<stack>.yaml` next to the program);
* acting as a client (`invoke`, `put_event`, `send_message`), readers of the tables and
  queues the stack outputs name, replay from the archive, and removing a grant from a
  function's role (to prove the role is what AWS would enforce);
* accounting: invocations per function, AWS calls made by the handlers, events put on
  the program's bus per detail-type; optional duplicate deliveries (`duplicate_rate`):
  a share of the bus's events is put a second time, later, with the same detail, as an
  at-least-once publisher or bus would.

The stack outputs it reads: `functions` (short name -> deployed name), `tables` (role
-> table name), `queues` (name -> {"url": ...}), `busName`, `archiveName`. A program's
own driver subclasses the session for what only that program knows (its DLQs, its
seeding and invariants).

Performance: `speedups()` (on while a session runs) removes what made long runs slow
in moto and botocore without changing what any call does.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import BotocoreStubber

from eventcraft_sandbox.clock import RunReport, Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.fault_injection import FaultInjector
from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.lambda_runtime import InvocationResult, LambdaRuntime
from eventcraft_sandbox.lambda_runtime.invocation import INIT_ERROR_TYPES
from eventcraft_sandbox.moto_deploy import Sandbox, SandboxDeployment
from eventcraft_sandbox.quotas import DEFAULT_CONCURRENCY_QUOTA, check_concurrency_quota
from eventcraft_sandbox.speedups import speedups
from eventcraft_sandbox.stack_files import project_name, stack_config

__all__ = [
    "InvocationFailedError",
    "Item",
    "SandboxSession",
    "from_item",
    "plain",
    "speedups",
    "to_item",
]

# Errors that say a function's package is incomplete or broken, not its input: Lambda's
# init errors, and a module its handler imports while running that is not there.
LOAD_ERRORS: Final = INIT_ERROR_TYPES | {"ModuleNotFoundError", "ImportError"}

# Duplicates arrive within this many virtual seconds after the original.
DUPLICATE_DELAY_SECONDS: Final = (0.5, 5.0)

Item = dict[str, Any]


class InvocationFailedError(RuntimeError):
    """A function the session invoked as a client returned a function error."""

    def __init__(self, function: str, result: InvocationResult) -> None:
        super().__init__(f"{function}: {result.error_type}: {result.error_message}")
        self.function = function
        self.result = result


# --------------------------------------------------------------------------- helpers

_DESERIALIZER = TypeDeserializer()
_SERIALIZER = TypeSerializer()


def plain(value: Any) -> Any:
    """boto3's deserialised values as JSON values (Decimal -> int / float, sets -> lists)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def from_item(item: Mapping[str, Any]) -> Item:
    """A DynamoDB item (wire format) as plain JSON values."""
    return {k: plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON values as a DynamoDB item (wire format; floats as numbers)."""
    converted = json.loads(json.dumps(values), parse_float=Decimal)
    return {k: _SERIALIZER.serialize(v) for k, v in converted.items()}


# Reads the delivery makes before every delivery (does the function exist, may the rule
# invoke it, its async retry config; may EventBridge send to the queue): cached within
# one `run_until_quiet` (nothing in the system changes them while it runs; whatever a
# test changes between runs is read afresh).
_CACHED_READS: Final[Mapping[str, frozenset[str]]] = {
    "lambda": frozenset(
        {
            "get_function",
            "get_function_configuration",
            "get_policy",
            "get_function_event_invoke_config",
        }
    ),
    "sqs": frozenset({"get_queue_attributes"}),
}
# Queue attributes that change while the system runs are never cached.
_STATIC_QUEUE_ATTRIBUTES: Final = frozenset({"Policy", "ContentBasedDeduplication", "QueueArn"})


class _CachedReads:
    """A boto3 client whose configuration reads (`_CACHED_READS`) are remembered until
    `clear()`, errors included; every other call goes to the client."""

    def __init__(self, client: Any, methods: frozenset[str]) -> None:
        self._client = client
        self._methods = methods
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._methods:
            return attribute

        def read(**kwargs: Any) -> Any:
            names = kwargs.get("AttributeNames")
            if names is not None and not set(names) <= _STATIC_QUEUE_ATTRIBUTES:
                return attribute(**kwargs)
            key = (name, json.dumps(kwargs, sort_keys=True, default=str))
            with self._lock:
                cached = self._cache.get(key)
            if cached is None:
                try:
                    cached = (True, attribute(**kwargs))
                except ClientError as exc:
                    cached = (False, exc)
                with self._lock:
                    self._cache[key] = cached
            ok, value = cached
            if not ok:
                raise value
            return value

        return read


class _DeliveryClients:
    """The delivery's administrator clients (a `ClientSource`), with `_CachedReads`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._cached: list[_CachedReads] = []

    def client(self, service: str, region: str | None = None) -> Any:
        client = self.sandbox.client(service, region)
        methods = _CACHED_READS.get(service)
        if methods is None:
            return client
        cached = _CachedReads(client, methods)
        self._cached.append(cached)
        return cached

    def clear(self) -> None:
        for cached in self._cached:
            cached.clear()


class _CountingRuntime(LambdaRuntime):
    """The Lambda runtime, counting invocations per function (every path: the Invoke
    API, Step Functions tasks, the delivery's pollers and rule targets; not those
    Lambda throttled, which never ran: `concurrency.throttles` counts them)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.load_errors: dict[str, str] = {}  # function -> its first (LOAD_ERRORS)
        self._count_lock = threading.Lock()

    def _invoke(self, spec: Any, event: Any, invocation_type: str, invoked_arn: str) -> Any:
        outcome = super()._invoke(spec, event, invocation_type, invoked_arn)
        if outcome.result.refused:
            return outcome
        with self._count_lock:
            self.invocations[spec.name] += 1
            if outcome.result.error_type:
                self.errors[spec.name] += 1
            if outcome.result.error_type in LOAD_ERRORS:
                self.load_errors.setdefault(
                    spec.name,
                    f"{spec.handler}: {outcome.result.error_type}: {outcome.result.error_message}",
                )
        return outcome


class _AwsCallCounter:
    """Counts the requests that reach moto, by who makes them: handler code (a thread
    of a Lambda invocation, `lambda:<function>:<request>`) or anything else (the
    sandbox's delivery, Step Functions, the session's own reads)."""

    def __init__(self) -> None:
        self.by_function: Counter[str] = Counter()
        self.by_operation: Counter[str] = Counter()
        self.other = 0
        self.other_by_operation: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._original: Any = None

    def install(self) -> None:
        original = BotocoreStubber.process_request
        self._original = original
        counter = self

        def process_request(stub: Any, request: Any) -> Any:
            counter.count(request)
            return original(stub, request)

        BotocoreStubber.process_request = process_request  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original is not None:
            BotocoreStubber.process_request = self._original  # type: ignore[method-assign]
            self._original = None

    def count(self, request: Any) -> None:
        name = threading.current_thread().name
        with self._lock:
            if not name.startswith("lambda:"):
                self.other += 1
                self.other_by_operation[_operation(request)] += 1
                return
            self.by_function[name.split(":")[1]] += 1
            self.by_operation[_operation(request)] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_function.values())


def _operation(request: Any) -> str:
    """`service:Operation` of a botocore request (JSON protocols), else service:METHOD."""
    url = str(getattr(request, "url", ""))
    host = url.split("//", 1)[-1].split(".", 1)[0]
    target = request.headers.get("X-Amz-Target") if hasattr(request, "headers") else None
    if isinstance(target, bytes):
        target = target.decode()
    if target:
        return f"{host}:{str(target).rsplit('.', 1)[-1]}"
    return f"{host}:{getattr(request, 'method', '?')}"


# --------------------------------------------------------------------------- session


# --------------------------------------------------------------------------- session


class SandboxSession:
    """The whole sandbox for one stack of a program (see the module docstring).

    - `program`: the program file (`Pulumi.yaml` and `Pulumi.<stack>.yaml` next to it)
      or a callable;
    - `stack`: reads `Pulumi.<stack>.yaml` ("dev" by default);
    - `project`: the Pulumi project (default: `name` of the program's `Pulumi.yaml`;
      required for a callable program); its namespace takes bare config keys;
    - `config`: overrides of the stack's config (bare names are the project's keys, e.g.
      `{"mode": "fast"}`; `ns:key` names as they are);
    - `duplicate_rate`: 0..1, the share of the bus's events put a second time (default
      0), among those whose source starts with `duplicate_sources` (default
      `"<project>."`); `seed`: for that choice (default 0);
    - `clock_start`: the virtual clock's start (epoch seconds; default: now);
    - `timeout_scale`: CPU seconds of a handler per second of its timeout (default 1.0);
    - `on_event`: called with each event put on the bus (not replays, not
      duplicates), from whatever thread put it: keep it short;
    - `faults`: the faults AWS really produces, injected into the run
      (`eventcraft_sandbox.faults`): a `FaultPlan`, or texts `NAME[@TARGET]=VALUE`
      drawn with `seed`; their targets are checked against the deployed functions,
      `fault_injector` applies them (`eventcraft_sandbox.fault_injection`) and
      `fault_counts` says how many were injected;
    - `concurrency_quota`: the account's Lambda concurrent executions quota (a whole
      number >= 1, default 1000, AWS's usual one): the deploy fails, as on AWS, when
      the program's reserved concurrency would leave fewer than 100 of it unreserved
      (`eventcraft_sandbox.quotas`).

    `start()` deploys and installs everything (or `with SandboxSession(...) as s:`);
    `stop()` undoes it. Only one session runs at a time (moto's state is process-wide).
    """

    # How `replay(rules=...)` expands a short rule name that is not a rule's full name.
    RULE_NAME: ClassVar[str] = "{rule}"

    def __init__(
        self,
        program: Path | Callable[[], Any],
        stack: str = "dev",
        *,
        project: str | None = None,
        config: Mapping[str, Any] | None = None,
        duplicate_rate: float = 0.0,
        duplicate_sources: str | None = None,
        seed: int | str = 0,
        clock_start: float | None = None,
        timeout_scale: float = 1.0,
        on_event: Callable[[Mapping[str, Any]], None] | None = None,
        faults: FaultPlan | Sequence[str] = (),
        concurrency_quota: int = DEFAULT_CONCURRENCY_QUOTA,
    ) -> None:
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError(f"duplicate_rate: {duplicate_rate} must be within 0..1")
        self.concurrency_quota = check_concurrency_quota(concurrency_quota)
        if project is None:
            if not isinstance(program, Path):
                raise ValueError("project: required when the program is a callable")
            project = project_name(program.parent)
        self.stack = stack
        self.project = project
        self.config_overrides = dict(config or {})
        self.program = program
        self.duplicate_rate = duplicate_rate
        self.duplicate_sources = f"{project}." if duplicate_sources is None else duplicate_sources
        self.seed = seed
        self.on_event = on_event
        self.faults = (
            faults if isinstance(faults, FaultPlan) else FaultPlan.parse(faults, seed=seed)
        )
        self.clock = VirtualClock(clock_start)
        self._clock_follows_real_time = clock_start is None
        self.scheduler = Scheduler(self.clock)
        self._timeout_scale = timeout_scale
        self._rng = random.Random(f"duplicates/{seed}")
        self._stack: contextlib.ExitStack | None = None
        self._sandbox: Sandbox | None = None
        self._deployment: SandboxDeployment | None = None
        self._runtime: _CountingRuntime | None = None
        self._delivery: Delivery | None = None
        self._clients: _DeliveryClients | None = None
        self.fault_injector: FaultInjector | None = None
        self.calls = _AwsCallCounter()
        self.events: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self._duplicated: set[str] = set()
        self._lock = threading.Lock()
        self.deploy_seconds = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SandboxSession:
        if self._stack is not None:
            return self
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(speedups())
            sandbox = stack.enter_context(Sandbox(concurrency_quota=self.concurrency_quota))
            started = time.perf_counter()
            deployment = sandbox.deploy(
                self.program, stack=self.stack, config=self._config(), project=self.project
            )
            self.deploy_seconds = time.perf_counter() - started
            # Timestamps are virtual (the handlers' too): start the run from now, not
            # from before the deploy (unless the caller fixed the clock's start).
            if self._clock_follows_real_time:
                self.clock.advance_to(round(time.time(), 3))
            self.faults.validate_targets(list(deployment.outputs.get("functions") or {}))
            self.faults.start = self.clock.now()
            runtime = _CountingRuntime(
                admin=sandbox.admin, clock=self.clock, timeout_scale=self._timeout_scale
            )
            self._clients = _DeliveryClients(sandbox)
            functions: Mapping[str, str] = deployment.outputs.get("functions") or {}
            delivery = Delivery(
                self.scheduler,
                runtime,
                deployment.records,
                self._clients,
                faults=self.faults,
                function_names={name: short for short, name in functions.items()},
            )
            runtime.event_dispatcher = delivery.dispatch_event
            runtime.durable_runner = delivery.durable.run_sync
            delivery.lambda_async.dead_letter_targets.update(_dead_letter_targets(deployment))
            stack.enter_context(runtime)
            stack.enter_context(delivery)
            # Before the call counter: a refused call is still a call the handler made.
            self.fault_injector = FaultInjector(
                self.faults,
                clock=self.clock,
                functions=functions,
                account=runtime.default_account,
            )
            stack.enter_context(self.fault_injector.installed(runtime))
            self._sandbox, self._deployment = sandbox, deployment
            self._runtime, self._delivery = runtime, delivery
            self.calls.install()
            stack.callback(self.calls.uninstall)
            self._observe_bus(delivery)
            stack.callback(self._stop_observing, delivery)
        except BaseException:
            stack.close()
            self._sandbox = self._deployment = None
            self._runtime = self._delivery = None
            raise
        self._stack = stack
        return self

    def stop(self) -> None:
        if self._stack is None:
            return
        try:
            self._stack.close()
        finally:
            self._stack = None
            self._sandbox = self._deployment = None
            self._runtime = self._delivery = None

    def __enter__(self) -> SandboxSession:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self) -> dict[str, str] | None:
        if not isinstance(self.program, Path) and not self.config_overrides:
            return None
        base: dict[str, str] = (
            stack_config(self.stack, root=self.program.parent)
            if isinstance(self.program, Path)
            else {}
        )
        for key, value in self.config_overrides.items():
            full = key if ":" in key else f"{self.project}:{key}"
            base[full] = value if isinstance(value, str) else json.dumps(value)
        return base

    # ------------------------------------------------------------------ the parts

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise RuntimeError("the session is not started: call start() or use `with`")
        return self._sandbox

    @property
    def deployment(self) -> SandboxDeployment:
        if self._deployment is None:
            raise RuntimeError("the session is not started: call start() or use `with`")
        return self._deployment

    @property
    def runtime(self) -> _CountingRuntime:
        if self._runtime is None:
            raise RuntimeError("the session is not started: call start() or use `with`")
        return self._runtime

    @property
    def delivery(self) -> Delivery:
        if self._delivery is None:
            raise RuntimeError("the session is not started: call start() or use `with`")
        return self._delivery

    @property
    def outputs(self) -> Mapping[str, Any]:
        """The stack outputs, as `pulumi stack output --json` would print them."""
        return self.deployment.outputs

    def client(self, service: str) -> Any:
        """A boto3 client on the sandbox's moto, as the administrator."""
        return self.sandbox.client(service)

    def function_name(self, function: str) -> str:
        """The deployed name of a function by its short name (`submit`), or a
        deployed name / ARN unchanged."""
        names: Mapping[str, str] = self.outputs.get("functions") or {}
        return names.get(function, function)

    def short_function_name(self, deployed: str) -> str:
        """The short name (`submit`) of a deployed function name."""
        for short, name in (self.outputs.get("functions") or {}).items():
            if name == deployed:
                return str(short)
        return deployed

    def table(self, role: str) -> str:
        """The name of the table with this role (`jobs`, `results`, ...)."""
        tables: Mapping[str, str] = self.outputs.get("tables") or {}
        if role not in tables:
            raise KeyError(f"the stack has no {role!r} table; it has {', '.join(sorted(tables))}")
        return tables[role]

    def queue_url(self, name: str) -> str:
        """The URL of a work queue (its output name) or a DLQ (its name in
        `dead_letter_queues`)."""
        queues: Mapping[str, Mapping[str, str]] = self.outputs.get("queues") or {}
        if name in queues:
            return queues[name]["url"]
        dlqs = self.dead_letter_queues()
        if name in dlqs:
            return dlqs[name]
        raise KeyError(
            f"the stack has no queue {name!r}; it has {', '.join(sorted({*queues, *dlqs}))}"
        )

    def dead_letter_queues(self) -> dict[str, str]:
        """Every DLQ of the stack -> its URL. The outputs do not say which queues are
        DLQs: a program's driver overrides this (none by default)."""
        return {}

    # ------------------------------------------------------------------ acting

    def invoke(self, function: str, payload: Any) -> InvocationResult:
        """Invoke a function synchronously (as a client's `Invoke` would)."""
        return self.runtime.invoke(self.function_name(function), payload)

    def put_event(self, detail_type: str, detail: Mapping[str, Any] | str, *, source: str) -> str:
        """Put one event on the bus (`busName`) as the administrator; returns its id.

        `detail` may be a string (e.g. invalid JSON content for a poison event)."""
        response = self.client("events").put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": detail if isinstance(detail, str) else json.dumps(detail),
                    "EventBusName": self.outputs["busName"],
                }
            ]
        )
        entry = response["Entries"][0]
        if "EventId" not in entry:
            raise RuntimeError(f"PutEvents refused the event: {entry}")
        return str(entry["EventId"])

    def send_message(self, queue: str, body: str, **params: Any) -> str:
        """Send a message to a queue (by output name or URL) as the administrator."""
        url = queue if queue.startswith("http") else self.queue_url(queue)
        response = self.client("sqs").send_message(QueueUrl=url, MessageBody=body, **params)
        return str(response["MessageId"])

    def run_until_quiet(
        self,
        *,
        max_steps: int = 1_000_000,
        max_virtual_seconds: float = 7 * 86_400,
        max_real_seconds: float = 3_600.0,
    ) -> RunReport:
        """Deliver everything that is due, moving virtual time, until nothing is left."""
        if self._clients is not None:
            self._clients.clear()
        return self.delivery.run_until_quiet(
            max_steps=max_steps,
            max_virtual_seconds=max_virtual_seconds,
            max_real_seconds=max_real_seconds,
        )

    def replay(self, start: float, end: float, *, rules: Sequence[str] | None = None) -> str:
        """Replay the archive's events of [start, end] (epoch seconds of event time) to
        the bus, to the rules named (short names, see `RULE_NAME`, or full names)
        or all of them; returns the replay's name. Run the scheduler to deliver it.

        Event time is what the producers stamped, on the virtual clock (the handlers'
        clock is virtual too: `lambda_runtime.handler_clock`), which runs ahead of the
        real one by every retry wait: take the window from the events themselves or
        from `clock`, not from `time.time()`."""
        archive = self.outputs.get("archiveName")
        if not archive:
            raise RuntimeError("the stack has no archive (outputs.archiveName)")
        rule_arns: list[str] | None = None
        if rules is not None:
            listed = self.client("events").list_rules(EventBusName=self.outputs["busName"])
            by_name = {r["Name"]: r["Arn"] for r in listed["Rules"]}
            rule_arns = []
            for rule in rules:
                found = by_name.get(rule) or by_name.get(self.RULE_NAME.format(rule=rule))
                if found is None:
                    raise KeyError(f"no rule {rule!r} on the bus; rules: {sorted(by_name)}")
                rule_arns.append(found)
        return self.delivery.replay(str(archive), start, end, rule_arns=rule_arns)

    def revoke(self, function: str, action: str) -> list[str]:
        """Remove `action` (e.g. "dynamodb:PutItem") from every inline policy of the
        function's execution role, in moto, as the administrator; returns the policies
        changed. What a missing grant in the program would do."""
        iam = self.client("iam")
        role_arn = self.client("lambda").get_function_configuration(
            FunctionName=self.function_name(function)
        )["Role"]
        role = role_arn.rsplit("/", 1)[-1]
        changed = []
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            if isinstance(document, str):
                document = json.loads(document)
            statements = document.get("Statement", [])
            kept = []
            removed = False
            for statement in statements if isinstance(statements, list) else [statements]:
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else list(actions)
                if action not in actions:
                    kept.append(statement)
                    continue
                removed = True
                actions.remove(action)
                if actions:
                    kept.append({**statement, "Action": actions})
            if removed:
                changed.append(policy_name)
                if kept:
                    iam.put_role_policy(
                        RoleName=role,
                        PolicyName=policy_name,
                        PolicyDocument=json.dumps({**document, "Statement": kept}),
                    )
                else:
                    iam.delete_role_policy(RoleName=role, PolicyName=policy_name)
        if not changed:
            raise KeyError(f"the role of {function} grants no {action!r}")
        return changed

    # ------------------------------------------------------------------ readers

    def scan(self, role: str) -> list[Item]:
        """Every item of a table (by role), as plain JSON values."""
        ddb = self.client("dynamodb")
        items: list[Item] = []
        params: dict[str, Any] = {"TableName": self.table(role), "ConsistentRead": True}
        while True:
            page = ddb.scan(**params)
            items += [from_item(i) for i in page.get("Items", [])]
            if not page.get("LastEvaluatedKey"):
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def clear_table(self, role: str) -> int:
        """Delete every item of a table (by role); returns how many."""
        ddb = self.client("dynamodb")
        name = self.table(role)
        keys = [
            k["AttributeName"] for k in ddb.describe_table(TableName=name)["Table"]["KeySchema"]
        ]
        items = self.scan(role)
        for item in items:
            ddb.delete_item(TableName=name, Key=to_item({k: item[k] for k in keys}))
        return len(items)

    def get(self, role: str, key: Mapping[str, Any]) -> Item | None:
        item = (
            self.client("dynamodb")
            .get_item(TableName=self.table(role), Key=to_item(key), ConsistentRead=True)
            .get("Item")
        )
        return None if item is None else from_item(item)

    def put_item(self, role: str, values: Mapping[str, Any]) -> None:
        """Put an item (plain JSON values) in a table (by role) as the administrator."""
        self.client("dynamodb").put_item(TableName=self.table(role), Item=to_item(values))

    def queue_depth(self, queue: str) -> int:
        """Messages in a queue (visible, in flight and delayed)."""
        url = queue if queue.startswith("http") else self.queue_url(queue)
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def dlq_depths(self) -> dict[str, int]:
        """Every DLQ's depth, by its output name."""
        return {name: self.queue_depth(url) for name, url in self.dead_letter_queues().items()}

    def dlq_messages(self, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The messages of a DLQ (receiving them; they become visible again once
        virtual time moves on): `body` (JSON-decoded when it is JSON), `attributes`
        (message attributes as strings) and `receiveCount`."""
        sqs = self.client("sqs")
        url = self.queue_url(name)
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        while len(found) < limit:
            try:
                page = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=0,
                    MessageAttributeNames=["All"],
                    AttributeNames=["All"],
                )
            except ClientError:
                break
            fresh = [m for m in page.get("Messages", []) if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                body: Any = message.get("Body", "")
                with contextlib.suppress(ValueError):
                    body = json.loads(body)
                found.append(
                    {
                        "messageId": message["MessageId"],
                        "body": body,
                        "attributes": {
                            k: v.get("StringValue")
                            for k, v in (message.get("MessageAttributes") or {}).items()
                        },
                        "receiveCount": int(
                            (message.get("Attributes") or {}).get("ApproximateReceiveCount", 0)
                        ),
                    }
                )
        return found

    # ------------------------------------------------------------------ accounting

    @property
    def invocations(self) -> dict[str, int]:
        """Invocations per function (short names), every invocation path."""
        with self.runtime._count_lock:
            counted = dict(self.runtime.invocations)
        return {self.short_function_name(k): v for k, v in sorted(counted.items())}

    @property
    def invocation_errors(self) -> dict[str, int]:
        """Invocations that ended in a function error, per function (short names)."""
        with self.runtime._count_lock:
            counted = dict(self.runtime.errors)
        return {self.short_function_name(k): v for k, v in sorted(counted.items())}

    @property
    def load_errors(self) -> dict[str, str]:
        """Functions whose code, as deployed, could not load (`LOAD_ERRORS`: Lambda's
        init errors, or a module not found while the handler ran, e.g. one imported
        lazily that neither the runtime nor the layers have), with the handler and the
        first such error, by short name: `{"worker": "handlers.worker.handler:
        Runtime.ImportModuleError: Unable to import module 'handlers.worker': No module
        named 'requests'"}`."""
        with self.runtime._count_lock:
            failed = dict(self.runtime.load_errors)
        return {self.short_function_name(k): v for k, v in sorted(failed.items())}

    @property
    def fault_counts(self) -> dict[str, int]:
        """Faults injected so far, by name (every fault asked for, 0 included)."""
        return self.faults.snapshot()

    @property
    def aws_calls(self) -> int:
        """AWS API calls made by handler code (see `_AwsCallCounter`)."""
        return self.calls.total

    def aws_calls_by_function(self) -> dict[str, int]:
        with self.calls._lock:
            counted = dict(self.calls.by_function)
        return {self.short_function_name(k): v for k, v in sorted(counted.items())}

    # -- the bus, observed (and duplicated) ---------------------------------------

    def _observe_bus(self, delivery: Delivery) -> None:
        bridge = delivery.eventbridge
        original = bridge.route
        bus_name = str(self.deployment.outputs.get("busName") or "")

        def route(
            backend: Any, bus: Any, event: dict[str, Any], *, rule_arns: set[str] | None = None
        ) -> int:
            if getattr(bus, "name", None) == bus_name and "replay-name" not in event:
                self._observed(event)
            return original(backend, bus, event, rule_arns=rule_arns)

        bridge.route = route  # type: ignore[method-assign]

    @staticmethod
    def _stop_observing(delivery: Delivery) -> None:
        with contextlib.suppress(AttributeError):
            del delivery.eventbridge.route

    def _observed(self, event: Mapping[str, Any]) -> None:
        detail = event.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        detail_type = str(event.get("detail-type", ""))
        event_id = str(detail.get("eventId") or event.get("id"))
        with self._lock:
            if event_id in self._duplicated:
                self.duplicates[detail_type] += 1
                return  # the second copy of an event this session duplicated
            self.events[detail_type] += 1
            self._record_event(detail_type, detail, event_id)
            duplicate = (
                self.duplicate_rate > 0
                and str(event.get("source", "")).startswith(self.duplicate_sources)
                and self._rng.random() < self.duplicate_rate
            )
            if duplicate:
                self._duplicated.add(event_id)
                delay = self._rng.uniform(*DUPLICATE_DELAY_SECONDS)
        if self.on_event is not None:
            self.on_event(event)
        if duplicate:
            entry = {
                "Source": str(event["source"]),
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": self.outputs["busName"],
            }
            self.scheduler.call_later(
                delay, f"duplicate {detail_type}", lambda: self._put_again(entry)
            )

    def _record_event(self, detail_type: str, detail: Mapping[str, Any], event_id: str) -> None:
        """Called for each event observed on the bus (not duplicates), with the
        session's lock held: a driver's own bookkeeping (nothing by default)."""

    def _put_again(self, entry: Mapping[str, Any]) -> None:
        response = self.client("events").put_events(Entries=[dict(entry)])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"a duplicate was refused by PutEvents: {response['Entries']}")


def _dead_letter_targets(deployment: SandboxDeployment) -> dict[str, str]:
    """Function ARN -> its DeadLetterConfig target, which moto does not keep."""
    targets: dict[str, str] = {}
    for resource in deployment.resources:
        if resource.typ != "aws:lambda/function:Function" or not resource.arn:
            continue
        config = resource.inputs.get("deadLetterConfig") or {}
        target = config.get("targetArn") if isinstance(config, Mapping) else None
        if isinstance(target, str) and target:
            targets[resource.arn] = target
    return targets
