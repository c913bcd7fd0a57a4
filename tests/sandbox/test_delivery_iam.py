"""Delivery inside the real `Sandbox` (IAM enforced): pollers and targets act with
the roles AWS would use, so a missing permission shows up in the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import (
    FakeInvoker,
    FakeMapping,
    FakeRecords,
    code_zip,
    trust,
)
from eventcraft_sandbox.moto_deploy import Sandbox

T0 = 1_800_000_000.0


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def queue(sandbox: Sandbox, name: str, **attributes: str) -> tuple[str, str]:
    sqs = sandbox.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def consumer(sandbox: Sandbox, name: str, actions: list[str], queue_arn: str) -> str:
    """A function whose role may do exactly `actions` on the queue."""
    iam = sandbox.client("iam")
    role = iam.create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument=trust("lambda.amazonaws.com")
    )["Role"]["Arn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": queue_arn}],
    }
    iam.put_role_policy(
        RoleName=f"{name}-role", PolicyName="read", PolicyDocument=json.dumps(policy)
    )
    return str(
        sandbox.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code_zip()},
        )["FunctionArn"]
    )


def bodies(sandbox: Sandbox, url: str) -> list[str]:
    sqs = sandbox.client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


READ = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]


def test_a_consumer_whose_role_may_not_delete_sees_its_messages_again(
    sandbox: Sandbox,
) -> None:
    dlq_url, dlq_arn = queue(sandbox, "orders-dlq")
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    good_url, good_arn = queue(sandbox, "good", VisibilityTimeout="30")
    bad_url, bad_arn = queue(sandbox, "bad", VisibilityTimeout="30", RedrivePolicy=redrive)
    good = consumer(sandbox, "good-consumer", READ, good_arn)
    bad = consumer(sandbox, "bad-consumer", ["sqs:ReceiveMessage"], bad_arn)
    seen: dict[str, list[str]] = {"good-consumer": [], "bad-consumer": []}

    def handler(name: str) -> Any:
        return lambda event: seen[name].extend(r["body"] for r in event["Records"])

    invoker = FakeInvoker({name: handler(name) for name in seen})
    records = FakeRecords([FakeMapping(good, good_arn), FakeMapping(bad, bad_arn)])
    clock = VirtualClock(start=T0)
    with Delivery(Scheduler(clock), invoker, records, sandbox) as delivery:
        sandbox.client("sqs").send_message(QueueUrl=good_url, MessageBody="g")
        sandbox.client("sqs").send_message(QueueUrl=bad_url, MessageBody="b")
        delivery.run_until_quiet()
        # Read while moto's SQS clock is still the virtual one.
        assert bodies(sandbox, good_url) == []
        assert bodies(sandbox, dlq_url) == ["b"]

    assert seen == {"good-consumer": ["g"], "bad-consumer": ["b", "b"]}
    denied = [e for e in delivery.log.of("sqs.delete") if e.outcome == "failed"]
    assert len(denied) == 2
    assert "not authorized to perform: sqs:DeleteMessage" in denied[0].detail


def test_a_rule_target_role_without_the_permission_dead_letters_the_event(
    sandbox: Sandbox,
) -> None:
    events = sandbox.client("events")
    iam = sandbox.client("iam")
    bus = events.create_event_bus(Name="orders")["EventBusArn"]
    rule = events.put_rule(
        Name="to-audit", EventBusName="orders", EventPattern='{"source": ["shop"]}'
    )["RuleArn"]
    audit_bus = events.create_event_bus(Name="audit")["EventBusArn"]
    iam.create_role(
        RoleName="events-to-audit", AssumeRolePolicyDocument=trust("events.amazonaws.com")
    )
    role = iam.get_role(RoleName="events-to-audit")["Role"]["Arn"]
    iam.put_role_policy(  # allowed to put to the wrong bus
        RoleName="events-to-audit",
        PolicyName="put",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus}],
            }
        ),
    )
    dlq_url, dlq_arn = queue(sandbox, "audit-dlq")
    sandbox.client("sqs").set_queue_attributes(
        QueueUrl=dlq_url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": dlq_arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": rule}},
                        }
                    ],
                }
            )
        },
    )
    events.put_targets(
        Rule="to-audit",
        EventBusName="orders",
        Targets=[
            {
                "Id": "audit",
                "Arn": audit_bus,
                "RoleArn": role,
                "DeadLetterConfig": {"Arn": dlq_arn},
                "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 600},
            }
        ],
    )
    clock = VirtualClock(start=T0)
    with Delivery(Scheduler(clock), FakeInvoker(), FakeRecords(), sandbox) as delivery:
        events.put_events(
            Entries=[
                {"Source": "shop", "DetailType": "Sold", "Detail": "{}", "EventBusName": "orders"}
            ]
        )
        delivery.run_until_quiet()
        sqs = sandbox.client("sqs")
        (message,) = sqs.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])[
            "Messages"
        ]

    assert message["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"
    assert (
        "not authorized to perform: events:PutEvents"
        in (message["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"])
    )
    assert clock.now() == T0  # not retried
