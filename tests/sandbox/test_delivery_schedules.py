"""Scheduled rules on the virtual clock: they fire when AWS would, deliver AWS's
`Scheduled Event`, and `run_until_quiet` still ends: once the rule's target has nothing
left to do, not while it keeps failing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import NotQuietError, Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import FakeInvoker, FakeRecords, World

T0 = datetime(2026, 11, 27, 10, 0, 30, tzinfo=UTC).timestamp()


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


def scheduled(world: World, name: str, expression: str, function: str) -> str:
    """A scheduled rule on the default bus whose target is `function`; its ARN."""
    rule_arn = str(world.events.put_rule(Name=name, ScheduleExpression=expression)["RuleArn"])
    world.allow_rule(function, rule_arn)
    world.events.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": function}])
    return rule_arn


def test_a_rate_rule_fires_on_the_virtual_clock_with_a_scheduled_event(world: World) -> None:
    function = world.function("sweeper")
    rule_arn = scheduled(world, "sweep", "rate(5 minutes)", function)
    clock = VirtualClock(start=T0)
    seen: list[tuple[float, dict[str, Any]]] = []
    invoker = FakeInvoker({"sweeper": lambda event: seen.append((clock.now(), event))})

    with Delivery(Scheduler(clock), invoker, FakeRecords()) as delivery:
        report = delivery.run_until_quiet()

    # Nothing else to do: the rule fired once, after its first period, and the run ended.
    ((when, event),) = seen
    assert when == T0 + 300
    assert report.virtual_seconds == 300
    assert event == {
        "version": "0",
        "id": event["id"],
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-27T10:05:30Z",
        "region": "us-east-1",
        "resources": [rule_arn],
        "detail": {},
    }
    assert invoker.calls_of("sweeper")[0].invocation_type == "Event"  # asynchronous


def test_a_cron_rule_fires_at_its_utc_minutes_with_its_input(world: World) -> None:
    function = world.function("report")
    world.events.put_rule(Name="every-quarter", ScheduleExpression="cron(0/15 * * * ? *)")
    rule_arn = world.events.describe_rule(Name="every-quarter")["Arn"]
    world.allow_rule(function, rule_arn)
    world.events.put_targets(
        Rule="every-quarter", Targets=[{"Id": "fn", "Arn": function, "Input": '{"run": true}'}]
    )
    clock = VirtualClock(start=T0)
    seen: list[tuple[float, Any]] = []
    invoker = FakeInvoker({"report": lambda event: seen.append((clock.now(), event))})

    with Delivery(Scheduler(clock), invoker, FakeRecords()) as delivery:
        delivery.run_until_quiet()
        assert seen == [(datetime(2026, 11, 27, 10, 15, tzinfo=UTC).timestamp(), {"run": True})]
        # Quiet again right away: nothing happened since its last successful firing.
        assert delivery.run_until_quiet().steps == 0


def test_a_failing_target_keeps_the_rule_firing_until_it_succeeds(world: World) -> None:
    function = world.function("sweeper")
    scheduled(world, "sweep", "rate(5 minutes)", function)
    world.lambda_.put_function_event_invoke_config(FunctionName="sweeper", MaximumRetryAttempts=0)
    clock = VirtualClock(start=T0)
    outage_ends = T0 + 1000
    runs: list[float] = []

    def sweep(event: Any) -> None:
        runs.append(clock.now() - T0)
        if clock.now() < outage_ends:
            raise RuntimeError("the bus refuses events")

    with Delivery(Scheduler(clock), FakeInvoker({"sweeper": sweep}), FakeRecords()) as delivery:
        delivery.run_until_quiet()

    assert runs == [300, 600, 900, 1200]


def test_new_activity_makes_the_rule_fire_once_more(world: World) -> None:
    function = world.function("sweeper")
    scheduled(world, "sweep", "rate(5 minutes)", function)
    worker = world.function("worker")
    clock = VirtualClock(start=T0)
    runs: list[float] = []
    invoker = FakeInvoker(
        {"sweeper": lambda event: runs.append(clock.now() - T0), "worker": lambda event: None}
    )

    with Delivery(Scheduler(clock), invoker, FakeRecords()) as delivery:
        delivery.run_until_quiet()
        assert runs == [300]
        assert delivery.run_until_quiet().steps == 0  # settled: nothing happened since
        delivery.submit_async(worker, {})  # other work: the sweep must look again
        delivery.run_until_quiet()
        assert runs == [300, 600]


def test_a_target_that_never_succeeds_is_named_when_the_run_gives_up(world: World) -> None:
    function = world.function("broken")
    scheduled(world, "sweep", "rate(1 minute)", function)
    world.lambda_.put_function_event_invoke_config(FunctionName="broken", MaximumRetryAttempts=0)

    def fail(event: Any) -> None:
        raise ValueError("bad config")

    delivery = Delivery(Scheduler(VirtualClock(start=T0)), FakeInvoker({"broken": fail}))
    with delivery, pytest.raises(NotQuietError) as raised:
        delivery.run_until_quiet(max_virtual_seconds=3600)
    message = str(raised.value)
    assert "recurring work not settled: schedule sweep (rate(1 minute))" in message
    assert "target broken: ValueError: bad config" in message


def test_disabled_deleted_and_event_pattern_rules_do_not_fire(world: World) -> None:
    function = world.function("sweeper")
    scheduled(world, "off", "rate(1 minute)", function)
    world.events.disable_rule(Name="off")
    scheduled(world, "gone", "rate(1 minute)", function)
    world.events.remove_targets(Rule="gone", Ids=["fn"])
    world.events.delete_rule(Name="gone")
    world.events.put_rule(Name="pattern", EventPattern=json.dumps({"source": ["x"]}))
    clock = VirtualClock(start=T0)
    invoker = FakeInvoker({"sweeper": lambda event: None})

    with Delivery(Scheduler(clock), invoker, FakeRecords()) as delivery:
        report = delivery.run_until_quiet()
        # A rule put while the delivery runs is scheduled too.
        scheduled(world, "later", "rate(2 minutes)", function)
        delivery.run_until_quiet()

    assert report.steps == 0 and report.virtual_seconds == 0
    assert len(invoker.calls_of("sweeper")) == 1
    assert clock.now() == T0 + 120
