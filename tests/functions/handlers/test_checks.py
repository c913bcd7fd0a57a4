"""The fork/join checks against moto: run_check (inventory, credit, shipping quote) and
aggregate_checks (exactly one AllChecksComplete), by events and as Step Functions tasks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from contracts import CHECKS, AllChecksComplete, CheckCompleted, parse_detail, sample_event
from domain.inventory import stock_item
from eventcraft.aggregation import CompletionPendingError
from handlers import aggregate_checks, run_check
from pulumi_eventcraft.saga import parallel_checks
from tests.functions.awsenv import (
    CallRecorder,
    FakeContext,
    create_queue,
    create_table,
    scan,
    sqs_event,
)
from tests.functions.handlers.conftest import Orchestrator
from tests.functions.handlers.fixtures_side import (
    CHECKS as CHECKS_TABLE,
)
from tests.functions.handlers.fixtures_side import (
    CUSTOMERS,
    Side,
    clear_handler_caches,
    put_customer,
    side_calls_fixture,  # noqa: F401
    side_fixture,  # noqa: F401
)

INVENTORY = "inventory"


@pytest.fixture
def stocked(side: Side, monkeypatch: pytest.MonkeyPatch) -> Iterator[Side]:
    """Stock for the sample order (2 red mugs, 1 blue pot) and its customer's credit."""
    create_table(INVENTORY)
    monkeypatch.setenv("INVENTORY_TABLE", INVENTORY)
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    for sku, available in (("sku-red-mug", 5), ("sku-blue-pot", 1)):
        item = stock_item(sku, available)
        boto3.client("dynamodb").put_item(
            TableName=INVENTORY, Item={k: serializer.serialize(v) for k, v in item.items()}
        )
    put_customer("customer-0001", tier="gold", creditLimitCents=10_000)
    yield side


HANDLERS = {
    "inventory": run_check.inventory_handler,
    "credit": run_check.credit_handler,
    "shippingQuote": run_check.shipping_quote_handler,
}
TASKS = {
    "inventory": run_check.inventory_task,
    "credit": run_check.credit_task,
    "shippingQuote": run_check.shipping_quote_task,
}


def run_all(event: dict[str, Any]) -> None:
    """Each check's function receives the OrderPlaced (one function per check)."""
    for check, entry in HANDLERS.items():
        entry(event, FakeContext(function_name=f"check-{check}"))


def completed_by_check(side: Side) -> dict[str, CheckCompleted]:
    events = [parse_detail("CheckCompleted", d) for d in side.details("CheckCompleted")]
    assert all(isinstance(e, CheckCompleted) for e in events)
    by_check = {e.check: e for e in events if isinstance(e, CheckCompleted)}
    assert len(by_check) == len(events), "one CheckCompleted per check"
    return by_check


# --- run_check -------------------------------------------------------------------------------


def test_each_check_publishes_its_result(stocked: Side) -> None:
    run_all(sample_event("OrderPlaced"))

    results = {name: e.result for name, e in completed_by_check(stocked).items()}
    assert results["inventory"].passed
    assert results["credit"].passed  # 7499 <= 10000
    assert results["shippingQuote"].passed
    assert results["shippingQuote"].quote_cents == 499 + 150 * 2  # 3 units


def test_failed_checks_are_results_with_reasons(stocked: Side) -> None:
    items = [
        {"sku": "sku-blue-pot", "quantity": 3, "unitPriceCents": 4999},
        {"sku": "sku-unknown", "quantity": 1, "unitPriceCents": 100},
    ]
    run_all(sample_event("OrderPlaced", items=items, totalCents=15_097))

    results = {name: e.result for name, e in completed_by_check(stocked).items()}
    assert not results["inventory"].passed
    assert results["inventory"].reason == "insufficient stock for sku-blue-pot, sku-unknown"
    assert not results["credit"].passed
    assert "exceeds the credit limit 10000" in str(results["credit"].reason)
    assert (results["shippingQuote"].passed, results["shippingQuote"].quote_cents) == (True, 0)


def test_an_unknown_customer_fails_the_credit_check(stocked: Side) -> None:
    run_check.credit_handler(sample_event("OrderPlaced", customerId="customer-404"), FakeContext())
    [event] = completed_by_check(stocked).values()
    assert (event.result.passed, event.result.reason) == (
        False,
        "unknown customer: no credit on record",
    )


