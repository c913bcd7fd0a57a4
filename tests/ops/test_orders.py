"""`order show` against moto: a cancelled order's saga state, its event store history,
its read model (two events behind) and its Step Functions execution."""

from __future__ import annotations

import json
import time
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from contracts import OrderEvent, parse_detail, sample_detail
from domain import history, orders
from eventcraft.eventstore import DynamoDBEventRecorder, DynamoDBReadModel, fold
from tests.ops.conftest import Stack

ORDER = "order-1"
SAGA = (
    "OrderPlaced",
    "InventoryReserved",
    "PaymentProcessed",
    "ShippingFailed",
    "PaymentRefunded",
    "InventoryReleased",
)


def event(detail_type: str, order_id: str = ORDER) -> OrderEvent:
    parsed = parse_detail(detail_type, sample_detail(detail_type, orderId=order_id))
    assert isinstance(parsed, OrderEvent)
    return parsed


def seed_order(stack: Stack) -> None:
    """The order as the handlers leave it: saga state, event store, a lagging read model."""
    ddb = stack.client("dynamodb")
    saga_events = [event(t) for t in SAGA]
    placed = saga_events[0]
    assert isinstance(placed, orders.OrderPlaced)
    state = orders.new_saga(placed)
    for e in saga_events[1:]:
        state = orders.apply(state, orders.fact_from_event(e)).state
    serializer = TypeSerializer()
    record = {"pk": orders.order_key(ORDER), **orders.to_record(state)}
    ddb.put_item(TableName="orders", Item={k: serializer.serialize(v) for k, v in record.items()})

    recorder = DynamoDBEventRecorder("order-events", client=ddb)
    recorder.append(ORDER, 0, [history.to_new_event(e) for e in saga_events])
    stored = list(recorder.read(ORDER))
    view, _, _ = fold(history.initial_state(), stored[:4], history.apply)
    DynamoDBReadModel("order-history", key_attribute="orderId", client=ddb).put(ORDER, view, 4, 0)


def run_execution(stack: Stack, name: str, payload: Any) -> None:
    sfn = stack.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=stack.outputs["stateMachineArn"], name=name, input=json.dumps(payload)
    )["executionArn"]
    for _ in range(100):
        if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
            return
        time.sleep(0.05)


def test_show_tells_the_whole_story_of_an_order(stack: Stack) -> None:
    seed_order(stack)
    run_execution(stack, "other-order", {"detail": {"orderId": "order-2"}})
    run_execution(stack, "evt-123_saga", {"detail": {"orderId": ORDER}})

    run = stack.ops("order", "show", ORDER)

    assert run.code == 0, run.err
    out = run.out
    assert "status       CANCELLED (final)" in out
    assert "failed step  shipping" in out
    assert "failure      address not deliverable" in out
    assert "charged      74.99 USD" in out and "refunded     74.99 USD" in out
    assert "event store (6 events)" in out
    for detail_type in SAGA:
        assert detail_type in out
    assert "read model: status SHIPPING_FAILED, version 4 (2 event(s) behind the store)" in out
    assert "searched all 2" in out
    assert "evt-123_saga" in out and "other-order" not in out
    assert "SUCCEEDED" in out
    assert "ExecutionSucceeded" in out  # the last events of the execution


def test_show_json_shape(stack: Stack) -> None:
    seed_order(stack)
    run_execution(stack, "evt-123_saga", {"orderId": ORDER})

    run = stack.ops("order", "show", ORDER, "--json", "--last-events", "2")

    assert run.code == 0, run.err
    answer = run.json()
    assert set(answer) == {
        "orderId",
        "saga",
        "events",
        "readModel",
        "stepFunctions",
        "notes",
        "found",
    }
    saga = answer["saga"]
    assert (saga["status"], saga["final"], saga["failedStep"]) == ("CANCELLED", True, "shipping")
    assert [h["event"] for h in saga["history"]] == list(SAGA)
    assert [e["type"] for e in answer["events"]] == list(SAGA)
    assert [e["version"] for e in answer["events"]] == [1, 2, 3, 4, 5, 6]
    assert (answer["readModel"]["version"], answer["readModel"]["lag"]) == (4, 2)
    [execution] = answer["stepFunctions"]["executions"]
    assert (execution["name"], execution["status"]) == ("evt-123_saga", "SUCCEEDED")
    assert len(answer["stepFunctions"]["lastEvents"]) == 2
    assert answer["stepFunctions"]["lastEvents"][-1]["type"] == "ExecutionSucceeded"


def test_an_unknown_order_fails_with_exit_1(stack: Stack) -> None:
    run = stack.ops("order", "show", "order-404", "--json")
    assert run.code == 1
    answer = run.json()
    assert answer["found"] is False
    assert "no order order-404" in run.err or "no order order-404" in run.out


def test_choreography_only_skips_step_functions_and_missing_tables_are_noted(stack: Stack) -> None:
    seed_order(stack)
    outputs = {**stack.outputs, "sagaMode": "choreography", "tables": {"orders": "orders"}}
    stack.outputs_file.write_text(json.dumps(outputs))

    run = stack.ops("order", "show", ORDER, "--json")

    assert run.code == 0, run.err
    answer = run.json()
    assert (answer["stepFunctions"], answer["events"], answer["readModel"]) == (None, None, None)
    assert answer["notes"] == [
        "no `tables.events` output: event store history skipped",
        "no `tables.history` output: read model skipped",
    ]


def test_without_the_orders_table_output_it_is_a_usage_error(stack: Stack) -> None:
    stack.outputs_file.write_text(json.dumps({**stack.outputs, "tables": {}}))
    run = stack.ops("order", "show", ORDER)
    assert run.code == 2
    assert "no `tables.orders`" in run.err
