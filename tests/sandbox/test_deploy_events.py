"""EventBridge deployed into the sandbox: a bus with its archive, policy and schemas,
rules with SQS, Lambda, Step Functions and Kinesis targets, each with its DLQ."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.moto_deploy import DeployError, Sandbox
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.event_rule import (
    EventRule,
    EventRuleArgs,
    InputTransformer,
    KinesisTarget,
    LambdaTarget,
    RetryPolicy,
    SqsTarget,
    StateMachineTarget,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import Queue, QueueArgs

ORDER_PLACED_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "properties": {"detail": {"type": "object", "required": ["orderId"]}},
}


def _as_list(value: Any) -> list[Any]:
    """A policy element as a list (IAM allows a single value or a list)."""
    return value if isinstance(value, list) else [value]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "echo.py").write_text(
        "def handler(event, context):\n    return event\n"
    )
    return tmp_path


def test_a_bus_with_archive_partner_policy_and_schemas(sandbox: Sandbox) -> None:
    def program() -> None:
        bus = EventBus(
            "orders",
            EventBusArgs(
                archive_retention_days=7,
                archive_pattern={"source": ["order-saga.orders"]},
                partner_account_ids=["111122223333"],
                schemas={"OrderPlaced": ORDER_PLACED_SCHEMA},
            ),
        )
        pulumi.export("name", bus.name)
        pulumi.export("arn", bus.arn)

    deployment = sandbox.deploy(program)
    events = sandbox.client("events")
    bus = events.describe_event_bus(Name=deployment.outputs["name"])
    assert bus["Arn"] == deployment.outputs["arn"]
    [statement] = json.loads(bus["Policy"])["Statement"]
    assert statement["Sid"] == "AllowPartnerAccountsToPutEvents"
    assert _as_list(statement["Principal"]["AWS"]) == ["arn:aws:iam::111122223333:root"]
    assert _as_list(statement["Resource"]) == [deployment.outputs["arn"]]

    archive = events.describe_archive(ArchiveName="orders-archive")
    assert archive["EventSourceArn"] == deployment.outputs["arn"]
    assert archive["RetentionDays"] == 7
    assert json.loads(archive["EventPattern"]) == {"source": ["order-saga.orders"]}

    # moto has no schemas service: the registry and schema are validated and recorded.
    assert list(deployment.schema_registries) == ["orders-schemas"]
    [schema] = deployment.schemas
    assert (schema.registry_name, schema.schema_name, schema.type) == (
        "orders-schemas",
        "OrderPlaced",
        "JSONSchemaDraft4",
    )
    assert schema.content["properties"]["detail"]["required"] == ["orderId"]
    assert schema.arn.endswith(":schema/orders-schemas/OrderPlaced")


def test_a_schema_that_is_not_a_json_schema_fails(sandbox: Sandbox) -> None:
    def program() -> None:
        registry = aws.schemas.Registry("contracts")
        aws.schemas.Schema(
            "broken",
            name="Broken",
            registry_name=registry.name,
            type="JSONSchemaDraft4",
            content=json.dumps({"type": "object", "required": "orderId"}),
        )

    with pytest.raises(DeployError, match=r"'broken'.*not a valid JSON schema"):
        sandbox.deploy(program)


def test_a_rule_with_an_sqs_target_and_its_dlq(sandbox: Sandbox) -> None:
    def program() -> None:
        bus = EventBus("orders", EventBusArgs(archive=False))
        rule = EventRule(
            "placed",
            EventRuleArgs(bus=bus, pattern={"detail-type": ["OrderPlaced"]}, description="new"),
        )
        queue = Queue("inbox", QueueArgs(visibility_timeout_seconds=30, senders=[rule.as_sender()]))
        rule.add_target(
            SqsTarget(
                queue=queue,
                retry_policy=RetryPolicy(maximum_retry_attempts=3, maximum_event_age_seconds=600),
                input_transformer=InputTransformer(
                    paths={"id": "$.detail.orderId"}, template='{"orderId": <id>}'
                ),
            )
        )
        pulumi.export("queueArn", queue.arn)
        pulumi.export("dlqArn", rule.dead_letter_queues["sqs"].arn)
        pulumi.export("dlqUrl", rule.dead_letter_queues["sqs"].url)
        pulumi.export("ruleArn", rule.arn)

    deployment = sandbox.deploy(program)
    events = sandbox.client("events")
    rule = events.describe_rule(Name="placed-rule", EventBusName="orders-bus")
    assert rule["Arn"] == deployment.outputs["ruleArn"]
    assert rule["State"] == "ENABLED"
    assert json.loads(rule["EventPattern"]) == {"detail-type": ["OrderPlaced"]}
    assert deployment.resource_id("placed-rule") == "orders-bus/placed-rule"

    [target] = events.list_targets_by_rule(Rule="placed-rule", EventBusName="orders-bus")["Targets"]
    # The target and its DLQ are moto's queues: outputs chained through moto's ARNs.
    assert target["Id"] == "sqs"
    assert target["Arn"] == deployment.outputs["queueArn"]
    assert target["DeadLetterConfig"] == {"Arn": deployment.outputs["dlqArn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 600}
    assert target["InputTransformer"] == {
        "InputPathsMap": {"id": "$.detail.orderId"},
        "InputTemplate": '{"orderId": <id>}',
    }
    # The DLQ lets exactly this rule send to it.
    dlq = sandbox.client("sqs").get_queue_attributes(
        QueueUrl=deployment.outputs["dlqUrl"], AttributeNames=["Policy"]
    )["Attributes"]
    allow = json.loads(dlq["Policy"])["Statement"][1]
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": deployment.outputs["ruleArn"]}}


def test_lambda_state_machine_and_kinesis_targets(sandbox: Sandbox, code_dir: Path) -> None:
    def program() -> None:
        rule = EventRule(
            "shipped", EventRuleArgs(bus="default", pattern={"source": ["shipping"]}, alarms=False)
        )
        function = Function(
            "notify",
            FunctionArgs(
                handler="handlers.echo.handler", timeout_seconds=5, code_dir=code_dir, alarms=False
            ),
        )
        machine = aws.sfn.StateMachine(
            "flow",
            role_arn="arn:aws:iam::123456789012:role/ignored",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        )
        stream = aws.kinesis.Stream("events", stream_mode_details={"stream_mode": "ON_DEMAND"})
        rule.add_target(LambdaTarget(function_arn=function.arn, function_name=function.name))
        rule.add_target(StateMachineTarget(state_machine_arn=machine.arn))
        rule.add_target(KinesisTarget(stream_arn=stream.arn, partition_key_path="$.detail.id"))
        pulumi.export("functionName", function.name)
        pulumi.export("functionArn", function.arn)
        pulumi.export("machineArn", machine.arn)
        pulumi.export("streamArn", stream.arn)
        pulumi.export("ruleArn", rule.arn)

    # The state machine's role must exist in moto first.
    sandbox.client("iam").create_role(
        RoleName="ignored",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    deployment = sandbox.deploy(program)
    out = deployment.outputs
    targets = {
        t["Id"]: t
        for t in sandbox.client("events").list_targets_by_rule(Rule="shipped-rule")["Targets"]
    }
    assert set(targets) == {"lambda", "sfn", "kinesis"}
    assert targets["lambda"]["Arn"] == out["functionArn"]
    assert "RoleArn" not in targets["lambda"]
    assert targets["sfn"]["Arn"] == out["machineArn"]
    assert targets["sfn"]["RoleArn"] == deployment.arn("shipped-sfn-role")
    assert targets["kinesis"]["KinesisParameters"] == {"PartitionKeyPath": "$.detail.id"}
    # The rule may invoke the function: a resource policy statement pinned to the rule.
    policy = json.loads(
        sandbox.client("lambda").get_policy(FunctionName=out["functionName"])["Policy"]
    )
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == out["ruleArn"]
    # The target role allows exactly StartExecution on the machine.
    iam = sandbox.client("iam")
    document = iam.get_role_policy(
        RoleName=deployment.resource_id("shipped-sfn-role"),
        PolicyName="shipped-sfn-role-policy",
    )["PolicyDocument"]
    assert _as_list(document["Statement"][0]["Action"]) == ["states:StartExecution"]
    assert _as_list(document["Statement"][0]["Resource"]) == [out["machineArn"]]
