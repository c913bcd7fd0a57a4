"""DynamoDB stream / Kinesis -> function: batches in order, filters, bisect, partial
failures, retries, record age and the on-failure destination."""

from __future__ import annotations

import base64
import json
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

    def consumer(self, source_arn: str, handler: Any, **request: Any) -> str:
        function = self.world.function(f"fn-{len(self.records.event_source_mappings)}")
        self.invoker.register(function.split(":")[6], handler)
        request.setdefault("StartingPosition", "TRIM_HORIZON")
        self.records.event_source_mappings.append(
            FakeMapping(function, source_arn, {"EventSourceArn": source_arn, **request})
        )
        return function

    def start(self) -> Delivery:
        self.delivery = Delivery(self.scheduler, self.invoker, self.records).install()
        return self.delivery

    def run(self) -> None:
        assert self.delivery is not None
        self.delivery.run_until_quiet()


@pytest.fixture
def harness(world: World) -> Iterator[Harness]:
    h = Harness(world)
    yield h
    if h.delivery is not None:
        h.delivery.uninstall()


def table(world: World, name: str = "orders") -> str:
    created = world.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(created["TableDescription"]["LatestStreamArn"])


def put(world: World, name: str, *ids: str, status: str = "PLACED") -> None:
    for item_id in ids:
        world.dynamodb.put_item(
            TableName=name, Item={"id": {"S": item_id}, "status": {"S": status}}
        )


def ids(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]


def test_dynamodb_records_arrive_in_order_in_batches(world: World, harness: Harness) -> None:
    stream = table(world)
    batches: list[list[str]] = []
    harness.consumer(stream, lambda e: batches.append(ids(e)), BatchSize=2)
    harness.start()
    put(world, "orders", "o1", "o2", "o3", "o4", "o5")

    harness.run()

    assert [b for b in batches if b] == [["o1", "o2"], ["o3", "o4"], ["o5"]]


def test_the_dynamodb_event_has_lambdas_record_shape(world: World, harness: Harness) -> None:
    stream = table(world)
    events: list[dict[str, Any]] = []
    harness.consumer(stream, events.append)
    harness.start()
    put(world, "orders", "o1")
    harness.run()

    (record,) = events[0]["Records"]
    assert record["eventName"] == "INSERT"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == stream
    assert record["dynamodb"]["NewImage"] == {"id": {"S": "o1"}, "status": {"S": "PLACED"}}
    assert record["dynamodb"]["ApproximateCreationDateTime"] == int(T0)
    json.dumps(events[0])  # JSON-compatible, as Lambda delivers it


def test_latest_skips_what_was_written_before_the_mapping(world: World, harness: Harness) -> None:
    stream = table(world)
    put(world, "orders", "before")
    batches: list[list[str]] = []
    harness.consumer(stream, lambda e: batches.append(ids(e)), StartingPosition="LATEST")
    harness.start()
    put(world, "orders", "after")

    harness.run()

    assert batches == [["after"]]


def test_filter_criteria_match_the_record_as_lambda_sees_it(world: World, harness: Harness) -> None:
    stream = table(world)
    batches: list[list[str]] = []
    pattern = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["PAID"]}}}}
    harness.consumer(
        stream,
        lambda e: batches.append(ids(e)),
        FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]},
    )
    harness.start()
    put(world, "orders", "o1", status="PLACED")
    put(world, "orders", "o2", status="PAID")
    put(world, "orders", "o1", status="PAID")  # a MODIFY: filtered out

    harness.run()

    assert batches == [["o2"]]


def test_bisect_isolates_a_poison_record_then_the_shard_moves_on(
    world: World, harness: Harness
) -> None:
    stream = table(world)
    failures_url, failures_arn = world.queue("failures")
    batches: list[list[str]] = []

    def handler(event: dict[str, Any]) -> None:
        batches.append(ids(event))
        if "poison" in ids(event):
            raise ValueError("cannot parse poison")

    harness.consumer(
        stream,
        handler,
        BatchSize=4,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )
    harness.start()
    put(world, "orders", "o1", "poison", "o3", "o4")

    harness.run()
    put(world, "orders", "o5")
    harness.run()

    assert batches == [
        ["o1", "poison", "o3", "o4"],
        ["o1", "poison"],  # bisected: splitting does not use up retries
        ["o1"],
        ["poison"],
        ["poison"],  # its one retry
        ["o3", "o4"],
        ["o5"],  # the shard was not blocked
    ]
    (body,) = world.bodies(failures_url)
    record = json.loads(body)
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responseContext"]["functionError"] == "Unhandled"
    info = record["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["streamArn"] == stream
    assert info["shardId"].startswith("shardId-")


def test_report_batch_item_failures_retries_from_the_first_failed_record(
    world: World, harness: Harness
) -> None:
    stream = table(world)
    batches: list[list[str]] = []
    failed_once: set[str] = set()

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        batches.append(ids(event))
        for record in event["Records"]:
            key = record["dynamodb"]["Keys"]["id"]["S"]
            if key == "o2" and key not in failed_once:
                failed_once.add(key)
                return {
                    "batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]
                }
        return {"batchItemFailures": []}

    harness.consumer(
        stream, handler, BatchSize=3, FunctionResponseTypes=["ReportBatchItemFailures"]
    )
    harness.start()
    put(world, "orders", "o1", "o2", "o3", "o4")

    harness.run()

    assert batches == [["o1", "o2", "o3"], ["o2", "o3"], ["o4"]]


def kinesis_stream(world: World, name: str = "activity") -> str:
    world.kinesis.create_stream(StreamName=name, ShardCount=1)
    return str(world.kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"])


def test_kinesis_filters_match_the_decoded_data(world: World, harness: Harness) -> None:
    stream = kinesis_stream(world)
    received: list[dict[str, Any]] = []
    pattern = {"data": {"kind": ["OrderPlaced"]}}
    harness.consumer(
        stream,
        lambda e: received.extend(e["Records"]),
        FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]},
    )
    harness.start()
    for kind in ("OrderPlaced", "PageViewed", "OrderPlaced"):
        world.kinesis.put_record(
            StreamName="activity", Data=json.dumps({"kind": kind}).encode(), PartitionKey="k"
        )

    harness.run()

    assert len(received) == 2
    record = received[0]
    assert json.loads(base64.b64decode(record["kinesis"]["data"])) == {"kind": "OrderPlaced"}
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["eventSourceARN"] == stream
    assert record["kinesis"]["partitionKey"] == "k"
    assert record["eventID"].endswith(record["kinesis"]["sequenceNumber"])


def test_kinesis_records_older_than_the_maximum_age_go_to_the_destination(
    world: World, harness: Harness
) -> None:
    stream = kinesis_stream(world)
    failures_url, failures_arn = world.queue("kinesis-failures")
    attempts: list[float] = []

    def handler(event: dict[str, Any]) -> None:
        attempts.append(harness.clock.now() - T0)
        raise TimeoutError("downstream is down")

    harness.consumer(
        stream,
        handler,
        MaximumRecordAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )
    harness.start()
    world.kinesis.put_record(StreamName="activity", Data=b"{}", PartitionKey="k")

    harness.run()

    # Retried with backoff (1, 2, 4, ... s) until the record was older than 60 s.
    assert attempts[:4] == [0, 1, 3, 7]
    assert attempts[-1] <= 60
    (body,) = world.bodies(failures_url)
    record = json.loads(body)
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["KinesisBatchInfo"]["batchSize"] == 1
    assert record["KinesisBatchInfo"]["streamArn"] == stream
