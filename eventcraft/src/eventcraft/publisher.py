"""PutEvents that never drops an event silently.

Entries go out in requests of at most 10 entries and 256 KB (entry size computed as AWS
documents it: "Calculating Amazon EventBridge PutEvents event entry size"). PutEvents can
accept a request and still reject some entries (`FailedEntryCount`, per-entry
`ErrorCode`): only those entries are sent again, with exponential backoff and full jitter;
entries that still fail after `max_attempts`, or fail with an error that retrying cannot
fix, raise PublishError naming each of them (after the others were published). An entry
too large for any request is never sent and is listed there too. EventBridge does not
keep the order of entries, and a retry may reorder them further.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from eventcraft import clients

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef as Entry

    from eventcraft.contracts import Event

EVENT_BUS_ENV: Final = "EVENT_BUS_NAME"
MAX_ENTRIES_PER_REQUEST: Final = 10
# "The total entry size must be less than 256KB" (strictly: 262144 bytes is too much).
MAX_REQUEST_BYTES: Final = 256 * 1024
TIME_BYTES: Final = 14  # a Time parameter counts 14 bytes, whatever its value
# Documented as non-retryable for PutEventsResultEntry.ErrorCode; any other code (the
# documented InternalFailure and ThrottlingException, or one added later) is retried.
NON_RETRYABLE_ERROR_CODES: Final = frozenset(
    {
        "AccessDeniedException",
        "InvalidAccountIdException",
        "InvalidArgument",
        "MalformedDetail",
        "RedactionFailure",
        "NotAuthorizedForSourceException",
        "NotAuthorizedForDetailTypeException",
    }
)


@dataclass(frozen=True)
class FailedEntry:
    """An entry that was not published: its position in the input, and the last error."""

    index: int
    entry: Entry
    error_code: str
    error_message: str
    attempts: int


TOO_LARGE: Final = "EntryTooLarge"  # our code for an entry that can never be sent


class PublishError(Exception):
    """Some entries were not published. `failed` lists them; `event_ids` is aligned with
    the input (the EventBridge id of each published entry, None for the others)."""

    def __init__(self, failed: Sequence[FailedEntry], event_ids: Sequence[str | None]) -> None:
        self.failed = list(failed)
        self.event_ids = list(event_ids)
        shown = "; ".join(
            f"#{f.index} {f.entry.get('DetailType')} ({f.error_code}: {f.error_message}, "
            f"{f.attempts} attempt(s))"
            for f in self.failed[:10]
        )
        more = f" and {len(self.failed) - 10} more" if len(self.failed) > 10 else ""
        advice = (
            "Nothing was dropped: let this error fail the invocation so its trigger retries "
            "(consumers are idempotent on detail.eventId, so the entries that were published "
            "may safely be published again)."
        )
        if any(f.error_code == TOO_LARGE for f in self.failed):
            advice += (
                f" An entry of {MAX_REQUEST_BYTES} bytes or more can never be published: "
                "store its payload in S3 and publish the object key instead (claim check)."
            )
        super().__init__(
            f"{len(self.failed)} of {len(self.event_ids)} events were not published: "
            f"{shown}{more}. {advice}"
        )


def _utf8_len(text: str | None) -> int:
    return len(text.encode("utf-8")) if text else 0


def entry_size(entry: Entry) -> int:
    """Bytes an entry counts against the 256 KB PutEvents limit (AWS's formula: Time is 14
    bytes if set; Source, DetailType, Detail and each Resource their UTF-8 length)."""
    size = TIME_BYTES if entry.get("Time") is not None else 0
    size += _utf8_len(entry.get("Source")) + _utf8_len(entry.get("DetailType"))
    size += _utf8_len(entry.get("Detail"))
    size += sum(_utf8_len(resource) for resource in entry.get("Resources", ()))
    return size


def request_chunks(entries: Sequence[Entry], indices: Sequence[int]) -> Iterator[list[int]]:
    """Split `indices` (positions in `entries`, order kept) into PutEvents requests of at
    most 10 entries and less than 256 KB. Each entry must fit alone (Publisher fails
    the ones that do not, without sending them)."""
    chunk: list[int] = []
    chunk_bytes = 0
    for index in indices:
        size = entry_size(entries[index])
        if chunk and (
            len(chunk) == MAX_ENTRIES_PER_REQUEST or chunk_bytes + size >= MAX_REQUEST_BYTES
        ):
            yield chunk
            chunk, chunk_bytes = [], 0
        chunk.append(index)
        chunk_bytes += size
    if chunk:
        yield chunk


def entry(event: Event, *, bus_name: str, resources: Sequence[str] = ()) -> Entry:
    """The PutEvents entry of a contract event. `Time` is the event's `occurredAt`, so the
    envelope's `time` is event time (what windows and archives replay by)."""
    result: Entry = {
        "EventBusName": bus_name,
        "Source": event.SOURCE,
        "DetailType": event.DETAIL_TYPE,
        "Detail": event.to_json(),
        "Time": event.occurred_at,
    }
    if resources:
        result["Resources"] = list(resources)
    return result


