"""`eventcraft_sandbox.session` on its own: `speedups()` (restored on exit; the item-by-item
rollback of TransactWriteItems; the cached ASL parse), `_CachedReads` and
`_AwsCallCounter`. A deployed session (the order saga's driver) is tested in
tests/order_saga/test_sandbox_session.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import responses as moto_responses
from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb import models as dynamodb_models
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from eventcraft_sandbox.session import _AwsCallCounter, _CachedReads
from eventcraft_sandbox.speedups import speedups

REGION = "us-east-1"


# ----------------------------------------------------------------------- speedups


def _patched_attributes() -> dict[str, Any]:
    """What speedups() replaces, read from where it replaces it."""
    return {
        "botocore.session.create_loader": botocore.session.create_loader,
        "moto responses.method_names_from_class": moto_responses.method_names_from_class,
        "moto dynamodb models.copy": dynamodb_models.copy,
        "DynamoDBBackend.transact_write_items": vars(dynamodb_models.DynamoDBBackend).get(
            "transact_write_items"
        ),
        "AmazonStateLanguageParser.parse": vars(AmazonStateLanguageParser).get("parse"),
    }


def test_speedups_replaces_its_attributes_and_restores_the_originals_on_exit() -> None:
    """Each patched attribute differs inside (the patch is real) and is the very same
    object again afterwards, also when the body raises."""
    originals = _patched_attributes()
    with speedups():
        inside = _patched_attributes()
    assert {k for k in originals if inside[k] is not originals[k]} == set(originals)
    assert all(_patched_attributes()[k] is v for k, v in originals.items())

    with pytest.raises(ZeroDivisionError), speedups():
        _ = 1 / 0
    assert all(_patched_attributes()[k] is v for k, v in originals.items())


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """moto with speedups on; tables `a` (hash key) and `b` (hash + range key), both
    with a NEW_AND_OLD_IMAGES stream, each holding one item."""
    with speedups(), mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        stream: Any = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        ddb.create_table(
            TableName="a",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=stream,
        )
        ddb.create_table(
            TableName="b",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=stream,
        )
        ddb.put_item(TableName="a", Item={"pk": {"S": "a1"}, "n": {"N": "1"}})
        ddb.put_item(TableName="b", Item={"pk": {"S": "b1"}, "sk": {"S": "x"}, "n": {"N": "1"}})
        yield ddb


def _items(ddb: Any, table: str) -> list[dict[str, Any]]:
    return sorted(ddb.scan(TableName=table)["Items"], key=lambda i: json.dumps(i, sort_keys=True))


def _stream_records(table: str) -> list[dict[str, Any]]:
    """Every record of the table's stream, read with GetRecords from TRIM_HORIZON."""
    arn = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=table)["Table"][
        "LatestStreamArn"
    ]
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    records: list[Any] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return records


def _transaction(failure: str | None = None) -> list[dict[str, Any]]:
    """Writes to both tables (update, new items, a delete). `failure`: "condition", a
    condition check in the middle that fails (moto goes on with the writes after it);
    "same item", a last write to an item already written (a ValidationException)."""
    writes: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": "a",
                "Key": {"pk": {"S": "a1"}},
                "UpdateExpression": "SET n = n + :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {"Put": {"TableName": "a", "Item": {"pk": {"S": "a2"}, "n": {"N": "2"}}}},
        {"Put": {"TableName": "b", "Item": {"pk": {"S": "b2"}, "sk": {"S": "y"}}}},
        {"Delete": {"TableName": "b", "Key": {"pk": {"S": "b1"}, "sk": {"S": "x"}}}},
    ]
    if failure == "condition":
        writes.insert(
            2,
            {
                "ConditionCheck": {
                    "TableName": "a",
                    "Key": {"pk": {"S": "absent"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        )
    elif failure == "same item":
        writes.append({"Put": {"TableName": "b", "Item": {"pk": {"S": "b2"}, "sk": {"S": "y"}}}})
    return writes


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("condition", "TransactionCanceledException"),
        ("same item", "ValidationException"),
    ],
)
def test_a_failed_transaction_leaves_items_and_streams_as_before(
    dynamodb: Any, failure: str, error: str
) -> None:
    """With moto's whole-table backup disabled by speedups (a table's "deep copy" is the
    table itself), a failed TransactWriteItems still leaves every touched table's
    items and stream records exactly as they were: `_transact_write_items` undid the
    writes made before (and after) the failing operation."""
    backend = dynamodb_models.dynamodb_backends["123456789012"][REGION]
    table = backend.tables["a"]
    assert dynamodb_models.copy.deepcopy(table) is table

    before = {t: (_items(dynamodb, t), _stream_records(t)) for t in ("a", "b")}
    assert [len(records) for _, records in before.values()] == [1, 1]
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=_transaction(failure))
    assert raised.value.response["Error"]["Code"] == error
    after = {t: (_items(dynamodb, t), _stream_records(t)) for t in ("a", "b")}
    assert after == before


def test_a_successful_transaction_writes_items_and_stream_records(dynamodb: Any) -> None:
    """Without a failure the transaction is moto's own: every write lands, each with
    its stream record."""
    dynamodb.transact_write_items(TransactItems=_transaction())
    assert _items(dynamodb, "a") == [
        {"pk": {"S": "a1"}, "n": {"N": "2"}},
        {"pk": {"S": "a2"}, "n": {"N": "2"}},
    ]
    assert _items(dynamodb, "b") == [{"pk": {"S": "b2"}, "sk": {"S": "y"}}]
    assert [r["eventName"] for r in _stream_records("a")] == ["INSERT", "MODIFY", "INSERT"]
    assert [r["eventName"] for r in _stream_records("b")] == ["INSERT", "INSERT", "REMOVE"]


def test_the_cached_asl_parse_gives_independent_executions() -> None:
    """A state machine's definition is parsed once for its creation and every
    execution, yet two executions with different input get their own output."""
    parses: list[str] = []
    parse = AmazonStateLanguageParser.parse

    def counting(definition: str) -> Any:
        parses.append(definition)
        return parse(definition)

    definition = json.dumps(
        {
            "StartAt": "Double",
            "States": {
                "Double": {
                    "Type": "Pass",
                    "Parameters": {"doubled.$": "States.MathAdd($.x, $.x)"},
                    "End": True,
                }
            },
        }
    )
    with (
        mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(counting)),
        speedups(),
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
    ):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="sfn", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        machine = sfn.create_state_machine(name="double", definition=definition, roleArn=role)
        executions = [
            sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], name=f"x{x}", input=json.dumps({"x": x})
            )["executionArn"]
            for x in (1, 20)
        ]
        outputs = [_finished(sfn, arn) for arn in executions]
    assert outputs == [("SUCCEEDED", {"doubled": 2}), ("SUCCEEDED", {"doubled": 40})]
    assert parses == [definition]


