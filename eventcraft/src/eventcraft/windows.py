"""Event-time tumbling windows with a watermark and allowed lateness.

    windows = TumblingWindows(size=timedelta(minutes=5), allowed_lateness=timedelta(minutes=2))
    aggregator = WindowAggregator(windows, DynamoDBWindowStore("click-windows"))
    result = aggregator.process(events)      # WindowEvent(event_id, key, event_time, value)
    for window in result.updated: ...        # emit (window.late: a correction)
    for event in result.too_late: ...        # report / route: never silently dropped

Events are grouped by when they happened (event time), not when they arrive. The
watermark is the latest event time seen minus the allowed lateness. A window [start, end)
is complete once an event at or after `end` has been seen; it keeps accepting late
events (its aggregate is updated and flagged `late`: emit a correction) until the
watermark passes `end`; after that its events are returned as `too_late`.

Counting is exactly-once per event id: each window item keeps the set of event ids
counted, and the count/total are added (ADD) in the same conditional UpdateItem
(`NOT contains(seenIds, :id)`), so a redelivered event changes nothing. The set bounds
a window to roughly 9,000 events per key (DynamoDB's 400 KB item limit with UUID ids);
beyond that, shard the key or use per-event dedupe items.

The latest event time seen is one item in the same table, raised only upwards
(conditional), read once per batch. Concurrent batches may each judge lateness against
a slightly older watermark: an event can be accepted a little late, never lost.

Table: partition key `windowKey` (S), sort key `windowStart` (N, epoch milliseconds);
attributes windowEnd (N, ms), count (N), total (N), seenIds (SS), expiresAt (N, epoch
seconds, for TTL); the watermark item is windowKey "#watermark", windowStart 0.
IAM: dynamodb:GetItem and UpdateItem on the table.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Protocol

from eventcraft.dynamodb import TableAdapter

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
WATERMARK_KEY: Final = "#watermark"


# -- domain ---------------------------------------------------------------------------------


def to_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(
            f"event time {moment.isoformat()} has no time zone: pass aware datetimes "
            "(e.g. datetime.fromisoformat('2024-05-01T12:00:00+00:00'))"
        )
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: int) -> datetime:
    return EPOCH + timedelta(milliseconds=millis)


@dataclass(frozen=True, slots=True)
class WindowEvent:
    """An event to aggregate: `key` groups (e.g. a product), `value` is added to the
    window's total (default 1), `event_time` must be timezone-aware."""

    event_id: str
    key: str
    event_time: datetime
    value: Decimal | int | float = 1


@dataclass(frozen=True, slots=True)
class Window:
    key: str
    start: datetime
    end: datetime


class Lateness(StrEnum):
    ON_TIME = "on_time"  # its window is not complete yet
    LATE = "late"  # its window is complete, but within the allowed lateness
    TOO_LATE = "too_late"  # the watermark has passed its window's end


@dataclass(frozen=True)
class TumblingWindows:
    """Fixed-size, non-overlapping windows aligned on the Unix epoch.

    size: window length (> 0, whole milliseconds). allowed_lateness: how far behind the
    latest event time an event may be and still update its window (default 0).
    """

    size: timedelta
    allowed_lateness: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.size <= timedelta(0) or self.size % timedelta(milliseconds=1):
            raise ValueError(f"window size must be positive whole milliseconds, got {self.size}")
        if self.allowed_lateness < timedelta(0):
            raise ValueError(f"allowed_lateness must be >= 0, got {self.allowed_lateness}")

    def window_of(self, key: str, event_time: datetime) -> Window:
        size = self.size // timedelta(milliseconds=1)
        start = to_millis(event_time) // size * size
        return Window(key, from_millis(start), from_millis(start + size))

    def watermark(self, max_event_time: datetime | None) -> datetime | None:
        """The latest event time seen minus the allowed lateness (None: nothing seen)."""
        return None if max_event_time is None else max_event_time - self.allowed_lateness

    def lateness(self, window: Window, max_event_time: datetime | None) -> Lateness:
        if max_event_time is None:
            return Lateness.ON_TIME
        if window.end <= max_event_time - self.allowed_lateness:
            return Lateness.TOO_LATE
        if window.end <= max_event_time:
            return Lateness.LATE
        return Lateness.ON_TIME


@dataclass(frozen=True)
class WindowAggregate:
    """A window's aggregate after an update. late: the window was already complete
    (an emitted result changed: emit a correction)."""

    key: str
    start: datetime
    end: datetime
    count: int
    total: Decimal
    late: bool = False


@dataclass(frozen=True)
class WindowBatchResult:
    """updated: each window changed by the batch, as it stands after it. duplicates:
    events already counted (no change). too_late: events past the allowed lateness, for
    the caller to report or route. watermark: after the batch."""

    updated: list[WindowAggregate] = field(default_factory=list)
    duplicates: list[WindowEvent] = field(default_factory=list)
    too_late: list[WindowEvent] = field(default_factory=list)
    watermark: datetime | None = None


class WindowStore(Protocol):
    """Window state. Adapters: InMemoryWindowStore, DynamoDBWindowStore."""

    def max_event_time(self) -> datetime | None: ...

    def advance(self, max_event_time: datetime) -> None:
        """Raise the stored latest event time to `max_event_time` (never lower it)."""
        ...

    def add(
        self, window: Window, event: WindowEvent, expires_at: datetime
    ) -> tuple[int, Decimal] | None:
        """Count `event` in `window` once; (count, total) after it, or None if the event
        id was already counted there."""
        ...


