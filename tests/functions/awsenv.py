"""Helpers for the function tests against moto: tables, a bus whose events land in an
SQS queue (how PutEvents is observed under moto), and records in the shape Lambda
delivers them (SQS, DynamoDB Streams, Kinesis)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws

from eventkit import clients

REGION = "us-east-1"


@contextmanager
def mocked() -> Iterator[None]:
    """moto for the block; no cached eventkit client outlives it."""
    with mock_aws():
        clients.reset()
        try:
            yield
        finally:
            clients.reset()


def create_table(name: str, key: str = "pk", *, stream: bool = False) -> None:
    kwargs: dict[str, Any] = {}
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **kwargs,
    )


def scan(table: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    items = boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return [{k: deserializer.deserialize(v) for k, v in item.items()} for item in items]


def capture_bus(bus_name: str) -> str:
    """Create `bus_name` with a rule sending every order-saga event to a new queue."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=bus_name)
    url = sqs.create_queue(QueueName=f"{bus_name}-capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=f"{bus_name}-all",
        EventBusName=bus_name,
        EventPattern=json.dumps({"source": [{"prefix": "order-saga."}]}),
    )
    events.put_targets(
        Rule=f"{bus_name}-all", EventBusName=bus_name, Targets=[{"Id": "capture", "Arn": arn}]
    )
    return url


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every message body on the queue (JSON), deleting them."""
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def create_queue(name: str) -> str:
    attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    return boto3.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def sqs_event(queue_url: str, max_messages: int = 10) -> dict[str, Any]:
    """Receive from the queue and shape the messages as Lambda's SQS event."""
    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max_messages,
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def stream_records(table: str) -> list[dict[str, Any]]:
    """Every record of the table's stream so far, in the shape Lambda delivers them."""
    ddb, streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            if not page["Records"]:
                break
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
    return [_lambda_shape(record, arn) for record in records]


def _lambda_shape(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if created is not None and not isinstance(created, int | float):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


def kinesis_event(stream_name: str) -> dict[str, Any]:
    """Every record of a (one-shard) Kinesis stream, shaped as Lambda's Kinesis event."""
    kinesis = boto3.client("kinesis")
    description = kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]
    shard = description["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "awsRegion": REGION,
                "eventSourceARN": description["StreamARN"],
            }
            for r in records
        ]
    }


@dataclass
class FakeContext:
    """The parts of a LambdaContext that Powertools reads."""

    remaining_ms: int = 30_000
    function_name: str = "test-function"
    aws_request_id: str = "request-1"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def order_id(entry: Any) -> str:
    return str(json.loads(entry["Detail"])["orderId"])


class EventsSpy:
    """Wraps an EventBridge client: records each PutEvents request, and answers
    `fail[orderId]` error codes (one per attempt, in order) instead of sending those
    entries; the others go to the wrapped client (moto) or get a made-up id."""

    def __init__(self, inner: Any = None, fail: dict[str, list[str]] | None = None) -> None:
        self.inner = inner
        self.fail = {k: list(v) for k, v in (fail or {}).items()}
        self.requests: list[list[str]] = []

    def put_events(self, Entries: list[Any]) -> dict[str, Any]:
        self.requests.append([order_id(e) for e in Entries])
        results: list[dict[str, Any] | None] = []
        forward = []
        for e in Entries:
            codes = self.fail.get(order_id(e))
            if codes:
                results.append({"ErrorCode": codes.pop(0), "ErrorMessage": "injected"})
            else:
                results.append(None)
                forward.append(e)
        if self.inner is not None and forward:
            sent = iter(self.inner.put_events(Entries=forward)["Entries"])
        else:
            sent = iter({"EventId": f"id-{order_id(e)}"} for e in forward)
        entries = [r if r is not None else next(sent) for r in results]
        return {
            "FailedEntryCount": sum(1 for r in entries if "ErrorCode" in r),
            "Entries": entries,
        }
