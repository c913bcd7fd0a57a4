"""The event store's domain: records, snapshot policy, the adapter contracts, errors.

Pure: no boto3, no I/O. Events are generic (type, schema version, data dict) records;
contract models (pydantic) are turned into `NewEvent`s by the caller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Generic, Protocol, TypeVar

S = TypeVar("S")

# DynamoDB's TransactWriteItems holds at most 100 actions; an append uses one of them to
# check that the expected version exists (no gaps), so at most 99 events per append.
# Every adapter enforces the same limit, so code tested in memory behaves the same on AWS.
MAX_EVENTS_PER_APPEND: Final = 99


def utc_now_iso() -> str:
    """Now, UTC, ISO 8601 with milliseconds and a Z (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. `event_id` (default: a UUID4) and `occurred_at` (default: now,
    UTC ISO 8601) are stored with it; `schema_version` (default 1) is the version of the
    event's contract, for upcasting on read."""

    type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    event_id: str = field(default_factory=_new_event_id)
    occurred_at: str = field(default_factory=utc_now_iso)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event in an aggregate's history; `version` is its position (1, 2, ...)."""

    aggregate_id: str
    version: int
    type: str
    data: Mapping[str, Any]
    occurred_at: str
    event_id: str
    schema_version: int = 1


def stored(
    aggregate_id: str, expected_version: int, events: Sequence[NewEvent]
) -> list[StoredEvent]:
    """The records of `events` appended after `expected_version`."""
    return [
        StoredEvent(
            aggregate_id=aggregate_id,
            version=expected_version + offset,
            type=event.type,
            data=event.data,
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            schema_version=event.schema_version,
        )
        for offset, event in enumerate(events, start=1)
    ]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of an aggregate after event `version`, as a JSON-compatible value
    (already encoded by `SnapshotPolicy.encode`)."""

    aggregate_id: str
    version: int
    state: Any
    schema_version: int
    taken_at: str = field(default_factory=utc_now_iso)


def snapshot_replaces(new: Snapshot, current: Snapshot | None) -> bool:
    """Whether `new` may overwrite `current`: it is of a later version, or of a newer
    state schema. A stale writer never overwrites a newer snapshot of the same schema.
    (The DynamoDB adapter states the same rule as a ConditionExpression.)"""
    return (
        current is None
        or current.version < new.version
        or current.schema_version < new.schema_version
    )


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class SnapshotPolicy:
    """Write a snapshot once `every` events have been appended since the last one.

    every: events between snapshots (>= 1). A rebuild then reads one snapshot and fewer
        than `every` events, however long the history is.
    schema_version: version of the state's shape (default 1). Bump it when the reducer's
        state changes shape: older snapshots are then ignored (the state is rebuilt from
        events) and replaced.
    encode / decode: state -> JSON-compatible value and back (default: the state itself,
        for dict/list states). For a pydantic state: `encode=lambda s:
        s.model_dump(mode="json")`, `decode=State.model_validate`.
    """

    every: int
    schema_version: int = 1
    encode: Callable[[Any], Any] = _identity
    decode: Callable[[Any], Any] = _identity

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"SnapshotPolicy.every must be >= 1, got {self.every}")
        if self.schema_version < 1:
            raise ValueError(
                f"SnapshotPolicy.schema_version must be >= 1, got {self.schema_version}"
            )

    def due(self, snapshot_version: int, version: int) -> bool:
        """Whether a snapshot at `version` is due, the last one being at `snapshot_version`
        (0: none). Counting from the last snapshot (not multiples of `every`) heals by
        itself when a snapshot write was skipped or failed."""
        return version - snapshot_version >= self.every


Reducer = Callable[[S, StoredEvent], S]


@dataclass(frozen=True)
class Rehydrated(Generic[S]):
    """An aggregate's state as of `version`, and what it cost to build.

    snapshot_version: the snapshot the state was built from or last written (0: none).
    events_read / snapshot_read: the event items and snapshot items read to build it.
    """

    aggregate_id: str
    state: S
    version: int
    snapshot_version: int = 0
    events_read: int = 0
    snapshot_read: bool = False


def fold(
    state: S,
    events: Iterable[StoredEvent],
    reducer: Reducer[S],
    after_version: int = 0,
) -> tuple[S, int, int]:
    """Apply `events` (the ones after `after_version`) in order; return (state, last
    version, events applied). The last version is `after_version` if there are none.

    Raises EventOrderError if the versions do not follow on from `after_version` one by
    one: a corrupt history must not silently produce a wrong state."""
    version = after_version
    count = 0
    for event in events:
        if event.version != version + 1:
            raise EventOrderError(event.aggregate_id, version + 1, event.version)
        state = reducer(state, event)
        version = event.version
        count += 1
    return state, version, count


def json_roundtrip(value: Any) -> Any:
    """`value` as it comes back from storage (JSON): catches non-serialisable values in
    memory, as DynamoDB would, and stops callers from mutating stored data."""
    return json.loads(json.dumps(value))


class EventRecorder(Protocol):
    """Stores events. Adapters: InMemoryEventRecorder, DynamoDBEventRecorder."""

    def append(
        self, aggregate_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        """Append all of `events` after `expected_version`, or none of them.

        Raises ConcurrencyError if a version is taken, or if `expected_version` > 0 and
        there is no event at `expected_version`."""
        ...

    def read(
        self, aggregate_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> Iterator[StoredEvent]:
        """Events with after_version < version <= up_to_version, in version order."""
        ...


class SnapshotRecorder(Protocol):
    """Stores the latest snapshot per aggregate."""

    def get(self, aggregate_id: str) -> Snapshot | None: ...

    def put(self, snapshot: Snapshot) -> bool:
        """Store `snapshot` if `snapshot_replaces` the stored one; False if not (not an
        error: a newer snapshot is already there)."""
        ...


class EventStoreError(Exception):
    """Base class of the event store's errors."""


class ConcurrencyError(EventStoreError):
    """The stream is not at the version the writer expected: another writer appended
    first (or the expected version is ahead of the stream). Nothing was written."""

    def __init__(
        self,
        aggregate_id: str,
        expected_version: int,
        conflicting_version: int,
        *,
        reason: str = "taken",
    ) -> None:
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version
        self.conflicting_version = conflicting_version
        self.reason = reason
        if reason == "ahead":
            what = (
                f"there is no event at version {expected_version}: expected_version is "
                "ahead of the stream"
            )
        elif reason == "in-flight":
            what = f"another transaction was writing version {conflicting_version} at the same time"
        else:
            what = f"version {conflicting_version} already exists (another writer appended first)"
        super().__init__(
            f"Cannot append to aggregate {aggregate_id!r} after version {expected_version}: "
            f"{what}. Nothing was written. Reload the aggregate (EventStore.rehydrate or "
            "load) and retry the command against the new state."
        )


class AppendTooLargeError(EventStoreError, ValueError):
    """More events in one append than a DynamoDB transaction can hold."""

    def __init__(self, aggregate_id: str, count: int) -> None:
        self.aggregate_id = aggregate_id
        self.count = count
        super().__init__(
            f"Cannot append {count} events to aggregate {aggregate_id!r} at once: at most "
            f"{MAX_EVENTS_PER_APPEND} fit in one atomic append (a DynamoDB transaction holds "
            "100 actions). Have the command raise fewer events, or split it into commands "
            "that are each valid on their own."
        )


class EventOrderError(EventStoreError):
    """A history whose versions do not follow on one by one."""

    def __init__(self, aggregate_id: str, expected: int, got: int) -> None:
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.got = got
        if got > expected:
            what = f"events {expected}..{got - 1} are missing"
        else:
            what = f"version {got} comes again or out of order"
        super().__init__(
            f"History of aggregate {aggregate_id!r} expected version {expected} next but "
            f"found {got}: {what}. The event store never writes gaps (appends are "
            "conditional), so the table was written outside it: restore the missing "
            "items from a backup (point-in-time recovery)."
        )
