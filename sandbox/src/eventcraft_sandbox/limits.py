"""AWS's payload and item limits, enforced on every request the sandbox's moto serves.

moto accepts what AWS refuses: a 5 MB EventBridge event, an SQS message with a NUL
character or an eleventh attribute, a 10 MB Lambda payload, a DynamoDB item just over
400 KB (its own check stops at 405,000 bytes counted its own way, and misses nested
updates). `AwsLimitsPatch`, installed by `Sandbox` for its lifetime, refuses them with
the error AWS returns, for every client alike: handlers, the administrator, the
sandbox's delivery.

Where each check sits:
- Requests are checked before moto sees them, in a wrapper of
  `BotocoreStubber.process_request` (the one entry of every in-process request, where
  the runtime's `MOTO_LOCK` also sits): PutEvents, SendMessage, SendMessageBatch,
  Invoke / InvokeAsync and BatchWriteItem. The raw request is what AWS measures, and an
  error answered there leaves moto's state untouched. The error responses are built
  for the JSON protocols these services use with the pinned botocore (SQS speaks JSON
  with `x-amzn-query-error`, which gives botocore the query-era error code). PutRule's
  event pattern is checked there too, with the pattern validator of
  `pulumi_eventcraft.event_pattern` (EventBridge's numeric range, operators, size).
- DynamoDB item sizes are checked inside moto's backend, where the item a write
  produces exists: `put_item` (PutItem, TransactWriteItems Put, BatchWriteItem,
  PartiQL) before it stores anything, and `UpdateExpressionExecutor.execute`
  (UpdateItem, TransactWriteItems Update) after it applied the update and before the
  update is recorded (stream record, return values): an oversized result is undone.
  moto's own approximate check (`LimitedSizeDict`, 405,000 bytes) is replaced.
- A Lambda response over 6 MB is a function error reported by the runtime
  (`lambda_runtime.runtime.MAX_RESPONSE_BYTES`), whoever invoked the function.

The numbers are those AWS documents in the pinned botocore's service models (and the
AWS pages quoted at each check); `AwsLimits` holds them, so a region that still has
the 256 KB payloads of before can be modelled: `AwsLimits.with_256kb_payloads()`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "AwsLimits",
    "AwsLimitsPatch",
    "dynamodb_item_size",
    "put_events_entry_size",
    "sqs_message_size",
]

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, kw_only=True)
class AwsLimits:
    """The limits the sandbox enforces, in bytes (defaults: AWS's own).

    - `put_events_request`: 1 MiB, the sum of a PutEvents request's entry sizes.
      botocore's events model, PutEvents: "the total entry size must be less than
      1MB"; measured on AWS, an entry of exactly 1,048,576 bytes is accepted and one
      byte more is refused with ValidationException "Total size of the entries in the
      request is over the limit." (the limit is per request: every entry counts).
    - `sqs_batch`: 1 MiB, the sum of a SendMessageBatch's messages. botocore's sqs
      model, SendMessageBatch: "The maximum allowed individual message size and the
      maximum total payload size (the sum of the individual lengths of all of the
      batched messages) are both 1 MiB 1,048,576 bytes." Each message is also held
      to its queue's MaximumMessageSize (1,024 to 1,048,576; default 1 MiB).
    - `lambda_sync_request`: 6 MB (6,291,456 bytes), an Invoke (RequestResponse)
      payload: RequestEntityTooLargeException "Request must be smaller than 6291456
      bytes for the InvokeFunction operation" (HTTP 413).
    - `lambda_async_request`: 1 MiB, an Invoke (Event) payload: botocore's lambda
      model, Invoke: "For asynchronous invocations, the maximum payload size is 1 MB";
      RequestEntityTooLargeException "N byte payload is too large for the Event
      invocation type (limit L bytes)".
    - `dynamodb_item`: 400 KB (409,600 bytes), an item as DynamoDB sizes it
      (`dynamodb_item_size`).
    """

    put_events_request: int = MIB
    sqs_batch: int = MIB
    lambda_sync_request: int = 6 * MIB
    lambda_async_request: int = MIB
    dynamodb_item: int = 400 * KIB

    @classmethod
    def with_256kb_payloads(cls) -> AwsLimits:
        """EventBridge events, SQS batches and async invocations capped at 256 KiB, as
        in regions without the 1 MB payloads (give queues MaximumMessageSize=262144)."""
        return cls(
            put_events_request=256 * KIB, sqs_batch=256 * KIB, lambda_async_request=256 * KIB
        )


# ------------------------------------------------------------------ sizes


def _utf8(text: Any) -> int:
    return len(str(text).encode("utf-8", "surrogatepass"))


def put_events_entry_size(entry: Mapping[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge counts it.

    "Calculating Amazon EventBridge PutEvents event entry size" (EventBridge User
    Guide): the Time parameter, if specified, is 14 bytes; Source and DetailType are
    the number of bytes of their UTF-8 encoded forms; Detail, if specified, likewise;
    each entry of Resources, if specified, likewise. EventBusName does not count.
    """
    size = 14 if entry.get("Time") is not None else 0
    size += _utf8(entry.get("Source") or "") + _utf8(entry.get("DetailType") or "")
    if entry.get("Detail") is not None:
        size += _utf8(entry["Detail"])
    size += sum(_utf8(r) for r in entry.get("Resources") or () if r is not None)
    return size


def _binary_length(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    try:  # the JSON protocols carry binary as base64
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return _utf8(value)


def sqs_message_size(body: str, attributes: Mapping[str, Mapping[str, Any]] | None) -> int:
    """A message's size as SQS counts it against MaximumMessageSize: the body's UTF-8
    bytes plus, for every message attribute, its name, its DataType and its value.

    botocore's sqs model, MessageAttributeValue: "All parts of the message attribute,
    including Name, Type, and Value, are part of the message size restriction (1 MiB
    or 1,048,576 bytes)." Message system attributes (AWSTraceHeader) do not count.
    """
    size = _utf8(body)
    for name, value in (attributes or {}).items():
        size += _utf8(name) + _utf8(value.get("DataType") or "")
        if value.get("StringValue") is not None:
            size += _utf8(value["StringValue"])
        if value.get("BinaryValue") is not None:
            size += _binary_length(value["BinaryValue"])
    return size


def _number_size(text: str) -> int:
    # "Numbers are variable length, with up to 38 significant digits. Leading and
    # trailing zeroes are trimmed. The size of a number is approximately (1 byte per
    # two significant digits) + (1 byte)."
    try:
        digits = len(Decimal(text).normalize().as_tuple().digits)
    except InvalidOperation:
        digits = len(re.sub(r"\D", "", text).strip("0")) or 1
    return (digits + 1) // 2 + 1


_SCALAR_SIZES: dict[str, Any] = {
    "S": _utf8,
    "N": lambda n: _number_size(str(n)),
    "B": _binary_length,  # "the value's raw byte length is used"
    "BOOL": lambda _: 1,
    "NULL": lambda _: 1,
}


def _value_size(value: Mapping[str, Any]) -> int:
    """An attribute value's size (without its name), DynamoDB's way ("DynamoDB item
    sizes and formats", Amazon DynamoDB Developer Guide)."""
    kind, data = next(iter(value.items()))
    if kind in _SCALAR_SIZES:
        return int(_SCALAR_SIZES[kind](data))
    if kind in ("SS", "NS", "BS"):  # a set: its elements' sizes
        return sum(_SCALAR_SIZES[kind[0]](v) for v in data)
    # "An attribute of type List or Map requires 3 bytes of overhead, regardless of its
    # contents ... Each List or Map element also requires 1 byte of overhead."
    if kind == "L":
        return 3 + sum(1 + _value_size(_plain(v)) for v in data)
    if kind == "M":
        return 3 + sum(1 + _utf8(k) + _value_size(_plain(v)) for k, v in data.items())
    return _utf8(json.dumps(data, default=str))


def _plain(value: Any) -> Mapping[str, Any]:
    to_json = getattr(value, "to_json", None)  # moto's DynamoType inside lists
    return to_json() if callable(to_json) else value


def dynamodb_item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it against the 400 KB limit: the sum, over its
    attributes, of the name's UTF-8 bytes and the value's size (see `_value_size`)."""
    return sum(_utf8(name) + _value_size(_plain(value)) for name, value in item.items())


# --------------------------------------------------------------- SQS contents

# SendMessage (botocore's sqs model): "The following Unicode characters are allowed
# ... #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF. If a
# message contains characters outside the allowed set, Amazon SQS rejects the message
# and returns an InvalidMessageContents error."
_NOT_ALLOWED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ALLOWED_SET = "#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]"
# Message attribute names (SQS Developer Guide, "Message attribute components"): A-Z,
# a-z, 0-9, underscore, hyphen and period; no AWS-reserved prefix "AWS." or "Amazon."
# (any casing); no period first, last or twice in a row; up to 256 characters.
_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_.\-]+")
_MAX_ATTRIBUTES = 10
_MAX_NAME_OR_TYPE = 256


def _invalid_character(text: str, where: str) -> str | None:
    found = _NOT_ALLOWED.search(text)
    if found is None:
        return None
    # The wording SQS answers with (quoted by its users from production errors).
    return (
        f"Invalid binary character '#x{ord(found.group()):X}' was found in {where}, the set "
        f"of allowed characters is {_ALLOWED_SET}."
    )


def _attribute_problem(attributes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What is wrong with a message's attributes (InvalidParameterValue), if anything."""
    if len(attributes) > _MAX_ATTRIBUTES:
        return (
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
            f"[{_MAX_ATTRIBUTES}]."
        )
    return next(filter(None, map(_name_problem, attributes)), None)


def _name_problem(name: str) -> str | None:
    # The first wording is SQS's verbatim (its odd "lower score" included); the others
    # say the documented rule in the same voice.
    problem = None
    if not _NAME_CHARACTERS.fullmatch(name):
        return (
            "Message (user) attributes name can only contain upper and lower score "
            "characters, digits, periods, hyphens and underscores. "
        )
    if name.lower().startswith(("aws.", "amazon.")):
        problem = "is reserved for internal use (no 'AWS.' or 'Amazon.' prefix, in any casing)"
    elif name.startswith(".") or name.endswith("."):
        problem = "cannot start or end with '.'"
    elif ".." in name:
        problem = "cannot have successive '.' characters"
    elif _utf8(name) >= _MAX_NAME_OR_TYPE:
        problem = f"must be shorter than {_MAX_NAME_OR_TYPE} Bytes"
    return None if problem is None else f"Message (user) attribute name '{name}' {problem}."


# ------------------------------------------------------------------ the patch


@dataclass(frozen=True)
class _Refusal:
    """An error response, as the service's protocol spells it."""

    status: int
    code: str
    message: str
    protocol: str  # "json" | "sqs" | "rest-json"

    def response(self) -> tuple[int, dict[str, str], str]:
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        if self.protocol == "rest-json":
            headers |= {"x-amzn-ErrorType": self.code, "Content-Type": "application/json"}
            return self.status, headers, json.dumps({"Type": "User", "message": self.message})
        headers["Content-Type"] = "application/x-amz-json-1.0"
        code = self.code
        if self.protocol == "sqs":
            # SQS's JSON protocol keeps the query-era codes in this header, which
            # botocore reports as the error code.
            headers["x-amzn-query-error"] = f"{code};Sender"
            code = f"com.amazonaws.sqs#{code}"
        return self.status, headers, json.dumps({"__type": code, "message": self.message})


class ItemSizeInTransaction(Exception):
    """Raised inside moto's TransactWriteItems: moto lists an exception that is not a
    validation error as a cancellation reason named after its class, so this one
    appears as AWS's reason "ValidationError"."""


ItemSizeInTransaction.__name__ = "ValidationError"


class AwsLimitsPatch:
    """Enforces `limits` on the process's moto (see the module docstring).

    `install()` / `uninstall()` (or `with`); undone exactly when uninstalled in the
    reverse order of the patches installed after it (a `Sandbox` installs it first).
    """

    def __init__(self, limits: AwsLimits | None = None) -> None:
        self.limits = limits or AwsLimits()
        self._undo: list[tuple[Any, str, Any, Any]] = []
        self._local = threading.local()
        self.active = False

    # -- install ------------------------------------------------------------------------

    def install(self) -> AwsLimitsPatch:
        if self._undo:
            return self
        from moto.core.botocore_stubber import BotocoreStubber

        from eventcraft_sandbox.lambda_runtime.moto_hooks import (
            LIMITS_HOOKS,
            require_moto_hooks,
        )

        require_moto_hooks(LIMITS_HOOKS)
        owner = self
        original_request = BotocoreStubber.process_request

        def process_request(stub: Any, request: Any) -> Any:
            refusal = owner.check_request(request) if owner.active else None
            if refusal is not None:
                return refusal.response()
            return original_request(stub, request)

        self._set(BotocoreStubber, "process_request", process_request, original_request)
        self._patch_dynamodb()
        self.active = True
        return self

    def _patch_dynamodb(self) -> None:
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.dynamo_type import LimitedSizeDict
        from moto.dynamodb.parsing.executors import UpdateExpressionExecutor

        owner = self
        original_put = DynamoDBBackend.put_item
        original_update = DynamoDBBackend.update_item
        original_transact = DynamoDBBackend.transact_write_items
        original_execute = UpdateExpressionExecutor.execute

        def put_item(backend: Any, *args: Any, **kwargs: Any) -> Any:
            item = kwargs.get("item_attrs", args[1] if len(args) > 1 else None)
            if owner.active and isinstance(item, Mapping):
                owner._check_item(item, update=False)
            return original_put(backend, *args, **kwargs)

        def update_item(backend: Any, *args: Any, **kwargs: Any) -> Any:
            table_name = kwargs.get("table_name", args[0] if args else None)
            key = kwargs.get("key", args[1] if len(args) > 1 else None)
            existed = owner.active and _stored_item(backend, table_name, key) is not None
            try:
                return original_update(backend, *args, **kwargs)
            except Exception as exc:
                if owner.active and not existed and _is_item_size_error(exc):
                    _forget_item(backend, table_name, key)  # moto created it to update it
                raise

        def transact_write_items(backend: Any, *args: Any, **kwargs: Any) -> Any:
            owner._local.in_transaction = True
            try:
                return original_transact(backend, *args, **kwargs)
            finally:
                owner._local.in_transaction = False

        def execute(executor: Any, node: Any = None) -> Any:
            if node is not None or not owner.active:  # a nested node of the same update
                return original_execute(executor, node)
            before = copy.deepcopy(dict(executor.item.attrs))
            result = original_execute(executor, node)
            attributes = executor.item.to_json()["Attributes"]
            if dynamodb_item_size(attributes) > owner.limits.dynamodb_item:
                dict.clear(executor.item.attrs)
                dict.update(executor.item.attrs, before)
                owner._item_too_large(update=True)
            return result

        def limited_setitem(mapping: dict[str, Any], key: str, value: Any) -> None:
            dict.__setitem__(mapping, key, value)  # sizes are checked above, AWS's way

        self._set(DynamoDBBackend, "put_item", put_item, original_put)
        self._set(DynamoDBBackend, "update_item", update_item, original_update)
        self._set(DynamoDBBackend, "transact_write_items", transact_write_items, original_transact)
        self._set(UpdateExpressionExecutor, "execute", execute, original_execute)
        self._set(LimitedSizeDict, "__setitem__", limited_setitem, LimitedSizeDict.__setitem__)

    def _set(self, owner: Any, name: str, wrapper: Any, original: Any) -> None:
        functools.update_wrapper(wrapper, original)
        self._undo.append((owner, name, owner.__dict__[name], wrapper))
        setattr(owner, name, wrapper)

    def uninstall(self) -> None:
        """Undo `install()`. Where someone patched over one of these wrappers since (and
        has not undone it), that wrapper stays in their chain, only no longer checking."""
        self.active = False
        while self._undo:
            owner, name, original, wrapper = self._undo.pop()
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)

    def __enter__(self) -> AwsLimitsPatch:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- DynamoDB items -------------------------------------------------------------------

    def _check_item(self, item: Mapping[str, Any], *, update: bool) -> None:
        if dynamodb_item_size(item) > self.limits.dynamodb_item:
            self._item_too_large(update=update)

    def _item_too_large(self, *, update: bool) -> None:
        from moto.dynamodb.exceptions import ItemSizeTooLarge

        # PutItem / BatchWriteItem: ValidationException "Item size has exceeded the
        # maximum allowed size". UpdateItem: "Item size to update has exceeded the maximum
        # allowed size" (moto turns ItemSizeTooLarge into that). TransactWriteItems
        # (botocore's dynamodb model, TransactionCanceledException): cancelled with the
        # reason Code "ValidationError", Message "Item size to update has exceeded the
        # maximum allowed size." when "an item size becomes too large (larger than 400
        # KB) ... because of changes made by the transaction".
        if update and getattr(self._local, "in_transaction", False):
            raise ItemSizeInTransaction("Item size to update has exceeded the maximum allowed size")
        raise ItemSizeTooLarge

    # -- requests -------------------------------------------------------------------------

    def check_request(self, request: Any) -> _Refusal | None:
        """The refusal AWS would answer `request` (a botocore prepared request) with."""
        url = urlsplit(str(getattr(request, "url", "")))
        service = (url.hostname or "").split(".", 1)[0]
        target = _header(request, "X-Amz-Target") or ""
        operation = target.rsplit(".", 1)[-1]
        if service == "events" and operation == "PutEvents":
            return self._put_events(_json_body(request))
        if service == "events" and operation == "PutRule":
            return self._put_rule(_json_body(request))
        if service == "sqs" and operation in ("SendMessage", "SendMessageBatch"):
            return self._sqs_send(operation, _json_body(request), url.hostname or "")
        if service == "dynamodb" and operation == "BatchWriteItem":
            return self._batch_write(_json_body(request))
        if service == "lambda":
            return self._invoke(request, url.path)
        return None

    def _put_events(self, body: Mapping[str, Any] | None) -> _Refusal | None:
        if not body:
            return None
        total = sum(put_events_entry_size(e) for e in body.get("Entries") or () if e)
        if total > self.limits.put_events_request:
            return _Refusal(
                400,
                "ValidationException",
                "Total size of the entries in the request is over the limit.",
                "json",
            )
        return None

    @staticmethod
    def _put_rule(body: Mapping[str, Any] | None) -> _Refusal | None:
        """A rule's pattern is checked as EventBridge checks it (moto checks 3 of the 38
        invalid patterns of the conformance data): among the rules, numeric matching
        only within -5.0e9..5.0e9, and 2048 characters at most (the default quota)."""
        from pulumi_eventcraft.event_pattern import InvalidEventPatternError, validate_pattern

        pattern = (body or {}).get("EventPattern")
        if not isinstance(pattern, str) or not pattern:
            return None
        try:
            validate_pattern(pattern)
        except InvalidEventPatternError as exc:
            message = f"Event pattern is not valid. Reason: {exc}"
            return _Refusal(400, "InvalidEventPatternException", message, "json")
        return None

    def _sqs_send(
        self, operation: str, body: Mapping[str, Any] | None, host: str
    ) -> _Refusal | None:
        if not body:
            return None
        maximum = _queue_maximum_message_size(str(body.get("QueueUrl") or ""), host)
        if operation == "SendMessage":
            messages: Iterable[Mapping[str, Any]] = [body]
        else:
            messages = [e for e in body.get("Entries") or () if isinstance(e, Mapping)]
            total = sum(
                sqs_message_size(str(e.get("MessageBody") or ""), e.get("MessageAttributes"))
                for e in messages
            )
            if total > self.limits.sqs_batch:
                # The query-era code and wording (moto's BatchRequestTooLong keeps them).
                return _Refusal(
                    400,
                    "BatchRequestTooLong",
                    f"Batch requests cannot be longer than {self.limits.sqs_batch} bytes. "
                    f"You have sent {total} bytes.",
                    "sqs",
                )
        # Every message of a batch is checked before any is sent, as moto validates
        # them: one bad message refuses the request.
        for message in messages:
            refusal = self._sqs_message(message, maximum)
            if refusal is not None:
                return refusal
        return None

    def _sqs_message(self, message: Mapping[str, Any], maximum: int | None) -> _Refusal | None:
        text = str(message.get("MessageBody") or "")
        attributes = message.get("MessageAttributes") or {}
        problem = _invalid_character(text, "the message body")
        if problem is None:
            for name, value in attributes.items():
                string = value.get("StringValue")
                if string is not None:
                    problem = _invalid_character(str(string), f"the message attribute '{name}'")
                    if problem:
                        break
        if problem is not None:
            return _Refusal(400, "InvalidMessageContents", problem, "sqs")
        problem = _attribute_problem(attributes)
        if problem is not None:
            return _Refusal(400, "InvalidParameterValue", problem, "sqs")
        size = sqs_message_size(text, attributes)
        if maximum is not None and size > maximum:
            # "One or more parameters are invalid. Reason: Message must be shorter than
            # 262144 bytes." is what SQS answered with its 256 KiB default; the number
            # is the queue's MaximumMessageSize.
            return _Refusal(
                400,
                "InvalidParameterValue",
                "One or more parameters are invalid. Reason: Message must be shorter than "
                f"{maximum} bytes.",
                "sqs",
            )
        return None

    def _batch_write(self, body: Mapping[str, Any] | None) -> _Refusal | None:
        # BatchWriteItem (botocore's dynamodb model) rejects the whole batch when "any
        # individual item in a batch exceeds 400 KB": checked before moto writes any.
        for requests in (body or {}).get("RequestItems", {}).values():
            for request in requests:
                item = (request.get("PutRequest") or {}).get("Item")
                if item and dynamodb_item_size(item) > self.limits.dynamodb_item:
                    return _Refusal(
                        400,
                        "com.amazonaws.dynamodb.v20120810#ValidationException",
                        "Item size has exceeded the maximum allowed size",
                        "json",
                    )
        return None

    def _invoke(self, request: Any, path: str) -> _Refusal | None:
        if path.endswith("/invocations"):
            kind = _header(request, "X-Amz-Invocation-Type") or "RequestResponse"
        elif path.rstrip("/").endswith("/invoke-async"):
            kind = "Event"
        else:
            return None
        size = len(_raw_body(request))
        if kind == "Event" and size > self.limits.lambda_async_request:
            limit = self.limits.lambda_async_request
            return _Refusal(
                413,
                "RequestEntityTooLargeException",
                f"{size} byte payload is too large for the Event invocation type "
                f"(limit {limit} bytes)",
                "rest-json",
            )
        if kind != "Event" and size > self.limits.lambda_sync_request:
            return _Refusal(
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {self.limits.lambda_sync_request} bytes for "
                "the InvokeFunction operation",
                "rest-json",
            )
        return None


# ------------------------------------------------------------------ helpers


def _header(request: Any, name: str) -> str | None:
    headers = getattr(request, "headers", None) or {}
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value) if value is not None else None


