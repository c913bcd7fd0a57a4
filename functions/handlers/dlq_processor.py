"""The DLQ tool: inspect a dead-letter queue, or redrive its messages after a fix.

Entry: `handler(event, context)`, invoked by an operator (console, CLI, a runbook), with
    {"action": "inspect" | "redrive", "max": N, "target": "queue" | "bus"}
- action: "inspect" (default) summarises up to `max` messages by error, detail-type
  and source, with a few samples, and leaves every message in the DLQ (made visible
  again at once). "redrive" moves up to `max` messages to `target`.
- max: messages to look at, 1..1000 (default 100).
- target (redrive only, required): "queue" sends each message to REDRIVE_QUEUE_URL (the
  queue whose redrive policy fed this DLQ, or a rule's target queue); "bus" puts the
  EventBridge event each message carries back on EVENT_BUS_NAME (every rule matching it
  delivers it again: consumers are idempotent on eventId, so the targets that had
  succeeded ignore it).

What a DLQ message can be, and what is read from it:
- an EventBridge target's DLQ: body = the event; attributes ERROR_CODE, ERROR_MESSAGE;
- a Lambda on-failure destination: body = {"requestPayload": event, "responsePayload":
  {"errorType", "errorMessage"}, "requestContext": {"condition"}};
- a Lambda async DeadLetterConfig: body = the event; attributes ErrorCode, ErrorMessage;
- an SQS queue's redrive: body = the original body; no error is recorded by SQS.

Never loses a message: a message is deleted from the DLQ only after the send to its
target succeeded. A failed send makes it visible again at once and is reported; a failed
delete after a successful send is reported too (the message will be moved again later:
consumers deduplicate). FIFO targets get a deduplication id derived from the DLQ
message id, never the original one: SQS would silently drop a resend carrying the
original id within its 5-minute window, and the delete would then lose the message.

Why receive/send/delete and not SQS StartMessageMoveTask: the move task only moves to
the original source queue(s) or one queue ARN, cannot target an event bus, reports
per-task rather than per-message outcomes, and is not implemented by moto (the tests and
the sandbox run on it). Per-message SendMessage/DeleteMessage (not the *Batch calls)
keeps the role's actions exactly those listed in ACCESS.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eventkit import clients
from eventkit.publisher import Publisher, PublishError
from eventkit.settings import env

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

ACCESS: Final[dict[str, frozenset[str]]] = {
    "DLQ_URL": frozenset(
        {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        }
    ),
    "REDRIVE_QUEUE_URL": frozenset({"sqs:SendMessage"}),
    "EVENT_BUS_NAME": frozenset({"events:PutEvents"}),
}
DLQ_URL_ENV: Final = "DLQ_URL"
REDRIVE_QUEUE_URL_ENV: Final = "REDRIVE_QUEUE_URL"
EVENT_BUS_ENV: Final = "EVENT_BUS_NAME"

# Hidden from other readers while this invocation handles them (seconds); longer than
# handling one receive batch takes.
VISIBILITY_TIMEOUT: Final = 120
MAX_SAMPLES: Final = 10
MAX_TEXT: Final = 300
# Diagnostics that the DLQ's producer attached; not part of the original message.
_DIAGNOSTIC_ATTRIBUTES: Final = frozenset(
    {"ERROR_CODE", "ERROR_MESSAGE", "RULE_ARN", "TARGET_ARN", "ErrorCode", "ErrorMessage",
     "RequestID"}
)  # fmt: skip


class DlqProcessorError(Exception):
    """Base of this tool's errors."""


class ConfigurationError(DlqProcessorError):
    """A required environment variable is missing."""


class InvalidCommandError(DlqProcessorError, ValueError):
    """The invocation event is not a valid command."""


def _env(name: str, why: str) -> str:
    return env(
        name,
        f"{why}. The function's component must set it (and grant the actions listed in "
        "ACCESS on it).",
        error=ConfigurationError,
    )


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["inspect", "redrive"] = "inspect"
    max: int = Field(default=100, ge=1, le=1000)
    target: Literal["queue", "bus"] | None = None


