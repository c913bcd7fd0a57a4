"""DynamoDB stream / Kinesis -> function: a poller per shard of each recorded mapping.

moto's own mappings invoke synchronously inside the write, one record at a time,
ignoring batch size, filters, errors and destinations. Here each enabled mapping gets
a poller per shard, run on the scheduler and woken by the writes themselves (moto's
`StreamShard.add` and Kinesis `Stream.put_record`):

* it reads with the stream APIs (`dynamodbstreams` / `kinesis` GetShardIterator +
  GetRecords) with the function's execution role, from its checkpoint (the last
  sequence number done; initially `StartingPosition`: TRIM_HORIZON, LATEST, or
  AT_TIMESTAMP), up to `BatchSize` (default 100) records, waiting up to
  `MaximumBatchingWindowInSeconds` (default 0) of virtual time for a full batch;
* `FilterCriteria`: Lambda's filter semantics with the project's matcher: a pattern
  matches the record as Lambda sees it (`eventName`, `dynamodb.NewImage...`); for
  Kinesis, `data` is matched decoded (base64 JSON -> object). Records no filter matches
  are skipped (checkpointed, never delivered);
* records are delivered in order per shard; a batch is done when the function
  succeeds; with `ReportBatchItemFailures` the records before the first failed
  sequence number are done and the batch is retried from it (a malformed response
  fails the whole batch);
* a function error with `BisectBatchOnFunctionError` splits the batch in half and
  processes each half in order (splitting does not count as a retry, as AWS
  documents); otherwise the batch is retried (backoff 1, 2, 4 ... 60 s of virtual
  time) up to `MaximumRetryAttempts` (default -1: until the records expire);
* a record older than `MaximumRecordAgeInSeconds` (default -1: never, in the sandbox),
  or a batch whose retries are exhausted, is discarded: AWS's failure record goes to
  the `DestinationConfig.OnFailure` destination (SQS or SNS, with the function's role)
  and the shard moves on:

    {"requestContext": {"requestId", "functionArn", "condition":
                        "RetryAttemptsExhausted" | "RecordAgeExceeded",
                        "approximateInvokeCount"},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Unhandled"},
     "version": "1.0", "timestamp": "...Z",
     "DDBStreamBatchInfo" | "KinesisBatchInfo": {"shardId", "startSequenceNumber",
        "endSequenceNumber", "approximateArrivalOfFirstRecord",
        "approximateArrivalOfLastRecord", "batchSize", "streamArn"}}

The `redeliver=P` fault (`eventcraft_sandbox.faults`, TARGET `dynamodb`, `kinesis` or
the function): a batch the function handled is, with probability P, read again before
the shard moves on (as after a checkpoint Lambda did not save): the same records, same
sequence numbers, delivered once more at once; a batch is read again once at most.

Concurrency: without a `concurrency` fault the shards' batches run one at a time. With
`concurrency=N` on the function (`delivery.concurrency`), each shard's next batch is
started together with the others' due at the same instant, up to the function's free
slots (shards in parallel, a shard's own batches still one at a time and in order). A
batch Lambda did not run (throttled: the function's reserved concurrency or N reached)
is retried with the same backoff, without counting as a retry attempt (the records
still expire).

Approximations: `ParallelizationFactor` is 1; tumbling windows
(`TumblingWindowInSeconds`) are not computed; stream retention (24 h) is not applied.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eventcraft_sandbox.clock import Handle, Patches
from eventcraft_sandbox.delivery.common import Arn, DeliveryContext, MappingLike, short_name
from eventcraft_sandbox.delivery.sqs import batch_item_failures, matching_filters
from eventcraft_sandbox.lambda_runtime import InvocationResult
from pulumi_eventcraft.event_pattern import CompiledPattern

__all__ = ["ShardPoller", "StreamDelivery"]

MAX_RETRY_BACKOFF = 60.0
_READ_LIMIT = 1000


@dataclass
class _Record:
    sequence: str
    arrival: float
    record: dict[str, Any]


@dataclass
class _Batch:
    records: list[_Record]
    end_sequence: str  # the checkpoint once this batch is done (filtered records included)
    attempts: int = 0
    invocations: int = 0
    throttles: int = 0  # invocations Lambda refused (not attempts)
    last: InvocationResult | None = field(default=None)
    redelivered: bool = False  # read again by the `redeliver` fault


def _epoch(value: Any) -> float:
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _json_safe(value: Any) -> Any:
    """A boto3-parsed attribute value as Lambda's event carries it (bytes -> base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime.datetime):
        return int(_epoch(value))
    return value


