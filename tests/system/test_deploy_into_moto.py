"""`__main__.py` deploys for real: every resource of each stack is created in moto with
boto3 (its parameter validation and moto's own checks), and the outputs name them."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from moto.s3.models import s3_backends

from eventcraft_sandbox.moto_deploy import DeployError, deploy_into_moto
from pulumi_eventcraft import state_machine
from pulumi_eventcraft.iam import LOG_DELIVERY_ACTIONS, service_role
from tests.system.conftest import PROGRAM


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_stack_deploys_into_moto(stack: str) -> None:
    with deploy_into_moto(PROGRAM, stack=stack) as deployment:
        outputs = deployment.outputs
        sandbox = deployment.sandbox
        assert sandbox is not None
        client = sandbox.client
        # The tables, queues, bus, archive and stream the outputs name exist.
        tables = set(client("dynamodb").list_tables()["TableNames"])
        assert set(outputs["tables"].values()) <= tables
        events = client("events")
        assert events.describe_event_bus(Name=outputs["busName"])["Arn"] == outputs["busArn"]
        archive = events.describe_archive(ArchiveName=outputs["archiveName"])
        assert archive["RetentionDays"] == (7 if stack == "dev" else 365)
        sqs = client("sqs")
        for queue in outputs["queues"].values():
            attributes = sqs.get_queue_attributes(QueueUrl=queue["url"], AttributeNames=["All"])
            redrive = json.loads(attributes["Attributes"]["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == queue["dlqArn"]
        # The import rule is on the default bus; the saga rules on the order bus.
        default_rules = events.list_rules(EventBusName="default")["Rules"]
        assert any(json.loads(r["EventPattern"])["source"] == ["aws.s3"] for r in default_rules)
        assert len(events.list_rules(EventBusName=outputs["busName"])["Rules"]) >= 8
        # moto stores EventBridgeConfiguration but leaves it out of its answer to
        # GetBucketNotificationConfiguration: read the bucket's state instead.
        bucket = s3_backends[sandbox.account]["aws"].get_bucket(outputs["bucket"])
        assert bucket.notification_configuration.event_bridge is not None
        lambdas = {f["FunctionName"] for f in client("lambda").list_functions()["Functions"]}
        assert set(outputs["functions"].values()) <= lambdas
        machine = client("stepfunctions").describe_state_machine(
            stateMachineArn=outputs["stateMachineArn"]
        )
        assert machine["type"] == "STANDARD"
        # The sandbox delivers the event source mappings itself (queues and streams).
        assert len(deployment.event_source_mappings) == (8 if stack == "dev" else 5)
        # Every alarm watches a metric AWS publishes, with dimensions it publishes it
        # with (the sandbox refuses any other): all of them were created.
        declared = deployment.by_type()["aws:cloudwatch/metricAlarm:MetricAlarm"]
        pages = client("cloudwatch").get_paginator("describe_alarms").paginate()
        created = [alarm for page in pages for alarm in page["MetricAlarms"]]
        assert len(created) == len(declared) > 20
        namespaces = {alarm["Namespace"] for alarm in created}
        assert namespaces == {"AWS/SQS", "AWS/Lambda", "AWS/Events", "AWS/States", "AWS/Kinesis"}
        # prod reserves concurrency within AWS's usual quota (1000, Lambda keeps 100).
        lambda_ = client("lambda")
        reserved = [
            lambda_.get_function_concurrency(FunctionName=name).get(
                "ReservedConcurrentExecutions", 0
            )
            for name in outputs["functions"].values()
        ]
        assert sum(reserved) == (0 if stack == "dev" else 400)


# The stack broken on purpose, as the sandbox's demo once ran it green: AWS refuses the
# state machine at creation, and so does the sandbox.


def test_a_state_machine_role_pinned_to_another_state_machine_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def pinned_elsewhere(*args: Any, source_arn: Any = None, **kwargs: Any) -> Any:
        wrong = pulumi.Output.concat(source_arn, "-elsewhere")
        return service_role(*args, source_arn=wrong, **kwargs)

    monkeypatch.setattr(state_machine, "service_role", pinned_elsewhere)
    with pytest.raises(DeployError) as refused:
        deploy_into_moto(PROGRAM, stack="dev").close()
    assert (
        "(AccessDeniedException) when calling the CreateStateMachine operation: Neither the "
        "global service principal states.amazonaws.com, nor the regional one is authorized "
        "to assume the provided role."
    ) in str(refused.value)


def test_a_logging_state_machine_whose_role_cannot_deliver_logs_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without = tuple(a for a in LOG_DELIVERY_ACTIONS if a != "logs:CreateLogDelivery")
    monkeypatch.setattr(state_machine, "LOG_DELIVERY_ACTIONS", without)
    with pytest.raises(DeployError) as refused:
        deploy_into_moto(PROGRAM, stack="dev").close()
    assert (
        "(AccessDeniedException) when calling the CreateStateMachine operation: The state "
        "machine IAM Role is not authorized to access the Log Destination"
    ) in str(refused.value)
