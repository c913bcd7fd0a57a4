"""Idempotency on DynamoDB (moto): Powertools' algorithm through eventcraft.idempotency.

Powertools' DynamoDB layer needs from moto: PutItem with a ConditionExpression combining
attribute_not_exists / comparisons / AND / OR and ReturnValuesOnConditionCheckFailure
(ALL_OLD), GetItem ConsistentRead, UpdateItem and DeleteItem. All of them work in moto
5.2.5, as these tests show.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from contracts import OrderPlaced, sample_detail, sample_event
from eventcraft import idempotency
from eventcraft.idempotency import (
    IdempotencyAlreadyInProgressError,
    IdempotencyKeyError,
    IdempotencySetupError,
    IdempotencyValidationError,
    idempotent,
    idempotent_function,
)
from tests.functions.awsenv import FakeContext, create_table, mocked, scan

TABLE = "idempotency"
EFFECTS = "effects"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IDEMPOTENCY_TABLE", TABLE)
    with mocked():
        create_table(TABLE, key="id")
        create_table(EFFECTS)
        yield


def effect(order_id: str) -> None:
    """The side effect whose count proves idempotency: +1 on a DynamoDB counter."""
    boto3.client("dynamodb").update_item(
        TableName=EFFECTS,
        Key={"pk": {"S": order_id}},
        UpdateExpression="ADD reservations :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )


def effects() -> dict[str, int]:
    return {item["pk"]: int(item["reservations"]) for item in scan(EFFECTS)}


def order(**overrides: Any) -> OrderPlaced:
    return OrderPlaced.model_validate(sample_detail("OrderPlaced", **overrides))


def reserve_function(config: Any, body: Any = None) -> Any:
    """A record-level use case made idempotent on the contract's eventId."""

    @idempotent_function(
        data_keyword_argument="event", config=config, persistence_store=idempotency.persistence()
    )
    def reserve(event: OrderPlaced) -> dict[str, str]:
        if body is not None:
            body(event)
        effect(event.order_id)
        return {"reservationId": f"r-{event.order_id}"}

    return reserve


@pytest.mark.usefixtures("aws")
def test_the_same_event_twice_has_one_effect_and_the_same_answer() -> None:
    config = idempotency.config(idempotency.CONTRACT_EVENT_ID)
    config.register_lambda_context(FakeContext())
    reserve = reserve_function(config)
    first = reserve(event=order())
    second = reserve(event=order())
    assert first == second == {"reservationId": "r-order-0001"}
    assert effects() == {"order-0001": 1}

    (record,) = scan(TABLE)  # the table contract: key `id`, TTL `expiration`
    assert record["status"] == "COMPLETED"
    assert json.loads(record["data"]) == first
    assert abs(int(record["expiration"]) - (time.time() + 24 * 3600)) < 60
    assert "in_progress_expiration" in record

    reserve(event=order(eventId="another-event", orderId="order-0002"))
    assert effects() == {"order-0001": 1, "order-0002": 1}


@pytest.mark.usefixtures("aws")
def test_republished_event_with_a_new_envelope_id_is_a_duplicate() -> None:
    calls: list[str] = []

    @idempotent(
        persistence_store=idempotency.persistence(),
        config=idempotency.config(idempotency.EVENTBRIDGE_EVENT_ID),
    )
    def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
        calls.append(event["id"])
        effect(event["detail"]["orderId"])
        return {"ok": "yes"}

    event = sample_event("OrderPlaced")
    handler(event, FakeContext())
    handler({**event, "id": "another-envelope-id"}, FakeContext())  # the relay published twice
    assert calls == [event["id"]]
    assert effects() == {"order-0001": 1}


@pytest.mark.usefixtures("aws")
def test_a_concurrent_duplicate_is_refused_while_the_first_runs() -> None:
    started, release = threading.Event(), threading.Event()

    def hold(_: OrderPlaced) -> None:
        started.set()
        assert release.wait(10)

    config = idempotency.config(idempotency.CONTRACT_EVENT_ID)
    config.register_lambda_context(FakeContext())
    reserve = reserve_function(config, body=hold)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(reserve(event=order())))
    first.start()
    assert started.wait(10)

    refused: list[BaseException] = []

    def duplicate() -> None:
        try:
            reserve(event=order())
        except IdempotencyAlreadyInProgressError as exc:
            refused.append(exc)

    duplicates = [threading.Thread(target=duplicate) for _ in range(4)]
    for thread in duplicates:
        thread.start()
    for thread in duplicates:
        thread.join(10)
    release.set()
    first.join(10)

    assert len(refused) == 4  # each one fails its record; the source retries it later
    assert results == [{"reservationId": "r-order-0001"}]
    assert effects() == {"order-0001": 1}
    assert reserve(event=order()) == results[0]  # the retry gets the stored answer


