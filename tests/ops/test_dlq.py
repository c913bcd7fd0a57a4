"""`dlq list / inspect / redrive` against moto: nothing is consumed by inspect, redrive
deletes only what it moved, and every message that could not move stays."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import sample_event
from ops import dlq
from ops.outputs import parse
from tests.ops.conftest import Stack

RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/order-bus/reserve"
TARGET_ARN = "arn:aws:sqs:us-east-1:123456789012:reserve-target"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:ship:$LATEST"


def rule_failure(stack: Stack, order_id: str, queue: str = "reserve-dlq") -> dict[str, Any]:
    """What EventBridge puts in a rule target's DLQ: the event, error attributes."""
    event = sample_event("OrderPlaced", orderId=order_id, eventId=f"e-{order_id}")
    stack.send(
        queue,
        event,
        {
            "RULE_ARN": RULE_ARN,
            "TARGET_ARN": TARGET_ARN,
            "ERROR_CODE": "SQS.AccessDenied",
            "ERROR_MESSAGE": "the queue policy denies the rule",
            "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
            "RETRY_ATTEMPTS": "3",
        },
    )
    return event


def destination_record(order_id: str = "order-7") -> dict[str, Any]:
    return {
        "version": "1.0",
        "timestamp": "2025-01-15T10:31:00.000Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": FUNCTION_ARN,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": sample_event("PaymentProcessed", orderId=order_id),
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ShippingUnavailable", "errorMessage": "no carrier"},
    }


STREAM_RECORD = {
    "requestContext": {
        "requestId": "r-2",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:project-history",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 4,
    },
    "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
    "version": "1.0",
    "timestamp": "2025-01-15T10:32:00.000Z",
    "DDBStreamBatchInfo": {
        "shardId": "shardId-00000001",
        "startSequenceNumber": "100",
        "endSequenceNumber": "104",
        "approximateArrivalOfFirstRecord": "2025-01-15T10:30:00Z",
        "approximateArrivalOfLastRecord": "2025-01-15T10:30:05Z",
        "batchSize": 5,
        "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/order-events/stream/2025",
    },
}


def fill_mixed(stack: Stack) -> None:
    """One of each kind in one queue (the inspect test)."""
    rule_failure(stack, "order-1", "ship-failures")
    stack.send("ship-failures", destination_record())
    stack.send("ship-failures", STREAM_RECORD)
    stack.send("ship-failures", "not json at all")


def fail_sends_of(stack: Stack, marker: str) -> list[str]:
    """Make SendMessage fail for bodies containing `marker` (the call never reaches SQS)."""
    refused: list[str] = []

    def refuse(params: dict[str, Any], **kwargs: Any) -> None:
        if marker in params.get("MessageBody", ""):
            refused.append(params["MessageBody"])
            raise ConnectionError("simulated network failure")

    stack.clients.sqs.meta.events.register("provide-client-params.sqs.SendMessage", refuse)
    return refused


# --- list ---------------------------------------------------------------------------------


def test_list_shows_every_dlq_with_depth_and_oldest_age(stack: Stack) -> None:
    rule_failure(stack, "order-1")
    rule_failure(stack, "order-2")
    stack.send("payments-dlq", {"orderId": "order-3"})

    run = stack.ops("dlq", "list", "--json")

    assert run.code == 0, run.err
    answer = run.json()
    rows = {row["name"]: row for row in answer["dlqs"]}
    assert sorted(rows) == [
        "history-stream-failures",
        "outbox-relay",
        "payments-dlq",
        "reserve-target-dlq",
        "ship-failures",
    ]
    assert set(rows["reserve-target-dlq"]) == {
        "name",
        "url",
        "kind",
        "messages",
        "inFlight",
        "oldestAgeSeconds",
        "oldestAgeSource",
        "retentionSeconds",
        "expiresInSeconds",
    }
    assert (rows["reserve-target-dlq"]["messages"], rows["payments-dlq"]["messages"]) == (2, 1)
    assert rows["payments-dlq"]["kind"] == "queue"
    # moto has no CloudWatch data: the age comes from a peek, which leaves the messages.
    assert rows["reserve-target-dlq"]["oldestAgeSource"] == "sample"
    assert 0 <= rows["reserve-target-dlq"]["oldestAgeSeconds"] < 60
    assert rows["ship-failures"]["oldestAgeSeconds"] is None
    assert answer["totalMessages"] == 3
    assert len(stack.peek("reserve-dlq")) == 2

    text = stack.ops("dlq", "list")
    assert text.code == 0
    assert "reserve-target-dlq" in text.out and "5 DLQ(s), 3 message(s)" in text.out


