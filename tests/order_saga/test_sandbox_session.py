"""`order_saga.sandbox.session.OrderSagaSession`: stack config overrides, and one
deployed session for its basics and for `invariants()`, each invariant shown able to
fail.

The saga scenarios themselves are tests/e2e's. The deploying tests share ONE session
(module scope, ~11 s to deploy, torn down at the module's end); every test that starts
moto of its own (a session with a bad config) comes before them in the file, since only
one sandbox runs in a process at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from eventcraft_sandbox.moto_deploy import Sandbox
from eventcraft_sandbox.session import to_item
from order_saga.sandbox.session import InvariantReport, OrderSagaSession
from pulumi_eventcraft.config import ConfigError
from tests.sandbox.test_session import _patched_attributes

INVARIANTS = (
    "every_order_final",
    "one_outcome_event_per_order",
    "inventory_conserved",
    "cancelled_orders_released_stock",
    "no_double_charge",
    "refunds_match_charges_of_cancelled_orders",
    "shipped_orders_kept_money_and_goods",
    "every_outbox_row_published",
    "read_model_matches_event_store",
)


# ----------------------------------------------------------------------- config


def test_config_overrides_are_merged_over_the_stack_file() -> None:
    """Bare keys go into the `order-saga:` namespace (non-strings as JSON), namespaced
    keys as they are; the stack file's other keys stay."""
    session = OrderSagaSession(
        "dev", config={"sagaMode": "orchestration", "windowSeconds": 5, "aws:region": "eu-west-1"}
    )
    config = session._config()
    assert config is not None
    assert config["order-saga:sagaMode"] == "orchestration"
    assert config["order-saga:windowSeconds"] == "5"
    assert config["aws:region"] == "eu-west-1"
    assert config["order-saga:failureSeed"] == "dev"  # from Pulumi.dev.yaml


def test_a_bad_config_value_raises_config_error_naming_the_key_and_undoes_the_start() -> None:
    """The deploy validates the merged config; a failed start leaves no sandbox running
    and no speedup installed."""
    originals = _patched_attributes()
    session = OrderSagaSession("dev", config={"paymentTransientFailureRate": "2"})
    with pytest.raises(ConfigError, match=r"order-saga:paymentTransientFailureRate = '2'"):
        session.start()
    assert Sandbox._running is None
    assert all(_patched_attributes()[k] is v for k, v in originals.items())
    with pytest.raises(RuntimeError, match="not started"):
        _ = session.deployment


# ----------------------------------------------------------------------- one session

SEEDED = {"sku-red-mug": 10, "sku-kettle": 4}
ORDERS = (
    ("customer-1", [("sku-red-mug", 2, 1250)]),
    ("customer-2", [("sku-kettle", 1, 4000), ("sku-red-mug", 1, 1250)]),
)


@dataclass(frozen=True)
class Ran:
    """The module's session and place-order's answers for `ORDERS`."""

    session: OrderSagaSession
    answers: list[dict[str, Any]]


@pytest.fixture(scope="module")
def ran() -> Iterator[Ran]:
    """The dev stack with `sagaMode` overridden to orchestration: stock seeded, two
    orders placed and run until quiet."""
    with OrderSagaSession("dev", config={"sagaMode": "orchestration"}) as running:
        running.seed_stock(SEEDED)
        answers = [running.place_order(customer, lines) for customer, lines in ORDERS]
        running.run_until_quiet()
        yield Ran(running, answers)


@pytest.fixture
def session(ran: Ran) -> OrderSagaSession:
    return ran.session


def test_an_override_deploys_what_its_saga_mode_deploys(session: OrderSagaSession) -> None:
    """sagaMode orchestration (dev says both): a state machine and the orchestrate rule,
    none of the choreography's rules or queues; no choreography handler ran."""
    outputs = session.outputs
    assert outputs["sagaMode"] == "orchestration"
    assert outputs["stateMachineArn"].endswith(":stateMachine:order-saga-dev-saga-orchestrator")
    rules = {
        r["Name"]
        for r in session.client("events").list_rules(EventBusName=outputs["busName"])["Rules"]
    }
    assert "saga-orchestrate-rule" in rules
    assert not rules & {"saga-reserve-rule", "saga-pay-rule", "saga-ship-rule"}
    assert not set(outputs["queues"]) & {"reserve", "payments", "progress"}
    assert "reserve-inventory-task" in session.invocations
    assert not set(session.invocations) & {"reserve-inventory", "process-payment", "ship-order"}