@pytest.mark.usefixtures("aws")
def test_a_failed_attempt_does_not_block_its_retry() -> None:
    attempts: list[int] = []

    def fail_first(_: OrderPlaced) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("payment provider timed out")

    config = idempotency.config(idempotency.CONTRACT_EVENT_ID)
    config.register_lambda_context(FakeContext())
    reserve = reserve_function(config, body=fail_first)
    with pytest.raises(RuntimeError, match="timed out"):
        reserve(event=order())
    assert scan(TABLE) == []  # Powertools deleted the in-progress record
    assert reserve(event=order()) == {"reservationId": "r-order-0001"}
    assert len(attempts) == 2
    assert effects() == {"order-0001": 1}


class Killed(BaseException):
    """What a Lambda timeout looks like to the idempotency layer: no cleanup runs."""


@pytest.mark.usefixtures("aws")
def test_the_in_progress_lock_of_a_timed_out_invocation_expires_with_its_context() -> None:
    kills: list[int] = []

    def killed_once(_: OrderPlaced) -> None:
        if not kills:
            kills.append(1)
            raise Killed

    config = idempotency.config(idempotency.CONTRACT_EVENT_ID)
    reserve = reserve_function(config, body=killed_once)
    config.register_lambda_context(FakeContext(remaining_ms=300))
    with pytest.raises(Killed):
        reserve(event=order())
    (record,) = scan(TABLE)
    assert record["status"] == "INPROGRESS"

    with pytest.raises(IdempotencyAlreadyInProgressError):
        reserve(event=order())  # still within the dead invocation's remaining time
    time.sleep(0.4)
    assert reserve(event=order()) == {"reservationId": "r-order-0001"}
    assert effects() == {"order-0001": 1}


@pytest.mark.usefixtures("aws")
def test_without_the_lambda_context_the_lock_has_no_early_expiry() -> None:
    reserve = reserve_function(idempotency.config(idempotency.CONTRACT_EVENT_ID), body=_kill)
    with pytest.warns(UserWarning, match="register_lambda_context"), pytest.raises(Killed):
        reserve(event=order())
    (record,) = scan(TABLE)
    assert "in_progress_expiration" not in record  # locked until `expiration` (24 h)


def _kill(_: OrderPlaced) -> None:
    raise Killed


@pytest.mark.usefixtures("aws")
def test_payload_validation_catches_a_reused_event_id() -> None:
    config = idempotency.config(
        idempotency.CONTRACT_EVENT_ID, payload_validation_jmespath="[orderId, totalCents]"
    )
    config.register_lambda_context(FakeContext())
    reserve = reserve_function(config)
    reserve(event=order())
    with pytest.raises(IdempotencyValidationError):
        reserve(event=order(orderId="order-9999"))  # same eventId, another order
    assert effects() == {"order-0001": 1}


@pytest.mark.usefixtures("aws")
def test_sqs_records_keyed_on_the_event_inside_the_body() -> None:
    config = idempotency.config(idempotency.SQS_BODY_EVENT_ID)
    config.register_lambda_context(FakeContext())

    @idempotent_function(
        data_keyword_argument="record", config=config, persistence_store=idempotency.persistence()
    )
    def handle(record: dict[str, Any]) -> None:
        effect(json.loads(record["body"])["detail"]["orderId"])

    body = json.dumps(sample_event("OrderPlaced"))
    handle(record={"messageId": "m-1", "body": body})
    handle(record={"messageId": "m-2", "body": body})  # redelivered as a new message
    assert effects() == {"order-0001": 1}


@pytest.mark.usefixtures("aws")
def test_a_missing_key_is_an_error_not_a_silent_pass() -> None:
    @idempotent(
        persistence_store=idempotency.persistence(),
        config=idempotency.config(idempotency.EVENTBRIDGE_EVENT_ID),
    )
    def handler(event: dict[str, Any], context: Any) -> None:
        effect("should-not-run")

    with pytest.raises(IdempotencyKeyError):
        handler({"detail": {}}, FakeContext())
    assert effects() == {}


def test_missing_table_name_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE", raising=False)
    with pytest.raises(IdempotencySetupError, match="IDEMPOTENCY_TABLE is not set"):
        idempotency.persistence()
    with pytest.raises(ValueError, match="expires_after_seconds"):
        idempotency.config("eventId", expires_after_seconds=0)
