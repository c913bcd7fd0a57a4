"""Benchmark 5: the sandbox: moto with and without `eventcraft_sandbox.speedups.speedups()`, and
the whole demo end to end.

`speedups()` (on while a `SandboxSession` runs) patches moto and botocore for speed
without changing any answer (its docstring lists what). Three parts:

* `dynamodb_calls`: the time of one DynamoDB data-plane call against moto, plain and
  inside `speedups()`: PutItem of an event-store item, UpdateItem of a read-model row
  with `ReturnValues=ALL_NEW`, and a Query returning a partition of `partition_items`
  event items. Every item carries a nested map (the event's data: customer, lines,
  totals, metadata; the row's timeline), ~1-2 KB of DynamoDB JSON. Rounds interleave
  the two modes (which goes first alternates); each sample is the mean of `loops`
  back-to-back calls, GC paused. The calls are idempotent (fixed keys and values), so
  every answer of a call must be the same in both modes: asserted, and recorded.
* `transactions`: one TransactWriteItems (an outbox-style pair: Put of an outbox row,
  conditional Update of the order row) on tables already holding `table_sizes` items,
  plain and inside `speedups()`. moto deep-copies every table a transaction names, once
  per action, to roll back a failure: its cost grows with the table. `speedups()`
  rolls back item by item instead. The pair overwrites fixed keys, so a table's size
  stays put. A cancelled transaction (a failed condition) is also run in both modes:
  same error, same cancellation reasons, same table afterwards.
* `demo`: `order_saga.sandbox.demo.run_demo(DemoOptions(orders=N))` (deploy the stack into moto,
  seed, place N orders in a burst, run until quiet, check the invariants) for each N of
  `demo_orders`, and for each N of `plain_demo_orders` the same demo with `speedups`
  replaced by a no-op (`eventcraft_sandbox.session.speedups` patched for that run: the session
  looks the name up when it starts). First an unmeasured warm-up demo of
  `warmup_orders` (the process's first demo also pays imports and first-use setup),
  then one run each (a run is 0.5-1 minute), in the order: sped-up N, plain N (for the
  N compared), then the other sizes. Wall seconds, CPU seconds (`time.process_time`,
  every thread of the process), split at the end of the deploy (an `OrderSagaSession`
  subclass notes the CPU clock when `start()` returns); AWS calls made by the
  handlers, outcomes and the invariants. Order ids are uuid4s,
  so which orders fail transiently (and the work done) differs between runs: compare
  the CPU per AWS call too, not only the totals.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from unittest import mock

from bench import common

EVENTS_TABLE = "bench-events"
HISTORY_TABLE = "bench-history"
AGGREGATE = "order-bench-0001"
MODES = ("plain", "speedups")
# What a demo run measures; each has a plain / speedups ratio.
DEMO_MEASURES = (
    "wall_seconds",
    "deploy_seconds",
    "run_seconds",
    "cpu_seconds",
    "cpu_deploy_seconds",
    "cpu_after_deploy_seconds",
    "cpu_per_aws_call_ms",
)


# ------------------------------------------------------------------------ items


def _order_data(n: int) -> dict[str, Any]:
    """A contract event's data, as the event store keeps it (a nested map)."""
    return {
        "orderId": AGGREGATE,
        "eventId": f"event-{n:06d}",
        "customer": {
            "customerId": f"customer-{n % 20:03d}",
            "tier": ("standard", "gold", "platinum")[n % 3],
            "region": ("eu-west", "us-east", "ap-south")[n % 3],
        },
        "items": [
            {"sku": sku, "quantity": 1 + (n + k) % 3, "unitPriceCents": 1250 * (k + 1)}
            for k, sku in enumerate(("sku-mug", "sku-kettle", "sku-grinder"))
        ],
        "totals": {"subtotalCents": 9000 + n % 97, "taxCents": 720, "currency": "USD"},
        "shippingAddress": {
            "line1": f"{n % 900 + 100} Main Street",
            "city": "Springfield",
            "postalCode": "12345",
            "country": "US",
        },
        "metadata": {
            "correlationId": f"corr-{n:06d}",
            "causationId": f"cause-{n:06d}",
            "source": "order-saga.orders",
            "schemaVersion": 1,
        },
    }


def _wire(values: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in values.items()}


def event_item(aggregate: str, version: int) -> dict[str, Any]:
    """An event store item (DynamoDB JSON): key, type, time and the event's data."""
    return _wire(
        {
            "aggregateId": aggregate,
            "version": version,
            "type": ("OrderPlaced", "InventoryReserved", "PaymentProcessed")[version % 3],
            "occurredAt": f"2026-01-01T00:{version // 60 % 60:02d}:{version % 60:02d}Z",
            "data": _order_data(version),
        }
    )


