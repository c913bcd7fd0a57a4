"""import_orders against moto: a JSON Lines file in S3 -> orders placed through place_order,
once per file line; malformed lines reported on a queue, the others placed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from contracts import parse_detail
from eventcraft import clients, outbox
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
    side: Side, rejected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = upload("batch-1.jsonl", ["{broken", *GOOD, "[1]"])
    throttled_once_at(monkeypatch, "customer-2")  # line 3

    with pytest.raises(import_orders.ImportIncompleteError, match="stopped at line 3"):
        import_orders.handler(event, None)
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


def test_access_is_what_the_code_calls(side: Side, rejected: str, side_calls: CallRecorder) -> None:
    event = upload("batch-1.jsonl", [*GOOD, "{broken"])
    import_orders.handler(event, None)
    import_orders.handler(event, None)  # duplicate: place_order reads the first order
    assert side_calls.by_env() == import_orders.ACCESS


# --- #11 point 9: a file too big for one invocation -----------------------------------------


class CountdownContext:
    """A Lambda context whose remaining time drops by `per_call_ms` each time it is
    asked (the import asks once a line): time passes with the work, not the wall clock."""

    def __init__(self, timeout_ms: int = 300_000, per_call_ms: int = 40_000) -> None:
        self.remaining_ms = timeout_ms
        self.per_call_ms = per_call_ms

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms = max(0, self.remaining_ms - self.per_call_ms)
        return self.remaining_ms


def test_a_file_too_big_for_one_invocation_resumes_from_its_checkpoint(
    side: Side, rejected: str
) -> None:
    """Each invocation stops before its time runs out and saves where it is; each retry
    continues there: every good line is placed once, every bad line reported once, and
    the file completes (before, every attempt started again at line 1 and timed out)."""
    bad = {3: "{not json", 11: '{"customerId": "c"}', 19: "[1]"}
    lines = [bad.get(n) or {"customerId": f"customer-{n}", "items": [MUG]} for n in range(1, 26)]
    event = upload("big.jsonl", lines)

    stops: list[int] = []
    result: dict[str, Any] = {}
    for _ in range(10):  # Lambda retries the event; a redrive from its DLQ continues alike
        try:
            result = import_orders.handler(event, CountdownContext())
            break
        except import_orders.ImportIncompleteError as stopped:
            assert "the function's time was running out" in str(stopped)
            stops.append(stopped.next_line)
    assert stops == [9, 17, 25]  # 8 lines an invocation, each resuming at the last stop
    assert result["done"] is True
    assert (result["lines"], result["placed"], result["rejectedCount"]) == (25, 22, 3)
    assert sorted(o["customerId"] for o in orders()) == sorted(
        f"customer-{n}" for n in range(1, 26) if n not in bad
    )
    assert sorted(r["line"] for r in drain(rejected)) == [3, 11, 19]  # each once

    # The event again (a late duplicate): the file is done, nothing placed or reported.
    assert import_orders.handler(event, CountdownContext())["done"] is True
    assert len(orders()) == 22
    assert drain(rejected) == []


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