def _finished(sfn: Any, execution_arn: str) -> tuple[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described["status"], json.loads(described.get("output") or "null")
        time.sleep(0.01)


# ----------------------------------------------------------------------- cached reads


class _FakeClient:
    """Counts calls per method; `get_policy` fails as AWS does for no policy."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, kwargs))
        return {"call": len(self.calls)}

    def get_function(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("get_function", kwargs)

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("get_queue_attributes", kwargs)

    def get_policy(self, **kwargs: Any) -> dict[str, Any]:
        self._answer("get_policy", kwargs)
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "no policy"}}, "GetPolicy"
        )

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("invoke", kwargs)


def _cached(client: _FakeClient) -> Any:
    return _CachedReads(client, frozenset({"get_function", "get_queue_attributes", "get_policy"}))


def test_a_cached_read_is_served_once_per_clear() -> None:
    """The same read (same arguments) reaches the client once until clear(); other
    arguments are another read; methods not listed always go through."""
    client = _FakeClient()
    reads = _cached(client)
    first = reads.get_function(FunctionName="f")
    assert reads.get_function(FunctionName="f") == first == {"call": 1}
    assert reads.get_function(FunctionName="g") == {"call": 2}
    assert len(client.calls) == 2
    reads.clear()
    assert reads.get_function(FunctionName="f") == {"call": 3}
    assert reads.invoke(FunctionName="f") == {"call": 4}
    assert reads.invoke(FunctionName="f") == {"call": 5}


def test_dynamic_queue_attributes_are_never_cached() -> None:
    """ApproximateNumberOfMessages (and `All`) are read every time; the static ones
    (Policy, QueueArn, ...) once."""
    client = _FakeClient()
    reads = _cached(client)
    for names in (
        ["ApproximateNumberOfMessages"],
        ["All"],
        ["QueueArn", "ApproximateNumberOfMessages"],
    ):
        assert reads.get_queue_attributes(QueueUrl="q", AttributeNames=names) != (
            reads.get_queue_attributes(QueueUrl="q", AttributeNames=names)
        )
    assert len(client.calls) == 6
    static = reads.get_queue_attributes(QueueUrl="q", AttributeNames=["Policy", "QueueArn"])
    assert reads.get_queue_attributes(QueueUrl="q", AttributeNames=["Policy", "QueueArn"]) == static
    assert len(client.calls) == 7


def test_an_error_is_cached_and_raised_again() -> None:
    """A read that failed fails again from the cache (the same error, no new call)
    until clear()."""
    client = _FakeClient()
    reads = _cached(client)
    with pytest.raises(ClientError) as first:
        reads.get_policy(FunctionName="f")
    with pytest.raises(ClientError) as second:
        reads.get_policy(FunctionName="f")
    assert second.value is first.value
    assert len(client.calls) == 1
    reads.clear()
    with pytest.raises(ClientError):
        reads.get_policy(FunctionName="f")
    assert len(client.calls) == 2


# ----------------------------------------------------------------------- call counter


def test_the_call_counter_counts_handler_threads_by_function_and_uninstalls() -> None:
    """Requests from a `lambda:<function>:<request>` thread count for that function
    (and in `total`); anything else only in `other`; uninstall() restores moto."""
    original = BotocoreStubber.process_request
    counter = _AwsCallCounter()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        counter.install()
        try:
            worker = threading.Thread(
                target=lambda: (sqs.list_queues(), sqs.list_queues()), name="lambda:my-fn:abcd1234"
            )
            worker.start()
            worker.join()
            sqs.list_queues()
        finally:
            counter.uninstall()
        sqs.list_queues()  # not counted: uninstalled
    assert BotocoreStubber.process_request is original
    assert dict(counter.by_function) == {"my-fn": 2}
    assert dict(counter.by_operation) == {"sqs:ListQueues": 2}
    assert (counter.other, counter.total) == (1, 2)