def parse_command(event: Mapping[str, Any] | None) -> Command:
    try:
        command = Command.model_validate(dict(event or {}))
    except ValidationError as exc:
        raise InvalidCommandError(
            f"invalid DLQ command {dict(event or {})!r}: {exc.errors()[0]['msg']} at "
            f"{'.'.join(map(str, exc.errors()[0]['loc'])) or '<root>'}. Send "
            '{"action": "inspect" | "redrive", "max": 1..1000, "target": "queue" | "bus"}.'
        ) from exc
    if command.action == "redrive" and command.target is None:
        raise InvalidCommandError(
            'redrive needs a target: "queue" (REDRIVE_QUEUE_URL) or "bus" (EVENT_BUS_NAME); '
            "inspect first to see what the messages are"
        )
    return command


# --- reading a DLQ message (pure) ------------------------------------------------------


@dataclass(frozen=True)
class Described:
    """What a DLQ message is: the event it carries (if any) and why it failed."""

    error: str
    error_message: str | None
    event: Mapping[str, Any] | None
    detail_type: str
    source: str
    # A Lambda destination record: the original message is the event inside it.
    wrapped: bool = False

    @property
    def event_id(self) -> str | None:
        detail = (self.event or {}).get("detail")
        return (
            str(detail["eventId"]) if isinstance(detail, Mapping) and "eventId" in detail else None
        )

    @property
    def order_id(self) -> str | None:
        detail = (self.event or {}).get("detail")
        return (
            str(detail["orderId"]) if isinstance(detail, Mapping) and "orderId" in detail else None
        )


def _attribute(attributes: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, Mapping) and value.get("StringValue"):
            return str(value["StringValue"])
    return None


def _is_event(payload: Any) -> bool:
    return isinstance(payload, Mapping) and "detail-type" in payload and "detail" in payload


def describe(body: str, message_attributes: Mapping[str, Any]) -> Described:
    """Read a DLQ message's body and message attributes (see the module doc)."""
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    event: Mapping[str, Any] | None = None
    wrapped = False
    error = _attribute(message_attributes, "ERROR_CODE", "ErrorCode")
    error_message = _attribute(message_attributes, "ERROR_MESSAGE", "ErrorMessage")
    if isinstance(payload, Mapping) and "requestPayload" in payload:
        response = payload.get("responsePayload")
        if isinstance(response, Mapping):
            error = error or (str(response["errorType"]) if response.get("errorType") else None)
            error_message = error_message or (
                str(response["errorMessage"]) if response.get("errorMessage") else None
            )
        condition = (payload.get("requestContext") or {}).get("condition")
        error = error or (str(condition) if condition else None)
        request = payload["requestPayload"]
        event = request if _is_event(request) else None
        wrapped = True
    elif _is_event(payload):
        event = payload
    if payload is None:
        error = error or "NotJson"
    return Described(
        error=error or "unknown",
        error_message=error_message[:MAX_TEXT] if error_message else None,
        event=event,
        detail_type=str(event["detail-type"]) if event else "<not an EventBridge event>",
        source=str(event.get("source", "<none>")) if event else "<none>",
        wrapped=wrapped,
    )


def bus_entry(event: Mapping[str, Any]) -> PutEventsRequestEntryTypeDef:
    """The PutEvents entry re-publishing `event` (the envelope's time kept: event time)."""
    entry: PutEventsRequestEntryTypeDef = {
        "Source": str(event.get("source", "")),
        "DetailType": str(event["detail-type"]),
        "Detail": json.dumps(event["detail"], separators=(",", ":")),
    }
    if isinstance(event.get("time"), str):
        # Unparsable: EventBridge stamps the time of the put instead.
        with contextlib.suppress(ValueError):
            entry["Time"] = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    resources = event.get("resources")
    if isinstance(resources, list) and resources:
        entry["Resources"] = [str(r) for r in resources]
    return entry


