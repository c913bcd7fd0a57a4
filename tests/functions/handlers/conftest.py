"""Shared fixtures of the handler tests: moto with the saga's tables, the outbox relay to
a bus whose events land in a capture queue, event builders, and a recorder of the AWS
calls each handler makes (to check its ACCESS declaration).

Table layouts (as the components create them; every key is `pk` S unless said):
    orders       order#<orderId> (order + saga state), request#<customerId>#<requestId>
    inventory    sku#<sku> {available}, reservation#<orderId>
    payments     payment#<orderId>
    shipments    shipment#<orderId>
    outbox       outbox#<eventId> rows; stream NEW_IMAGE; TTL expiresAt
    idempotency  key `id` S; TTL expiration (Powertools' layout)

Fixtures:
    aws                moto for the test, the tables created and the handlers'
                       environment set (ORDERS_TABLE, INVENTORY_TABLE, PAYMENTS_TABLE,
                       SHIPMENTS_TABLE, OUTBOX_TABLE, IDEMPOTENCY_TABLE, EVENT_BUS_NAME);
                       yields a `SagaWorld`
    orchestrator       the same world, plus moto's Step Functions interpreter invoking
                       Lambda functions whose code is a handler entry (in process)
    aws_calls          the (environment variable, IAM action) pairs the code called
    serializable_moto  moto with DynamoDB's isolation, for concurrency tests
    emitted            (autouse) every event the code under test emits, to the outbox
                       (`eventcraft.outbox.outbox_row`) or the bus (`eventcraft.publisher.
                       entry`); after each test, each must carry a customerId, the same
                       for all events of one order
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from contracts import Event, OrderEvent, OrderPlaced, sample_detail, sample_event
from eventcraft import outbox
from eventcraft import publisher as publisher_module
from eventcraft.publisher import Publisher
from tests.functions.awsenv import (
    CallRecorder,
    FakeContext,
    capture_bus,
    create_table,
    deserialize,
    drain,
    mocked,
    scan,
    stream_records,
)

TABLES: dict[str, str] = {
    "ORDERS_TABLE": "orders",
    "INVENTORY_TABLE": "inventory",
    "PAYMENTS_TABLE": "payments",
    "SHIPMENTS_TABLE": "shipments",
    "OUTBOX_TABLE": "outbox",
    "IDEMPOTENCY_TABLE": "idempotency",
}
BUS = "saga-bus"
CONTEXT = FakeContext()

# The stock the sample OrderPlaced (2 x sku-red-mug, 1 x sku-blue-pot) needs, and more.
STOCK: dict[str, int] = {"sku-red-mug": 10, "sku-blue-pot": 5}


@dataclass
class SagaWorld:
    """The moto world of a test: tables, the outbox relay and the capture queue."""

    capture_url: str
    relayed: set[str] = field(default_factory=set)

    # --- tables -----------------------------------------------------------------------

    def seed_stock(self, stock: Mapping[str, int] = STOCK) -> None:
        ddb = boto3.client("dynamodb")
        for sku, available in stock.items():
            ddb.put_item(
                TableName=TABLES["INVENTORY_TABLE"],
                Item={
                    "pk": {"S": f"sku#{sku}"},
                    "sku": {"S": sku},
                    "available": {"N": str(available)},
                },
            )

    def stock(self, sku: str) -> int | None:
        item = self.item("INVENTORY_TABLE", f"sku#{sku}")
        return None if item is None else int(item["available"])

    def item(self, table_env: str, pk: str) -> dict[str, Any] | None:
        response = boto3.client("dynamodb").get_item(
            TableName=TABLES[table_env], Key={"pk": {"S": pk}}, ConsistentRead=True
        )
        return deserialize(response["Item"]) if "Item" in response else None

    def scan(self, table_env: str) -> list[dict[str, Any]]:
        return scan(TABLES[table_env])

    def order(self, order_id: str) -> dict[str, Any]:
        item = self.item("ORDERS_TABLE", f"order#{order_id}")
        assert item is not None, f"no order {order_id}"
        return item

    def reserve_and_charge(self, order: OrderPlaced) -> None:
        """Run the inventory and payment steps of `order` (their use cases, as the
        choreography does before shipping): its stock RESERVED, its total CHARGED."""
        from saga.inventory_step import reserve
        from saga.payment_step import charge_of, pay

        self.seed_stock()
        assert reserve(order).reserved
        assert pay(charge_of(order)).charged

    def record_steps(self, *events: Event) -> None:
        """Write the step records that sample PaymentProcessed / OrderShipped events
        report (what the payment and shipping steps write with them), so that
        saga_progress takes them for what the steps recorded."""
        ddb = boto3.client("dynamodb")
        for event in events:
            detail = event.to_detail()
            if event.DETAIL_TYPE == "PaymentProcessed":
                table, item = (
                    "PAYMENTS_TABLE",
                    {
                        "pk": f"payment#{detail['orderId']}",
                        "orderId": detail["orderId"],
                        "status": "CHARGED",
                        "paymentId": detail["paymentId"],
                        "chargedCents": detail["amountCents"],
                        "amountCents": detail["amountCents"],
                        "currency": detail["currency"],
                    },
                )
            elif event.DETAIL_TYPE == "OrderShipped":
                table, item = (
                    "SHIPMENTS_TABLE",
                    {
                        "pk": f"shipment#{detail['orderId']}",
                        "orderId": detail["orderId"],
                        "status": "SHIPPED",
                        "shipmentId": detail["shipmentId"],
                    },
                )
            else:
                continue
            ddb.put_item(
                TableName=TABLES[table], Item=outbox.put(TABLES[table], item)["Put"]["Item"]
            )

    # --- events -------------------------------------------------------------------------

    def outbox_rows(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        rows = [r for r in self.scan("OUTBOX_TABLE") if str(r["pk"]).startswith("outbox#")]
        return [r for r in rows if detail_type is None or r["detailType"] == detail_type]

    def outbox_events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """The details in the outbox (what will be published), oldest first."""
        rows = sorted(self.outbox_rows(detail_type), key=lambda r: str(r["createdAt"]))
        return [{"detail-type": r["detailType"], **json.loads(r["detail"])} for r in rows]

    def relay(self) -> list[dict[str, Any]]:
        """Run the outbox relay on the stream records not relayed yet, then return the
        EventBridge events the bus delivered to the capture queue (as targets get them)."""
        records = [
            r
            for r in stream_records(TABLES["OUTBOX_TABLE"])
            if r["dynamodb"]["SequenceNumber"] not in self.relayed
        ]
        self.relayed.update(r["dynamodb"]["SequenceNumber"] for r in records)
        result = outbox.relay(
            records,
            table_name=TABLES["OUTBOX_TABLE"],
            publisher=Publisher(BUS, client=boto3.client("events")),
        )
        assert not result.failures, result.failures
        return self.captured()

    def captured(self) -> list[dict[str, Any]]:
        return drain(self.capture_url)


def _world(monkeypatch: pytest.MonkeyPatch) -> SagaWorld:
    """Create the tables and the capture bus in the active moto; set the environment."""
    ddb = boto3.client("dynamodb")
    for env_name, table in TABLES.items():
        key = "id" if env_name == "IDEMPOTENCY_TABLE" else "pk"
        create_table(table, key, stream=env_name == "OUTBOX_TABLE")
        monkeypatch.setenv(env_name, table)
    for table, ttl in (("outbox", outbox.TTL_ATTRIBUTE), ("idempotency", "expiration")):
        ddb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
        )
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    return SagaWorld(capture_bus(BUS))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[SagaWorld]:
    with mocked():
        yield _world(monkeypatch)


# --- orchestration: moto's Step Functions interpreter with the tasks run in process ------


class TaskError(Exception):
    """What the Lambda runtime reports for a handler's exception: its class name as the
    errorType (the name a state machine's Retry / Catch matches) and its message."""


@dataclass
class Orchestrator:
    """Lambda functions whose code is a handler entry of this repository (called in
    process, as the sandbox does) and state machines that invoke them."""

    world: SagaWorld
    entries: dict[str, Callable[[dict[str, Any], Any], Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    role: str = ""

    def function(self, name: str, entry: Callable[[dict[str, Any], Any], Any]) -> str:
        """A Lambda function named `name` running `entry(event, context)`; its ARN."""
        if not self.role:
            self.role = boto3.client("iam").create_role(
                RoleName="tasks", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        self.entries[name] = entry
        return boto3.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role,
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]

    def invoke(self, name: str, event: Any) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, str | bytes) else event
        self.calls.append(name)
        try:
            return json.dumps(self.entries[name](payload, CONTEXT)), False, ""
        except Exception as exc:  # the Lambda runtime's error shape
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return json.dumps(error), True, ""

    def run(
        self, definition: Mapping[str, Any], name: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Deploy `definition`, run one execution named `name` to its end; its description."""
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(
            name=f"saga-{name}", definition=json.dumps(definition), roleArn=self.role
        )["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(data))[
            "executionArn"
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return dict(described)
            time.sleep(0.02)
        raise AssertionError(f"execution {name} still RUNNING after 60 s")


@pytest.fixture
def orchestrator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Orchestrator]:
    """moto running state machines (its ASL interpreter), Lambda invocations dispatched
    in process to handler entries, retry waits recorded instead of slept."""
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    with mocked(config={"stepfunctions": {"execute_state_machine": True}}):
        orchestrator = Orchestrator(_world(monkeypatch))
        monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=orchestrator.sleeps.append))
        monkeypatch.setattr(
            LambdaFunction,
            "_invoke_lambda",
            lambda self, event=None: orchestrator.invoke(self.function_name, event),
        )
        yield orchestrator


@pytest.fixture
def serializable_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto does not isolate concurrent requests: a transaction is applied item by item
    and rolled back by restoring a deep copy of each table taken before it, and an
    UpdateItem reads, modifies and stores an item without a lock. Concurrent requests
    crash it ("dictionary changed size during iteration") or lose each other's writes
    (an UpdateItem that read before a transaction wrote stores its stale copy after it).
    DynamoDB makes every item write atomic and serializes transactions; this gives moto
    that isolation (one write or consistent read at a time), so a concurrency test checks
    OUR conditions, not moto's races."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("transact_write_items", "put_item", "update_item", "delete_item", "get_item"):
        original = getattr(DynamoDBBackend, name)

        def serialized(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, serialized)


# --- every event the code under test emits ------------------------------------------------


@dataclass
class Emitted:
    """The events emitted, in order: every outbox row and PutEvents entry built (also
    those of a transaction that then failed its condition: they must be right too)."""

    events: list[Event] = field(default_factory=list)

    def of(self, order_id: str) -> list[Event]:
        return [e for e in self.events if getattr(e, "order_id", None) == order_id]

    def customers(self) -> dict[str, set[str | None]]:
        """orderId -> the customerIds its emitted events carry."""
        result: dict[str, set[str | None]] = {}
        for event in self.events:
            if isinstance(event, OrderEvent):
                result.setdefault(event.order_id, set()).add(event.customer_id)
        return result

    def check_customers(self) -> None:
        """Every emitted order event names its order's customer (one per order)."""
        for order_id, customers in self.customers().items():
            assert None not in customers and len(customers) == 1, (
                f"the events emitted for order {order_id} carry customerIds {customers}: "
                "every producer must set the order's customer"
            )


@pytest.fixture(autouse=True)
def emitted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emitted]:
    """Records every event a handler emits; after the test, checks their customerIds."""
    recorder = Emitted()
    row, entry = outbox.outbox_row, publisher_module.entry

    def recording_row(event: Event, **kwargs: Any) -> dict[str, Any]:
        recorder.events.append(event)
        return row(event, **kwargs)

    def recording_entry(event: Event, **kwargs: Any) -> Any:
        recorder.events.append(event)
        return entry(event, **kwargs)

    monkeypatch.setattr(outbox, "outbox_row", recording_row)
    monkeypatch.setattr(publisher_module, "entry", recording_entry)
    yield recorder
    recorder.check_customers()


# --- recording the AWS calls of the code under test -------------------------------------


@pytest.fixture
def aws_calls(aws: SagaWorld) -> CallRecorder:
    """Records the calls made through eventcraft.clients (the handlers' clients) from now
    on. Test setup uses plain boto3 clients, which are not recorded."""
    return CallRecorder().attach("dynamodb", "events")


# --- event builders ------------------------------------------------------------------------


def order_placed(order_id: str = "order-1", **overrides: Any) -> OrderPlaced:
    """A valid OrderPlaced (the sample's lines) with a fresh event id."""
    fields = {"orderId": order_id, "eventId": str(uuid.uuid4()), **overrides}
    return OrderPlaced.model_validate(sample_detail("OrderPlaced", **fields))


def eventbridge(detail_type: str, **overrides: Any) -> dict[str, Any]:
    """A whole EventBridge event of `detail_type` (sample fields, overridden)."""
    overrides.setdefault("eventId", str(uuid.uuid4()))
    return sample_event(detail_type, **overrides)


def as_eventbridge(detail_type: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """An EventBridge event carrying `detail` as is."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "order-saga.test",
        "account": "123456789012",
        "time": "2025-01-15T10:30:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": dict(detail),
    }


def sqs_batch(*bodies: Any) -> dict[str, Any]:
    """An SQS event (as Lambda delivers it) whose records carry `bodies` (dicts are
    JSON-encoded, strings sent as is); message ids m-0, m-1, ..."""
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"rh-{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:saga-queue",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def place_sample_order(
    world: SagaWorld, order_id: str = "order-1", **overrides: Any
) -> OrderPlaced:
    """Write the order item (saga state PLACED) as place_order would, without its outbox
    row: for tests that start the saga at a later step."""
    from domain import orders

    placed = order_placed(order_id, **overrides)
    state = orders.new_saga(placed)
    boto3.client("dynamodb").put_item(
        TableName=TABLES["ORDERS_TABLE"],
        Item=outbox.put(
            TABLES["ORDERS_TABLE"], {"pk": orders.order_key(order_id), **orders.to_record(state)}
        )["Put"]["Item"],
    )
    return placed


def saga_state(order: OrderPlaced, **extra: Any) -> dict[str, Any]:
    """A Step Functions saga state: the OrderPlaced event as input, plus `extra`
    (e.g. results={...}, error={...})."""
    return {**as_eventbridge("OrderPlaced", order.to_detail()), **extra}
