"""One object that runs the whole sandbox for a stack: `SandboxSession`.

    with SandboxSession("dev") as session:           # deploy + runtime + delivery
        session.seed_stock({"sku-red-mug": 10})
        placed = session.place_order("customer-1", [("sku-red-mug", 2, 1250)])
        session.run_until_quiet()                      # deliver it all, in virtual time
        session.order(placed["orderId"])["status"]     # "COMPLETED"
        session.invariants()                           # {"inventory_conserved": True, ...}

It is the wiring of the sandbox's parts (the `Sandbox` with the program deployed into
it, the `LambdaRuntime` running the handlers with their roles, the `Delivery` with AWS's
semantics on a virtual clock), plus what a user of the sandbox needs around them:

* stack config overrides (`config`, bare keys of the `order-saga:` namespace, merged
  over `Pulumi.<stack>.yaml`): the saga mode, the simulated providers' failure knobs;
* seeding (stock, customers), acting as a client (`place_order`, `invoke`,
  `put_event`, `send_message`), readers of the tables and queues the stack outputs
  name, replay from the archive, and removing a grant from a function's role (to
  prove the role is what AWS would enforce);
* accounting: invocations per function, AWS calls made by the handlers, events put on
  the order bus per detail-type; optional duplicate deliveries (`duplicate_rate`):
  a share of the bus's events is put a second time, later, with the same detail (the
  same `eventId`), as an at-least-once publisher or bus would;
* `invariants()`: what must hold once the sandbox is quiet (the demo's verdict).

The sandbox has no code path of its own for the saga: the session only deploys the
program, calls its entry function as a client would, and reads what the handlers wrote.

Performance: `speedups()` (on while a session runs) removes what made long runs slow
in moto and botocore without changing what any call does.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from unittest import mock

import botocore.loaders
import botocore.session
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import BotocoreStubber

from sandbox.clock import RunReport, Scheduler, VirtualClock
from sandbox.delivery import Delivery
from sandbox.lambda_runtime import InvocationResult, LambdaRuntime
from sandbox.moto_deploy import Sandbox, SandboxDeployment
from sandbox.stack_files import ROOT, stack_config

__all__ = [
    "FINAL_STATUSES",
    "PROGRAM",
    "InvariantReport",
    "InvocationFailedError",
    "SandboxSession",
]

PROGRAM: Final = ROOT / "__main__.py"
NAMESPACE: Final = "order-saga"
FINAL_STATUSES: Final = frozenset({"COMPLETED", "CANCELLED"})
OUTCOME_EVENTS: Final = {"OrderCompleted": "COMPLETED", "OrderCancelled": "CANCELLED"}
# Events the order bus carries from the system's own producers.
SYSTEM_SOURCE_PREFIX: Final = "order-saga."
# Duplicates arrive within this many virtual seconds after the original.
DUPLICATE_DELAY_SECONDS: Final = (0.5, 5.0)

Item = dict[str, Any]
# Records a broken invariant: (name, example).
_Fail = Callable[[str, str], None]


class InvocationFailedError(RuntimeError):
    """A function the session invoked as a client returned a function error."""

    def __init__(self, function: str, result: InvocationResult) -> None:
        super().__init__(f"{function}: {result.error_type}: {result.error_message}")
        self.function = function
        self.result = result


@dataclass(frozen=True)
class InvariantReport:
    """`results`: invariant name -> holds; `problems`: for a failed one, examples of
    what breaks it (at most a few, each naming the order or SKU)."""

    results: dict[str, bool]
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.results.values())


# --------------------------------------------------------------------------- helpers

_DESERIALIZER = TypeDeserializer()
_SERIALIZER = TypeSerializer()


def _plain(value: Any) -> Any:
    """boto3's deserialised values as JSON values (Decimal -> int / float, sets -> lists)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def _from_item(item: Mapping[str, Any]) -> Item:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def _to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    converted = json.loads(json.dumps(values), parse_float=Decimal)
    return {k: _SERIALIZER.serialize(v) for k, v in converted.items()}


