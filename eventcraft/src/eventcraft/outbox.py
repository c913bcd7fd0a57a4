"""Transactional outbox on DynamoDB.

Write side: the business item(s) and one outbox row per event go in ONE TransactWriteItems,
so either the state change and its events are both recorded, or neither is (the business
condition, e.g. "the order does not exist yet", guards both).

Relay side: the outbox table's stream (view NEW_IMAGE) delivers each INSERT once or more;
`relay(records)` publishes the rows' events through the Publisher, then marks each row
published with a conditional update (idempotent) that also sets its TTL. Delivery is at
least once: a relay retried after a partial failure republishes rows, and consumers are
idempotent on detail.eventId.

Sweep side: a relay gives up on a stream record after its retries (an EventBridge outage
longer than its retry budget); the row stays unpublished in the table. `sweep()` (run on
a schedule) and `unpublished()` + `republish()` (an operator's tool) publish the rows
still unpublished some time after they were written. An unpublished row carries
`pendingShard`, the key of the sparse index `pending` (range key `createdAt`): the index
holds the unpublished rows only, so finding them costs nothing when there are none,
and spreading them over 16 shards keeps a busy outbox from writing one hot index
partition. Whoever publishes a row (relay or sweeper) marks it with the same conditional
update, so they never undo each other; a row both publish goes out twice, which the
consumers' idempotency absorbs.

Outbox row (table key `pk`, string):
    pk           "outbox#<eventId>" (the prefix lets the outbox share a table: the relay
                 skips rows without it)
    eventId      the producer's event id
    detailType   EventBridge detail-type
    source       EventBridge source
    detail       the detail as a JSON string, published byte for byte
    createdAt    ISO-8601 UTC time of the write (the entry's Time)
    published    false, then true
    pendingShard "0".."15" while unpublished (the `pending` index's key), removed once
                 published
    publishedAt  ISO-8601 UTC, once published
    expiresAt    epoch seconds, TTL attribute, set once published (7 days later by default)
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NoReturn

from eventcraft import clients, dynamodb
from eventcraft.publisher import Publisher, PublishError
from eventcraft.records import new_image, sequence_number, unwrap

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

    from eventcraft.contracts import Event


def utc_now() -> datetime:
    # Not eventcraft.contracts.utc_now: importing it would load pydantic into the relay.
    return datetime.now(UTC)


PK: Final = "pk"
PK_PREFIX: Final = "outbox#"
TTL_ATTRIBUTE: Final = "expiresAt"
PUBLISHED_RETENTION: Final = timedelta(days=7)
MAX_TRANSACT_ITEMS: Final = 100  # DynamoDB's limit per TransactWriteItems
CREATED_AT: Final = "createdAt"
# The sparse index of the unpublished rows: key pendingShard, range createdAt.
PENDING_INDEX: Final = "pending"
PENDING_SHARD: Final = "pendingShard"
PENDING_SHARDS: Final = 16
# A row this old and still unpublished is republished by `sweep` (the relay publishes
# within seconds; it gives up after its retries, minutes into an outage).
SWEEP_AFTER: Final = timedelta(minutes=2)
SWEEP_BATCH: Final = 100  # rows published per PutEvents round (10 entries a request)


class OutboxError(Exception):
    """Base of the outbox's errors."""


_OUTBOX_ROW_NOTE: Final = " (an outbox row: this event id was already written)"


class ConditionFailedError(OutboxError):
    """A condition of the transaction failed: nothing was written. Not retryable as is:
    the state the command assumed (e.g. "no such order yet") is not the state of the table.

    `failed` lists (index in the transaction, table name) of each failed condition.
    """

    def __init__(self, failed: list[tuple[int, str]], n_business_items: int) -> None:
        self.failed = failed
        parts = [
            f"item {i} on {table}" + (_OUTBOX_ROW_NOTE if i >= n_business_items else "")
            for i, table in failed
        ]
        super().__init__(
            f"transaction cancelled, nothing written: the condition of {', '.join(parts)} "
            "failed. The command conflicts with the current state (e.g. the order already "
            "exists): answer the caller, do not retry it unchanged."
        )


class TransactionConflictError(OutboxError):
    """Another transaction touched the same items concurrently: nothing was written. Retry."""


