"""Partial batch responses on moto: a poison record is reported, the others are processed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from contracts import OrderPlaced, sample_event
from eventcraft import batch, envelopes, idempotency, outbox
from eventcraft.idempotency import idempotent_function
from tests.functions.awsenv import (
    FakeContext,
    create_queue,
    create_table,
    kinesis_event,
    mocked,
    scan,
    sqs_event,
    stream_records,
)

ORDERS = "orders"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "idempotency")
    with mocked():
        create_table(ORDERS)
        create_table("idempotency", key="id")
        yield


def event_body(order_id: str, **detail: Any) -> str:
    event = sample_event("OrderPlaced", orderId=order_id, eventId=f"event-{order_id}")
    event["detail"].update(detail)
    return json.dumps(event)


POISON = event_body("order-poison", items=[])  # breaks the contract: no order lines


def record_order(record: Any) -> None:
    """The record handler of the tests: parse, then write the order."""
    placed = envelopes.from_sqs(record, model=OrderPlaced)
    boto3.client("dynamodb").put_item(
        TableName=ORDERS, Item={"pk": {"S": placed.order_id}, "event": {"S": placed.event_id}}
    )


def orders() -> list[str]:
    return sorted(item["pk"] for item in scan(ORDERS))


def failures(response: Any) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


@pytest.mark.usefixtures("aws")
def test_a_poison_message_is_reported_and_ends_in_the_dlq_while_the_rest_succeed() -> None:
    sqs = boto3.client("sqs")
    dlq = create_queue("orders-dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName="orders-in",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}),
        },
    )["QueueUrl"]
    for body in (event_body("order-1"), POISON, event_body("order-3")):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    event = sqs_event(queue)
    poison_id = next(r["messageId"] for r in event["Records"] if r["body"] == POISON)

    response = batch.process_batch(event, FakeContext(), record_order, kind="sqs")

    assert failures(response) == [poison_id]
    assert orders() == ["order-1", "order-3"]
    # What the event source mapping does with that answer: delete the successes only.
    for record in event["Records"]:
        if record["messageId"] != poison_id:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=record["receiptHandle"])
    assert sqs_event(queue)["Records"] == []  # maxReceiveCount reached: redriven...
    (dead,) = sqs_event(dlq)["Records"]  # ...to the DLQ, for a human and the redrive tool
    assert dead["body"] == POISON


@pytest.mark.usefixtures("aws")
def test_duplicate_delivery_in_a_batch_has_one_effect() -> None:
    config = idempotency.config(idempotency.CONTRACT_EVENT_ID)
    effects: list[str] = []

    @idempotent_function(
        data_keyword_argument="event", config=config, persistence_store=idempotency.persistence()
    )
    def reserve(event: OrderPlaced) -> dict[str, str]:
        effects.append(event.order_id)
        return {"reserved": event.order_id}

    def record_handler(record: Any) -> None:
        reserve(event=envelopes.from_sqs(record, model=OrderPlaced))

    queue = create_queue("orders-in")
    body = event_body("order-1")
    for _ in range(2):  # at-least-once delivery: the same event twice
        boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=body)
    context = FakeContext()

    response = batch.process_batch(
        sqs_event(queue), context, record_handler, idempotency_config=config
    )

    assert failures(response) == []
    assert effects == ["order-1"]
    assert config.lambda_context is context  # registered: in-progress locks can expire


def send_fifo(queue: str, messages: list[tuple[str, str]]) -> dict[str, str]:
    """Send (group, order id) messages; return order id -> messageId."""
    sqs = boto3.client("sqs")
    ids = {}
    for group, order_id in messages:
        body = POISON if order_id == "poison" else event_body(order_id)
        ids[order_id] = sqs.send_message(
            QueueUrl=queue, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=order_id
        )["MessageId"]
    return ids


FIFO_MESSAGES = [("A", "a1"), ("B", "b1"), ("A", "poison"), ("B", "b2"), ("A", "a3")]


@pytest.mark.usefixtures("aws")
def test_fifo_failure_skips_only_the_rest_of_its_message_group() -> None:
    queue = create_queue("orders-in.fifo")
    ids = send_fifo(queue, FIFO_MESSAGES)
    event = sqs_event(queue)
    assert batch.is_fifo(event)

    response = batch.process_batch(event, FakeContext(), record_order)  # FIFO detected

    # a3 is not processed (order within group A), but group B goes on.
    assert failures(response) == [ids["poison"], ids["a3"]]
    assert orders() == ["a1", "b1", "b2"]


@pytest.mark.usefixtures("aws")
def test_fifo_strict_mode_stops_the_whole_batch_at_the_first_failure() -> None:
    queue = create_queue("orders-in.fifo")
    ids = send_fifo(queue, FIFO_MESSAGES)

    response = batch.process_batch(
        sqs_event(queue), FakeContext(), record_order, skip_group_on_error=False
    )

    assert failures(response) == [ids["poison"], ids["b2"], ids["a3"]]
    assert orders() == ["a1", "b1"]


@pytest.mark.usefixtures("aws")
def test_dynamodb_stream_poison_is_reported_by_sequence_number() -> None:
    create_table("outbox", stream=True)
    ddb = boto3.client("dynamodb")
    for n in (1, 2):
        detail = sample_event("OrderPlaced", orderId=f"o-{n}", eventId=f"e-{n}")["detail"]
        row = outbox.outbox_row(OrderPlaced.model_validate(detail))
        ddb.put_item(TableName="outbox", Item=outbox.put("outbox", row)["Put"]["Item"])
    ddb.put_item(
        TableName="outbox",
        Item={"pk": {"S": "outbox#bad"}, "detailType": {"S": "OrderPlaced"}, "detail": {"S": "{"}},
    )
    records = stream_records("outbox")
    seen: list[str] = []

    def handler(record: Any) -> None:
        seen.append(envelopes.from_dynamodb(record, model=OrderPlaced).order_id)

    response = batch.process_batch({"Records": records}, FakeContext(), handler, "dynamodb")

    assert failures(response) == [records[2]["dynamodb"]["SequenceNumber"]]
    assert seen == ["o-1", "o-2"]


@pytest.mark.usefixtures("aws")
def test_kinesis_poison_is_reported_by_sequence_number() -> None:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="orders", ShardCount=1)
    for data in (event_body("k-1"), "not json", event_body("k-3")):
        kinesis.put_record(StreamName="orders", Data=data.encode(), PartitionKey="p")
    event = kinesis_event("orders")
    seen: list[str] = []

    def handler(record: Any) -> None:
        seen.append(envelopes.from_kinesis(record, model=OrderPlaced).order_id)

    response = batch.process_batch(event, FakeContext(), handler, kind="kinesis")

    assert failures(response) == [event["Records"][1]["kinesis"]["sequenceNumber"]]
    assert seen == ["k-1", "k-3"]


@pytest.mark.usefixtures("aws")
def test_a_batch_where_every_record_fails_fails_the_invocation() -> None:
    queue = create_queue("orders-in")
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=POISON)
    with pytest.raises(BatchProcessingError, match="All records failed"):
        batch.process_batch(sqs_event(queue), FakeContext(), record_order)


def test_processor_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        batch.processor("kafka")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="SQS FIFO"):
        batch.processor("kinesis", fifo=True)


# --- dead_letter=True: what will not succeed goes to the DLQ with its error (#11 point 3) ---


def queue_with_dlq(name: str, *, max_receives: int = 3) -> tuple[str, str]:
    """A work queue redriving to its own DLQ after `max_receives`; (queue URL, DLQ URL)."""
    sqs = boto3.client("sqs")
    fifo = name.endswith(".fifo")
    dlq = create_queue(f"{name.removesuffix('.fifo')}-dlq{'.fifo' if fifo else ''}")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {
        "VisibilityTimeout": "0",
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}
        ),
    }
    if fifo:
        attributes["FifoQueue"] = "true"
    queue = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    batch.redrive_policies.clear()  # per container: not across tests
    return queue, dlq


def dead_lettered(dlq: str) -> list[dict[str, Any]]:
    """The DLQ's messages: body and attributes (name -> string value)."""
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )
    return [
        {
            "body": m["Body"],
            **{k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()},
        }
        for m in messages
    ]