def history_row() -> dict[str, Any]:
    """A read model row: status, totals and a timeline of ten entries."""
    return _wire(
        {
            "aggregateId": "history-row",
            "version": 0,
            "status": "PENDING",
            "totals": {"chargedCents": 0, "refundedCents": 0, "currency": "USD"},
            "timeline": [
                {"type": "OrderPlaced", "at": f"2026-01-01T00:00:{k:02d}Z", "version": k + 1}
                for k in range(10)
            ],
            "lastEvent": _order_data(0),
        }
    )


def _seed(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        while requests:
            unprocessed = client.batch_write_item(RequestItems={table: requests})
            requests = unprocessed.get("UnprocessedItems", {}).get(table, [])


def _client() -> Any:
    import boto3
    from botocore.config import Config

    # As eventcraft.clients creates it; a session of its own.
    return boto3.session.Session().client("dynamodb", config=Config(retries={"mode": "standard"}))


def _answer(call: Callable[[], Any]) -> dict[str, Any]:
    """A call's parsed answer (or its error), without the per-request metadata."""
    from botocore.exceptions import ClientError

    try:
        answer = dict(call())
    except ClientError as exc:
        answer = dict(exc.response)
    answer.pop("ResponseMetadata", None)
    return answer


def _mode(name: str) -> contextlib.AbstractContextManager[Any]:
    from eventcraft_sandbox.speedups import speedups

    return speedups() if name == "speedups" else contextlib.nullcontext()


def _wire_bytes(item: dict[str, Any]) -> int:
    return len(json.dumps(item, separators=(",", ":")).encode())


def _loop(call: Callable[[], Any], loops: int) -> tuple[float, Any]:
    """Seconds per call over `loops` back-to-back calls (GC paused), and the last answer."""
    answer: Any = None

    def many() -> None:
        nonlocal answer
        for _ in range(loops):
            answer = call()

    seconds, _ = common.timed(many)
    return seconds / loops, answer


def _rounds(
    calls: dict[str, Callable[[], Any]], loops: dict[str, int], rounds: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, Any], bool]:
    """Interleaved A/B: per call, per round, both modes (which goes first alternates).
    Returns the samples, each call's first answer, and whether every answer (every
    round, both modes) equalled it."""
    samples: dict[str, dict[str, list[float]]] = {name: {m: [] for m in MODES} for name in calls}
    reference: dict[str, Any] = {}
    equal = True
    for index in range(rounds):
        order = MODES if index % 2 == 0 else MODES[::-1]
        for name, call in calls.items():
            for mode in order:
                with _mode(mode):
                    # Unmeasured: the mode's first request fills its per-class caches.
                    first = _answer(call)
                    seconds, answer = _loop(partial(_answer, call), loops[name])
                samples[name][mode].append(seconds)
                expected = reference.setdefault(name, first)
                equal = equal and first == answer == expected
    return samples, reference, equal


# ------------------------------------------------------------------------ part 1


def dynamodb_calls(
    partition_items: int, rounds: int, put_loops: int, update_loops: int, query_loops: int
) -> dict[str, Any]:
    from moto import mock_aws

    with mock_aws():
        client = _client()
        common.create_events_table(client, EVENTS_TABLE)
        common.create_events_table(client, HISTORY_TABLE)
        partition = [event_item(AGGREGATE, v) for v in range(1, partition_items + 1)]
        _seed(client, EVENTS_TABLE, partition)
        row = history_row()
        client.put_item(TableName=HISTORY_TABLE, Item=row)
        put = event_item("order-bench-put", 1)
        calls: dict[str, Callable[[], Any]] = {
            "PutItem": lambda: client.put_item(TableName=EVENTS_TABLE, Item=put),
            "UpdateItem": lambda: client.update_item(
                TableName=HISTORY_TABLE,
                Key={"aggregateId": row["aggregateId"], "version": row["version"]},
                UpdateExpression=(
                    "SET #status = :status, totals.chargedCents = :charged, lastType = :type"
                ),
                ConditionExpression="attribute_exists(aggregateId)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": {"S": "PAID"},
                    ":charged": {"N": "9720"},
                    ":type": {"S": "PaymentProcessed"},
                },
                ReturnValues="ALL_NEW",
            ),
            "Query": lambda: client.query(
                TableName=EVENTS_TABLE,
                KeyConditionExpression="aggregateId = :id",
                ExpressionAttributeValues={":id": {"S": AGGREGATE}},
                ConsistentRead=True,
            ),
        }
        loops = {"PutItem": put_loops, "UpdateItem": update_loops, "Query": query_loops}
        samples, answers, equal = _rounds(calls, loops, rounds)
        query_count = answers["Query"].get("Count")
    assert equal, "an answer differs between plain moto and speedups()"
    report: dict[str, Any] = {}
    for name, by_mode in samples.items():
        plain, fast = common.median(by_mode["plain"]), common.median(by_mode["speedups"])
        report[name] = {
            "loops": loops[name],
            "plain": common.summary(by_mode["plain"]),
            "speedups": common.summary(by_mode["speedups"]),
            "ratio_plain_over_speedups": common.ratio(plain, fast),
        }
        report[name]["answer_keys"] = sorted(answers[name])
    report["Query"]["items_returned"] = query_count
    return {
        "partition_items": partition_items,
        "event_item_bytes": _wire_bytes(put),
        "history_row_bytes": _wire_bytes(row),
        "rounds": rounds,
        "calls": report,
        "answers_equal": equal,
    }


