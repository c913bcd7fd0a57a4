"""Tags: each component passes its `tags` to every child AWS resource that accepts tags
(child components included), and adds no `tags` input when none are given."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi_aws as aws
import pytest

from eventcraft_sandbox.mock_deploy import Deployment, Resource, deploy
from pulumi_eventcraft.alarms import Alerts, AlertsArgs
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.event_rule import (
    EventRule,
    EventRuleArgs,
    KinesisTarget,
    LambdaTarget,
    SqsTarget,
    StateMachineTarget,
)
from pulumi_eventcraft.event_source import (
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
    SqsSource,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.layer import DependencyLayer, DependencyLayerArgs
from pulumi_eventcraft.outbox_relay import OutboxRelay, OutboxRelayArgs
from pulumi_eventcraft.queue import DeadLetterQueue, DeadLetterQueueArgs, Queue, QueueArgs
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.stream import Stream, StreamArgs
from pulumi_eventcraft.table import Table, event_store_table, outbox_table
from pulumi_eventcraft.tags import Tags, check_tags

TAGS = {"team": "platform", "cost-center": "4711"}
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:other"
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/other"


@functools.cache
def taggable(typ: str) -> bool:
    """Whether the pulumi_aws resource of type token `typ` accepts a `tags` input."""
    _, module_path, cls = typ.split(":")
    module = module_path.split("/")[0]
    resource = getattr(getattr(aws, "lambda_" if module == "lambda" else module), cls)
    return "tags" in inspect.signature(resource._internal_init).parameters


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    (root / "handlers").mkdir(parents=True)
    (root / "handlers" / "echo.py").write_text("def handler(event, context):\n    pass\n")
    (root / "requirements.txt").write_text("")
    return root


def function(code_dir: Path, name: str = "fn", tags: Tags = None, **extra: Any) -> Function:
    args = FunctionArgs(
        handler="handlers.echo.handler", timeout_seconds=10, code_dir=code_dir, tags=tags, **extra
    )
    return Function(name, args)


def fake_layer(cache: Path) -> Callable[[Any], None]:
    def pip(command: Any) -> None:
        target = Path(list(command)[list(command).index("--target") + 1])
        (target / "dep").mkdir(parents=True)
        (target / "dep" / "__init__.py").write_text("")

    return pip


# One program per component, each with every optional child it can create. `tags` is
# None or TAGS; the component under test is named "it".
def alerts(tags: Tags, _: Path) -> None:
    Alerts("it", AlertsArgs(email="oncall@example.com", tags=tags))


def event_bus(tags: Tags, _: Path) -> None:
    EventBus(
        "it",
        EventBusArgs(
            schemas={"Placed": {"type": "object"}},
            partner_account_ids=["111122223333"],
            tags=tags,
        ),
    )


def event_rule(tags: Tags, code_dir: Path) -> None:
    rule = EventRule("it", EventRuleArgs(bus="default", pattern={"source": ["x"]}, tags=tags))
    queue = Queue("work", QueueArgs(visibility_timeout_seconds=60, senders=[rule.as_sender()]))
    rule.add_target(LambdaTarget(function_arn=FUNCTION_ARN, function_name="other"))
    rule.add_target(SqsTarget(queue=queue))
    rule.add_target(StateMachineTarget(state_machine_arn="arn:aws:states:::stateMachine:x"))
    rule.add_target(KinesisTarget(stream_arn=STREAM_ARN, partition_key_path="$.id"))


def stream_mapping(tags: Tags, code_dir: Path) -> None:
    table = Table("events", event_store_table())
    source = DynamoDbStreamSource(stream=table)
    EventSourceMapping(
        "it", EventSourceMappingArgs(function=function(code_dir), source=source, tags=tags)
    )


def queue_mapping(tags: Tags, code_dir: Path) -> None:
    queue = Queue("work", QueueArgs(visibility_timeout_seconds=60))
    source = SqsSource(queue=queue)
    EventSourceMapping(
        "it", EventSourceMappingArgs(function=function(code_dir), source=source, tags=tags)
    )


def lambda_function(tags: Tags, code_dir: Path) -> None:
    function(code_dir, "it", tags, async_on_failure=True)


def layer(tags: Tags, code_dir: Path) -> None:
    cache = code_dir.parent / "cache"
    DependencyLayer(
        "it",
        DependencyLayerArgs(
            requirements_file=code_dir / "requirements.txt",
            cache_dir=cache,
            runner=fake_layer(cache),
            tags=tags,
        ),
    )


def outbox_relay(tags: Tags, code_dir: Path) -> None:
    relay = FunctionArgs(handler="handlers.echo.handler", timeout_seconds=60, code_dir=code_dir)
    bus = EventBus("bus", EventBusArgs(archive=False))
    table = Table("outbox", outbox_table())
    # With its sweeper: the tags reach its function, scheduled rule and DLQ too.
    OutboxRelay(
        "it", OutboxRelayArgs(table=table, bus=bus, function=relay, sweeper=relay, tags=tags)
    )


def queue(tags: Tags, _: Path) -> None:
    Queue("it", QueueArgs(visibility_timeout_seconds=60, tags=tags))


def dead_letter_queue(tags: Tags, _: Path) -> None:
    DeadLetterQueue("it", DeadLetterQueueArgs(tags=tags))


def state_machine(tags: Tags, _: Path) -> None:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    StateMachine("it", StateMachineArgs(definition=definition, tags=tags))


def stream(tags: Tags, _: Path) -> None:
    Stream("it", StreamArgs(tags=tags))


def table(tags: Tags, _: Path) -> None:
    Table("it", event_store_table(tags=tags))


PROGRAMS: dict[str, Callable[[Tags, Path], None]] = {
    "Alerts": alerts,
    "EventBus": event_bus,
    "EventRule": event_rule,
    "EventSourceMapping (stream)": stream_mapping,
    "EventSourceMapping (queue)": queue_mapping,
    "Function": lambda_function,
    "DependencyLayer": layer,
    "OutboxRelay": outbox_relay,
    "Queue": queue,
    "DeadLetterQueue": dead_letter_queue,
    "StateMachine": state_machine,
    "Stream": stream,
    "Table": table,
}
# Components none of whose children take tags (a layer version has no tags).
NOTHING_TAGGABLE = {"DependencyLayer"}


def component_tree(tags: Tags, program: Callable[[Tags, Path], None], code: Path) -> list[Resource]:
    d: Deployment = deploy(lambda: program(tags, code))
    (component,) = [r for r in d if r.name == "it" and not r.custom]
    return d.descendants(component)


@pytest.mark.parametrize("component", sorted(PROGRAMS))
def test_the_tags_reach_every_taggable_child(component: str, code_dir: Path) -> None:
    children = [r for r in component_tree(TAGS, PROGRAMS[component], code_dir) if r.custom]
    tagged = [r for r in children if taggable(r.typ)]
    assert bool(tagged) == (component not in NOTHING_TAGGABLE), [r.typ for r in children]
    untagged = [(r.typ, r.name) for r in tagged if r.inputs.get("tags") != TAGS]
    assert untagged == []


@pytest.mark.parametrize("component", sorted(PROGRAMS))
def test_without_tags_no_child_has_a_tags_input(component: str, code_dir: Path) -> None:
    children = component_tree(None, PROGRAMS[component], code_dir)
    assert [(r.typ, r.name) for r in children if "tags" in r.inputs] == []


def test_a_function_tag_of_the_relay_wins_over_the_relays_own(code_dir: Path) -> None:
    def program() -> None:
        relay = FunctionArgs(
            handler="handlers.echo.handler",
            timeout_seconds=60,
            code_dir=code_dir,
            tags={"team": "relay"},
        )
        bus = EventBus("bus", EventBusArgs(archive=False))
        table = Table("outbox", outbox_table())
        OutboxRelay(
            "it", OutboxRelayArgs(table=table, bus=bus, function=relay, sweeper=relay, tags=TAGS)
        )

    d = deploy(program)
    created = d.named("it-function-function", "aws:lambda/function:Function")
    assert created.inputs["tags"] == {**TAGS, "team": "relay"}
    sweeper = d.named("it-sweeper-function", "aws:lambda/function:Function")
    assert sweeper.inputs["tags"] == {**TAGS, "team": "relay"}
    mapping = d.named("it-stream-mapping", "aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.inputs["tags"] == TAGS


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("team=platform", r"QueueArgs.tags: give a mapping of key -> value, not str"),
        ({"": "x"}, r"QueueArgs.tags: key '' must be a string of 1..128"),
        ({"k" * 129: "x"}, r"QueueArgs.tags: key 'k+' must be a string of 1..128"),
        ({"aws:owner": "x"}, r"QueueArgs.tags: key 'aws:owner' uses the prefix 'aws:'"),
        ({"team": 7}, r"QueueArgs.tags\['team'\]: 7 must be a string of at most 256"),
        ({f"k{i}": "v" for i in range(51)}, r"QueueArgs.tags: 51 tags; AWS resources take"),
    ],
)
def test_bad_tags_are_refused_naming_the_args_and_the_key(tags: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueueArgs(visibility_timeout_seconds=60, tags=tags)


def test_check_tags_accepts_none_empty_and_valid_tags() -> None:
    for tags in (None, {}, TAGS, {"empty": ""}):
        check_tags("Args", tags)
