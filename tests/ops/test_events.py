"""`events put` / `events sample` against moto."""

from __future__ import annotations

import io
import json
from typing import Any

from contracts import sample_detail
from tests.ops.conftest import Stack


def test_put_validates_puts_and_reports_the_event(stack: Stack) -> None:
    detail = sample_detail("OrderPlaced", orderId="order-42")

    run = stack.ops(
        "events", "put", "--detail-type", "OrderPlaced", "--detail", json.dumps(detail), "--json"
    )

    assert run.code == 0, run.err
    answer = run.json()
    assert set(answer) == {
        "bus",
        "id",
        "detailType",
        "source",
        "eventId",
        "orderId",
        "filled",
        "warnings",
    }
    assert (answer["bus"], answer["detailType"], answer["source"]) == (
        "order-bus",
        "OrderPlaced",
        "order-saga.orders",
    )
    assert (answer["eventId"], answer["orderId"], answer["filled"]) == (
        detail["eventId"],
        "order-42",
        [],
    )
    [event] = stack.bodies("capture")
    assert event["detail"] == detail
    assert event["source"] == "order-saga.orders"
    assert event["time"] == "2025-01-15T10:30:00Z"  # the detail's occurredAt: event time


def test_put_fills_the_identity_a_producer_would_set(stack: Stack) -> None:
    detail = sample_detail("PaymentProcessed")
    del detail["eventId"], detail["occurredAt"]

    run = stack.ops(
        "events", "put", "--detail-type", "PaymentProcessed", "--detail", json.dumps(detail)
    )

    assert run.code == 0, run.err
    assert "filled in: eventId, occurredAt" in run.out
    [event] = stack.bodies("capture")
    assert event["detail"]["eventId"]
    assert event["detail"]["occurredAt"].endswith("Z")


def test_put_rejects_an_invalid_detail_naming_the_field_and_puts_nothing(stack: Stack) -> None:
    detail = sample_detail("OrderPlaced")
    detail["items"][0]["quantity"] = 0
    del detail["customerId"]

    run = stack.ops("events", "put", "--detail-type", "OrderPlaced", "--detail", json.dumps(detail))

    assert run.code == 2
    assert "not a valid OrderPlaced" in run.err
    assert "items.0.quantity" in run.err
    assert "customerId" in run.err
    assert stack.peek("capture") == []


def test_put_rejects_an_unknown_detail_type_and_non_json(stack: Stack) -> None:
    unknown = stack.ops("events", "put", "--detail-type", "OrderTeleported", "--detail", "{}")
    assert unknown.code == 2
    assert "OrderTeleported" in unknown.err and "OrderPlaced" in unknown.err  # lists the known

    broken = stack.ops("events", "put", "--detail-type", "OrderPlaced", "--detail", "{not json")
    assert broken.code == 2
    assert "not JSON" in broken.err


def test_put_fails_loudly_when_eventbridge_refuses_the_entry(stack: Stack) -> None:
    def refuse(**kwargs: Any) -> Any:
        response = {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "InvalidArgument", "ErrorMessage": "no such bus, say"}],
        }
        return (type("Http", (), {"status_code": 200, "headers": {}})(), response)

    stack.clients.events.meta.events.register("before-call.events.PutEvents", refuse)

    run = stack.ops(
        "events",
        "put",
        "--detail-type",
        "OrderPlaced",
        "--detail",
        json.dumps(sample_detail("OrderPlaced")),
        "--json",
    )

    assert run.code == 1
    assert "InvalidArgument" in run.err and "no such bus, say" in run.err
    assert run.json() == {"error": run.json()["error"], "exitCode": 1}


def test_put_reads_the_detail_from_a_file(stack: Stack, tmp_path: Any) -> None:
    path = tmp_path / "detail.json"
    path.write_text(json.dumps(sample_detail("OrderShipped")))

    run = stack.ops("events", "put", "--detail-type", "OrderShipped", "--detail", f"@{path}")

    assert run.code == 0, run.err
    assert [e["detail-type"] for e in stack.bodies("capture")] == ["OrderShipped"]


def test_a_source_other_than_the_contracts_is_put_with_a_warning(stack: Stack) -> None:
    run = stack.ops(
        "events",
        "put",
        "--detail-type",
        "OrderShipped",
        "--detail",
        json.dumps(sample_detail("OrderShipped")),
        "--source",
        "test.ops",
        "--json",
    )
    assert run.code == 0
    assert "order-saga.shipping" in run.json()["warnings"][0]


def test_sample_prints_a_valid_detail_without_outputs(stack: Stack) -> None:
    run = stack.ops("events", "sample", "PaymentFailed", use_outputs=False)

    assert run.code == 0
    detail = json.loads(run.out)
    assert detail == sample_detail("PaymentFailed")
    assert stack.ops("events", "sample", "Nope", use_outputs=False).code == 2


def _latin1_detail(tmp_path: Any) -> Any:
    """A valid OrderShipped detail saved as Latin-1 (an editor's default on some systems)."""
    detail = {**sample_detail("OrderShipped"), "carrier": "Poste fran\u00e7aise"}
    path = tmp_path / "detail.json"
    path.write_bytes(json.dumps(detail, ensure_ascii=False).encode("latin-1"))
    return path


def test_put_refuses_a_detail_file_that_is_not_utf8_naming_it(stack: Stack, tmp_path: Any) -> None:
    path = _latin1_detail(tmp_path)

    run = stack.ops("events", "put", "--detail-type", "OrderShipped", "--detail", f"@{path}")

    assert run.code == 2
    assert f"cannot read the --detail file {path}: it is not UTF-8 text (byte 0xe7" in run.err
    assert "Traceback" not in run.err
    assert stack.peek("capture") == []


def test_put_refuses_a_detail_on_stdin_that_is_not_utf8(
    stack: Stack, tmp_path: Any, monkeypatch: Any
) -> None:
    raw = _latin1_detail(tmp_path).read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))

    run = stack.ops("events", "put", "--detail-type", "OrderShipped", "--detail", "-")

    assert run.code == 2
    assert "--detail - (stdin): standard input is not UTF-8 text (byte 0xe7" in run.err
    assert stack.peek("capture") == []


def test_put_refuses_nan_and_json_nested_too_deeply(stack: Stack) -> None:
    detail = json.dumps(sample_detail("OrderPlaced"))
    with_nan = detail.replace("}", ', "discount": NaN}', 1)
    too_deep = "[" * 100_000 + "]" * 100_000

    nan = stack.ops("events", "put", "--detail-type", "OrderPlaced", "--detail", with_nan)
    deep = stack.ops("events", "put", "--detail-type", "OrderPlaced", "--detail", too_deep)

    assert nan.code == 2 and "--detail is not JSON: NaN is not a JSON number" in nan.err
    assert deep.code == 2 and "--detail is not JSON: it is nested too deeply to read" in deep.err
    assert stack.peek("capture") == []