# ------------------------------------------------------------------------ part 2


def _transaction(table: str, *, cancel: bool = False) -> dict[str, Any]:
    """An outbox-style pair on fixed keys; `cancel`: the Update's condition fails."""
    condition = "attribute_not_exists(aggregateId)" if cancel else "attribute_exists(aggregateId)"
    return {
        "TransactItems": [
            {"Put": {"TableName": table, "Item": event_item("outbox", 1)}},
            {
                "Update": {
                    "TableName": table,
                    "Key": {"aggregateId": {"S": "order-row"}, "version": {"N": "0"}},
                    "UpdateExpression": "SET #status = :status",
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":status": {"S": "PAID"}},
                }
            },
        ]
    }


def _table_items(client: Any, table: str) -> int:
    return int(client.describe_table(TableName=table)["Table"]["ItemCount"])


def transactions(table_sizes: tuple[int, ...], rounds: int, loops: int) -> dict[str, Any]:
    if min(table_sizes) < 2:
        raise ValueError("table_sizes: at least 2 (the order row and the outbox row)")
    from moto import mock_aws

    sizes: dict[str, Any] = {}
    with mock_aws():
        client = _client()
        cancelled: dict[str, Any] = {}
        for size in table_sizes:
            table = f"bench-tx-{size}"
            common.create_events_table(client, table)
            # `size` items in all: fillers, the order row, and the outbox row (its first
            # transaction, unmeasured, puts it).
            items = [event_item(f"order-{v // 10:05d}", v % 10) for v in range(size - 2)]
            items.append(event_item("order-row", 0))
            seed_seconds, _ = common.timed(
                lambda table=table, items=items: _seed(client, table, items)
            )
            ok = _transaction(table)
            client.transact_write_items(**ok)  # the outbox row exists from here on
            before = _table_items(client, table)
            samples, _, equal = _rounds(
                {f"tx-{size}": lambda ok=ok: client.transact_write_items(**ok)},
                {f"tx-{size}": loops},
                rounds,
            )
            for mode in MODES:
                with _mode(mode):
                    answer = _answer(
                        lambda table=table: client.transact_write_items(
                            **_transaction(table, cancel=True)
                        )
                    )
                    row = client.get_item(
                        TableName=table,
                        Key={"aggregateId": {"S": "order-row"}, "version": {"N": "0"}},
                    )["Item"]
                cancelled[f"{size}/{mode}"] = (answer, row, _table_items(client, table))
            after = _table_items(client, table)
            by_mode = samples[f"tx-{size}"]
            plain, fast = common.median(by_mode["plain"]), common.median(by_mode["speedups"])
            sizes[str(size)] = {
                "table_items": before,
                "table_items_after": after,
                "seed_seconds": seed_seconds,
                "plain": common.summary(by_mode["plain"]),
                "speedups": common.summary(by_mode["speedups"]),
                "ratio_plain_over_speedups": common.ratio(plain, fast),
                "answers_equal": equal,
            }
    cancel_equal = all(
        cancelled[f"{size}/plain"] == cancelled[f"{size}/speedups"] for size in table_sizes
    )
    first = cancelled[f"{table_sizes[0]}/plain"][0]
    assert cancel_equal, "a cancelled transaction differs between plain moto and speedups()"
    assert all(row["answers_equal"] for row in sizes.values())
    small, large = str(min(table_sizes)), str(max(table_sizes))
    return {
        "actions_per_transaction": 2,
        "loops": loops,
        "rounds": rounds,
        "sizes": sizes,
        "cancelled_error": first.get("Error", {}).get("Code"),
        "cancelled_reasons": [r.get("Code") for r in first.get("CancellationReasons", [])],
        "cancelled_same_in_both_modes": cancel_equal,
        "answers_equal": cancel_equal and all(r["answers_equal"] for r in sizes.values()),
        "growth_plain_large_over_small": common.ratio(
            common.median(sizes[large]["plain"]["samples"]),
            common.median(sizes[small]["plain"]["samples"]),
        ),
        "growth_speedups_large_over_small": common.ratio(
            common.median(sizes[large]["speedups"]["samples"]),
            common.median(sizes[small]["speedups"]["samples"]),
        ),
    }


