"""The two stacks: what each declares, where they differ, the outputs an operator reads,
the config keys the system added, and a provider pointed at a local emulator."""

from __future__ import annotations

import json
import runpy
from collections import Counter
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import RecordingMocks
from eventcraft_sandbox.mock_deploy import deploy as mock_deploy
from ops.outputs import DLQ_KINDS, parse
from order_saga.catalogue import function_specs
from order_saga.config import NAMESPACE, OrderSagaConfig
from order_saga.system import EMULATED_SERVICES
from pulumi_eventcraft.config import ConfigError, parse_config
from tests.system.conftest import (
    FUNCTION,
    MODES,
    PROGRAM,
    QUEUE,
    STACKS,
    STATE_MACHINE,
    TABLE,
    config_for,
    deploy,
)


def counts(stack: str, mode: str | None = None) -> Counter[str]:
    return Counter(r.typ for r in deploy(stack, mode).deployment if r.custom)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("mode", MODES)
def test_what_each_stack_and_mode_declares(stack: str, mode: str) -> None:
    declared = counts(stack, mode)
    queues = {"choreography": 4, "orchestration": 1, "both": 4}[mode]  # + 2 report queues
    # DLQ tools + the outbox relay and its sweeper
    expected_functions = len(function_specs(mode)) + queues + 2
    assert declared[FUNCTION] == expected_functions
    assert declared[TABLE] == 13
    assert declared["aws:cloudwatch/eventBus:EventBus"] == 1
    assert declared["aws:cloudwatch/eventArchive:EventArchive"] == 1
    assert declared["aws:kinesis/stream:Stream"] == 1
    assert declared["aws:s3/bucket:Bucket"] == 1
    assert declared[STATE_MACHINE] == (0 if mode == "choreography" else 1)
    # Every function has its log group; every queue a policy.
    assert (
        declared["aws:cloudwatch/logGroup:LogGroup"] == expected_functions + declared[STATE_MACHINE]
    )
    assert declared["aws:sqs/queuePolicy:QueuePolicy"] == declared[QUEUE]


def test_dev_and_prod_differ_where_they_should() -> None:
    dev, prod = deploy("dev"), deploy("prod")

    def retention(system: Any) -> set[int]:
        return {
            r.inputs["retentionInDays"] for r in system.of_type("aws:cloudwatch/logGroup:LogGroup")
        }

    assert retention(dev) == {7} and retention(prod) == {90}
    (dev_sm,), (prod_sm,) = dev.of_type(STATE_MACHINE), prod.of_type(STATE_MACHINE)
    # Both STANDARD: the saga's worst case is longer than an EXPRESS execution may run.
    assert (dev_sm.inputs["type"], prod_sm.inputs["type"]) == ("STANDARD", "STANDARD")
    assert dev.outputs["sagaMode"] == "both" and prod.outputs["sagaMode"] == "orchestration"
    assert not dev.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert prod.of_type("aws:sns/topicSubscription:TopicSubscription")
    (dev_bucket,), (prod_bucket,) = (s.of_type("aws:s3/bucket:Bucket") for s in (dev, prod))
    # Import files of a protected stack are not deleted with it.
    assert dev_bucket.inputs["forceDestroy"] is True
    assert prod_bucket.inputs["forceDestroy"] is False
    (dev_stream,), (prod_stream,) = (s.of_type("aws:kinesis/stream:Stream") for s in (dev, prod))
    assert dev_stream.inputs["streamModeDetails"] == {"streamMode": "ON_DEMAND"}
    assert prod_stream.inputs["streamModeDetails"] == {"streamMode": "PROVISIONED"}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("mode", MODES)
def test_the_outputs_are_what_ops_reads(stack: str, mode: str) -> None:
    system = deploy(stack, mode)
    outputs = parse(system.outputs, origin="test")
    assert outputs.saga_mode == mode
    assert outputs.require_bus("test") == system.outputs["busName"]
    assert outputs.require_archive("test")
    assert set(outputs.tables) == {
        "orders", "inventory", "payments", "shipments", "outbox", "idempotency", "events",
        "snapshots", "history", "customers", "checks", "windows", "reviews",
    }  # fmt: skip
    assert (outputs.state_machine_arn is None) is (mode == "choreography")
    # Every function, by name, and every queue's URL is a queue of the stack.
    physical = {r.outputs["name"] for r in system.of_type(FUNCTION)}
    assert set(outputs.functions.values()) == physical
    urls = {r.outputs["url"] for r in system.of_type(QUEUE)}
    listed = {q.url for q in outputs.queues.values()} | {d.url for d in outputs.all_dlqs()}
    # Every queue of the stack is a work queue or a DLQ the outputs name.
    assert listed == urls
    assert all(d.kind in DLQ_KINDS for d in outputs.all_dlqs())
    assert outputs.bucket and outputs.stream
    json.dumps(system.outputs)  # plain JSON, as `pulumi stack output --json` prints it


