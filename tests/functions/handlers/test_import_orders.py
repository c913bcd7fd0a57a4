"""import_orders against moto: a JSON Lines file in S3 -> orders placed through place_order,
once per file line; malformed lines reported on a queue, the others placed."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from contracts import parse_detail
from eventcraft import clients, dynamodb, outbox
from eventcraft.publisher import Publisher
from handlers import dlq_processor, import_orders
from tests.functions.awsenv import (
    CallRecorder,
    create_queue,
    create_table,
    drain,
    scan,
    stream_records,
)
from tests.functions.handlers.fixtures_side import (
    BUS,
    OUTBOX,
    Side,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)

BUCKET = "order-imports"
ORDERS = "orders"

MUG = {"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}
POT = {"sku": "sku-blue-pot", "quantity": 1, "unitPriceCents": 4999}
GOOD = [
    {"customerId": "customer-1", "items": [MUG], "currency": "USD"},
    {"customerId": "customer-2", "items": [MUG, POT], "totalCents": 7499},
    {"customerId": "customer-3", "items": [POT], "currency": "EUR"},
]


@pytest.fixture
def rejected(side: Side, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The import's setting; returns the rejected-lines queue URL."""
    create_table(ORDERS)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    url = create_queue("import-rejected-lines")
    monkeypatch.setenv("ORDERS_TABLE", ORDERS)
    monkeypatch.setenv("IMPORT_BUCKET", BUCKET)
    monkeypatch.setenv("REJECTED_LINES_QUEUE_URL", url)
    yield url


