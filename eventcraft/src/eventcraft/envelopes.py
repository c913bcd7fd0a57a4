"""Records of every delivery path -> contract models.

EventBridge events, SQS records (body = an EventBridge event, or a raw detail), DynamoDB
stream records (NewImage), Kinesis records (base64 JSON). Each function accepts the raw
dict of the Lambda event or the matching Powertools data class (SQSRecord, ...).

A record that can never be parsed raises PoisonRecordError: the batch layer reports that
record (and only it) as failed, so after the source's retries it lands in the DLQ.

`dispatch` is the entry of a consumer wired either way: one EventBridge event (rule ->
function) or an SQS batch of them (rule -> queue -> function).

Contract models come from `registry=` (an `eventcraft.contracts.Registry`), by default the one
the application set with `eventcraft.contracts.set_default_registry` (RegistryNotSetError if none).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from pydantic import BaseModel, ValidationError

from eventcraft.contracts import RECEIVED, ContractError, Event, Registry, default_registry
from eventcraft.records import new_image, sequence_number, unwrap

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
Kind = Literal["eventbridge", "sqs", "dynamodb", "kinesis"]


class PoisonRecordError(Exception):
    """A record that will never be processed successfully, whatever the number of retries.

    Attributes: `kind` (delivery path), `record_id` (SQS messageId, stream sequence number,
    EventBridge id), `reason`, `cause` (the ValidationError / ContractError / JSON error).
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        kind: Kind,
        record_id: str | None,
        reason: str,
        *,
        cause: BaseException | None = None,
    ) -> None:
        self.kind = kind
        self.record_id = record_id
        self.reason = reason
        self.cause = cause
        super().__init__(
            f"{kind} record {record_id or '<no id>'} is poison: {reason}. It is reported as a "
            "batch item failure (or dead-lettered at once, `dead_letter=True`); in the DLQ: "
            "fix the producer (or the contract), then redrive it."
        )

    @property
    def validation_error(self) -> ValidationError | None:
        """The pydantic error when the record broke its contract, else None."""
        return self.cause if isinstance(self.cause, ValidationError) else None


def _is_eventbridge_event(payload: Any) -> bool:
    return isinstance(payload, Mapping) and "detail-type" in payload and "detail" in payload


def _to_model(
    kind: Kind,
    record_id: str | None,
    detail_type: str | None,
    detail: Any,
    *,
    model: type[M] | None,
    registry: Registry | None,
) -> Any:
    """Validate `detail` as `model` (or the registered model of `detail_type`)."""
    if detail_type is None and model is None:
        raise PoisonRecordError(
            kind,
            record_id,
            "the payload is a raw detail and no detail type was given: pass "
            "detail_type= or model= for this source",
        )
    if not isinstance(detail, Mapping):
        raise PoisonRecordError(kind, record_id, f"detail is {type(detail).__name__}, not object")
    expected = getattr(model, "DETAIL_TYPE", None)
    if model is not None and detail_type is not None and expected not in (None, detail_type):
        raise PoisonRecordError(
            kind,
            record_id,
            f"expected detail-type {expected!r}, got {detail_type!r}: the rule or "
            "subscription routing it here is too broad",
        )
    try:
        if model is None:
            return _registry(registry).parse_detail(str(detail_type), detail)
        # Only an Event can be registered: any other model (e.g. AWS's own) needs no registry.
        if issubclass(model, Event) and _registry(registry).get(str(expected)) is model:
            # A registered contract: upcast older versions, require the event identity.
            return _registry(registry).parse_detail(str(expected), detail)
        return model.model_validate(detail, context=RECEIVED)
    except (ValidationError, ContractError) as exc:
        reason = f"{detail_type or expected} breaks its contract: {_summary(exc)}"
        raise PoisonRecordError(kind, record_id, reason, cause=exc) from exc


def _registry(registry: Registry | None) -> Registry:
    return default_registry() if registry is None else registry


def _summary(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()]
        return "; ".join(parts[:5]) + (f" (+{len(parts) - 5} more)" if len(parts) > 5 else "")
    return str(exc)


