"""Bulk import: an S3 file of orders -> each order placed through place_order, once.

Entry: `handler(event, context)`, an EventBridge rule target for S3 "Object Created"
events (source aws.s3) of the import bucket (IMPORT_BUCKET; the bucket sends its events
to EventBridge).

File format: JSON Lines, UTF-8: one order per line, a JSON object with the input fields
of the OrderPlaced contract, exactly as place_order takes them (minus clientRequestId):
    {"customerId": "customer-0001", "currency": "USD",
     "items": [{"sku": "sku-red-mug", "quantity": 2, "unitPriceCents": 1250}]}
- customerId (required), items (required: sku, quantity > 0, unitPriceCents >= 0, one
  line per sku), currency (optional, default the stack's DEFAULT_CURRENCY), totalCents
  (optional: if given, it must equal the sum of the lines);
- any other field is refused (a misspelt field must not place a different order);
- lines are numbered from 1 as they are in the file; blank lines are skipped.

Effect: each valid line is placed with `saga.placing.place_order` (orders table +
OrderPlaced in the outbox, one transaction), with the clientRequestId
"import-" + sha256("<bucket>/<key>/<etag>/<line number>"). place_order places one order
per (customer, clientRequestId): a redelivered event, a retried invocation, or the same
file uploaded again (same key and content, hence same ETag) places nothing twice.

Malformed lines (not JSON, not an object, not a valid order) are reported, one message
each, on REJECTED_LINES_QUEUE_URL, and the other lines go on. Each message's body is
{"bucket", "key", "etag", "line", "error", "text"} and its attributes ERROR_CODE /
ERROR_MESSAGE, so `dlq_processor` (DLQ_URL = this queue) summarises them by error; that
queue's alarm tells an operator. Transient failures (throttling, a transaction conflict)
on a line do not stop the others either; the invocation then fails (ImportIncompleteError)
so EventBridge retries it, and the lines already placed are no-ops on the retry.

The object is read with If-Match on the event's ETag: if the key was overwritten since,
this event is superseded (the newer upload has its own event) and nothing is placed.
A file is processed by one invocation: keep files within what the function's timeout
can place (about 50 orders a second), or split them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from contracts import S3ObjectCreated
from eventcraft import clients
from eventcraft.envelopes import from_eventbridge
from eventcraft.settings import ConfigurationError, env
from saga.placing import InvalidOrderError, RequestIdReusedError, parse_request, place_order

ACCESS: Final[dict[str, frozenset[str]]] = {
    # saga.placing's needs, as place_order's ACCESS (a test keeps them equal).
    "ORDERS_TABLE": frozenset({"dynamodb:PutItem", "dynamodb:GetItem"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:PutItem"}),
    "IMPORT_BUCKET": frozenset({"s3:GetObject"}),
    "REJECTED_LINES_QUEUE_URL": frozenset({"sqs:SendMessage"}),
}
IMPORT_BUCKET_ENV: Final = "IMPORT_BUCKET"
REJECTED_QUEUE_ENV: Final = "REJECTED_LINES_QUEUE_URL"
CLIENT_REQUEST_PREFIX: Final = "import-"
MAX_REPORTED_TEXT: Final = 1000

logger = logging.getLogger(__name__)

__all__ = [
    "ACCESS",
    "ConfigurationError",
    "ImportIncompleteError",
    "WrongBucketError",
    "client_request_id",
    "handler",
    "import_file",
    "parse_line",
]


class WrongBucketError(ValueError):
    """The event is about another bucket than IMPORT_BUCKET. Not retryable."""


class ImportIncompleteError(RuntimeError):
    """Some lines failed for a transient reason; the retry places them (and only them)."""

    def __init__(self, where: str, lines: list[int], first_error: str) -> None:
        self.lines = lines
        super().__init__(
            f"{where}: {len(lines)} line(s) could not be placed for now (lines "
            f"{', '.join(map(str, lines[:20]))}{'...' if len(lines) > 20 else ''}; first "
            f"error: {first_error}). The invocation fails so that EventBridge retries it; "
            "lines already placed are not placed again."
        )


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


def parse_line(raw: bytes, request_id: str) -> dict[str, Any]:
    """A line -> place_order's request payload; MalformedLineError if it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedLineError("NotUtf8", f"not UTF-8: {exc}") from exc
    try:
        payload = json.loads(text)
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


