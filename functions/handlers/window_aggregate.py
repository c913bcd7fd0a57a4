"""The order activity stream -> event-time tumbling windows of order activity.

Entry: `handler(event, context)`, a Kinesis event source mapping on the activity stream
(records: order events as EventBridge events or raw details, partitioned by customer;
ReportBatchItemFailures on).
Effect: each event is counted once, by eventId, in the window of its EVENT time
(`domain.windows`: key = detail-type[#currency], count and total amount) in WINDOWS_TABLE
(`eventcraft.windows` layout: windowKey S + windowStart N). Windows are WINDOW_SECONDS long;
an event up to ALLOWED_LATENESS_SECONDS behind the latest event time seen still updates
its window (a late update); a later one is not counted but reported: one
LateEventRejected message on LATE_EVENTS_QUEUE_URL (body `domain.windows.
late_event_rejected`, attributes ERROR_CODE / ERROR_MESSAGE, so `dlq_processor` can
inspect the queue), never silently dropped.

Idempotency: the window update is conditional on the event id not being in the window's
set yet (eventcraft.windows), so a redelivered record (Kinesis retries whole batches from
the failed record) changes nothing. A late report may be sent again when its batch is
retried (at least once; its eventId identifies it).

Failures: a record that is not an order event is reported by its sequence number (after
the mapping's retries it goes to the on-failure destination); a DynamoDB or SQS failure
fails the batch, which is retried.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from typing import Any, Final

from contracts import Event
from domain.windows import (
    ALLOWED_LATENESS_ENV,
    LATE_EVENT_REJECTED,
    WINDOW_SECONDS_ENV,
    late_event_rejected,
    tumbling_windows,
    window_event,
)
from eventcraft import clients
from eventcraft.envelopes import PoisonRecordError, from_kinesis, sequence_number
from eventcraft.settings import env
from eventcraft.windows import DynamoDBWindowStore, TumblingWindows, WindowAggregator

ACCESS: Final[dict[str, frozenset[str]]] = {
    # GetItem: the latest event time seen; UpdateItem: windows and that watermark.
    "WINDOWS_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:UpdateItem"}),
    "LATE_EVENTS_QUEUE_URL": frozenset({"sqs:SendMessage"}),
}
WINDOWS_TABLE_ENV: Final = "WINDOWS_TABLE"
LATE_EVENTS_QUEUE_ENV: Final = "LATE_EVENTS_QUEUE_URL"

logger = logging.getLogger(__name__)


@functools.cache
def _windows() -> TumblingWindows:
    return tumbling_windows(
        os.environ.get(WINDOW_SECONDS_ENV), os.environ.get(ALLOWED_LATENESS_ENV)
    )


@functools.cache
def _aggregator() -> WindowAggregator:
    return WindowAggregator(_windows(), DynamoDBWindowStore(env(WINDOWS_TABLE_ENV)))


def _report_late(report: dict[str, Any]) -> None:
    clients.client("sqs").send_message(
        QueueUrl=env(LATE_EVENTS_QUEUE_ENV),
        MessageBody=json.dumps(report),
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": LATE_EVENT_REJECTED},
            "ERROR_MESSAGE": {
                "DataType": "String",
                "StringValue": (
                    f"event time {report['eventTime']} is past its window "
                    f"[{report['windowStart']}, {report['windowEnd']}) and the allowed lateness"
                ),
            },
        },
    )


def handler(event: Mapping[str, Any], context: object) -> dict[str, list[dict[str, str]]]:
    aggregator = _aggregator()  # settings first: a misconfigured function fails the batch
    failures: list[str] = []
    received: list[tuple[str | None, Event]] = []
    for record in event.get("Records", []):
        try:
            received.append((sequence_number(record), from_kinesis(record)))
        except PoisonRecordError as exc:
            logger.error("%s", exc)
            failures.append(str(exc.record_id))
    result = aggregator.process(window_event(e) for _, e in received)
    if result.too_late:
        late_ids = {late.event_id for late in result.too_late}
        for sequence, late_event in received:
            if late_event.event_id in late_ids:
                late_ids.discard(late_event.event_id)  # one report per event
                _report_late(
                    late_event_rejected(
                        late_event, _windows(), result.watermark, sequence_number=sequence
                    )
                )
    for window in result.updated:
        logger.info(
            "window %s [%s, %s): count %d, total %s%s",
            window.key,
            window.start.isoformat(),
            window.end.isoformat(),
            window.count,
            window.total,
            " (late update)" if window.late else "",
        )
    logger.info(
        "%d window(s) updated, %d duplicate(s), %d too late, watermark %s",
        len(result.updated),
        len(result.duplicates),
        len(result.too_late),
        result.watermark.isoformat() if result.watermark else None,
    )
    # Only batchItemFailures: Lambda reads the response of a stream batch strictly.
    return {"batchItemFailures": [{"itemIdentifier": s} for s in failures]}
