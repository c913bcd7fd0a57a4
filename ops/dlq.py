"""`dlq list`, `dlq inspect`, `dlq redrive`: the stack's dead-letter queues.

What a DLQ message is, read from its body and attributes (`kind`):
- `rule-target`: an EventBridge rule target's DLQ. Body: the event. Attributes RULE_ARN,
  TARGET_ARN, ERROR_CODE, ERROR_MESSAGE (and EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS).
  Back: the event is put on the bus again (every rule matching it delivers it; the
  consumers are idempotent on detail.eventId, so targets that had succeeded ignore it).
- `lambda-destination`: a Lambda async on-failure destination record. Body:
  {requestContext: {functionArn, condition, approximateInvokeCount}, requestPayload,
  responsePayload: {errorType, errorMessage}}. Back: the function is invoked again,
  asynchronously, with the original payload (`--to bus` puts the event on the bus).
- `lambda-dlq`: a function's async DeadLetterConfig. Body: the payload; attributes
  ErrorCode, ErrorMessage, RequestID. Back: an EventBridge event goes on the bus.
- `stream-failure`: a DynamoDB / Kinesis event source mapping's on-failure record. Body:
  {requestContext, responseContext, DDBStreamBatchInfo | KinesisBatchInfo: shard,
  sequence numbers, batch size, stream ARN}. A POINTER, not the records: never moved.
- `message`: anything else, e.g. a work queue's message redriven by SQS after
  maxReceiveCount (SQS records no error). Back: to its source queue (the outputs'
  `source`, else SQS ListDeadLetterSourceQueues: the queues whose redrive policy
  names this DLQ).

Never loses a message: inspect hides the messages it reads for the run and makes them
visible again at once (change visibility to 0) at the end; redrive deletes a message
only after its send/put/invoke succeeded, keeps every other message (reported with the
reason) and makes them visible again at the end. A FIFO target gets a deduplication id
derived from the DLQ message id (the original id would be silently deduplicated away
within SQS's 5-minute window).

Why receive/send/delete and not SQS StartMessageMoveTask (the console's "Start DLQ
redrive"): on AWS the move task is the native way to send a work queue's DLQ back to
its source queue, but it cannot target a bus or a function, reports per task and not
per message, and is not implemented by moto (the tests and the sandbox run on it).

The message reading reuses the DLQ processor's (`handlers.dlq_processor.describe` and
`bus_entry`), and bus puts go through `eventkit.publisher.Publisher` (FailedEntryCount
checked, failed entries retried, never dropped silently).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError

from eventkit.publisher import Publisher, PublishError
from handlers import dlq_processor
from handlers.dlq_processor import Described, bus_entry, describe
from ops.aws import Clients, describe_aws_error, error_code
from ops.errors import EXIT_FAILED, UsageError
from ops.outputs import NamedDlq, StackOutputs
from ops.render import counts, duration, fields, iso, table
from ops.result import Result

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs.type_defs import MessageTypeDef

MessageKind = Literal[
    "rule-target", "lambda-destination", "lambda-dlq", "stream-failure", "message"
]
Action = Literal["queue", "bus", "function", "none"]

DEFAULT_MAX: Final = 100
MAX_MAX: Final = 10_000
MAX_SAMPLES: Final = 10
# Seconds a message read by this run stays hidden from other readers: longer than a run
# takes to handle one receive batch. Messages not moved are made visible at the end.
VISIBILITY_TIMEOUT: Final = 300
# The DLQ producers' diagnostics: not part of the original message, never carried over.
DIAGNOSTIC_ATTRIBUTES: Final = dlq_processor._DIAGNOSTIC_ATTRIBUTES | {
    "EXHAUSTED_RETRY_CONDITION",
    "RETRY_ATTEMPTS",
}
STREAM_BATCH_KEYS: Final = ("DDBStreamBatchInfo", "KinesisBatchInfo")
NATIVE_MOVE_NOTE: Final = (
    "ops moves messages one by one (receive, send, delete); on AWS a work queue's DLQ "
    "can also go back to its source with SQS StartMessageMoveTask (console: Start DLQ "
    "redrive), which moto does not implement"
)
AGE_METRIC_WINDOW_SECONDS: Final = 900


# --- reading a message (pure) -------------------------------------------------------------


def _attribute(attributes: Mapping[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if isinstance(value, Mapping) and value.get("StringValue"):
        return str(value["StringValue"])
    return None


@dataclass(frozen=True)
class DlqMessage:
    """A received DLQ message and what it is."""

    raw: MessageTypeDef
    kind: MessageKind
    described: Described
    rule_arn: str | None = None
    target_arn: str | None = None
    function_arn: str | None = None
    payload: Any = None  # a Lambda destination record's requestPayload
    stream_batch: Mapping[str, Any] | None = None
    sent_at: datetime | None = None
    receive_count: int | None = None

    @property
    def message_id(self) -> str:
        return self.raw["MessageId"]

    def pointer(self) -> str:
        """What a stream failure record points at, in words."""
        batch = self.stream_batch or {}
        return (
            f"records {batch.get('startSequenceNumber')}..{batch.get('endSequenceNumber')} "
            f"({batch.get('batchSize')} record(s)) of shard {batch.get('shardId')} of "
            f"{batch.get('streamArn')}"
        )

    def sample(self) -> dict[str, Any]:
        d = self.described
        result: dict[str, Any] = {
            "messageId": self.message_id,
            "kind": self.kind,
            "sentAt": iso(self.sent_at) if self.sent_at else None,
            "receiveCount": self.receive_count,
            "error": d.error,
            "errorMessage": d.error_message,
            "detailType": d.detail_type if d.event else None,
            "source": d.source if d.event else None,
            "orderId": d.order_id,
            "eventId": d.event_id,
            "ruleArn": self.rule_arn,
            "targetArn": self.target_arn,
            "functionArn": self.function_arn,
        }
        if self.stream_batch is not None:
            result["streamBatch"] = dict(self.stream_batch)
        return result


def read(raw: MessageTypeDef) -> DlqMessage:
    """Read a received message (see the module doc for the kinds)."""
    attributes = raw.get("MessageAttributes", {})
    system = raw.get("Attributes", {})
    described = describe(raw.get("Body", ""), attributes)
    try:
        body: Any = json.loads(raw.get("Body", ""))
    except ValueError:
        body = None
    sent = system.get("SentTimestamp")
    common: dict[str, Any] = {
        "sent_at": datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        "receive_count": int(system["ApproximateReceiveCount"])
        if system.get("ApproximateReceiveCount")
        else None,
    }
    context = body.get("requestContext") if isinstance(body, Mapping) else None
    function_arn = context.get("functionArn") if isinstance(context, Mapping) else None
    if isinstance(body, Mapping) and any(key in body for key in STREAM_BATCH_KEYS):
        batch = next(body[key] for key in STREAM_BATCH_KEYS if key in body)
        condition = context.get("condition") if isinstance(context, Mapping) else None
        described = Described(
            error=str(condition or described.error),
            error_message=described.error_message,
            event=None,
            detail_type="<stream failure record>",
            source="<none>",
        )
        return DlqMessage(
            raw,
            "stream-failure",
            described,
            function_arn=function_arn,
            stream_batch=batch if isinstance(batch, Mapping) else {},
            **common,
        )
    if described.wrapped and isinstance(body, Mapping):
        return DlqMessage(
            raw,
            "lambda-destination",
            described,
            function_arn=str(function_arn) if function_arn else None,
            payload=body.get("requestPayload"),
            **common,
        )
    rule_arn = _attribute(attributes, "RULE_ARN")
    target_arn = _attribute(attributes, "TARGET_ARN")
    if rule_arn or target_arn or _attribute(attributes, "ERROR_CODE"):
        return DlqMessage(
            raw, "rule-target", described, rule_arn=rule_arn, target_arn=target_arn, **common
        )
    if _attribute(attributes, "ErrorCode") or _attribute(attributes, "RequestID"):
        return DlqMessage(raw, "lambda-dlq", described, **common)
    return DlqMessage(raw, "message", described, **common)


def fingerprint(message: DlqMessage) -> str:
    """What a message carries, independent of its envelope: the event (detail-type,
    source, detail; EventBridge gives a re-put event a new id), else the payload or body."""
    event = message.described.event
    content: Any
    if event is not None:
        content = [event.get("detail-type"), event.get("source"), event.get("detail")]
    elif message.kind == "lambda-destination":
        content = message.payload
    else:
        content = message.raw.get("Body", "")
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- plans: where a message goes back -------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    action: Action
    target: str | None = None
    reason: str | None = None  # why not moved (action "none")


@dataclass(frozen=True)
class Destination:
    """Where `redrive` sends: `to` ("bus", a queue URL, or None: each message's source),
    the DLQ's source queues (for `message` kind), the bus name."""

    to: str | None
    source_queues: tuple[str, ...]
    bus: str | None


def plan(message: DlqMessage, where: Destination) -> Plan:  # noqa: PLR0911 (one per case)
    """Where `message` goes back (pure; see the module doc)."""
    if message.kind == "stream-failure":
        return Plan(
            "none",
            reason=(
                f"a stream failure record is a pointer, not the data: {message.pointer()}. "
                "Fix the function, then reprocess those records while the stream still "
                "has them (DynamoDB Streams keep 24 h; Kinesis its retention), e.g. for "
                "the history projection rebuild the read model from the event store; "
                "delete the record by hand once handled"
            ),
        )
    event = message.described.event
    if where.to == "bus":
        if event is None:
            return Plan(
                "none", reason="carries no EventBridge event: redrive it to a queue instead"
            )
        return Plan("bus", where.bus)
    if where.to is not None:
        return Plan("queue", where.to)
    if where.source_queues:  # a work queue's DLQ: back to that queue
        if len(where.source_queues) == 1:
            return Plan("queue", where.source_queues[0])
        return Plan(
            "none",
            reason=(
                f"{len(where.source_queues)} queues feed this DLQ "
                f"({', '.join(where.source_queues)}): pass --to QUEUE"
            ),
        )
    if message.kind == "lambda-destination":
        if message.function_arn and message.payload is not None:
            return Plan("function", message.function_arn)
        return Plan("none", reason="the destination record names no function or payload")
    if message.kind in ("rule-target", "lambda-dlq") and event is not None:
        return Plan("bus", where.bus)
    return Plan(
        "none",
        reason=(
            "no source is known for it (no queue's redrive policy names this DLQ, and it "
            "carries no EventBridge event): pass --to QUEUE"
            + (", or --to bus" if event is not None else "")
        ),
    )


# --- SQS helpers ----------------------------------------------------------------------------


def _receive(clients: Clients, url: str, count: int, visibility: int) -> list[MessageTypeDef]:
    try:
        return clients.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(10, count)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    except (ClientError, BotoCoreError) as exc:
        raise describe_aws_error(exc, f"ReceiveMessage {url}") from exc


def _release(clients: Clients, url: str, messages: Sequence[MessageTypeDef]) -> list[str]:
    """Make messages visible again now; returns the ids it could not (visible again once
    their visibility timeout ends)."""
    failed: list[str] = []
    for message in messages:
        try:
            clients.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        except (ClientError, BotoCoreError):
            failed.append(message["MessageId"])
    return failed


def _attributes(clients: Clients, url: str) -> dict[str, str]:
    try:
        attributes = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        return {str(k): v for k, v in attributes.get("Attributes", {}).items()}
    except ClientError as exc:
        if error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise UsageError(
                f"queue {url} does not exist (deleted, or another account/region)"
            ) from exc
        raise describe_aws_error(exc, f"GetQueueAttributes {url}") from exc
    except BotoCoreError as exc:
        raise describe_aws_error(exc, f"GetQueueAttributes {url}") from exc


def _remaining(clients: Clients, url: str) -> int | None:
    try:
        value = _attributes(clients, url).get("ApproximateNumberOfMessages")
    except UsageError:
        return None
    return int(value) if value is not None else None


def resolve_dlq(clients: Clients, outputs: StackOutputs, ref: str) -> NamedDlq:
    """The DLQ `ref` names: an output name, a queue name, URL or ARN from the outputs, or
    any queue URL."""
    found = outputs.find_dlq(ref)
    if found is not None:
        return found
    if ref.startswith(("https://", "http://")):
        return NamedDlq(ref.rsplit("/", 1)[-1], ref, None, None, None)
    known = ", ".join(d.name for d in outputs.all_dlqs()) or "none in the outputs"
    raise UsageError(
        f"no DLQ {ref!r} in the stack outputs (its DLQs: {known}); or pass a queue URL"
    )


def _queue_url(clients: Clients, outputs: StackOutputs, ref: str) -> str:
    url = outputs.find_queue_url(ref)
    if url:
        return url
    if ref.startswith(("https://", "http://")):
        return ref
    name = ref.rsplit(":", 1)[-1] if ref.startswith("arn:") else ref
    try:
        return clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        raise UsageError(f"--to {ref}: no such queue ({error_code(exc)})") from exc
    except BotoCoreError as exc:
        raise describe_aws_error(exc, f"GetQueueUrl {name}") from exc


def source_queues(clients: Clients, dlq: NamedDlq) -> tuple[str, ...]:
    """The queues whose redrive policy sends to `dlq` (the outputs' `source` first)."""
    if dlq.source:
        return (dlq.source,)
    urls: list[str] = []
    try:
        paginator = clients.sqs.get_paginator("list_dead_letter_source_queues")
        for page in paginator.paginate(QueueUrl=dlq.url):
            urls.extend(page.get("queueUrls", []))
    except (ClientError, BotoCoreError) as exc:
        raise describe_aws_error(exc, f"ListDeadLetterSourceQueues {dlq.url}") from exc
    return tuple(sorted(urls))


# --- dlq list -------------------------------------------------------------------------------


def _age_from_metric(clients: Clients, queue_name: str, now: datetime) -> float | None:
    """CloudWatch's ApproximateAgeOfOldestMessage (seconds), latest datapoint in the last
    15 minutes; None without data (an emulator, or a queue that reported nothing)."""
    try:
        points = clients.cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            StartTime=datetime.fromtimestamp(now.timestamp() - AGE_METRIC_WINDOW_SECONDS, UTC),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        ).get("Datapoints", [])
    except (ClientError, BotoCoreError):
        return None
    if not points:
        return None
    latest = max(points, key=lambda p: p["Timestamp"])
    return float(latest.get("Maximum", 0.0))


