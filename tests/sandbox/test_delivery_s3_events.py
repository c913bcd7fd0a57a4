"""S3 -> EventBridge: an EventBridge-enabled bucket's events go through the sandbox's
routing (the project's matcher, its targets, retries and DLQs) on the default bus, with
the event AWS documents, instead of moto's `Rule.send_to_targets`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import FakeInvoker, FakeRecords, World

T0 = 1_800_000_000.0
BUCKET = "orders-imports-abc"


class Harness:
    def __init__(self, world: World) -> None:
        self.world = world
        self.clock = VirtualClock(start=T0)
        self.delivery = Delivery(Scheduler(self.clock), FakeInvoker(), FakeRecords()).install()
        self.s3: Any = boto3.client("s3", region_name=world.region)
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )

    def rule_to_queue(self, name: str, pattern: dict[str, Any], bus: str = "default") -> str:
        rule_arn = str(
            self.world.events.put_rule(
                Name=name, EventBusName=bus, EventPattern=json.dumps(pattern)
            )["RuleArn"]
        )
        url, arn = self.world.queue(name, senders=[rule_arn])
        self.world.events.put_targets(
            Rule=name, EventBusName=bus, Targets=[{"Id": name, "Arn": arn}]
        )
        return url

    def run(self) -> None:
        self.delivery.run_until_quiet()


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


@pytest.fixture
def harness(world: World) -> Iterator[Harness]:
    h = Harness(world)
    yield h
    h.delivery.uninstall()


IMPORTS = {
    "source": ["aws.s3"],
    "detail-type": ["Object Created"],
    "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [{"prefix": "incoming/"}]}},
}


def test_an_upload_delivers_the_s3_event_aws_sends_once(world: World, harness: Harness) -> None:
    url = harness.rule_to_queue("imports", IMPORTS)
    body = b'{"customerId": "c-1"}\n'

    harness.s3.put_object(Bucket=BUCKET, Key="incoming/a.jsonl", Body=body)
    harness.s3.put_object(Bucket=BUCKET, Key="elsewhere/b.jsonl", Body=body)  # outside
    harness.run()

    (message,) = world.bodies(url)
    event = json.loads(message)
    detail = event.pop("detail")
    assert event.pop("id")
    assert event == {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2027-01-15T08:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
    }
    assert detail.pop("request-id")
    assert detail.pop("object").pop("sequencer")
    assert detail == {
        "version": "0",
        "bucket": {"name": BUCKET},
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    }
    message_object = json.loads(message)["detail"]["object"]
    assert message_object == {
        "key": "incoming/a.jsonl",
        "size": len(body),
        "etag": hashlib.md5(body).hexdigest(),
        "sequencer": message_object["sequencer"],
    }


def test_events_go_to_the_default_bus_only_with_distinct_ids(
    world: World, harness: Harness
) -> None:
    world.events.create_event_bus(Name="orders")
    pattern = {"source": ["aws.s3"]}
    on_default = harness.rule_to_queue("all-s3", pattern)
    on_orders = harness.rule_to_queue("orders-s3", pattern, bus="orders")

    harness.s3.put_object(Bucket=BUCKET, Key="incoming/a.jsonl", Body=b"1")
    harness.s3.delete_object(Bucket=BUCKET, Key="incoming/a.jsonl")
    harness.run()

    events = [json.loads(m) for m in world.bodies(on_default)]
    assert [e["detail-type"] for e in events] == ["Object Created", "Object Deleted"]
    assert events[0]["id"] != events[1]["id"]
    assert events[0]["detail"]["object"]["sequencer"] < events[1]["detail"]["object"]["sequencer"]
    deleted = events[1]["detail"]
    assert (deleted["reason"], deleted["deletion-type"]) == ("DeleteObject", "Permanently Deleted")
    assert set(deleted["object"]) == {"key", "sequencer"}
    assert world.bodies(on_orders) == []


def test_tags_added_only_when_an_object_has_tags(world: World, harness: Harness) -> None:
    """moto notifies "Object Tags Added" for every PutObject; S3 only for tags."""
    queue = harness.rule_to_queue("all-s3", {"source": ["aws.s3"]})

    harness.s3.put_object(Bucket=BUCKET, Key="incoming/plain.jsonl", Body=b"1")
    harness.s3.put_object(Bucket=BUCKET, Key="incoming/tagged.jsonl", Body=b"1", Tagging="a=b")
    harness.run()

    events = [json.loads(m) for m in world.bodies(queue)]
    assert [(e["detail-type"], e["detail"]["object"]["key"]) for e in events] == [
        ("Object Created", "incoming/plain.jsonl"),
        ("Object Created", "incoming/tagged.jsonl"),
        ("Object Tags Added", "incoming/tagged.jsonl"),
    ]


def test_uninstall_restores_motos_function(world: World) -> None:
    from moto.s3 import notifications

    original = notifications._send_event_bridge_message
    delivery = Delivery(Scheduler(VirtualClock(start=T0)), FakeInvoker(), FakeRecords()).install()
    assert notifications._send_event_bridge_message is not original
    delivery.uninstall()
    assert notifications._send_event_bridge_message is original