def upload(key: str, lines: list[Any]) -> dict[str, Any]:
    """Put the file; return the EventBridge "Object Created" event S3 sends for it."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    response = boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    etag = response["ETag"].strip('"')
    return {
        "version": "0",
        "id": f"s3-event-{etag}",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2025-01-15T10:30:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key, "size": len(text), "etag": etag, "sequencer": "00A1"},
            "request-id": "REQ1",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def orders() -> list[dict[str, Any]]:
    return [item for item in scan(ORDERS) if item["pk"].startswith("order#")]


def test_each_line_is_placed_through_place_order(side: Side, rejected: str) -> None:
    result = import_orders.handler(upload("batch-1.jsonl", GOOD), None)

    assert (result["lines"], result["placed"], result["alreadyPlaced"]) == (3, 3, 0)
    assert result["rejected"] == []
    placed = sorted(orders(), key=lambda o: o["customerId"])
    assert [(o["customerId"], int(o["totalCents"]), o["currency"]) for o in placed] == [
        ("customer-1", 2500, "USD"),
        ("customer-2", 7499, "USD"),  # the stack's default currency
        ("customer-3", 4999, "EUR"),
    ]
    assert all(o["status"] == "PLACED" for o in placed)
    # Their OrderPlaced events, through the outbox, as for any order.
    outbox.relay(stream_records(OUTBOX), table_name=OUTBOX, publisher=Publisher(BUS))
    events = [parse_detail("OrderPlaced", d) for d in side.details("OrderPlaced")]
    assert sorted(e.order_id for e in events) == sorted(o["orderId"] for o in placed)


def test_the_same_event_again_places_nothing(side: Side, rejected: str) -> None:
    event = upload("batch-1.jsonl", [*GOOD, "{broken"])
    first = import_orders.handler(event, None)

    again = import_orders.handler(event, None)

    assert again == first | {"rejected": []}  # the file's totals; nothing done again
    assert again["done"] is True
    assert len(orders()) == 3
    assert len(scan(OUTBOX)) == 3
    assert [r["line"] for r in drain(rejected)] == [4]  # reported once


def test_an_identical_file_uploaded_again_places_nothing(side: Side, rejected: str) -> None:
    import_orders.handler(upload("batch-1.jsonl", GOOD), None)

    reupload = upload("batch-1.jsonl", GOOD)  # same key, same content: same ETag
    result = import_orders.handler(reupload, None)

    assert (result["placed"], result["done"]) == (3, True)
    assert len(orders()) == 3


def test_a_lost_checkpoint_still_places_nothing_twice(side: Side, rejected: str) -> None:
    """Without its checkpoint (deleted by hand), a file's lines are placed again through
    place_order, which answers each with the order placed the first time."""
    event = upload("batch-1.jsonl", GOOD)
    import_orders.handler(event, None)
    pk = import_orders.progress_key(BUCKET, "batch-1.jsonl", event["detail"]["object"]["etag"])
    boto3.client("dynamodb").delete_item(TableName=ORDERS, Key={"pk": {"S": pk}})

    again = import_orders.handler(event, None)

    assert (again["placed"], again["alreadyPlaced"]) == (0, 3)
    assert len(orders()) == 3


def test_a_changed_file_is_a_new_import(side: Side, rejected: str) -> None:
    import_orders.handler(upload("batch-1.jsonl", GOOD), None)
    fourth = {"customerId": "customer-4", "items": [POT]}
    result = import_orders.handler(upload("batch-1.jsonl", [*GOOD, fourth]), None)
    assert (result["placed"], result["alreadyPlaced"]) == (4, 0)
    assert len(orders()) == 7


def test_malformed_lines_are_reported_and_the_others_placed(side: Side, rejected: str) -> None:
    lines = [
        GOOD[0],
        "",  # blank: skipped, but numbering goes on
        "{not json",
        {"customerId": "customer-9", "items": [{**MUG, "quantity": 0}]},
        ["an", "array"],
        {**GOOD[1], "clientRequestId": "mine"},
        {**GOOD[2], "coupon": "FREE"},
        GOOD[2],
    ]

    result = import_orders.handler(upload("mixed.jsonl", lines), None)

    assert (result["lines"], result["placed"]) == (7, 2)
    assert [(r["line"], r["code"]) for r in result["rejected"]] == [
        (3, "NotJson"),
        (4, "InvalidOrderLine"),
        (5, "NotAnObject"),
        (6, "InvalidOrderLine"),
        (7, "InvalidOrderLine"),
    ]
    assert len(orders()) == 2
    reports = sorted(drain(rejected), key=lambda r: r["line"])
    assert [r["line"] for r in reports] == [3, 4, 5, 6, 7]
    assert reports[0]["text"] == "{not json"
    assert {(r["bucket"], r["key"]) for r in reports} == {(BUCKET, "mixed.jsonl")}
    assert "coupon" in reports[-1]["error"]


def test_the_dlq_tool_summarises_the_rejected_lines(
    side: Side, rejected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_orders.handler(upload("bad.jsonl", ["{not json", "[1]", "nope", GOOD[0]]), None)
    monkeypatch.setenv("DLQ_URL", rejected)

    report = dlq_processor.handler({"action": "inspect"}, None)

    assert report["byError"] == {"NotJson": 2, "NotAnObject": 1}


def test_an_overwritten_file_supersedes_its_older_event(side: Side, rejected: str) -> None:
    old = upload("batch-1.jsonl", GOOD)
    upload("batch-1.jsonl", GOOD[:1])

    result = import_orders.handler(old, None)

    assert result["superseded"] is True
    assert orders() == []


def throttled_once_at(monkeypatch: pytest.MonkeyPatch, customer: str) -> None:
    """place_order fails once, as DynamoDB throttling would, for `customer`'s line."""
    real = import_orders.place_order
    failed: list[str] = []

    def place(request: Any) -> Any:
        if request.customer_id == customer and not failed:
            failed.append(customer)
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "TransactWriteItems",
            )
        return real(request)

    monkeypatch.setattr(import_orders, "place_order", place)