# ------------------------------------------------------------------------ config


def parse_keys(**values: str) -> OrderSagaConfig:
    return parse_config(OrderSagaConfig, values, NAMESPACE)


def test_the_added_keys_and_their_defaults() -> None:
    config = parse_keys()
    assert (config.window_seconds, config.allowed_lateness_seconds) == (300, 60)
    assert config.aws_endpoint is None and config.payment_transient_failure_rate is None
    assert parse_keys(highValueThreshold="1234.56").high_value_threshold_cents == 123456


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"awsEndpoint": "localhost:4566"},
            "order-saga:awsEndpoint = 'localhost:4566': must be an http(s) URL of your AWS "
            "emulator like http://localhost:4566 (no path)",
        ),
        (
            {"awsEndpoint": "http://localhost:4566/api"},
            "order-saga:awsEndpoint = 'http://localhost:4566/api': must be an http(s) URL",
        ),
        (
            {"forwardDetailTypes": '["OrderCompleted"]'},
            "order-saga:forwardDetailTypes = ['OrderCompleted']: forwards events, but "
            "forwardToBusArn is not set: set both or neither",
        ),
        (
            {"forwardToBusArn": "arn:aws:events:us-east-1:210987654321:event-bus/partner"},
            "order-saga:forwardDetailTypes = []: is empty, but forwardToBusArn is set",
        ),
        (
            {
                "forwardToBusArn": "arn:aws:events:us-east-1:210987654321:event-bus/partner",
                "forwardDetailTypes": '["OrderFinished"]',
            },
            "order-saga:forwardDetailTypes = ['OrderFinished']: 'OrderFinished' is not an "
            "event of the contracts; allowed: AllChecksComplete, CheckCompleted,",
        ),
        (
            {"windowSeconds": "60", "allowedLatenessSeconds": "120"},
            "order-saga:allowedLatenessSeconds = '120': must be at most windowSeconds (60)",
        ),
        (
            {"paymentTransientFailureRate": "1.5"},
            "order-saga:paymentTransientFailureRate = '1.5': must be a number less than or "
            "equal to 1",
        ),
        (
            {"shippingFailCustomerPrefix": "no spaces"},
            "order-saga:shippingFailCustomerPrefix = 'no spaces': must be 1..64 letters",
        ),
        (
            {"highValueThreshold": "60000000"},
            "order-saga:highValueThreshold = '60000000': must be below 50000000: an order "
            "totals at most 5000000000 cents",
        ),
    ],
)
def test_bad_values_of_the_added_keys_say_what_is_allowed(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_keys(**values)
    assert message in str(raised.value)


# --------------------------------------------------------------- local emulator


class ProviderRecordingMocks(RecordingMocks):
    """Also records which provider each resource was registered with."""

    def __init__(self) -> None:
        super().__init__()
        self.providers: dict[tuple[str, str], str | None] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        self.providers[(args.typ, args.name)] = args.provider or None
        return super().new_resource(args)


def test_a_local_endpoint_sends_every_resource_through_one_emulator_provider() -> None:
    mocks = ProviderRecordingMocks()
    config = config_for("dev", awsEndpoint="http://localhost:4566/")
    deployment = mock_deploy(
        lambda: runpy.run_path(str(PROGRAM), run_name="__main__"),
        config=config,
        stack="dev",
        mocks=mocks,
    )
    (provider,) = deployment.of_type("pulumi:providers:aws")
    inputs = provider.inputs
    endpoints = inputs["endpoints"]
    endpoints = json.loads(endpoints) if isinstance(endpoints, str) else endpoints
    (services,) = endpoints
    expected = {
        ("lambda" if s == "lambda_" else s): "http://localhost:4566" for s in EMULATED_SERVICES
    }
    assert services == expected
    for flag in (
        "skipCredentialsValidation",
        "skipRequestingAccountId",
        "skipMetadataApiCheck",
        "s3UsePathStyle",
    ):
        assert inputs[flag] in (True, "true"), flag
    assert inputs["region"] == "us-east-1"
    # Every AWS resource of the system uses it (its reference is "<urn>::<id>").
    reference = f"{provider.urn}::{provider.name}"
    aws_resources = [r for r in deployment if r.custom and r.typ.startswith("aws:")]
    assert len(aws_resources) > 500
    for resource in aws_resources:
        assert mocks.providers[(resource.typ, resource.name)] == reference, resource.name


def test_without_an_endpoint_there_is_no_explicit_provider() -> None:
    assert deploy("prod").of_type("pulumi:providers:aws") == []
