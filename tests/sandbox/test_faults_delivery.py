"""The delivery faults (`eventcraft_sandbox.faults`) as AWS produces them.

`redeliver`: at-least-once delivery on every path (an SQS message after its visibility
timeout, a Lambda async event, a stream batch, a rule target, an EXPRESS start), each
copy with the same ids. `reorder`: standard queues and rule targets out of order
within the window, FIFO queues in order. Seeded, counted by the plan, nothing lost,
and `run_until_quiet` still ends.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import RunReport, Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import FakeInvoker, FakeMapping, FakeRecords, World
from eventcraft_sandbox.faults import FaultPlan

T0 = 1_800_000_000.0
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}}
SOURCE = "app.orders"


class Harness:
    """A bare moto world with the delivery installed under a fault plan."""

    def __init__(
        self,
        world: World,
        faults: Sequence[str],
        *,
        seed: int = 0,
        function_names: Mapping[str, str] | None = None,
    ) -> None:
        self.world = world
        self.clock = VirtualClock(start=T0)
        self.invoker = FakeInvoker()
        self.records = FakeRecords()
        self.plan = FaultPlan.parse(faults, seed=seed)
        self.plan.start = T0
        self.function_names = function_names
        self.delivery: Delivery | None = None
        self._bus = False

    # -- the program ----------------------------------------------------------------

    def function(self, name: str, handler: Callable[[Any], Any]) -> str:
        arn = self.world.function(name)
        self.invoker.register(name, handler)
        return arn

    def consumer(self, name: str, source_arn: str, handler: Any, **request: Any) -> str:
        """A function reading a queue or stream through an event source mapping."""
        arn = self.function(name, handler)
        self.mapping(arn, source_arn, **request)
        return arn

    def mapping(self, function_arn: str, source_arn: str, **request: Any) -> None:
        if ":sqs:" not in source_arn:
            request.setdefault("StartingPosition", "TRIM_HORIZON")
        self.records.event_source_mappings.append(
            FakeMapping(function_arn, source_arn, {"EventSourceArn": source_arn, **request})
        )

    def rule(self, name: str, *targets: str, role: str | None = None) -> str:
        """A rule on the `orders` bus matching every event of SOURCE, to `targets`
        (queue ARNs: standard queues EventBridge may send to; functions: allowed)."""
        events = self.world.events
        if not self._bus:
            events.create_event_bus(Name="orders")
            self._bus = True
        rule_arn = str(
            events.put_rule(
                Name=name, EventBusName="orders", EventPattern=json.dumps({"source": [SOURCE]})
            )["RuleArn"]
        )
        entries = []
        for index, target in enumerate(targets):
            if ":sqs:" in target:
                self.world.sqs.set_queue_attributes(
                    QueueUrl=self.world.sqs.get_queue_url(QueueName=target.split(":")[5])[
                        "QueueUrl"
                    ],
                    Attributes={"Policy": _send_policy(target, rule_arn)},
                )
            elif ":lambda:" in target:
                self.world.allow_rule(target, rule_arn)
            entry = {"Id": f"t{index}", "Arn": target}
            if role and ":states:" in target:
                entry["RoleArn"] = role
            entries.append(entry)
        events.put_targets(Rule=name, EventBusName="orders", Targets=entries)
        return rule_arn

    def put(self, detail: Mapping[str, Any]) -> str:
        response = self.world.events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": "OrderPlaced",
                    "Detail": json.dumps(detail),
                    "EventBusName": "orders",
                }
            ]
        )
        assert response["FailedEntryCount"] == 0
        return str(response["Entries"][0]["EventId"])

    # -- running ----------------------------------------------------------------------

    def start(self) -> Delivery:
        self.delivery = Delivery(
            Scheduler(self.clock),
            self.invoker,
            self.records,
            faults=self.plan,
            function_names=self.function_names,
        ).install()
        return self.delivery

    def run(self) -> RunReport:
        assert self.delivery is not None
        return self.delivery.run_until_quiet()

    def now(self) -> float:
        return self.clock.now() - T0

    def depth(self, url: str) -> int:
        attributes = self.world.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


def _send_policy(queue_arn: str, rule_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
    )


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(config=MOTO_CONFIG):
        yield World()


@pytest.fixture
def harness(world: World) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(
        *faults: str, seed: int = 0, function_names: Mapping[str, str] | None = None
    ) -> Harness:
        made.append(Harness(world, faults, seed=seed, function_names=function_names))
        return made[-1]

    yield make
    for h in made:
        if h.delivery is not None:
            h.delivery.uninstall()


def send(world: World, url: str, *bodies: str, **params: Any) -> list[str]:
    return [
        str(world.sqs.send_message(QueueUrl=url, MessageBody=body, **params)["MessageId"])
        for body in bodies
    ]


def sqs_bodies(event: Mapping[str, Any]) -> list[str]:
    return [str(r["body"]) for r in event["Records"]]


# ------------------------------------------------------------------ redeliver


def test_a_handled_sqs_message_comes_back_after_its_visibility_timeout_with_the_same_ids(
    world: World, harness: Callable[..., Harness]
) -> None:
    h = harness("redeliver@sqs=1")
    url, arn = world.queue("orders", visibility=30)
    seen: dict[str, list[tuple[float, str, str, str]]] = defaultdict(list)

    def handle(event: dict[str, Any]) -> None:
        for r in event["Records"]:
            seen[r["messageId"]].append(
                (
                    h.now(),
                    r["body"],
                    r["messageAttributes"]["eventId"]["stringValue"],
                    r["attributes"]["ApproximateReceiveCount"],
                )
            )

    h.consumer("orders-fn", arn, handle)
    delivery = h.start()
    sent = {
        message_id: i
        for i in range(3)
        for message_id in send(
            world,
            url,
            json.dumps({"orderId": f"o-{i}"}),
            MessageAttributes={"eventId": {"DataType": "String", "StringValue": f"e-{i}"}},
        )
    }

    h.run()

    assert set(seen) == set(sent)
    for message_id, deliveries in seen.items():
        (first_at, body, event_id, count), (again_at, body_again, event_id_again, count_again) = (
            deliveries
        )
        i = sent[message_id]
        assert (body, event_id) == (json.dumps({"orderId": f"o-{i}"}), f"e-{i}")
        assert (body_again, event_id_again) == (body, event_id)
        assert (count, count_again) == ("1", "2")
        assert again_at >= first_at + 30
    assert h.plan.snapshot() == {"redeliver": 3}
    assert h.depth(url) == 0
    assert [e.outcome for e in delivery.log.of("sqs.redeliver")] == ["kept"] * 3


def test_redeliver_on_a_function_covers_only_its_queues_and_never_a_fifo_queue(
    world: World, harness: Callable[..., Harness]
) -> None:
    # The fault names functions by their short names (a stack's `functions` output).
    h = harness(
        "redeliver@payments=1",
        "redeliver@ledger=1",
        function_names={"app-dev-payments": "payments", "app-dev-ledger": "ledger"},
    )
    charges_url, charges = world.queue("charges")
    shipments_url, shipments = world.queue("shipments")
    ledger_url, ledger = world.queue(
        "ledger.fifo", FifoQueue="true", ContentBasedDeduplication="true"
    )
    got: dict[str, list[str]] = defaultdict(list)
    h.consumer("app-dev-payments", charges, lambda e: got["payments"].extend(sqs_bodies(e)))
    h.consumer("app-dev-shipping", shipments, lambda e: got["shipping"].extend(sqs_bodies(e)))
    h.consumer("app-dev-ledger", ledger, lambda e: got["ledger"].extend(sqs_bodies(e)))
    h.start()
    send(world, charges_url, "c1", "c2")
    send(world, shipments_url, "s1", "s2")
    send(world, ledger_url, "l1", "l2", MessageGroupId="all")

    h.run()

    assert Counter(got["payments"]) == {"c1": 2, "c2": 2}
    assert got["shipping"] == ["s1", "s2"]
    assert got["ledger"] == ["l1", "l2"]
    assert h.plan.snapshot() == {"redeliver": 2}
    assert [h.depth(u) for u in (charges_url, shipments_url, ledger_url)] == [0, 0, 0]


def test_an_async_event_that_succeeded_is_invoked_again_with_the_same_payload(
    world: World, harness: Callable[..., Harness]
) -> None:
    h = harness("redeliver@lambda=1", seed=3)
    invoked: list[tuple[float, dict[str, Any]]] = []

    def greet(event: dict[str, Any]) -> dict[str, Any]:
        invoked.append((h.now(), event))
        return {"hello": event["name"]}

    function = h.function("greeter", greet)
    url, queue = world.queue("greeted")
    world.lambda_.put_function_event_invoke_config(
        FunctionName="greeter", DestinationConfig={"OnSuccess": {"Destination": queue}}
    )
    delivery = h.start()
    delivery.submit_async(function, {"name": "ada", "eventId": "e-1"})
    delivery.submit_async(function, {"name": "bob", "eventId": "e-2"})

    h.run()

    assert Counter(e["eventId"] for _, e in invoked) == {"e-1": 2, "e-2": 2}
    for event_id in ("e-1", "e-2"):
        (first_at, first), (again_at, again) = [
            (at, e) for at, e in invoked if e["eventId"] == event_id
        ]
        assert again == first
        assert 1 <= again_at - first_at < 60
    records = [json.loads(body) for body in world.bodies(url)]
    assert Counter(r["requestContext"]["requestId"] for r in records).most_common()[0][1] == 2
    assert len({r["requestContext"]["requestId"] for r in records}) == 2
    assert all(r["requestContext"]["condition"] == "Success" for r in records)
    assert h.plan.snapshot() == {"redeliver": 2}


def _table_stream(world: World) -> str:
    created = world.dynamodb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    return str(created["TableDescription"]["LatestStreamArn"])


def _kinesis_stream(world: World) -> str:
    world.kinesis.create_stream(StreamName="activity", ShardCount=1)
    return str(
        world.kinesis.describe_stream(StreamName="activity")["StreamDescription"]["StreamARN"]
    )


@pytest.mark.parametrize("service", ["dynamodb", "kinesis"])
def test_a_stream_batch_is_read_again_with_the_same_records_and_sequence_numbers(
    world: World, harness: Callable[..., Harness], service: str
) -> None:
    h = harness(f"redeliver@{service}=1")
    batches: dict[str, list[list[tuple[str, str]]]] = defaultdict(list)

    def table_batch(event: dict[str, Any]) -> None:
        batches["dynamodb"].append(
            [
                (r["dynamodb"]["Keys"]["id"]["S"], r["dynamodb"]["SequenceNumber"])
                for r in event["Records"]
            ]
        )

    def kinesis_batch(event: dict[str, Any]) -> None:
        batches["kinesis"].append(
            [(r["kinesis"]["partitionKey"], r["eventID"]) for r in event["Records"]]
        )

    h.consumer("table-fn", _table_stream(world), table_batch, BatchSize=2)
    h.consumer("kinesis-fn", _kinesis_stream(world), kinesis_batch, BatchSize=2)
    h.start()
    for key in ("o1", "o2", "o3"):
        world.dynamodb.put_item(TableName="orders", Item={"id": {"S": key}})
        world.kinesis.put_record(StreamName="activity", Data=b"{}", PartitionKey=key)

    h.run()

    for source, got in batches.items():
        keys = [[key for key, _ in batch] for batch in got]
        if source == service:
            assert keys == [["o1", "o2"], ["o1", "o2"], ["o3"], ["o3"]]
            assert got[0] == got[1] and got[2] == got[3]  # the same sequence numbers
        else:
            assert keys == [["o1", "o2"], ["o3"]]
    assert h.plan.snapshot() == {"redeliver": 2}


def test_a_rule_target_is_delivered_twice_with_the_same_event_id(
    world: World, harness: Callable[..., Harness]
) -> None:
    h = harness("redeliver@events=1")
    url, queue = world.queue("audit")
    seen: list[tuple[float, str]] = []
    function = h.function("notify", lambda e: seen.append((h.now(), e["id"])))
    h.rule("fan-out", queue, function)
    h.start()
    event_ids = [h.put({"orderId": "o-1"}), h.put({"orderId": "o-2"})]

    h.run()

    assert Counter(json.loads(body)["id"] for body in world.bodies(url)) == dict.fromkeys(
        event_ids, 2
    )
    # Twice, not four times: Lambda's own event queue is not covered by `@events`.
    assert Counter(event_id for _, event_id in seen) == dict.fromkeys(event_ids, 2)
    for event_id in event_ids:
        first_at, again_at = [at for at, e in seen if e == event_id]
        assert 1 <= again_at - first_at < 60
    assert h.plan.snapshot() == {"redeliver": 4}


def test_an_express_execution_is_started_twice_with_the_same_input_a_standard_one_once(
    world: World, harness: Callable[..., Harness]
) -> None:
    h = harness("redeliver@states=1")
    inputs: list[dict[str, Any]] = []

    def step(event: dict[str, Any]) -> dict[str, Any]:
        inputs.append(event)
        return event

    function = h.function("step", step)
    role = world.role("saga-role", "states.amazonaws.com")
    definition = json.dumps(
        {"StartAt": "Step", "States": {"Step": {"Type": "Task", "Resource": function, "End": True}}}
    )
    machines = {
        kind: str(
            world.sfn.create_state_machine(
                name=kind.lower(), definition=definition, roleArn=role, type=kind
            )["stateMachineArn"]
        )
        for kind in ("EXPRESS", "STANDARD")
    }
    delivery = h.start()
    with h.invoker.in_moto_lambda():
        for kind, machine in machines.items():
            world.sfn.start_execution(
                stateMachineArn=machine,
                name="o-1",
                input=json.dumps({"orderId": "o-1", "machine": kind}),
            )
        h.run()

    assert Counter(e["machine"] for e in inputs) == {"EXPRESS": 2, "STANDARD": 1}
    first, again = [e for e in inputs if e["machine"] == "EXPRESS"]
    assert again == first
    log = [(e.source, e.target, e.outcome) for e in delivery.log.of("stepfunctions.redeliver")]
    assert log == [
        ("express", "o-1-redelivered-1", "scheduled"),
        ("express", "o-1-redelivered-1", "started"),
    ]
    assert h.plan.snapshot() == {"redeliver": 1}


# -------------------------------------------------------------------- reorder


def test_a_standard_queue_delivers_out_of_order_within_the_window_a_fifo_queue_in_order(
    world: World, harness: Callable[..., Harness]
) -> None:
    h = harness("reorder@sqs=30", seed=1)
    standard_url, standard = world.queue("events")
    fifo_url, fifo = world.queue(
        "payments.fifo", FifoQueue="true", ContentBasedDeduplication="true"
    )
    got: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for name, arn in (("standard", standard), ("fifo", fifo)):
        h.consumer(
            f"{name}-fn",
            arn,
            lambda e, name=name: got[name].extend((h.now(), b) for b in sqs_bodies(e)),
            BatchSize=1,
        )
    h.start()
    sent = [f"m{i:02d}" for i in range(20)]
    send(world, standard_url, *sent)
    send(world, fifo_url, *sent, MessageGroupId="all")

    h.run()

    standard_order = [body for _, body in got["standard"]]
    assert standard_order != sent
    assert sorted(standard_order) == sent  # each once: nothing lost, nothing doubled
    assert max(at for at, _ in got["standard"]) < 30.01
    assert [body for _, body in got["fifo"]] == sent
    assert h.plan.snapshot() == {"reorder": 20}
    assert (h.depth(standard_url), h.depth(fifo_url)) == (0, 0)


def test_rule_targets_get_the_events_out_of_order_within_the_window(
    world: World, harness: Callable[..., Harness]
) -> None:
    h = harness("reorder@events=30", seed=2)
    url, queue = world.queue("audit")
    seen: list[tuple[float, int]] = []
    function = h.function("notify", lambda e: seen.append((h.now(), e["detail"]["n"])))
    h.rule("fan-out", queue, function)
    h.start()
    for n in range(20):
        h.put({"n": n})

    h.run()

    to_function = [n for _, n in seen]
    to_queue = [json.loads(body)["detail"]["n"] for body in world.bodies(url)]
    for order in (to_function, to_queue):
        assert order != list(range(20))
        assert sorted(order) == list(range(20))
    assert to_function != to_queue  # each delivery has its own delay
    assert max(at for at, _ in seen) < 30
    assert h.plan.snapshot() == {"reorder": 40}


def test_reorder_on_a_function_holds_back_only_the_deliveries_to_it(
    world: World, harness: Callable[..., Harness]
) -> None:
    h = harness("reorder@audit=30", seed=4, function_names={"app-dev-audit": "audit"})
    got: dict[str, list[int]] = defaultdict(list)

    def consumer(name: str) -> Callable[[dict[str, Any]], None]:
        def handle(event: dict[str, Any]) -> None:
            if "Records" in event:  # its queue
                got[f"{name} queue"].extend(int(b) for b in sqs_bodies(event))
            else:  # the rule
                got[f"{name} rule"].append(event["detail"]["n"])

        return handle

    audit = h.function("app-dev-audit", consumer("audit"))
    mailer = h.function("app-dev-mailer", consumer("mailer"))
    h.rule("fan-out", audit, mailer)
    urls = {}
    for name, function in (("audit", audit), ("mailer", mailer)):
        urls[name], queue = world.queue(f"{name}-queue")
        h.mapping(function, queue, BatchSize=1)
    h.start()
    for n in range(10):
        h.put({"n": n})
        send(world, urls["audit"], str(n))
        send(world, urls["mailer"], str(n))

    h.run()

    assert got["mailer rule"] == got["mailer queue"] == list(range(10))
    for held_back in (got["audit rule"], got["audit queue"]):
        assert held_back != list(range(10))
        assert sorted(held_back) == list(range(10))
    assert h.plan.snapshot() == {"reorder": 20}


# ------------------------------------------------------------------- together


def _run_with_every_delivery_fault(seed: int) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Queues (standard, FIFO), a rule (to a function and a consumed queue) and a table
    stream, under `redeliver=0.5` and `reorder=20` everywhere: what each function got,
    in order, and the fault counts. Asserts the run ends with every queue empty."""
    with mock_aws(config=MOTO_CONFIG):
        world = World()
        h = Harness(world, ["redeliver=0.5", "reorder=20"], seed=seed)
        got: dict[str, list[str]] = defaultdict(list)
        standard_url, standard = world.queue("standard")
        fifo_url, fifo = world.queue(
            "work.fifo", FifoQueue="true", ContentBasedDeduplication="true"
        )
        fed_url, fed = world.queue("fed")
        for name, arn in (("standard", standard), ("fifo", fifo)):
            h.consumer(f"{name}-fn", arn, lambda e, n=name: got[n].extend(sqs_bodies(e)))
        h.consumer(  # the rule's events: their ids are random, their `n` is not
            "fed-fn",
            fed,
            lambda e: got["fed"].extend(str(json.loads(b)["detail"]["n"]) for b in sqs_bodies(e)),
        )
        h.consumer(
            "table-fn",
            _table_stream(world),
            lambda e: got["table"].extend(r["dynamodb"]["Keys"]["id"]["S"] for r in e["Records"]),
        )
        notify = h.function("notify", lambda e: got["rule"].append(str(e["detail"]["n"])))
        h.rule("fan-out", notify, fed)
        h.start()
        for n in range(10):
            send(world, standard_url, str(n))
            send(world, fifo_url, str(n), MessageGroupId="all")
            h.put({"n": n})
            world.dynamodb.put_item(TableName="orders", Item={"id": {"S": str(n)}})

        report = h.run()

        assert report.steps > 0
        assert [h.depth(u) for u in (standard_url, fifo_url, fed_url)] == [0, 0, 0]
        assert h.delivery is not None
        h.delivery.uninstall()
        return dict(got), h.plan.snapshot()


def test_every_delivery_fault_at_once_loses_nothing_ends_and_is_seeded() -> None:
    got, counts = _run_with_every_delivery_fault(seed=5)

    sent = [str(n) for n in range(10)]
    for path in ("standard", "rule", "fed", "table"):
        assert set(got[path]) == set(sent), path  # every one at least once
    assert got["fifo"] == sent  # FIFO: in order, never doubled
    assert len(got["standard"]) > len(sent) and got["standard"][: len(sent)] != sent
    assert counts["redeliver"] > 0 and counts["reorder"] > 0

    assert _run_with_every_delivery_fault(seed=5) == (got, counts)
    assert _run_with_every_delivery_fault(seed=6)[0] != got