class _UniquePaths(list[str]):
    """A loader's search paths shared by many sessions: boto3 appends its own data
    path at every session's creation; once is enough."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)

    def insert(self, index: Any, path: str) -> None:
        if path not in self:
            super().insert(index, path)


@contextlib.contextmanager
def speedups() -> Iterator[None]:
    """Make a long sandbox run fast, without changing what any call does (restored on
    exit). Each of these was most of a demo's time at some point:

    - botocore: every session created inside shares one `Loader` per data path (each
      Lambda container and Step Functions task creates its own session, and loading the
      service models costs ~0.1 s a client); the models are read-only;
    - moto DynamoDB: TransactWriteItems deep-copies every table it touches (items and
      stream records) to roll back a failure: O(table size) per transaction, quadratic
      over a run. Here it is rolled back item by item (`_transact_write_items`);
    - moto Step Functions: each execution parses the state machine's definition with
      antlr (~0.3 s); the parse tree of a definition is kept (a fresh program is built
      from it for every execution, so no execution shares state with another);
    - moto's request dispatch lists the methods of the service's response class with
      `inspect.getmembers` on every request; the list is kept per class;
    - moto DynamoDB: its generic response serializer walks the output shape of every
      attribute value (6x slower than `json.dumps` on item-heavy responses); the
      data-plane results, already in DynamoDB's JSON wire format, are dumped as they
      are (`_dynamodb_serialized`; tests/sandbox/test_speedups.py compares both).
    """
    from moto.core import responses as moto_responses
    from moto.core.utils import method_names_from_class
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.parser.asl.parse import asl_parser

    loaders: dict[str | None, Any] = {}
    lock = threading.Lock()

    def create_loader(search_path_string: str | None = None) -> Any:
        with lock:
            loader = loaders.get(search_path_string)
            if loader is None:
                loader = botocore.loaders.create_loader(search_path_string)
                paths = loader.search_paths  # botocore keeps them in `_search_paths`
                loader._search_paths = _UniquePaths(paths)  # type: ignore[attr-defined]
                loaders[search_path_string] = loader
            return loader

    method_names: dict[type, list[str]] = {}

    def cached_method_names(clazz: Any) -> list[str]:
        names = method_names.get(clazz)
        if names is None:
            names = method_names[clazz] = method_names_from_class(clazz)
        return list(names)

    with contextlib.ExitStack() as stack:
        patch = stack.enter_context
        patch(mock.patch.object(botocore.session, "create_loader", create_loader))
        patch(mock.patch.object(moto_responses, "method_names_from_class", cached_method_names))
        patch(mock.patch.object(dynamodb_models, "copy", _TableCopies()))
        original_transact = dynamodb_models.DynamoDBBackend.transact_write_items
        patch(
            mock.patch.object(
                dynamodb_models.DynamoDBBackend,
                "transact_write_items",
                functools.partialmethod(_transact_write_items, original_transact),
            )
        )
        patch(
            mock.patch.object(
                DynamoHandler,
                "serialized",
                functools.partialmethod(_dynamodb_serialized, DynamoHandler.serialized),
            )
        )
        parser = asl_parser.AmazonStateLanguageParser
        patch(mock.patch.object(parser, "parse", staticmethod(_cached_asl_parse(parser.parse))))
        yield


# DynamoDB operations whose results are items (plain dicts in the wire format).
_DYNAMODB_DATA_PLANE: Final = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "TransactWriteItems",
        "TransactGetItems",
        "BatchGetItem",
        "BatchWriteItem",
    }
)


def _wire_bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _as_floats(value: Any) -> Any:
    """Every number in `value` as a float (ConsumedCapacity's units are doubles)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_floats(v) for v in value]
    return value


def _dynamodb_serialized(handler: Any, original: Callable[..., Any], action_result: Any) -> Any:
    """moto's `DynamoHandler.serialized`, by `json.dumps` for the data-plane results
    (binary values base64 and capacity units as floats, as the serializer writes them);
    errors and other operations go to moto's serializer."""
    result = action_result.result
    if not isinstance(result, dict) or handler._get_action() not in _DYNAMODB_DATA_PLANE:
        return original(handler, action_result)
    if "ConsumedCapacity" in result:
        result = {**result, "ConsumedCapacity": _as_floats(result["ConsumedCapacity"])}
    try:
        body = json.dumps(result, default=_wire_bytes)
    except TypeError:
        return original(handler, action_result)
    headers = {"Content-Type": "application/x-amz-json-1.0", **handler.response_headers}
    return 200, headers, body


def _cached_asl_parse(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`AmazonStateLanguageParser.parse` keeping each definition's antlr parse tree; the
    program (evaluation components, which hold per-execution state) is built anew."""
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    trees: dict[str, Any] = {}
    lock = threading.Lock()

    def cached(definition: str) -> Any:
        with lock:
            tree = trees.get(definition)
        if tree is None:
            _, tree = parse(definition)  # raises for an invalid definition: not kept
            with lock:
                trees[definition] = tree
        return Preprocessor().visit(tree), tree

    return cached


class _TableCopies:
    """`copy` for moto's DynamoDB backend module (see `speedups`): a "deep copy" of a
    table is the table itself (`_transact_write_items` undoes a failed transaction
    item by item instead); anything else is copied as before."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _transact_write_items(
    backend: Any, original: Callable[..., None], transact_items: list[dict[str, Any]]
) -> None:
    """moto's TransactWriteItems, rolled back by item: before it runs, a copy of each item
    the transaction names (or None: absent) and the length of each touched table's
    stream; if it fails, those items are put back and the stream records it appended
    are dropped, so a cancelled transaction leaves no trace (as in AWS, and as moto's
    whole-table copy did)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved: list[tuple[Any, Any, Any, Any]] = []
    streams: dict[int, tuple[Any, int]] = {}
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            source = op["Item"] if "Item" in op else op["Key"]
            hash_key = DynamoType(source[table.hash_key_attr])
            range_key = DynamoType(source[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(hash_key, range_key)
        except Exception:  # noqa: S112 - a malformed operation: the transaction reports it
            continue
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
        if table.stream_shard is not None:
            streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
    try:
        original(backend, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(saved):
            if range_key is None:
                if item is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = item
            elif item is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = item
        for shard, length in streams.values():
            del shard.items[length:]
        raise


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
    API, Step Functions tasks, the delivery's pollers and rule targets)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def _invoke(self, spec: Any, event: Any, invocation_type: str, invoked_arn: str) -> Any:
        outcome = super()._invoke(spec, event, invocation_type, invoked_arn)
        with self._count_lock:
            self.invocations[spec.name] += 1
            if outcome.result.error_type:
                self.errors[spec.name] += 1
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


class SandboxSession:
    """The whole sandbox for one stack (see the module docstring).

    - `stack`: reads `Pulumi.<stack>.yaml` ("dev" by default);
    - `config`: overrides of the stack's `order-saga:` keys (bare names, e.g.
      `{"sagaMode": "orchestration", "paymentTransientFailureRate": "0.2"}`);
    - `program`: the program file (default `__main__.py`) or a callable;
    - `duplicate_rate`: 0..1, the share of the order bus's events put a second time
      (default 0); `seed`: for that choice (default 0);
    - `clock_start`: the virtual clock's start (epoch seconds; default: now);
    - `timeout_scale`: real seconds per second of function timeout (default 1.0);
    - `on_event`: called with each event put on the order bus (not replays, not
      duplicates), from whatever thread put it: keep it short.

    `start()` deploys and installs everything (or `with SandboxSession(...) as s:`);
    `stop()` undoes it. Only one session runs at a time (moto's state is process-wide).
    """

    def __init__(
        self,
        stack: str = "dev",
        *,
        config: Mapping[str, Any] | None = None,
        program: Path | Callable[[], Any] = PROGRAM,
        duplicate_rate: float = 0.0,
        seed: int | str = 0,
        clock_start: float | None = None,
        timeout_scale: float = 1.0,
        on_event: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError(f"duplicate_rate: {duplicate_rate} must be within 0..1")
        self.stack = stack
        self.config_overrides = dict(config or {})
        self.program = program
        self.duplicate_rate = duplicate_rate
        self.seed = seed
        self.on_event = on_event
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
        self.calls = _AwsCallCounter()
        self.events: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.outcomes: dict[str, str] = {}  # orderId -> COMPLETED / CANCELLED (events)
        self.payment_events: dict[str, set[str]] = {}  # orderId -> PaymentProcessed ids
        self.initial_stock: dict[str, int] = {}
        self.placed: list[str] = []  # order ids, in placing order
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
            sandbox = stack.enter_context(Sandbox())
            started = time.perf_counter()
            deployment = sandbox.deploy(self.program, stack=self.stack, config=self._config())
            self.deploy_seconds = time.perf_counter() - started
            # The handlers stamp events with the real time: start the run from it, not
            # from before the deploy (unless the caller fixed the clock's start).
            if self._clock_follows_real_time:
                self.clock.advance_to(round(time.time(), 3))
            runtime = _CountingRuntime(
                admin=sandbox.admin, clock=self.clock, timeout_scale=self._timeout_scale
            )
            self._clients = _DeliveryClients(sandbox)
            delivery = Delivery(self.scheduler, runtime, deployment.records, self._clients)
            runtime.event_dispatcher = delivery.dispatch_event
            delivery.lambda_async.dead_letter_targets.update(_dead_letter_targets(deployment))
            stack.enter_context(runtime)
            stack.enter_context(delivery)
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
            full = key if ":" in key else f"{NAMESPACE}:{key}"
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
        """The deployed name of a function by its short name (`place-order`), or a
        deployed name / ARN unchanged."""
        names: Mapping[str, str] = self.outputs.get("functions") or {}
        return names.get(function, function)

    def short_function_name(self, deployed: str) -> str:
        """The short name (`place-order`) of a deployed function name."""
        for short, name in (self.outputs.get("functions") or {}).items():
            if name == deployed:
                return str(short)
        return deployed

    def table(self, role: str) -> str:
        """The name of the table with this role (`orders`, `inventory`, ...)."""
        tables: Mapping[str, str] = self.outputs.get("tables") or {}
        if role not in tables:
            raise KeyError(f"the stack has no {role!r} table; it has {', '.join(sorted(tables))}")
        return tables[role]

    def queue_url(self, name: str) -> str:
        """The URL of a work queue (`reserve`, `payments`, ...) or a DLQ (its output
        name, e.g. `pay-sqs` or `reserve-dlq`)."""
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
        """Every DLQ the outputs name -> its URL (names as `python -m ops dlq list`)."""
        from ops.outputs import parse

        return {d.name: d.url for d in parse(self.outputs, origin="sandbox").all_dlqs()}

    # ------------------------------------------------------------------ seeding

    def seed_stock(self, stock: Mapping[str, int]) -> None:
        """Put `available` units of each SKU in the inventory table (as an operator
        does: `domain.inventory.stock_item`), and remember it as the initial stock."""
        from components.order_saga_wiring import import_code_module

        stock_item = import_code_module("domain.inventory").stock_item
        ddb = self.client("dynamodb")
        for sku, available in stock.items():
            ddb.put_item(
                TableName=self.table("inventory"), Item=_to_item(stock_item(sku, int(available)))
            )
            self.initial_stock[sku] = int(available)

    def seed_customers(self, customers: Iterable[Mapping[str, Any]]) -> None:
        """Put customer records (`customerId`, `tier`, `name`, `region`,
        `creditLimitCents`: see domain.enrichment) in the customers table."""
        ddb = self.client("dynamodb")
        for customer in customers:
            ddb.put_item(TableName=self.table("customers"), Item=_to_item(customer))

    # ------------------------------------------------------------------ acting

    def invoke(self, function: str, payload: Any) -> InvocationResult:
        """Invoke a function synchronously (as a client's `Invoke` would)."""
        return self.runtime.invoke(self.function_name(function), payload)

    def place_order(
        self,
        customer_id: str,
        items: Sequence[tuple[str, int, int] | Mapping[str, Any]],
        *,
        client_request_id: str | None = None,
        currency: str | None = None,
    ) -> dict[str, Any]:
        """Place an order through the entry function (`place-order`), as a client does.

        `items`: (sku, quantity, unitPriceCents) tuples or request lines. Returns the
        function's answer (`orderId`, `status`, `created`, `totalCents`, `currency`);
        raises InvocationFailedError when it refuses the request.
        """
        lines = [
            dict(line)
            if isinstance(line, Mapping)
            else {"sku": line[0], "quantity": line[1], "unitPriceCents": line[2]}
            for line in items
        ]
        request: dict[str, Any] = {
            "clientRequestId": client_request_id or f"session-{len(self.placed) + 1}",
            "customerId": customer_id,
            "items": lines,
        }
        if currency:
            request["currency"] = currency
        return self.submit_order(request)

    def submit_order(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Invoke `place-order` with a request payload as is (see `place_order`)."""
        result = self.invoke("place-order", dict(request))
        if result.error_type:
            raise InvocationFailedError("place-order", result)
        answer = dict(result.payload)
        if answer.get("created"):
            with self._lock:
                self.placed.append(str(answer["orderId"]))
        return answer

    def order_status(self, order_id: str) -> dict[str, Any]:
        """The `order-status` query function's answer for an order."""
        result = self.invoke("order-status", {"orderId": order_id})
        if result.error_type:
            raise InvocationFailedError("order-status", result)
        return dict(result.payload)

    def put_event(
        self, detail_type: str, detail: Mapping[str, Any] | str, *, source: str | None = None
    ) -> str:
        """Put one event on the order bus as the administrator; returns its id.

        `source` defaults to the contract's source for `detail_type`; `detail` may be
        a string (e.g. invalid JSON content for a poison event)."""
        if source is None:
            from components.order_saga_wiring import import_code_module

            source = import_code_module("contracts").model_for(detail_type).SOURCE
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
        the order bus, to the rules named (short names like `history`, or full names)
        or all of them; returns the replay's name. Run the scheduler to deliver it.

        Event time is what the producers stamped: the handlers read the real clock, not
        the virtual one (which runs ahead by every retry wait), so take the window from
        the events themselves (e.g. the read model's `firstEventAt`/`lastEventAt`)."""
        archive = self.outputs.get("archiveName")
        if not archive:
            raise RuntimeError("the stack has no archive (outputs.archiveName)")
        rule_arns: list[str] | None = None
        if rules is not None:
            listed = self.client("events").list_rules(EventBusName=self.outputs["busName"])
            by_name = {r["Name"]: r["Arn"] for r in listed["Rules"]}
            rule_arns = []
            for rule in rules:
                found = by_name.get(rule) or next(
                    (arn for name, arn in by_name.items() if name == f"saga-{rule}-rule"), None
                )
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
            items += [_from_item(i) for i in page.get("Items", [])]
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
            ddb.delete_item(TableName=name, Key=_to_item({k: item[k] for k in keys}))
        return len(items)

    def get(self, role: str, key: Mapping[str, Any]) -> Item | None:
        item = (
            self.client("dynamodb")
            .get_item(TableName=self.table(role), Key=_to_item(key), ConsistentRead=True)
            .get("Item")
        )
        return None if item is None else _from_item(item)

    def order(self, order_id: str) -> Item | None:
        """The order's record in the orders table (its saga state), or None."""
        return self.get("orders", {"pk": f"order#{order_id}"})

    def orders(self) -> dict[str, Item]:
        """Every order record by order id."""
        return {
            str(i["orderId"]): i for i in self.scan("orders") if str(i["pk"]).startswith("order#")
        }

    def stock(self) -> dict[str, int]:
        """Available units by SKU."""
        return {
            str(i["sku"]): int(i["available"])
            for i in self.scan("inventory")
            if str(i["pk"]).startswith("sku#")
        }

    def reservations(self) -> dict[str, Item]:
        """Reservation decisions by order id."""
        return {
            str(i["orderId"]): i
            for i in self.scan("inventory")
            if str(i["pk"]).startswith("reservation#")
        }

    def payments(self) -> dict[str, Item]:
        """Payment records by order id."""
        return {str(i["orderId"]): i for i in self.scan("payments") if "orderId" in i}

    def stored_events(self) -> dict[str, list[Item]]:
        """The event store's events by aggregate (order) id, in version order."""
        by_order: dict[str, list[Item]] = {}
        for item in self.scan("events"):
            by_order.setdefault(str(item["aggregateId"]), []).append(item)
        for events in by_order.values():
            events.sort(key=lambda e: int(e["version"]))
        return by_order

    def read_model(self) -> dict[str, Item]:
        """The order history read model's rows by order id."""
        return {str(i["orderId"]): i for i in self.scan("history")}

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
    def aws_calls(self) -> int:
        """AWS API calls made by handler code (see `_AwsCallCounter`)."""
        return self.calls.total

    def aws_calls_by_function(self) -> dict[str, int]:
        with self.calls._lock:
            counted = dict(self.calls.by_function)
        return {self.short_function_name(k): v for k, v in sorted(counted.items())}

    # -- the order bus, observed (and duplicated) ---------------------------------

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
            order_id = detail.get("orderId")
            if isinstance(order_id, str):
                if detail_type in OUTCOME_EVENTS:
                    self.outcomes.setdefault(order_id, OUTCOME_EVENTS[detail_type])
                if detail_type == "PaymentProcessed":
                    self.payment_events.setdefault(order_id, set()).add(event_id)
            duplicate = (
                self.duplicate_rate > 0
                and str(event.get("source", "")).startswith(SYSTEM_SOURCE_PREFIX)
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

    def _put_again(self, entry: Mapping[str, Any]) -> None:
        response = self.client("events").put_events(Entries=[dict(entry)])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"a duplicate was refused by PutEvents: {response['Entries']}")

    # ------------------------------------------------------------------ invariants

    def invariants(self) -> InvariantReport:
        """What must hold once the sandbox is quiet, with examples of what breaks it:

        - every_order_final: every order placed is COMPLETED or CANCELLED;
        - one_outcome_event_per_order: each final order published exactly the outcome
          event of its status (OrderCompleted / OrderCancelled), once;
        - inventory_conserved: per seeded SKU, available + reserved (held by orders
          not shipped) + shipped == the initial stock, and available >= 0;
        - cancelled_orders_released_stock: no reservation of a CANCELLED order holds
          stock;
        - no_double_charge: at most one PaymentProcessed per order, and never more
          charged than the order's total;
        - refunds_match_charges_of_cancelled_orders: a CANCELLED order got back all it
          was charged (payment REFUNDED, or never charged); a COMPLETED order was charged
          its total and refunded nothing;
        - read_model_matches_event_store: each order's row in the history read model
          equals the fold of its events in the event store (domain.history.apply).
        """
        problems: dict[str, list[str]] = {}

        def fail(name: str, text: str) -> None:
            problems.setdefault(name, []).append(text)

        orders = self.orders()
        self._check_outcomes(orders, fail)
        self._check_inventory(orders, fail)
        self._check_payments(orders, fail)
        for text in self._read_model_differences():
            fail("read_model_matches_event_store", text)

        names = (
            "every_order_final",
            "one_outcome_event_per_order",
            "inventory_conserved",
            "cancelled_orders_released_stock",
            "no_double_charge",
            "refunds_match_charges_of_cancelled_orders",
            "read_model_matches_event_store",
        )
        return InvariantReport(
            results={name: name not in problems for name in names},
            problems={name: texts[:5] for name, texts in problems.items()},
        )

    def _check_outcomes(self, orders: Mapping[str, Item], fail: _Fail) -> None:
        """every_order_final, one_outcome_event_per_order."""
        for order_id in self.placed:
            record = orders.get(order_id)
            status = None if record is None else str(record.get("status"))
            if status not in FINAL_STATUSES:
                fail("every_order_final", f"order {order_id} is {status or 'missing'}")
        for order_id, record in orders.items():
            status = str(record.get("status"))
            if status in FINAL_STATUSES and self.outcomes.get(order_id) != status:
                fail(
                    "one_outcome_event_per_order",
                    f"order {order_id} is {status}; outcome event: "
                    f"{self.outcomes.get(order_id) or 'none'}",
                )
        with self._lock:
            outcome_counts = Counter(self.outcomes.values())
            completed = self.events.get("OrderCompleted", 0)
            cancelled = self.events.get("OrderCancelled", 0)
        if (outcome_counts["COMPLETED"], outcome_counts["CANCELLED"]) != (completed, cancelled):
            fail(
                "one_outcome_event_per_order",
                f"{completed} OrderCompleted and {cancelled} OrderCancelled events for "
                f"{outcome_counts['COMPLETED']} + {outcome_counts['CANCELLED']} orders",
            )

    def _check_inventory(self, orders: Mapping[str, Item], fail: _Fail) -> None:
        """inventory_conserved, cancelled_orders_released_stock."""
        stock = self.stock()
        held: Counter[str] = Counter()
        shipped: Counter[str] = Counter()
        for order_id, reservation in self.reservations().items():
            if reservation.get("status") != "RESERVED":
                continue
            status = str((orders.get(order_id) or {}).get("status"))
            for line in reservation.get("items", ()):
                counter = shipped if status == "COMPLETED" else held
                counter[str(line["sku"])] += int(line["quantity"])
            if status == "CANCELLED":
                fail("cancelled_orders_released_stock", f"order {order_id} still holds stock")
        for sku, initial in sorted(self.initial_stock.items()):
            available = stock.get(sku, 0)
            if available < 0 or available + held[sku] + shipped[sku] != initial:
                fail(
                    "inventory_conserved",
                    f"{sku}: available {available} + reserved {held[sku]} + shipped "
                    f"{shipped[sku]} != initial {initial}",
                )

    def _check_payments(self, orders: Mapping[str, Item], fail: _Fail) -> None:
        """no_double_charge, refunds_match_charges_of_cancelled_orders."""
        payments = self.payments()
        with self._lock:
            payment_events = {k: set(v) for k, v in self.payment_events.items()}
        for order_id, ids in payment_events.items():
            if len(ids) > 1:
                fail("no_double_charge", f"order {order_id}: {len(ids)} PaymentProcessed events")
        for order_id, record in orders.items():
            status = str(record.get("status"))
            payment = payments.get(order_id) or {}
            state = payment.get("status")
            charged = int(payment.get("chargedCents", 0))
            refunded = int(payment.get("refundedCents", 0))
            total = int(record.get("totalCents", -1))
            if charged > total:
                fail("no_double_charge", f"order {order_id}: charged {charged} > total {total}")
            if status == "CANCELLED" and (state == "CHARGED" or refunded != charged):
                fail(
                    "refunds_match_charges_of_cancelled_orders",
                    f"cancelled order {order_id}: payment {state}, charged {charged}, "
                    f"refunded {refunded}",
                )
            if status == "COMPLETED" and (state != "CHARGED" or charged != total or refunded):
                fail(
                    "refunds_match_charges_of_cancelled_orders",
                    f"completed order {order_id}: payment {state}, charged {charged} of "
                    f"{total}, refunded {refunded}",
                )

    def _read_model_differences(self) -> list[str]:
        """Orders whose read model row is not the fold of their stored events."""
        from components.order_saga_wiring import import_code_module

        history = import_code_module("domain.history")
        eventstore = import_code_module("eventkit.eventstore")
        differences: list[str] = []
        rows = self.read_model()
        stored = self.stored_events()
        for order_id, items in sorted(stored.items()):
            state: Any = history.initial_state()
            for item in items:
                state = history.apply(state, eventstore.stored_event_from_image(item))
            row = dict(rows.get(order_id) or {})
            version = row.pop("version", 0)
            row.pop("orderId", None)
            if int(version) != int(items[-1]["version"]) or row != _plain(state):
                differences.append(
                    f"order {order_id}: read model at version {version}, event store at "
                    f"{items[-1]['version']}"
                    + ("" if row == _plain(state) else " (the rows differ)")
                )
        for order_id in sorted(set(rows) - set(stored)):
            differences.append(f"order {order_id}: a read model row without events")
        return differences


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