# --- inspect ------------------------------------------------------------------------------


def test_inspect_summarises_each_kind_and_consumes_nothing(stack: Stack) -> None:
    fill_mixed(stack)

    run = stack.ops("dlq", "inspect", "ship-failures", "--json")

    assert run.code == 0, run.err
    answer = run.json()
    assert answer["examined"] == 4
    assert answer["byKind"] == {
        "rule-target": 1,
        "lambda-destination": 1,
        "stream-failure": 1,
        "message": 1,
    }
    assert answer["byError"] == {
        "SQS.AccessDenied": 1,
        "ShippingUnavailable": 1,
        "RetryAttemptsExhausted": 1,
        "NotJson": 1,
    }
    assert answer["byRule"] == {RULE_ARN: 1}
    assert answer["byTarget"] == {TARGET_ARN: 1}
    assert answer["byFunction"] == {
        FUNCTION_ARN: 1,
        "arn:aws:lambda:us-east-1:123456789012:function:project-history": 1,
    }
    samples = {s["kind"]: s for s in answer["samples"]}
    assert samples["rule-target"]["orderId"] == "order-1"
    assert samples["rule-target"]["errorMessage"] == "the queue policy denies the rule"
    assert samples["lambda-destination"]["detailType"] == "PaymentProcessed"
    assert samples["stream-failure"]["streamBatch"]["shardId"] == "shardId-00000001"
    assert answer["notMadeVisible"] == []
    # Nothing consumed: all four are visible again at once, not after a timeout.
    assert len(stack.peek("ship-failures")) == 4
    assert answer["approximateRemaining"] == 4


def test_inspect_stops_at_max_and_reads_a_queue_by_url(stack: Stack) -> None:
    for i in range(7):
        rule_failure(stack, f"order-{i}")

    run = stack.ops("dlq", "inspect", stack.url("reserve-dlq"), "--max", "3", "--json")

    assert run.code == 0
    assert run.json()["examined"] == 3
    assert len(stack.peek("reserve-dlq")) == 7


def test_inspect_text_report(stack: Stack) -> None:
    fill_mixed(stack)
    run = stack.ops("dlq", "inspect", "ship-failures")
    assert run.code == 0
    assert "examined" in run.out and "stream-failure" in run.out
    assert "every message examined was left in the DLQ" in run.out


def test_an_unknown_dlq_is_a_usage_error_listing_the_known(stack: Stack) -> None:
    run = stack.ops("dlq", "inspect", "nope")
    assert run.code == 2
    assert "no DLQ 'nope'" in run.err and "reserve-target-dlq" in run.err


# --- redrive ------------------------------------------------------------------------------


def test_redrive_of_a_work_queue_dlq_goes_back_to_its_source_queue(stack: Stack) -> None:
    for i in range(3):
        stack.send("payments-dlq", {"orderId": f"order-{i}"}, {"tenant": "t1"})

    run = stack.ops("dlq", "redrive", "payments-dlq", "--json")

    assert run.code == 0, run.err
    answer = run.json()
    assert (answer["moved"], answer["notMoved"], answer["movedNotDeleted"]) == (3, [], [])
    assert answer["byTarget"] == {f"queue:{stack.outputs['queues']['payments']['url']}": 3}
    assert stack.peek("payments-dlq") == []
    moved = stack.peek("payments")
    assert sorted(json.loads(m["Body"])["orderId"] for m in moved) == [
        "order-0",
        "order-1",
        "order-2",
    ]
    assert all(m["MessageAttributes"]["tenant"]["StringValue"] == "t1" for m in moved)


def test_the_source_queue_is_found_by_sqs_when_the_outputs_do_not_say(stack: Stack) -> None:
    outputs = dict(stack.outputs)
    queue = outputs.pop("queues")["payments"]
    outputs["dlqs"] = {"payments-dlq": {"url": queue["dlqUrl"]}}  # no kind, no source
    stack.outputs_file.write_text(json.dumps(outputs))
    stack.send("payments-dlq", {"orderId": "order-1"})

    run = stack.ops("dlq", "redrive", "payments-dlq", "--json")

    assert run.code == 0, run.err
    assert run.json()["sourceQueues"] == [queue["url"]]
    assert [json.loads(m["Body"]) for m in stack.peek("payments")] == [{"orderId": "order-1"}]