# --- results ---------------------------------------------------------------------------


@dataclass
class Report:
    action: str
    dlq_url: str
    target: str | None = None
    examined: int = 0
    moved: int = 0
    by_error: Counter[str] = field(default_factory=Counter)
    by_detail_type: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)
    not_moved: list[dict[str, str]] = field(default_factory=list)
    moved_not_deleted: list[dict[str, str]] = field(default_factory=list)
    approximate_remaining: int | None = None

    def add(self, message_id: str, described: Described) -> None:
        self.examined += 1
        self.by_error[described.error] += 1
        self.by_detail_type[described.detail_type] += 1
        self.by_source[described.source] += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(
                {
                    "messageId": message_id,
                    "error": described.error,
                    "errorMessage": described.error_message,
                    "detailType": described.detail_type,
                    "source": described.source,
                    "eventId": described.event_id,
                    "orderId": described.order_id,
                }
            )

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "action": self.action,
            "dlqUrl": self.dlq_url,
            "examined": self.examined,
            "byError": dict(self.by_error),
            "byDetailType": dict(self.by_detail_type),
            "bySource": dict(self.by_source),
            "samples": self.samples,
            "approximateRemaining": self.approximate_remaining,
        }
        if self.action == "redrive":
            result.update(
                target=self.target,
                moved=self.moved,
                notMoved=self.not_moved,
                movedNotDeleted=self.moved_not_deleted,
            )
        return result


# --- adapters ----------------------------------------------------------------------------


def _sqs() -> SQSClient:
    sqs: SQSClient = clients.client("sqs")
    return sqs


@functools.cache
def _publisher() -> Publisher:
    return Publisher()


def _receive(dlq_url: str, count: int) -> list[MessageTypeDef]:
    return (
        _sqs()
        .receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, count),
            VisibilityTimeout=VISIBILITY_TIMEOUT,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        .get("Messages", [])
    )


def _release(dlq_url: str, messages: list[MessageTypeDef]) -> None:
    """Make messages visible again now (if this fails, the visibility timeout does it)."""
    sqs = _sqs()
    for message in messages:
        try:
            sqs.change_message_visibility(
                QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        except Exception:  # noqa: S112 (best effort: visible again after the timeout)
            continue


def _remaining(dlq_url: str) -> int | None:
    attributes = (
        _sqs()
        .get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        .get("Attributes", {})
    )
    value = attributes.get("ApproximateNumberOfMessages")
    return int(value) if value is not None else None


def _send_to_queue(queue_url: str, message: MessageTypeDef, described: Described) -> None:
    body = message["Body"]
    if described.wrapped:
        if described.event is None:
            raise ValueError("a Lambda destination record without an EventBridge event in it")
        body = json.dumps(described.event)
    kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
    attributes = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
        if name not in _DIAGNOSTIC_ATTRIBUTES
    }
    if attributes:
        kwargs["MessageAttributes"] = attributes
    if queue_url.endswith(".fifo"):
        group = message.get("Attributes", {}).get("MessageGroupId")
        if not group:
            raise ValueError(
                "the target is a FIFO queue and the message has no MessageGroupId: "
                "move it by hand with the right group"
            )
        kwargs["MessageGroupId"] = group
        kwargs["MessageDeduplicationId"] = f"redrive-{message['MessageId']}"[:128]
    _sqs().send_message(**kwargs)


def _delete(dlq_url: str, message: MessageTypeDef, report: Report) -> None:
    try:
        _sqs().delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    except Exception as exc:  # reported: moved again later, consumers dedupe
        report.moved_not_deleted.append({"messageId": message["MessageId"], "reason": str(exc)})
    report.moved += 1


# --- use cases ---------------------------------------------------------------------------


