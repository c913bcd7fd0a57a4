"""Bulk import: an S3 file of orders -> each order placed through place_order, once.

Entry: `handler(event, context)`, an EventBridge rule target for S3 "Object Created"
events (source aws.s3) of the import bucket (IMPORT_BUCKET; the bucket sends its events
to EventBridge).

File format: JSON Lines, UTF-8 (a byte-order mark before the first line is ignored): one
order per line, a JSON object with the fields place_order takes, minus clientRequestId:
    {"customerId": "customer-0001", "currency": "USD",
     "items": [{"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}]}
- customerId (required), items (required: sku, quantity 1..10000, unitPriceCents
  0..5000000000, JSON integers, one line per sku), currency (optional ISO 4217 code,
  default the stack's DEFAULT_CURRENCY), totalCents (optional: if given, it must equal
  the sum of the lines, at most 5000000000): `domain.orders.PlaceOrderRequest`;
- any other field, in the order or in its lines, is refused (a misspelt field must not
  place a different order);
- lines are numbered from 1 as they are in the file; blank lines are skipped;
- a line asking for the same order as an earlier line of the file (same customer, lines
  and currency) is refused as a duplicate: a file places each order once.

Effect: each valid line is placed with `saga.placing.place_order` (orders table +
OrderPlaced in the outbox, one transaction), with the clientRequestId
"import-" + sha256("<bucket>/<key>/<etag>/<line number>"). place_order places one order
per (customer, clientRequestId): a redelivered event, a retried invocation, or the same
file uploaded again (same key and content, hence same ETag) places nothing twice.

Refused lines (not UTF-8, not JSON, not an object, not a valid order, a duplicate) are
reported, one message each, on REJECTED_LINES_QUEUE_URL, and the other lines go on. Each
message's body is {"bucket", "key", "etag", "line", "error", "text"} and its attributes
ERROR_CODE / ERROR_MESSAGE (made acceptable to SQS: invisible characters escaped), so
`dlq_processor` (DLQ_URL = this queue) summarises them by error; that queue's alarm
tells an operator. A refused line is final: it is never retried.

Progress: a file may need more than one invocation. The import keeps a checkpoint in the
orders table, item `import#<sha256 of bucket/key/etag>` {bucket, key, etag, nextLine,
lines, placed, alreadyPlaced, rejected, done, version, updatedAt}, saved every
CHECKPOINT_EVERY lines, before each refused line is reported, when it stops and at the
end. An invocation stops:
- when its time runs out (less than STOP_MARGIN_MS left,
  `context.get_remaining_time_in_millis()`): it saves the checkpoint, invokes this same
  function asynchronously with the same event (lambda:InvokeFunction, InvocationType
  Event, on `context.invoked_function_arn`) and returns (`continued`: true). The new
  invocation resumes at the checkpoint, and so on until the file is done: a long file
  completes on its own, and no error is counted. The chain cannot spin: an invocation
  that imported no line (it reached its first line with less than STOP_MARGIN_MS left:
  the function's timeout is too short, or re-reading the lines before the checkpoint
  took its time) fails with ImportStalledError instead of continuing. The function
  allows recursive invocations (Lambda's loop detection would end the chain after 16):
  the system sets that for a function whose ACCESS may invoke itself;
- at the first line that fails for a transient reason (throttling, a transaction
  conflict, the rejected-lines queue or Lambda unavailable): it saves the checkpoint and
  fails with ImportIncompleteError: Lambda retries the event (twice, a minute or two
  apart, with backoff; then it is in the function's on-failure queue, and redriving it
  there continues the same way), and the retry resumes at the checkpoint.
Lines before the checkpoint are neither placed nor reported again, but each invocation
re-reads them to know their orders (duplicates): about 160 bytes of memory and 26 us of
CPU a line (measured on the development machine), which bounds a file to some 2 million
lines at the function's 512 MB.

Each save is conditional on the checkpoint's `version` being the one this invocation
last read or wrote: a second invocation of the same event (a continuation or an S3
event delivered twice, Lambda's retry of an invocation that had continued) that finds
the checkpoint saved by the other since stops there and leaves the file to it
(`overtaken`: true); as it saves before reporting a refused line, it stops before
reporting one the other reports. So each order is placed once (place_order) and each
refused line reported once; a crash, or a duplicate starting just after a report, may
repeat that one report. The event of a finished file does nothing.

The object is read with If-Match on the event's ETag: if the key was overwritten since,
this event is superseded (the newer upload has its own event) and nothing is placed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from contracts import S3ObjectCreated, utc_now
from domain.orders import fingerprint
from eventcraft import clients, dynamodb
from eventcraft.envelopes import from_eventbridge
from eventcraft.settings import ConfigurationError, env
from eventcraft.text import sqs_text, truncate
from saga.placing import InvalidOrderError, RequestIdReusedError, parse_request, place_order

ACCESS: Final[dict[str, frozenset[str]]] = {
    # saga.placing's needs, as place_order's ACCESS (a test keeps them equal); the same
    # GetItem / PutItem read and write the import's checkpoint.
    "ORDERS_TABLE": frozenset({"dynamodb:PutItem", "dynamodb:GetItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    "IMPORT_BUCKET": frozenset({"s3:GetObject"}),
    "REJECTED_LINES_QUEUE_URL": frozenset({"sqs:SendMessage"}),
    # This function itself (the Lambda runtime sets the variable to its name): a file
    # too long for one invocation continues in a new one (see Progress).
    "AWS_LAMBDA_FUNCTION_NAME": frozenset({"lambda:InvokeFunction"}),
}
IMPORT_BUCKET_ENV: Final = "IMPORT_BUCKET"
ORDERS_TABLE_ENV: Final = "ORDERS_TABLE"
REJECTED_QUEUE_ENV: Final = "REJECTED_LINES_QUEUE_URL"
CLIENT_REQUEST_PREFIX: Final = "import-"
PROGRESS_KEY_PREFIX: Final = "import#"
MAX_REPORTED_TEXT: Final = 1000  # of a refused line, in its report's body
MAX_REPORTED_ERROR: Final = 4000  # of its error, in the body
MAX_ERROR_ATTRIBUTE: Final = 256  # of its error, in the ERROR_MESSAGE attribute
MAX_RESULT_REJECTIONS: Final = 100  # refused lines listed in the invocation's result
CHECKPOINT_EVERY: Final = 100  # lines
# Time kept in reserve when the import stops: one line (place_order and its retries),
# the checkpoint's write and the continuation's Invoke.
STOP_MARGIN_MS: Final = 20_000
# Lines re-read before the checkpoint (for duplicates) between two looks at the time.
SKIP_TIME_CHECK_EVERY: Final = 1000
UTF8_BOM: Final = b"\xef\xbb\xbf"

logger = logging.getLogger(__name__)

__all__ = [
    "ACCESS",
    "ConfigurationError",
    "ImportIncompleteError",
    "ImportStalledError",
    "WrongBucketError",
    "client_request_id",
    "handler",
    "import_file",
    "parse_line",
    "progress_key",
]


class WrongBucketError(ValueError):
    """The event is about another bucket than IMPORT_BUCKET. Not retryable."""


class ImportIncompleteError(RuntimeError):
    """The import stopped at `next_line` for a transient reason; its checkpoint is saved,
    and the retry of the event continues from there."""

    def __init__(self, where: str, next_line: int, why: str) -> None:
        self.next_line = next_line
        super().__init__(self.explain(where, next_line, why))

    @staticmethod
    def explain(where: str, next_line: int, why: str) -> str:
        return (
            f"{where}: stopped at line {next_line} ({why}). The lines before it are placed "
            "or reported; the invocation fails so that Lambda retries the event, and the "
            f"retry continues from line {next_line} (redrive the event from the function's "
            "on-failure queue once its retries are spent)."
        )


class ImportStalledError(ImportIncompleteError):
    """An invocation imported no line before its time ran out: continuing would start
    an invocation that stops at the same line, so it fails instead."""

    @staticmethod
    def explain(where: str, next_line: int, why: str) -> str:
        return (
            f"{where}: no line imported in this invocation, stopped at line {next_line} "
            f"({why}). Not continued in a new invocation, which would stop there again; "
            "the file resumes at that line when the event is retried or redriven from the "
            "function's on-failure queue."
        )


class CheckpointMovedError(Exception):
    """Another invocation of the same event saved the file's checkpoint since this one
    read it: this one stops and leaves the file to the other."""


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class InvocationContext(RemainingTime, Protocol):
    """What the import reads of the Lambda context."""

    @property
    def invoked_function_arn(self) -> str: ...


# --- the file format (pure) --------------------------------------------------------------


class MalformedLineError(ValueError):
    """A line that is not an order; `code` is its ERROR_CODE in the report."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def client_request_id(bucket: str, key: str, etag: str, line: int) -> str:
    """The idempotency key of a file line (within place_order's limit of 512 chars)."""
    material = f"{bucket}/{key}/{etag}/{line}".encode()
    return CLIENT_REQUEST_PREFIX + hashlib.sha256(material).hexdigest()


