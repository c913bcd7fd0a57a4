"""Partial batch responses for SQS, DynamoDB Streams and Kinesis, over Powertools.

    def handler(event, context):
        return batch.process_batch(event, context, record_handler, kind="sqs")

Each record goes to `record_handler(record)` (a Powertools data class: SQSRecord,
DynamoDBRecord, KinesisStreamRecord; `eventcraft.envelopes` turns it into a contract
model). A record whose handler raises, e.g. PoisonRecordError, is reported in
`batchItemFailures` and the others succeed; the event source mapping must have
ReportBatchItemFailures on (FunctionResponseTypes) or the whole batch is retried.
If every record fails, Powertools raises BatchProcessingError so the invocation fails.

SQS dead-lettering with the error (`dead_letter=True`): SQS moves a message that failed
`maxReceiveCount` times to its DLQ without saying why. With `dead_letter`, a failed SQS
record that will not succeed (its error is permanent: `retryable = False` on the
exception, a PoisonRecordError or a pydantic ValidationError; or this was its last
receive) is sent by the consumer itself to the DLQ of its queue's redrive policy, with
the attributes ERROR_CODE (an AWS error's code, else the exception's type), ERROR_MESSAGE
(its text, made
acceptable to SQS) and SOURCE_QUEUE_ARN, then counts as handled: a poison message is
dead-lettered at once, with its reason, instead of being received maxReceiveCount times.
The role needs `sqs:SendMessage` on that DLQ (and `sqs:GetQueueAttributes` on the source
queue, which every SQS event source mapping has); when the send fails, the record stays
failed and SQS's own redrive moves it later, as without the option.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import threading
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

# The attributes a dead-lettered message carries (the DLQ tools read them).
ERROR_CODE: Final = "ERROR_CODE"
ERROR_MESSAGE: Final = "ERROR_MESSAGE"
SOURCE_QUEUE_ARN: Final = "SOURCE_QUEUE_ARN"
MAX_ERROR_MESSAGE: Final = 1000  # characters of the error in ERROR_MESSAGE
MAX_MESSAGE_ATTRIBUTES: Final = 10  # SQS's limit per message


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
    dead_letter: bool = False,
) -> PartialItemFailureResponse:
    """Run `record_handler` on each record of a Lambda batch event; return the partial
    batch response ({"batchItemFailures": [{"itemIdentifier": ...}, ...]}).

    fifo: default detected from the SQS queue ARN.
    idempotency_config: registered with `context` first, so the idempotent functions the
        records call can expire their in-progress lock when this invocation times out.
    dead_letter: SQS only; a record that will not succeed goes to its queue's DLQ with
        its error (see the module doc). Default False.
    A record handler with a `lambda_context` parameter receives the context.
    """
    if idempotency_config is not None and context is not None:
        idempotency_config.register_lambda_context(context)
    if fifo is None:
        fifo = kind == "sqs" and is_fifo(event)
    if dead_letter and kind != "sqs":
        raise ValueError("dead_letter=True is for SQS batches only (kind='sqs')")
    handler = with_dead_letter(record_handler) if dead_letter else record_handler
    chosen = processor(kind, fifo=fifo, skip_group_on_error=skip_group_on_error)
    return process_partial_response(
        event=dict(event), record_handler=handler, processor=chosen, context=context
    )


# --- SQS dead-lettering with the error ---------------------------------------------------


def is_permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: `retryable = False` on the exception (a
    PoisonRecordError, a ContractError), or a pydantic ValidationError (the same input
    fails the same way)."""
    retryable = getattr(error, "retryable", None)
    if isinstance(retryable, bool):
        return not retryable
    from pydantic import ValidationError  # lazy: only on a failure

    return isinstance(error, ValidationError)


def queue_url(sqs: Any, arn: str) -> str:
    """The URL of the queue `arn` (arn:aws:sqs:<region>:<account>:<name>) on the client's
    endpoint, without sqs:GetQueueUrl."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return f"{sqs.meta.endpoint_url.rstrip('/')}/{parts[4]}/{parts[5]}"


class _RedrivePolicies:
    """Each source queue's (DLQ ARN, maxReceiveCount), read once per container."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str, int] | None] = {}

    def of(self, sqs: Any, source_arn: str) -> tuple[str, int] | None:
        with self._lock:
            if source_arn in self._known:
                return self._known[source_arn]
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url(sqs, source_arn), AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
        raw = attributes.get("RedrivePolicy")
        policy = json.loads(raw) if raw else None
        found = (
            (str(policy["deadLetterTargetArn"]), int(policy["maxReceiveCount"])) if policy else None
        )
        with self._lock:
            self._known[source_arn] = found
        return found

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


