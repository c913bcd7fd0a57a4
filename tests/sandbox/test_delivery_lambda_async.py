"""Asynchronous invocation: retries, destinations, the function's DLQ, and the Invoke
API's InvocationType=Event routed through the delivery by the Lambda runtime."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import FakeInvoker, FakeRecords, World

T0 = 1_800_000_000.0


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


def test_success_goes_to_the_on_success_destination(world: World) -> None:
    function = world.function("greeter")
    url, queue = world.queue("greeted")
    world.lambda_.put_function_event_invoke_config(
        FunctionName="greeter", DestinationConfig={"OnSuccess": {"Destination": queue}}
    )
    invoker = FakeInvoker({"greeter": lambda event: {"hello": event["name"]}})
    with Delivery(Scheduler(VirtualClock(start=T0)), invoker, FakeRecords()) as delivery:
        delivery.submit_async(function, {"name": "ada"})
        delivery.run_until_quiet()
        (body,) = world.bodies(url)

    record = json.loads(body)
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == {"name": "ada"}
    assert record["responsePayload"] == {"hello": "ada"}
    assert "functionError" not in record["responseContext"]


def test_the_event_age_limit_ends_retries_early(world: World) -> None:
    function = world.function("slow")
    url, queue = world.queue("too-old")
    world.lambda_.put_function_event_invoke_config(
        FunctionName="slow",
        MaximumRetryAttempts=2,
        MaximumEventAgeInSeconds=90,
        DestinationConfig={"OnFailure": {"Destination": queue}},
    )
    clock = VirtualClock(start=T0)
    attempts: list[float] = []

    def fail(event: Any) -> None:
        attempts.append(clock.now() - T0)
        raise TimeoutError("downstream")

    with Delivery(Scheduler(clock), FakeInvoker({"slow": fail}), FakeRecords()) as delivery:
        delivery.submit_async(function, {})
        delivery.run_until_quiet()
        (body,) = world.bodies(url)

    # The second retry would start at 180 s, past the 90 s age limit.
    assert attempts == [0, 60]
    assert json.loads(body)["requestContext"]["condition"] == "EventAgeExceeded"


def test_a_failed_event_also_goes_to_the_functions_dead_letter_queue(world: World) -> None:
    dlq_url, dlq = world.queue("fn-dlq")
    function = world.function("flaky")
    world.lambda_.put_function_event_invoke_config(FunctionName="flaky", MaximumRetryAttempts=0)

    def fail(event: Any) -> None:
        raise ValueError("bad input")

    with Delivery(
        Scheduler(VirtualClock(start=T0)), FakeInvoker({"flaky": fail}), FakeRecords()
    ) as delivery:
        delivery.lambda_async.dead_letter_targets[function] = dlq  # moto drops DeadLetterConfig
        delivery.submit_async(function, {"n": 1})
        delivery.run_until_quiet()
        (message,) = world.messages(dlq_url)

    assert json.loads(message["Body"]) == {"n": 1}
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ErrorMessage"] == "bad input"
    assert attributes["ErrorCode"] == "200"


def test_invoke_with_invocation_type_event_is_retried_by_the_delivery(world: World) -> None:
    runtime_module = pytest.importorskip("eventcraft_sandbox.lambda_runtime")
    runtime_cls = getattr(runtime_module, "LambdaRuntime", None)
    if runtime_cls is None:
        pytest.skip("eventcraft_sandbox.lambda_runtime.LambdaRuntime is not there yet")
    caller = (
        "import json\n"
        "import boto3\n"
        "def handler(event, context):\n"
        "    boto3.client('lambda').invoke(\n"
        "        FunctionName='worker', InvocationType='Event', Payload=json.dumps(event)\n"
        "    )\n"
        "    return 'queued'\n"
    )
    worker = (
        "class Unavailable(Exception):\n"
        "    pass\n"
        "def handler(event, context):\n"
        "    raise Unavailable('try later: ' + event['orderId'])\n"
    )
    world.function("caller", files={"handler.py": caller})
    world.function("worker", files={"handler.py": worker})
    url, queue = world.queue("worker-failures")
    world.lambda_.put_function_event_invoke_config(
        FunctionName="worker",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": queue}},
    )
    clock = VirtualClock(start=T0)
    with runtime_cls(clock=clock) as runtime:
        delivery = Delivery(Scheduler(clock), runtime, FakeRecords())
        runtime.event_dispatcher = delivery.dispatch_event
        with delivery:
            result = runtime.invoke("caller", {"orderId": "o-1"})
            report = delivery.run_until_quiet()
            bodies = world.bodies(url)

    assert result.error_type is None, result.error_message
    assert report.virtual_seconds == 60
    (body,) = bodies
    record = json.loads(body)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responsePayload"]["errorType"] == "Unavailable"
    assert record["responsePayload"]["errorMessage"] == "try later: o-1"