class ShardPoller:
    """Delivers one shard of one mapping's stream to its function (module docstring)."""

    def __init__(
        self, ctx: DeliveryContext, mapping: MappingLike, stream_arn: str, shard_id: str
    ) -> None:
        self.ctx = ctx
        self.mapping = mapping
        self.stream_arn = stream_arn
        self.shard_id = shard_id
        arn = Arn.parse(stream_arn)
        self.kind = "dynamodb" if arn.service == "dynamodb" else "kinesis"
        self.region = arn.region
        self.function_arn = mapping.function_arn
        request = mapping.request
        self.batch_size = int(request.get("BatchSize") or 100)
        self.window = float(request.get("MaximumBatchingWindowInSeconds") or 0)
        self.report_failures = "ReportBatchItemFailures" in (
            request.get("FunctionResponseTypes") or []
        )
        self.bisect = bool(request.get("BisectBatchOnFunctionError"))
        retries = request.get("MaximumRetryAttempts")
        self.max_retries = -1 if retries is None else int(retries)
        age = request.get("MaximumRecordAgeInSeconds")
        self.max_age = -1 if age is None else int(age)
        self.destination: str | None = (
            (request.get("DestinationConfig") or {}).get("OnFailure") or {}
        ).get("Destination")
        self.filters: list[CompiledPattern] = matching_filters(request.get("FilterCriteria"))
        self.starting_position = str(request.get("StartingPosition") or "TRIM_HORIZON")
        self.starting_timestamp = request.get("StartingPositionTimestamp")
        self.name = f"{self.kind}-stream {short_name(stream_arn)}/{shard_id[-8:]} -> " + short_name(
            self.function_arn
        )
        self.checkpoint: str | None = None
        self.pending: list[_Batch] = []
        self._window_started: float | None = None
        self._handle: Handle | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._request_ids = itertools.count(1)
        self._in_flight = False  # a batch started and not yet handled

    # -- setup ----------------------------------------------------------------------

    def start(self) -> None:
        """Set the initial checkpoint from `StartingPosition`, then poll."""
        if self.starting_position in ("LATEST", "AT_TIMESTAMP"):
            cutoff = (
                _epoch(self.starting_timestamp)
                if self.starting_position == "AT_TIMESTAMP"
                else None
            )
            after: str | None = None
            while True:
                chunk = self._read(after, _READ_LIMIT)
                if not chunk:
                    break
                for record in chunk:
                    if cutoff is not None and record.arrival >= cutoff:
                        break
                    self.checkpoint = record.sequence
                else:
                    after = chunk[-1].sequence
                    continue
                break
        self.wake()

    def wake(self, at: float | None = None) -> None:
        when = self.ctx.clock.now() if at is None else max(at, self.ctx.clock.now())
        with self._lock:
            handle = self._handle
            if handle is not None and not handle.cancelled and handle.due <= when:
                return
            if handle is not None:
                handle.cancel()
            self._handle = self.ctx.scheduler.call_at(when, self.name, self.poll)

    # -- reading ------------------------------------------------------------------

    def _stream_client(self) -> Any:
        if self._client is None:
            role = self.ctx.function_role(self.function_arn)
            service = "dynamodbstreams" if self.kind == "dynamodb" else "kinesis"
            self._client = self.ctx.role_client(
                role, service, self.region, source_arn=self.function_arn
            )
        return self._client

    def _read(self, after: str | None, limit: int) -> list[_Record]:
        client = self._stream_client()
        if self.kind == "dynamodb":
            params: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": self.shard_id}
            if after is None:
                params["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
            iterator = client.get_shard_iterator(**params)["ShardIterator"]
            raw = client.get_records(ShardIterator=iterator, Limit=limit).get("Records", [])
            return [self._dynamodb_record(r) for r in raw]
        params = {"StreamARN": self.stream_arn, "ShardId": self.shard_id}
        if after is None:
            params["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        iterator = client.get_shard_iterator(**params)["ShardIterator"]
        raw = client.get_records(
            ShardIterator=iterator, Limit=limit, StreamARN=self.stream_arn
        ).get("Records", [])
        return [self._kinesis_record(r) for r in raw]

    def _dynamodb_record(self, raw: dict[str, Any]) -> _Record:
        record = _json_safe(raw)
        created = raw.get("dynamodb", {}).get("ApproximateCreationDateTime")
        record["awsRegion"] = self.region
        record["eventSourceARN"] = self.stream_arn
        return _Record(str(raw["dynamodb"]["SequenceNumber"]), _epoch(created), record)

    def _kinesis_record(self, raw: dict[str, Any]) -> _Record:
        data = raw.get("Data", b"")
        arrival = _epoch(raw.get("ApproximateArrivalTimestamp"))
        sequence = str(raw["SequenceNumber"])
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw.get("PartitionKey"),
                "sequenceNumber": sequence,
                "data": base64.b64encode(
                    data if isinstance(data, bytes) else str(data).encode()
                ).decode(),
                "approximateArrivalTimestamp": arrival,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{self.shard_id}:{sequence}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.ctx.function_role(self.function_arn) or "",
            "awsRegion": self.region,
            "eventSourceARN": self.stream_arn,
        }
        return _Record(sequence, arrival, record)

    def _matches(self, record: _Record) -> bool:
        if not self.filters:
            return True
        candidate = record.record
        if self.kind == "kinesis":
            kinesis = dict(candidate["kinesis"])
            with contextlib.suppress(ValueError):
                kinesis["data"] = json.loads(base64.b64decode(kinesis["data"]))
            candidate = {**candidate, "kinesis": kinesis, "data": kinesis["data"]}
        return any(f.matches(candidate) for f in self.filters)

    # -- polling ------------------------------------------------------------------

    def poll(self) -> None:
        with self._lock:
            self._handle = None
        if self._in_flight:
            return  # its batch's handling polls again
        now = self.ctx.clock.now()
        if not self.pending:
            chunk = self._read(self.checkpoint, self.batch_size)
            if not chunk:
                return
            if self.window > 0 and len(chunk) < self.batch_size:
                if self._window_started is None:
                    self._window_started = now
                    self.wake(now + self.window)
                    return
                if now < self._window_started + self.window:
                    self.wake(self._window_started + self.window)
                    return
            self._window_started = None
            kept = [r for r in chunk if self._matches(r)]
            for skipped in (r for r in chunk if r not in kept):
                self.ctx.record(
                    "stream.filtered",
                    short_name(self.stream_arn),
                    short_name(self.function_arn),
                    "skipped",
                    skipped.sequence,
                )
            if not kept:
                self.checkpoint = chunk[-1].sequence
                self.wake()
                return
            self.pending.append(_Batch(kept, chunk[-1].sequence))
        batch = self.pending[0]
        if self.max_age >= 0:
            expired = [r for r in batch.records if now - r.arrival > self.max_age]
            if expired:
                self._discard(expired, batch, "RecordAgeExceeded")
                batch.records = [r for r in batch.records if r not in expired]
                if not batch.records:
                    self._done(batch)
                    self.wake()
                    return
        self._invoke(batch)

    def _invoke(self, batch: _Batch) -> None:
        payload = {"Records": [r.record for r in batch.records]}
        self._in_flight = True
        self.ctx.start(self.function_arn, payload, lambda result: self._invoked(batch, result))

    def _invoked(self, batch: _Batch, result: InvocationResult) -> None:
        self._in_flight = False
        source, target = short_name(self.stream_arn), short_name(self.function_arn)
        span = f"{batch.records[0].sequence}..{batch.records[-1].sequence} ({len(batch.records)})"
        if result.refused:
            # Lambda did not run it: retried, without using up an attempt.
            batch.throttles += 1
            self.ctx.record("stream.batch", source, target, "throttled", span)
            delay = min(MAX_RETRY_BACKOFF, 2.0 ** (batch.throttles - 1))
            self.wake(self.ctx.clock.now() + delay)
            return
        batch.invocations += 1
        batch.last = result
        failed_from: int | None = None
        whole = result.error_type is not None
        if not whole and self.report_failures:
            failed_from = self._first_failure(result, batch)
            whole = failed_from == -1
        if not whole and failed_from is None:
            self.ctx.record("stream.batch", source, target, "ok", span)
            if not batch.redelivered and self.ctx.redeliver(
                service=self.kind, function_arn=self.function_arn
            ):
                # The checkpoint is not moved: the same records are read again.
                self.pending[0] = _Batch(batch.records, batch.end_sequence, redelivered=True)
                self.ctx.record("stream.batch", source, target, "redeliver", span)
            else:
                self._done(batch)
            self.wake()
            return
        if whole and self.bisect and len(batch.records) > 1:
            half = len(batch.records) // 2
            first = _Batch(batch.records[:half], batch.records[half - 1].sequence, batch.attempts)
            second = _Batch(batch.records[half:], batch.end_sequence, batch.attempts)
            self.pending[0:1] = [first, second]
            self.ctx.record(
                "stream.batch",
                source,
                target,
                "bisect",
                f"{span}: {result.error_type or 'batchItemFailures'}",
            )
            self.wake()
            return
        if failed_from is not None and failed_from > 0:
            # The records before the first failure are done: checkpoint before it.
            self.checkpoint = batch.records[failed_from - 1].sequence
            batch.records = batch.records[failed_from:]
        batch.attempts += 1
        reason = result.error_type or "partial batch failure"
        if self.max_retries >= 0 and batch.attempts > self.max_retries:
            self.ctx.record("stream.batch", source, target, "failed", f"{span}: {reason}")
            self._discard(batch.records, batch, "RetryAttemptsExhausted")
            self._done(batch)
            self.wake()
            return
        self.ctx.record("stream.batch", source, target, "retry", f"{span}: {reason}")
        delay = min(MAX_RETRY_BACKOFF, 2.0 ** (batch.attempts - 1))
        self.wake(self.ctx.clock.now() + delay)

    def _first_failure(self, result: InvocationResult, batch: _Batch) -> int | None:
        """Index of the first failed record; None: none failed; -1: the whole batch."""
        sequences = [r.sequence for r in batch.records]
        failed = batch_item_failures(result, sequences)
        if failed is None:
            return -1
        return min((sequences.index(s) for s in failed), default=None)

    def _done(self, batch: _Batch) -> None:
        self.checkpoint = batch.end_sequence
        if self.pending and self.pending[0] is batch:
            self.pending.pop(0)

    def _discard(self, records: list[_Record], batch: _Batch, condition: str) -> None:
        source, target = short_name(self.stream_arn), short_name(self.function_arn)
        detail = f"{records[0].sequence}..{records[-1].sequence} ({len(records)}): {condition}"
        if not self.destination:
            self.ctx.record("stream.discard", source, target, "dropped", detail)
            return
        self.ctx.record("stream.discard", source, target, "destination", detail)
        self.ctx.send_destination(
            self.destination,
            self._failure_record(records, batch, condition),
            role_arn=self.ctx.function_role(self.function_arn),
            function_arn=self.function_arn,
            success=False,
        )

    def _failure_record(
        self, records: list[_Record], batch: _Batch, condition: str
    ) -> dict[str, Any]:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if batch.last is not None and batch.last.error_type is not None:
            response["functionError"] = "Unhandled"
        info_key = "DDBStreamBatchInfo" if self.kind == "dynamodb" else "KinesisBatchInfo"
        return {
            "requestContext": {
                "requestId": f"{self.mapping.uuid}-{next(self._request_ids):06d}",
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.invocations,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": self.ctx.clock.iso_millis(),
            info_key: {
                "shardId": self.shard_id,
                "startSequenceNumber": records[0].sequence,
                "endSequenceNumber": records[-1].sequence,
                "approximateArrivalOfFirstRecord": self.ctx.clock.iso_millis(records[0].arrival),
                "approximateArrivalOfLastRecord": self.ctx.clock.iso_millis(records[-1].arrival),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }


class StreamDelivery:
    """Shard pollers for every enabled DynamoDB-stream and Kinesis mapping."""

    def __init__(self, ctx: DeliveryContext, mappings: list[MappingLike]) -> None:
        self.ctx = ctx
        self.mappings = [
            m
            for m in mappings
            if m.enabled
            and m.event_source_arn
            and Arn.parse(m.event_source_arn).service in ("dynamodb", "kinesis")
        ]
        self.pollers: list[ShardPoller] = []
        self._patches = Patches()

    def install(self) -> None:
        from moto.dynamodb.models import table as ddb_table
        from moto.kinesis import models as kinesis_models

        delivery = self
        original_add = ddb_table.StreamShard.add
        original_put = kinesis_models.Stream.put_record

        def add(shard: Any, old: Any, new: Any) -> None:
            original_add(shard, old, new)
            delivery._written(f"{shard.table.table_arn}/stream/", None)

        def put_record(
            stream: Any, partition_key: str, explicit_hash_key: str, data: str
        ) -> tuple[str, str]:
            sequence, shard_id = original_put(stream, partition_key, explicit_hash_key, data)
            delivery._written(stream.arn, shard_id)
            return sequence, shard_id

        self._patches.set(ddb_table.StreamShard, "add", add)
        self._patches.set(kinesis_models.Stream, "put_record", put_record)
        for mapping in self.mappings:
            for shard_id in self._shards(str(mapping.event_source_arn)):
                self._add_poller(mapping, shard_id)

    def uninstall(self) -> None:
        self._patches.restore()

    def add_mapping(self, mapping: MappingLike) -> list[ShardPoller]:
        """Start polling every shard for a mapping recorded after `install()`."""
        self.mappings.append(mapping)
        return [
            self._add_poller(mapping, shard)
            for shard in self._shards(str(mapping.event_source_arn))
        ]

    def _shards(self, stream_arn: str) -> list[str]:
        arn = Arn.parse(stream_arn)
        try:
            if arn.service == "dynamodb":
                described = self.ctx.admin("dynamodbstreams", arn.region).describe_stream(
                    StreamArn=stream_arn
                )["StreamDescription"]
                return [s["ShardId"] for s in described.get("Shards", [])]
            listed = self.ctx.admin("kinesis", arn.region).list_shards(StreamARN=stream_arn)
            return [s["ShardId"] for s in listed.get("Shards", [])]
        except ClientError as exc:
            self.ctx.record("stream.shards", short_name(stream_arn), "", "failed", str(exc))
            return []

    def _add_poller(
        self, mapping: MappingLike, shard_id: str, *, from_start: bool = False
    ) -> ShardPoller:
        poller = ShardPoller(self.ctx, mapping, str(mapping.event_source_arn), shard_id)
        self.pollers.append(poller)
        if from_start:
            # A shard born after the mapping: everything in it is new.
            poller.wake()
        else:
            poller.start()
        return poller

    def _poller_adder(self, mapping: MappingLike, shard_id: str) -> Callable[[], None]:
        def add() -> None:
            if all(p.shard_id != shard_id or p.mapping is not mapping for p in self.pollers):
                self._add_poller(mapping, shard_id, from_start=True)

        return add

    def _written(self, stream_prefix: str, shard_id: str | None) -> None:
        for mapping in self.mappings:
            source = str(mapping.event_source_arn)
            if not (source == stream_prefix or source.startswith(stream_prefix)):
                continue
            pollers = [p for p in self.pollers if p.mapping is mapping]
            if shard_id is not None and all(p.shard_id != shard_id for p in pollers):
                # A shard that appeared after install (resharding): poll it too. Its
                # discovery is an API call: defer it to the scheduler's thread.
                self.ctx.scheduler.call_soon(
                    f"stream-shard {short_name(source)}/{shard_id}",
                    self._poller_adder(mapping, shard_id),
                )
                continue
            for poller in pollers:
                if shard_id is None or poller.shard_id == shard_id:
                    poller.wake()