def _decimal(value: Decimal | int | float) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


class WindowAggregator:
    """Applies batches of events to window state.

    retention: how long a window's state is kept after it closes (TTL; default 7 days).
    """

    def __init__(
        self,
        windows: TumblingWindows,
        store: WindowStore,
        *,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.windows = windows
        self.store = store
        self.retention = retention

    def process(self, events: Iterable[WindowEvent]) -> WindowBatchResult:
        """Aggregate `events` in order. Lateness is judged against the latest event time
        seen before each event (stored, plus this batch so far)."""
        duplicates: list[WindowEvent] = []
        too_late: list[WindowEvent] = []
        updated: dict[tuple[str, datetime], WindowAggregate] = {}
        stored_max = self.store.max_event_time()
        max_seen = stored_max
        for event in events:
            if event.key.startswith("#"):
                raise ValueError(f"window keys may not start with '#' (reserved): {event.key!r}")
            window = self.windows.window_of(event.key, event.event_time)
            lateness = self.windows.lateness(window, max_seen)
            if lateness is Lateness.TOO_LATE:
                too_late.append(event)
                continue
            expires_at = window.end + self.windows.allowed_lateness + self.retention
            counted = self.store.add(window, event, expires_at)
            if counted is None:
                duplicates.append(event)
            else:
                previous = updated.get((window.key, window.start))
                updated[(window.key, window.start)] = WindowAggregate(
                    key=window.key,
                    start=window.start,
                    end=window.end,
                    count=counted[0],
                    total=counted[1],
                    late=lateness is Lateness.LATE or (previous is not None and previous.late),
                )
            if max_seen is None or event.event_time > max_seen:
                max_seen = event.event_time
        if max_seen is not None and (stored_max is None or max_seen > stored_max):
            self.store.advance(max_seen)
        return WindowBatchResult(
            updated=list(updated.values()),
            duplicates=duplicates,
            too_late=too_late,
            watermark=self.windows.watermark(max_seen),
        )


# -- adapters -------------------------------------------------------------------------------


class InMemoryWindowStore:
    """Window state in a dict (tests, local runs); same semantics as DynamoDB's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._max: datetime | None = None
        self.windows: dict[tuple[str, datetime], tuple[int, Decimal, frozenset[str]]] = {}

    def max_event_time(self) -> datetime | None:
        with self._lock:
            return self._max

    def advance(self, max_event_time: datetime) -> None:
        with self._lock:
            if self._max is None or max_event_time > self._max:
                self._max = max_event_time

    def add(
        self, window: Window, event: WindowEvent, expires_at: datetime
    ) -> tuple[int, Decimal] | None:
        with self._lock:
            count, total, seen = self.windows.get(
                (window.key, window.start), (0, Decimal(0), frozenset())
            )
            if event.event_id in seen:
                return None
            count, total = count + 1, total + _decimal(event.value)
            self.windows[(window.key, window.start)] = (count, total, seen | {event.event_id})
            return count, total


class DynamoDBWindowStore(TableAdapter):
    """Window state in DynamoDB (see the module docstring for the table)."""

    def _watermark_key(self) -> dict[str, Any]:
        return {"windowKey": {"S": WATERMARK_KEY}, "windowStart": {"N": "0"}}

    def max_event_time(self) -> datetime | None:
        item = self.client.get_item(
            TableName=self.table_name, Key=self._watermark_key(), ConsistentRead=True
        ).get("Item")
        if item is None or "maxEventTime" not in item:
            return None
        return from_millis(int(item["maxEventTime"]["N"]))

    def advance(self, max_event_time: datetime) -> None:
        client = self.client
        # Failing the condition means another batch saw a later event: nothing to do.
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=self.table_name,
                Key=self._watermark_key(),
                UpdateExpression="SET #m = :t",
                ConditionExpression="attribute_not_exists(#m) OR #m < :t",
                ExpressionAttributeNames={"#m": "maxEventTime"},
                ExpressionAttributeValues={":t": {"N": str(to_millis(max_event_time))}},
            )

    def add(
        self, window: Window, event: WindowEvent, expires_at: datetime
    ) -> tuple[int, Decimal] | None:
        client = self.client
        value = _decimal(event.value)
        try:
            item = client.update_item(
                TableName=self.table_name,
                Key={
                    "windowKey": {"S": window.key},
                    "windowStart": {"N": str(to_millis(window.start))},
                },
                UpdateExpression=(
                    "ADD #count :one, #total :value, #seen :ids SET #end = :end, #exp = :exp"
                ),
                ConditionExpression="NOT contains(#seen, :id)",
                ExpressionAttributeNames={
                    "#count": "count",
                    "#total": "total",
                    "#seen": "seenIds",
                    "#end": "windowEnd",
                    "#exp": "expiresAt",
                },
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":value": {"N": str(value)},
                    ":ids": {"SS": [event.event_id]},
                    ":id": {"S": event.event_id},
                    ":end": {"N": str(to_millis(window.end))},
                    ":exp": {"N": str(to_millis(expires_at) // 1000)},
                },
                # UPDATED_NEW keeps the growing seenIds set out of the response, but may
                # leave out `total` when adding 0 leaves it unchanged (moto does).
                ReturnValues="UPDATED_NEW" if value else "ALL_NEW",
            )["Attributes"]
        except client.exceptions.ConditionalCheckFailedException:
            return None
        return int(item["count"]["N"]), Decimal(item["total"]["N"])