class Publisher:
    """Publishes to one event bus.

    bus_name: default env EVENT_BUS_NAME, read when first needed.
    client: an EventBridge client; default the container's shared one, created on first use.
    max_attempts: attempts per entry (default 4), including the first.
    base_delay, max_delay: seconds; the wait before retry n is uniform in
        [0, min(max_delay, base_delay * 2 ** (n - 1))] (full jitter; defaults 0.05 s, 2 s).
    sleep, jitter: injectable for tests (defaults time.sleep, random.random).
    """

    def __init__(
        self,
        bus_name: str | None = None,
        *,
        client: EventBridgeClient | None = None,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("base_delay and max_delay are seconds and must be >= 0")
        self._bus_name = bus_name
        self._client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._jitter = jitter

    @property
    def bus_name(self) -> str:
        name = self._bus_name or os.environ.get(EVENT_BUS_ENV)
        if not name:
            raise ValueError(
                f"no event bus: pass Publisher(bus_name=...) or set {EVENT_BUS_ENV} on the "
                "function (its component knows the bus)"
            )
        return name

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            self._client = clients.client("events")
        return self._client

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): full jitter."""
        return self._jitter() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))

    def publish(self, events: Iterable[Event], *, resources: Sequence[str] = ()) -> list[str]:
        """Publish contract events; returns their EventBridge ids, in input order."""
        bus = self.bus_name
        return self.put_entries([entry(e, bus_name=bus, resources=resources) for e in events])

    def put_entries(self, entries: Sequence[Entry]) -> list[str]:
        """Publish raw entries (an entry without EventBusName goes to this bus); returns
        their EventBridge ids, in input order. Raises PublishError (see module doc)."""
        entries = [
            e if e.get("EventBusName") else {**e, "EventBusName": self.bus_name} for e in entries
        ]
        ids: list[str | None] = [None] * len(entries)
        failed: dict[int, FailedEntry] = {}
        pending: list[int] = []
        for i, e in enumerate(entries):
            if (size := entry_size(e)) >= MAX_REQUEST_BYTES:  # never sent; the others are
                failed[i] = FailedEntry(i, e, TOO_LARGE, f"{size} bytes", 0)
            else:
                pending.append(i)
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            retry = self._attempt(entries, pending, attempt, ids, failed)
            if not retry:
                break
            if attempt < self.max_attempts:
                self._sleep(self.backoff(attempt))
            pending = retry
        if failed:
            raise PublishError([failed[i] for i in sorted(failed)], ids)
        return [event_id for event_id in ids if event_id is not None]

    def _attempt(
        self,
        entries: Sequence[Entry],
        pending: list[int],
        attempt: int,
        ids: list[str | None],
        failed: dict[int, FailedEntry],
    ) -> list[int]:
        """Send `pending` once; record ids and failures; return the indices to retry."""
        retry: list[int] = []
        final = attempt == self.max_attempts
        chunks = list(request_chunks(entries, pending))
        for n, chunk in enumerate(chunks):
            try:
                response = self.client.put_events(Entries=[entries[i] for i in chunk])
            except Exception as exc:
                # botocore already retried what is transient: the request itself is
                # refused (no such bus, no permission...). Everything not yet published fails.
                code = (
                    getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
                )
                unsent = [i for later in chunks[n:] for i in later] + retry
                for i in unsent:
                    failed[i] = FailedEntry(i, entries[i], code, str(exc), attempt)
                raise PublishError([failed[i] for i in sorted(failed)], ids) from exc
            results = response.get("Entries", [])
            for position, i in enumerate(chunk):
                result = results[position] if position < len(results) else {}
                if result.get("EventId") and not result.get("ErrorCode"):
                    ids[i] = result["EventId"]
                    failed.pop(i, None)
                    continue
                code = result.get("ErrorCode") or "MissingResult"
                message = result.get("ErrorMessage") or "PutEvents returned no result for it"
                failed[i] = FailedEntry(i, entries[i], code, message, attempt)
                if code not in NON_RETRYABLE_ERROR_CODES and not final:
                    retry.append(i)
        return retry
