"""Partial batch responses for SQS, DynamoDB Streams and Kinesis, over Powertools.

    def handler(event, context):
        return batch.process_batch(event, context, record_handler, kind="sqs")

Each record goes to `record_handler(record)` (a Powertools data class: SQSRecord,
DynamoDBRecord, KinesisStreamRecord; `eventcraft.envelopes` turns it into a contract
model). A record whose handler raises, e.g. PoisonRecordError, is reported in
`batchItemFailures` and the others succeed; the event source mapping must have
ReportBatchItemFailures on (FunctionResponseTypes) or the whole batch is retried.
If every record fails, Powertools raises BatchProcessingError so the invocation fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext

Kind = Literal["sqs", "dynamodb", "kinesis"]

EVENT_TYPES: Final[Mapping[str, EventType]] = {
    "sqs": EventType.SQS,
    "dynamodb": EventType.DynamoDBStreams,
    "kinesis": EventType.KinesisDataStreams,
}

logger = logging.getLogger(__name__)


def is_fifo(event: Mapping[str, Any]) -> bool:
    """Whether an SQS event comes from a FIFO queue (its ARN ends in .fifo)."""
    records = event.get("Records") or [{}]
    return str(records[0].get("eventSourceARN", "")).endswith(".fifo")


def processor(
    kind: Kind,
    *,
    fifo: bool = False,
    skip_group_on_error: bool = True,
    record_logger: logging.Logger | None = logger,
) -> BatchProcessor:
    """A Powertools processor for `kind`.

    fifo: SQS FIFO (SqsFifoPartialProcessor). With skip_group_on_error=True (default),
        after a failure only the later messages of the SAME message group are failed
        unprocessed (order is per group, other groups go on); with False, Powertools' own
        default, every message after the first failure is failed unprocessed.
    record_logger: logs each failed record with its traceback (None: don't).
    """
    if kind not in EVENT_TYPES:
        raise ValueError(f"kind must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    if fifo:
        if kind != "sqs":
            raise ValueError("fifo=True is for SQS FIFO queues only (kind='sqs')")
        return SqsFifoPartialProcessor(
            skip_group_on_error=skip_group_on_error, logger=record_logger
        )
    return BatchProcessor(EVENT_TYPES[kind], logger=record_logger)


def process_batch(
    event: Mapping[str, Any],
    context: LambdaContext | None,
    record_handler: Callable[..., Any],
    kind: Kind = "sqs",
    *,
    fifo: bool | None = None,
    skip_group_on_error: bool = True,
    idempotency_config: IdempotencyConfig | None = None,
) -> PartialItemFailureResponse:
    """Run `record_handler` on each record of a Lambda batch event; return the partial
    batch response ({"batchItemFailures": [{"itemIdentifier": ...}, ...]}).

    fifo: default detected from the SQS queue ARN.
    idempotency_config: registered with `context` first, so the idempotent functions the
        records call can expire their in-progress lock when this invocation times out.
    A record handler with a `lambda_context` parameter receives the context.
    """
    if idempotency_config is not None and context is not None:
        idempotency_config.register_lambda_context(context)
    if fifo is None:
        fifo = kind == "sqs" and is_fifo(event)
    chosen = processor(kind, fifo=fifo, skip_group_on_error=skip_group_on_error)
    return process_partial_response(
        event=dict(event), record_handler=record_handler, processor=chosen, context=context
    )