def _raw_body(request: Any) -> bytes:
    body = getattr(request, "body", None)
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if hasattr(body, "read") and hasattr(body, "seek"):  # a file-like payload
        position = body.tell()
        data = body.read()
        body.seek(position)
        return data if isinstance(data, bytes) else str(data).encode("utf-8")
    return b""


def _json_body(request: Any) -> dict[str, Any] | None:
    raw = _raw_body(request)
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:  # not the JSON protocol (a query-protocol client): moto decides
        return None
    return body if isinstance(body, dict) else None


def _queue_maximum_message_size(queue_url: str, host: str) -> int | None:
    """The queue's MaximumMessageSize from moto (None: no such queue; moto answers)."""
    from moto.sqs.models import sqs_backends

    parts = [unquote(p) for p in urlsplit(queue_url).path.split("/") if p]
    if len(parts) < 2:
        return None
    account, name = parts[-2], parts[-1]
    region = _region(urlsplit(queue_url).hostname or "") or _region(host)
    if region is None:
        return None
    try:
        queue = sqs_backends[account][region].queues.get(name)
    except KeyError:
        return None
    return int(getattr(queue, "maximum_message_size")) if queue is not None else None  # noqa: B009


def _region(host: str) -> str | None:
    labels = host.split(".")
    return labels[1] if len(labels) > 2 and labels[0] == "sqs" else None


def _stored_item(backend: Any, table_name: Any, key: Any) -> Any:
    try:
        table = backend.get_table(table_name)
        hash_value, range_value = backend.get_keys_value(table, key)
        return table.get_item(hash_value, range_value)
    except Exception:  # a missing table or a bad key: moto reports it itself
        return None


def _forget_item(backend: Any, table_name: Any, key: Any) -> None:
    """Remove the key-only item moto created for an update that failed (without a
    stream record: to the outside, the update never happened)."""
    table = backend.get_table(table_name)
    hash_value, range_value = backend.get_keys_value(table, key)
    shard, table.stream_shard = table.stream_shard, None
    try:
        table.delete_item(hash_value, range_value)
    finally:
        table.stream_shard = shard


def _is_item_size_error(exc: Exception) -> bool:
    return "Item size" in str(getattr(exc, "message", "") or exc)
