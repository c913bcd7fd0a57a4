"""Event-time tumbling windows: out-of-order events, allowed lateness, a watermark, and
exactly-once counting by event id; the state stores run in memory and on DynamoDB (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from eventcraft.windows import (
    DynamoDBWindowStore,
    InMemoryWindowStore,
    Lateness,
    TumblingWindows,
    Window,
    WindowAggregator,
    WindowEvent,
)
from tests.functions.awsenv import moto_dynamodb, run_threads

NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = TumblingWindows(size=timedelta(minutes=1), allowed_lateness=timedelta(seconds=30))


def at(seconds: float) -> datetime:
    return NOON + timedelta(seconds=seconds)


def event(event_id: str, seconds: float, key: str = "sku-1", value: Any = 1) -> WindowEvent:
    return WindowEvent(event_id=event_id, key=key, event_time=at(seconds), value=value)


def summary(result: Any) -> dict[tuple[str, int], tuple[int, Decimal, bool]]:
    """{(key, window start in seconds after noon): (count, total, late)}."""
    return {
        (w.key, int((w.start - NOON).total_seconds())): (w.count, w.total, w.late)
        for w in result.updated
    }


# -- the pure rules -------------------------------------------------------------------------


def test_windows_are_aligned_half_open_intervals() -> None:
    assert MINUTE.window_of("k", at(0)) == Window("k", at(0), at(60))
    assert MINUTE.window_of("k", at(59.999)) == Window("k", at(0), at(60))
    assert MINUTE.window_of("k", at(60)) == Window("k", at(60), at(120))
    assert MINUTE.window_of("k", at(-1)) == Window("k", at(-60), at(0))


def test_lateness_is_judged_against_the_latest_event_time_seen() -> None:
    window = MINUTE.window_of("k", at(10))  # [0, 60)
    assert MINUTE.lateness(window, None) is Lateness.ON_TIME
    assert MINUTE.lateness(window, at(59)) is Lateness.ON_TIME
    assert MINUTE.lateness(window, at(60)) is Lateness.LATE  # complete
    assert MINUTE.lateness(window, at(89)) is Lateness.LATE  # within 30 s of lateness
    assert MINUTE.lateness(window, at(90)) is Lateness.TOO_LATE  # watermark reached its end
    assert MINUTE.watermark(at(90)) == at(60)


def test_invalid_settings_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="positive whole milliseconds"):
        TumblingWindows(size=timedelta(0))
    with pytest.raises(ValueError, match="allowed_lateness must be >= 0"):
        TumblingWindows(size=timedelta(minutes=1), allowed_lateness=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="has no time zone"):
        MINUTE.window_of("k", datetime(2024, 5, 1, 12, 0))


# -- against each store ---------------------------------------------------------------------


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryWindowStore()
        return
    with moto_dynamodb() as ddb:
        ddb.create_table("windows", "windowKey", ("windowStart", "N"))
        yield DynamoDBWindowStore("windows", client=ddb.client)


def test_out_of_order_events_within_the_lateness_update_their_window(store: Any) -> None:
    aggregator = WindowAggregator(MINUTE, store)

    result = aggregator.process(
        [event("e1", 10, value=5), event("e2", 65, value=1), event("e3", 50, value=2.5)]
    )

    # e3 belongs to [0, 60), complete since e2 (65 s) was seen: updated, flagged late.
    assert summary(result) == {
        ("sku-1", 0): (2, Decimal("7.5"), True),
        ("sku-1", 60): (1, Decimal(1), False),
    }
    assert result.too_late == []
    assert result.watermark == at(35)


def test_events_past_the_allowed_lateness_are_returned_not_counted(store: Any) -> None:
    aggregator = WindowAggregator(MINUTE, store)
    aggregator.process([event("e1", 10), event("e2", 100)])  # watermark: 70 s

    result = aggregator.process([event("late", 59), event("ok", 61), event("e1", 10)])

    assert [e.event_id for e in result.too_late] == ["late", "e1"]
    # [60, 120) is not complete (latest event: 100 s): on time.
    assert summary(result) == {("sku-1", 60): (2, Decimal(2), False)}
    # The closed window kept its count.
    again = aggregator.process([event("probe", 0.5)])
    assert [e.event_id for e in again.too_late] == ["probe"]


def test_a_redelivered_event_is_counted_once(store: Any) -> None:
    aggregator = WindowAggregator(MINUTE, store)
    first = aggregator.process([event("e1", 1, value=10), event("e1", 1, value=10)])
    second = aggregator.process([event("e1", 1, value=10), event("e2", 2, value=1)])

    assert summary(first) == {("sku-1", 0): (1, Decimal(10), False)}
    assert [e.event_id for e in first.duplicates] == ["e1"]
    assert [e.event_id for e in second.duplicates] == ["e1"]
    assert summary(second) == {("sku-1", 0): (2, Decimal(11), False)}


def test_keys_have_separate_windows_and_share_the_watermark(store: Any) -> None:
    aggregator = WindowAggregator(MINUTE, store)
    result = aggregator.process(
        [event("a1", 5, key="a"), event("b1", 200, key="b"), event("a2", 30, key="a")]
    )
    assert summary(result) == {("a", 0): (1, Decimal(1), False), ("b", 180): (1, Decimal(1), False)}
    assert [e.event_id for e in result.too_late] == ["a2"]  # b's 200 s moved the watermark


def test_the_watermark_outlives_the_batch(store: Any) -> None:
    WindowAggregator(MINUTE, store).process([event("e1", 300)])

    # A later invocation (new aggregator, same table) still knows the watermark.
    result = WindowAggregator(MINUTE, store).process([event("old", 10), event("e0", 250)])

    assert [e.event_id for e in result.too_late] == ["old"]
    assert result.watermark == at(270)
    assert store.max_event_time() == at(300)  # never lowered by older events


def test_window_items_carry_their_end_and_a_ttl() -> None:
    with moto_dynamodb() as ddb:
        ddb.create_table("windows", "windowKey", ("windowStart", "N"))
        store = DynamoDBWindowStore("windows", client=ddb.client)
        WindowAggregator(MINUTE, store, retention=timedelta(days=1)).process([event("e1", 10)])

        start = str(int(NOON.timestamp() * 1000))
        item = ddb.raw.get_item(
            TableName="windows", Key={"windowKey": {"S": "sku-1"}, "windowStart": {"N": start}}
        )["Item"]

    assert item["windowEnd"] == {"N": str(int(at(60).timestamp() * 1000))}
    assert item["expiresAt"] == {"N": str(int((at(90) + timedelta(days=1)).timestamp()))}
    assert item["seenIds"] == {"SS": ["e1"]}
    assert (item["count"], item["total"]) == ({"N": "1"}, {"N": "1"})


def test_concurrent_batches_with_duplicates_count_each_event_once(store: Any) -> None:
    events = [event(f"e{n}", n % 60, value=n) for n in range(60)]

    # Four consumers each get an overlapping slice (at-least-once delivery).
    run_threads(4, lambda i: WindowAggregator(MINUTE, store).process(events[i * 12 : i * 12 + 24]))

    result = WindowAggregator(MINUTE, store).process(events[:1])
    assert [e.event_id for e in result.duplicates] == ["e0"]
    final = WindowAggregator(MINUTE, store).process([event("last", 59.5, value=0)])
    assert summary(final) == {("sku-1", 0): (61, Decimal(sum(range(60))), False)}