@pytest.mark.usefixtures("aws")
def test_a_poison_record_is_dead_lettered_at_once_with_its_error() -> None:
    """Without dead_letter, a poison message went to the DLQ only after maxReceiveCount
    receives, by SQS, which records no error: the DLQ did not say why it was there."""
    queue, dlq = queue_with_dlq("orders-in")
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=queue, MessageBody=event_body("order-1"))
    sqs.send_message(
        QueueUrl=queue,
        MessageBody=POISON,
        MessageAttributes={"trace": {"DataType": "String", "StringValue": "t-1"}},
    )
    event = sqs_event(queue)

    response = batch.process_batch(event, FakeContext(), record_order, dead_letter=True)

    assert failures(response) == []  # handled: the poison is in the DLQ, the order placed
    assert orders() == ["order-1"]
    (dead,) = dead_lettered(dlq)
    assert dead["body"] == POISON
    assert dead["ERROR_CODE"] == "PoisonRecordError"
    assert "breaks its contract: items: List should have at least 1 item" in dead["ERROR_MESSAGE"]
    assert dead["SOURCE_QUEUE_ARN"] == event["Records"][0]["eventSourceARN"]
    assert dead["trace"] == "t-1"  # the message's own attributes come along


@pytest.mark.usefixtures("aws")
def test_a_transient_failure_is_retried_and_dead_lettered_with_its_error_on_its_last_receive() -> (
    None
):
    queue, dlq = queue_with_dlq("orders-in", max_receives=2)
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=event_body("order-1"))

    def unavailable(record: Any) -> None:
        raise ConnectionError("the payment provider is down")

    first = sqs_event(queue)
    with pytest.raises(BatchProcessingError):  # the batch's only record failed
        batch.process_batch(first, None, unavailable, dead_letter=True)
    assert dead_lettered(dlq) == []  # receive 1 of 2: SQS redelivers it

    last = sqs_event(queue)
    assert failures(batch.process_batch(last, None, unavailable, dead_letter=True)) == []
    (dead,) = dead_lettered(dlq)
    assert (dead["ERROR_CODE"], dead["ERROR_MESSAGE"]) == (
        "ConnectionError",
        "the payment provider is down",
    )