# --- adapters ------------------------------------------------------------------------------


@dataclass
class ImportResult:
    bucket: str
    key: str
    etag: str
    lines: int = 0
    placed: int = 0
    already_placed: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    superseded: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "lines": self.lines,
            "placed": self.placed,
            "alreadyPlaced": self.already_placed,
            "rejected": self.rejected,
            "superseded": self.superseded,
        }


def _report(
    result: ImportResult, line: int, *, request_id: str, code: str, message: str, text: str
) -> None:
    """Send a rejected line to the rejected-lines queue (raises if it cannot: the line
    must not be lost, so the invocation fails and is retried)."""
    rejection = {
        "bucket": result.bucket,
        "key": result.key,
        "etag": result.etag,
        "line": line,
        "error": message,
        "text": text[:MAX_REPORTED_TEXT],
    }
    queue_url = env(REJECTED_QUEUE_ENV)
    kwargs: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MessageBody": json.dumps(rejection),
        "MessageAttributes": {
            "ERROR_CODE": {"DataType": "String", "StringValue": code},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": message[:256]},
        },
    }
    if queue_url.endswith(".fifo"):
        # A retried import reports the same line again: FIFO deduplicates it (5 minutes).
        kwargs["MessageGroupId"] = "rejected-lines"
        kwargs["MessageDeduplicationId"] = request_id[len(CLIENT_REQUEST_PREFIX) :][:128]
    clients.client("sqs").send_message(**kwargs)
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


def import_file(bucket: str, key: str, etag: str | None) -> ImportResult:
    """Place every order of the file (see the module doc); returns what happened."""
    opened = _open(bucket, key, etag)
    if opened is None:
        logger.warning(
            "s3://%s/%s changed since this event (ETag %s): superseded", bucket, key, etag
        )
        return ImportResult(bucket, key, etag or "", superseded=True)
    body, actual_etag = opened
    result = ImportResult(bucket, key, etag or actual_etag)
    transient: list[int] = []
    first_error = ""
    for number, raw in enumerate(body, start=1):
        if not raw.strip():
            continue
        result.lines += 1
        request_id = client_request_id(bucket, key, result.etag, number)
        try:
            placed = place_order(parse_request(parse_line(raw, request_id)))
        except (MalformedLineError, InvalidOrderError, RequestIdReusedError) as exc:
            code = exc.code if isinstance(exc, MalformedLineError) else "InvalidOrderLine"
            text = raw.decode("utf-8", errors="replace")
            _report(result, number, request_id=request_id, code=code, message=str(exc), text=text)
        except ConfigurationError:
            raise
        except Exception as exc:  # transient: retried with the whole event
            logger.exception("line %d of s3://%s/%s: not placed for now", number, bucket, key)
            transient.append(number)
            first_error = first_error or f"{type(exc).__name__}: {exc}"
        else:
            if placed.created:
                result.placed += 1
            else:
                result.already_placed += 1
    if transient:
        raise ImportIncompleteError(f"s3://{bucket}/{key}", transient, first_error)
    return result


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    created = from_eventbridge(event, model=S3ObjectCreated)
    expected = env(IMPORT_BUCKET_ENV)
    if created.bucket.name != expected:
        raise WrongBucketError(
            f"event for bucket {created.bucket.name!r}, but this function imports from "
            f"{expected!r} (IMPORT_BUCKET): narrow the rule to the import bucket"
        )
    return import_file(created.bucket.name, created.object.key, created.object.etag).as_dict()
