"""AWS's payload and item limits, always on in the sandbox (`eventcraft_sandbox.limits`).

Every limit is exercised through a real boto3 client on a running `Sandbox` (IAM
enforced, as the administrator): a value exactly at the limit passes, one byte more
fails with the error AWS answers. The last tests show a handler meeting the same
limits.
"""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventcraft_sandbox.lambda_runtime import LambdaRuntime
from eventcraft_sandbox.limits import (
    AwsLimits,
    dynamodb_item_size,
    put_events_entry_size,
    sqs_message_size,
)
from eventcraft_sandbox.moto_deploy import Sandbox

MIB = 1024 * 1024


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


# ------------------------------------------------------------------ EventBridge


def entry_of(size: int, **extra: Any) -> dict[str, Any]:
    """A PutEvents entry whose size, as EventBridge counts it, is `size` bytes."""
    base = {"Source": "test.limits", "DetailType": "Sized", **extra}
    detail = '{"pad": ""}'
    padding = size - put_events_entry_size({**base, "Detail": detail})
    # A 2-byte character counts twice: sizes are UTF-8 bytes, not characters.
    return {**base, "Detail": json.dumps({"pad": "é" + "x" * (padding - 2)}, ensure_ascii=False)}


def test_put_events_accepts_1_mib_of_entries_and_refuses_a_byte_more(sandbox: Sandbox) -> None:
    events = sandbox.client("events")
    first = entry_of(300_000, Time="2026-12-01T00:00:00Z", Resources=["arn:aws:s3:::b"])
    rest = MIB - put_events_entry_size(first)
    at_limit = [first, entry_of(rest)]
    assert sum(put_events_entry_size(e) for e in at_limit) == MIB

    accepted = events.put_events(Entries=at_limit)
    assert accepted["FailedEntryCount"] == 0
    assert all("EventId" in e for e in accepted["Entries"])

    # The limit is the request's: two entries together one byte over fail as a whole.
    with pytest.raises(ClientError) as refused:
        events.put_events(Entries=[first, entry_of(rest + 1)])
    assert error(refused) == (
        "ValidationException",
        "Total size of the entries in the request is over the limit.",
    )


def test_put_rule_refuses_numbers_beyond_eventbridges_range_and_other_invalid_patterns(
    sandbox: Sandbox,
) -> None:
    """moto stores any pattern; EventBridge refuses numeric matching beyond +-5.0e9
    (and the invalid patterns of the conformance data) with InvalidEventPatternException."""
    events = sandbox.client("events")
    within = {"detail": {"amount": [{"numeric": [">", 0, "<=", 5_000_000_000]}]}}
    events.put_rule(Name="within", EventPattern=json.dumps(within))
    assert events.describe_rule(Name="within")["EventPattern"] == json.dumps(within)
    beyond = {"detail": {"amount": [{"numeric": [">", 5_000_000_001]}]}}
    with pytest.raises(ClientError) as refused:
        events.put_rule(Name="beyond", EventPattern=json.dumps(beyond))
    assert error(refused) == (
        "InvalidEventPatternException",
        'Event pattern is not valid. Reason: detail.amount: numeric value for ">" 5000000001 '
        "is out of range; EventBridge compares numbers between -5000000000 and 5000000000 "
        "inclusive",
    )
    with pytest.raises(ClientError) as unknown:
        events.put_rule(Name="unknown", EventPattern='{"detail": {"a": [{"gremlin": 1}]}}')
    assert error(unknown)[0] == "InvalidEventPatternException"
    names = [r["Name"] for r in events.list_rules()["Rules"]]
    assert names == ["within"]


def test_the_entry_size_is_eventbridges_formula() -> None:
    entry = {
        "Source": "shop",  # 4
        "DetailType": "Ordered",  # 7
        "Detail": '{"a":"é"}',  # 10 bytes (é is 2)
        "Time": "2026-12-01T00:00:00Z",  # 14, whatever its text
        "Resources": ["r1", "r22"],  # 5
        "EventBusName": "ignored",
    }
    assert put_events_entry_size(entry) == 4 + 7 + 10 + 14 + 5


