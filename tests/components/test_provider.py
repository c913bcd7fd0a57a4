"""The component provider: its inferred schema, and Construct under the recording mocks."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.util import camel_case

from eventcraft_sandbox.mock_deploy import ACCOUNT_ID, Deployment, deploy
from pulumi_eventcraft import (
    alarms,
    event_bus,
    event_rule,
    event_source,
    function,
    layer,
    outbox_relay,
    queue,
    state_machine,
    stream,
    table,
)
from pulumi_eventcraft.provider import COMPONENTS, PROVIDER_NAME, provider_version

# Every component and the args dataclass its provider inputs map onto.
ARGS: dict[str, type] = {
    "EventBus": event_bus.EventBusArgs,
    "EventRule": event_rule.EventRuleArgs,
    "Queue": queue.QueueArgs,
    "DeadLetterQueue": queue.DeadLetterQueueArgs,
    "Stream": stream.StreamArgs,
    "Table": table.TableArgs,
    "Function": function.FunctionArgs,
    "DependencyLayer": layer.DependencyLayerArgs,
    "EventSourceMapping": event_source.EventSourceMappingArgs,
    "StateMachine": state_machine.StateMachineArgs,
    "OutboxRelay": outbox_relay.OutboxRelayArgs,
    "Alerts": alarms.AlertsArgs,
}
# Required dataclass args that the provider takes in another shape (module docstring):
# a mapping's `source` is one of sqsQueue / dynamodbStream / kinesisStream; the relay
# creates its outbox table, and an omitted sweeper is the dataclass's `sweeper=False`.
NOT_REQUIRED_IN_PROVIDER = {
    "EventSourceMapping": {"source"},
    "OutboxRelay": {"table", "sweeper"},
}
# Provider inputs that are not dataclass fields: they call a method after construction.
PROVIDER_ONLY = {
    "EventRule": {"targets"},
    "Function": {"grants"},
    "EventSourceMapping": {"sqsQueue", "dynamodbStream", "kinesisStream"},
    "OutboxRelay": {"tableKmsKeyArn"},
}
ARN = f"arn:aws:{{}}:us-east-1:{ACCOUNT_ID}:{{}}"


@pytest.fixture(scope="module")
def provider() -> ComponentProvider:
    return ComponentProvider(COMPONENTS, PROVIDER_NAME, version=provider_version())


@pytest.fixture(scope="module")
def schema(provider: ComponentProvider) -> dict[str, Any]:
    assert provider.schema is not None
    return json.loads(provider.schema)


def test_schema_names_the_package_and_its_version(schema: dict[str, Any]) -> None:
    assert schema["name"] == "eventcraft"
    assert schema["version"] == provider_version()


def test_every_component_is_a_resource_with_its_python_token(schema: dict[str, Any]) -> None:
    assert sorted(schema["resources"]) == sorted(f"eventcraft:index:{name}" for name in ARGS)
    for token, resource in schema["resources"].items():
        assert resource["isComponent"] is True, token
        assert resource["description"], token


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for token, resource in schema["resources"].items():
        for kind in ("inputProperties", "properties"):
            for name, prop in resource.get(kind, {}).items():
                yield f"{token} {kind}.{name}", prop
    for token, typ in schema["types"].items():
        for name, prop in typ["properties"].items():
            yield f"{token}.{name}", prop


def test_every_input_output_and_type_field_has_a_description(schema: dict[str, Any]) -> None:
    missing = [where for where, prop in _properties(schema) if not prop.get("description")]
    assert missing == []
    # Every resource has outputs to show, and inputs beyond tags where it takes any.
    for token, resource in schema["resources"].items():
        assert resource["properties"], token


def _required_fields(args: type) -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(args)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


@pytest.mark.parametrize("name", sorted(ARGS))
def test_required_inputs_are_what_the_dataclass_requires(schema: dict[str, Any], name: str) -> None:
    resource = schema["resources"][f"eventcraft:index:{name}"]
    required = _required_fields(ARGS[name]) - NOT_REQUIRED_IN_PROVIDER.get(name, set())
    assert sorted(resource.get("requiredInputs", [])) == sorted(camel_case(f) for f in required)
    # And every other input is a field of the dataclass (same names, camelCased).
    fields = {camel_case(f.name) for f in dataclasses.fields(ARGS[name])}
    extra = set(resource["inputProperties"]) - fields
    assert extra == PROVIDER_ONLY.get(name, set())


def test_settings_the_component_validates_are_plain_and_arns_are_inputs(
    schema: dict[str, Any],
) -> None:
    queue_inputs = schema["resources"]["eventcraft:index:Queue"]["inputProperties"]
    assert queue_inputs["visibilityTimeoutSeconds"]["plain"] is True
    assert "plain" not in queue_inputs["kmsMasterKeyId"]
    rule_inputs = schema["resources"]["eventcraft:index:EventRule"]["inputProperties"]
    assert "plain" not in rule_inputs["bus"]
    target = schema["types"]["eventcraft:index:RuleTargetInputs"]
    assert sorted(target["required"]) == ["arn", "kind"]


# --- Construct ---------------------------------------------------------------------------


def construct(
    provider: ComponentProvider,
    component: str,
    name: str,
    inputs: dict[str, Any],
    *,
    export_state: bool = True,
    preview: bool = True,
) -> Deployment:
    """Run the provider's Construct (schema names in, as an SDK sends them) under mocks;
    the outputs it returns are exported as `state`."""

    def program() -> None:
        result = provider.construct(name, f"eventcraft:index:{component}", inputs)
        pulumi.export("urn", result.urn)
        if export_state:
            pulumi.export("state", result.state)

    return deploy(program, preview=preview)


def test_construct_queue_maps_schema_inputs_to_queue_args(provider: ComponentProvider) -> None:
    d = construct(
        provider,
        "Queue",
        "jobs",
        # Integers arrive as floats over the wire.
        {"visibilityTimeoutSeconds": 90.0, "maxReceiveCount": 3.0, "tags": {"team": "growth"}},
    )
    component = d.named("jobs", "eventcraft:index:Queue")
    assert len(d.of_type("eventcraft:index:Queue")) == 1  # the facade registers nothing
    assert d.outputs["urn"] == component.urn
    sqs = d.named("jobs-queue", "aws:sqs/queue:Queue")
    assert sqs.parent == component.urn
    assert sqs.inputs["visibilityTimeoutSeconds"] == 90
    assert json.loads(sqs.inputs["redrivePolicy"])["maxReceiveCount"] == 3
    assert sqs.inputs["tags"] == {"team": "growth"}
    assert d.named("jobs-dlq", "eventcraft:index:DeadLetterQueue").parent == component.urn
    state = d.outputs["state"]
    assert state["arn"] == ARN.format("sqs", sqs.outputs["name"])
    assert state["dlqArn"] == ARN.format("sqs", "jobs-dlq-queue")
    assert set(state) == {"arn", "url", "name", "dlqArn", "dlqUrl"}


def test_construct_rejects_a_missing_required_input(provider: ComponentProvider) -> None:
    with pytest.raises(Exception, match="visibilityTimeoutSeconds"):
        construct(provider, "Queue", "jobs", {"maxReceiveCount": 3.0})


def test_construct_rule_with_a_lambda_target(provider: ComponentProvider) -> None:
    fn_arn = ARN.format("lambda", "function:notify")
    d = construct(
        provider,
        "EventRule",
        "signups",
        {
            "bus": "accounts",
            "pattern": {"source": ["acme.accounts"], "detail-type": ["UserSignedUp"]},
            "targets": [
                {
                    "kind": "lambda",
                    "arn": fn_arn,
                    "functionName": "notify",
                    "retryPolicy": {"maximumRetryAttempts": 2.0},
                    "inputPath": "$.detail",
                }
            ],
        },
    )
    rule = d.named("signups-rule", "aws:cloudwatch/eventRule:EventRule")
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["acme.accounts"],
        "detail-type": ["UserSignedUp"],
    }
    target = d.named("signups-lambda", "aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"] == fn_arn
    assert target.inputs["inputPath"] == "$.detail"
    assert target.inputs["retryPolicy"]["maximumRetryAttempts"] == 2
    permission = d.named("signups-lambda-permission", "aws:lambda/permission:Permission")
    assert permission.inputs["function"] == "notify"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]
    assert d.named("signups-lambda-dlq", "eventcraft:index:DeadLetterQueue")


def test_construct_rule_refuses_an_unknown_target_kind(provider: ComponentProvider) -> None:
    with pytest.raises(Exception, match=r"targets\[0\]\.kind: 'sqs'"):
        construct(
            provider,
            "EventRule",
            "signups",
            {
                "bus": "default",
                "pattern": {"source": ["a"]},
                "targets": [{"kind": "sqs", "arn": "x"}],
            },
        )


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    (root / "handlers").mkdir(parents=True)
    (root / "handlers" / "__init__.py").write_text("")
    (root / "handlers" / "notify.py").write_text("def handler(event, context):\n    return 1\n")
    return root


def test_construct_function_with_a_grant(provider: ComponentProvider, code_dir: Path) -> None:
    table_arn = ARN.format("dynamodb", "table/accounts")
    d = construct(
        provider,
        "Function",
        "notify",
        {
            "handler": "handlers.notify.handler",
            "timeoutSeconds": 10.0,
            "codeDir": str(code_dir),
            "environment": {"TABLE": "accounts"},
            "grants": [
                {"name": "read-accounts", "actions": ["dynamodb:GetItem"], "resources": [table_arn]}
            ],
        },
    )
    fn = d.named("notify-function", "aws:lambda/function:Function")
    assert fn.inputs["timeout"] == 10
    assert fn.inputs["environment"]["variables"]["TABLE"] == "accounts"
    grant = d.named("notify-read-accounts", "aws:iam/rolePolicy:RolePolicy")
    assert json.loads(grant.inputs["policy"])["Statement"] == [
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table_arn}
    ]
    state = d.outputs["state"]
    assert state["arn"] == fn.outputs["arn"]
    assert state["roleName"] == d.named("notify-role", "aws:iam/role:Role").outputs["name"]


def test_construct_durable_function_exposes_its_alias(
    provider: ComponentProvider, code_dir: Path
) -> None:
    d = construct(
        provider,
        "Function",
        "saga",
        {
            "handler": "handlers.notify.handler",
            "timeoutSeconds": 60.0,
            "codeDir": str(code_dir),
            "runtime": "python3.13",
            "durable": {"executionTimeoutSeconds": 86400.0, "retentionPeriodDays": 7.0},
        },
    )
    fn = d.named("saga-function", "aws:lambda/function:Function")
    assert fn.inputs["durableConfig"] == {"executionTimeout": 86400, "retentionPeriod": 7}
    alias = d.named("saga-alias", "aws:lambda/alias:Alias")
    state = d.outputs["state"]
    assert state["targetArn"] == alias.outputs["arn"]
    assert state["qualifier"] == "live"


def test_construct_rule_with_a_qualified_lambda_target(provider: ComponentProvider) -> None:
    alias_arn = ARN.format("lambda", "function:saga:live")
    d = construct(
        provider,
        "EventRule",
        "placed",
        {
            "bus": "orders",
            "pattern": {"source": ["shop"]},
            "targets": [
                {"kind": "lambda", "arn": alias_arn, "functionName": "saga", "qualifier": "live"}
            ],
        },
    )
    assert (
        d.named("placed-lambda", "aws:cloudwatch/eventTarget:EventTarget").inputs["arn"]
        == alias_arn
    )
    permission = d.named("placed-lambda-permission", "aws:lambda/permission:Permission")
    assert permission.inputs["function"] == "saga"
    assert permission.inputs["qualifier"] == "live"


def test_construct_outbox_relay_with_its_sweeper_on_a_schedule(
    provider: ComponentProvider, code_dir: Path
) -> None:
    function = {"handler": "handlers.notify.handler", "timeoutSeconds": 60.0}
    d = construct(
        provider,
        "OutboxRelay",
        "outbox",
        {
            "bus": {"name": "accounts", "arn": ARN.format("events", "event-bus/accounts")},
            "function": {**function, "codeDir": str(code_dir)},
            "sweeper": {**function, "codeDir": str(code_dir)},
            "sweepSchedule": "rate(10 minutes)",
            "sweepAfterSeconds": 300.0,
        },
    )
    table = d.named("outbox-outbox-table", "aws:dynamodb/table:Table")
    assert [i["name"] for i in table.inputs["globalSecondaryIndexes"]] == ["pending"]
    rule = d.named("outbox-sweep-rule", "aws:cloudwatch/eventRule:EventRule")
    assert rule.inputs["scheduleExpression"] == "rate(10 minutes)"
    sweeper = d.named("outbox-sweeper-function", "aws:lambda/function:Function")
    assert sweeper.inputs["environment"]["variables"]["SWEEP_AFTER_SECONDS"] == "300"
    assert d.outputs["state"]["sweeperArn"] == sweeper.outputs["arn"]


def test_construct_sqs_mapping_grants_the_role_on_the_queue(provider: ComponentProvider) -> None:
    queue_arn = ARN.format("sqs", "jobs")
    d = construct(
        provider,
        "EventSourceMapping",
        "jobs-consumer",
        {
            "function": {
                "arn": ARN.format("lambda", "function:worker"),
                "name": "worker",
                "roleName": "worker-role",
                "timeoutSeconds": 10.0,
            },
            "sqsQueue": {"queueArn": queue_arn, "visibilityTimeoutSeconds": 60.0},
        },
        export_state=False,  # the mocks compute no mapping uuid
        preview=False,  # the role is read (Role.get): its id is known in an update
    )
    mapping = d.named("jobs-consumer-mapping", "aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.inputs["eventSourceArn"] == queue_arn
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    policy = d.named("jobs-consumer-read", "aws:iam/rolePolicy:RolePolicy")
    assert policy.inputs["role"] == "worker-role"
    statement = json.loads(policy.inputs["policy"])["Statement"][0]
    assert statement["Resource"] == queue_arn
    assert sorted(statement["Action"]) == sorted(queue.CONSUME_ACTIONS)


def test_construct_mapping_needs_exactly_one_source(provider: ComponentProvider) -> None:
    function_inputs = {"arn": "a", "name": "n", "roleName": "r", "timeoutSeconds": 1.0}
    with pytest.raises(Exception, match="exactly one of sqsQueue, dynamodbStream"):
        construct(provider, "EventSourceMapping", "m", {"function": function_inputs})


def test_provider_imports_no_application_module() -> None:
    code = (
        "import sys, pulumi_eventcraft.provider, pulumi_eventcraft.__main__\n"
        "print('\\n'.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    roots = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    application = {"order_saga", "handlers", "contracts", "domain", "saga", "ops", "policy"}
    assert roots & application == set()
    assert "eventcraft_sandbox" not in roots