def test_redrive_of_a_rule_target_dlq_puts_the_events_back_on_the_bus(stack: Stack) -> None:
    events = [rule_failure(stack, f"order-{i}") for i in range(3)]

    run = stack.ops("dlq", "redrive", "reserve-target-dlq", "--json")

    assert run.code == 0, run.err
    assert run.json()["moved"] == 3
    assert stack.peek("reserve-dlq") == []
    # The rule delivers them to its target again, details and event time unchanged.
    delivered = stack.bodies("reserve-target")
    assert sorted(e["detail"]["orderId"] for e in delivered) == ["order-0", "order-1", "order-2"]
    by_order = {e["detail"]["orderId"]: e for e in delivered}
    for event in events:
        assert by_order[event["detail"]["orderId"]]["detail"] == event["detail"]
        assert by_order[event["detail"]["orderId"]]["time"] == event["time"]


def test_a_failed_send_keeps_that_message_and_deletes_only_the_moved(stack: Stack) -> None:
    for i in range(4):
        stack.send("payments-dlq", {"orderId": f"order-{i}"})
    refused = fail_sends_of(stack, "order-2")

    run = stack.ops("dlq", "redrive", "payments-dlq", "--json")

    assert run.code == 1
    answer = run.json()
    assert answer["moved"] == 3
    [kept] = answer["notMoved"]
    assert "simulated network failure" in kept["reason"]
    assert refused  # the failing send was attempted
    # Exactly the message that failed is still in the DLQ (visible again at once) ...
    assert [json.loads(m["Body"]) for m in stack.peek("payments-dlq")] == [{"orderId": "order-2"}]
    assert kept["messageId"] == stack.peek("payments-dlq")[0]["MessageId"]
    # ... and the others are in the source queue: nothing lost, nothing doubled.
    assert sorted(json.loads(m["Body"])["orderId"] for m in stack.peek("payments")) == [
        "order-0",
        "order-1",
        "order-3",
    ]


def test_a_refused_bus_entry_stays_in_the_dlq(stack: Stack) -> None:
    rule_failure(stack, "order-1")
    rule_failure(stack, "order-2")

    def refuse_second(**kwargs: Any) -> Any:
        response = {
            "FailedEntryCount": 1,
            "Entries": [
                {"EventId": "ok-1"},
                {"ErrorCode": "InvalidArgument", "ErrorMessage": "detail too deep"},
            ],
        }
        return (type("Http", (), {"status_code": 200, "headers": {}})(), response)

    stack.clients.events.meta.events.register("before-call.events.PutEvents", refuse_second)

    run = stack.ops("dlq", "redrive", "reserve-target-dlq", "--json")

    assert run.code == 1
    answer = run.json()
    assert answer["moved"] == 1
    [kept] = answer["notMoved"]
    assert kept["reason"] == "InvalidArgument: detail too deep"
    [left] = stack.peek("reserve-dlq")
    assert left["MessageId"] == kept["messageId"]


def test_stream_failure_records_are_pointers_and_never_moved(stack: Stack) -> None:
    stack.send("history-stream-failures", STREAM_RECORD)

    run = stack.ops("dlq", "redrive", "history-stream-failures", "--to", "payments")

    assert run.code == 1
    assert "pointer, not the data" in run.out
    assert "records 100..104 (5 record(s)) of shard shardId-00000001" in run.out
    assert len(stack.peek("history-stream-failures")) == 1
    assert stack.peek("payments") == []


def test_lambda_destination_records_invoke_the_function_again(stack: Stack) -> None:
    record = destination_record("order-7")
    stack.send("ship-failures", record)
    invoked: list[dict[str, Any]] = []
    lambda_events = stack.clients.lambda_.meta.events
    # Record the call's parameters, and answer as Lambda does for a queued async invoke
    # (moto would need Docker to run the function).
    lambda_events.register(
        "provide-client-params.lambda.Invoke", lambda params, **_: invoked.append(dict(params))
    )

    def queued(**kwargs: Any) -> Any:
        return (type("Http", (), {"status_code": 202, "headers": {}})(), {"StatusCode": 202})

    lambda_events.register("before-call.lambda.Invoke", queued)

    run = stack.ops("dlq", "redrive", "ship-failures", "--json")

    assert run.code == 0, run.err
    [call] = invoked
    assert (call["FunctionName"], call["InvocationType"]) == (FUNCTION_ARN, "Event")
    assert json.loads(call["Payload"]) == record["requestPayload"]
    assert run.json()["byTarget"] == {f"function:{FUNCTION_ARN}": 1}
    assert stack.peek("ship-failures") == []