def test_outputs_and_function_names(session: OrderSagaSession) -> None:
    """Short names map to deployed names and back; anything else passes unchanged."""
    assert set(session.outputs["tables"]) >= {"orders", "inventory", "payments", "history"}
    deployed = session.function_name("place-order")
    assert deployed == "order-saga-dev-saga-place-order"
    assert session.short_function_name(deployed) == "place-order"
    assert session.function_name("no-such-function") == "no-such-function"
    assert session.short_function_name("no-such-function") == "no-such-function"
    assert session.table("orders") == "saga-orders-table"
    assert session.queue_url("checks").endswith("/saga-checks-work-queue")


def test_an_unknown_table_names_the_tables_there(session: OrderSagaSession) -> None:
    with pytest.raises(KeyError) as raised:
        session.table("nope")
    text = raised.value.args[0]
    assert text.startswith("the stack has no 'nope' table; it has checks, customers, events")
    assert all(role in text for role in session.outputs["tables"])


def test_an_unknown_queue_names_the_queues_there(session: OrderSagaSession) -> None:
    with pytest.raises(KeyError) as raised:
        session.queue_url("nope")
    text = raised.value.args[0]
    assert "the stack has no queue 'nope'" in text
    assert "checks" in text
    assert "reserve-dlq" in text or "checks-dlq" in text


def test_seeded_stock_is_read_back_and_remembered(session: OrderSagaSession) -> None:
    """seed_stock writes the inventory table and the initial stock; after the run the
    available units are the seeded ones minus what the completed orders took."""
    assert session.initial_stock == SEEDED
    stock = session.stock()
    assert set(stock) == set(SEEDED)
    taken = {sku: 0 for sku in SEEDED}
    orders = session.orders()
    for order_id, (_, lines) in zip(session.placed, ORDERS, strict=True):
        if orders[order_id]["status"] == "COMPLETED":
            for sku, quantity, _ in lines:
                taken[sku] += quantity
    assert stock == {sku: SEEDED[sku] - taken[sku] for sku in SEEDED}


def test_place_order_returns_the_order_id_and_records_it(ran: Ran) -> None:
    session, answers = ran.session, ran.answers
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
    assert all(uuid.match(a["orderId"]) for a in answers)
    assert [a["totalCents"] for a in answers] == [2500, 5250]
    assert all(a["created"] and a["status"] == "PLACED" for a in answers)
    assert session.placed == [a["orderId"] for a in answers]
    assert set(session.orders()) == set(session.placed)


def test_invocations_and_aws_calls_are_counted_per_function(session: OrderSagaSession) -> None:
    """One place-order invocation per order; every order's saga ran its reserve task at
    least once; the handlers' AWS calls add up to `aws_calls`, all by functions that
    were invoked."""
    invocations = session.invocations
    assert invocations["place-order"] == len(ORDERS)
    assert invocations["reserve-inventory-task"] >= len(ORDERS)
    by_function = session.aws_calls_by_function()
    assert session.aws_calls == sum(by_function.values()) > 0
    assert by_function["place-order"] >= len(ORDERS)
    assert set(by_function) <= set(invocations)


def test_the_invariants_hold_after_a_run(session: OrderSagaSession) -> None:
    report = session.invariants()
    assert list(report.results) == list(INVARIANTS)
    assert report.ok, report.problems
    assert report.problems == {}
    assert set(session.outcomes) == set(session.placed)


# -- each invariant, broken ---------------------------------------------------------


@contextmanager
def _altered(
    session: OrderSagaSession,
    role: str,
    key: dict[str, Any],
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    *,
    check: bool = True,
) -> Iterator[None]:
    """Replace (or, when `change` returns None, delete) one item; put it back after,
    and (`check`) prove the invariants hold again."""
    ddb = session.client("dynamodb")
    table = session.table(role)
    raw_key = to_item(key)
    original = ddb.get_item(TableName=table, Key=raw_key, ConsistentRead=True).get("Item")
    current = session.get(role, key)
    changed = change(dict(current) if current is not None else {})
    if changed is None:
        ddb.delete_item(TableName=table, Key=raw_key)
    else:
        ddb.put_item(TableName=table, Item=to_item({**changed, **key}))
    try:
        yield
    finally:
        if original is None:
            ddb.delete_item(TableName=table, Key=raw_key)
        else:
            ddb.put_item(TableName=table, Item=original)
    if check:
        assert session.invariants().ok


def _broken(report: InvariantReport, name: str) -> list[str]:
    assert report.results[name] is False
    assert not report.ok
    return report.problems[name]


def _first_order(session: OrderSagaSession) -> tuple[str, dict[str, Any]]:
    order_id = session.placed[0]
    order = session.order(order_id)
    assert order is not None
    return order_id, order


