"""dlq_processor against moto: inspect, redrive to a queue or the bus, never lose one."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from contracts import sample_event
from handlers import dlq_processor
from tests.functions.awsenv import CallRecorder, create_queue, drain, peek
from tests.functions.handlers.fixtures_side import (
    Side,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)


def send(queue_url: str, body: Any, attributes: dict[str, str] | None = None, **extra: Any) -> None:
    kwargs: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MessageBody": body if isinstance(body, str) else json.dumps(body),
        **extra,
    }
    if attributes:
        kwargs["MessageAttributes"] = {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        }
    boto3.client("sqs").send_message(**kwargs)


def rule_dlq_message(detail_type: str = "OrderPlaced", **overrides: Any) -> dict[str, Any]:
    """What EventBridge puts in a target's DLQ: the event, error attributes."""
    return {
        "body": sample_event(detail_type, **overrides),
        "attributes": {
            "ERROR_CODE": "Lambda.FunctionError",
            "ERROR_MESSAGE": "KeyError: 'orderId'",
            "RULE_ARN": "arn:aws:events:us-east-1:123456789012:rule/order-bus/reserve",
        },
    }


def destination_record(detail_type: str = "PaymentProcessed") -> dict[str, Any]:
    """What a Lambda on-failure destination receives."""
    return {
        "version": "1.0",
        "timestamp": "2025-01-15T10:31:00.000Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:ship:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": sample_event(detail_type),
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ShippingUnavailable", "errorMessage": "no carrier"},
    }


@pytest.fixture
def dlq(side: Side, monkeypatch: pytest.MonkeyPatch) -> str:
    url = create_queue("reserve-dlq")
    monkeypatch.setenv("DLQ_URL", url)
    monkeypatch.setenv("REDRIVE_QUEUE_URL", create_queue("reserve-queue"))
    return url


def fill(dlq_url: str) -> None:
    rule = rule_dlq_message()
    send(dlq_url, rule["body"], rule["attributes"])
    send(dlq_url, destination_record())
    send(dlq_url, "not json at all")


def test_inspect_summarises_and_leaves_every_message_in_place(dlq: str) -> None:
    fill(dlq)

    report = dlq_processor.handler({"action": "inspect"}, None)

    assert report["examined"] == 3
    assert report["byError"] == {
        "Lambda.FunctionError": 1,
        "ShippingUnavailable": 1,
        "NotJson": 1,
    }
    assert report["byDetailType"] == {
        "OrderPlaced": 1,
        "PaymentProcessed": 1,
        "<not an EventBridge event>": 1,
    }
    assert report["bySource"] == {
        "order-saga.orders": 1,
        "order-saga.payments": 1,
        "<none>": 1,
    }
    sample = next(s for s in report["samples"] if s["detailType"] == "OrderPlaced")
    assert sample["errorMessage"] == "KeyError: 'orderId'"
    assert (sample["orderId"], sample["eventId"]) == (
        "order-0001",
        sample_event("OrderPlaced")["detail"]["eventId"],
    )
    assert len(peek(dlq)) == 3  # visible again at once, not after a timeout
    assert report["approximateRemaining"] == 3


def test_inspect_stops_at_max(dlq: str) -> None:
    for i in range(7):
        rule = rule_dlq_message(orderId=f"order-{i}")
        send(dlq, rule["body"], rule["attributes"])
    report = dlq_processor.handler({"action": "inspect", "max": 4}, None)
    assert report["examined"] == 4
    assert len(peek(dlq)) == 7


def test_redrive_to_the_queue_moves_then_deletes(dlq: str) -> None:
    fill(dlq)
    source = dlq_processor._env("REDRIVE_QUEUE_URL", "")

    report = dlq_processor.handler({"action": "redrive", "target": "queue"}, None)

    assert (report["moved"], report["notMoved"], report["movedNotDeleted"]) == (3, [], [])
    assert peek(dlq) == []
    moved = {m["Body"]: m for m in peek(source)}
    bodies = [json.loads(b) if b.startswith("{") else b for b in moved]
    assert sample_event("OrderPlaced") in bodies
    # A destination record is unwrapped: the queue gets the event that failed.
    assert sample_event("PaymentProcessed") in bodies
    assert "not json at all" in bodies
    # The DLQ producer's diagnostics are not carried over.
    for message in moved.values():
        assert "ERROR_CODE" not in message.get("MessageAttributes", {})