def test_lambda_destination_records_to_a_queue_are_unwrapped(stack: Stack) -> None:
    record = destination_record("order-8")
    stack.send("ship-failures", record)

    run = stack.ops("dlq", "redrive", "ship-failures", "--to", "payments")

    assert run.code == 0, run.err
    assert stack.bodies("payments") == [record["requestPayload"]]


def test_dry_run_moves_nothing_and_says_where_each_would_go(stack: Stack) -> None:
    rule_failure(stack, "order-1")
    stack.send("reserve-dlq", "not json at all")

    run = stack.ops("dlq", "redrive", "reserve-target-dlq", "--dry-run", "--json")

    assert run.code == 0
    answer = run.json()
    assert answer["dryRun"] is True
    assert (answer["wouldMove"], answer["moved"]) == (1, 0)
    statuses = {m["kind"]: (m["status"], m["action"]) for m in answer["messages"]}
    assert statuses == {"rule-target": ("would-move", "bus"), "message": ("would-not-move", "none")}
    assert "pass --to QUEUE" in answer["notMoved"][0]["reason"]
    assert len(stack.peek("reserve-dlq")) == 2
    assert stack.peek("reserve-target") == []


def test_redrive_json_shape_and_native_move_note(stack: Stack) -> None:
    run = stack.ops("dlq", "redrive", "payments-dlq", "--json")
    assert run.code == 0
    assert set(run.json()) == {
        "dlq",
        "dryRun",
        "to",
        "sourceQueues",
        "examined",
        "moved",
        "wouldMove",
        "notMoved",
        "movedNotDeleted",
        "resolved",
        "byTarget",
        "messages",
        "approximateRemaining",
        "notMadeVisible",
        "arrivedDuringRun",
        "note",
    }
    assert "StartMessageMoveTask" in run.json()["note"]


def test_redrive_to_a_fifo_queue_keeps_the_group_with_a_fresh_deduplication_id(
    stack: Stack,
) -> None:
    sqs = stack.client("sqs")
    dlq_url = sqs.create_queue(QueueName="orders-dlq.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    source_url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    body = sample_event("PaymentProcessed")
    # The original went through the source with this deduplication id a moment ago.
    sqs.send_message(
        QueueUrl=source_url,
        MessageBody=json.dumps(body),
        MessageGroupId="c-1",
        MessageDeduplicationId="d-1",
    )
    for message in sqs.receive_message(QueueUrl=source_url)["Messages"]:
        sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=json.dumps(body),
        MessageGroupId="c-1",
        MessageDeduplicationId="d-1",
    )

    run = stack.ops("dlq", "redrive", dlq_url, "--to", source_url, "--json")

    assert run.code == 0, run.err
    [moved] = stack.peek("orders.fifo")
    assert moved["Attributes"]["MessageGroupId"] == "c-1"
    assert json.loads(moved["Body"]) == body


def test_to_the_dlq_itself_or_a_missing_queue_is_refused(stack: Stack) -> None:
    assert stack.ops("dlq", "redrive", "payments-dlq", "--to", "payments-dlq").code == 2
    missing = stack.ops("dlq", "redrive", "payments-dlq", "--to", "nope")
    assert missing.code == 2 and "--to nope: no such queue" in missing.err


@pytest.mark.parametrize("limit", [0, 10_001])
def test_max_is_bounded(stack: Stack, limit: int) -> None:
    outputs = parse(stack.outputs, origin="test")
    with pytest.raises(dlq.UsageError, match="--max"):
        dlq.inspect(stack.clients, outputs, "payments-dlq", limit=limit)


def test_messages_failing_again_during_the_run_are_left_for_the_next(stack: Stack) -> None:
    rule_failure(stack, "order-1")

    def fails_again(**kwargs: Any) -> None:
        # The target is still broken: EventBridge puts the event in the DLQ again.
        rule_failure(stack, "order-1")

    stack.clients.events.meta.events.register("after-call.events.PutEvents", fails_again)

    run = stack.ops("dlq", "redrive", "reserve-target-dlq", "--max", "50", "--json")

    assert run.code == 0, run.err
    answer = run.json()
    assert answer["moved"] == 1  # not 50: the run does not chase its own failures
    assert len(answer["arrivedDuringRun"]) == 1
    [left] = stack.peek("reserve-dlq")
    assert left["MessageId"] == answer["arrivedDuringRun"][0]
