"""Transactional outbox on DynamoDB.

Write side: the business item(s) and one outbox row per event go in ONE TransactWriteItems,
so either the state change and its events are both recorded, or neither is (the business
condition, e.g. "the order does not exist yet", guards both).

Relay side: the outbox table's stream (view NEW_IMAGE) delivers each INSERT once or more;
`relay(records)` publishes the rows' events through the Publisher, then marks each row
published with a conditional update (idempotent) that also sets its TTL. Delivery is at
least once: a relay retried after a partial failure republishes rows, and consumers are
idempotent on detail.eventId.

Outbox row (table key `pk`, string):
    pk           "outbox#<eventId>" (the prefix lets the outbox share a table: the relay
                 skips rows without it)
    eventId      the producer's event id
    detailType   EventBridge detail-type
    source       EventBridge source
    detail       the detail as a JSON string, published byte for byte
    createdAt    ISO-8601 UTC time of the write (the entry's Time)
    published    false, then true
    publishedAt  ISO-8601 UTC, once published
    expiresAt    epoch seconds, TTL attribute, set once published (7 days later by default)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

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


def outbox_row(event: Event, *, now: datetime | None = None) -> dict[str, Any]:
    """The outbox row of `event` (plain Python values; see the module doc)."""
    return {
        PK: f"{PK_PREFIX}{event.event_id}",
        "eventId": event.event_id,
        "detailType": event.DETAIL_TYPE,
        "source": event.SOURCE,
        "detail": event.to_json(),
        "createdAt": (now or utc_now()).isoformat(),
        "published": False,
    }


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
    TransactionConflictError (nothing written, retry).
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
        reasons = exc.response.get("CancellationReasons", [])
        codes = [reason.get("Code", "None") for reason in reasons]
        failed = [
            (i, _table_of(transact[i]))
            for i, code in enumerate(codes)
            if code == "ConditionalCheckFailed"
        ]
        if failed:
            raise ConditionFailedError(failed, len(items)) from exc
        if "TransactionConflict" in codes:
            raise TransactionConflictError(
                "another transaction wrote the same items at the same time; nothing was "
                "written: retry the command"
            ) from exc
        raise


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


def _read_row(record: Mapping[str, Any]) -> _Row | None:
    """The outbox row an INSERT record carries; None for anything the relay ignores."""
    if unwrap(record).get("eventName") != "INSERT":
        return None  # MODIFY is our own `published` update; REMOVE is the TTL
    image = new_image(record)
    if image is None or not str(image.get(PK, "")).startswith(PK_PREFIX):
        return None  # not an outbox row (the outbox may share its table)
    if image.get("published") is True:
        return None
    seq = sequence_number(record)
    missing = [
        k for k in ("eventId", "detailType", "source", "detail", "createdAt") if k not in image
    ]
    if missing:
        raise ValueError(f"outbox row {image[PK]} lacks {', '.join(missing)}")
    entry: PutEventsRequestEntryTypeDef = {
        "Source": str(image["source"]),
        "DetailType": str(image["detailType"]),
        "Detail": str(image["detail"]),
        "Time": datetime.fromisoformat(str(image["createdAt"])),
    }
    return _Row(seq, str(image[PK]), str(image["eventId"]), entry)


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

    published_rows = rows
    try:
        publisher.put_entries([row.entry for row in rows])
    except PublishError as exc:
        reasons = {f.index: f"{f.error_code}: {f.error_message}" for f in exc.failed}
        published_rows = [row for row, sent in zip(rows, exc.event_ids, strict=True) if sent]
        result.failures.extend(
            RelayFailure(row.sequence_number, row.event_id, reasons.get(i, "not sent"))
            for i, row in enumerate(rows)
            if exc.event_ids[i] is None
        )

    ddb = client or clients.client("dynamodb")
    for row in published_rows:
        try:
            _mark_published(ddb, table_name, row.pk, now(), retention)
        except Exception as exc:  # the event is out: report the record, republish later
            result.failures.append(
                RelayFailure(row.sequence_number, row.event_id, f"mark failed: {exc}")
            )
        else:
            result.published.append(row.event_id)
    return result


def _mark_published(
    ddb: DynamoDBClient, table_name: str, pk: str, at: datetime, retention: timedelta
) -> None:
    # A failed condition: already marked by an earlier delivery of the same record.
    with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(
            TableName=table_name,
            Key={PK: {"S": pk}},
            UpdateExpression="SET published = :true, publishedAt = :at, #ttl = :ttl",
            ConditionExpression="attribute_exists(#pk) AND published = :false",
            ExpressionAttributeNames={"#pk": PK, "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":false": {"BOOL": False},
                ":at": {"S": at.isoformat()},
                ":ttl": {"N": str(int((at + retention).timestamp()))},
            },
        )