# ------------------------------------------------------------------ SQS


def attributes_of(size: int) -> dict[str, Any]:
    return {"note": {"DataType": "String", "StringValue": "n" * (size - 4 - 6)}}


def test_sqs_send_message_counts_body_and_attributes_against_the_queues_maximum(
    sandbox: Sandbox,
) -> None:
    sqs = sandbox.client("sqs")
    default = sqs.create_queue(QueueName="default-size")["QueueUrl"]
    small = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})[
        "QueueUrl"
    ]
    attributes = attributes_of(100)
    assert sqs_message_size("", attributes) == 100
    body = "é" + "b" * (MIB - 100 - 2)  # 1 MiB in all, in UTF-8 bytes
    sqs.send_message(QueueUrl=default, MessageBody=body, MessageAttributes=attributes)
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=default, MessageBody=body + "b", MessageAttributes=attributes)
    assert error(refused) == (
        "InvalidParameterValue",
        "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes.",
    )

    sqs.send_message(QueueUrl=small, MessageBody="s" * 924, MessageAttributes=attributes)
    with pytest.raises(ClientError) as too_big:
        sqs.send_message(QueueUrl=small, MessageBody="s" * 925, MessageAttributes=attributes)
    assert error(too_big)[1].endswith("Message must be shorter than 1024 bytes.")
    received = sqs.receive_message(QueueUrl=small, MaxNumberOfMessages=10)["Messages"]
    assert [len(m["Body"]) for m in received] == [924]


def test_sqs_send_message_batch_is_refused_over_1_mib_in_all(sandbox: Sandbox) -> None:
    sqs = sandbox.client("sqs")
    queue = sqs.create_queue(QueueName="batches")["QueueUrl"]
    half = MIB // 2
    sent = sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": "a", "MessageBody": "a" * half}, {"Id": "b", "MessageBody": "b" * half}],
    )
    assert [s["Id"] for s in sent["Successful"]] == ["a", "b"]
    with pytest.raises(ClientError) as refused:
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[
                {"Id": "a", "MessageBody": "a" * half},
                {
                    "Id": "b",
                    "MessageBody": "b" * (half - 10),
                    "MessageAttributes": attributes_of(11),
                },
            ],
        )
    assert error(refused) == (
        "BatchRequestTooLong",
        "Batch requests cannot be longer than 1048576 bytes. You have sent 1048577 bytes.",
    )