def _age_from_sample(clients: Clients, url: str, now: datetime) -> float | None:
    """Age of the oldest of up to 10 messages peeked at (received with visibility
    timeout 0, so they stay visible): a lower bound, SQS does not keep order."""
    try:
        messages = clients.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["SentTimestamp"],
        ).get("Messages", [])
    except (ClientError, BotoCoreError):
        return None
    stamps = [
        int(m["Attributes"]["SentTimestamp"])
        for m in messages
        if m.get("Attributes", {}).get("SentTimestamp")
    ]
    return (now.timestamp() * 1000 - min(stamps)) / 1000 if stamps else None


def list_dlqs(clients: Clients, outputs: StackOutputs, *, now: datetime | None = None) -> Result:
    """Every DLQ of the stack with its depth and the age of its oldest message."""
    now = now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for dlq in outputs.all_dlqs():
        row: dict[str, Any] = {"name": dlq.name, "url": dlq.url, "kind": dlq.kind}
        try:
            attributes = _attributes(clients, dlq.url)
        except (UsageError, Exception) as exc:  # one broken queue does not hide the others
            rows.append({**row, "error": str(exc)})
            continue
        visible = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        retention = int(attributes.get("MessageRetentionPeriod", 0)) or None
        age: float | None = None
        age_source: str | None = None
        if visible + in_flight:
            age = _age_from_metric(clients, dlq.url.rsplit("/", 1)[-1], now)
            age_source = "cloudwatch" if age is not None else None
            if age is None and visible:
                age = _age_from_sample(clients, dlq.url, now)
                age_source = "sample" if age is not None else None
        rows.append(
            {
                **row,
                "messages": visible,
                "inFlight": in_flight,
                "oldestAgeSeconds": round(age, 1) if age is not None else None,
                "oldestAgeSource": age_source,
                "retentionSeconds": retention,
                "expiresInSeconds": round(retention - age, 1)
                if retention and age is not None
                else None,
            }
        )
    failed = [r for r in rows if "error" in r]
    total = sum(int(r.get("messages", 0)) for r in rows)
    text = table(
        ["dlq", "kind", "messages", "in flight", "oldest", "expires in"],
        [
            (
                r["name"],
                r.get("kind") or "per message",
                r.get("messages", "ERROR"),
                r.get("inFlight"),
                (
                    duration(r["oldestAgeSeconds"])
                    + (" (sampled)" if r["oldestAgeSource"] == "sample" else "")
                )
                if r.get("oldestAgeSeconds") is not None
                else None,
                duration(r["expiresInSeconds"]) if r.get("expiresInSeconds") is not None else None,
            )
            for r in rows
        ],
    )
    text += f"\n{len(rows)} DLQ(s), {total} message(s)"
    text += "".join(f"\nerror: {r['name']}: {r['error']}" for r in failed)
    if any(r.get("oldestAgeSource") == "sample" for r in rows):
        text += "\n(sampled: the oldest of up to 10 messages peeked at; CloudWatch had no data)"
    data = {"dlqs": rows, "totalMessages": total, "errors": len(failed)}
    return Result(data, text, EXIT_FAILED if failed else 0)


