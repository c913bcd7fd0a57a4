"""SQS -> function: a poller per recorded event source mapping, with Lambda's semantics.

moto's own mapping invokes the function synchronously inside `SendMessage`, one batch
of whatever is there, ignoring batching windows, filters and partial failures. Here
each enabled mapping on a queue gets a poller that runs on the scheduler:

* it wakes when a message is added to the queue (moto's `Queue.add_message`, which
  also sees redrive moves into a DLQ), when a delayed or in-flight message becomes
  visible again (it reads the next `visible_at` / `delayed_until` from moto's queue,
  whose clock is the virtual one: `eventcraft_sandbox.clock`), and after a full batch;
* it receives up to `BatchSize` (default 10) messages with the function's execution
  role (ReceiveMessage, DeleteMessage and GetQueueAttributes, the permissions Lambda
  requires), waiting up to `MaximumBatchingWindowInSeconds` (default 0) of virtual time
  for a full batch; moto decides visibility, receive counts, FIFO group blocking (a
  group is blocked while a message of it is in flight) and moves a message to the DLQ
  on the receive after `ApproximateReceiveCount` reached `maxReceiveCount`;
* `FilterCriteria`: messages no filter matches are deleted without invoking (as
  Lambda does); a JSON body is matched as an object;
* it invokes the function synchronously with the Lambda SQS event (`Records` with
  messageId, receiptHandle, body, attributes incl. ApproximateReceiveCount,
  messageAttributes, md5OfBody, eventSource, eventSourceARN, awsRegion);
* success deletes the batch; an error leaves it all to reappear after the
  visibility timeout; with `ReportBatchItemFailures` only the messages not listed in
  `batchItemFailures` are deleted (a malformed response fails the whole batch).

Concurrency: without a `concurrency` fault, batches run one at a time (so
`ScalingConfig.MaximumConcurrency` is respected trivially). With `concurrency=N` on the
function (`delivery.concurrency`), a poll receives up to its free slots as separate
batches, all started together: N less the function's invocations in flight or about to
start, and at most `MaximumConcurrency` less the poller's own batches in flight. So the
poller never takes a batch it has no slot for, and a FIFO queue's batches overlap
across message groups only (SQS does not hand out a group with a message in flight). A
function's reserved concurrency is not the poller's to know, as in AWS: with less
reserved than N, the batches beyond it are throttled and come back after the
visibility timeout with a higher receive count (on to the DLQ after
`maxReceiveCount`), which is why `MaximumConcurrency` exists. With no slot free (taken
by invocations the poller did not start) it looks again `SLOT_WAIT_SECONDS` later.

Faults (`eventcraft_sandbox.faults`, TARGET `sqs` or the consuming function):

* `redeliver=P`: a message of a standard queue that the function handled is, with
  probability P, not deleted: a copy SQS kept survives, as a standard queue's
  at-least-once delivery allows, and comes back after the visibility timeout with the
  same `messageId`, body and attributes and an `ApproximateReceiveCount` one higher
  (or goes to the DLQ, if that count reached `maxReceiveCount`, as SQS would move
  it). A message comes back this way once at most. FIFO queues do not duplicate.
* `reorder=SECONDS`: each message added to a standard queue that a function consumes
  is held back (moto's `delayed_until`) by a seeded delay in [0, SECONDS) of virtual
  time, so later messages may overtake it (standard queues promise no order). FIFO
  queues keep their order.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from eventcraft_sandbox.clock import Handle, Patches
from eventcraft_sandbox.delivery.common import (
    Arn,
    DeliveryContext,
    MappingLike,
    moto_lock,
    short_name,
)
from eventcraft_sandbox.lambda_runtime import InvocationResult
from pulumi_eventcraft.event_pattern import CompiledPattern, compile_pattern

__all__ = ["SqsDelivery", "SqsPoller", "batch_item_failures", "sqs_record"]

RECEIVE_MAX = 10
# With every slot of its function taken by invocations it did not start (a Step
# Functions task, a synchronous Invoke), a poller looks again this much later.
SLOT_WAIT_SECONDS = 1.0


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event from a ReceiveMessage message."""
    attributes = {k: str(v) for k, v in (message.get("Attributes") or {}).items()}
    message_attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        entry: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType"),
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            binary = value["BinaryValue"]
            entry["binaryValue"] = (
                base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary
            )
        message_attributes[name] = entry
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _failure_entries(payload: Any) -> list[Any] | None:
    """The `batchItemFailures` of a response ([]: none), None if it is malformed."""
    if isinstance(payload, str) and payload:
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    if payload in (None, "", {}):
        return []
    if not isinstance(payload, dict):
        return None
    failures = payload.get("batchItemFailures")
    if failures is None:
        return []
    return failures if isinstance(failures, list) else None