def test_extra_stock_breaks_inventory_conserved_naming_the_sku(session: OrderSagaSession) -> None:
    available = session.stock()["sku-red-mug"]
    key = {"pk": "sku#sku-red-mug"}
    with _altered(session, "inventory", key, lambda i: {**i, "available": available + 1}):
        report = session.invariants()
        (problem,) = _broken(report, "inventory_conserved")
        assert [n for n, ok in report.results.items() if not ok] == ["inventory_conserved"]
    match = re.fullmatch(
        rf"sku-red-mug: available {available + 1} \+ reserved (\d+) \+ shipped (\d+) "
        rf"!= initial {SEEDED['sku-red-mug']}",
        problem,
    )
    assert match, problem
    assert int(match[1]) + int(match[2]) == SEEDED["sku-red-mug"] - available


def test_an_order_not_final_breaks_every_order_final(session: OrderSagaSession) -> None:
    order_id, _ = _first_order(session)
    key = {"pk": f"order#{order_id}"}
    with _altered(session, "orders", key, lambda o: {**o, "status": "PAYING"}):
        problems = _broken(session.invariants(), "every_order_final")
    # The problem says how the order's saga execution ended: here it succeeded, and the
    # order's row is what is wrong.
    (problem,) = problems
    assert re.fullmatch(rf"order {order_id} is PAYING \(its execution \S+ is SUCCEEDED\)", problem)


def test_a_status_unlike_its_outcome_event_breaks_one_outcome_event_per_order(
    session: OrderSagaSession,
) -> None:
    order_id, order = _first_order(session)
    flipped = "CANCELLED" if order["status"] == "COMPLETED" else "COMPLETED"
    key = {"pk": f"order#{order_id}"}
    with _altered(session, "orders", key, lambda o: {**o, "status": flipped}):
        problems = _broken(session.invariants(), "one_outcome_event_per_order")
    (event_id,) = session.outcomes[order_id]
    assert (
        f"order {order_id} is {flipped}; outcome events: {order['status']} {event_id}" in problems
    )


def test_a_second_outcome_event_breaks_one_outcome_event_per_order_but_a_redelivery_does_not(
    session: OrderSagaSession,
) -> None:
    """Outcome events count by event id: the same event delivered again is one outcome;
    another event for the same order is a second one."""
    order_id, order = _first_order(session)
    before = dict(session.outcomes[order_id])
    (event_id,) = before
    session.outcomes[order_id] = {**before, event_id: order["status"]}
    try:
        assert session.invariants().ok
        session.outcomes[order_id] = {**before, "another-event-id": order["status"]}
        problems = _broken(session.invariants(), "one_outcome_event_per_order")
    finally:
        session.outcomes[order_id] = before
    assert problems == [
        f"order {order_id} is {order['status']}; outcome events: {order['status']} "
        f"{event_id}, {order['status']} another-event-id"
    ]


def test_an_order_unknown_to_the_client_still_has_to_be_final(session: OrderSagaSession) -> None:
    """An order whose place-order reply was lost is in the table but not in `placed`."""
    _, order = _first_order(session)
    ghost = {**order, "orderId": "lost-reply-order", "status": "RESERVING"}
    with _altered(session, "orders", {"pk": "order#lost-reply-order"}, lambda _: ghost):
        problems = _broken(session.invariants(), "every_order_final")
    assert problems == ["order lost-reply-order is RESERVING (no saga execution)"]


def test_a_cancelled_order_holding_stock_breaks_cancelled_orders_released_stock(
    session: OrderSagaSession,
) -> None:
    order_id, _ = _first_order(session)
    with (
        _altered(
            session,
            "inventory",
            {"pk": f"reservation#{order_id}"},
            lambda r: {**r, "status": "RESERVED"},
        ),
        _altered(
            session,
            "orders",
            {"pk": f"order#{order_id}"},
            lambda o: {**o, "status": "CANCELLED"},
            check=False,  # the reservation is put back after it
        ),
    ):
        problems = _broken(session.invariants(), "cancelled_orders_released_stock")
    assert problems == [f"order {order_id} still holds stock"]


def test_charging_more_than_the_total_breaks_no_double_charge(session: OrderSagaSession) -> None:
    order_id, order = _first_order(session)
    total = order["totalCents"]
    key = {"pk": f"payment#{order_id}"}
    with _altered(
        session, "payments", key, lambda p: {**p, "orderId": order_id, "chargedCents": total + 1}
    ):
        problems = _broken(session.invariants(), "no_double_charge")
    assert problems == [f"order {order_id}: charged {total + 1} > total {total}"]


def test_a_second_payment_event_breaks_no_double_charge(session: OrderSagaSession) -> None:
    order_id = session.placed[0]
    before = set(session.payment_events.get(order_id, set()))
    session.payment_events[order_id] = {*before, "another-event-id", "and-another"}
    try:
        problems = _broken(session.invariants(), "no_double_charge")
    finally:
        session.payment_events[order_id] = before
    assert f"order {order_id}: {len(before) + 2} PaymentProcessed events" in problems