# --- dlq inspect ----------------------------------------------------------------------------


@dataclass
class Summary:
    examined: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_error: Counter[str] = field(default_factory=Counter)
    by_detail_type: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    by_target: Counter[str] = field(default_factory=Counter)
    by_function: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)
    oldest: datetime | None = None

    def add(self, message: DlqMessage) -> None:
        d = message.described
        self.examined += 1
        self.by_kind[message.kind] += 1
        self.by_error[d.error] += 1
        self.by_detail_type[d.detail_type] += 1
        self.by_source[d.source] += 1
        for counter, value in (
            (self.by_rule, message.rule_arn),
            (self.by_target, message.target_arn),
            (self.by_function, message.function_arn),
        ):
            if value:
                counter[value] += 1
        if message.sent_at and (self.oldest is None or message.sent_at < self.oldest):
            self.oldest = message.sent_at
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(message.sample())

    def as_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "byKind": dict(self.by_kind),
            "byError": dict(self.by_error),
            "byDetailType": dict(self.by_detail_type),
            "bySource": dict(self.by_source),
            "byRule": dict(self.by_rule),
            "byTarget": dict(self.by_target),
            "byFunction": dict(self.by_function),
            "oldestSentAt": iso(self.oldest) if self.oldest else None,
            "samples": self.samples,
        }


