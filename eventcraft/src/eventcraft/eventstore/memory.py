"""In-memory adapters: the same contract as the DynamoDB ones, for tests and local runs.

Thread-safe; data goes through a JSON round trip as it would through DynamoDB. Reads are
counted (`items_read`, `queries`, ...) so tests can prove how much a rebuild reads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from .model import (
    ConcurrencyError,
    NewEvent,
    Snapshot,
    StoredEvent,
    json_roundtrip,
    snapshot_replaces,
    stored,
)


class InMemoryEventRecorder:
    """Events per aggregate, in a list indexed by version - 1.

    page_size: events per "query" page (default 1000), so paging is exercised as with
        DynamoDB's Query.
    """

    def __init__(self, *, page_size: int = 1000) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        self.page_size = page_size
        self._streams: dict[str, list[StoredEvent]] = {}
        self._lock = threading.Lock()
        self.queries = 0
        self.items_read = 0

    def append(
        self, aggregate_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        records = [
            StoredEvent(
                aggregate_id=r.aggregate_id,
                version=r.version,
                type=r.type,
                data=json_roundtrip(dict(r.data)),
                occurred_at=r.occurred_at,
                event_id=r.event_id,
                schema_version=r.schema_version,
            )
            for r in stored(aggregate_id, expected_version, events)
        ]
        with self._lock:
            stream = self._streams.setdefault(aggregate_id, [])
            head = len(stream)
            if expected_version > head:
                raise ConcurrencyError(aggregate_id, expected_version, head + 1, reason="ahead")
            if expected_version < head:
                raise ConcurrencyError(aggregate_id, expected_version, expected_version + 1)
            stream.extend(records)
        return records

    def read(
        self, aggregate_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> Iterator[StoredEvent]:
        position = max(after_version, 0)
        while True:
            with self._lock:
                stream = self._streams.get(aggregate_id, [])
                end = len(stream) if up_to_version is None else min(len(stream), up_to_version)
                page = stream[position : min(position + self.page_size, end)]
                self.queries += 1
                self.items_read += len(page)
            yield from page
            if len(page) < self.page_size or position + len(page) >= end:
                return
            position += len(page)


class InMemorySnapshotRecorder:
    """The latest snapshot per aggregate; counts `items_read` (snapshots returned)."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._lock = threading.Lock()
        self.gets = 0
        self.items_read = 0

    def get(self, aggregate_id: str) -> Snapshot | None:
        with self._lock:
            self.gets += 1
            snapshot = self._snapshots.get(aggregate_id)
            if snapshot is not None:
                self.items_read += 1
            return snapshot

    def put(self, snapshot: Snapshot) -> bool:
        copy = Snapshot(
            aggregate_id=snapshot.aggregate_id,
            version=snapshot.version,
            state=json_roundtrip(snapshot.state),
            schema_version=snapshot.schema_version,
            taken_at=snapshot.taken_at,
        )
        with self._lock:
            if not snapshot_replaces(copy, self._snapshots.get(snapshot.aggregate_id)):
                return False
            self._snapshots[snapshot.aggregate_id] = copy
            return True


class InMemoryReadModel:
    """Read model rows: key -> (view, version), written only if the version matches."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[Any | None, int]:
        with self._lock:
            view, version = self._rows.get(key, (None, 0))
            return json_roundtrip(view), version

    def put(self, key: str, view: Any, version: int, expected_version: int) -> bool:
        copy = json_roundtrip(view)
        with self._lock:
            if self._rows.get(key, (None, 0))[1] != expected_version:
                return False
            self._rows[key] = (copy, version)
            return True
