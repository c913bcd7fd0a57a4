"""The shared helpers of the function tests (no tests here), against moto: tables, a bus
whose events land in an SQS queue (how PutEvents is observed under moto), records in the
shape Lambda delivers them (SQS, DynamoDB Streams, Kinesis), a recorder of the AWS calls
the code under test makes (to check ACCESS declarations), and a serialized, read-counted
DynamoDB client with a thread runner for concurrency tests.

moto's DynamoDB backend has no lock: two threads' conditional writes can both pass their
condition (checked here: 15 of 100 rounds of 8 concurrent transactions had != 1 winner,
others crashed with "dictionary changed size during iteration"). Real DynamoDB applies
each request atomically, so `DynamoDB.client` runs one request at a time: the code under
test still interleaves between its requests, as it would on AWS.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Self

import boto3
from moto import mock_aws

from eventcraft import clients

REGION = "us-east-1"


@contextmanager
def mocked(config: Any = None) -> Iterator[None]:
    """moto for the block (`config`: moto's, e.g. to run state machines); no cached
    eventcraft client outlives it."""
    with mock_aws(config=config):
        clients.reset()
        try:
            yield
        finally:
            clients.reset()


def create_table(
    name: str,
    key: str = "pk",
    sort_key: tuple[str, str] | None = None,
    *,
    stream: bool = False,
    client: Any = None,
) -> str:
    """A PAY_PER_REQUEST table: string partition key `key`, optional sort key (name,
    type), optional NEW_IMAGE stream; `client` default a plain boto3 one. Its name."""
    schema = [{"AttributeName": key, "KeyType": "HASH"}]
    attributes = [{"AttributeName": key, "AttributeType": "S"}]
    if sort_key is not None:
        schema.append({"AttributeName": sort_key[0], "KeyType": "RANGE"})
        attributes.append({"AttributeName": sort_key[0], "AttributeType": sort_key[1]})
    kwargs: dict[str, Any] = {}
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    ddb: Any = client or boto3.client("dynamodb")
    ddb.create_table(
        TableName=name,
        KeySchema=schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **kwargs,
    )
    return name


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (numbers as Decimal)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def scan(table: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return [deserialize(item) for item in items]


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


def peek(queue_url: str, sqs: Any = None) -> list[dict[str, Any]]:
    """Every message now visible on the queue, with all its attributes, left there
    (received, then made visible again at once). `sqs`: a client (default boto3's)."""
    sqs = sqs or boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=30,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", []):
        messages.extend(batch)
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return messages


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
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": base64.b64encode(value["BinaryValue"]).decode()
                        if "BinaryValue" in value
                        else None,
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in m.get("MessageAttributes", {}).items()
                },
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


# --- recording the AWS calls of the code under test -------------------------------------

_ITEM_ACTIONS: Final = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# Environment variables that name a resource (CHECK_NAME=inventory does not);
# AWS_LAMBDA_FUNCTION_NAME names the function itself.
RESOURCE_ENV_SUFFIXES: Final = ("_TABLE", "_URL", "_BUCKET", "_BUS_NAME", "_FUNCTION_NAME")
# API operations that IAM authorizes under another action name.
_IAM_ACTIONS: Final = {"lambda:Invoke": "lambda:InvokeFunction"}


@dataclass
class CallRecorder:
    """(environment variable naming the resource, IAM action) of each call made through
    eventcraft's clients, once `attach`ed. A table, queue, bucket or function is named by
    the one environment variable that holds its name (or URL); TransactWriteItems counts
    as its per-item actions and BatchGetItem per table, as IAM does; PutEvents as
    EVENT_BUS_NAME's; Invoke as lambda:InvokeFunction.
    """

    calls: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, *services: str) -> Self:
        """Record the calls of eventcraft's clients of `services` from now on (test setup
        uses plain boto3 clients, which are not recorded)."""
        for service in services:
            clients.client(service).meta.events.register(
                f"before-parameter-build.{service}.*", self
            )
        return self

    def _env_of(self, name: str) -> str:
        found = [
            env
            for env, value in os.environ.items()
            if value == name and env.endswith(RESOURCE_ENV_SUFFIXES)
        ]
        return found[0] if len(found) == 1 else f"?{name}"

    def __call__(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        action = f"{service}:{model.name}"
        action = _IAM_ACTIONS.get(action, action)
        found: set[tuple[str, str]]
        if model.name == "TransactWriteItems":
            found = set()
            for item in params["TransactItems"]:
                ((op, body),) = item.items()
                found.add((self._env_of(body["TableName"]), f"dynamodb:{_ITEM_ACTIONS[op]}"))
        elif model.name == "BatchGetItem":
            found = {(self._env_of(table), action) for table in params["RequestItems"]}
        elif "TableName" in params:
            found = {(self._env_of(params["TableName"]), action)}
        elif "QueueUrl" in params:
            found = {(self._env_of(params["QueueUrl"]), action)}
        elif "Bucket" in params:
            found = {(self._env_of(params["Bucket"]), action)}
        elif "Entries" in params:
            found = {("EVENT_BUS_NAME", action)}
        elif "FunctionName" in params:
            # A name, or an ARN arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>].
            name = str(params["FunctionName"])
            found = {
                (self._env_of(name.split(":")[6] if name.startswith("arn:") else name), action)
            }
        else:
            found = {("?", action)}
        with self.lock:
            self.calls |= found

    def by_env(self) -> dict[str, frozenset[str]]:
        result: dict[str, set[str]] = {}
        for env, action in self.calls:
            result.setdefault(env, set()).add(action)
        return {env: frozenset(actions) for env, actions in result.items()}

    def reset(self) -> None:
        self.calls.clear()


# --- concurrency: a serialized, read-counted DynamoDB client, threads released together ---


class SerializedClient:
    """A boto3 client whose requests run one at a time (see the module docstring)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    @property
    def exceptions(self) -> Any:
        return self._inner.exceptions

    @property
    def meta(self) -> Any:
        return self._inner.meta

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


@dataclass
class ReadCounter:
    """Calls per operation, and items Query/GetItem returned, counted by botocore
    `after-call` hooks (what DynamoDB answered, not what the code says it read)."""

    query_calls: int = 0
    query_items: int = 0
    get_calls: int = 0
    get_items: int = 0
    calls: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.query_calls = self.query_items = self.get_calls = self.get_items = 0
        self.calls.clear()


@dataclass
class DynamoDB:
    """A moto DynamoDB: `client` (serialized, read-counted) and table helpers."""

    client: Any
    raw: Any
    reads: ReadCounter

    def create_table(
        self,
        name: str,
        hash_key: str,
        range_key: tuple[str, str] | None = None,
        *,
        stream: bool = False,
    ) -> str:
        return create_table(name, hash_key, range_key, stream=stream, client=self.raw)

    def batch_put(self, table: str, items: list[dict[str, Any]]) -> None:
        """Unconditional bulk load (fixtures only: BatchWriteItem cannot be conditional)."""
        for start in range(0, len(items), 25):
            request = {
                table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            }
            while request:
                request = self.raw.batch_write_item(RequestItems=request).get("UnprocessedItems")


@contextmanager
def moto_dynamodb() -> Iterator[DynamoDB]:
    with mocked():
        raw = boto3.client("dynamodb", region_name=REGION)
        reads = ReadCounter()

        def count(event_name: str, parsed: dict[str, Any], **_: Any) -> None:
            reads.calls[event_name.rsplit(".", 1)[-1]] += 1
            if event_name.endswith(".Query"):
                reads.query_calls += 1
                reads.query_items += len(parsed.get("Items", []))
            elif event_name.endswith(".GetItem"):
                reads.get_calls += 1
                reads.get_items += 1 if "Item" in parsed else 0

        raw.meta.events.register("after-call.dynamodb", count)
        yield DynamoDB(client=SerializedClient(raw), raw=raw, reads=reads)


def run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run target(0..count-1) in threads released together; results (or the exception
    raised) in index order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
