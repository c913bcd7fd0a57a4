"""`python -m ops outbox list|republish` on moto, through `main()`: the rows the relay
gave up on are listed and published by hand, with ops's output and exit codes; and a
relay DLQ's stream pointer says what it holds and how to recover."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import OrderPlaced, sample_detail
from eventcraft import dynamodb, outbox
from tests.ops.conftest import Stack
from tests.ops.test_dlq import STREAM_RECORD

OUTBOX = "order-outbox"


def write(n: int, minutes_ago: float) -> OrderPlaced:
    """An OrderPlaced's outbox row, written `minutes_ago` and never relayed."""
    placed = OrderPlaced.model_validate(
        sample_detail("OrderPlaced", orderId=f"order-{n}", eventId=f"event-{n}")
    )
    written = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    outbox.write([], [placed], outbox_table=OUTBOX, now=written)
    return placed


def rows(stack: Stack) -> dict[str, dict[str, Any]]:
    items = stack.client("dynamodb").scan(TableName=OUTBOX)["Items"]
    return {str(row["eventId"]): row for row in map(dynamodb.deserialize, items)}


def captured(stack: Stack) -> list[str]:
    return sorted(body["detail"]["eventId"] for body in stack.bodies("capture"))


def test_list_shows_the_unpublished_rows_oldest_first(stack: Stack) -> None:
    write(1, minutes_ago=10)
    write(2, minutes_ago=30)
    write(3, minutes_ago=0)  # the relay is still at it: left out

    run = stack.ops("outbox", "list", "--older-than", "300", "--json")

    assert run.code == 0, run.err
    answer = run.json()
    assert (answer["table"], answer["count"], answer["more"]) == (OUTBOX, 2, False)
    assert [r["eventId"] for r in answer["rows"]] == ["event-2", "event-1"]
    first = answer["rows"][0]
    assert (first["detailType"], first["orderId"]) == ("OrderPlaced", "order-2")
    assert 1790 < first["ageSeconds"] < 1900

    text = stack.ops("outbox", "list", "--older-than", "0", "--max", "2")
    assert text.code == 0
    assert "unpublished   2 or more" in text.out
    assert "order-2" in text.out and "order-3" not in text.out
    assert "outbox republish" in text.out


def test_republish_publishes_marks_and_reports(stack: Stack) -> None:
    placed = [write(n, minutes_ago=10 + n) for n in range(3)]

    dry = stack.ops("outbox", "republish", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert (dry.json()["dryRun"], dry.json()["count"]) == (True, 3)
    assert captured(stack) == []

    run = stack.ops("outbox", "republish", "--json")

    assert run.code == 0, run.err
    answer = run.json()
    assert sorted(answer["republished"]) == ["event-0", "event-1", "event-2"]
    assert (answer["failed"], answer["moreLeft"], answer["bus"]) == ([], False, "order-bus")
    assert captured(stack) == ["event-0", "event-1", "event-2"]
    bodies = {b["detail"]["eventId"]: b for b in stack.bodies("capture")}
    assert bodies["event-0"]["detail"] == placed[0].to_detail()
    assert all(row["published"] is True for row in rows(stack).values())
    again = stack.ops("outbox", "list", "--older-than", "0", "--json")
    assert again.json()["count"] == 0


def test_republish_stops_at_max_and_says_more_are_left(stack: Stack) -> None:
    for n in range(3):
        write(n, minutes_ago=10 + n)

    run = stack.ops("outbox", "republish", "--max", "2")

    assert run.code == 0, run.err
    assert "more rows are waiting: run again" in run.out
    assert sum(1 for row in rows(stack).values() if row["published"] is True) == 2


def test_a_bus_refusing_events_fails_the_run_and_keeps_the_rows(stack: Stack) -> None:
    write(1, minutes_ago=10)

    def refuse(**kwargs: Any) -> Any:  # the one entry of each request
        failure = {"ErrorCode": "InternalFailure", "ErrorMessage": "EventBridge is down"}
        response = {"FailedEntryCount": 1, "Entries": [failure]}
        return (type("Http", (), {"status_code": 200, "headers": {}})(), response)

    stack.clients.events.meta.events.register("before-call.events.PutEvents", refuse)

    run = stack.ops("outbox", "republish", "--json")

    assert run.code == 1
    (failed,) = run.json()["failed"]
    assert failed["eventId"] == "event-1"
    assert "InternalFailure: EventBridge is down" in failed["reason"]
    assert "the bus refused them: they stay unpublished" in run.err
    assert rows(stack)["event-1"]["published"] is False


def test_bad_usage_exits_2(stack: Stack) -> None:
    for argv in (["--older-than", "-5"], ["--max", "0"], ["--older-than", "soon"]):
        run = stack.ops("outbox", "list", *argv)
        assert run.code == 2, argv
    missing = stack.outputs_file.parent / "no-outbox.json"
    missing.write_text(json.dumps({**stack.outputs, "tables": {"orders": "orders"}}))
    run = stack.ops("outbox", "republish", "--outputs", str(missing), use_outputs=False)
    assert run.code == 2
    assert "the stack outputs have no `tables.outbox`" in run.err


def outbox_pointer() -> dict[str, Any]:
    """What Lambda sends the relay's DLQ when it gives up on a batch of outbox rows."""
    record = json.loads(json.dumps(STREAM_RECORD))
    record["DDBStreamBatchInfo"]["streamArn"] = (
        f"arn:aws:dynamodb:us-east-1:123456789012:table/{OUTBOX}/stream/2025"
    )
    return record


def test_a_relay_pointer_says_what_it_holds_and_how_to_recover(stack: Stack) -> None:
    write(1, minutes_ago=10)  # a row the relay gave up on, still unpublished
    stack.send("outbox-relay-failures", outbox_pointer())

    inspected = stack.ops("dlq", "inspect", "outbox-relay")
    assert inspected.code == 0, inspected.err
    assert "stream pointers: a pointer to 5 outbox rows the relay could not publish" in (
        inspected.out
    )
    assert "to recover: the outbox sweeper republishes them" in inspected.out
    assert "`python -m ops ... outbox republish`" in inspected.out

    redriven = stack.ops("dlq", "redrive", "outbox-relay")
    assert redriven.code == 1
    assert (
        "a pointer to 5 outbox rows the relay could not publish (records 100..104 (5 "
        "record(s)) of shard shardId-00000001" in redriven.out
    )
    assert f"the rows stay in table {OUTBOX}, unpublished. To recover:" in redriven.out
    assert len(stack.peek("outbox-relay-failures")) == 1  # never moved, never lost


def test_a_relay_pointer_is_resolved_once_every_row_is_published(stack: Stack) -> None:
    write(1, minutes_ago=10)
    stack.send("outbox-relay-failures", outbox_pointer())
    assert stack.ops("outbox", "republish").code == 0

    dry = stack.ops("dlq", "redrive", "outbox-relay", "--dry-run")
    assert dry.code == 0, dry.err
    assert "would be resolved: no outbox row is unpublished" in dry.out
    assert len(stack.peek("outbox-relay-failures")) == 1

    redriven = stack.ops("dlq", "redrive", "outbox-relay", "--json")
    assert redriven.code == 0, redriven.err
    answer = redriven.json()
    (resolved,) = answer["resolved"]
    assert (resolved["status"], answer["notMoved"]) == ("resolved", [])
    assert "the rows this pointer names were republished since" in resolved["reason"]
    assert stack.peek("outbox-relay-failures") == []
