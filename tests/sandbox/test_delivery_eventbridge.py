"""EventBridge delivery: the project's matcher, disabled rules, input transformers,
Lambda targets (async retries, destinations), retry policies and DLQs, Step Functions,
Kinesis and bus targets, archives and replay, determinism."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.common import DeliveryFailure
from eventcraft_sandbox.delivery.testing import FakeInvoker, FakeRecords, World

T0 = 1_800_000_000.0
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}}


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(config=MOTO_CONFIG):
        yield World()


class Harness:
    def __init__(self, world: World) -> None:
        self.world = world
        self.clock = VirtualClock(start=T0)
        self.scheduler = Scheduler(self.clock)
        self.invoker = FakeInvoker()
        self.delivery = Delivery(self.scheduler, self.invoker, FakeRecords()).install()
        self.bus_arn = str(world.events.create_event_bus(Name="orders")["EventBusArn"])

    def run(self) -> None:
        self.delivery.run_until_quiet()

    def now(self) -> float:
        return self.clock.now() - T0

    def rule(self, name: str, pattern: dict[str, Any], **params: Any) -> str:
        return str(
            self.world.events.put_rule(
                Name=name, EventBusName="orders", EventPattern=json.dumps(pattern), **params
            )["RuleArn"]
        )

    def target(self, rule: str, target_id: str, arn: str, **params: Any) -> None:
        response = self.world.events.put_targets(
            Rule=rule, EventBusName="orders", Targets=[{"Id": target_id, "Arn": arn, **params}]
        )
        assert response["FailedEntryCount"] == 0

    def queue_target(self, rule: str, rule_arn: str, name: str, **params: Any) -> str:
        url, arn = self.world.queue(name, senders=[rule_arn])
        self.target(rule, name, arn, **params)
        return url

    def put(self, detail_type: str, detail: dict[str, Any], **entry: Any) -> str:
        response = self.world.events.put_events(
            Entries=[
                {
                    "Source": "order-saga.orders",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": "orders",
                    **entry,
                }
            ]
        )
        assert response["FailedEntryCount"] == 0
        return str(response["Entries"][0]["EventId"])


@pytest.fixture
def harness(world: World) -> Iterator[Harness]:
    h = Harness(world)
    yield h
    h.delivery.uninstall()


def details(world: World, url: str) -> list[Any]:
    return [json.loads(body)["detail"] for body in world.bodies(url)]


def test_rules_match_with_the_projects_matcher_where_moto_gets_it_wrong(
    world: World, harness: Harness
) -> None:
    pattern = {
        "detail": {
            "paid": [True],
            "lines": {"sku": ["SKU-1"]},
            "amount": [{"numeric": [">", 100]}],
            "coupon": [{"exists": False}],
        }
    }
    rule_arn = harness.rule("big-paid-orders", pattern)
    url = harness.queue_target("big-paid-orders", rule_arn, "big")
    good = {"paid": True, "lines": [{"sku": "SKU-0"}, {"sku": "SKU-1"}], "amount": 150}
    harness.put("OrderPlaced", good)
    harness.put("OrderPlaced", {**good, "paid": 1})  # moto: true == 1
    harness.put("OrderPlaced", {**good, "lines": []})  # arrays of objects
    harness.put("OrderPlaced", {**good, "amount": 100})
    harness.put("OrderPlaced", {**good, "amount": "150"})  # numeric needs a number
    harness.put("OrderPlaced", {**good, "coupon": "SAVE10"})

    harness.run()

    assert details(world, url) == [good]


def test_the_event_envelope_is_eventbridges(world: World, harness: Harness) -> None:
    rule_arn = harness.rule("all", {"source": ["order-saga.orders"]})
    url = harness.queue_target("all", rule_arn, "all")
    event_id = harness.put("OrderPlaced", {"orderId": "o-1"}, Resources=["arn:aws:x:::y"])
    harness.run()

    (body,) = world.bodies(url)
    event = json.loads(body)
    assert event == {
        "version": "0",
        "id": event_id,
        "detail-type": "OrderPlaced",
        "source": "order-saga.orders",
        "account": "123456789012",
        "time": "2027-01-15T08:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:x:::y"],
        "detail": {"orderId": "o-1"},
    }


def test_a_disabled_rule_delivers_nothing(world: World, harness: Harness) -> None:
    rule_arn = harness.rule("off", {"source": ["order-saga.orders"]}, State="DISABLED")
    url = harness.queue_target("off", rule_arn, "off")
    harness.put("OrderPlaced", {"orderId": "o-1"})
    harness.run()
    assert world.bodies(url) == []

    world.events.enable_rule(Name="off", EventBusName="orders")
    harness.put("OrderPlaced", {"orderId": "o-2"})
    harness.run()
    assert details(world, url) == [{"orderId": "o-2"}]


def test_input_transformer_input_and_input_path(world: World, harness: Harness) -> None:
    rule_arn = harness.rule("shaped", {"detail-type": ["OrderPlaced"]})
    json_url = harness.queue_target(
        "shaped",
        rule_arn,
        "json-template",
        InputTransformer={
            "InputPathsMap": {
                "id": "$.detail.orderId",
                "amount": "$.detail.amount",
                "nope": "$.detail.nope",
            },
            "InputTemplate": (
                '{"order": <id>, "amount": <amount>, "text": "order <id> costs <amount>", '
                '"rule": <aws.events.rule-arn>, "name": "<aws.events.rule-name>", '
                '"event": <aws.events.event.json>, "missing": <nope>}'
            ),
        },
    )
    text_url = harness.queue_target(
        "shaped",
        rule_arn,
        "text-template",
        InputTransformer={
            "InputPathsMap": {"id": "$.detail.orderId", "sku": "$.detail.lines[0].sku"},
            "InputTemplate": "Order <id> starts with <sku>",
        },
    )
    constant_url = harness.queue_target("shaped", rule_arn, "constant", Input='{"ping": true}')
    path_url = harness.queue_target("shaped", rule_arn, "path", InputPath="$.detail.lines")
    lines = [{"sku": "SKU-1"}, {"sku": "SKU-2"}]
    event_id = harness.put("OrderPlaced", {"orderId": "o-1", "amount": 12.5, "lines": lines})

    harness.run()

    (body,) = world.bodies(json_url)
    shaped = json.loads(body)
    assert shaped["order"] == "o-1"
    assert shaped["amount"] == 12.5
    assert shaped["text"] == "order o-1 costs 12.5"
    assert shaped["rule"] == rule_arn
    assert shaped["name"] == "shaped"
    assert shaped["event"]["id"] == event_id
    assert shaped["event"]["detail"]["lines"] == lines
    assert body.endswith('"missing": null}')
    assert world.bodies(text_url) == ["Order o-1 starts with SKU-1"]
    assert world.bodies(constant_url) == ['{"ping": true}']
    assert json.loads(world.bodies(path_url)[0]) == lines


def lambda_target(
    world: World, harness: Harness, name: str, handler: Any, *, allow: bool = True
) -> tuple[str, str]:
    rule_arn = harness.rule(name, {"detail-type": ["OrderPlaced"]})
    function = world.function(f"{name}-fn")
    harness.invoker.register(f"{name}-fn", handler)
    if allow:
        world.allow_rule(function, rule_arn)
    return rule_arn, function


def test_a_failing_lambda_target_is_retried_by_lambda_then_sent_to_its_on_failure_queue(
    world: World, harness: Harness
) -> None:
    attempts: list[float] = []

    class PaymentDeclined(Exception):
        pass

    def pay(event: dict[str, Any]) -> None:
        attempts.append(harness.now())
        raise PaymentDeclined(f"card declined for {event['detail']['orderId']}")

    _, function = lambda_target(world, harness, "pay", pay)
    failures_url, failures_arn = world.queue("pay-failures")
    world.lambda_.put_function_event_invoke_config(
        FunctionName=function,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )
    harness.target("pay", "pay-fn", function)
    harness.put("OrderPlaced", {"orderId": "o-7"})

    harness.run()

    # Lambda's asynchronous retries: one minute, then two minutes later.
    assert attempts == [0, 60, 180]
    (body,) = world.bodies(failures_url)
    record = json.loads(body)
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == f"{function}:$LATEST"
    assert record["requestPayload"]["detail"] == {"orderId": "o-7"}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"] == {
        "errorType": "PaymentDeclined",
        "errorMessage": "card declined for o-7",
    }


def test_a_lambda_target_the_rule_may_not_invoke_goes_to_the_dlq_without_retries(
    world: World, harness: Harness
) -> None:
    calls: list[Any] = []
    _, function = lambda_target(world, harness, "locked", calls.append, allow=False)
    dlq_url, dlq_arn = world.queue("locked-dlq")
    rule_arn = world.events.describe_rule(Name="locked", EventBusName="orders")["Arn"]
    allow_dlq(world, dlq_url, dlq_arn, rule_arn)
    harness.target(
        "locked",
        "locked-fn",
        function,
        RetryPolicy={"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 3600},
        DeadLetterConfig={"Arn": dlq_arn},
    )
    harness.put("OrderPlaced", {"orderId": "o-1"})

    harness.run()

    assert calls == []
    (message,) = world.messages(dlq_url)
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "NO_PERMISSIONS"
    assert attributes["RETRY_ATTEMPTS"] == "0"
    assert attributes["RULE_ARN"] == rule_arn
    assert attributes["TARGET_ARN"] == function
    assert json.loads(message["Body"])["detail"] == {"orderId": "o-1"}
    assert harness.now() == 0


def allow_dlq(world: World, url: str, arn: str, rule_arn: str) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    world.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})


def failing_target(
    world: World, harness: Harness, retry_policy: dict[str, int]
) -> tuple[str, str, list[float]]:
    """A queue target whose deliveries are throttled; returns (rule ARN, DLQ URL, times)."""
    rule_arn = harness.rule("throttled", {"detail-type": ["OrderPlaced"]})
    _, target_arn = world.queue("throttled-target", senders=[rule_arn])
    dlq_url, dlq_arn = world.queue("throttled-dlq")
    allow_dlq(world, dlq_url, dlq_arn, rule_arn)
    harness.target(
        "throttled",
        "throttled-target",
        target_arn,
        RetryPolicy=retry_policy,
        DeadLetterConfig={"Arn": dlq_arn},
    )
    attempts: list[float] = []
    send = harness.delivery.ctx.send_to_queue_as_service

    def throttled(queue_arn: str, body: str, **kwargs: Any) -> None:
        if queue_arn == target_arn:
            attempts.append(harness.now())
            raise DeliveryFailure("THROTTLING", "Rate exceeded", retriable=True)
        send(queue_arn, body, **kwargs)

    harness.delivery.ctx.send_to_queue_as_service = throttled  # type: ignore[method-assign]
    return rule_arn, dlq_url, attempts


def test_a_failing_target_is_retried_with_backoff_then_dead_lettered(
    world: World, harness: Harness
) -> None:
    rule_arn, dlq_url, attempts = failing_target(
        world, harness, {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    )
    harness.put("OrderPlaced", {"orderId": "o-1"})

    harness.run()

    assert attempts == [0, 1, 3, 7]
    (message,) = world.messages(dlq_url)
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "RULE_ARN": rule_arn,
        "TARGET_ARN": attributes["TARGET_ARN"],
        "ERROR_CODE": "THROTTLING",
        "ERROR_MESSAGE": "Rate exceeded",
        "RETRY_ATTEMPTS": "3",
        "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
    }
    assert attributes["TARGET_ARN"].endswith(":throttled-target")


def test_retries_stop_at_the_maximum_event_age(world: World, harness: Harness) -> None:
    _, dlq_url, attempts = failing_target(
        world, harness, {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 60}
    )
    harness.put("OrderPlaced", {"orderId": "o-1"})

    harness.run()

    assert attempts == [0, 1, 3, 7, 15, 31]
    (message,) = world.messages(dlq_url)
    condition = message["MessageAttributes"]["EXHAUSTED_RETRY_CONDITION"]["StringValue"]
    assert condition == "MaximumEventAgeInSeconds"


def state_machine(world: World) -> str:
    role = world.role("sfn-role", "states.amazonaws.com")
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    return str(
        world.sfn.create_state_machine(
            name="saga", definition=json.dumps(definition), roleArn=role
        )["stateMachineArn"]
    )


def test_a_step_functions_target_starts_an_execution_with_the_event(
    world: World, harness: Harness
) -> None:
    machine = state_machine(world)
    role = world.role("events-to-sfn", "events.amazonaws.com")
    harness.rule("start-saga", {"detail-type": ["OrderPlaced"]})
    harness.target("start-saga", "saga", machine, RoleArn=role, InputPath="$.detail")
    harness.put("OrderPlaced", {"orderId": "o-1"})

    harness.run()

    (execution,) = world.sfn.list_executions(stateMachineArn=machine)["executions"]
    described = world.sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["input"]) == {"orderId": "o-1"}


def test_a_target_role_that_does_not_trust_eventbridge_is_no_permission(
    world: World, harness: Harness
) -> None:
    machine = state_machine(world)
    role = world.role("not-for-events", "lambda.amazonaws.com")
    harness.rule("start-saga", {"detail-type": ["OrderPlaced"]})
    harness.target("start-saga", "saga", machine, RoleArn=role)
    harness.put("OrderPlaced", {"orderId": "o-1"})

    harness.run()

    assert world.sfn.list_executions(stateMachineArn=machine)["executions"] == []
    (failed,) = [e for e in harness.delivery.log.of("eventbridge.target")]
    assert failed.outcome == "failed"
    assert failed.detail.startswith("NO_PERMISSIONS")


def test_a_kinesis_target_uses_the_partition_key_path(world: World, harness: Harness) -> None:
    world.kinesis.create_stream(StreamName="activity", ShardCount=1)
    stream = world.kinesis.describe_stream(StreamName="activity")["StreamDescription"]
    role = world.role("events-to-kinesis", "events.amazonaws.com")
    harness.rule("to-kinesis", {"detail-type": ["OrderPlaced"]})
    harness.target(
        "to-kinesis",
        "stream",
        stream["StreamARN"],
        RoleArn=role,
        KinesisParameters={"PartitionKeyPath": "$.detail.customerId"},
    )
    harness.put("OrderPlaced", {"customerId": "c-9"})

    harness.run()

    shard = stream["Shards"][0]["ShardId"]
    iterator = world.kinesis.get_shard_iterator(
        StreamName="activity", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    (record,) = world.kinesis.get_records(ShardIterator=iterator)["Records"]
    assert record["PartitionKey"] == "c-9"
    assert json.loads(record["Data"])["detail"] == {"customerId": "c-9"}


def test_a_bus_target_forwards_the_event_to_the_other_buses_rules(
    world: World, harness: Harness
) -> None:
    audit_bus = world.events.create_event_bus(Name="audit")["EventBusArn"]
    role = world.role("events-to-audit", "events.amazonaws.com")
    harness.rule("forward", {"detail-type": ["OrderPlaced"]})
    harness.target("forward", "audit", audit_bus, RoleArn=role)
    audit_rule = world.events.put_rule(
        Name="audit-all", EventBusName="audit", EventPattern='{"source": ["order-saga.orders"]}'
    )["RuleArn"]
    url, queue_arn = world.queue("audit-log", senders=[audit_rule])
    world.events.put_targets(
        Rule="audit-all", EventBusName="audit", Targets=[{"Id": "log", "Arn": queue_arn}]
    )
    harness.put("OrderPlaced", {"orderId": "o-1"})

    harness.run()

    assert details(world, url) == [{"orderId": "o-1"}]


def test_archive_keeps_matching_events_and_replay_reproduces_a_window(
    world: World, harness: Harness
) -> None:
    read_model: dict[str, float] = {}
    replays: list[str | None] = []

    def project(event: dict[str, Any]) -> None:
        read_model[event["detail"]["orderId"]] = event["detail"]["amount"]
        replays.append(event.get("replay-name"))

    rule_arn, _ = lambda_target(world, harness, "project", project)
    harness.target(
        "project",
        "read-model",
        world.lambda_.get_function(FunctionName="project-fn")["Configuration"]["FunctionArn"],
    )
    archive_arn = world.events.create_archive(
        ArchiveName="orders-archive",
        EventSourceArn=harness.bus_arn,
        EventPattern=json.dumps({"detail-type": ["OrderPlaced"]}),
        RetentionDays=30,
    )["ArchiveArn"]
    for index, amount in enumerate((10.0, 20.0, 30.0)):
        harness.put("OrderPlaced", {"orderId": f"o-{index}", "amount": amount})
        harness.put("OrderShipped", {"orderId": f"o-{index}"})  # not archived
        harness.run()
        harness.clock.advance(100)
    assert read_model == {"o-0": 10.0, "o-1": 20.0, "o-2": 30.0}
    assert len(harness.delivery.eventbridge.archived("orders-archive")) == 3

    read_model.clear()
    replays.clear()
    name = harness.delivery.replay("orders-archive", T0 + 50, T0 + 250)
    harness.run()

    assert read_model == {"o-1": 20.0, "o-2": 30.0}
    assert replays == [name, name]
    # Replayed events are not archived again.
    assert world.events.describe_archive(ArchiveName="orders-archive")["EventCount"] == 3

    # The StartReplay API, with a rule filter.
    read_model.clear()
    world.events.start_replay(
        ReplayName="api-replay",
        EventSourceArn=archive_arn,
        EventStartTime=T0,
        EventEndTime=T0 + 150,
        Destination={"Arn": harness.bus_arn, "FilterArns": [rule_arn]},
    )
    harness.run()
    assert read_model == {"o-0": 10.0, "o-1": 20.0}
    assert world.events.describe_replay(ReplayName="api-replay")["State"] == "COMPLETED"


def scenario() -> list[tuple[float, str, str, str, str, str]]:
    """Rules -> queues -> a consumer with partial failures, retries and a DLQ."""
    with mock_aws(config=MOTO_CONFIG):
        world = World()
        clock = VirtualClock(start=T0)
        scheduler = Scheduler(clock)
        invoker = FakeInvoker()
        records = FakeRecords()
        world.events.create_event_bus(Name="orders")
        dlq_url, dlq_arn = world.queue("work-dlq")
        rules = []
        for kind in ("OrderPlaced", "PaymentFailed"):
            rules.append(
                world.events.put_rule(
                    Name=kind,
                    EventBusName="orders",
                    EventPattern=json.dumps({"detail-type": [kind]}),
                )["RuleArn"]
            )
        _, arn = world.queue(
            "work", visibility=20, dead_letter=dlq_arn, max_receive=2, senders=rules
        )
        for kind in ("OrderPlaced", "PaymentFailed"):
            world.events.put_targets(
                Rule=kind,
                EventBusName="orders",
                Targets=[{"Id": "work", "Arn": arn, "InputPath": "$.detail"}],
            )
        function = world.function("worker")

        def work(event: dict[str, Any]) -> dict[str, Any]:
            return {
                "batchItemFailures": [
                    {"itemIdentifier": r["messageId"]}
                    for r in event["Records"]
                    if json.loads(r["body"])["n"] % 3 == 0
                ]
            }

        invoker.register("worker", work)
        from eventcraft_sandbox.delivery.testing import FakeMapping

        records.event_source_mappings.append(
            FakeMapping(
                function,
                arn,
                {"BatchSize": 4, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
            )
        )
        with Delivery(scheduler, invoker, records) as delivery:
            for n in range(12):
                kind = "OrderPlaced" if n % 2 else "PaymentFailed"
                world.events.put_events(
                    Entries=[
                        {
                            "Source": "s",
                            "DetailType": kind,
                            "Detail": json.dumps({"n": n}),
                            "EventBusName": "orders",
                        }
                    ]
                )
            delivery.run_until_quiet()
            assert len(world.bodies(dlq_url)) == 4
            return [
                (e.time - T0, e.kind, e.source, e.target, e.outcome, e.detail) for e in delivery.log
            ]


def test_the_same_run_twice_delivers_in_the_same_order() -> None:
    first = scenario()
    second = scenario()
    assert len(first) == 16
    assert [e[4] for e in first if e[1] == "sqs.batch"] == ["partial"] * 4
    assert first == second