@pytest.mark.parametrize(
    ("body", "character"),
    [("nul \x00", "#x0"), ("bell \x07", "#x7"), ("noncharacter \uffff", "#xFFFF")],
)
def test_sqs_refuses_characters_outside_the_allowed_set(
    sandbox: Sandbox, body: str, character: str
) -> None:
    sqs = sandbox.client("sqs")
    queue = sqs.create_queue(QueueName="characters")["QueueUrl"]
    allowed = "tab\t newline\n return\r é 中 😀 \ue000 \U0010ffff"
    sqs.send_message(
        QueueUrl=queue,
        MessageBody=allowed,
        MessageAttributes={"note": {"DataType": "String", "StringValue": allowed}},
    )
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    code, message = error(refused)
    assert code == "InvalidMessageContents"
    assert message == (
        f"Invalid binary character '{character}' was found in the message body, the set of "
        "allowed characters is #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | "
        "[#x10000-#x10FFFF]."
    )
    with pytest.raises(ClientError) as in_attribute:
        sqs.send_message(
            QueueUrl=queue,
            MessageBody="fine",
            MessageAttributes={"note": {"DataType": "String", "StringValue": body}},
        )
    assert error(in_attribute)[0] == "InvalidMessageContents"
    assert "in the message attribute 'note'" in error(in_attribute)[1]
    with pytest.raises(ClientError) as in_batch:
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[{"Id": "ok", "MessageBody": "fine"}, {"Id": "bad", "MessageBody": body}],
        )
    assert error(in_batch)[0] == "InvalidMessageContents"
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == [allowed]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            [f"a{i}" for i in range(11)],
            "Number of message attributes [11] exceeds the allowed maximum [10].",
        ),
        (["trace id"], "Message (user) attributes name can only contain upper and lower score"),
        (["AWS.trace"], "Message (user) attribute name 'AWS.trace' is reserved for internal use"),
        (["amazon.x"], "Message (user) attribute name 'amazon.x' is reserved for internal use"),
        ([".trace"], "Message (user) attribute name '.trace' cannot start or end with '.'."),
        (["trace."], "Message (user) attribute name 'trace.' cannot start or end with '.'."),
        (["a..b"], "Message (user) attribute name 'a..b' cannot have successive '.' characters."),
        (["n" * 256], "must be shorter than 256 Bytes."),
    ],
)
def test_sqs_message_attribute_names_follow_sqss_rules(
    sandbox: Sandbox, names: list[str], expected: str
) -> None:
    sqs = sandbox.client("sqs")
    queue = sqs.create_queue(QueueName="attributes")["QueueUrl"]
    legal = ["Foo_Bar-1.2", "AWSfoo", "aws-x", "n" * 255, *(f"k{i}" for i in range(6))]
    value = {"DataType": "String", "StringValue": "v"}
    sqs.send_message(
        QueueUrl=queue, MessageBody="ok", MessageAttributes=dict.fromkeys(legal, value)
    )
    with pytest.raises(ClientError) as refused:
        sqs.send_message(
            QueueUrl=queue, MessageBody="x", MessageAttributes=dict.fromkeys(names, value)
        )
    code, message = error(refused)
    assert code == "InvalidParameterValue"
    assert expected in message


# ------------------------------------------------------------------ Lambda


def create_function(sandbox: Sandbox, name: str, source: str, actions: tuple[str, ...] = ()) -> str:
    iam = sandbox.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    if actions:
        iam.put_role_policy(
            RoleName=f"{name}-role",
            PolicyName="grants",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
                }
            ),
        )
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", textwrap.dedent(source))
    return str(
        sandbox.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
            Timeout=30,
        )["FunctionArn"]
    )


ECHO_SIZE = """
    def handler(event, context):
        if "reply" in event:
            return "r" * event["reply"]
        return len(event["pad"])
"""


def payload_of(size: int) -> bytes:
    """A JSON payload of exactly `size` bytes."""
    return json.dumps({"pad": "p" * (size - len('{"pad": ""}'))}).encode()


def test_invoke_payloads_are_limited_to_6_mb_sync_and_1_mib_async(sandbox: Sandbox) -> None:
    create_function(sandbox, "sized", ECHO_SIZE)
    client = sandbox.client("lambda")
    with LambdaRuntime(admin=sandbox.admin):
        sync = client.invoke(FunctionName="sized", Payload=payload_of(6 * MIB))
        assert "FunctionError" not in sync
        assert json.loads(sync["Payload"].read()) == 6 * MIB - len('{"pad": ""}')
        with pytest.raises(ClientError) as too_big:
            client.invoke(FunctionName="sized", Payload=payload_of(6 * MIB + 1))
        assert error(too_big) == (
            "RequestEntityTooLargeException",
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
        )
        assert too_big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413

        queued = client.invoke(
            FunctionName="sized", InvocationType="Event", Payload=payload_of(MIB)
        )
        assert queued["StatusCode"] == 202
        with pytest.raises(ClientError) as too_big_async:
            client.invoke(FunctionName="sized", InvocationType="Event", Payload=payload_of(MIB + 1))
        assert error(too_big_async) == (
            "RequestEntityTooLargeException",
            "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)",
        )


