"""`sandbox.session` on its own: `speedups()` (restored on exit; the item-by-item
rollback of TransactWriteItems; the cached ASL parse), `_CachedReads`,
`_AwsCallCounter`, stack config overrides, and one deployed `SandboxSession` for its
basics and for `invariants()`, each invariant shown able to fail.

The saga scenarios themselves are tests/e2e's. The deploying tests share ONE session
(module scope, ~11 s to deploy, torn down at the module's end); every test that starts
moto of its own (mock_aws, a session with a bad config) comes before them in the file,
since only one sandbox runs in a process at a time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import responses as moto_responses
from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb import models as dynamodb_models
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from components.config import ConfigError
from sandbox.moto_deploy import Sandbox
from sandbox.session import (
    InvariantReport,
    SandboxSession,
    _AwsCallCounter,
    _CachedReads,
    _to_item,
    speedups,
)

REGION = "us-east-1"
INVARIANTS = (
    "every_order_final",
    "one_outcome_event_per_order",
    "inventory_conserved",
    "cancelled_orders_released_stock",
    "no_double_charge",
    "refunds_match_charges_of_cancelled_orders",
    "read_model_matches_event_store",
)


# ----------------------------------------------------------------------- speedups


def _patched_attributes() -> dict[str, Any]:
    """What speedups() replaces, read from where it replaces it."""
    return {
        "botocore.session.create_loader": botocore.session.create_loader,
        "moto responses.method_names_from_class": moto_responses.method_names_from_class,
        "moto dynamodb models.copy": dynamodb_models.copy,
        "DynamoDBBackend.transact_write_items": vars(dynamodb_models.DynamoDBBackend).get(
            "transact_write_items"
        ),
        "AmazonStateLanguageParser.parse": vars(AmazonStateLanguageParser).get("parse"),
    }


def test_speedups_replaces_its_attributes_and_restores_the_originals_on_exit() -> None:
    """Each patched attribute differs inside (the patch is real) and is the very same
    object again afterwards, also when the body raises."""
    originals = _patched_attributes()
    with speedups():
        inside = _patched_attributes()
    assert {k for k in originals if inside[k] is not originals[k]} == set(originals)
    assert all(_patched_attributes()[k] is v for k, v in originals.items())

    with pytest.raises(ZeroDivisionError), speedups():
        _ = 1 / 0
    assert all(_patched_attributes()[k] is v for k, v in originals.items())


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """moto with speedups on; tables `a` (hash key) and `b` (hash + range key), both
    with a NEW_AND_OLD_IMAGES stream, each holding one item."""
    with speedups(), mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        stream: Any = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        ddb.create_table(
            TableName="a",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=stream,
        )
        ddb.create_table(
            TableName="b",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=stream,
        )
        ddb.put_item(TableName="a", Item={"pk": {"S": "a1"}, "n": {"N": "1"}})
        ddb.put_item(TableName="b", Item={"pk": {"S": "b1"}, "sk": {"S": "x"}, "n": {"N": "1"}})
        yield ddb


def _items(ddb: Any, table: str) -> list[dict[str, Any]]:
    return sorted(ddb.scan(TableName=table)["Items"], key=lambda i: json.dumps(i, sort_keys=True))


def _stream_records(table: str) -> list[dict[str, Any]]:
    """Every record of the table's stream, read with GetRecords from TRIM_HORIZON."""
    arn = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=table)["Table"][
        "LatestStreamArn"
    ]
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    records: list[Any] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return records


