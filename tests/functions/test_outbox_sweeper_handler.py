"""The deployed sweeper handler: a scheduled event in, the rows the relay gave up on
published, an error when rows are left (the function's error alarm reports it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from contracts import OrderPlaced, sample_detail
from eventcraft import outbox
from eventcraft.outbox import SweepIncompleteError
from eventcraft.publisher import Publisher
from tests.functions.awsenv import EventsSpy, capture_bus, drain, mocked, scan
from tests.functions.test_outbox_sweep import BUS, OUTBOX, create_outbox_table

WRITTEN = datetime(2099, 11, 26, 10, 0, tzinfo=UTC)  # ahead of the real clock


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("OUTBOX_TABLE", OUTBOX)
    monkeypatch.setenv("SWEEP_AFTER_SECONDS", "120")
    with mocked():
        create_outbox_table()
        captured = capture_bus(BUS)
        import handlers.outbox_sweeper as sweeper

        sweeper._publisher = None  # a new container for each test
        yield captured


def scheduled_event(at: datetime) -> dict[str, object]:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"],
        "detail": {},
    }


def write(n: int, at: datetime) -> None:
    placed = OrderPlaced.model_validate(
        sample_detail("OrderPlaced", orderId=f"order-{n}", eventId=f"event-{n}")
    )
    outbox.write([], [placed], outbox_table=OUTBOX, now=at)


def test_a_scheduled_run_publishes_the_rows_older_than_the_threshold(queue: str) -> None:
    from handlers.outbox_sweeper import handler

    write(1, WRITTEN)
    write(2, WRITTEN + timedelta(minutes=4))

    # "Now" is the later of the clock and the event's time: here the event's (2099).
    answer = handler(scheduled_event(WRITTEN + timedelta(minutes=5)), None)

    assert answer == {"republished": 1, "alreadyPublished": 0}
    assert [e["detail"]["orderId"] for e in drain(queue)] == ["order-1"]
    published = {row["eventId"]: row["published"] for row in scan(OUTBOX)}
    assert published == {"event-1": True, "event-2": False}


def test_rows_left_behind_fail_the_run_with_what_was_left(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.outbox_sweeper as sweeper

    write(1, WRITTEN)
    down = EventsSpy(boto3.client("events"), fail={"order-1": ["InternalFailure"] * 4})
    monkeypatch.setattr(sweeper, "_publisher", Publisher(BUS, client=down, sleep=lambda _: None))

    with pytest.raises(SweepIncompleteError) as raised:
        sweeper.handler(scheduled_event(WRITTEN + timedelta(minutes=5)), None)

    message = str(raised.value)
    assert "1 failed (first: event event-1: InternalFailure: injected)" in message
    assert "the next sweep retries them" in message
    assert scan(OUTBOX)[0]["published"] is False


def test_a_bad_threshold_names_the_variable(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.outbox_sweeper import handler

    monkeypatch.setenv("SWEEP_AFTER_SECONDS", "2m")
    with pytest.raises(ValueError, match="SWEEP_AFTER_SECONDS must be whole seconds, got '2m'"):
        handler(scheduled_event(WRITTEN), None)