def test_a_response_over_6_mb_is_a_function_error(sandbox: Sandbox) -> None:
    create_function(sandbox, "replier", ECHO_SIZE)
    client = sandbox.client("lambda")
    limit = 6_291_556  # what Lambda's message names
    with LambdaRuntime(admin=sandbox.admin):
        fits = client.invoke(FunctionName="replier", Payload=json.dumps({"reply": limit - 2}))
        assert "FunctionError" not in fits, fits["Payload"].read()[:500]
        assert len(fits["Payload"].read()) == limit
        over = client.invoke(FunctionName="replier", Payload=json.dumps({"reply": limit - 1}))
    assert over["FunctionError"] == "Unhandled"
    reported = json.loads(over["Payload"].read())
    assert reported["errorType"] == "Function.ResponseSizeTooLarge"
    assert reported["errorMessage"] == (
        "Response payload size (6291557 bytes) exceeded maximum allowed payload size "
        "(6291556 bytes)."
    )


# ------------------------------------------------------------------ DynamoDB


def table(sandbox: Sandbox, name: str) -> Any:
    client = sandbox.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def item_of(key: str, size: int) -> dict[str, Any]:
    """An item of exactly `size` bytes as DynamoDB counts them."""
    base = {"pk": {"S": key}, "n": {"N": "123.4500"}, "m": {"M": {"ok": {"BOOL": True}}}}
    padding = size - dynamodb_item_size({**base, "data": {"S": ""}})
    return {**base, "data": {"S": "d" * padding}}


def test_the_item_size_is_dynamodbs_formula() -> None:
    item = {
        "pk": {"S": "k1"},  # 2 + 2
        "n": {"N": "-0012.3400"},  # 1 + (4 digits: 2 + 1)
        "b": {"B": "AAEC"},  # 1 + 3 raw bytes
        "f": {"BOOL": False},  # 1 + 1
        "l": {"L": [{"S": "ab"}, {"NULL": True}]},  # 1 + 3 + (1 + 2) + (1 + 1)
        "m": {"M": {"k": {"S": "v"}}},  # 1 + 3 + (1 + 1 + 1)
        "ss": {"SS": ["a", "bc"]},  # 2 + 3
    }
    assert dynamodb_item_size(item) == 4 + 4 + 4 + 2 + 9 + 7 + 5


def test_put_item_accepts_400_kb_and_refuses_a_byte_more(sandbox: Sandbox) -> None:
    client = table(sandbox, "items")
    # 409,600 bytes: more than moto's own limit (405,000), exactly AWS's.
    client.put_item(TableName="items", Item=item_of("fits", 400 * 1024))
    with pytest.raises(ClientError) as refused:
        client.put_item(TableName="items", Item=item_of("over", 400 * 1024 + 1))
    assert error(refused) == (
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
    )
    with pytest.raises(ClientError) as in_batch:
        client.batch_write_item(
            RequestItems={
                "items": [
                    {"PutRequest": {"Item": item_of("small", 100)}},
                    {"PutRequest": {"Item": item_of("over", 400 * 1024 + 1)}},
                ]
            }
        )
    assert error(in_batch) == error(refused)
    keys = sorted(i["pk"]["S"] for i in client.scan(TableName="items")["Items"])
    assert keys == ["fits"]  # the batch wrote nothing


def test_an_update_that_grows_an_item_past_400_kb_is_refused_and_undone(
    sandbox: Sandbox,
) -> None:
    client = table(sandbox, "growing")
    client.put_item(TableName="growing", Item=item_of("g", 400 * 1024 - 10))
    # Nested attributes, which moto's own check never saw: a map element costs 1 byte
    # plus its name and its value.
    client.update_item(
        TableName="growing",
        Key={"pk": {"S": "g"}},
        UpdateExpression="SET m.e = :v",
        ExpressionAttributeValues={":v": {"S": "123"}},  # 5 bytes: 409,595
    )
    grown = client.get_item(TableName="growing", Key={"pk": {"S": "g"}})["Item"]
    assert dynamodb_item_size(grown) == 400 * 1024 - 5
    with pytest.raises(ClientError) as refused:
        client.update_item(
            TableName="growing",
            Key={"pk": {"S": "g"}},
            UpdateExpression="SET m.more = :v",
            ExpressionAttributeValues={":v": {"S": "x" * 20}},
        )
    assert error(refused) == (
        "ValidationException",
        "Item size to update has exceeded the maximum allowed size",
    )
    assert client.get_item(TableName="growing", Key={"pk": {"S": "g"}})["Item"] == grown

    with pytest.raises(ClientError):
        client.update_item(
            TableName="growing",
            Key={"pk": {"S": "new"}},
            UpdateExpression="SET big = :v",
            ExpressionAttributeValues={":v": {"S": "x" * 410_000}},
        )
    assert "Item" not in client.get_item(TableName="growing", Key={"pk": {"S": "new"}})