def test_a_transient_failure_stops_at_its_line_and_the_retry_continues_there(
    side: Side, rejected: str, invokes: list[InvokeRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient failure is not continued at once: the invocation fails, and Lambda
    retries the event with backoff."""
    event = upload("batch-1.jsonl", ["{broken", *GOOD, "[1]"])
    throttled_once_at(monkeypatch, "customer-2")  # line 3

    with pytest.raises(import_orders.ImportIncompleteError, match="stopped at line 3"):
        import_orders.handler(event, CountdownContext(per_call_ms=0))
    assert invokes == []
    assert [o["customerId"] for o in orders()] == ["customer-1"]
    assert [r["line"] for r in drain(rejected)] == [1]

    result = import_orders.handler(event, None)  # Lambda's retry of the event
    assert (result["placed"], result["rejectedCount"], result["done"]) == (3, 2, True)
    assert len(orders()) == 3
    assert [r["line"] for r in drain(rejected)] == [5]  # line 1 is not reported again


def test_events_of_another_bucket_are_refused(side: Side, rejected: str) -> None:
    event = upload("batch-1.jsonl", GOOD)
    event["detail"]["bucket"]["name"] = "someone-elses-bucket"
    with pytest.raises(import_orders.WrongBucketError, match="IMPORT_BUCKET"):
        import_orders.handler(event, None)
    assert orders() == []


def test_the_idempotency_key_is_bucket_key_etag_and_line() -> None:
    key = import_orders.client_request_id("b", "k", "e", 1)
    assert key.startswith("import-") and len(key) <= 512
    assert key == import_orders.client_request_id("b", "k", "e", 1)
    others = {
        import_orders.client_request_id("b", "k", "e", 2),
        import_orders.client_request_id("b", "k", "f", 1),
        import_orders.client_request_id("b", "j", "e", 1),
        import_orders.client_request_id("c", "k", "e", 1),
    }
    assert key not in others and len(others) == 4


def test_access_covers_what_place_order_needs() -> None:
    from handlers import place_order

    assert {k: import_orders.ACCESS[k] for k in place_order.ACCESS} == place_order.ACCESS


def test_access_is_what_the_code_calls(
    side: Side, rejected: str, invokes: list[InvokeRequest], side_calls: CallRecorder
) -> None:
    side_calls.attach("lambda")
    event = upload("batch-1.jsonl", [*GOOD, "{broken"])
    import_orders.handler(event, CountdownContext(per_call_ms=100_000))  # continues itself
    assert deliver_continuations(invokes)[-1]["done"] is True
    assert side_calls.by_env() == import_orders.ACCESS


# --- #11 point 9: a file too big for one invocation -----------------------------------------

FUNCTION = "order-import"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"


class CountdownContext:
    """A Lambda context whose remaining time drops by `per_call_ms` each time it is
    asked (the import asks once a line): time passes with the work, not the wall clock.
    From 300 s by 40 s, the import does 7 lines an invocation (the 7th finds 20 s left,
    its STOP_MARGIN_MS; the 8th none)."""

    def __init__(
        self,
        timeout_ms: int = 300_000,
        per_call_ms: int = 40_000,
        invoked_function_arn: str = FUNCTION_ARN,
    ) -> None:
        self.remaining_ms = timeout_ms
        self.per_call_ms = per_call_ms
        self.invoked_function_arn = invoked_function_arn

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms = max(0, self.remaining_ms - self.per_call_ms)
        return self.remaining_ms


@dataclass(frozen=True)
class InvokeRequest:
    """An Invoke request as moto received it."""

    function_arn: str
    invocation_type: str
    payload: dict[str, Any]


@pytest.fixture
def invokes(rejected: str, monkeypatch: pytest.MonkeyPatch) -> list[InvokeRequest]:
    """The import function in moto (FUNCTION_ARN, what the context names), and the Invoke
    requests moto receives for it, recorded instead of run: the test delivers each, as
    Lambda's asynchronous queue does."""
    from moto.awslambda.models import LambdaFunction

    role = boto3.client("iam").create_role(RoleName="import", AssumeRolePolicyDocument="{}")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    boto3.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)  # as the Lambda runtime sets it
    received: list[InvokeRequest] = []

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
        invocation_type = request_headers.get("x-amz-invocation-type", "RequestResponse")
        received.append(InvokeRequest(self.function_arn, invocation_type, json.loads(body)))
        return b""

    monkeypatch.setattr(LambdaFunction, "invoke", invoke)
    return received


def deliver_continuations(invokes: list[InvokeRequest], *, start: int = 0) -> list[dict[str, Any]]:
    """Run each invocation the import asked for from `invokes[start]` on (and those they
    ask for), in order, as Lambda's asynchronous queue does; their results."""
    results = []
    delivered = start
    while delivered < len(invokes):
        request = invokes[delivered]
        delivered += 1
        results.append(import_orders.handler(request.payload, CountdownContext()))
    return results


BAD_LINES = {3: "{not json", 11: '{"customerId": "c"}', 19: "[1]"}


def big_file() -> dict[str, Any]:
    """25 lines, 3 of them refused (BAD_LINES): 4 invocations of 7 lines."""
    lines = [
        BAD_LINES.get(n) or {"customerId": f"customer-{n}", "items": [MUG]} for n in range(1, 26)
    ]
    return upload("big.jsonl", lines)


def assert_imported_once(rejected: str) -> None:
    """Every good line of big_file placed once, every bad line reported once."""
    assert sorted(o["customerId"] for o in orders()) == sorted(
        f"customer-{n}" for n in range(1, 26) if n not in BAD_LINES
    )
    assert sorted(r["line"] for r in drain(rejected)) == sorted(BAD_LINES)


def test_a_file_too_big_for_one_invocation_continues_itself_until_it_is_done(
    side: Side, rejected: str, invokes: list[InvokeRequest]
) -> None:
    """An invocation whose time runs out saves its checkpoint, invokes its own function
    with the same event and succeeds; the chain completes the file. Before, it failed
    (an error each time) and Lambda's two retries took the file 3 invocations far at
    most; the rest waited in the function's DLQ."""
    event = big_file()

    first = import_orders.handler(event, CountdownContext())

    assert (first["done"], first["continued"], first["nextLine"]) == (False, True, 8)
    assert invokes == [InvokeRequest(FUNCTION_ARN, "Event", event)]  # itself, async, same event
    results = deliver_continuations(invokes)
    assert [(r["nextLine"], r["continued"], r["done"]) for r in results] == [
        (15, True, False),
        (22, True, False),
        (26, False, True),
    ]
    assert len(invokes) == 3
    assert all(i == InvokeRequest(FUNCTION_ARN, "Event", event) for i in invokes)
    last = results[-1]
    assert (last["lines"], last["placed"], last["alreadyPlaced"], last["rejectedCount"]) == (
        25,
        22,
        0,
        3,
    )
    assert_imported_once(rejected)

    # A continuation delivered again once the file is done: nothing placed or reported.
    again = import_orders.handler(invokes[0].payload, CountdownContext())
    assert (again["done"], again["continued"]) == (True, False)
    assert len(invokes) == 3
    assert len(orders()) == 22
    assert drain(rejected) == []


def test_a_continuation_delivered_twice_imports_each_line_once(
    side: Side, rejected: str, invokes: list[InvokeRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two invocations of the same continuation at once: the second starts from the same
    checkpoint while the first places its first line. The one that saves first goes on;
    the other finds the checkpoint moved at its next save (before it reports line 11)
    and stops without continuing: one chain, each order placed once, each bad line
    reported once."""
    event = big_file()
    import_orders.handler(event, CountdownContext())
    (continuation,) = invokes
    real = import_orders.place_order
    overlap: list[dict[str, Any]] = []

    def place_while_the_duplicate_runs(request: Any) -> Any:
        monkeypatch.setattr(import_orders, "place_order", real)  # once
        overlap.append(import_orders.handler(continuation.payload, CountdownContext()))
        return real(request)

    monkeypatch.setattr(import_orders, "place_order", place_while_the_duplicate_runs)
    first = import_orders.handler(continuation.payload, CountdownContext())

    (duplicate,) = overlap
    assert (duplicate["nextLine"], duplicate["continued"]) == (15, True)
    assert (first["overtaken"], first["continued"], first["done"]) == (True, False, False)
    assert len(invokes) == 2  # the first import's, and the duplicate's: one chain
    results = deliver_continuations(invokes, start=1)
    assert results[-1]["done"] is True
    assert (results[-1]["placed"], results[-1]["rejectedCount"]) == (22, 3)
    assert_imported_once(rejected)


def test_an_invocation_that_imports_no_line_fails_instead_of_continuing(
    side: Side, rejected: str, invokes: list[InvokeRequest]
) -> None:
    """Less than STOP_MARGIN_MS left at the first line (a function timeout of 20 s):
    continuing would start an invocation that stops there again, forever."""
    event = big_file()

    with pytest.raises(import_orders.ImportStalledError) as stalled:
        import_orders.handler(event, CountdownContext(timeout_ms=20_000, per_call_ms=1))

    assert str(stalled.value).startswith(
        "s3://order-imports/big.jsonl: no line imported in this invocation, stopped at line 1 "
        "(less than 20000 ms of the invocation were left at its first line: the function's "
        "timeout must be longer). Not continued in a new invocation"
    )
    assert invokes == []
    assert orders() == []
    assert drain(rejected) == []


def test_re_reading_a_long_head_that_takes_the_whole_invocation_fails_too(
    side: Side, rejected: str, invokes: list[InvokeRequest]
) -> None:
    """The lines before the checkpoint are re-read (for duplicates); an invocation that
    spends its time there imports nothing, and says why instead of continuing."""
    lines = [{"customerId": f"customer-{n}", "items": [MUG]} for n in range(1, 1501)]
    event = upload("long.jsonl", lines)
    pk = import_orders.progress_key(BUCKET, "long.jsonl", event["detail"]["object"]["etag"])
    checkpoint = {"pk": pk, "nextLine": 1400, "lines": 1399, "placed": 1399, "version": 14}
    boto3.client("dynamodb").put_item(TableName=ORDERS, Item=dynamodb.serialize(checkpoint))

    with pytest.raises(import_orders.ImportStalledError, match="re-reading the lines before"):
        # The first look at the time, at line 1000, finds 10 s left.
        import_orders.handler(event, CountdownContext(per_call_ms=290_000))
    assert invokes == []
    assert orders() == []


def test_a_continuation_lambda_refuses_fails_so_that_the_event_is_retried(
    side: Side, rejected: str, invokes: list[InvokeRequest]
) -> None:
    event = big_file()
    elsewhere = FUNCTION_ARN.replace(FUNCTION, "no-such-function")

    with pytest.raises(import_orders.ImportIncompleteError) as stopped:
        import_orders.handler(event, CountdownContext(invoked_function_arn=elsewhere))
    assert "stopped at line 8 (out of time, and the rest was not handed over: " in str(
        stopped.value
    )
    assert "ResourceNotFoundException" in str(stopped.value)

    retry = import_orders.handler(event, CountdownContext())  # resumes at line 8
    assert (retry["nextLine"], retry["continued"]) == (15, True)
    deliver_continuations(invokes)
    assert_imported_once(rejected)


# --- #11 points 7 and 10: what a line may hold --------------------------------------------


def test_a_line_beyond_the_bounds_is_refused_not_retried(side: Side, rejected: str) -> None:
    """A 39-digit total failed with [<class 'decimal.Rounded'>], was taken for a transient
    failure, and the whole file was retried until it was dead-lettered."""
    huge = {"customerId": "customer-9", "items": [{**MUG, "unitPriceCents": 10**39}]}
    event = upload("huge.jsonl", [GOOD[0], huge, GOOD[1]])

    result = import_orders.handler(event, None)

    assert (result["placed"], result["done"]) == (2, True)
    (report,) = drain(rejected)
    assert report["line"] == 2
    assert (
        "items.0.unitPriceCents: Input should be less than or equal to 5000000000"
        in (report["error"])
    )


def test_a_byte_order_mark_does_not_lose_the_first_line(side: Side, rejected: str) -> None:
    text = "\n".join(json.dumps(line) for line in GOOD)
    etag = boto3.client("s3").put_object(
        Bucket=BUCKET, Key="bom.jsonl", Body=b"\xef\xbb\xbf" + text.encode()
    )["ETag"]
    event = upload("other.jsonl", [])
    event["detail"]["object"].update(key="bom.jsonl", etag=etag.strip('"'))

    result = import_orders.handler(event, None)

    assert (result["placed"], result["rejected"]) == (3, [])
    assert drain(rejected) == []


def test_identical_lines_place_one_order(side: Side, rejected: str) -> None:
    same_order = {"currency": "USD", "items": [MUG], "customerId": "customer-1"}  # key order
    result = import_orders.handler(
        upload("twice.jsonl", [GOOD[0], GOOD[1], same_order, GOOD[0]]), None
    )

    assert (result["placed"], result["rejectedCount"]) == (2, 2)
    assert [o["customerId"] for o in orders()].count("customer-1") == 1
    reports = sorted(drain(rejected), key=lambda r: r["line"])
    assert [r["line"] for r in reports] == [3, 4]
    assert all("the same order as line 1" in r["error"] for r in reports)


def sqs_refuses_what_aws_refuses() -> None:
    """SendMessage on eventcraft's SQS client fails, as AWS fails it, when a body or an
    attribute holds a character outside SQS's set (moto accepts them)."""
    allowed = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")

    def check(params: dict[str, Any], **_: Any) -> None:
        texts = [params.get("MessageBody", "")] + [
            a.get("StringValue", "") for a in params.get("MessageAttributes", {}).values()
        ]
        if not all(allowed.fullmatch(text) for text in texts):
            raise ClientError(
                {"Error": {"Code": "InvalidParameterValue", "Message": "invalid character"}},
                "SendMessage",
            )

    clients.client("sqs").meta.events.register("before-parameter-build.sqs.SendMessage", check)


def test_a_control_character_in_a_field_name_is_reported_and_the_file_goes_on(
    side: Side, rejected: str
) -> None:
    """The refusal named the field raw in the ERROR_MESSAGE attribute; AWS refused the
    message and the import stopped there."""
    sqs_refuses_what_aws_refuses()
    odd = {"customerId": "customer-7", "items": [{"sku": "sku-red-mug", "qu\x00antity": 2}]}

    result = import_orders.handler(upload("odd.jsonl", [GOOD[0], odd, GOOD[2]]), None)

    assert (result["placed"], result["done"]) == (2, True)
    queue = boto3.client("sqs")
    (message,) = queue.receive_message(
        QueueUrl=rejected, MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    error = message["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"]
    assert "items.0.qu\\x00antity: Extra inputs are not permitted" in error
    assert json.loads(message["Body"])["line"] == 2