def progress_key(bucket: str, key: str, etag: str) -> str:
    """The orders table key (`pk`) of a file's checkpoint."""
    return PROGRESS_KEY_PREFIX + hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()


def parse_line(raw: bytes, request_id: str) -> dict[str, Any]:
    """A line -> place_order's request payload; MalformedLineError if it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedLineError("NotUtf8", f"not UTF-8: {exc}") from exc
    try:
        payload = json.loads(text)
    except RecursionError as exc:
        raise MalformedLineError("NotJson", "not JSON: nested too deeply") from exc
    except ValueError as exc:
        raise MalformedLineError("NotJson", f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedLineError("NotAnObject", f"a JSON {type(payload).__name__}, not an object")
    if "clientRequestId" in payload:
        raise MalformedLineError(
            "InvalidOrderLine",
            "clientRequestId is set by the import (bucket/key/etag/line): remove it",
        )
    return {**payload, "clientRequestId": request_id}


def numbered_lines(body: Iterable[bytes]) -> Iterable[tuple[int, bytes]]:
    """(line number from 1, line) of the non-blank lines, without a leading UTF-8 BOM."""
    for number, raw in enumerate(body, start=1):
        line = raw[len(UTF8_BOM) :] if number == 1 and raw.startswith(UTF8_BOM) else raw
        if line.strip():
            yield number, line


# --- adapters ------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What the import of a file did, over all its invocations so far (`rejected`: the
    refusals of this invocation, at most MAX_RESULT_REJECTIONS). When it is not done:
    `out_of_time` (this invocation stopped at `next_line`, checkpoint saved: to be
    continued), `continued` (a new invocation was asked to), `overtaken` (another
    invocation of the same event went further: the file is left to it)."""

    bucket: str
    key: str
    etag: str
    lines: int = 0
    placed: int = 0
    already_placed: int = 0
    rejected_count: int = 0
    next_line: int = 1
    done: bool = False
    rejected: list[dict[str, Any]] = field(default_factory=list)
    superseded: bool = False
    out_of_time: bool = False
    continued: bool = False
    overtaken: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "lines": self.lines,
            "placed": self.placed,
            "alreadyPlaced": self.already_placed,
            "rejectedCount": self.rejected_count,
            "rejected": self.rejected,
            "done": self.done,
            "nextLine": self.next_line,
            "continued": self.continued,
            "overtaken": self.overtaken,
            "superseded": self.superseded,
        }

    def record(self) -> dict[str, Any]:
        """The checkpoint item's attributes (without its key)."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "nextLine": self.next_line,
            "lines": self.lines,
            "placed": self.placed,
            "alreadyPlaced": self.already_placed,
            "rejected": self.rejected_count,
            "done": self.done,
            "updatedAt": utc_now().isoformat(),
        }

    def resume(self, record: Mapping[str, Any]) -> None:
        self.next_line = int(record.get("nextLine", 1))
        self.lines = int(record.get("lines", 0))
        self.placed = int(record.get("placed", 0))
        self.already_placed = int(record.get("alreadyPlaced", 0))
        self.rejected_count = int(record.get("rejected", 0))
        self.done = bool(record.get("done", False))


class Checkpoint:
    """A file's progress item in the orders table (see the module doc)."""

    def __init__(self, result: ImportResult) -> None:
        self.table = env(ORDERS_TABLE_ENV)
        self.pk = progress_key(result.bucket, result.key, result.etag)
        self.result = result
        self.saved_line = 1
        self.version = 0  # of the item as this invocation last read or wrote it (0: none)

    def load(self) -> None:
        record = dynamodb.get(self.table, {"pk": self.pk})
        if record is not None:
            self.result.resume(record)
            self.saved_line = self.result.next_line
            self.version = int(record.get("version", 0))

    def save(self) -> None:
        """Write the progress if the item is still the version this invocation last read
        or wrote; CheckpointMovedError if another invocation of the event saved it since."""
        ddb = clients.client("dynamodb")
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(version)"}
        if self.version:
            condition = {
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": {"N": str(self.version)}},
            }
        item = {"pk": self.pk, **self.result.record(), "version": self.version + 1}
        try:
            ddb.put_item(TableName=self.table, Item=dynamodb.serialize(item), **condition)
        except ddb.exceptions.ConditionalCheckFailedException as exc:
            raise CheckpointMovedError(self.pk) from exc
        self.version += 1
        self.saved_line = self.result.next_line

    def save_if_due(self) -> None:
        if self.result.next_line - self.saved_line >= CHECKPOINT_EVERY:
            self.save()