def batch_item_failures(result: InvocationResult, identifiers: list[str]) -> set[str] | None:
    """The failed item ids of a `ReportBatchItemFailures` response, or None when the
    response makes the whole batch a failure, as Lambda judges it: not JSON, not an
    object, or an `itemIdentifier` that is empty, missing or not in the batch."""
    entries = _failure_entries(result.payload)
    if entries is None:
        return None
    failed: set[str] = set()
    for entry in entries:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in identifiers:
            return None
        failed.add(identifier)
    return failed


def matching_filters(filter_criteria: dict[str, Any] | None) -> list[CompiledPattern]:
    filters = (filter_criteria or {}).get("Filters") or []
    return [
        compile_pattern(str(f["Pattern"]), max_length=4096) for f in filters if f.get("Pattern")
    ]


def _for_matching(record: dict[str, Any]) -> dict[str, Any]:
    body = record.get("body")
    try:
        parsed = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        parsed = body
    return {**record, "body": parsed if isinstance(parsed, dict) else body}


@dataclass
class _Config:
    batch_size: int
    window: float
    report_failures: bool
    filters: list[CompiledPattern]


class SqsPoller:
    """Delivers one mapping's queue to its function (see the module docstring)."""

    def __init__(self, ctx: DeliveryContext, mapping: MappingLike) -> None:
        self.ctx = ctx
        self.mapping = mapping
        source = mapping.event_source_arn
        assert source is not None
        self.queue_arn = source
        arn = Arn.parse(source)
        self.queue_name = arn.resource
        self.account = arn.account
        self.region = arn.region
        self.function_arn = mapping.function_arn
        request = mapping.request
        self.config = _Config(
            batch_size=int(request.get("BatchSize") or 10),
            window=float(request.get("MaximumBatchingWindowInSeconds") or 0),
            report_failures="ReportBatchItemFailures"
            in (request.get("FunctionResponseTypes") or []),
            filters=matching_filters(request.get("FilterCriteria")),
        )
        scaling = request.get("ScalingConfig") or {}
        self.maximum_concurrency = int(scaling.get("MaximumConcurrency") or 0)
        self.name = f"sqs {short_name(source)} -> {short_name(self.function_arn)}"
        self.fifo = self.queue_name.endswith(".fifo")
        self._in_flight = 0  # batches started and not yet handled
        self._redelivered: set[str] = set()  # message ids already left for redelivery
        self._handle: Handle | None = None
        self._window_started: float | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    # -- scheduling ---------------------------------------------------------------

    def wake(self, at: float | None = None) -> None:
        """Poll at `at` (default: now), unless a poll is already due by then."""
        when = self.ctx.clock.now() if at is None else max(at, self.ctx.clock.now())
        with self._lock:
            handle = self._handle
            if handle is not None and not handle.cancelled and handle.due <= when:
                return
            if handle is not None:
                handle.cancel()
            self._handle = self.ctx.scheduler.call_at(when, self.name, self.poll)

    def _client_for(self) -> Any:
        if self._client is None:
            role = self.ctx.function_role(self.function_arn)
            self._client = self.ctx.role_client(
                role, "sqs", self.region, source_arn=self.function_arn
            )
        return self._client

    def _next_visible(self) -> float | None:
        """When the next in-flight or delayed message of the queue becomes visible."""
        from moto.sqs.models import sqs_backends

        now_ms = self.ctx.clock.now() * 1000
        with moto_lock():
            try:
                queue = sqs_backends[self.account][self.region].get_queue(self.queue_name)
            except Exception:  # the queue was deleted
                return None
            times = [
                max(float(m.visible_at or 0), float(m.delayed_until or 0))
                for m in list(queue._messages)
            ]
        future = [t for t in times if t >= now_ms]
        if not future:
            return None
        # moto's visibility test is strict (now > visible_at).
        return (min(future) + 1) / 1000.0

    # -- polling ------------------------------------------------------------------

    def poll(self) -> None:
        with self._lock:
            self._handle = None
        slots = self._free_slots()
        if slots <= 0:
            self._wait_for_slot()
            return
        sqs = self._client_for()
        url = self.ctx.queue_url(self.queue_arn)
        if self.config.window > 0 and self._wait_for_batch(sqs, url):
            return
        self._window_started = None
        received = False
        for _ in range(slots):
            messages = self._receive(sqs, url)
            if not messages:
                break
            received = True
            records = self._filtered(sqs, url, messages)
            if records:
                self._deliver(sqs, url, records)
        if not received:
            self._reschedule()
            return
        # Progress was made: poll again (more may be visible, or a FIFO group unblocked);
        # a poll that receives nothing waits for the next message to become visible.
        self.wake()

    def _free_slots(self) -> int:
        """How many batches this poll may start (module docstring)."""
        if self.ctx.concurrency_limit(self.function_arn) <= 0:
            return 1
        free = self.ctx.free_slots(self.function_arn)
        if self.maximum_concurrency:
            free = min(free, self.maximum_concurrency - self._in_flight)
        return free

    def _wait_for_slot(self) -> None:
        if self._in_flight or self.ctx.launches.pending(self.function_arn):
            self.wake()  # after this instant's launch, which frees them
        else:
            self.wake(self.ctx.clock.now() + SLOT_WAIT_SECONDS)

    def _receive(self, sqs: Any, url: str) -> list[dict[str, Any]]:
        """One batch: up to `BatchSize` messages (several receives of at most 10)."""
        messages: list[dict[str, Any]] = []
        while len(messages) < self.config.batch_size:
            response = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(RECEIVE_MAX, self.config.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            received = response.get("Messages") or []
            if not received:
                break
            messages.extend(received)
        return messages

    def _filtered(self, sqs: Any, url: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The batch's records that `FilterCriteria` let through (the others deleted)."""
        records = [sqs_record(m, self.queue_arn, self.region) for m in messages]
        if self.config.filters:
            kept = []
            for message, record in zip(messages, records, strict=True):
                candidate = _for_matching(record)
                if any(f.matches(candidate) for f in self.config.filters):
                    kept.append(record)
                else:
                    self._delete(sqs, url, message["ReceiptHandle"])
                    self.ctx.record(
                        "sqs.filtered",
                        short_name(self.queue_arn),
                        short_name(self.function_arn),
                        "deleted",
                        record["messageId"],
                    )
            records = kept
        return records

    def _wait_for_batch(self, sqs: Any, url: str) -> bool:
        """Within `MaximumBatchingWindowInSeconds`, whether to wait for a fuller batch
        (having scheduled the poll that ends the wait)."""
        now = self.ctx.clock.now()
        visible = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ].get("ApproximateNumberOfMessages", 0)
        )
        if visible >= self.config.batch_size:
            return False
        if self._window_started is None:
            if visible == 0:
                self._reschedule()
                return True
            self._window_started = now
        end = self._window_started + self.config.window
        if now < end:
            self.wake(end)
            return True
        return False

    def _deliver(self, sqs: Any, url: str, records: list[dict[str, Any]]) -> None:
        self._in_flight += 1
        self.ctx.start(
            self.function_arn,
            {"Records": records},
            lambda result: self._delivered(sqs, url, records, result),
        )

    def _delivered(
        self, sqs: Any, url: str, records: list[dict[str, Any]], result: InvocationResult
    ) -> None:
        self._in_flight -= 1
        ids = [r["messageId"] for r in records]
        source, target = short_name(self.queue_arn), short_name(self.function_arn)
        bodies = ",".join(
            r["body"] if len(r["body"]) <= 64 else r["body"][:61] + "..." for r in records
        )
        if result.refused:
            # Lambda did not run it: the batch comes back after its visibility timeout.
            self.ctx.record(
                "sqs.batch",
                source,
                target,
                "throttled",
                f"{len(records)} messages [{bodies}]: {result.error_type}",
            )
            return
        if result.error_type is not None:
            self.ctx.record(
                "sqs.batch",
                source,
                target,
                "failed",
                f"{len(records)} messages [{bodies}]: {result.error_type}",
            )
            return
        failed: set[str] | None = set()
        if self.config.report_failures:
            failed = batch_item_failures(result, ids)
        if failed is None:
            self.ctx.record(
                "sqs.batch",
                source,
                target,
                "failed",
                f"{len(records)} messages [{bodies}]: invalid batchItemFailures",
            )
            return
        for record in records:
            if record["messageId"] not in failed and not self._redeliver(record):
                self._delete(sqs, url, record["receiptHandle"])
        outcome = "partial" if failed else "ok"
        self.ctx.record(
            "sqs.batch",
            source,
            target,
            outcome,
            f"{len(records)} messages [{bodies}]" + (f", {len(failed)} failed" if failed else ""),
        )

    def _redeliver(self, record: dict[str, Any]) -> bool:
        """Whether the `redeliver` fault keeps this handled message for another
        delivery (see the module docstring); logged."""
        message_id = record["messageId"]
        if self.fifo or message_id in self._redelivered:
            return False
        if not self.ctx.redeliver(service="sqs", function_arn=self.function_arn):
            return False
        self._redelivered.add(message_id)
        self.ctx.record(
            "sqs.redeliver",
            short_name(self.queue_arn),
            short_name(self.function_arn),
            "kept",
            message_id,
        )
        return True

    def _delete(self, sqs: Any, url: str, receipt_handle: str) -> None:
        try:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt_handle)
        except ClientError as exc:
            self.ctx.record(
                "sqs.delete",
                short_name(self.queue_arn),
                short_name(self.function_arn),
                "failed",
                str(exc),
            )

    def _reschedule(self) -> None:
        when = self._next_visible()
        if when is not None:
            self.wake(when)