def _check_max(limit: int) -> None:
    if not 1 <= limit <= MAX_MAX:
        raise UsageError(f"--max must be 1..{MAX_MAX}, got {limit}")


def inspect(
    clients: Clients, outputs: StackOutputs, ref: str, *, limit: int = DEFAULT_MAX
) -> Result:
    """Summarise up to `limit` messages of a DLQ, leaving every one of them in it."""
    _check_max(limit)
    dlq = resolve_dlq(clients, outputs, ref)
    summary = Summary()
    held: list[MessageTypeDef] = []
    seen: set[str] = set()
    not_released: list[str] = []
    try:
        while summary.examined < limit:
            batch = _receive(clients, dlq.url, limit - summary.examined, VISIBILITY_TIMEOUT)
            if not batch:
                break
            held.extend(batch)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for raw in fresh:
                seen.add(raw["MessageId"])
                summary.add(read(raw))
    finally:
        not_released = _release(clients, dlq.url, held)
    data: dict[str, Any] = {
        "dlq": {"name": dlq.name, "url": dlq.url, "kind": dlq.kind},
        **summary.as_dict(),
        "approximateRemaining": _remaining(clients, dlq.url),
        "notMadeVisible": not_released,
    }
    parts = [
        fields(
            {
                "dlq": dlq.name,
                "url": dlq.url,
                "examined": summary.examined,
                "in queue": data["approximateRemaining"],
                "oldest sent": data["oldestSentAt"],
            }
        )
    ]
    for title, counter in (
        ("kind", summary.by_kind),
        ("error", summary.by_error),
        ("detail-type", summary.by_detail_type),
        ("rule", summary.by_rule),
        ("target", summary.by_target),
        ("function", summary.by_function),
    ):
        if counter:
            parts.append(counts(title, counter))
    parts.append(
        table(
            ["message", "kind", "error", "detail-type", "order", "message / pointer"],
            [
                (
                    s["messageId"],
                    s["kind"],
                    s["error"],
                    s["detailType"],
                    s["orderId"],
                    s["errorMessage"] or s.get("streamBatch", {}).get("shardId"),
                )
                for s in summary.samples
            ],
        )
    )
    if not_released:
        parts.append(
            f"warning: {len(not_released)} message(s) could not be made visible at once; "
            f"they are visible again within {VISIBILITY_TIMEOUT}s"
        )
    else:
        parts.append("every message examined was left in the DLQ (visible again)")
    return Result(data, "\n\n".join(parts))


