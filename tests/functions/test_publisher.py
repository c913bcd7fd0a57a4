"""Publisher: batching by count and size, retry of failed entries only, no silent drop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from contracts import OrderCompleted
from eventcraft import publisher as pub
from eventcraft.publisher import Publisher, PublishError
from tests.functions.awsenv import EventsSpy as Spy
from tests.functions.awsenv import capture_bus, drain, mocked, order_id

BUS = "orders-bus"


@pytest.fixture
def aws() -> Iterator[None]:
    with mocked():
        yield


def completed(n: int) -> list[OrderCompleted]:
    return [OrderCompleted(order_id=f"o-{i}", customer_id="c-1") for i in range(n)]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_entry_size_follows_the_aws_formula() -> None:
    entry = {
        "Source": "order-saga.orders",  # 17 bytes
        "DetailType": "OrderCompleted",  # 14
        "Detail": '{"name":"é"}',  # 13: é is 2 bytes in UTF-8
        "Resources": ["arn:a", "arn:bc"],  # 5 + 6
        "EventBusName": "not-counted",
    }
    assert pub.entry_size(entry) == 17 + 14 + 13 + 11  # type: ignore[arg-type]
    assert pub.entry_size({**entry, "Time": datetime.now(UTC)}) == 17 + 14 + 13 + 11 + 14  # type: ignore[arg-type]


def test_requests_hold_at_most_10_entries_and_256_kb() -> None:
    small = [{"Source": "s", "DetailType": "d", "Detail": "{}"}] * 23
    assert [len(c) for c in pub.request_chunks(small, range(23))] == [10, 10, 3]  # type: ignore[arg-type]
    big = {"Source": "s", "DetailType": "d", "Detail": "x" * (100 * 1024)}
    assert [len(c) for c in pub.request_chunks([big] * 5, range(5))] == [2, 2, 1]  # type: ignore[arg-type]
    # "must be less than 256KB": two halves of exactly 256 KiB go in two requests.
    half = {"Source": "s", "DetailType": "d", "Detail": "x" * (128 * 1024 - 2)}
    assert [len(c) for c in pub.request_chunks([half] * 2, range(2))] == [1, 1]  # type: ignore[arg-type]
    under = {**half, "Detail": "x" * (128 * 1024 - 3)}
    assert [len(c) for c in pub.request_chunks([under] * 2, range(2))] == [2]  # type: ignore[arg-type]


@pytest.mark.usefixtures("aws")
def test_publish_reaches_the_bus_in_batches_of_10() -> None:
    queue = capture_bus(BUS)
    spy = Spy(boto3.client("events"))
    events = completed(12)
    ids = Publisher(BUS, client=spy).publish(events)  # type: ignore[arg-type]
    assert len(set(ids)) == 12
    assert [len(r) for r in spy.requests] == [10, 2]
    delivered = drain(queue)
    assert sorted(d["id"] for d in delivered) == sorted(ids)
    assert sorted(d["detail"]["orderId"] for d in delivered) == sorted(e.order_id for e in events)
    first = next(d for d in delivered if d["detail"]["orderId"] == "o-0")
    assert first["source"] == "order-saga.orders"
    assert first["detail-type"] == "OrderCompleted"
    assert first["detail"] == events[0].to_detail()
    assert first["time"] == events[0].occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.usefixtures("aws")
def test_only_failed_entries_are_retried_and_none_is_duplicated() -> None:
    queue = capture_bus(BUS)
    spy = Spy(
        boto3.client("events"),
        fail={"o-2": ["ThrottlingException"], "o-5": ["InternalFailure", "InternalFailure"]},
    )
    sleeps = Sleeps()
    publisher = Publisher(BUS, client=spy, sleep=sleeps, jitter=lambda: 1.0, base_delay=0.1)  # type: ignore[arg-type]
    ids = publisher.publish(completed(7))
    assert spy.requests == [[f"o-{i}" for i in range(7)], ["o-2", "o-5"], ["o-5"]]
    assert sleeps == [0.1, 0.2]  # exponential: base * 2 ** (attempt - 1), here jitter = 1
    assert len(ids) == 7
    delivered = sorted(d["detail"]["orderId"] for d in drain(queue))
    assert delivered == [f"o-{i}" for i in range(7)]  # each exactly once


def test_ids_are_in_input_order_even_after_retries() -> None:
    spy = Spy(fail={"o-0": ["ThrottlingException"]})
    ids = Publisher(BUS, client=spy, sleep=Sleeps()).publish(completed(3))  # type: ignore[arg-type]
    assert ids == ["id-o-0", "id-o-1", "id-o-2"]


def test_full_jitter_is_capped() -> None:
    publisher = Publisher(BUS, base_delay=0.5, max_delay=2.0, jitter=lambda: 0.5)
    assert [publisher.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.25, 0.5, 1.0, 1.0, 1.0]


def test_entries_still_failing_after_max_attempts_raise_listing_them() -> None:
    spy = Spy(fail={"o-1": ["ThrottlingException"] * 10})
    sleeps = Sleeps()
    publisher = Publisher(BUS, client=spy, max_attempts=3, sleep=sleeps)  # type: ignore[arg-type]
    with pytest.raises(PublishError) as caught:
        publisher.publish(completed(3))
    error = caught.value
    assert len(sleeps) == 2
    assert [(f.index, f.error_code, f.attempts) for f in error.failed] == [
        (1, "ThrottlingException", 3)
    ]
    assert error.event_ids == ["id-o-0", None, "id-o-2"]
    assert "1 of 3 events were not published" in str(error)
    assert "#1 OrderCompleted (ThrottlingException" in str(error)


@pytest.mark.usefixtures("aws")
def test_a_non_retryable_error_fails_fast_and_the_rest_is_published() -> None:
    queue = capture_bus(BUS)
    good = pub.entry(OrderCompleted(order_id="o-ok", customer_id="c-1"), bus_name=BUS)
    malformed = {**good, "Detail": "{not json"}  # moto answers MalformedDetail, as AWS does
    sleeps = Sleeps()
    publisher = Publisher(BUS, client=boto3.client("events"), sleep=sleeps)
    with pytest.raises(PublishError) as caught:
        publisher.put_entries([good, malformed])
    assert [(f.index, f.error_code, f.attempts) for f in caught.value.failed] == [
        (1, "MalformedDetail", 1)
    ]
    assert sleeps == []
    assert caught.value.event_ids[0] is not None
    assert [d["detail"]["orderId"] for d in drain(queue)] == ["o-ok"]


def test_an_entry_of_256_kb_is_never_sent_and_the_others_are() -> None:
    spy = Spy()
    huge = {"Source": "s", "DetailType": "d", "Detail": json.dumps({"orderId": "x" * 300_000})}
    small = pub.entry(OrderCompleted(order_id="o-ok", customer_id="c-1"), bus_name=BUS)
    with pytest.raises(PublishError, match="claim check") as caught:
        Publisher(BUS, client=spy).put_entries([huge, small])  # type: ignore[arg-type, list-item]
    assert spy.requests == [["o-ok"]]
    assert [(f.index, f.error_code, f.attempts) for f in caught.value.failed] == [
        (0, pub.TOO_LARGE, 0)
    ]
    assert caught.value.event_ids == [None, "id-o-ok"]


def test_a_refused_request_fails_every_unsent_entry() -> None:
    class Refusing(Spy):
        def put_events(self, Entries: list[Any]) -> dict[str, Any]:
            if self.requests:
                self.requests.append([order_id(e) for e in Entries])
                raise ClientError(
                    {"Error": {"Code": "ResourceNotFoundException", "Message": "no bus"}},
                    "PutEvents",
                )
            return super().put_events(Entries)

    with pytest.raises(PublishError) as caught:
        Publisher(BUS, client=Refusing()).publish(completed(13))  # type: ignore[arg-type]
    error = caught.value
    assert [f.index for f in error.failed] == [10, 11, 12]
    assert {f.error_code for f in error.failed} == {"ResourceNotFoundException"}
    assert error.event_ids[:10] == [f"id-o-{i}" for i in range(10)]
    assert isinstance(error.__cause__, ClientError)


@pytest.mark.usefixtures("aws")
def test_client_is_created_lazily_once_and_bus_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = capture_bus(BUS)
    publisher = Publisher()
    assert publisher._client is None  # nothing created at construction (cold start)
    with pytest.raises(ValueError, match="EVENT_BUS_NAME"):
        publisher.publish(completed(1))
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    publisher.publish(completed(1))
    first_client = publisher.client
    assert Publisher().client is first_client  # one client per container
    assert len(drain(queue)) == 1


def test_nothing_to_publish_makes_no_call() -> None:
    spy = Spy()
    assert Publisher(BUS, client=spy).publish([]) == []  # type: ignore[arg-type]
    assert spy.requests == []