@dataclass(frozen=True)
class Refusal:
    """Why a line is refused: its ERROR_CODE and message."""

    code: str
    message: str


def _report(result: ImportResult, line: int, raw: bytes, refusal: Refusal) -> None:
    """Send a refused line to the rejected-lines queue (raises if it cannot: the line
    must not be lost, so the import stops there and the retry reports it)."""
    code, message = refusal.code, refusal.message
    text = raw.decode("utf-8", errors="replace")
    request_id = client_request_id(result.bucket, result.key, result.etag, line)
    rejection = {
        "bucket": result.bucket,
        "key": result.key,
        "etag": result.etag,
        "line": line,
        "error": truncate(message, MAX_REPORTED_ERROR),
        "text": truncate(text, MAX_REPORTED_TEXT),
    }
    queue_url = env(REJECTED_QUEUE_ENV)
    kwargs: dict[str, Any] = {
        "QueueUrl": queue_url,
        # ASCII JSON: every character SQS refuses in a body is escaped.
        "MessageBody": json.dumps(rejection, ensure_ascii=True),
        "MessageAttributes": {
            "ERROR_CODE": {"DataType": "String", "StringValue": code},
            "ERROR_MESSAGE": {
                "DataType": "String",
                "StringValue": sqs_text(message, MAX_ERROR_ATTRIBUTE),
            },
        },
    }
    if queue_url.endswith(".fifo"):
        # A repeated report of the same line: FIFO deduplicates it (5 minutes).
        kwargs["MessageGroupId"] = "rejected-lines"
        kwargs["MessageDeduplicationId"] = request_id[len(CLIENT_REQUEST_PREFIX) :][:128]
    clients.client("sqs").send_message(**kwargs)
    result.rejected_count += 1
    if len(result.rejected) < MAX_RESULT_REJECTIONS:
        result.rejected.append({"line": line, "code": code, "error": message})