@pytest.mark.usefixtures("aws")
def test_a_fifo_record_is_dead_lettered_in_its_group_and_the_group_goes_on() -> None:
    queue, dlq = queue_with_dlq("payments.fifo")
    ids = send_fifo(queue, [("A", "poison"), ("A", "a2")])

    response = batch.process_batch(sqs_event(queue), None, record_order, dead_letter=True)

    assert failures(response) == []
    assert orders() == ["a2"]
    (dead,) = dead_lettered(dlq)
    assert dead["body"] == POISON
    assert ids["poison"] != ids["a2"]


@pytest.mark.usefixtures("aws")
def test_when_the_dlq_cannot_be_reached_the_record_stays_failed() -> None:
    queue, dlq = queue_with_dlq("orders-in")
    for body in (POISON, event_body("order-2")):
        boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=body)
    event = sqs_event(queue)
    poison = next(r["messageId"] for r in event["Records"] if r["body"] == POISON)
    boto3.client("sqs").delete_queue(QueueUrl=dlq)

    response = batch.process_batch(event, None, record_order, dead_letter=True)

    assert failures(response) == [poison]  # SQS's redrive moves it later, as without
    assert orders() == ["order-2"]


def test_dead_letter_is_for_sqs_only() -> None:
    with pytest.raises(ValueError, match="dead_letter=True is for SQS batches only"):
        batch.process_batch({"Records": []}, None, record_order, kind="kinesis", dead_letter=True)
