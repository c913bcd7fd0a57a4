"""The recording mocks harness: what it records, what outputs it computes, and that
an apply that never ran fails the test instead of passing silently."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.mock_deploy import (
    ACCOUNT_ID,
    REGION,
    RecordingMocks,
    UnknownOutputError,
    deploy,
)


class Pair(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:pair:Pair", name)
        child = pulumi.ResourceOptions(parent=self)
        self.dlq = aws.sqs.Queue(f"{name}-dlq", opts=child)
        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            redrive_policy=self.dlq.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})
            ),
            opts=child,
        )


def test_records_type_name_inputs_and_parent() -> None:
    def program() -> None:
        pair = Pair("orders")
        pulumi.export("queueUrl", pair.queue.url)

    deployment = deploy(program)
    component = deployment.named("orders", typ="test:pair:Pair")
    children = deployment.children(component)
    assert [c.name for c in children] == ["orders-dlq", "orders-queue"]
    queue = deployment.named("orders-queue")
    assert json.loads(queue.inputs["redrivePolicy"]) == {
        "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:orders-dlq",
        "maxReceiveCount": 3,
    }
    assert deployment.outputs["queueUrl"] == (
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/orders-queue"
    )


def test_provider_outputs_follow_aws_arn_formats() -> None:
    def program() -> None:
        bus = aws.cloudwatch.EventBus("bus", name="orders-bus")
        aws.cloudwatch.EventRule("rule", event_bus_name=bus.name, event_pattern="{}")
        aws.dynamodb.Table(
            "table",
            hash_key="pk",
            attributes=[{"name": "pk", "type": "S"}],
            stream_enabled=True,
            stream_view_type="NEW_IMAGE",
        )

    deployment = deploy(program)
    assert (
        deployment.named("bus").arn == f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/orders-bus"
    )
    assert (
        deployment.named("rule").arn == f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/orders-bus/rule"
    )
    table = deployment.named("table")
    assert table.outputs["streamArn"].startswith(f"{table.arn}/stream/")


class ForgetfulMocks(RecordingMocks):
    """A mock that, like a careless hand-written one, never returns `arn`."""

    def create(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().create(args)
        outputs.pop("arn")
        return resource_id, outputs


def test_an_input_that_never_resolved_fails_the_deployment() -> None:
    with pytest.raises(UnknownOutputError, match=r"orders-queue\.redrivePolicy is unknown"):
        deploy(lambda: Pair("orders"), mocks=ForgetfulMocks())


def test_an_exported_output_that_never_resolved_fails() -> None:
    def program() -> None:
        queue = aws.sqs.Queue("q")
        pulumi.export("arn", queue.arn.apply(lambda a: a.upper()))

    with pytest.raises(UnknownOutputError, match="stack output arn is unknown"):
        deploy(program, mocks=ForgetfulMocks())


def test_program_errors_propagate() -> None:
    def program() -> None:
        raise ValueError("queue 'x': visibility_timeout_seconds must be >= 0")

    with pytest.raises(ValueError, match="visibility_timeout_seconds"):
        deploy(program)


def test_each_deployment_starts_empty() -> None:
    first = deploy(lambda: aws.sqs.Queue("one"))
    second = deploy(lambda: aws.sqs.Queue("two"))
    assert [r.name for r in first] == ["one"]
    assert [r.name for r in second] == ["two"]


def test_config_reaches_the_program() -> None:
    seen: dict[str, Any] = {}

    def program() -> None:
        seen["mode"] = pulumi.Config("shop").get("sagaMode")
        seen["region"] = pulumi.Config("aws").get("region")

    deploy(program, config={"sagaMode": "both", "aws:region": "eu-west-1"}, project="shop")
    assert seen == {"mode": "both", "region": "eu-west-1"}


def test_policy_document_invoke_renders_statements() -> None:
    def program() -> None:
        doc = aws.iam.get_policy_document_output(
            statements=[
                {
                    "actions": ["sqs:SendMessage"],
                    "resources": ["arn:aws:sqs:us-east-1:123456789012:q"],
                    "principals": [{"type": "Service", "identifiers": ["events.amazonaws.com"]}],
                }
            ]
        )
        pulumi.export("doc", doc.json)

    document = json.loads(deploy(program).outputs["doc"])
    assert document["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": ["arn:aws:sqs:us-east-1:123456789012:q"],
            "Principal": {"Service": ["events.amazonaws.com"]},
        }
    ]
