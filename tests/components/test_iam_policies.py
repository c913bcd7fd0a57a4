"""Every IAM policy document a deployment renders is least-privilege.

The walker is generic: it finds any JSON policy document (a string or a dict with a
`Statement`) anywhere in any resource's inputs (role trust policies, inline role
policies, queue, topic, bus and key policies...), so components written later are
covered as soon as they appear in `program()`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from eventcraft_sandbox.mock_deploy import Deployment, deploy
from pulumi_eventcraft.event_source import (
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
    KinesisSource,
    SqsSource,
    dynamodb_insert_only,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.iam import Statement, find_violations
from pulumi_eventcraft.layer import DependencyLayer, DependencyLayerArgs
from pulumi_eventcraft.queue import Queue, QueueArgs
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.stream import Stream, StreamArgs
from pulumi_eventcraft.table import Table, event_store_table, idempotency_table, outbox_table

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def policy_documents(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM policy document in `value` (a resource's inputs), with where it was."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{") and "Statement" in text:
            try:
                parsed = json.loads(text)
            except ValueError:
                return
            yield from policy_documents(parsed, path)
    elif isinstance(value, dict):
        if "Statement" in value and isinstance(value["Statement"], list | dict):
            yield path, value
            return
        for key, item in value.items():
            yield from policy_documents(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from policy_documents(item, f"{path}[{index}]")


def all_policy_documents(d: Deployment) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for resource in d:
        found.extend(policy_documents(resource.inputs, f"{resource.typ} {resource.name}"))
    return found


def statements_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    st = document["Statement"]
    return [st] if isinstance(st, dict) else list(st)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def event_bus_or_fake() -> Any:
    """The real EventBus once components/event_bus.py exists, else a stand-in."""
    try:
        module = importlib.import_module("pulumi_eventcraft.event_bus")
    except ModuleNotFoundError:
        return FakeBus()
    return module.EventBus("orders-bus", module.EventBusArgs())


class FakeBus:
    pulumi_resource_name = "orders-bus"

    def put_events_statements(self) -> list[Statement]:
        arn = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/orders-bus"
        return [Statement(actions=["events:PutEvents"], resources=[arn])]


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "functions"
    (root / "handlers").mkdir(parents=True)
    for name in ("place_order", "project", "consume", "relay", "clicks"):
        (root / "handlers" / f"{name}.py").write_text("def handler(event, context):\n    pass\n")
    (root / "requirements.txt").write_text("pydantic\n")
    return root


def one_of_each(code_dir: Path, cache_dir: Path) -> None:
    def fake_pip(command: Sequence[str]) -> None:
        target = Path(command[command.index("--target") + 1])
        (target / "dep").mkdir(parents=True)
        (target / "dep" / "__init__.py").write_text("")

    def fn(name: str, handler: str, **extra: Any) -> Function:
        return Function(
            name,
            FunctionArgs(
                handler=f"handlers.{handler}.handler",
                timeout_seconds=30,
                code_dir=code_dir,
                alarm_actions=[TOPIC],
                **extra,
            ),
        )

    layer = DependencyLayer(
        "deps",
        DependencyLayerArgs(
            requirements_file=code_dir / "requirements.txt", cache_dir=cache_dir, runner=fake_pip
        ),
    )
    events = Table("events", event_store_table(kms_key_arn=KEY))
    outbox = Table("outbox", outbox_table())
    idempotency = Table("idempotency", idempotency_table())
    queue = Queue("work", QueueArgs(visibility_timeout_seconds=180, alarm_actions=[TOPIC]))
    stream = Stream("clicks", StreamArgs())
    machine = StateMachine(
        "saga",
        StateMachineArgs(
            definition={"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
        ),
    )
    bus = event_bus_or_fake()

    place_order = fn("place-order", "place_order", layer=layer, async_on_failure=True)
    other = fn("relay", "relay")
    place_order.grant_read(events)
    place_order.grant_write(outbox)
    place_order.grant_read_write(idempotency)
    place_order.grant_put_events(bus)
    place_order.grant_send(queue)
    place_order.grant_consume(queue.dlq)
    place_order.grant_put_records(stream)
    place_order.grant_start_execution(machine)
    place_order.grant_invoke(other)

    EventSourceMapping(
        "consume",
        EventSourceMappingArgs(function=fn("consume", "consume"), source=SqsSource(queue=queue)),
    )
    EventSourceMapping(
        "project",
        EventSourceMappingArgs(
            function=fn("project", "project"),
            source=DynamoDbStreamSource(stream=events, filter_patterns=[dynamodb_insert_only()]),
            alarm_actions=[TOPIC],
        ),
    )
    EventSourceMapping(
        "clicks",
        EventSourceMappingArgs(
            function=fn("clicks", "clicks"), source=KinesisSource(stream=stream)
        ),
    )


def test_walker_finds_nested_documents_and_ignores_other_json() -> None:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}
    inputs = {
        "policy": json.dumps(doc),
        "inlinePolicies": [{"name": "x", "policy": json.dumps(doc)}],
        "keyPolicy": doc,
        "redrivePolicy": json.dumps({"deadLetterTargetArn": "arn", "maxReceiveCount": 5}),
        "definition": '{"StartAt": "Statement"}',
        "name": "Statement",
    }
    assert [path for path, _ in policy_documents(inputs, "r")] == [
        "r.policy",
        "r.inlinePolicies[0].policy",
        "r.keyPolicy",
    ]


def test_every_policy_document_is_least_privilege(code_dir: Path, tmp_path: Path) -> None:
    d = deploy(lambda: one_of_each(code_dir, tmp_path / "layers"))
    documents = all_policy_documents(d)
    where = [path for path, _ in documents]
    # The walker saw each kind: trust policies, inline grants, queue policies.
    assert any(p.startswith("aws:iam/role:Role") and "assumeRolePolicy" in p for p in where)
    assert any(p.startswith("aws:iam/rolePolicy:RolePolicy place-order-read-events") for p in where)
    assert any(p.startswith("aws:sqs/queuePolicy:QueuePolicy") for p in where)
    assert len(documents) >= 25

    problems: dict[str, list[str]] = {}
    for path, document in documents:
        found = find_violations(document)
        for st in statements_of(document):
            for action in as_list(st.get("Action")) + as_list(st.get("NotAction")):
                if "*" in action:
                    found.append(f"action {action!r} has a wildcard")
            for resource in as_list(st.get("Resource")):
                # A wildcard region or account would reach other accounts' resources.
                if resource != "*" and (":*:" in resource or resource.endswith(":*:*")):
                    found.append(f"resource {resource!r} has a wildcard region or account")
        if found:
            problems[path] = found
    assert problems == {}


def test_each_function_role_holds_only_what_it_was_granted(code_dir: Path, tmp_path: Path) -> None:
    d = deploy(lambda: one_of_each(code_dir, tmp_path / "layers"))
    by_role: dict[str, set[str]] = {}
    for policy in d.of_type("aws:iam/rolePolicy:RolePolicy"):
        for st in statements_of(json.loads(policy.inputs["policy"])):
            by_role.setdefault(policy.inputs["role"], set()).update(as_list(st["Action"]))
    base = {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    assert by_role["relay-role"] == base
    assert by_role["consume-role"] == base | {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    assert by_role["project-role"] == base | {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "kms:Decrypt",
        "sqs:SendMessage",
    }
    # Nothing is granted on a table by a mapping: only on its stream.
    assert not {a for a in by_role["project-role"] if a in ("dynamodb:GetItem", "dynamodb:Query")}
    assert "lambda:InvokeFunction" in by_role["place-order-role"]


def test_the_check_catches_a_broad_policy_written_by_hand() -> None:
    import pulumi_aws as aws

    broad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}],
    }

    def program() -> None:
        aws.iam.RolePolicy("hand-written", role="r", policy=json.dumps(broad))

    documents = all_policy_documents(deploy(program))
    assert [path for path, _ in documents] == ["aws:iam/rolePolicy:RolePolicy hand-written.policy"]
    assert find_violations(documents[0][1]) == [
        "Statement[0]: wildcard action 'sqs:*'; name each action",
        "Statement[0]: resource '*' for ['sqs:*']; scope them to ARNs "
        "('*' is allowed only for actions AWS cannot scope)",
    ]