def test_a_duplicate_order_placed_publishes_one_result_per_check(stocked: Side) -> None:
    event = sample_event("OrderPlaced")
    run_all(event)
    # Stock runs out between the deliveries: the duplicate still changes nothing.
    from boto3.dynamodb.types import TypeSerializer

    empty = stock_item("sku-blue-pot", 0)
    boto3.client("dynamodb").put_item(
        TableName=INVENTORY, Item={k: TypeSerializer().serialize(v) for k, v in empty.items()}
    )
    run_all(event)
    run_all({**event, "id": "republished"})

    by_check = completed_by_check(stocked)
    assert sorted(by_check) == sorted(CHECKS)
    assert by_check["inventory"].result.passed


def test_every_check_has_a_handler_and_a_task_entry() -> None:
    assert {**HANDLERS, **TASKS}.keys() == set(CHECKS)
    for entry, check in run_check.ENTRIES.items():
        function = getattr(run_check, entry)
        assert function in (HANDLERS[check], TASKS[check])
    assert sorted(run_check.ENTRIES.values()) == sorted([*CHECKS, *CHECKS])


def test_access_is_the_union_of_what_each_check_needs() -> None:
    union: dict[str, frozenset[str]] = {}
    for access in run_check.CHECK_ACCESS.values():
        for name, actions in access.items():
            union[name] = union.get(name, frozenset()) | actions
    assert union == run_check.ACCESS
    assert "INVENTORY_TABLE" not in run_check.CHECK_ACCESS["credit"]
    assert "CUSTOMERS_TABLE" not in run_check.CHECK_ACCESS["inventory"]


# --- aggregate_checks --------------------------------------------------------------------------


def check_events(side: Side, **order: Any) -> list[dict[str, Any]]:
    """The three CheckCompleted events (EventBridge envelopes) of an order."""
    run_all(sample_event("OrderPlaced", **order))
    events = side.published()
    assert [e["detail-type"] for e in events] == ["CheckCompleted"] * 3
    return events


def all_complete(side: Side) -> list[AllChecksComplete]:
    found = [parse_detail("AllChecksComplete", d) for d in side.details("AllChecksComplete")]
    return [e for e in found if isinstance(e, AllChecksComplete)]


def test_the_join_emits_once_when_the_third_check_is_in(stocked: Side) -> None:
    first, second, third = check_events(stocked)

    answers = [aggregate_checks.handler(e, None) for e in (first, second)]
    assert [a["completed"] for a in answers] == [False, False]
    assert all_complete(stocked) == []
    last = aggregate_checks.handler(third, None)

    assert (last["completed"], last["missing"]) == (True, [])
    [done] = all_complete(stocked)
    assert done.order_id == "order-0001"
    assert done.all_passed
    assert done.shipping_quote.quote_cents == 799
    [join] = scan(CHECKS_TABLE)
    assert join["joinId"] == "order-0001"
    assert "emittedAt" in join and "claimedUntil" not in join
    assert {k for k in join if k.startswith("check:")} == {f"check:{c}" for c in CHECKS}


