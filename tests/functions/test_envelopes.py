"""Envelope parsing: every delivery path -> contract model; poison -> PoisonRecordError."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from boto3.dynamodb.types import TypeSerializer
from pydantic import ValidationError

from contracts import (
    OrderPlaced,
    PaymentFailed,
    S3ObjectCreated,
    UnknownEventVersionError,
    sample_detail,
    sample_event,
)
from eventcraft import envelopes
from eventcraft.contracts import utc_now
from eventcraft.envelopes import PoisonRecordError


def sqs_record(body: str, message_id: str = "m-1") -> dict[str, Any]:
    return {"messageId": message_id, "body": body, "eventSource": "aws:sqs"}


def dynamodb_record(image: dict[str, Any], seq: str = "100") -> dict[str, Any]:
    serializer = TypeSerializer()
    return {
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "NewImage": {k: serializer.serialize(v) for k, v in image.items()},
            "SequenceNumber": seq,
            "StreamViewType": "NEW_IMAGE",
        },
    }


def kinesis_record(payload: bytes, seq: str = "49590") -> dict[str, Any]:
    return {"kinesis": {"data": base64.b64encode(payload).decode(), "sequenceNumber": seq}}


def test_eventbridge_event() -> None:
    event = envelopes.from_eventbridge(sample_event("OrderPlaced"))
    assert isinstance(event, OrderPlaced)
    assert event.to_detail() == sample_detail("OrderPlaced")


def test_eventbridge_event_with_an_expected_model() -> None:
    event = envelopes.from_eventbridge(sample_event("PaymentFailed"), model=PaymentFailed)
    assert event.reason == "card declined"
    with pytest.raises(PoisonRecordError, match="expected detail-type 'PaymentFailed'"):
        envelopes.from_eventbridge(sample_event("OrderPlaced"), model=PaymentFailed)


def test_aws_event_with_its_model() -> None:
    s3_event = {
        "id": "e-1",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "k.jsonl", "size": 3}},
    }
    created = envelopes.from_eventbridge(s3_event, model=S3ObjectCreated)
    assert created.object.key == "k.jsonl"


def test_sqs_body_is_an_eventbridge_event_or_a_raw_detail() -> None:
    from_rule = envelopes.from_sqs(sqs_record(json.dumps(sample_event("OrderShipped"))))
    assert from_rule.DETAIL_TYPE == "OrderShipped"
    raw = sqs_record(json.dumps(sample_detail("OrderShipped")))
    assert envelopes.from_sqs(raw, detail_type="OrderShipped") == from_rule
    with pytest.raises(PoisonRecordError, match="no detail type was given"):
        envelopes.from_sqs(raw)


def test_powertools_record_classes_are_accepted() -> None:
    record = SQSRecord(sqs_record(json.dumps(sample_event("OrderCompleted"))))
    assert envelopes.from_sqs(record).DETAIL_TYPE == "OrderCompleted"


def test_old_versions_are_upcast_on_every_path() -> None:
    v1 = sample_detail("OrderPlaced")
    del v1["currency"]
    v1["version"] = "1"
    body = json.dumps({**sample_event("OrderPlaced"), "detail": v1})
    event = envelopes.from_sqs(sqs_record(body), model=OrderPlaced)
    assert (event.version, event.currency) == ("2", "USD")


def test_dynamodb_new_image_as_a_detail() -> None:
    # Numbers come back from DynamoDB as Decimal; the contract turns them into int.
    detail = json.loads(json.dumps(sample_detail("PaymentFailed")))
    record = dynamodb_record(detail)
    assert envelopes.new_image(record)["amountCents"].__class__.__name__ == "Decimal"
    event = envelopes.from_dynamodb(record, model=PaymentFailed)
    assert event.amount_cents == 7499


def test_dynamodb_outbox_row_is_read_as_its_event() -> None:
    placed = OrderPlaced.model_validate(sample_detail("OrderPlaced"))
    row = {
        "pk": f"outbox#{placed.event_id}",
        "detailType": "OrderPlaced",
        "detail": placed.to_json(),
        "createdAt": utc_now().isoformat(),
        "published": False,
    }
    assert envelopes.from_dynamodb(dynamodb_record(row)) == placed


def test_dynamodb_record_without_new_image_is_poison() -> None:
    record = {"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "7", "Keys": {}}}
    assert envelopes.new_image(record) is None
    with pytest.raises(PoisonRecordError, match="no NewImage") as caught:
        envelopes.from_dynamodb(record, model=PaymentFailed)
    assert caught.value.record_id == "7"


def test_kinesis_base64_json() -> None:
    record = kinesis_record(json.dumps(sample_event("CheckCompleted")).encode())
    assert envelopes.from_kinesis(record).DETAIL_TYPE == "CheckCompleted"
    assert envelopes.sequence_number(record) == "49590"
    raw = kinesis_record(json.dumps(sample_detail("CheckCompleted")).encode())
    assert envelopes.from_kinesis(raw, detail_type="CheckCompleted").DETAIL_TYPE == "CheckCompleted"


def test_invalid_detail_is_poison_carrying_the_validation_error() -> None:
    event = sample_event("OrderPlaced")
    event["detail"]["items"] = []
    with pytest.raises(PoisonRecordError) as caught:
        envelopes.from_sqs(sqs_record(json.dumps(event), message_id="m-42"))
    poison = caught.value
    assert poison.kind == "sqs"
    assert poison.record_id == "m-42"
    assert isinstance(poison.validation_error, ValidationError)
    assert poison.validation_error.errors()[0]["loc"] == ("items",)
    assert "items:" in str(poison)
    assert "DLQ" in str(poison)  # says what happens and what to do


@pytest.mark.parametrize(
    ("record", "kind", "reason"),
    [
        (sqs_record("{not json"), "sqs", "not JSON"),
        (sqs_record("[1, 2]"), "sqs", "no detail type was given"),
        (kinesis_record(b"\xff\xfe"), "kinesis", "not JSON"),
        ({"kinesis": {"data": "***", "sequenceNumber": "1"}}, "kinesis", "not base64"),
        ({"id": "e-1", "detail": {}}, "eventbridge", "no 'detail-type'"),
    ],
)
def test_malformed_payloads_are_poison(record: dict[str, Any], kind: str, reason: str) -> None:
    with pytest.raises(PoisonRecordError, match=reason) as caught:
        envelopes.parse_record(record, kind)  # type: ignore[arg-type]
    assert caught.value.validation_error is None


def test_unknown_version_is_poison_with_its_cause() -> None:
    event = sample_event("OrderPlaced")
    event["detail"]["version"] = "9"
    with pytest.raises(PoisonRecordError) as caught:
        envelopes.from_eventbridge(event)
    assert isinstance(caught.value.cause, UnknownEventVersionError)
    assert caught.value.record_id == event["id"]