def test_redrive_to_the_bus_republishes_events_and_keeps_the_rest(side: Side, dlq: str) -> None:
    fill(dlq)

    report = dlq_processor.handler({"action": "redrive", "target": "bus", "max": 10}, None)

    assert report["moved"] == 2
    [not_moved] = report["notMoved"]
    assert "no EventBridge event" in not_moved["reason"]
    events = side.published()
    assert sorted(e["detail-type"] for e in events) == ["OrderPlaced", "PaymentProcessed"]
    placed = next(e for e in events if e["detail-type"] == "OrderPlaced")
    assert placed["detail"] == sample_event("OrderPlaced")["detail"]
    assert placed["time"] == "2025-01-15T10:30:00Z"  # event time kept
    [left] = peek(dlq)
    assert left["Body"] == "not json at all"


def test_a_failed_send_deletes_nothing_and_reports_each_message(
    dlq: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(dlq)
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")

    report = dlq_processor.handler({"action": "redrive", "target": "bus"}, None)

    assert report["moved"] == 0
    assert len(report["notMoved"]) == 3
    assert len(peek(dlq)) == 3


def test_redrive_to_a_fifo_queue_keeps_the_group_and_is_not_deduplicated_away(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq_url = create_queue("payments-dlq.fifo")
    source = create_queue("payments.fifo")
    monkeypatch.setenv("DLQ_URL", dlq_url)
    monkeypatch.setenv("REDRIVE_QUEUE_URL", source)
    body = sample_event("PaymentProcessed")
    # The original message went through the source queue with this deduplication id.
    send(source, body, MessageGroupId="order-0001", MessageDeduplicationId="dedup-1")
    drain(source)
    send(dlq_url, body, MessageGroupId="order-0001", MessageDeduplicationId="dedup-1")

    report = dlq_processor.handler({"action": "redrive", "target": "queue"}, None)

    assert report["moved"] == 1
    [moved] = peek(source)
    assert moved["Attributes"]["MessageGroupId"] == "order-0001"
    assert json.loads(moved["Body"]) == body


def test_redrive_moves_at_most_max(dlq: str) -> None:
    for i in range(15):
        send(dlq, sample_event("OrderPlaced", orderId=f"order-{i}"))
    report = dlq_processor.handler({"action": "redrive", "target": "queue", "max": 5}, None)
    assert report["moved"] == 5
    assert len(peek(dlq)) == 10


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({"action": "purge"}, "action"),
        ({"action": "inspect", "max": 0}, "max"),
        ({"action": "redrive"}, "needs a target"),
        ({"action": "inspect", "extra": 1}, "extra"),
    ],
)
def test_invalid_commands_say_what_to_send(dlq: str, command: dict[str, Any], message: str) -> None:
    with pytest.raises(dlq_processor.InvalidCommandError, match=message):
        dlq_processor.handler(command, None)


def test_missing_settings_name_the_variable(dlq: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDRIVE_QUEUE_URL")
    send(dlq, sample_event("OrderPlaced"))
    with pytest.raises(dlq_processor.ConfigurationError, match="REDRIVE_QUEUE_URL"):
        dlq_processor.handler({"action": "redrive", "target": "queue"}, None)
    assert len(peek(dlq)) == 1  # nothing was touched
    monkeypatch.delenv("DLQ_URL")
    with pytest.raises(dlq_processor.ConfigurationError, match="DLQ_URL"):
        dlq_processor.handler({}, None)


def test_access_is_what_the_code_calls(dlq: str, side_calls: CallRecorder) -> None:
    fill(dlq)
    dlq_processor.handler({"action": "inspect"}, None)
    dlq_processor.handler({"action": "redrive", "target": "bus"}, None)
    dlq_processor.handler({"action": "redrive", "target": "queue"}, None)
    assert side_calls.by_env() == dlq_processor.ACCESS