def _transaction(failure: str | None = None) -> list[dict[str, Any]]:
    """Writes to both tables (update, new items, a delete). `failure`: "condition", a
    condition check in the middle that fails (moto goes on with the writes after it);
    "same item", a last write to an item already written (a ValidationException)."""
    writes: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": "a",
                "Key": {"pk": {"S": "a1"}},
                "UpdateExpression": "SET n = n + :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {"Put": {"TableName": "a", "Item": {"pk": {"S": "a2"}, "n": {"N": "2"}}}},
        {"Put": {"TableName": "b", "Item": {"pk": {"S": "b2"}, "sk": {"S": "y"}}}},
        {"Delete": {"TableName": "b", "Key": {"pk": {"S": "b1"}, "sk": {"S": "x"}}}},
    ]
    if failure == "condition":
        writes.insert(
            2,
            {
                "ConditionCheck": {
                    "TableName": "a",
                    "Key": {"pk": {"S": "absent"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        )
    elif failure == "same item":
        writes.append({"Put": {"TableName": "b", "Item": {"pk": {"S": "b2"}, "sk": {"S": "y"}}}})
    return writes


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("condition", "TransactionCanceledException"),
        ("same item", "ValidationException"),
    ],
)
def test_a_failed_transaction_leaves_items_and_streams_as_before(
    dynamodb: Any, failure: str, error: str
) -> None:
    """With moto's whole-table backup disabled by speedups (a table's "deep copy" is the
    table itself), a failed TransactWriteItems still leaves every touched table's
    items and stream records exactly as they were: `_transact_write_items` undid the
    writes made before (and after) the failing operation."""
    backend = dynamodb_models.dynamodb_backends["123456789012"][REGION]
    table = backend.tables["a"]
    assert dynamodb_models.copy.deepcopy(table) is table

    before = {t: (_items(dynamodb, t), _stream_records(t)) for t in ("a", "b")}
    assert [len(records) for _, records in before.values()] == [1, 1]
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=_transaction(failure))
    assert raised.value.response["Error"]["Code"] == error
    after = {t: (_items(dynamodb, t), _stream_records(t)) for t in ("a", "b")}
    assert after == before


def test_a_successful_transaction_writes_items_and_stream_records(dynamodb: Any) -> None:
    """Without a failure the transaction is moto's own: every write lands, each with
    its stream record."""
    dynamodb.transact_write_items(TransactItems=_transaction())
    assert _items(dynamodb, "a") == [
        {"pk": {"S": "a1"}, "n": {"N": "2"}},
        {"pk": {"S": "a2"}, "n": {"N": "2"}},
    ]
    assert _items(dynamodb, "b") == [{"pk": {"S": "b2"}, "sk": {"S": "y"}}]
    assert [r["eventName"] for r in _stream_records("a")] == ["INSERT", "MODIFY", "INSERT"]
    assert [r["eventName"] for r in _stream_records("b")] == ["INSERT", "INSERT", "REMOVE"]


def test_the_cached_asl_parse_gives_independent_executions() -> None:
    """A state machine's definition is parsed once for its creation and every
    execution, yet two executions with different input get their own output."""
    parses: list[str] = []
    parse = AmazonStateLanguageParser.parse

    def counting(definition: str) -> Any:
        parses.append(definition)
        return parse(definition)

    definition = json.dumps(
        {
            "StartAt": "Double",
            "States": {
                "Double": {
                    "Type": "Pass",
                    "Parameters": {"doubled.$": "States.MathAdd($.x, $.x)"},
                    "End": True,
                }
            },
        }
    )
    with (
        mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(counting)),
        speedups(),
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
    ):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="sfn", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        machine = sfn.create_state_machine(name="double", definition=definition, roleArn=role)
        executions = [
            sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], name=f"x{x}", input=json.dumps({"x": x})
            )["executionArn"]
            for x in (1, 20)
        ]
        outputs = [_finished(sfn, arn) for arn in executions]
    assert outputs == [("SUCCEEDED", {"doubled": 2}), ("SUCCEEDED", {"doubled": 40})]
    assert parses == [definition]


