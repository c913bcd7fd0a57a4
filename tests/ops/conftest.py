"""A small order-saga stack built directly in moto, and a runner for `python -m ops`.

Resources (region us-east-1), with the outputs a deployment would export for them:
    bus `order-bus` with archive `order-archive` (7 days)
    rule `reserve` on the bus (OrderPlaced) -> queue `reserve-target`, target DLQ
        `reserve-dlq` (kind rule-target)
    work queue `payments` with DLQ `payments-dlq` (redrive policy + redrive allow policy)
    DLQ `ship-failures` (Lambda destinations), `history-stream-failures` and
        `outbox-relay` (stream)
    a capture rule `all` -> queue `capture`: every order-saga event put on the bus
    tables `orders` (pk S), `order-events` (aggregateId S + version N),
        `order-history` (orderId S), `order-outbox` (the outbox layout, its pending index)
    state machine `saga` (a Pass state: executions succeed at once)
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from eventcraft import clients as eventkit_clients
from ops.aws import Clients
from ops.cli import main
from tests.functions.awsenv import peek

REGION = "us-east-1"
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}}


@dataclass
class Run:
    """One `python -m ops` run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Stack:
    session: boto3.session.Session
    outputs: dict[str, Any]
    outputs_file: Path
    clients: Clients
    sleeps: list[float] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return self.session.client(service)  # type: ignore[call-overload]

    def ops(self, *argv: str, use_outputs: bool = True) -> Run:
        out, err = io.StringIO(), io.StringIO()
        args = [*argv, "--outputs", str(self.outputs_file)] if use_outputs else list(argv)
        code = main(args, clients=self.clients, stdout=out, stderr=err, sleep=self.sleeps.append)
        return Run(code, out.getvalue(), err.getvalue())

    # --- SQS helpers ---------------------------------------------------------------

    def url(self, name: str) -> str:
        return self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]

    def send(
        self, queue: str, body: Any, attributes: dict[str, str] | None = None, **extra: Any
    ) -> None:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url(queue),
            "MessageBody": body if isinstance(body, str) else json.dumps(body),
            **extra,
        }
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        self.client("sqs").send_message(**kwargs)

    def peek(self, queue: str) -> list[dict[str, Any]]:
        """Every message visible on the queue, left there (visible again at once)."""
        return peek(self.url(queue), self.client("sqs"))

    def bodies(self, queue: str) -> list[Any]:
        return [json.loads(m["Body"]) for m in self.peek(queue)]


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _table(ddb: Any, name: str, key: str, sort: str | None = None) -> None:
    schema = [{"AttributeName": key, "KeyType": "HASH"}]
    definitions = [{"AttributeName": key, "AttributeType": "S"}]
    if sort:
        schema.append({"AttributeName": sort, "KeyType": "RANGE"})
        definitions.append({"AttributeName": sort, "AttributeType": "N"})
    ddb.create_table(
        TableName=name,
        KeySchema=schema,
        AttributeDefinitions=definitions,
        BillingMode="PAY_PER_REQUEST",
    )


def _outbox_table(ddb: Any, name: str) -> None:
    """The layout of `pulumi_eventcraft.table.outbox_table()` (eventcraft.outbox's rows)."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": attribute, "AttributeType": "S"}
            for attribute in ("pk", "pendingShard", "createdAt")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "pending",
                "KeySchema": [
                    {"AttributeName": "pendingShard", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )


def build(session: boto3.session.Session) -> dict[str, Any]:
    """Create the resources; return the stack outputs (camelCase, as exported)."""
    sqs = session.client("sqs")
    events = session.client("events")
    ddb = session.client("dynamodb")
    bus_arn = events.create_event_bus(Name="order-bus")["EventBusArn"]
    archive_arn = events.create_archive(
        ArchiveName="order-archive", EventSourceArn=bus_arn, RetentionDays=7
    )["ArchiveArn"]

    payments_dlq_url, payments_dlq_arn = _queue(sqs, "payments-dlq")
    payments_url, payments_arn = _queue(
        sqs,
        "payments",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": payments_dlq_arn, "maxReceiveCount": 3}),
    )
    sqs.set_queue_attributes(
        QueueUrl=payments_dlq_url,
        Attributes={
            "RedriveAllowPolicy": json.dumps(
                {"redrivePermission": "byQueue", "sourceQueueArns": [payments_arn]}
            )
        },
    )
    reserve_dlq_url, reserve_dlq_arn = _queue(sqs, "reserve-dlq")
    _, reserve_target_arn = _queue(sqs, "reserve-target")
    ship_failures_url, _ = _queue(sqs, "ship-failures")
    stream_failures_url, _ = _queue(sqs, "history-stream-failures")
    relay_failures_url, _ = _queue(sqs, "outbox-relay-failures")
    _, capture_arn = _queue(sqs, "capture")

    events.put_rule(
        Name="reserve",
        EventBusName="order-bus",
        EventPattern=json.dumps({"detail-type": ["OrderPlaced"]}),
    )
    events.put_targets(
        Rule="reserve",
        EventBusName="order-bus",
        Targets=[
            {
                "Id": "reserve",
                "Arn": reserve_target_arn,
                "DeadLetterConfig": {"Arn": reserve_dlq_arn},
                "RetryPolicy": {"MaximumRetryAttempts": 3},
            }
        ],
    )
    events.put_rule(
        Name="all",
        EventBusName="order-bus",
        EventPattern=json.dumps({"source": [{"prefix": "order-saga."}]}),
    )
    events.put_targets(
        Rule="all", EventBusName="order-bus", Targets=[{"Id": "capture", "Arn": capture_arn}]
    )

    _table(ddb, "orders", "pk")
    _table(ddb, "order-events", "aggregateId", "version")
    _table(ddb, "order-history", "orderId")
    _outbox_table(ddb, "order-outbox")

    role = session.client("iam").create_role(
        RoleName="saga-role",
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
    )["Role"]["Arn"]
    machine_arn = session.client("stepfunctions").create_state_machine(
        name="saga",
        roleArn=role,
        definition=json.dumps(
            {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
        ),
    )["stateMachineArn"]

    return {
        "busName": "order-bus",
        "busArn": bus_arn,
        "archiveName": "order-archive",
        "archiveArn": archive_arn,
        "tables": {
            "orders": "orders",
            "events": "order-events",
            "history": "order-history",
            "outbox": "order-outbox",
        },
        "queues": {
            "payments": {
                "url": payments_url,
                "arn": payments_arn,
                "dlqUrl": payments_dlq_url,
                "dlqArn": payments_dlq_arn,
            }
        },
        "dlqs": {
            "reserve-target-dlq": {
                "url": reserve_dlq_url,
                "arn": reserve_dlq_arn,
                "kind": "rule-target",
            },
            "ship-failures": {"url": ship_failures_url, "kind": "lambda-destination"},
            "history-stream-failures": {"url": stream_failures_url, "kind": "stream-failure"},
            "outbox-relay": {"url": relay_failures_url, "kind": "stream-failure"},
        },
        "stateMachineArn": machine_arn,
        "functions": {"ship_order": "ship"},
        "sagaMode": "both",
        "highValueThreshold": 1000,
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with mock_aws(config=MOTO_CONFIG):
        eventkit_clients.reset()
        session = boto3.session.Session(region_name=REGION)
        outputs = build(session)
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        try:
            yield Stack(session, outputs, path, Clients(session=session))
        finally:
            eventkit_clients.reset()
