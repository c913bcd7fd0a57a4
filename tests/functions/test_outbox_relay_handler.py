"""The deployed relay handler: stream records in, events on the bus, rows marked
published, partial batch failures reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from contracts import OrderPlaced, sample_detail
from eventcraft import outbox
from tests.functions.awsenv import capture_bus, create_table, drain, mocked, scan, stream_records

OUTBOX, BUS = "outbox", "saga-bus"


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("OUTBOX_TABLE", OUTBOX)
    with mocked():
        create_table(OUTBOX, stream=True)
        captured = capture_bus(BUS)
        import handlers.outbox_relay as relay_handler

        relay_handler._publisher = None  # a new container for each test
        yield captured


def placed(n: int) -> OrderPlaced:
    return OrderPlaced.model_validate(
        sample_detail("OrderPlaced", orderId=f"order-{n}", eventId=f"event-{n}")
    )


def test_publishes_each_row_once_and_marks_it(queue: str) -> None:
    from handlers.outbox_relay import handler

    outbox.write([], [placed(1), placed(2)], outbox_table=OUTBOX)
    records: list[dict[str, Any]] = stream_records(OUTBOX)

    assert handler({"Records": records}, None) == {"batchItemFailures": []}

    events = drain(queue)
    assert sorted(e["detail"]["orderId"] for e in events) == ["order-1", "order-2"]
    assert {e["detail-type"] for e in events} == {"OrderPlaced"}
    rows = scan(OUTBOX)
    assert all(row["published"] is True for row in rows)
    assert all(outbox.TTL_ATTRIBUTE in row for row in rows)


def test_a_malformed_row_is_reported_and_the_rest_published(queue: str) -> None:
    from handlers.outbox_relay import handler

    outbox.write([], [placed(1)], outbox_table=OUTBOX)
    good = stream_records(OUTBOX)
    bad = json.loads(json.dumps(good[0]))
    bad["dynamodb"]["SequenceNumber"] = "999"
    bad["dynamodb"]["NewImage"]["pk"] = {"S": "outbox#broken"}
    del bad["dynamodb"]["NewImage"]["detail"]

    response = handler({"Records": [bad, *good]}, None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "999"}]}
    assert [e["detail"]["orderId"] for e in drain(queue)] == ["order-1"]


def test_missing_configuration_names_the_variable(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.outbox_relay import handler

    monkeypatch.delenv("OUTBOX_TABLE")
    with pytest.raises(RuntimeError, match="OUTBOX_TABLE is not set"):
        handler({"Records": []}, None)
