"""Dead-letter queue messages: what each one is, why it failed, and moving it back.

What a DLQ message can be (`kind`), read from its body and attributes (`read`):
- `rule-target`: an EventBridge rule target's DLQ. Body: the event. Attributes RULE_ARN,
  TARGET_ARN, ERROR_CODE, ERROR_MESSAGE (and EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS).
- `lambda-destination`: a Lambda async on-failure destination record. Body:
  {requestContext: {functionArn, condition, approximateInvokeCount}, requestPayload,
  responsePayload: {errorType, errorMessage}}.
- `lambda-dlq`: a function's async DeadLetterConfig. Body: the payload; attributes
  ErrorCode, ErrorMessage, RequestID.
- `stream-failure`: a DynamoDB / Kinesis event source mapping's on-failure record. Body:
  {requestContext, responseContext, DDBStreamBatchInfo | KinesisBatchInfo: shard,
  sequence numbers, batch size, stream ARN}. A POINTER, not the records: never moved.
- `consumer`: a work queue's message its consumer dead-lettered itself
  (`eventcraft.batch`, dead_letter=True). Body: the message; attributes its own, plus
  ERROR_CODE, ERROR_MESSAGE and SOURCE_QUEUE_ARN.
- `message`: anything else, e.g. a work queue's message redriven by SQS after
  maxReceiveCount: SQS records no error, so its error message says that (the consumer's
  logs have the error).

Moving messages back (`redrive`): each message goes where its `Plan` says (a queue, the
bus, the function of a destination record, or nowhere, with the reason), or is
`resolved`: what it stands for was recovered another way (e.g. a stream pointer to rows
that were republished since), so it is deleted, with the reason. Never loses a
message: a message is deleted from the DLQ only after its send / put / invoke succeeded
(or its planner found it resolved); every other message is kept, reported with the
reason, and made visible again at the end of the run. A failed delete after a successful
move is reported (the message will be moved again later: consumers deduplicate). A FIFO
target gets a deduplication id derived from the DLQ message id, never the original one:
SQS would silently drop a resend carrying the original id within its 5-minute window,
and the delete would then lose the message. A message carrying what the run already
moved (its target failing again) is left for the next run, so a redrive never chases
its own failures.

Why receive/send/delete and not SQS StartMessageMoveTask: the move task only moves to
the original source queue(s) or one queue ARN, cannot target an event bus or a function,
reports per task rather than per message, and is not implemented by moto. Per-message
SendMessage/DeleteMessage (not the *Batch calls) keeps a role's actions to those.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from eventcraft.publisher import Publisher, PublishError

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

MessageKind = Literal[
    "rule-target", "lambda-destination", "lambda-dlq", "stream-failure", "consumer", "message"
]
Action = Literal["queue", "bus", "function", "resolved", "none"]
Status = Literal[
    "moved",
    "not-moved",
    "moved-not-deleted",
    "would-move",
    "would-not-move",
    "resolved",
    "would-resolve",
]

MAX_TEXT: Final = 300  # an error message is cut to this many characters
# The DLQ producers' diagnostics: not part of the original message, never carried over.
DIAGNOSTIC_ATTRIBUTES: Final = frozenset(
    {"ERROR_CODE", "ERROR_MESSAGE", "RULE_ARN", "TARGET_ARN", "EXHAUSTED_RETRY_CONDITION",
     "RETRY_ATTEMPTS", "ErrorCode", "ErrorMessage", "RequestID", "SOURCE_QUEUE_ARN"}
)  # fmt: skip
# What a message moved by SQS's redrive says about its error (SQS records none).
NO_ERROR_RECORDED: Final = (
    "moved here by SQS after its queue's maxReceiveCount receives, which records no "
    "error: the consumer's logs have it (a consumer with eventcraft.batch dead_letter=True "
    "sends such messages here itself, with the error)"
)
STREAM_BATCH_KEYS: Final = ("DDBStreamBatchInfo", "KinesisBatchInfo")
NO_EVENT: Final = "carries no EventBridge event: redrive it to a queue instead"


# --- reading a message (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class Described:
    """What a DLQ message carries: the event (if any) and why it failed."""

    error: str
    error_message: str | None
    event: Mapping[str, Any] | None
    detail_type: str
    source: str
    # A Lambda destination record: the original message is the payload inside it.
    wrapped: bool = False

    def detail_value(self, key: str) -> str | None:
        """The event's `detail.<key>` as a string, or None."""
        detail = (self.event or {}).get("detail")
        return str(detail[key]) if isinstance(detail, Mapping) and key in detail else None

    @property
    def event_id(self) -> str | None:
        return self.detail_value("eventId")


def _attribute(attributes: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, Mapping) and value.get("StringValue"):
            return str(value["StringValue"])
    return None


def _is_event(payload: Any) -> bool:
    return isinstance(payload, Mapping) and "detail-type" in payload and "detail" in payload