def _open(bucket: str, key: str, etag: str | None) -> tuple[Iterable[bytes], str] | None:
    """The object's lines and ETag (unquoted); None if it changed since the event."""
    s3 = clients.client("s3")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if etag:
        kwargs["IfMatch"] = f'"{etag}"'
    try:
        response = s3.get_object(**kwargs)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return None
        raise
    lines: Iterable[bytes] = response["Body"].iter_lines(keepends=False)
    return lines, str(response.get("ETag", etag or "")).strip('"')


def _order_fingerprint(raw: bytes) -> str | None:
    """The fingerprint of the order a line asks for, or None if it is not a valid one."""
    try:
        return fingerprint(parse_request(parse_line(raw, CLIENT_REQUEST_PREFIX + "scan")))
    except (MalformedLineError, InvalidOrderError):
        return None


def _out_of_time(context: RemainingTime | None) -> bool:
    return context is not None and context.get_remaining_time_in_millis() < STOP_MARGIN_MS


def import_file(
    bucket: str, key: str, etag: str | None, *, context: RemainingTime | None = None
) -> ImportResult:
    """Place every order of the file from its checkpoint on (see the module doc);
    returns what happened. `context`: the Lambda context, to stop in time (None: no
    limit); a result that stopped for time is `out_of_time`, to be continued. Raises
    ImportIncompleteError when it stopped at a transient failure, ImportStalledError
    when it ran out of time without importing a line."""
    opened = _open(bucket, key, etag)
    if opened is None:
        logger.warning(
            "s3://%s/%s changed since this event (ETag %s): superseded", bucket, key, etag
        )
        return ImportResult(bucket, key, etag or "", superseded=True, done=True)
    body, actual_etag = opened
    result = ImportResult(bucket, key, etag or actual_etag)
    checkpoint = Checkpoint(result)
    checkpoint.load()
    if result.done:
        logger.info("s3://%s/%s (ETag %s) was imported already", bucket, key, result.etag)
        return result
    try:
        _import_from_checkpoint(result, checkpoint, body, context)
    except CheckpointMovedError:
        logger.warning(
            "s3://%s/%s: another invocation of this event saved its checkpoint since this "
            "one read it; this one stops at line %d and leaves the file to it",
            bucket,
            key,
            result.next_line,
        )
        result.overtaken = True
    return result