redrive_policies: Final = _RedrivePolicies()


def _attribute_for_send(value: Mapping[str, Any]) -> dict[str, Any] | None:
    """A record's message attribute (Lambda's shape) as SendMessage takes it."""
    data_type = str(value.get("dataType") or "String")
    if value.get("stringValue") is not None:
        return {"DataType": data_type, "StringValue": str(value["stringValue"])}
    if value.get("binaryValue") is not None:
        return {"DataType": data_type, "BinaryValue": base64.b64decode(value["binaryValue"])}
    return None


def error_code(error: BaseException) -> str:
    """An AWS error's code (e.g. AccessDeniedException), else the exception's type."""
    response = getattr(error, "response", None)
    details = response.get("Error") if isinstance(response, Mapping) else None
    code = details.get("Code") if isinstance(details, Mapping) else None
    return str(code) if code else type(error).__name__


def dead_letter_message(
    raw: Mapping[str, Any], error: BaseException, *, dlq_url: str
) -> dict[str, Any]:
    """The SendMessage arguments that put the SQS record `raw` in `dlq_url` with `error`."""
    from eventcraft.text import sqs_text  # lazy: only on a failure

    ours = {
        ERROR_CODE: {"DataType": "String", "StringValue": error_code(error)},
        ERROR_MESSAGE: {
            "DataType": "String",
            "StringValue": sqs_text(str(error) or type(error).__name__, MAX_ERROR_MESSAGE),
        },
        SOURCE_QUEUE_ARN: {"DataType": "String", "StringValue": str(raw["eventSourceARN"])},
    }
    attributes: dict[str, Any] = {}
    for name, value in (raw.get("messageAttributes") or {}).items():
        converted = _attribute_for_send(value) if isinstance(value, Mapping) else None
        if name not in ours and converted is not None:
            attributes[name] = converted
    kept = dict(list(attributes.items())[: MAX_MESSAGE_ATTRIBUTES - len(ours)])
    message: dict[str, Any] = {
        "QueueUrl": dlq_url,
        "MessageBody": raw.get("body", ""),
        "MessageAttributes": {**kept, **ours},
    }
    if dlq_url.endswith(".fifo"):
        system = raw.get("attributes") or {}
        message["MessageGroupId"] = str(system.get("MessageGroupId") or "dead-letter")
        # The message's own id: a repeated send of this dead-lettering is dropped.
        message["MessageDeduplicationId"] = str(raw["messageId"])[:128]
    return message


def dead_letter_record(record: Any, error: BaseException) -> bool:
    """Send the failed SQS `record` to its queue's DLQ with `error` if it will not
    succeed (see the module doc); whether it was sent (then it counts as handled)."""
    from eventcraft import clients
    from eventcraft.records import unwrap

    raw = unwrap(record)
    source = str(raw.get("eventSourceARN") or "")
    if not source:
        return False
    sqs = clients.client("sqs")
    try:
        policy = redrive_policies.of(sqs, source)
        if policy is None:
            return False  # no DLQ: SQS keeps it until its retention ends
        dlq_arn, max_receives = policy
        receives = int((raw.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        if not is_permanent(error) and receives < max_receives:
            return False  # a retry may succeed
        sqs.send_message(**dead_letter_message(raw, error, dlq_url=queue_url(sqs, dlq_arn)))
    except Exception:
        logger.exception(
            "SQS message %s could not be dead-lettered with its error: it stays failed "
            "(SQS moves it after maxReceiveCount receives, without the error). Grant the "
            "function sqs:SendMessage on the DLQ of %s.",
            raw.get("messageId"),
            source,
        )
        return False
    logger.warning(
        "SQS message %s dead-lettered with its error: %s: %s",
        raw.get("messageId"),
        type(error).__name__,
        error,
    )
    return True


def with_dead_letter(record_handler: Callable[..., Any]) -> Callable[..., Any]:
    """`record_handler`, dead-lettering the records it fails on for good (see
    `dead_letter_record`); keeps its `lambda_context` parameter if it has one."""

    def guarded(record: Any, **kwargs: Any) -> Any:
        try:
            return record_handler(record, **kwargs)
        except Exception as exc:
            if dead_letter_record(record, exc):
                return None
            raise

    if "lambda_context" in inspect.signature(record_handler).parameters:

        def with_context(record: Any, lambda_context: Any) -> Any:
            return guarded(record, lambda_context=lambda_context)

        return with_context

    def without_context(record: Any) -> Any:
        return guarded(record)

    return without_context