class TransactionThrottledError(TransactionConflictError):
    """DynamoDB throttled an item of the transaction (reason `ThrottlingError` or
    `ProvisionedThroughputExceeded`): nothing was written. Retry after a backoff. The SDK
    does not retry it itself: a cancelled transaction is not a throttling error to it."""


# Cancellation reasons that say "nothing was written, the same request may succeed later".
_THROTTLED_REASONS: Final = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})


class SweepIncompleteError(OutboxError):
    """A sweep left unpublished rows (the bus refused them, or time ran out): they stay
    in the table, unpublished, for the next sweep."""


def put(
    table_name: str,
    item: Mapping[str, Any],
    *,
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> TransactWriteItemTypeDef:
    """A transaction Put of `item` (plain Python values: str, int, Decimal, bool, lists,
    dicts; not float, which DynamoDB rejects), guarded by `condition` if given."""
    put_request: PutTypeDef = {"TableName": table_name, "Item": dynamodb.serialize(item)}
    if condition:
        put_request["ConditionExpression"] = condition
    if names:
        put_request["ExpressionAttributeNames"] = dict(names)
    if values:
        put_request["ExpressionAttributeValues"] = dynamodb.serialize(values)
    return {"Put": put_request}


def pending_shard(event_id: str) -> str:
    """The `pending` index shard of an event's row (stable: crc32 of its id)."""
    return str(zlib.crc32(event_id.encode()) % PENDING_SHARDS)


def outbox_row(event: Event, *, now: datetime | None = None) -> dict[str, Any]:
    """The outbox row of `event` (plain Python values; see the module doc)."""
    return {
        PK: f"{PK_PREFIX}{event.event_id}",
        "eventId": event.event_id,
        "detailType": event.DETAIL_TYPE,
        "source": event.SOURCE,
        "detail": event.to_json(),
        CREATED_AT: _iso(now or utc_now()),
        "published": False,
        PENDING_SHARD: pending_shard(event.event_id),
    }


def _iso(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds: one fixed width, so the strings sort as times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def outbox_put(
    table_name: str, event: Event, *, now: datetime | None = None
) -> TransactWriteItemTypeDef:
    """The transaction Put of `event`'s outbox row; it fails if the event id was written."""
    return put(
        table_name,
        outbox_row(event, now=now),
        condition="attribute_not_exists(#pk)",
        names={"#pk": PK},
    )


def write(
    items: Sequence[TransactWriteItemTypeDef],
    events: Sequence[Event],
    *,
    outbox_table: str,
    client: DynamoDBClient | None = None,
    client_request_token: str | None = None,
    now: datetime | None = None,
) -> None:
    """Write the business `items` and the outbox rows of `events` in one transaction.

    client_request_token: makes the call idempotent for 10 minutes (DynamoDB): the same
        token and request return success again without writing twice.
    Raises ConditionFailedError (nothing written, do not retry unchanged) or
    TransactionConflictError (nothing written, retry; TransactionThrottledError when
    DynamoDB throttled it).
    """
    if not events:
        raise ValueError("write() with no events: use TransactWriteItems directly")
    transact = [*items, *(outbox_put(outbox_table, event, now=now) for event in events)]
    if len(transact) > MAX_TRANSACT_ITEMS:
        raise ValueError(
            f"{len(transact)} items in one transaction; DynamoDB allows {MAX_TRANSACT_ITEMS}"
        )
    ddb = client or clients.client("dynamodb")
    kwargs: dict[str, Any] = {"TransactItems": transact}
    if client_request_token:
        kwargs["ClientRequestToken"] = client_request_token
    try:
        ddb.transact_write_items(**kwargs)
    except ddb.exceptions.TransactionCanceledException as exc:
        raise_cancelled(exc, transact, n_business_items=len(items))


def raise_cancelled(
    exc: Exception, transact: Sequence[TransactWriteItemTypeDef], *, n_business_items: int
) -> NoReturn:
    """Raise what the TransactionCanceledException `exc` of `transact` means, from its
    cancellation reasons: ConditionFailedError, TransactionConflictError,
    TransactionThrottledError, else `exc` itself. Items from `n_business_items` on are
    outbox rows (named so in the ConditionFailedError)."""
    response: Mapping[str, Any] = getattr(exc, "response", {})
    codes = [reason.get("Code", "None") for reason in response.get("CancellationReasons", [])]
    failed = [
        (i, _table_of(transact[i]))
        for i, code in enumerate(codes)
        if code == "ConditionalCheckFailed" and i < len(transact)
    ]
    if failed:
        raise ConditionFailedError(failed, n_business_items) from exc
    if "TransactionConflict" in codes:
        raise TransactionConflictError(
            "another transaction wrote the same items at the same time; nothing was "
            "written: retry the command"
        ) from exc
    throttled = _THROTTLED_REASONS.intersection(codes)
    if throttled:
        raise TransactionThrottledError(
            f"DynamoDB throttled the transaction ({', '.join(sorted(throttled))}); nothing "
            "was written: retry the command after a backoff"
        ) from exc
    raise exc


def _table_of(item: TransactWriteItemTypeDef) -> str:
    for operation in item.values():
        if isinstance(operation, Mapping) and "TableName" in operation:
            return str(operation["TableName"])
    return "?"


# --- relay -------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayFailure:
    sequence_number: str | None
    event_id: str | None
    reason: str


@dataclass
class RelayResult:
    """What a relay call did: event ids published, records skipped, records failed."""

    published: list[str] = field(default_factory=list)
    skipped: int = 0
    failures: list[RelayFailure] = field(default_factory=list)

    def batch_response(self) -> dict[str, list[dict[str, str]]]:
        """The Lambda partial batch response for a DynamoDB stream (ReportBatchItemFailures):
        the stream is retried from the first failed record."""
        return {
            "batchItemFailures": [
                {"itemIdentifier": f.sequence_number}
                for f in self.failures
                if f.sequence_number is not None
            ]
        }


@dataclass(frozen=True)
class _Row:
    sequence_number: str | None
    pk: str
    event_id: str
    entry: PutEventsRequestEntryTypeDef


_ROW_FIELDS: Final = ("eventId", "detailType", "source", "detail", CREATED_AT)


def _entry(image: Mapping[str, Any]) -> PutEventsRequestEntryTypeDef:
    """The PutEvents entry of an outbox row: its detail byte for byte, its time."""
    missing = [k for k in _ROW_FIELDS if k not in image]
    if missing:
        raise ValueError(f"outbox row {image.get(PK)} lacks {', '.join(missing)}")
    return {
        "Source": str(image["source"]),
        "DetailType": str(image["detailType"]),
        "Detail": str(image["detail"]),
        "Time": datetime.fromisoformat(str(image[CREATED_AT])),
    }


def _read_row(record: Mapping[str, Any]) -> _Row | None:
    """The outbox row an INSERT record carries; None for anything the relay ignores."""
    if unwrap(record).get("eventName") != "INSERT":
        return None  # MODIFY is our own `published` update; REMOVE is the TTL
    image = new_image(record)
    if image is None or not str(image.get(PK, "")).startswith(PK_PREFIX):
        return None  # not an outbox row (the outbox may share its table)
    if image.get("published") is True:
        return None
    return _Row(sequence_number(record), str(image[PK]), str(image.get("eventId")), _entry(image))


def relay(
    records: Iterable[Mapping[str, Any]],
    *,
    table_name: str,
    publisher: Publisher,
    client: DynamoDBClient | None = None,
    retention: timedelta = PUBLISHED_RETENTION,
    now: Callable[[], datetime] = utc_now,
) -> RelayResult:
    """Publish the events of the outbox INSERT records among `records`, then mark their
    rows published. Returns what happened; use `.batch_response()` as the handler's result.
    """
    result = RelayResult()
    rows: list[_Row] = []
    for record in records:
        try:
            row = _read_row(record)
        except (ValueError, KeyError) as exc:
            result.failures.append(
                RelayFailure(sequence_number(record), None, f"malformed row: {exc}")
            )
            continue
        if row is None:
            result.skipped += 1
        else:
            rows.append(row)
    if not rows:
        return result
    published, failures = _publish_and_mark(
        rows,
        table_name=table_name,
        publisher=publisher,
        ddb=client or clients.client("dynamodb"),
        now=now,
        retention=retention,
    )
    result.published.extend(row.event_id for row, _ in published)
    result.failures.extend(failures)
    return result


def _publish_and_mark(
    rows: Sequence[_Row],
    *,
    table_name: str,
    publisher: Publisher,
    ddb: DynamoDBClient,
    now: Callable[[], datetime],
    retention: timedelta,
) -> tuple[list[tuple[_Row, bool]], list[RelayFailure]]:
    """Publish `rows`, then mark each published one. Returns the rows published, each
    with whether this call marked it (False: someone else had), and the failures."""
    failures: list[RelayFailure] = []
    sent = list(rows)
    try:
        publisher.put_entries([row.entry for row in rows])
    except PublishError as exc:
        reasons = {f.index: f"{f.error_code}: {f.error_message}" for f in exc.failed}
        sent = [row for row, event_id in zip(rows, exc.event_ids, strict=True) if event_id]
        failures.extend(
            RelayFailure(row.sequence_number, row.event_id, reasons.get(i, "not sent"))
            for i, row in enumerate(rows)
            if exc.event_ids[i] is None
        )
    published: list[tuple[_Row, bool]] = []
    for row in sent:
        try:
            marked = _mark_published(ddb, table_name, row.pk, now(), retention)
        except Exception as exc:  # the event is out: report the row, republish later
            failures.append(RelayFailure(row.sequence_number, row.event_id, f"mark failed: {exc}"))
        else:
            published.append((row, marked))
    return published, failures


def _mark_published(
    ddb: DynamoDBClient, table_name: str, pk: str, at: datetime, retention: timedelta
) -> bool:
    """Mark a row published (its TTL set, out of the pending index); False when it
    already was (an earlier delivery, the relay or the sweeper): never marked twice."""
    try:
        ddb.update_item(
            TableName=table_name,
            Key={PK: {"S": pk}},
            UpdateExpression=(
                "SET published = :true, publishedAt = :at, #ttl = :ttl REMOVE #pending"
            ),
            ConditionExpression="attribute_exists(#pk) AND published = :false",
            ExpressionAttributeNames={"#pk": PK, "#ttl": TTL_ATTRIBUTE, "#pending": PENDING_SHARD},
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":false": {"BOOL": False},
                ":at": {"S": _iso(at)},
                ":ttl": {"N": str(int((at + retention).timestamp()))},
            },
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


# --- sweep: rows a relay gave up on ------------------------------------------------


@dataclass(frozen=True)
class PendingRow:
    """An unpublished outbox row, as `unpublished` finds it."""

    pk: str
    event_id: str
    detail_type: str
    source: str
    detail: str
    created_at: datetime

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> PendingRow:
        """From the row's plain values (raises ValueError when a field is missing)."""
        _entry(item)  # the same checks the relay makes
        return cls(
            pk=str(item[PK]),
            event_id=str(item["eventId"]),
            detail_type=str(item["detailType"]),
            source=str(item["source"]),
            detail=str(item["detail"]),
            created_at=datetime.fromisoformat(str(item[CREATED_AT])),
        )

    def _row(self) -> _Row:
        entry: PutEventsRequestEntryTypeDef = {
            "Source": self.source,
            "DetailType": self.detail_type,
            "Detail": self.detail,
            "Time": self.created_at,
        }
        return _Row(None, self.pk, self.event_id, entry)


def unpublished(
    table_name: str,
    *,
    written_before: datetime | None = None,
    client: DynamoDBClient | None = None,
) -> Iterator[PendingRow]:
    """The rows not yet published (written before `written_before`, default: all),
    oldest first, read page by page from the `pending` index as they are consumed.

    The index is eventually consistent: a row published a moment ago may still show up
    (republishing it is harmless). A row that lacks a field is skipped: the relay has
    already reported it as malformed.
    """
    ddb = client or clients.client("dynamodb")
    before = _iso(written_before) if written_before is not None else None
    shards = [_shard_rows(ddb, table_name, str(shard), before) for shard in range(PENDING_SHARDS)]
    yield from heapq.merge(*shards, key=lambda row: row.created_at)


def _shard_rows(
    ddb: DynamoDBClient, table_name: str, shard: str, before: str | None
) -> Iterator[PendingRow]:
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": PENDING_INDEX,
        "KeyConditionExpression": "#shard = :shard"
        + (" AND #created < :before" if before is not None else ""),
        "ExpressionAttributeNames": {"#shard": PENDING_SHARD}
        | ({"#created": CREATED_AT} if before is not None else {}),
        "ExpressionAttributeValues": {":shard": {"S": shard}}
        | ({":before": {"S": before}} if before is not None else {}),
    }
    while True:
        page = ddb.query(**kwargs)
        for item in page.get("Items", []):
            try:
                yield PendingRow.from_item(dynamodb.deserialize(item))
            except (ValueError, KeyError):
                continue
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


@dataclass
class SweepResult:
    """What a republish did: the event ids published (`marked`: by this call;
    `already_marked`: published again, but someone else had marked the row meanwhile),
    the rows that failed, and `more_left`: whether rows were left untried (a failure,
    out of time or over the limit stopped it)."""

    marked: list[str] = field(default_factory=list)
    already_marked: list[str] = field(default_factory=list)
    failures: list[RelayFailure] = field(default_factory=list)
    more_left: bool = False

    @property
    def complete(self) -> bool:
        """Every row found was published."""
        return not self.failures and not self.more_left

    def raise_if_incomplete(self) -> None:
        """Raise SweepIncompleteError saying what was left and why (a sweeper's
        invocation then counts as an error, which its alarm reports)."""
        if self.complete:
            return
        parts = [f"published {len(self.marked) + len(self.already_marked)} row(s)"]
        if self.failures:
            first = self.failures[0]
            parts.append(
                f"{len(self.failures)} failed (first: event {first.event_id}: {first.reason})"
            )
        if self.more_left:
            parts.append("more rows were not tried")
        raise SweepIncompleteError(
            f"outbox sweep incomplete: {'; '.join(parts)}. The rows stay unpublished in "
            "the table: the next sweep retries them (or run the republish by hand once "
            "the bus accepts events again)"
        )


def republish(
    rows: Iterable[PendingRow],
    *,
    table_name: str,
    publisher: Publisher,
    client: DynamoDBClient | None = None,
    retention: timedelta = PUBLISHED_RETENTION,
    now: Callable[[], datetime] = utc_now,
    batch_size: int = SWEEP_BATCH,
    limit: int | None = None,
    out_of_time: Callable[[], bool] = lambda: False,
) -> SweepResult:
    """Publish `rows` in batches of `batch_size` and mark each one published.

    Stops at the first batch with a failure (EventBridge refusing one batch will refuse
    the next) and when `out_of_time()` says so, or after `limit` rows (default: all);
    `more_left` says whether `rows` had more (one more row is read to know).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ddb = client or clients.client("dynamodb")
    result = SweepResult()
    pending = iter(rows)
    tried = 0
    while True:
        room = batch_size if limit is None else min(batch_size, limit - tried)
        batch = [row._row() for _, row in zip(range(room), pending, strict=False)]
        if not batch:
            break
        tried += len(batch)
        published, failures = _publish_and_mark(
            batch,
            table_name=table_name,
            publisher=publisher,
            ddb=ddb,
            now=now,
            retention=retention,
        )
        for row, marked in published:
            (result.marked if marked else result.already_marked).append(row.event_id)
        result.failures.extend(failures)
        if failures or out_of_time() or (limit is not None and tried >= limit):
            break
    result.more_left = next(pending, None) is not None
    return result


def sweep(
    table_name: str,
    *,
    publisher: Publisher,
    older_than: timedelta = SWEEP_AFTER,
    client: DynamoDBClient | None = None,
    retention: timedelta = PUBLISHED_RETENTION,
    now: Callable[[], datetime] = utc_now,
    out_of_time: Callable[[], bool] = lambda: False,
) -> SweepResult:
    """Republish every row still unpublished `older_than` after it was written (default
    2 minutes): what a relay that gave up left behind. See `republish`."""
    ddb = client or clients.client("dynamodb")
    return republish(
        unpublished(table_name, written_before=now() - older_than, client=ddb),
        table_name=table_name,
        publisher=publisher,
        client=ddb,
        retention=retention,
        now=now,
        out_of_time=out_of_time,
    )