def _import_from_checkpoint(
    result: ImportResult,
    checkpoint: Checkpoint,
    body: Iterable[bytes],
    context: RemainingTime | None,
) -> None:
    where = f"s3://{result.bucket}/{result.key}"
    first_of: dict[str, int] = {}  # the order a valid line asks for -> its first line
    handled = skipped = 0  # lines of this invocation, lines before the checkpoint
    for number, raw in numbered_lines(body):
        if number < result.next_line:
            # Done by an earlier invocation: only remember its order, for duplicates.
            seen = _order_fingerprint(raw)
            if seen is not None:
                first_of.setdefault(seen, number)
            skipped += 1
            if skipped % SKIP_TIME_CHECK_EVERY == 0 and _out_of_time(context):
                why = "re-reading the lines before the checkpoint took the invocation's time"
                raise ImportStalledError(where, result.next_line, why)
            continue
        if _out_of_time(context):
            if not handled:
                raise ImportStalledError(
                    where,
                    number,
                    f"less than {STOP_MARGIN_MS} ms of the invocation were left at its first "
                    "line: the function's timeout must be longer",
                )
            result.next_line = number
            checkpoint.save()
            result.out_of_time = True
            return
        try:
            refusal = _place_line(result, number, raw, first_of)
            if refusal is not None:
                # Saved first: a duplicate invocation that has not reported the line
                # stops at its next save instead of reporting it too.
                checkpoint.save()
                _report(result, number, raw, refusal)
        except (ConfigurationError, CheckpointMovedError):
            raise
        except Exception as exc:  # transient: the retry resumes at this line
            logger.exception("line %d of %s: not placed for now", number, where)
            _save_after_failure(checkpoint)
            raise ImportIncompleteError(where, number, f"{type(exc).__name__}: {exc}") from exc
        result.lines += 1
        handled += 1
        result.next_line = number + 1
        checkpoint.save_if_due()
    result.done = True
    checkpoint.save()


def _place_line(
    result: ImportResult, number: int, raw: bytes, first_of: dict[str, int]
) -> Refusal | None:
    """Place one line, or say why it is refused (refusals are final). Raises on a
    transient failure, having counted nothing."""
    request_id = client_request_id(result.bucket, result.key, result.etag, number)
    try:
        request = parse_request(parse_line(raw, request_id))
        order = fingerprint(request)
        first = first_of.setdefault(order, number)
        if first != number:
            raise MalformedLineError(
                "DuplicateLine",
                f"the same order as line {first} (customer, lines and currency): a file "
                "places each order once",
            )
        placed = place_order(request)
    except (MalformedLineError, InvalidOrderError, RequestIdReusedError) as exc:
        code = exc.code if isinstance(exc, MalformedLineError) else "InvalidOrderLine"
        return Refusal(code, str(exc))
    if placed.created:
        result.placed += 1
    else:
        result.already_placed += 1
    return None


def _save_after_failure(checkpoint: Checkpoint) -> None:
    try:
        checkpoint.save()
    except CheckpointMovedError:
        raise
    except Exception:  # the same outage: the retry resumes at the last saved checkpoint
        logger.exception("checkpoint %s not saved", checkpoint.pk)


def _continue(event: Mapping[str, Any], context: InvocationContext, result: ImportResult) -> None:
    """Hand the rest of the file to a new invocation of this function: the same event,
    asynchronously; it resumes at the checkpoint just saved. ImportIncompleteError if
    Lambda does not take it (the retry of this event resumes there instead)."""
    try:
        clients.client("lambda").invoke(
            FunctionName=context.invoked_function_arn,
            InvocationType="Event",
            Payload=json.dumps(event).encode(),
        )
    except Exception as exc:
        where = f"s3://{result.bucket}/{result.key}"
        why = f"out of time, and the rest was not handed over: {type(exc).__name__}: {exc}"
        raise ImportIncompleteError(where, result.next_line, why) from exc
    result.continued = True
    logger.info(
        "s3://%s/%s: continued from line %d in a new invocation",
        result.bucket,
        result.key,
        result.next_line,
    )


def handler(event: Mapping[str, Any], context: InvocationContext | None) -> dict[str, Any]:
    created = from_eventbridge(event, model=S3ObjectCreated)
    expected = env(IMPORT_BUCKET_ENV)
    if created.bucket.name != expected:
        raise WrongBucketError(
            f"event for bucket {created.bucket.name!r}, but this function imports from "
            f"{expected!r} (IMPORT_BUCKET): narrow the rule to the import bucket"
        )
    bucket, obj = created.bucket.name, created.object
    result = import_file(bucket, obj.key, obj.etag, context=context)
    if result.out_of_time and context is not None:
        _continue(event, context, result)
    return result.as_dict()