def test_duplicates_in_an_sqs_batch_have_one_effect(stocked: Side) -> None:
    events = check_events(stocked)
    queue = create_queue("checks-queue")
    sqs = boto3.client("sqs")
    for event in [*events, *events]:  # every result delivered twice
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))
    batch = sqs_event(queue)
    batch["Records"].append({**batch["Records"][0], "messageId": "poison", "body": "{oops"})

    response = aggregate_checks.handler(batch, FakeContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    assert len(all_complete(stocked)) == 1
    # Later redeliveries, after the emission, change nothing either.
    for event in events:
        assert aggregate_checks.handler(event, None)["recorded"] is False
    assert all_complete(stocked) == []


# serializable_moto (conftest): moto does not isolate concurrent requests as DynamoDB does.
@pytest.mark.usefixtures("serializable_moto")
def test_concurrent_arrivals_emit_exactly_one_join(stocked: Side) -> None:
    events = check_events(stocked) * 3  # each result three times, at once
    errors: list[BaseException] = []

    def deliver(event: dict[str, Any]) -> None:
        while True:
            try:
                aggregate_checks.handler(event, None)
                return
            except CompletionPendingError:
                continue  # SQS would redeliver after the visibility timeout
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=deliver, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(all_complete(stocked)) == 1


def test_a_failed_check_makes_the_join_not_all_passed(stocked: Side) -> None:
    for event in check_events(stocked, customerId="customer-404"):
        aggregate_checks.handler(event, None)
    [done] = all_complete(stocked)
    assert not done.all_passed
    assert not done.credit.passed and done.inventory.passed


# --- Step Functions: Parallel branches, then the aggregate task --------------------------------


def test_tasks_return_results_and_the_aggregate_combines_them(stocked: Side) -> None:
    state = sample_event("OrderPlaced")  # a rule started the execution with the event
    branches: dict[str, Any] = {}
    for check, task in TASKS.items():
        branches[check] = task(state, None)

    # What parallel_checks' ResultSelector + ResultPath "$.checks" hand to the aggregate.
    combined = aggregate_checks.task({**state, "checks": branches}, None)

    assert branches["shippingQuote"] == {"passed": True, "reason": None, "quoteCents": 799}
    assert combined["allPassed"] is True
    assert combined["orderId"] == "order-0001"
    assert parse_detail("AllChecksComplete", combined).order_id == "order-0001"
    assert stocked.published() == []  # tasks answer; they publish nothing
    assert scan(CHECKS_TABLE) == []


def test_the_aggregate_task_names_a_missing_branch(stocked: Side) -> None:
    state = {"order": sample_event("OrderPlaced")["detail"], "checks": {"inventory": {}}}
    with pytest.raises(ValueError, match="credit, shippingQuote"):
        aggregate_checks.task(state, None)


@pytest.mark.parametrize("check", CHECKS)
def test_each_check_calls_what_its_access_lists(
    stocked: Side, side_calls: CallRecorder, check: str
) -> None:
    event = sample_event("OrderPlaced")
    HANDLERS[check](event, FakeContext())
    HANDLERS[check](event, FakeContext())  # duplicate
    TASKS[check](event, None)

    called = side_calls.by_env()
    expected = run_check.CHECK_ACCESS[check]  # type: ignore[index]
    # Powertools' GetItem (fallback read) and DeleteItem (after a failure) are granted
    # for paths this run does not take.
    assert called["IDEMPOTENCY_TABLE"] <= expected["IDEMPOTENCY_TABLE"]
    assert {k: v for k, v in called.items() if k != "IDEMPOTENCY_TABLE"} == {
        k: v for k, v in expected.items() if k != "IDEMPOTENCY_TABLE"
    }


def test_the_join_calls_what_its_access_lists(stocked: Side, side_calls: CallRecorder) -> None:
    events = check_events(stocked)
    side_calls.reset()
    for event in [*events, events[0]]:
        aggregate_checks.handler(event, None)
    assert side_calls.by_env() == aggregate_checks.ACCESS


@pytest.mark.parametrize(("customer", "all_passed"), [("customer-0001", True), ("nobody", False)])
def test_the_fork_join_state_machine_runs_the_branches_and_joins_them(
    orchestrator: Orchestrator,
    monkeypatch: pytest.MonkeyPatch,
    customer: str,
    all_passed: bool,
) -> None:
    """pulumi_eventcraft.saga.parallel_checks executed by moto's Step Functions interpreter,
    each branch and the aggregate running this repository's task entries."""
    clear_handler_caches()
    orchestrator.world.seed_stock()
    create_table(CUSTOMERS, key="customerId")
    monkeypatch.setenv("CUSTOMERS_TABLE", CUSTOMERS)
    put_customer("customer-0001", creditLimitCents=10_000)
    branches = {check: orchestrator.function(f"check-{check}", TASKS[check]) for check in CHECKS}
    aggregate = orchestrator.function("aggregate-checks", aggregate_checks.task)

    described = orchestrator.run(
        parallel_checks(branches, aggregate),
        f"checks-{customer}",
        sample_event("OrderPlaced", customerId=customer),
    )

    assert described["status"] == "SUCCEEDED"  # a failed check is a result, not an error
    output = json.loads(described["output"])
    assert output["orderId"] == "order-0001"
    assert output["allPassed"] is all_passed
    assert output["credit"]["passed"] is all_passed
    assert output["inventory"]["passed"] and output["shippingQuote"]["quoteCents"] == 799
    assert sorted(orchestrator.calls) == sorted(
        [*(f"check-{c}" for c in CHECKS), "aggregate-checks"]
    )
