"""SQS -> function delivery: batches, windows, partial failures, redrive, FIFO, filters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import FakeInvoker, FakeMapping, FakeRecords, World

T0 = 1_800_000_000.0


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


class Harness:
    def __init__(self, world: World) -> None:
        self.world = world
        self.clock = VirtualClock(start=T0)
        self.scheduler = Scheduler(self.clock)
        self.invoker = FakeInvoker()
        self.records = FakeRecords()
        self.delivery: Delivery | None = None

    def consumer(self, queue_arn: str, handler: Any, **request: Any) -> str:
        function = self.world.function(f"fn-{len(self.records.event_source_mappings)}")
        self.invoker.register(function.split(":")[6], handler)
        self.records.event_source_mappings.append(
            FakeMapping(function, queue_arn, {"EventSourceArn": queue_arn, **request})
        )
        return function

    def start(self) -> Delivery:
        self.delivery = Delivery(self.scheduler, self.invoker, self.records).install()
        return self.delivery

    def run(self) -> None:
        assert self.delivery is not None
        self.delivery.run_until_quiet()

    def now(self) -> float:
        return self.clock.now() - T0


@pytest.fixture
def harness(world: World) -> Iterator[Harness]:
    h = Harness(world)
    yield h
    if h.delivery is not None:
        h.delivery.uninstall()


def send(world: World, url: str, *bodies: str, **params: Any) -> None:
    for body in bodies:
        world.sqs.send_message(QueueUrl=url, MessageBody=body, **params)


def test_batches_of_batch_size_in_order(world: World, harness: Harness) -> None:
    url, arn = world.queue("orders")
    batches: list[list[str]] = []
    harness.consumer(arn, lambda e: batches.append([r["body"] for r in e["Records"]]), BatchSize=10)
    harness.start()
    send(world, url, *(f"m{i:02d}" for i in range(25)))

    harness.run()

    assert [len(b) for b in batches] == [10, 10, 5]
    assert [body for batch in batches for body in batch] == [f"m{i:02d}" for i in range(25)]
    assert world.bodies(url) == []


def test_the_event_has_lambdas_sqs_record_shape(world: World, harness: Harness) -> None:
    url, arn = world.queue("shape")
    events: list[dict[str, Any]] = []
    harness.consumer(arn, events.append)
    harness.start()
    world.sqs.send_message(
        QueueUrl=url,
        MessageBody='{"orderId": "o-1"}',
        MessageAttributes={"trace": {"DataType": "String", "StringValue": "t-1"}},
    )
    harness.run()

    (record,) = events[0]["Records"]
    assert record["body"] == '{"orderId": "o-1"}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["SentTimestamp"] == str(int(T0 * 1000))
    assert record["messageAttributes"]["trace"]["stringValue"] == "t-1"
    assert record["messageAttributes"]["trace"]["dataType"] == "String"
    assert record["messageId"] and record["receiptHandle"] and record["md5OfBody"]


def test_the_batching_window_waits_in_virtual_time_for_a_fuller_batch(
    world: World, harness: Harness
) -> None:
    url, arn = world.queue("windowed")
    calls: list[tuple[float, int]] = []
    harness.consumer(
        arn,
        lambda e: calls.append((harness.now(), len(e["Records"]))),
        BatchSize=10,
        MaximumBatchingWindowInSeconds=20,
    )
    harness.start()
    send(world, url, "a", "b", "c")

    started = time.monotonic()
    harness.run()

    assert calls == [(20.0, 3)]
    assert time.monotonic() - started < 2


def test_partial_batch_failures_delete_only_successes_then_redrive_to_the_dlq(
    world: World, harness: Harness
) -> None:
    dlq_url, dlq_arn = world.queue("orders-dlq")
    url, arn = world.queue("orders", visibility=30, dead_letter=dlq_arn, max_receive=3)
    seen: list[tuple[float, str, str]] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            seen.append(
                (harness.now(), record["body"], record["attributes"]["ApproximateReceiveCount"])
            )
            if record["body"] == "bad":
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    harness.consumer(arn, handler, FunctionResponseTypes=["ReportBatchItemFailures"])
    harness.start()
    send(world, url, "ok-1", "bad", "ok-2")

    harness.run()

    assert [(body, count) for _, body, count in seen] == [
        ("ok-1", "1"),
        ("bad", "1"),
        ("ok-2", "1"),
        ("bad", "2"),
        ("bad", "3"),
    ]
    # Redelivered after each visibility timeout, in virtual time.
    assert [round(t) for t, body, _ in seen if body == "bad"] == [0, 30, 60]
    assert world.bodies(url) == []
    assert world.bodies(dlq_url) == ["bad"]


def test_a_function_error_returns_the_whole_batch(world: World, harness: Harness) -> None:
    url, arn = world.queue("whole", visibility=10)
    batches: list[list[tuple[str, str]]] = []

    def handler(event: dict[str, Any]) -> None:
        batches.append(
            [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]]
        )
        if len(batches) == 1:
            raise RuntimeError("database unavailable")

    harness.consumer(arn, handler, FunctionResponseTypes=["ReportBatchItemFailures"])
    harness.start()
    send(world, url, "a", "b")

    harness.run()

    assert batches == [[("a", "1"), ("b", "1")], [("a", "2"), ("b", "2")]]
    assert harness.now() >= 10
    failed = [e for e in harness.delivery.log.of("sqs.batch") if e.outcome == "failed"]  # type: ignore[union-attr]
    assert "RuntimeError" in failed[0].detail


def test_a_malformed_batch_item_failures_response_fails_the_whole_batch(
    world: World, harness: Harness
) -> None:
    url, arn = world.queue("malformed", visibility=5)
    calls: list[int] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
        return {"batchItemFailures": []}

    harness.consumer(arn, handler, FunctionResponseTypes=["ReportBatchItemFailures"])
    harness.start()
    send(world, url, "a", "b")

    harness.run()

    assert calls == [2, 2]


def test_fifo_groups_stay_in_order_and_a_group_waits_while_a_message_is_in_flight(
    world: World, harness: Harness
) -> None:
    url, arn = world.queue(
        "orders.fifo", visibility=30, FifoQueue="true", ContentBasedDeduplication="true"
    )
    delivered: list[str] = []
    failed_once: set[str] = set()

    def handler(event: dict[str, Any]) -> None:
        body = event["Records"][0]["body"]
        delivered.append(body)
        if body == "a2" and body not in failed_once:
            failed_once.add(body)
            raise RuntimeError("transient")

    harness.consumer(arn, handler, BatchSize=1)
    harness.start()
    for body in ("a1", "b1", "a2", "b2", "a3"):
        world.sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=body[0])

    harness.run()

    # Group a is blocked while a2 is in flight (30 s): b2 goes first, then a2 again,
    # then a3; each group's order is kept.
    assert delivered == ["a1", "b1", "a2", "b2", "a2", "a3"]
    assert [b for b in delivered if b.startswith("a")] == ["a1", "a2", "a2", "a3"]


def test_filter_criteria_deliver_only_matching_messages_and_delete_the_rest(
    world: World, harness: Harness
) -> None:
    url, arn = world.queue("filtered")
    bodies: list[str] = []
    pattern = {"body": {"type": ["OrderPlaced"], "amount": [{"numeric": [">", 100]}]}}
    harness.consumer(
        arn,
        lambda e: bodies.extend(r["body"] for r in e["Records"]),
        FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]},
    )
    harness.start()
    send(
        world,
        url,
        json.dumps({"type": "OrderPlaced", "amount": 150}),
        json.dumps({"type": "OrderPlaced", "amount": 50}),
        json.dumps({"type": "OrderPlaced", "amount": "150"}),
        json.dumps({"type": "OrderShipped", "amount": 500}),
        "not json",
    )

    harness.run()

    assert bodies == [json.dumps({"type": "OrderPlaced", "amount": 150})]
    assert world.bodies(url) == []


def test_a_delayed_message_is_delivered_when_its_delay_ends(world: World, harness: Harness) -> None:
    url, arn = world.queue("delayed")
    calls: list[float] = []
    harness.consumer(arn, lambda e: calls.append(harness.now()))
    harness.start()
    world.sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=45)

    harness.run()

    assert len(calls) == 1
    assert 45 <= calls[0] < 46


def test_the_real_lambda_runtime_runs_the_consumer(world: World, harness: Harness) -> None:
    runtime_module = pytest.importorskip("eventcraft_sandbox.lambda_runtime")
    runtime_cls = getattr(runtime_module, "LambdaRuntime", None)
    if runtime_cls is None:
        pytest.skip("eventcraft_sandbox.lambda_runtime.LambdaRuntime is not there yet")
    source = (
        "def handler(event, context):\n"
        "    failures = [\n"
        "        {'itemIdentifier': r['messageId']}\n"
        "        for r in event['Records'] if r['body'] == 'bad'\n"
        "    ]\n"
        "    print('batch', [r['body'] for r in event['Records']])\n"
        "    return {'batchItemFailures': failures}\n"
    )
    dlq_url, dlq_arn = world.queue("real-dlq")
    url, arn = world.queue("real", visibility=30, dead_letter=dlq_arn, max_receive=2)
    function = world.function("real-consumer", files={"handler.py": source})
    harness.records.event_source_mappings.append(
        FakeMapping(function, arn, {"FunctionResponseTypes": ["ReportBatchItemFailures"]})
    )
    with runtime_cls(clock=harness.clock) as runtime:
        delivery = Delivery(harness.scheduler, runtime, harness.records).install()
        harness.delivery = delivery
        send(world, url, "good", "bad")
        harness.run()

    batches = [e for e in delivery.log.of("sqs.batch")]
    assert [e.outcome for e in batches] == ["partial", "partial"]
    assert world.bodies(url) == []
    assert world.bodies(dlq_url) == ["bad"]
