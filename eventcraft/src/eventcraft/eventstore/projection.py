"""Incremental projection of new events into a read model.

Each read model row keeps the `version` of the last event folded into it. A new event
is applied only on top of exactly the previous one (version == stored + 1), with a
conditional write, so redelivered and out-of-order stream records are safe:

- duplicate (version <= stored): a no-op;
- gap (version > stored + 1): the missing events, and only those, are loaded from the
  event store and applied first;
- a concurrent projector moved the row: reload the row and try again.

Never re-reads the aggregate's whole history (the catalogue's projection does, on every
insert: quadratic in the history's length).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .model import EventOrderError, EventStoreError, StoredEvent, fold
from .store import EventStore

V = TypeVar("V")


class ReadModel(Protocol):
    """Read model rows with a version. Adapters: InMemoryReadModel, DynamoDBReadModel."""

    def get(self, key: str) -> tuple[Any | None, int]:
        """(view, version) of the row; (None, 0) if there is none."""
        ...

    def put(self, key: str, view: Any, version: int, expected_version: int) -> bool:
        """Write the row if its version is still `expected_version` (0: no row yet);
        False if another writer moved it."""
        ...


@dataclass(frozen=True)
class ProjectionOutcome:
    """What projecting one aggregate's events did.

    version: the row's version afterwards. applied: events folded into the view (gap
    fill included). duplicates: events skipped, already in the view. gap_filled: events
    loaded from the store to fill a gap. attempts: row writes tried (> 1 after a race).
    """

    aggregate_id: str
    version: int
    applied: int
    duplicates: int
    gap_filled: int
    attempts: int


class ProjectionConflictError(EventStoreError):
    """The row kept moving under the projector."""

    def __init__(self, aggregate_id: str, attempts: int) -> None:
        self.aggregate_id = aggregate_id
        self.attempts = attempts
        super().__init__(
            f"Read model row of {aggregate_id!r} changed under the projector {attempts} "
            "times in a row. Run one projector per stream shard (the event source "
            "mapping's default); the record fails so the stream retries it."
        )


class Projector(Generic[V]):
    """Folds new events into read model rows (one row per aggregate).

    reducer: (view, event) -> new view; must not mutate `view`. initial: the view before
    the first event (copied). max_attempts: row writes per aggregate per call when
    other writers race (default 5).
    """

    def __init__(
        self,
        read_model: ReadModel,
        store: EventStore,
        reducer: Callable[[V, StoredEvent], V],
        initial: V,
        *,
        max_attempts: int = 5,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.read_model = read_model
        self.store = store
        self.reducer = reducer
        self.initial = initial
        self.max_attempts = max_attempts

    def project(self, events: Iterable[StoredEvent]) -> list[ProjectionOutcome]:
        """Project a batch (e.g. a stream batch): per aggregate, one row read and one
        conditional write, whatever the number of its events in the batch."""
        groups: dict[str, dict[int, StoredEvent]] = {}
        for event in events:
            groups.setdefault(event.aggregate_id, {}).setdefault(event.version, event)
        return [self._project(aggregate_id, group) for aggregate_id, group in groups.items()]

    def project_one(self, event: StoredEvent) -> ProjectionOutcome:
        return self._project(event.aggregate_id, {event.version: event})

    def _project(self, aggregate_id: str, given: dict[int, StoredEvent]) -> ProjectionOutcome:
        for attempt in range(1, self.max_attempts + 1):
            view, stored_version = self.read_model.get(aggregate_id)
            have = {v: e for v, e in given.items() if v > stored_version}
            duplicates = len(given) - len(have)
            if not have:
                return ProjectionOutcome(aggregate_id, stored_version, 0, duplicates, 0, attempt)
            top = max(have)
            missing = [v for v in range(stored_version + 1, top) if v not in have]
            gap_filled = 0
            if missing:
                for event in self.store.load(aggregate_id, missing[0] - 1, missing[-1]):
                    if event.version not in have:
                        have[event.version] = event
                        gap_filled += 1
            sequence = [have[v] for v in range(stored_version + 1, top + 1) if v in have]
            if len(sequence) != top - stored_version:
                first_missing = next(v for v in range(stored_version + 1, top) if v not in have)
                raise EventOrderError(aggregate_id, first_missing, top)
            start = copy.deepcopy(self.initial) if view is None else view
            new_view, version, applied = fold(start, sequence, self.reducer, stored_version)
            if self.read_model.put(aggregate_id, new_view, version, stored_version):
                return ProjectionOutcome(
                    aggregate_id, version, applied, duplicates, gap_filled, attempt
                )
        raise ProjectionConflictError(aggregate_id, self.max_attempts)
