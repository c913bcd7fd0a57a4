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
  sequence numbers, batch size, stream ARN}. A POINTER, not the records: never moved;
  inspect and redrive say what it points at and how to recover. A pointer into the
  outbox table's stream (the relay gave up on those rows, e.g. during an EventBridge
  outage) is recovered by republishing the rows, which stay in the table unpublished:
  the outbox sweeper does it on its schedule, `ops outbox republish` at once; once no
  outbox row is unpublished, redrive deletes the pointer (resolved).
- `consumer`: a work queue's message its consumer dead-lettered itself, with the error
  (attributes ERROR_CODE, ERROR_MESSAGE, SOURCE_QUEUE_ARN). Back: to its source queue,
  as `message`.
- `message`: anything else, e.g. a work queue's message redriven by SQS after
  maxReceiveCount (SQS records no error; the error message says so). Back: to its source
  queue (the outputs' `source`, else SQS ListDeadLetterSourceQueues: the queues whose
  redrive policy names this DLQ).

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

Reading, planning and moving the messages: `eventcraft.dlq` (shared with the DLQ processor
function); bus puts go through `eventcraft.publisher.Publisher` (FailedEntryCount checked,
failed entries retried, never dropped silently).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from eventcraft import dlq as dlqs
from eventcraft import outbox
from eventcraft.dlq import DeadLetterQueue, DlqMessage, Outcome, Plan
from eventcraft.publisher import Publisher
from ops.aws import Clients, describe_aws_error, error_code
from ops.errors import EXIT_FAILED, UsageError
from ops.outputs import NamedDlq, StackOutputs
from ops.render import counts, duration, fields, iso, table
from ops.result import Result

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

DEFAULT_MAX: Final = 100
MAX_MAX: Final = 10_000
MAX_SAMPLES: Final = 10
# Seconds a message read by this run stays hidden from other readers: longer than a run
# takes to handle one receive batch. Messages not moved are made visible at the end.
VISIBILITY_TIMEOUT: Final = 300
STREAM_REPROCESS_EXAMPLE: Final = (
    ", e.g. for the history projection rebuild the read model from the event store"
)
OUTBOX_RECOVERY: Final = (
    "the outbox sweeper republishes them within minutes once EventBridge takes events "
    "again; to do it now: `python -m ops ... outbox republish` (`outbox list` shows them), "
    "then delete this message"
)
OUTBOX_RESOLVED: Final = (
    "no outbox row is unpublished: the rows this pointer names were republished since "
    "(by the sweeper or `outbox republish`); the pointer is deleted"
)
NATIVE_MOVE_NOTE: Final = (
    "ops moves messages one by one (receive, send, delete); on AWS a work queue's DLQ "
    "can also go back to its source with SQS StartMessageMoveTask (console: Start DLQ "
    "redrive), which moto does not implement"
)
AGE_METRIC_WINDOW_SECONDS: Final = 900


# --- reading a message (pure) -------------------------------------------------------------


def _stream_table(stream_arn: str) -> str | None:
    """The table of a DynamoDB stream ARN (`...:table/<name>/stream/<label>`)."""
    _, found, rest = stream_arn.partition(":table/")
    return rest.split("/stream/", 1)[0] if found else None


def _points_into(message: DlqMessage, table_name: str | None) -> bool:
    """Whether a stream failure record points into the stream of table `table_name`."""
    stream = str((message.stream_batch or {}).get("streamArn") or "")
    return table_name is not None and _stream_table(stream) == table_name


def stream_pointer(message: DlqMessage, outbox_table: str | None = None) -> tuple[str, str]:
    """What a stream failure record holds and how to recover, in words."""
    if _points_into(message, outbox_table):
        holds = (
            f"a pointer to {(message.stream_batch or {}).get('batchSize')} outbox rows the "
            f"relay could not publish ({message.pointer()}); the rows stay in table "
            f"{outbox_table}, unpublished"
        )
        return holds, OUTBOX_RECOVERY
    holds = f"a pointer, not the data: {message.pointer()}"
    return holds, dlqs.STREAM_RECOVERY.format(example=STREAM_REPROCESS_EXAMPLE)


def sample(message: DlqMessage, outbox_table: str | None = None) -> dict[str, Any]:
    """What `inspect` shows of one message."""
    d = message.described
    result: dict[str, Any] = {
        "messageId": message.message_id,
        "kind": message.kind,
        "sentAt": iso(message.sent_at) if message.sent_at else None,
        "receiveCount": message.receive_count,
        "error": d.error,
        "errorMessage": d.error_message,
        "detailType": d.detail_type if d.event else None,
        "source": d.source if d.event else None,
        "orderId": d.detail_value("orderId"),
        "eventId": d.event_id,
        "ruleArn": message.rule_arn,
        "targetArn": message.target_arn,
        "functionArn": message.function_arn,
    }
    if message.stream_batch is not None:
        result["streamBatch"] = dict(message.stream_batch)
        result["holds"], result["recover"] = stream_pointer(message, outbox_table)
    return result


