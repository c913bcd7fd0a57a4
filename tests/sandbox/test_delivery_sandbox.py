"""The whole chain in the `Sandbox`: components deployed into moto with IAM enforced,
handlers run by the Lambda runtime, events delivered by `Delivery` from the
deployment's records, with the roles the components grant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.moto_deploy import Sandbox
from pulumi_eventcraft.event_source import (
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
    SqsSource,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import Queue, QueueArgs
from pulumi_eventcraft.table import KeyAttribute, Table, TableArgs

CONSUMER = """
def handler(event, context):
    return {
        "batchItemFailures": [
            {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
        ]
    }
"""
RELAY = """
def handler(event, context):
    print("relayed", [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]])
"""


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "code" / "handlers"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "consumer.py").write_text(CONSUMER)
    (root / "relay.py").write_text(RELAY)
    return root.parent


def test_a_deployed_queue_consumer_and_stream_relay_are_delivered_with_their_roles(
    sandbox: Sandbox, code_dir: Path
) -> None:
    runtime_module = pytest.importorskip("eventcraft_sandbox.lambda_runtime")
    runtime_cls: Any = getattr(runtime_module, "LambdaRuntime", None)
    if runtime_cls is None:
        pytest.skip("eventcraft_sandbox.lambda_runtime.LambdaRuntime is not there yet")

    def program() -> None:
        def function(name: str) -> Function:
            return Function(
                name,
                FunctionArgs(
                    handler=f"handlers.{name}.handler",
                    timeout_seconds=10,
                    code_dir=code_dir,
                    alarms=False,
                ),
            )

        consumer, relay = function("consumer"), function("relay")
        queue = Queue(
            "work", QueueArgs(visibility_timeout_seconds=60, max_receive_count=2, alarms=False)
        )
        table = Table(
            "outbox", TableArgs(hash_key=KeyAttribute("pk"), stream_view_type="NEW_IMAGE")
        )
        EventSourceMapping(
            "work-consumer",
            EventSourceMappingArgs(function=consumer, source=SqsSource(queue=queue)),
        )
        EventSourceMapping(
            "outbox-relay",
            EventSourceMappingArgs(
                function=relay,
                source=DynamoDbStreamSource(
                    stream=table, filter_patterns=[{"eventName": ["INSERT"]}]
                ),
                alarms=False,
            ),
        )
        pulumi.export("queueUrl", queue.url)
        pulumi.export("tableName", table.name)

    deployment = sandbox.deploy(program)
    clock = VirtualClock()
    runtime = runtime_cls(admin=sandbox.admin, clock=clock)
    delivery = Delivery(Scheduler(clock), runtime, deployment.records, sandbox)
    runtime.event_dispatcher = delivery.dispatch_event
    with runtime, delivery:
        sqs = sandbox.client("sqs")
        for body in ("good", "bad"):
            sqs.send_message(QueueUrl=deployment.outputs["queueUrl"], MessageBody=body)
        dynamodb = sandbox.client("dynamodb")
        dynamodb.put_item(TableName=deployment.outputs["tableName"], Item={"pk": {"S": "o-1"}})
        dynamodb.delete_item(TableName=deployment.outputs["tableName"], Key={"pk": {"S": "o-1"}})
        report = delivery.run_until_quiet()
        dlq_url = deployment.resource_id("work-dlq-queue")
        dead = sqs.receive_message(QueueUrl=dlq_url).get("Messages", [])

    batches = [(e.kind, e.outcome) for e in delivery.log if e.kind.endswith("batch")]
    assert batches == [
        ("sqs.batch", "partial"),  # "bad" fails, "good" is deleted with the role's rights
        ("stream.batch", "ok"),  # the INSERT; the REMOVE is filtered out
        ("sqs.batch", "partial"),  # "bad" again after the 60 s visibility timeout
    ]
    assert [m["Body"] for m in dead] == ["bad"]
    assert not [e for e in delivery.log if e.outcome == "failed" and e.kind == "sqs.delete"]
    assert report.virtual_seconds >= 120