# ------------------------------------------------------------------------ part 3


@contextlib.contextmanager
def speedups_disabled() -> Iterator[None]:
    """`eventcraft_sandbox.session.speedups` as a no-op for the sessions started inside."""
    import eventcraft_sandbox.session

    with mock.patch.object(eventcraft_sandbox.session, "speedups", contextlib.nullcontext):
        yield


def _one_demo(orders: int, mode: str) -> dict[str, Any]:
    from order_saga.sandbox import demo
    from order_saga.sandbox.session import OrderSagaSession

    marks: dict[str, float] = {}

    class _NotingSession(OrderSagaSession):
        def start(self) -> OrderSagaSession:
            started = super().start()
            marks.setdefault("deployed_cpu", time.process_time())
            return started

    options = demo.DemoOptions(orders=orders)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(demo, "OrderSagaSession", _NotingSession))
        if mode == "plain":
            stack.enter_context(speedups_disabled())
        cpu_start = time.process_time()
        wall, result = common.timed(lambda: demo.run_demo(options))
        cpu = time.process_time() - cpu_start
    report = result.report
    deploy_cpu = marks["deployed_cpu"] - cpu_start
    after_deploy_cpu = cpu - deploy_cpu
    calls = int(report["aws_calls"])
    return {
        "mode": mode,
        "orders": orders,
        "wall_seconds": wall,
        "deploy_seconds": float(report["deploy_seconds"]),
        "run_seconds": float(report["run_seconds"]),
        "virtual_seconds": float(report["virtual_seconds"]),
        "cpu_seconds": cpu,
        "cpu_deploy_seconds": deploy_cpu,
        "cpu_after_deploy_seconds": after_deploy_cpu,
        "cpu_per_order": after_deploy_cpu / orders,
        "cpu_per_aws_call_ms": 1000 * after_deploy_cpu / calls if calls else None,
        "aws_calls": calls,
        "aws_calls_per_order": calls / orders,
        "completed": report["completed"],
        "cancelled": report["cancelled"],
        "stuck": report["stuck"],
        "events": sum(report["events"].values()),
        "invocations": sum(report["invocations"].values()),
        "invariants": report["invariants"],
        "invariants_all_true": all(report["invariants"].values()),
    }


def demo(
    demo_orders: tuple[int, ...], plain_demo_orders: tuple[int, ...], warmup_orders: int = 0
) -> dict[str, Any]:
    warmup: dict[str, Any] | None = None
    if warmup_orders:
        # Unmeasured: the first demo of a process also pays imports and first-use setup
        # (moto's services, the Step Functions parser, ...) that later runs do not.
        print(f"[bench]   demo {warmup_orders} orders, warm-up ...", flush=True, file=sys.stderr)
        warmup = _one_demo(warmup_orders, "speedups")
    runs: list[tuple[int, str]] = []
    for orders in demo_orders:
        runs.append((orders, "speedups"))
        if orders in plain_demo_orders:
            runs.append((orders, "plain"))
    runs += [(n, "plain") for n in plain_demo_orders if n not in demo_orders]
    results: dict[str, dict[str, Any]] = {"speedups": {}, "plain": {}}
    for orders, mode in runs:
        print(f"[bench]   demo {orders} orders, {mode} ...", flush=True, file=sys.stderr)
        results[mode][str(orders)] = _one_demo(orders, mode)
    comparisons: dict[str, Any] = {}
    for key, plain in results["plain"].items():
        fast = results["speedups"].get(key)
        if fast is None:
            continue
        comparisons[key] = {
            f"ratio_{measure}": (
                common.ratio(plain[measure], fast[measure])
                if plain[measure] is not None and fast[measure] is not None
                else None
            )
            for measure in DEMO_MEASURES
        }
    return {
        "order": [f"{n}/{m}" for n, m in runs],
        "warmup": warmup,
        **results,
        "comparisons": comparisons,
    }


def run(
    *,
    partition_items: int = 100,
    rounds: int = 5,
    put_loops: int = 20,
    update_loops: int = 20,
    query_loops: int = 2,
    table_sizes: tuple[int, ...] = (100, 2000),
    transaction_rounds: int = 5,
    transaction_loops: int = 2,
    demo_orders: tuple[int, ...] = (10, 25),
    plain_demo_orders: tuple[int, ...] = (10,),
    warmup_orders: int = 2,
) -> dict[str, Any]:
    """The whole benchmark; sizes are parameters so the smoke test can run it tiny."""
    common.moto_environment()
    return {
        "dynamodb_calls": dynamodb_calls(
            partition_items, rounds, put_loops, update_loops, query_loops
        ),
        "transactions": transactions(tuple(table_sizes), transaction_rounds, transaction_loops),
        "demo": demo(tuple(demo_orders), tuple(plain_demo_orders), warmup_orders),
    }
