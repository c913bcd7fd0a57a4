"""The OrderSaga's activity feed under the recording mocks: the activity rule's Kinesis
target is partitioned by `$.detail.customerId`, and every event of the contracts (each
carries its customer) is matched by the rule."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from contracts import REGISTRY, sample_event
from eventcraft_sandbox.mock_deploy import Deployment, Resource, run_program_file
from eventcraft_sandbox.stack_files import stack_config
from pulumi_eventcraft.event_pattern import matches
from tests.conftest import ROOT

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


@functools.cache
def deployment() -> Deployment:
    return run_program_file(ROOT / "__main__.py", stack="dev", config=stack_config("dev", ROOT))


def activity_rule() -> Resource:
    return deployment().named("saga-activity-rule", RULE)


def activity_targets() -> list[Resource]:
    name = activity_rule().outputs["name"]
    return [t for t in deployment().of_type(TARGET) if t.inputs["rule"] == name]


def activity_pattern() -> dict[str, Any]:
    pattern: dict[str, Any] = json.loads(activity_rule().inputs["eventPattern"])
    return pattern


def test_the_activity_feed_is_partitioned_by_customer() -> None:
    (kinesis,) = [t for t in activity_targets() if "kinesisTarget" in t.inputs]
    assert kinesis.inputs["kinesisTarget"] == {"partitionKeyPath": "$.detail.customerId"}
    assert ":kinesis:" in kinesis.inputs["arn"]


@pytest.mark.parametrize("detail_type", sorted(REGISTRY))
def test_every_contract_event_reaches_the_activity_feed(detail_type: str) -> None:
    event = sample_event(detail_type)
    assert event["detail"]["customerId"]
    assert matches(activity_pattern(), event)


def test_an_event_without_customer_is_not_fed() -> None:
    """An event archived before events carried customerId has no partition key: the rule
    leaves it out instead of failing its delivery."""
    event = sample_event("PaymentFailed")
    del event["detail"]["customerId"]
    assert not matches(activity_pattern(), event)