def test_a_refund_that_does_not_match_breaks_refunds_match_charges(
    session: OrderSagaSession,
) -> None:
    order_id, order = _first_order(session)
    key = {"pk": f"payment#{order_id}"}
    payment = session.get("payments", key) or {}
    charged = int(payment.get("chargedCents", 0))
    with _altered(
        session, "payments", key, lambda p: {**p, "orderId": order_id, "refundedCents": charged + 7}
    ):
        problems = _broken(session.invariants(), "refunds_match_charges_of_cancelled_orders")
    kind = "completed" if order["status"] == "COMPLETED" else "cancelled"
    expected = order["totalCents"] if kind == "completed" else 0
    assert (
        f"{kind} order {order_id}: charged {charged} - refunded {charged + 7} != {expected}"
        in problems
    )


def _shipped_order(session: OrderSagaSession) -> tuple[str, dict[str, Any]]:
    shipped = [k for k, v in session.shipments().items() if v["status"] == "SHIPPED"]
    assert shipped, "the module's run ships at least one order"
    order = session.order(shipped[0])
    assert order is not None and order["status"] == "COMPLETED"
    return shipped[0], order


def test_a_refund_of_a_shipped_order_breaks_shipped_orders_kept_money_and_goods(
    session: OrderSagaSession,
) -> None:
    order_id, order = _shipped_order(session)
    total = order["totalCents"]
    key = {"pk": f"payment#{order_id}"}
    with _altered(
        session,
        "payments",
        key,
        lambda p: {**p, "orderId": order_id, "status": "REFUNDED", "refundedCents": total},
    ):
        report = session.invariants()
        problems = _broken(report, "shipped_orders_kept_money_and_goods")
        assert report.results["refunds_match_charges_of_cancelled_orders"] is False
    assert problems == [f"order {order_id} was shipped; {total} of {total} refunded"]


def test_restocking_a_shipped_order_breaks_conservation_and_shipped_orders_kept_goods(
    session: OrderSagaSession,
) -> None:
    """Stock released for goods that left: the reservation says RELEASED and the stock
    came back, so counting shipped goods by the order's reservation alone would balance;
    the shipments table says they are gone."""
    order_id, _ = _shipped_order(session)
    reservation = session.get("inventory", {"pk": f"reservation#{order_id}"})
    assert reservation is not None
    (line, *_) = reservation["items"]
    sku, quantity = line["sku"], int(line["quantity"])
    available = session.stock()[sku]
    with (
        _altered(
            session,
            "inventory",
            {"pk": f"reservation#{order_id}"},
            lambda r: {**r, "status": "RELEASED"},
            check=False,
        ),
        _altered(
            session,
            "inventory",
            {"pk": f"sku#{sku}"},
            lambda i: {**i, "available": available + quantity},
            check=False,
        ),
    ):
        report = session.invariants()
        problems = _broken(report, "shipped_orders_kept_money_and_goods")
        assert report.results["inventory_conserved"] is False
    assert problems == [f"order {order_id} was shipped; its reservation is RELEASED"]
    assert session.invariants().ok


def test_an_unpublished_outbox_row_breaks_every_outbox_row_published(
    session: OrderSagaSession,
) -> None:
    row = session.outbox_rows()[0]
    key = {"pk": row["pk"]}
    with _altered(session, "outbox", key, lambda r: {**r, "published": False}):
        problems = _broken(session.invariants(), "every_outbox_row_published")
    assert problems == [f"{row['detailType']} {row['eventId']} written {row['createdAt']}"]


def test_a_missing_or_altered_read_model_row_breaks_read_model_matches_event_store(
    session: OrderSagaSession,
) -> None:
    order_id = session.placed[0]
    version = session.stored_events()[order_id][-1]["version"]
    key = {"orderId": order_id}
    with _altered(session, "history", key, lambda _: None):
        problems = _broken(session.invariants(), "read_model_matches_event_store")
    assert problems == [
        f"order {order_id}: read model at version 0, event store at {version} (the rows differ)"
    ]

    with _altered(session, "history", key, lambda row: {**row, "totalCents": 1}):
        problems = _broken(session.invariants(), "read_model_matches_event_store")
    assert problems == [
        f"order {order_id}: read model at version {version}, event store at {version} "
        "(the rows differ)"
    ]

    with _altered(session, "history", {"orderId": "ghost"}, lambda _: {"status": "PLACED"}):
        problems = _broken(session.invariants(), "read_model_matches_event_store")
    assert problems == ["order ghost: a read model row without events"]