# --- dlq redrive ----------------------------------------------------------------------------


@dataclass
class Outcome:
    message: DlqMessage
    plan: Plan
    status: Literal["moved", "not-moved", "moved-not-deleted", "would-move", "would-not-move"]
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "messageId": self.message.message_id,
            "kind": self.message.kind,
            "detailType": self.message.described.detail_type
            if self.message.described.event
            else None,
            "orderId": self.message.described.order_id,
            "action": self.plan.action,
            "target": self.plan.target,
            "status": self.status,
            "reason": self.reason,
        }


def _send_to_queue(clients: Clients, queue_url: str, message: DlqMessage) -> None:
    """Send `message` to a queue: a destination record's original payload, otherwise
    the body and the original message attributes (without the DLQ diagnostics)."""
    raw = message.raw
    body = raw["Body"]
    if message.kind == "lambda-destination":
        if message.payload is None:
            raise ValueError("a Lambda destination record without a requestPayload")
        body = json.dumps(message.payload)
    kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
    attributes = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in raw.get("MessageAttributes", {}).items()
        if name not in DIAGNOSTIC_ATTRIBUTES
    }
    if attributes:
        kwargs["MessageAttributes"] = attributes
    if queue_url.endswith(".fifo"):
        group = raw.get("Attributes", {}).get("MessageGroupId")
        if not group:
            raise ValueError(
                "the target is a FIFO queue and the message has no MessageGroupId: move it "
                "by hand with the right group"
            )
        kwargs["MessageGroupId"] = group
        # Not the original deduplication id: SQS would drop the resend within 5 minutes.
        kwargs["MessageDeduplicationId"] = f"redrive-{raw['MessageId']}"[:128]
    clients.sqs.send_message(**kwargs)