def describe(body: str, message_attributes: Mapping[str, Any]) -> Described:
    """Read a DLQ message's body and message attributes: its event and its error."""
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
    if _attribute(attributes, "SOURCE_QUEUE_ARN"):
        return DlqMessage(raw, "consumer", described, **common)
    rule_arn = _attribute(attributes, "RULE_ARN")
    target_arn = _attribute(attributes, "TARGET_ARN")
    if rule_arn or target_arn or _attribute(attributes, "ERROR_CODE"):
        return DlqMessage(
            raw, "rule-target", described, rule_arn=rule_arn, target_arn=target_arn, **common
        )
    if _attribute(attributes, "ErrorCode") or _attribute(attributes, "RequestID"):
        return DlqMessage(raw, "lambda-dlq", described, **common)
    if described.error_message is None:
        described = replace(described, error_message=NO_ERROR_RECORDED)
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


# --- plans: where a message goes back -------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    action: Action
    target: str | None = None
    reason: str | None = None  # why not moved (action "none"), or why resolved


# How to recover what a stream failure record points at; {example}: ", e.g. ..." or "".
STREAM_RECOVERY: Final = (
    "Fix the function, then reprocess those records while the stream still has them "
    "(DynamoDB Streams keep 24 h; Kinesis its retention){example}; delete the record by "
    "hand once handled"
)


def stream_failure_plan(message: DlqMessage, *, example: str = "") -> Plan:
    """A stream failure record stays: `example` (", e.g. ...") says how to reprocess."""
    return Plan(
        "none",
        reason=(
            f"a stream failure record is a pointer, not the data: {message.pointer()}. "
            + STREAM_RECOVERY.format(example=example)
        ),
    )


def to_queue_or_bus(message: DlqMessage, action: Literal["queue", "bus"], target: str) -> Plan:
    """Every movable message to one queue (URL) or one bus (name): a stream failure
    record stays, and only EventBridge events go to a bus."""
    if message.kind == "stream-failure":
        return stream_failure_plan(message)
    if action == "bus" and message.described.event is None:
        return Plan("none", reason=NO_EVENT)
    return Plan(action, target)


# --- SQS and Lambda adapters -----------------------------------------------------------------


class DeadLetterQueue:
    """The DLQ at `url`: messages received stay hidden `visibility` seconds (longer than
    handling one receive batch takes) unless released."""

    def __init__(self, sqs: SQSClient, url: str, *, visibility: int) -> None:
        self.sqs = sqs
        self.url = url
        self.visibility = visibility

    def receive(self, count: int) -> list[MessageTypeDef]:
        return self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, count)),
            VisibilityTimeout=self.visibility,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def release(self, messages: Sequence[MessageTypeDef]) -> list[str]:
        """Make messages visible again now; the ids it could not (visible again once
        their visibility timeout ends)."""
        failed: list[str] = []
        for message in messages:
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            except Exception:  # best effort: visible again after the timeout
                failed.append(message["MessageId"])
        return failed

    def delete(self, message: MessageTypeDef) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def approximate_count(self) -> int | None:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
        ).get("Attributes", {})
        value = attributes.get("ApproximateNumberOfMessages")
        return int(value) if value is not None else None


def send_to_queue(sqs: SQSClient, queue_url: str, message: DlqMessage) -> None:
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
    sqs.send_message(**kwargs)


def invoke_again(lambda_client: LambdaClient, function_arn: str, message: DlqMessage) -> None:
    """Invoke the function of a destination record again, asynchronously, with its
    original payload."""
    response = lambda_client.invoke(
        FunctionName=function_arn,
        InvocationType="Event",
        Payload=json.dumps(message.payload).encode(),
    )
    if response.get("StatusCode") != 202:
        raise RuntimeError(f"Invoke answered {response.get('StatusCode')}, not 202 (queued)")