# --- plans: where a message goes back -------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """Where `redrive` sends: `to` ("bus", a queue URL, or None: each message's source),
    the DLQ's source queues (for `message` kind), the bus name, and the outbox table (a
    stream pointer into it names the outbox's recovery)."""

    to: str | None
    source_queues: tuple[str, ...]
    bus: str | None
    outbox_table: str | None = None
    # Whether no outbox row is unpublished (None: not known): a relay's pointer is then
    # resolved, the rows it points at were republished.
    outbox_clear: bool | None = None


def plan(message: DlqMessage, where: Destination) -> Plan:  # noqa: PLR0911 (one per case)
    """Where `message` goes back (pure; see the module doc)."""
    if message.kind == "stream-failure":
        if _points_into(message, where.outbox_table):
            if where.outbox_clear:
                return Plan("resolved", reason=OUTBOX_RESOLVED)
            holds, recover = stream_pointer(message, where.outbox_table)
            return Plan("none", reason=f"{holds}. To recover: {recover}")
        return dlqs.stream_failure_plan(message, example=STREAM_REPROCESS_EXAMPLE)
    event = message.described.event
    if where.to == "bus":
        return dlqs.to_queue_or_bus(message, "bus", str(where.bus))
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
    if message.kind in ("rule-target", "lambda-dlq", "consumer") and event is not None:
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


class _Dlq(DeadLetterQueue):
    """A DLQ whose receive failures are described for the operator."""

    def receive(self, count: int) -> list[MessageTypeDef]:
        try:
            return super().receive(count)
        except (ClientError, BotoCoreError) as exc:
            raise describe_aws_error(exc, f"ReceiveMessage {self.url}") from exc


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


def _outbox_clear(clients: Clients, table_name: str) -> bool | None:
    """Whether the outbox has no unpublished row (None: it cannot be read)."""
    try:
        return next(outbox.unpublished(table_name, client=clients.dynamodb), None) is None
    except (ClientError, BotoCoreError):
        return None


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
    outbox_table: str | None = None

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
            self.samples.append(sample(message, self.outbox_table))

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
    summary = Summary(outbox_table=outputs.tables.get("outbox"))
    messages, not_released = dlqs.examine(
        _Dlq(clients.sqs, dlq.url, visibility=VISIBILITY_TIMEOUT), limit
    )
    for message in messages:
        summary.add(message)
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
    pointers = {(s["holds"].split(" (")[0], s["recover"]) for s in summary.samples if "holds" in s}
    for holds, recover in sorted(pointers):
        parts.append(f"stream pointers: {holds}\nto recover: {recover}")
    if not_released:
        parts.append(
            f"warning: {len(not_released)} message(s) could not be made visible at once; "
            f"they are visible again within {VISIBILITY_TIMEOUT}s"
        )
    else:
        parts.append("every message examined was left in the DLQ (visible again)")
    return Result(data, "\n\n".join(parts))


# --- dlq redrive ----------------------------------------------------------------------------


def _outcome(outcome: Outcome) -> dict[str, Any]:
    message = outcome.message
    return {
        "messageId": message.message_id,
        "kind": message.kind,
        "detailType": message.described.detail_type if message.described.event else None,
        "orderId": message.described.detail_value("orderId"),
        "action": outcome.plan.action,
        "target": outcome.plan.target,
        "status": outcome.status,
        "reason": outcome.reason,
    }


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
    outbox_table = outputs.tables.get("outbox")
    outbox_clear = (
        _outbox_clear(clients, outbox_table)
        if outbox_table and dlq.kind in ("stream-failure", None)
        else None
    )
    where = Destination(target, sources, bus, outbox_table, outbox_clear)
    publisher = Publisher(bus, client=clients.events, sleep=sleep) if bus else None
    run = dlqs.redrive(
        _Dlq(clients.sqs, dlq.url, visibility=VISIBILITY_TIMEOUT),
        limit,
        lambda message: plan(message, where),
        publisher=publisher,
        lambda_client=clients.lambda_ if target is None else None,  # a record's function
        dry_run=dry_run,
    )
    return _redrive_result(
        clients,
        dlq=dlq,
        where=where,
        outcomes=run.outcomes,
        dry_run=dry_run,
        not_released=run.not_released,
        arrived=run.arrived,
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
        "notMoved": [_outcome(o) for o in outcomes if o.status in ("not-moved", "would-not-move")],
        "movedNotDeleted": [_outcome(o) for o in outcomes if o.status == "moved-not-deleted"],
        "resolved": [_outcome(o) for o in outcomes if o.status in ("resolved", "would-resolve")],
        "byTarget": dict(by_target),
        "messages": [_outcome(o) for o in outcomes],
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
            "would resolve" if dry_run else "resolved": len(data["resolved"]),
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
    if data["resolved"]:
        parts.append(
            "\n".join(
                f"{o['messageId']}: {'would be ' if dry_run else ''}resolved: {o['reason']}"
                for o in data["resolved"]
            )
        )
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