class SqsDelivery:
    """A poller per enabled SQS event source mapping; `install()` hooks moto's queues."""

    def __init__(self, ctx: DeliveryContext, mappings: list[MappingLike]) -> None:
        self.ctx = ctx
        self.pollers: list[SqsPoller] = [
            SqsPoller(ctx, m)
            for m in mappings
            if m.enabled and m.event_source_arn and Arn.parse(m.event_source_arn).service == "sqs"
        ]
        self._patches = Patches()

    def add_mapping(self, mapping: MappingLike) -> SqsPoller:
        """Start polling for a mapping recorded after `install()`."""
        poller = SqsPoller(self.ctx, mapping)
        self.pollers.append(poller)
        if self._patches:
            poller.wake()
        return poller

    def by_queue(self, queue_arn: str) -> list[SqsPoller]:
        return [p for p in self.pollers if p.queue_arn == queue_arn]

    def install(self) -> None:
        from moto.sqs import models as sqs_models

        delivery = self
        original = sqs_models.Queue.add_message

        def add_message(queue: Any, message: Any) -> None:
            delivery._hold_back(queue, message)
            original(queue, message)
            delivery._added(queue.queue_arn, message)

        self._patches.set(sqs_models.Queue, "add_message", add_message)
        for poller in self.pollers:
            poller.wake()

    def uninstall(self) -> None:
        self._patches.restore()

    def _hold_back(self, queue: Any, message: Any) -> None:
        """`reorder`: delay a message of a consumed standard queue (module docstring)."""
        if queue.fifo_queue:
            return
        for poller in self.by_queue(queue.queue_arn):
            delay = self.ctx.reorder_delay(service="sqs", function_arn=poller.function_arn)
            if delay > 0:
                now_ms = self.ctx.clock.now() * 1000
                message.delayed_until = max(float(message.delayed_until or 0), now_ms) + (
                    delay * 1000
                )
                return

    def _added(self, queue_arn: str, message: Any) -> None:
        pollers = self.by_queue(queue_arn)
        if not pollers:
            return
        delayed = float(getattr(message, "delayed_until", 0) or 0) / 1000.0
        at = delayed + 0.001 if delayed > self.ctx.clock.now() else None
        for poller in pollers:
            poller.wake(at)
