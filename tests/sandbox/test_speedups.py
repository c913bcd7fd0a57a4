"""`eventcraft_sandbox.speedups.speedups()` changes how fast moto answers, never what it answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from eventcraft_sandbox.speedups import speedups

TABLE = "speedups"


def _answer(call: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
    """A call's parsed answer (or its error), without the per-request metadata."""
    try:
        answer = dict(call(**params))
    except ClientError as exc:
        answer = dict(exc.response)
    answer.pop("ResponseMetadata", None)
    return answer


def _data_plane_answers() -> list[dict[str, Any]]:
    """Every data-plane operation of DynamoDB, on every attribute type, with errors."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        item = {
            "pk": {"S": "a"},
            "b": {"B": b"\x00\x01bin"},
            "bs": {"BS": [b"x", b"y"]},
            "ss": {"SS": ["p", "q"]},
            "ns": {"NS": ["1", "2.5"]},
            "null": {"NULL": True},
            "flag": {"BOOL": False},
            "m": {"M": {"l": {"L": [{"N": "3"}, {"S": "ü"}]}}},
        }
        key = {"pk": {"S": "a"}}
        answers = [
            _answer(ddb.put_item, TableName=TABLE, Item=item, ReturnConsumedCapacity="TOTAL"),
            _answer(ddb.put_item, TableName=TABLE, Item=item, ReturnValues="ALL_OLD"),
            _answer(ddb.get_item, TableName=TABLE, Key=key),
            _answer(ddb.get_item, TableName=TABLE, Key={"pk": {"S": "absent"}}),
        ]
        for index in range(5):
            ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"k{index}"}, "v": {"N": str(index)}})
        condition_failed = {
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        answers += [
            _answer(ddb.scan, TableName=TABLE, Limit=2),
            _answer(
                ddb.query,
                TableName=TABLE,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "a"}},
            ),
            _answer(
                ddb.update_item,
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET c = :c",
                ExpressionAttributeValues={":c": {"N": "1"}},
                **condition_failed,
            ),
            _answer(
                ddb.update_item,
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET c = :c",
                ExpressionAttributeValues={":c": {"N": "1"}},
                ReturnValues="ALL_NEW",
            ),
            _answer(
                ddb.transact_write_items,
                TransactItems=[{"Put": {"TableName": TABLE, "Item": key, **condition_failed}}],
            ),
            _answer(
                ddb.transact_write_items,
                TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "new"}}}}],
            ),
            _answer(
                ddb.transact_get_items, TransactItems=[{"Get": {"TableName": TABLE, "Key": key}}]
            ),
            _answer(
                ddb.batch_get_item,
                RequestItems={TABLE: {"Keys": [key, {"pk": {"S": "k1"}}]}},
            ),
            _answer(
                ddb.batch_write_item,
                RequestItems={TABLE: [{"PutRequest": {"Item": {"pk": {"S": "w"}}}}]},
            ),
            _answer(ddb.delete_item, TableName=TABLE, Key=key, ReturnValues="ALL_OLD"),
            _answer(
                ddb.update_item,
                TableName=TABLE,
                Key={"pk": {"S": "k2"}},
                UpdateExpression="SET v = v + :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
                ReturnConsumedCapacity="INDEXES",
            ),
            _answer(
                ddb.transact_write_items,
                TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "t"}}}}],
                ReturnConsumedCapacity="TOTAL",
            ),
            _answer(ddb.get_item, TableName="no-such-table", Key=key),
        ]
        return answers


def test_dynamodb_answers_are_the_same_with_and_without_speedups() -> None:
    plain = _data_plane_answers()
    with speedups():
        fast = _data_plane_answers()
    assert fast == plain
    # The scenario exercises what the fast path must get right: binary values, a
    # condition failure with the old item, and an error.
    assert plain[2]["Item"]["b"] == {"B": b"\x00\x01bin"}
    assert plain[6]["Error"]["Code"] == "ConditionalCheckFailedException"
    assert plain[6]["Item"]["pk"] == {"S": "a"}
    assert plain[-1]["Error"]["Code"] == "ResourceNotFoundException"
    # Capacity units are doubles on the wire: floats, in both modes.
    assert isinstance(plain[0]["ConsumedCapacity"]["CapacityUnits"], float)
    assert fast[-3]["Attributes"] == {"v": {"N": "3"}}


def test_speedups_are_undone_on_exit() -> None:
    original = DynamoHandler.__dict__.get("serialized")
    with speedups():
        assert DynamoHandler.__dict__.get("serialized") is not original
    assert DynamoHandler.__dict__.get("serialized") is original