def failure_reason(exc: BaseException) -> str:
    """`Code: message` of an AWS error, `Type: message` of any other."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and isinstance(response.get("Error"), Mapping):
        error = response["Error"]
        code = error.get("Code") or type(exc).__name__
        return f"{code}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


# --- use cases -------------------------------------------------------------------------------


def examine(queue: DeadLetterQueue, limit: int) -> tuple[list[DlqMessage], list[str]]:
    """Read up to `limit` messages, leaving every one in the DLQ (visible again at the
    end); the messages and the ids that could not be made visible at once."""
    messages: list[DlqMessage] = []
    held: list[MessageTypeDef] = []
    seen: set[str] = set()
    not_released: list[str] = []
    try:
        while len(messages) < limit:
            batch = queue.receive(limit - len(messages))
            if not batch:
                break
            held.extend(batch)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for raw in fresh:
                seen.add(raw["MessageId"])
                messages.append(read(raw))
    finally:
        not_released = queue.release(held)
    return messages, not_released


@dataclass
class Outcome:
    message: DlqMessage
    plan: Plan
    status: Status
    reason: str | None = None


@dataclass
class RedriveRun:
    """What a redrive did: one outcome per message examined, the ids of messages left
    because they carry what the run already moved, and those not made visible again."""

    outcomes: list[Outcome] = field(default_factory=list)
    arrived: list[str] = field(default_factory=list)
    not_released: list[str] = field(default_factory=list)


class _Redrive:
    def __init__(
        self,
        queue: DeadLetterQueue,
        planner: Callable[[DlqMessage], Plan],
        *,
        publisher: Publisher | None,
        lambda_client: LambdaClient | None,
        dry_run: bool,
    ) -> None:
        self.queue = queue
        self.planner = planner
        self.publisher = publisher
        self.lambda_client = lambda_client
        self.dry_run = dry_run
        self.run = RedriveRun()
        self.keep: list[MessageTypeDef] = []  # received, not deleted: made visible at the end
        self.moved: set[str] = set()  # fingerprints of what was sent

    def _delete(self, message: DlqMessage, plan: Plan) -> None:
        self.moved.add(fingerprint(message))
        try:
            self.queue.delete(message.raw)
        except Exception as exc:
            # Moved, but still in the DLQ: a later redrive sends it again (consumers
            # deduplicate on eventId); never deleted before it was moved.
            self.run.outcomes.append(
                Outcome(message, plan, "moved-not-deleted", failure_reason(exc))
            )
            return
        self.run.outcomes.append(Outcome(message, plan, "moved"))

    def _resolve(self, message: DlqMessage, plan: Plan) -> None:
        """Delete a message whose content was recovered another way (kept if it cannot)."""
        if self.dry_run:
            self.keep.append(message.raw)
            self.run.outcomes.append(Outcome(message, plan, "would-resolve", plan.reason))
            return
        try:
            self.queue.delete(message.raw)
        except Exception as exc:  # stays in the DLQ, visible again: nothing lost
            self._not_moved(message, plan, failure_reason(exc))
            return
        self.run.outcomes.append(Outcome(message, plan, "resolved", plan.reason))

    def _not_moved(self, message: DlqMessage, plan: Plan, reason: str) -> None:
        self.keep.append(message.raw)
        status: Status = "would-not-move" if self.dry_run else "not-moved"
        self.run.outcomes.append(Outcome(message, plan, status, reason))

    def handle(self, batch: Sequence[DlqMessage]) -> None:
        to_bus: list[tuple[DlqMessage, Plan, PutEventsRequestEntryTypeDef]] = []
        for message in batch:
            chosen = self.planner(message)
            if chosen.action == "none":
                self._not_moved(message, chosen, chosen.reason or "not movable")
                continue
            if chosen.action == "resolved":
                self._resolve(message, chosen)
                continue
            if self.dry_run:
                self.keep.append(message.raw)
                self.run.outcomes.append(Outcome(message, chosen, "would-move"))
                continue
            if chosen.action == "bus":
                event = message.described.event
                assert event is not None  # a plan sends only events to the bus
                to_bus.append((message, chosen, bus_entry(event)))
                continue
            try:
                if chosen.action == "queue":
                    send_to_queue(self.queue.sqs, str(chosen.target), message)
                else:
                    if self.lambda_client is None:
                        raise ValueError("no Lambda client to invoke the function again")
                    invoke_again(self.lambda_client, str(chosen.target), message)
            except Exception as exc:  # any failure: reported, the message stays
                self._not_moved(message, chosen, failure_reason(exc))
                continue
            self._delete(message, chosen)
        if to_bus:
            self._put(to_bus)

    def _put(self, items: Sequence[tuple[DlqMessage, Plan, PutEventsRequestEntryTypeDef]]) -> None:
        if self.publisher is None:
            raise ValueError("a plan sends to the bus, but no publisher was given")
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
    queue: DeadLetterQueue,
    limit: int,
    planner: Callable[[DlqMessage], Plan],
    *,
    publisher: Publisher | None = None,
    lambda_client: LambdaClient | None = None,
    dry_run: bool = False,
) -> RedriveRun:
    """Move up to `limit` messages where `planner` says (see the module doc).

    publisher: puts the events planned for the bus; lambda_client: invokes the functions
    planned for; dry_run: plan only, move nothing.
    """
    redriving = _Redrive(
        queue, planner, publisher=publisher, lambda_client=lambda_client, dry_run=dry_run
    )
    seen: set[str] = set()
    examined = 0
    # A message like one this run already moved (same event, or same body) is most likely
    # that one failing again (its target is still broken): it is left for the next run.
    # Compared by content, not by SentTimestamp: the client's clock and SQS's may disagree.
    try:
        while examined < limit:
            raws = queue.receive(limit - examined)
            if not raws:
                break
            fresh = [r for r in raws if r["MessageId"] not in seen]
            redriving.keep.extend(r for r in raws if r["MessageId"] in seen)
            if not fresh:
                break
            seen.update(r["MessageId"] for r in fresh)
            messages = [read(r) for r in fresh]
            again = {m.message_id for m in messages if fingerprint(m) in redriving.moved}
            redriving.run.arrived += sorted(again)
            redriving.keep.extend(m.raw for m in messages if m.message_id in again)
            messages = [m for m in messages if m.message_id not in again]
            examined += len(messages)
            redriving.handle(messages)
    finally:
        redriving.run.not_released = queue.release(redriving.keep)
    return redriving.run
