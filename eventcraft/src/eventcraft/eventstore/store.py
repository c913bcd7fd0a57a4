"""The event store's use cases: append, load, rehydrate (snapshot + tail), snapshots.

Works over any EventRecorder / SnapshotRecorder (memory, DynamoDB): the adapters only
store and read; the rules (limits, snapshot policy, rebuild) live here, once.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from .model import (
    MAX_EVENTS_PER_APPEND,
    AppendTooLargeError,
    ConcurrencyError,
    EventRecorder,
    NewEvent,
    Reducer,
    Rehydrated,
    S,
    Snapshot,
    SnapshotPolicy,
    SnapshotRecorder,
    StoredEvent,
    fold,
)

logger = logging.getLogger(__name__)


class EventStore:
    """Append-only event histories per aggregate, with optional snapshots.

        store = EventStore(DynamoDBEventRecorder("events"),
                           snapshots=DynamoDBSnapshotRecorder("snapshots"),
                           policy=SnapshotPolicy(every=100))
        order = store.rehydrate("order-1", reducer, initial={})
        order = store.append_from(order, [NewEvent("OrderShipped", {...})], reducer)

    snapshots / policy: both or neither. With them, `rehydrate` reads the latest snapshot
        and only the events after it, and a snapshot is written whenever `policy.every`
        events have accumulated since the last one (by `append_from`, `execute`, or a
        `rehydrate` that read that many). Snapshot writes never fail the operation: a
        failed one is logged (WARNING) and retried at the next opportunity.
    Reducers must return the new state and not mutate the one they are given.
    """

    def __init__(
        self,
        recorder: EventRecorder,
        *,
        snapshots: SnapshotRecorder | None = None,
        policy: SnapshotPolicy | None = None,
    ) -> None:
        if (snapshots is None) != (policy is None):
            raise ValueError(
                "EventStore: pass both `snapshots` (where snapshots are kept) and `policy` "
                "(when to take them), or neither."
            )
        self.recorder = recorder
        self.snapshots = snapshots
        self.policy = policy

    def append(
        self, aggregate_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        """Append `events` after `expected_version` (0: a new aggregate), all or none.

        Raises ConcurrencyError if the stream is not at `expected_version` (another
        writer won: reload and retry), AppendTooLargeError above MAX_EVENTS_PER_APPEND,
        ValueError for an empty id, a negative version or no events.
        """
        if not aggregate_id:
            raise ValueError("aggregate_id must be a non-empty string")
        if expected_version < 0:
            raise ValueError(
                f"expected_version must be >= 0 (0 for a new aggregate), got {expected_version}"
            )
        if not events:
            raise ValueError(f"append to {aggregate_id!r}: no events given; append at least one")
        if len(events) > MAX_EVENTS_PER_APPEND:
            raise AppendTooLargeError(aggregate_id, len(events))
        return self.recorder.append(aggregate_id, expected_version, list(events))

    def load(
        self, aggregate_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> Iterator[StoredEvent]:
        """The events after `after_version` (up to `up_to_version`, default all), in version
        order, read page by page as they are consumed."""
        return self.recorder.read(aggregate_id, after_version, up_to_version)

    def rehydrate(
        self,
        aggregate_id: str,
        reducer: Reducer[S],
        initial: S,
        *,
        write_snapshot: bool = True,
    ) -> Rehydrated[S]:
        """The aggregate's current state: the latest snapshot (if any, and of the policy's
        schema version) plus the events after it, folded with `reducer` from a copy of
        `initial`. Reads at most one snapshot and, with a policy, fewer than `every` events
        in steady state.

        write_snapshot: if `policy.every` or more events were read past the snapshot,
            write a new one (default True). Pass False from functions whose role may not
            write the snapshots table.
        """
        state: S = copy.deepcopy(initial)
        after = 0
        snapshot_read = False
        if self.snapshots is not None and self.policy is not None:
            snapshot = self.snapshots.get(aggregate_id)
            snapshot_read = snapshot is not None
            if snapshot is not None and snapshot.schema_version == self.policy.schema_version:
                state, after = self.policy.decode(snapshot.state), snapshot.version
            elif snapshot is not None:
                logger.info(
                    "Ignoring snapshot of %r at version %d: state schema %d, policy wants %d; "
                    "rebuilding from events",
                    aggregate_id,
                    snapshot.version,
                    snapshot.schema_version,
                    self.policy.schema_version,
                )
        state, version, count = fold(state, self.load(aggregate_id, after), reducer, after)
        result = Rehydrated(
            aggregate_id=aggregate_id,
            state=state,
            version=version,
            snapshot_version=after,
            events_read=count,
            snapshot_read=snapshot_read,
        )
        if write_snapshot:
            result = self._snapshot_if_due(result)
        return result

    def append_from(
        self, current: Rehydrated[S], events: Sequence[NewEvent], reducer: Reducer[S]
    ) -> Rehydrated[S]:
        """Append `events` after `current.version` and return the new state (folded in
        memory, no re-read), writing a snapshot if the policy says one is due.

        Raises ConcurrencyError if another writer appended since `current` was read.
        """
        records = self.append(current.aggregate_id, current.version, events)
        state, version, _ = fold(current.state, records, reducer, current.version)
        result = Rehydrated(
            aggregate_id=current.aggregate_id,
            state=state,
            version=version,
            snapshot_version=current.snapshot_version,
        )
        return self._snapshot_if_due(result)

    def execute(
        self,
        aggregate_id: str,
        decide: Callable[[S], Sequence[NewEvent]],
        reducer: Reducer[S],
        initial: S,
        *,
        max_attempts: int = 3,
    ) -> Rehydrated[S]:
        """Run a command: rehydrate, `decide(state)` the new events, append them; on a
        ConcurrencyError reload and decide again, up to `max_attempts` times (default 3).
        `decide` returning no events appends nothing. `decide` must be pure: it may run
        more than once.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        for attempt in range(1, max_attempts + 1):
            current = self.rehydrate(aggregate_id, reducer, initial)
            events = list(decide(current.state))
            if not events:
                return current
            try:
                return self.append_from(current, events, reducer)
            except ConcurrencyError:
                if attempt == max_attempts:
                    raise
                logger.info(
                    "Concurrent append to %r at version %d (attempt %d of %d): reloading",
                    aggregate_id,
                    current.version,
                    attempt,
                    max_attempts,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _snapshot_if_due(self, current: Rehydrated[S]) -> Rehydrated[S]:
        policy, snapshots = self.policy, self.snapshots
        if policy is None or snapshots is None:
            return current
        if not policy.due(current.snapshot_version, current.version):
            return current
        try:
            written = snapshots.put(
                Snapshot(
                    aggregate_id=current.aggregate_id,
                    version=current.version,
                    state=policy.encode(current.state),
                    schema_version=policy.schema_version,
                )
            )
        except Exception:
            # A snapshot only saves reads: never fail an append that has succeeded.
            logger.warning(
                "Snapshot of %r at version %d not written; the next due write retries. "
                "Check that the state is JSON-serialisable after policy.encode and that "
                "the role may write the snapshots table",
                current.aggregate_id,
                current.version,
                exc_info=True,
            )
            return current
        return replace(current, snapshot_version=current.version) if written else current