def test_a_transaction_growing_an_item_past_400_kb_is_cancelled(sandbox: Sandbox) -> None:
    client = table(sandbox, "ledger")
    client.put_item(TableName="ledger", Item=item_of("big", 400 * 1024 - 10))
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "other"}}}},
                {
                    "Update": {
                        "TableName": "ledger",
                        "Key": {"pk": {"S": "big"}},
                        "UpdateExpression": "SET more = :v",
                        "ExpressionAttributeValues": {":v": {"S": "x" * 20}},
                    }
                },
            ]
        )
    assert error(cancelled)[0] == "TransactionCanceledException"
    reasons = cancelled.value.response["CancellationReasons"]
    assert reasons == [
        {"Code": "None"},
        {
            "Code": "ValidationError",
            "Message": "Item size to update has exceeded the maximum allowed size",
        },
    ]
    keys = sorted(i["pk"]["S"] for i in client.scan(TableName="ledger")["Items"])
    assert keys == ["big"]


# ------------------------------------------------------------------ handlers


PUBLISHER = """
    import json

    import boto3
    from botocore.exceptions import ClientError

    def handler(event, context):
        detail = json.dumps({"p": "x" * event["n"]})
        entry = {"Source": "shop", "DetailType": "Big", "Detail": detail}
        try:
            boto3.client("events").put_events(Entries=[entry])
        except ClientError as exc:
            return exc.response["Error"]
        return "published"
"""


def test_a_handler_meets_the_same_limits(sandbox: Sandbox) -> None:
    create_function(sandbox, "publisher", PUBLISHER, actions=("events:PutEvents",))
    overhead = len("shop") + len("Big") + len(json.dumps({"p": ""}))
    with LambdaRuntime(admin=sandbox.admin) as runtime:
        fits = runtime.invoke("publisher", {"n": MIB - overhead})
        over = runtime.invoke("publisher", {"n": MIB - overhead + 1})
    assert fits.payload == "published"
    assert over.payload == {
        "Code": "ValidationException",
        "Message": "Total size of the entries in the request is over the limit.",
    }


def test_the_limits_can_be_those_of_256_kb_payloads() -> None:
    with Sandbox(limits=AwsLimits.with_256kb_payloads()) as sandbox:
        events = sandbox.client("events")
        events.put_events(Entries=[entry_of(256 * 1024)])
        with pytest.raises(ClientError) as refused:
            events.put_events(Entries=[entry_of(256 * 1024 + 1)])
        assert error(refused)[0] == "ValidationException"


def test_stopping_the_sandbox_restores_moto_exactly() -> None:
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict
    from moto.dynamodb.parsing.executors import UpdateExpressionExecutor

    hooked = [
        (BotocoreStubber, "process_request"),
        (DynamoDBBackend, "put_item"),
        (DynamoDBBackend, "update_item"),
        (DynamoDBBackend, "transact_write_items"),
        (UpdateExpressionExecutor, "execute"),
        (LimitedSizeDict, "__setitem__"),
    ]
    before = [vars(owner)[name] for owner, name in hooked]
    with Sandbox():
        assert all(vars(o)[n] is not b for (o, n), b in zip(hooked, before, strict=True))
    assert [vars(owner)[name] for owner, name in hooked] == before