def _finished(sfn: Any, execution_arn: str) -> tuple[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described["status"], json.loads(described.get("output") or "null")
        time.sleep(0.01)


# ----------------------------------------------------------------------- cached reads


class _FakeClient:
    """Counts calls per method; `get_policy` fails as AWS does for no policy."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, kwargs))
        return {"call": len(self.calls)}

    def get_function(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("get_function", kwargs)

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("get_queue_attributes", kwargs)

    def get_policy(self, **kwargs: Any) -> dict[str, Any]:
        self._answer("get_policy", kwargs)
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "no policy"}}, "GetPolicy"
        )

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        return self._answer("invoke", kwargs)


def _cached(client: _FakeClient) -> Any:
    return _CachedReads(client, frozenset({"get_function", "get_queue_attributes", "get_policy"}))


def test_a_cached_read_is_served_once_per_clear() -> None:
    """The same read (same arguments) reaches the client once until clear(); other
    arguments are another read; methods not listed always go through."""
    client = _FakeClient()
    reads = _cached(client)
    first = reads.get_function(FunctionName="f")
    assert reads.get_function(FunctionName="f") == first == {"call": 1}
    assert reads.get_function(FunctionName="g") == {"call": 2}
    assert len(client.calls) == 2
    reads.clear()
    assert reads.get_function(FunctionName="f") == {"call": 3}
    assert reads.invoke(FunctionName="f") == {"call": 4}
    assert reads.invoke(FunctionName="f") == {"call": 5}


def test_dynamic_queue_attributes_are_never_cached() -> None:
    """ApproximateNumberOfMessages (and `All`) are read every time; the static ones
    (Policy, QueueArn, ...) once."""
    client = _FakeClient()
    reads = _cached(client)
    for names in (
        ["ApproximateNumberOfMessages"],
        ["All"],
        ["QueueArn", "ApproximateNumberOfMessages"],
    ):
        assert reads.get_queue_attributes(QueueUrl="q", AttributeNames=names) != (
            reads.get_queue_attributes(QueueUrl="q", AttributeNames=names)
        )
    assert len(client.calls) == 6
    static = reads.get_queue_attributes(QueueUrl="q", AttributeNames=["Policy", "QueueArn"])
    assert reads.get_queue_attributes(QueueUrl="q", AttributeNames=["Policy", "QueueArn"]) == static
    assert len(client.calls) == 7


def test_an_error_is_cached_and_raised_again() -> None:
    """A read that failed fails again from the cache (the same error, no new call)
    until clear()."""
    client = _FakeClient()
    reads = _cached(client)
    with pytest.raises(ClientError) as first:
        reads.get_policy(FunctionName="f")
    with pytest.raises(ClientError) as second:
        reads.get_policy(FunctionName="f")
    assert second.value is first.value
    assert len(client.calls) == 1
    reads.clear()
    with pytest.raises(ClientError):
        reads.get_policy(FunctionName="f")
    assert len(client.calls) == 2


# ----------------------------------------------------------------------- call counter


def test_the_call_counter_counts_handler_threads_by_function_and_uninstalls() -> None:
    """Requests from a `lambda:<function>:<request>` thread count for that function
    (and in `total`); anything else only in `other`; uninstall() restores moto."""
    original = BotocoreStubber.process_request
    counter = _AwsCallCounter()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        counter.install()
        try:
            worker = threading.Thread(
                target=lambda: (sqs.list_queues(), sqs.list_queues()), name="lambda:my-fn:abcd1234"
            )
            worker.start()
            worker.join()
            sqs.list_queues()
        finally:
            counter.uninstall()
        sqs.list_queues()  # not counted: uninstalled
    assert BotocoreStubber.process_request is original
    assert dict(counter.by_function) == {"my-fn": 2}
    assert dict(counter.by_operation) == {"sqs:ListQueues": 2}
    assert (counter.other, counter.total) == (1, 2)


# ----------------------------------------------------------------------- config


def test_config_overrides_are_merged_over_the_stack_file() -> None:
    """Bare keys go into the `order-saga:` namespace (non-strings as JSON), namespaced
    keys as they are; the stack file's other keys stay."""
    session = SandboxSession(
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
    session = SandboxSession("dev", config={"paymentTransientFailureRate": "2"})
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

    session: SandboxSession
    answers: list[dict[str, Any]]


@pytest.fixture(scope="module")
def ran() -> Iterator[Ran]:
    """The dev stack with `sagaMode` overridden to orchestration: stock seeded, two
    orders placed and run until quiet."""
    with SandboxSession("dev", config={"sagaMode": "orchestration"}) as running:
        running.seed_stock(SEEDED)
        answers = [running.place_order(customer, lines) for customer, lines in ORDERS]
        running.run_until_quiet()
        yield Ran(running, answers)


@pytest.fixture
def session(ran: Ran) -> SandboxSession:
    return ran.session


def test_an_override_deploys_what_its_saga_mode_deploys(session: SandboxSession) -> None:
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


def test_outputs_and_function_names(session: SandboxSession) -> None:
    """Short names map to deployed names and back; anything else passes unchanged."""
    assert set(session.outputs["tables"]) >= {"orders", "inventory", "payments", "history"}
    deployed = session.function_name("place-order")
    assert deployed == "order-saga-dev-saga-place-order"
    assert session.short_function_name(deployed) == "place-order"
    assert session.function_name("no-such-function") == "no-such-function"
    assert session.short_function_name("no-such-function") == "no-such-function"
    assert session.table("orders") == "saga-orders-table"
    assert session.queue_url("checks").endswith("/saga-checks-work-queue")


def test_an_unknown_table_names_the_tables_there(session: SandboxSession) -> None:
    with pytest.raises(KeyError) as raised:
        session.table("nope")
    text = raised.value.args[0]
    assert text.startswith("the stack has no 'nope' table; it has checks, customers, events")
    assert all(role in text for role in session.outputs["tables"])


def test_an_unknown_queue_names_the_queues_there(session: SandboxSession) -> None:
    with pytest.raises(KeyError) as raised:
        session.queue_url("nope")
    text = raised.value.args[0]
    assert "the stack has no queue 'nope'" in text
    assert "checks" in text
    assert "reserve-dlq" in text or "checks-dlq" in text


def test_seeded_stock_is_read_back_and_remembered(session: SandboxSession) -> None:
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


def test_invocations_and_aws_calls_are_counted_per_function(session: SandboxSession) -> None:
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


def test_the_invariants_hold_after_a_run(session: SandboxSession) -> None:
    report = session.invariants()
    assert list(report.results) == list(INVARIANTS)
    assert report.ok, report.problems
    assert report.problems == {}
    assert set(session.outcomes) == set(session.placed)


# -- each invariant, broken ---------------------------------------------------------


@contextmanager
def _altered(
    session: SandboxSession,
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
    raw_key = _to_item(key)
    original = ddb.get_item(TableName=table, Key=raw_key, ConsistentRead=True).get("Item")
    current = session.get(role, key)
    changed = change(dict(current) if current is not None else {})
    if changed is None:
        ddb.delete_item(TableName=table, Key=raw_key)
    else:
        ddb.put_item(TableName=table, Item=_to_item({**changed, **key}))
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


def _first_order(session: SandboxSession) -> tuple[str, dict[str, Any]]:
    order_id = session.placed[0]
    order = session.order(order_id)
    assert order is not None
    return order_id, order


def test_extra_stock_breaks_inventory_conserved_naming_the_sku(session: SandboxSession) -> None:
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


def test_an_order_not_final_breaks_every_order_final(session: SandboxSession) -> None:
    order_id, _ = _first_order(session)
    key = {"pk": f"order#{order_id}"}
    with _altered(session, "orders", key, lambda o: {**o, "status": "PAYING"}):
        problems = _broken(session.invariants(), "every_order_final")
    assert problems == [f"order {order_id} is PAYING"]


def test_a_status_unlike_its_outcome_event_breaks_one_outcome_event_per_order(
    session: SandboxSession,
) -> None:
    order_id, order = _first_order(session)
    flipped = "CANCELLED" if order["status"] == "COMPLETED" else "COMPLETED"
    key = {"pk": f"order#{order_id}"}
    with _altered(session, "orders", key, lambda o: {**o, "status": flipped}):
        problems = _broken(session.invariants(), "one_outcome_event_per_order")
    assert f"order {order_id} is {flipped}; outcome event: {order['status']}" in problems


def test_a_cancelled_order_holding_stock_breaks_cancelled_orders_released_stock(
    session: SandboxSession,
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


def test_charging_more_than_the_total_breaks_no_double_charge(session: SandboxSession) -> None:
    order_id, order = _first_order(session)
    total = order["totalCents"]
    key = {"pk": f"payment#{order_id}"}
    with _altered(
        session, "payments", key, lambda p: {**p, "orderId": order_id, "chargedCents": total + 1}
    ):
        problems = _broken(session.invariants(), "no_double_charge")
    assert problems == [f"order {order_id}: charged {total + 1} > total {total}"]


def test_a_second_payment_event_breaks_no_double_charge(session: SandboxSession) -> None:
    order_id = session.placed[0]
    before = set(session.payment_events.get(order_id, set()))
    session.payment_events[order_id] = {*before, "another-event-id", "and-another"}
    try:
        problems = _broken(session.invariants(), "no_double_charge")
    finally:
        session.payment_events[order_id] = before
    assert f"order {order_id}: {len(before) + 2} PaymentProcessed events" in problems


def test_a_refund_that_does_not_match_breaks_refunds_match_charges(
    session: SandboxSession,
) -> None:
    order_id, order = _first_order(session)
    key = {"pk": f"payment#{order_id}"}
    payment = session.get("payments", key) or {}
    charged = int(payment.get("chargedCents", 0))
    with _altered(
        session, "payments", key, lambda p: {**p, "orderId": order_id, "refundedCents": charged + 7}
    ):
        problems = _broken(session.invariants(), "refunds_match_charges_of_cancelled_orders")
    (problem,) = problems
    kind = "completed" if order["status"] == "COMPLETED" else "cancelled"
    assert problem.startswith(f"{kind} order {order_id}: payment ")
    assert problem.endswith(f"refunded {charged + 7}")


def test_a_missing_or_altered_read_model_row_breaks_read_model_matches_event_store(
    session: SandboxSession,
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