def inspect(dlq_url: str, limit: int) -> Report:
    report = Report("inspect", dlq_url)
    seen: list[MessageTypeDef] = []
    try:
        while report.examined < limit:
            messages = _receive(dlq_url, limit - report.examined)
            if not messages:
                break
            seen.extend(messages)
            for message in messages:
                report.add(
                    message["MessageId"],
                    describe(message["Body"], message.get("MessageAttributes", {})),
                )
    finally:
        _release(dlq_url, seen)
    report.approximate_remaining = _remaining(dlq_url)
    return report


def redrive(dlq_url: str, limit: int, target: Literal["queue", "bus"]) -> Report:
    # Resolve the target before touching any message.
    if target == "queue":
        queue_url = _env(REDRIVE_QUEUE_URL_ENV, "redrive to a queue needs the queue's URL")
    else:
        _env(EVENT_BUS_ENV, "redrive to the bus needs the bus name")
        queue_url = ""
    report = Report("redrive", dlq_url, target=target)
    # Messages not moved stay hidden until the end of the run (so a receive does not
    # return them again), then become visible at once.
    failed: list[MessageTypeDef] = []
    try:
        while report.examined < limit:
            messages = _receive(dlq_url, limit - report.examined)
            if not messages:
                break
            described = [describe(m["Body"], m.get("MessageAttributes", {})) for m in messages]
            for message, one in zip(messages, described, strict=True):
                report.add(message["MessageId"], one)
            if target == "queue":
                failed += _redrive_to_queue(dlq_url, queue_url, messages, described, report)
            else:
                failed += _redrive_to_bus(dlq_url, messages, described, report)
    finally:
        _release(dlq_url, failed)
    report.approximate_remaining = _remaining(dlq_url)
    return report


def _redrive_to_queue(
    dlq_url: str,
    queue_url: str,
    messages: list[MessageTypeDef],
    described: list[Described],
    report: Report,
) -> list[MessageTypeDef]:
    failed: list[MessageTypeDef] = []
    for message, one in zip(messages, described, strict=True):
        try:
            _send_to_queue(queue_url, message, one)
        except Exception as exc:  # reported; the message stays in the DLQ
            report.not_moved.append({"messageId": message["MessageId"], "reason": str(exc)})
            failed.append(message)
            continue
        _delete(dlq_url, message, report)
    return failed


def _redrive_to_bus(
    dlq_url: str,
    messages: list[MessageTypeDef],
    described: list[Described],
    report: Report,
) -> list[MessageTypeDef]:
    failed: list[MessageTypeDef] = []
    sendable: list[tuple[MessageTypeDef, PutEventsRequestEntryTypeDef]] = []
    for message, one in zip(messages, described, strict=True):
        if one.event is None:
            report.not_moved.append(
                {
                    "messageId": message["MessageId"],
                    "reason": "carries no EventBridge event: redrive it to a queue instead",
                }
            )
            failed.append(message)
        else:
            sendable.append((message, bus_entry(one.event)))
    if not sendable:
        return failed
    sent: list[bool]
    try:
        _publisher().put_entries([entry for _, entry in sendable])
        sent = [True] * len(sendable)
    except PublishError as exc:
        reasons = {f.index: f"{f.error_code}: {f.error_message}" for f in exc.failed}
        sent = [event_id is not None for event_id in exc.event_ids]
        for i, (message, _) in enumerate(sendable):
            if not sent[i]:
                report.not_moved.append(
                    {"messageId": message["MessageId"], "reason": reasons.get(i, "not sent")}
                )
    for (message, _), ok in zip(sendable, sent, strict=True):
        if ok:
            _delete(dlq_url, message, report)
        else:
            failed.append(message)
    return failed


def handler(event: Mapping[str, Any] | None, context: object) -> dict[str, Any]:
    command = parse_command(event)
    dlq_url = _env(DLQ_URL_ENV, "the tool needs the URL of the DLQ it works on")
    if command.action == "inspect":
        return inspect(dlq_url, command.max).as_dict()
    assert command.target is not None  # parse_command guarantees it for redrive
    return redrive(dlq_url, command.max, command.target).as_dict()
