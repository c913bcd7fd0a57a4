"""`replay start` / `replay watch` against moto.

moto's StartReplay ignores the time window and FilterArns (it replays the whole archive
to every rule of the bus, synchronously; shared notes/moto.md): so these tests assert
the request ops SENDS (captured with a botocore event hook, the call still reaching
moto), and the watch loop against stubbed DescribeReplay answers. The sandbox honours
the window (`eventcraft_sandbox.delivery.eventbridge`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from contracts import sample_detail
from ops import replay
from ops.errors import UsageError
from ops.outputs import parse
from tests.ops.conftest import Stack


def capture(stack: Stack, operation: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        calls.append(dict(params))

    stack.clients.events.meta.events.register(f"provide-client-params.events.{operation}", record)
    return calls


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_start_sends_the_window_the_archive_the_bus_and_the_rules(stack: Stack) -> None:
    calls = capture(stack, "StartReplay")
    now = datetime.now(UTC).replace(microsecond=0)
    # The archive was created a moment ago: the window must end after that.
    start, end = now - timedelta(hours=2), now + timedelta(seconds=30)

    run = stack.ops(
        "replay",
        "start",
        "--from",
        iso(start),
        "--to",
        iso(end),
        "--rules",
        "reserve",
        "--name",
        "fix-reserve",
        "--json",
    )

    assert run.code == 0, run.err
    [sent] = calls
    rule_arn = stack.client("events").describe_rule(Name="reserve", EventBusName="order-bus")["Arn"]
    assert sent["ReplayName"] == "fix-reserve"
    assert sent["EventSourceArn"] == stack.outputs["archiveArn"]
    assert (sent["EventStartTime"], sent["EventEndTime"]) == (start, end)
    assert sent["Destination"] == {"Arn": stack.outputs["busArn"], "FilterArns": [rule_arn]}
    answer = run.json()
    assert set(answer) == {
        "replayName",
        "replayArn",
        "state",
        "archive",
        "archiveArn",
        "bus",
        "from",
        "to",
        "rules",
        "notes",
    }
    assert (answer["from"], answer["to"], answer["rules"]) == (iso(start), iso(end), [rule_arn])
    # ... and reaches back before it.
    assert "nothing before that is replayed" in answer["notes"][0]
    replays = stack.client("events").list_replays()["Replays"]
    assert [r["ReplayName"] for r in replays] == ["fix-reserve"]


def test_start_without_rules_replays_to_every_rule_and_names_itself(stack: Stack) -> None:
    calls = capture(stack, "StartReplay")
    run = stack.ops(
        "replay", "start", "--from", iso(datetime.now(UTC) - timedelta(hours=1)), "--to", "now"
    )

    assert run.code == 0, run.err
    [sent] = calls
    assert sent["Destination"] == {"Arn": stack.outputs["busArn"]}
    assert sent["ReplayName"].startswith("ops-")
    assert "all rules of the bus" in run.out
    assert f"replay watch {sent['ReplayName']}" in run.out


def test_moto_replays_archived_events_to_the_rules_targets(stack: Stack) -> None:
    """What moto does with the replay (the whole archive, see the module doc)."""
    stack.client("events").put_events(
        Entries=[
            {
                "EventBusName": "order-bus",
                "Source": "order-saga.orders",
                "DetailType": "OrderPlaced",
                "Detail": json.dumps(sample_detail("OrderPlaced")),
            }
        ]
    )
    assert len(stack.peek("reserve-target")) == 1
    run = stack.ops(
        "replay",
        "start",
        "--from",
        iso(datetime.now(UTC) - timedelta(hours=1)),
        "--to",
        "now",
        "--rules",
        "reserve",
    )
    assert run.code == 0, run.err
    replayed = [b for b in stack.bodies("reserve-target") if b.get("replay-name")]
    assert [b["detail"]["orderId"] for b in replayed] == ["order-0001"]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (("2025-01-15T11:00:00Z", "2025-01-15T10:00:00Z"), "is not before --to"),
        (("2025-01-15T10:00:00Z", "2025-01-15T10:00:00Z"), "is not before --to"),
        (("yesterday", "now"), "not an ISO 8601 time"),
        (("2025-01-15T10:00:00Z", "2999-01-01T00:00:00Z"), "is in the future"),
    ],
)
def test_start_refuses_a_bad_window(stack: Stack, window: tuple[str, str], message: str) -> None:
    calls = capture(stack, "StartReplay")
    run = stack.ops("replay", "start", "--from", window[0], "--to", window[1])
    assert run.code == 2
    assert message in run.err
    assert calls == []


def test_start_refuses_a_window_outside_the_archive_retention(stack: Stack) -> None:
    start = datetime.now(UTC) - timedelta(days=8)
    run = stack.ops("replay", "start", "--from", iso(start), "--to", "now")
    assert run.code == 2
    assert "outside the archive's retention" in run.err and "keeps events 7 days" in run.err


def test_start_refuses_a_window_ending_before_the_archive_existed(stack: Stack) -> None:
    end = datetime.now(UTC) - timedelta(hours=1)
    run = stack.ops("replay", "start", "--from", iso(end - timedelta(hours=1)), "--to", iso(end))
    assert run.code == 2
    assert "before archive order-archive was created" in run.err


def test_start_refuses_unknown_rules_and_archives(stack: Stack, tmp_path: Any) -> None:
    run = stack.ops(
        "replay",
        "start",
        "--from",
        iso(datetime.now(UTC) - timedelta(hours=1)),
        "--to",
        "now",
        "--rules",
        "reserve,nope",
    )
    assert run.code == 2
    assert "no rule 'nope' on bus 'order-bus'" in run.err
    assert "reserve" in run.err  # the rules it has

    outputs = {**stack.outputs, "archiveName": "gone", "archiveArn": None}
    with pytest.raises(UsageError, match=r"archive 'gone' .* does not exist"):
        replay.start(
            stack.clients,
            parse(outputs, origin="test"),
            start_text="2025-01-01T00:00:00Z",
            end_text="now",
        )
    without = {k: v for k, v in stack.outputs.items() if not k.startswith("archive")}
    with pytest.raises(UsageError, match="no `archiveName`"):
        replay.start(
            stack.clients,
            parse(without, origin="test"),
            start_text="2025-01-01T00:00:00Z",
            end_text="now",
        )


def describe(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "ReplayName": "r1",
        "State": state,
        "EventStartTime": datetime(2025, 1, 15, 10, 0, tzinfo=UTC),
        "EventEndTime": datetime(2025, 1, 15, 12, 0, tzinfo=UTC),
        **extra,
    }


def test_watch_polls_until_completed_and_reports_progress(stack: Stack) -> None:
    with Stubber(stack.clients.events) as stub:
        for answer in (
            describe("STARTING"),
            describe("RUNNING", EventLastReplayedTime=datetime(2025, 1, 15, 10, 30, tzinfo=UTC)),
            describe("RUNNING", EventLastReplayedTime=datetime(2025, 1, 15, 10, 30, tzinfo=UTC)),
            describe("RUNNING", EventLastReplayedTime=datetime(2025, 1, 15, 11, 0, tzinfo=UTC)),
            describe("COMPLETED", EventLastReplayedTime=datetime(2025, 1, 15, 12, 0, tzinfo=UTC)),
        ):
            stub.add_response("describe_replay", answer, {"ReplayName": "r1"})

        run = stack.ops("replay", "watch", "r1", "--interval", "2", use_outputs=False)

        stub.assert_no_pending_responses()
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    # One line per change (the repeated RUNNING 25% is not printed twice), then the end.
    assert [line.split("]")[1].split()[0] for line in lines[:-1]] == [
        "STARTING",
        "RUNNING",
        "RUNNING",
        "COMPLETED",
    ]
    assert "25% of the window" in lines[1] and "50% of the window" in lines[2]
    assert lines[-1].startswith("replay r1 COMPLETED")
    assert stack.sleeps == [2.0] * 4


def test_watch_reports_a_failed_replay_with_its_reason(stack: Stack) -> None:
    with Stubber(stack.clients.events) as stub:
        stub.add_response("describe_replay", describe("RUNNING"), {"ReplayName": "r1"})
        stub.add_response(
            "describe_replay", describe("FAILED", StateReason="bus deleted"), {"ReplayName": "r1"}
        )
        run = stack.ops("replay", "watch", "r1", "--json", use_outputs=False)
    assert run.code == 1
    answer = run.json()
    assert (answer["state"], answer["stateReason"], answer["timedOut"], answer["polls"]) == (
        "FAILED",
        "bus deleted",
        False,
        2,
    )
    assert "FAILED" in run.err  # progress goes to stderr with --json


def test_watch_is_bounded_by_its_timeout(stack: Stack) -> None:
    with Stubber(stack.clients.events) as stub:
        for _ in range(3):
            stub.add_response("describe_replay", describe("RUNNING"), {"ReplayName": "r1"})
        clock = iter([0.0, 0.0, 5.0, 10.0])
        result = replay.watch(
            stack.clients,
            "r1",
            interval=5,
            timeout=12,
            sleep=stack.sleeps.append,
            clock=lambda: next(clock),
        )
    assert result.exit_code == 1
    assert result.data["timedOut"] is True and result.data["polls"] == 3
    assert "still RUNNING" in result.text and "replay watch r1" in result.text


def test_watch_of_an_unknown_replay_is_a_usage_error(stack: Stack) -> None:
    run = stack.ops("replay", "watch", "nope", use_outputs=False)
    assert run.code == 2
    assert "no replay named 'nope'" in run.err


def test_start_and_watch_in_one_command(stack: Stack) -> None:
    run = stack.ops(
        "replay",
        "start",
        "--from",
        iso(datetime.now(UTC) - timedelta(hours=1)),
        "--to",
        "now",
        "--name",
        "both",
        "--watch",
        "--json",
    )
    assert run.code == 0, run.err
    answer = run.json()
    assert answer["replayName"] == "both"
    assert answer["watch"]["state"] == "COMPLETED"  # moto replays synchronously