def _invoke(clients: Clients, function_arn: str, message: DlqMessage) -> None:
    response = clients.lambda_.invoke(
        FunctionName=function_arn,
        InvocationType="Event",
        Payload=json.dumps(message.payload).encode(),
    )
    if response.get("StatusCode") != 202:
        raise RuntimeError(f"Invoke answered {response.get('StatusCode')}, not 202 (queued)")


def _failure(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return f"{error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


class _Redrive:
    def __init__(
        self,
        clients: Clients,
        dlq: NamedDlq,
        where: Destination,
        *,
        dry_run: bool,
        publisher: Publisher | None,
    ) -> None:
        self.clients = clients
        self.dlq = dlq
        self.where = where
        self.dry_run = dry_run
        self.publisher = publisher
        self.outcomes: list[Outcome] = []
        self.keep: list[MessageTypeDef] = []  # received, not deleted: made visible at the end
        self.moved: set[str] = set()  # fingerprints of what was sent

    def _delete(self, message: DlqMessage, plan: Plan) -> None:
        self.moved.add(fingerprint(message))
        try:
            self.clients.sqs.delete_message(
                QueueUrl=self.dlq.url, ReceiptHandle=message.raw["ReceiptHandle"]
            )
        except (ClientError, BotoCoreError) as exc:
            # Moved, but still in the DLQ: a later redrive sends it again (consumers
            # deduplicate on eventId); never deleted before it was moved.
            self.outcomes.append(Outcome(message, plan, "moved-not-deleted", _failure(exc)))
            return
        self.outcomes.append(Outcome(message, plan, "moved"))

    def _not_moved(self, message: DlqMessage, plan: Plan, reason: str) -> None:
        self.keep.append(message.raw)
        self.outcomes.append(
            Outcome(message, plan, "would-not-move" if self.dry_run else "not-moved", reason)
        )

    def handle(self, batch: Sequence[DlqMessage]) -> None:
        to_bus: list[tuple[DlqMessage, Plan, PutEventsRequestEntryTypeDef]] = []
        for message in batch:
            chosen = plan(message, self.where)
            if chosen.action == "none":
                self._not_moved(message, chosen, chosen.reason or "not movable")
                continue
            if self.dry_run:
                self.keep.append(message.raw)
                self.outcomes.append(Outcome(message, chosen, "would-move"))
                continue
            if chosen.action == "bus":
                event = message.described.event
                assert event is not None  # plan() sends only events to the bus
                to_bus.append((message, chosen, bus_entry(event)))
                continue
            try:
                if chosen.action == "queue":
                    _send_to_queue(self.clients, str(chosen.target), message)
                else:
                    _invoke(self.clients, str(chosen.target), message)
            except Exception as exc:  # any failure: reported, the message stays
                self._not_moved(message, chosen, _failure(exc))
                continue
            self._delete(message, chosen)
        if to_bus:
            self._put(to_bus)

    def _put(self, items: Sequence[tuple[DlqMessage, Plan, PutEventsRequestEntryTypeDef]]) -> None:
        assert self.publisher is not None
        sent: list[bool]
        reasons: dict[int, str] = {}
        try:
            self.publisher.put_entries([entry for _, _, entry in items])
            sent = [True] * len(items)
        except PublishError as exc:
            reasons = {f.index: f"{f.error_code}: {f.error_message}" for f in exc.failed}
            sent = [event_id is not None for event_id in exc.event_ids]
        for i, ((message, chosen, _), ok) in enumerate(zip(items, sent, strict=True)):
            if ok:
                self._delete(message, chosen)
            else:
                self._not_moved(message, chosen, reasons.get(i, "not published"))


def redrive(
    clients: Clients,
    outputs: StackOutputs,
    ref: str,
    *,
    to: str | None = None,
    limit: int = DEFAULT_MAX,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Move up to `limit` messages of a DLQ back to where they came from (or `to`)."""
    _check_max(limit)
    dlq = resolve_dlq(clients, outputs, ref)
    # Every target is resolved before a message is touched.
    target: str | None
    if to is None:
        target = None
    elif to == "bus":
        target = "bus"
    else:
        target = _queue_url(clients, outputs, to)
        if target == dlq.url:
            raise UsageError("--to names the DLQ itself: nothing would move")
    sources = source_queues(clients, dlq) if target is None else ()
    bus: str | None = None
    if target == "bus" or (target is None and not sources):
        bus = outputs.require_bus("redriving EventBridge events to the bus")
    where = Destination(target, sources, bus)
    publisher = Publisher(bus, client=clients.events, sleep=sleep) if bus else None
    run = _Redrive(clients, dlq, where, dry_run=dry_run, publisher=publisher)
    seen: set[str] = set()
    not_released: list[str] = []
    examined = 0
    # A message like one this run already moved (same event, or same body) is most
    # likely that one failing again (its target is still broken): it is left for the
    # next run, so a redrive never chases its own failures. Compared by content, not by
    # SentTimestamp: the client's clock and SQS's may disagree.
    arrived: list[str] = []
    try:
        while examined < limit:
            raws = _receive(clients, dlq.url, limit - examined, VISIBILITY_TIMEOUT)
            if not raws:
                break
            fresh = [r for r in raws if r["MessageId"] not in seen]
            run.keep.extend(r for r in raws if r["MessageId"] in seen)
            if not fresh:
                break
            seen.update(r["MessageId"] for r in fresh)
            messages = [read(r) for r in fresh]
            again = {m.message_id for m in messages if fingerprint(m) in run.moved}
            arrived += sorted(again)
            run.keep.extend(m.raw for m in messages if m.message_id in again)
            messages = [m for m in messages if m.message_id not in again]
            examined += len(messages)
            run.handle(messages)
    finally:
        not_released = _release(clients, dlq.url, run.keep)
    return _redrive_result(
        clients,
        dlq=dlq,
        where=where,
        outcomes=run.outcomes,
        dry_run=dry_run,
        not_released=not_released,
        arrived=arrived,
    )


def _redrive_result(
    clients: Clients,
    *,
    dlq: NamedDlq,
    where: Destination,
    outcomes: Sequence[Outcome],
    dry_run: bool,
    not_released: Sequence[str],
    arrived: Sequence[str],
) -> Result:
    status = Counter(o.status for o in outcomes)
    by_target = Counter(
        f"{o.plan.action}:{o.plan.target}"
        for o in outcomes
        if o.status in ("moved", "moved-not-deleted", "would-move")
    )
    problems = [
        o for o in outcomes if o.status in ("not-moved", "moved-not-deleted", "would-not-move")
    ]
    data: dict[str, Any] = {
        "dlq": {"name": dlq.name, "url": dlq.url, "kind": dlq.kind},
        "dryRun": dry_run,
        "to": where.to,
        "sourceQueues": list(where.source_queues),
        "examined": len(outcomes),
        "moved": status["moved"] + status["moved-not-deleted"],
        "wouldMove": status["would-move"],
        "notMoved": [o.as_dict() for o in outcomes if o.status in ("not-moved", "would-not-move")],
        "movedNotDeleted": [o.as_dict() for o in outcomes if o.status == "moved-not-deleted"],
        "byTarget": dict(by_target),
        "messages": [o.as_dict() for o in outcomes],
        "approximateRemaining": _remaining(clients, dlq.url),
        "notMadeVisible": list(not_released),
        "arrivedDuringRun": list(arrived),
        "note": NATIVE_MOVE_NOTE,
    }
    verb = "would move" if dry_run else "moved"
    header = fields(
        {
            "dlq": dlq.name,
            "examined": len(outcomes),
            verb: data["wouldMove"] if dry_run else data["moved"],
            "not moved": len(data["notMoved"]),
            "left in queue": data["approximateRemaining"],
        }
    )
    parts = [header]
    if by_target:
        parts.append(counts(f"{verb} to", by_target))
    if problems:
        parts.append(
            table(
                ["message", "kind", "status", "reason"],
                [(o.message.message_id, o.message.kind, o.status, o.reason) for o in problems],
            )
        )
        parts.append("\n".join(f"{o.message.message_id}: {o.reason}" for o in problems if o.reason))
    if data["movedNotDeleted"]:
        parts.append(
            "moved but not deleted: they are still in the DLQ and would be moved again by a "
            "later redrive (consumers deduplicate on eventId); delete them once checked"
        )
    if arrived:
        parts.append(
            f"{len(arrived)} message(s) carry what this run already moved (failing again "
            "during the run: is the fix deployed? or duplicates); left for the next run"
        )
    parts.append(f"note: {NATIVE_MOVE_NOTE}")
    failed = bool(data["movedNotDeleted"]) or (not dry_run and bool(data["notMoved"]))
    return Result(data, "\n\n".join(parts), EXIT_FAILED if failed else 0)