def _loads(kind: Kind, record_id: str | None, text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PoisonRecordError(kind, record_id, f"payload is not JSON ({exc})", cause=exc) from exc


def _from_payload(
    kind: Kind,
    record_id: str | None,
    payload: Any,
    detail_type: str | None,
    *,
    model: type[M] | None,
    registry: Registry | None,
) -> Any:
    if _is_eventbridge_event(payload):
        detail_type, payload = payload["detail-type"], payload["detail"]
    return _to_model(kind, record_id, detail_type, payload, model=model, registry=registry)


@overload
def from_eventbridge(
    event: Mapping[str, Any], *, model: type[M], registry: Registry | None = None
) -> M: ...
@overload
def from_eventbridge(
    event: Mapping[str, Any], *, model: None = None, registry: Registry | None = None
) -> Event: ...
def from_eventbridge(
    event: Mapping[str, Any], *, model: type[M] | None = None, registry: Registry | None = None
) -> M | Event:
    """An EventBridge event (as delivered to a Lambda target) -> its contract model."""
    raw = unwrap(event)
    record_id = raw.get("id")
    if not _is_eventbridge_event(raw):
        raise PoisonRecordError("eventbridge", record_id, "no 'detail-type' and 'detail' keys")
    return _from_payload("eventbridge", record_id, raw, None, model=model, registry=registry)


@overload
def from_sqs(
    record: Mapping[str, Any],
    *,
    model: type[M],
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> M: ...
@overload
def from_sqs(
    record: Mapping[str, Any],
    *,
    model: None = None,
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> Event: ...
def from_sqs(
    record: Mapping[str, Any],
    *,
    model: type[M] | None = None,
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> M | Event:
    """An SQS record whose body is an EventBridge event (rule -> queue) or a raw detail
    (then `detail_type` or `model` says which contract it is)."""
    raw = unwrap(record)
    record_id = raw.get("messageId")
    payload = _loads("sqs", record_id, raw.get("body", ""))
    return _from_payload("sqs", record_id, payload, detail_type, model=model, registry=registry)


@overload
def from_dynamodb(
    record: Mapping[str, Any],
    *,
    model: type[M],
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> M: ...
@overload
def from_dynamodb(
    record: Mapping[str, Any],
    *,
    model: None = None,
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> Event: ...
def from_dynamodb(
    record: Mapping[str, Any],
    *,
    model: type[M] | None = None,
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> M | Event:
    """A DynamoDB stream record -> contract model.

    An outbox row (attributes `detailType` and `detail` JSON) is read as the event it
    holds; any other image is read as the detail of `detail_type` / `model`.
    """
    record_id = sequence_number(record)
    image = new_image(record)
    if image is None:
        raise PoisonRecordError(
            "dynamodb",
            record_id,
            "record has no NewImage: filter REMOVE records out (eventName) and use a "
            "NEW_IMAGE or NEW_AND_OLD_IMAGES stream",
        )
    if isinstance(image.get("detail"), str) and isinstance(image.get("detailType"), str):
        detail = _loads("dynamodb", record_id, image["detail"])
        return _to_model(
            "dynamodb", record_id, image["detailType"], detail, model=model, registry=registry
        )
    return _to_model("dynamodb", record_id, detail_type, image, model=model, registry=registry)


@overload
def from_kinesis(
    record: Mapping[str, Any],
    *,
    model: type[M],
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> M: ...
@overload
def from_kinesis(
    record: Mapping[str, Any],
    *,
    model: None = None,
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> Event: ...
def from_kinesis(
    record: Mapping[str, Any],
    *,
    model: type[M] | None = None,
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> M | Event:
    """A Kinesis record (base64 JSON of an EventBridge event or a raw detail) -> model."""
    record_id = sequence_number(record)
    data = unwrap(record).get("kinesis", {}).get("data", "")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PoisonRecordError("kinesis", record_id, "data is not base64", cause=exc) from exc
    payload = _loads("kinesis", record_id, decoded)
    return _from_payload("kinesis", record_id, payload, detail_type, model=model, registry=registry)


def parse_record(
    record: Mapping[str, Any],
    kind: Kind,
    *,
    model: type[BaseModel] | None = None,
    detail_type: str | None = None,
    registry: Registry | None = None,
) -> BaseModel:
    """Dispatch on `kind` ("eventbridge", "sqs", "dynamodb", "kinesis")."""
    if kind == "eventbridge":
        return from_eventbridge(record, model=model, registry=registry)
    if kind == "sqs":
        return from_sqs(record, model=model, detail_type=detail_type, registry=registry)
    if kind == "dynamodb":
        return from_dynamodb(record, model=model, detail_type=detail_type, registry=registry)
    return from_kinesis(record, model=model, detail_type=detail_type, registry=registry)


@overload
def dispatch(
    event: Mapping[str, Any],
    context: Any,
    on_event: Callable[[M], R],
    *,
    model: type[M],
    registry: Registry | None = None,
    dead_letter: bool = False,
) -> PartialItemFailureResponse | R: ...
@overload
def dispatch(
    event: Mapping[str, Any],
    context: Any,
    on_event: Callable[[Event], R],
    *,
    model: None = None,
    registry: Registry | None = None,
    dead_letter: bool = False,
) -> PartialItemFailureResponse | R: ...
def dispatch(
    event: Mapping[str, Any],
    context: Any,
    on_event: Callable[[Any], R],
    *,
    model: type[M] | None = None,
    registry: Registry | None = None,
    dead_letter: bool = False,
) -> PartialItemFailureResponse | R:
    """Run `on_event` on what a Lambda invocation delivered, parsed as `model` (None: the
    registered model of its detail-type).

    An SQS batch ("Records": rule -> queue -> function): each record's event, and the
    partial batch response (a failed record, e.g. PoisonRecordError, is reported alone;
    ReportBatchItemFailures on; `dead_letter=True`: a record that will not succeed goes to
    the queue's DLQ with its error, `eventcraft.batch`). Otherwise one EventBridge event
    (rule -> function): on_event's result, or its exception.
    """
    if "Records" in event:
        from eventcraft import batch  # lazy: Powertools batch only for SQS deliveries

        def on_record(record: Mapping[str, Any]) -> R:
            return on_event(from_sqs(record, model=model, registry=registry))

        return batch.process_batch(event, context, on_record, kind="sqs", dead_letter=dead_letter)
    return on_event(from_eventbridge(event, model=model, registry=registry))
