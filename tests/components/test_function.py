"""Function: the resources a user sees in `pulumi preview`, the grants, and refusals."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import Deployment, RecordingMocks, Resource, deploy
from pulumi_eventcraft.function import Function, FunctionArgs, code_archive
from pulumi_eventcraft.iam import Statement, policy_document
from pulumi_eventcraft.layer import DependencyLayer, DependencyLayerArgs
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.table import Table, event_store_table

FN = "aws:lambda/function:Function"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ACCOUNT = "123456789012"
PREFIX = f"arn:aws:{{}}:us-east-1:{ACCOUNT}:"
FN_NAME = "project-dev-place-order"
FN_ARN = PREFIX.format("lambda") + f"function:{FN_NAME}"
DLQ_ARN = PREFIX.format("sqs") + "fake-dlq"


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """A small code root: handlers, shared code, and things that must not ship."""
    root = tmp_path / "functions"
    (root / "handlers").mkdir(parents=True)
    (root / "handlers" / "__init__.py").write_text("")
    (root / "handlers" / "place_order.py").write_text(
        "from eventcraft import wrap\n\ndef handler(event, context):\n    return wrap(event)\n"
    )
    (root / "handlers" / "relay.py").write_text("from eventcraft import make\n\nhandler = make()\n")
    (root / "handlers" / "broken.py").write_text("def handler(event, context)\n    pass\n")
    (root / "eventcraft").mkdir()
    (root / "eventcraft" / "__init__.py").write_text("def wrap(e): return e\n")
    (root / "requirements.txt").write_text("pydantic\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_handlers.py").write_text("def test(): pass\n")
    (root / "handlers" / "__pycache__").mkdir()
    (root / "handlers" / "__pycache__" / "place_order.cpython-312.pyc").write_bytes(b"\0")
    (root / "eventcraft" / "stale.pyc").write_bytes(b"\0")
    (root / ".pytest_cache").mkdir()
    (root / ".pytest_cache" / "README.md").write_text("cache")
    return root


def args(code: Path, **overrides: Any) -> FunctionArgs:
    base: dict[str, Any] = {
        "handler": "handlers.place_order.handler",
        "timeout_seconds": 30,
        "code_dir": code,
    }
    return FunctionArgs(**{**base, **overrides})


def doc(resource: Resource, key: str = "policy") -> dict[str, Any]:
    return json.loads(resource.inputs[key])


class FakeDlq:
    """A standard on-failure queue, as pulumi_eventcraft.queue.DeadLetterQueue presents itself."""

    fifo = False

    def __init__(self, arn: str = DLQ_ARN) -> None:
        self.arn = pulumi.Output.from_input(arn)

    def send_statements(self) -> list[Statement]:
        return [Statement(actions=["sqs:SendMessage"], resources=[self.arn])]


class FakeTarget:
    """Stands in for a component whose statement methods a grant helper calls."""

    def __init__(self, name: str, service: str) -> None:
        self.pulumi_resource_name = name
        self.arn = PREFIX.format(service) + name

    def _one(self, *actions: str) -> list[Statement]:
        return [Statement(actions=list(actions), resources=[self.arn])]

    def put_events_statements(self) -> list[Statement]:
        return self._one("events:PutEvents")

    def send_statements(self) -> list[Statement]:
        return self._one("sqs:SendMessage")

    def consume_statements(self) -> list[Statement]:
        return self._one("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")

    def put_statements(self) -> list[Statement]:
        return self._one("kinesis:PutRecord", "kinesis:PutRecords")


def deploy_function(fn_args: FunctionArgs, name: str = "place-order") -> Deployment:
    return deploy(lambda: Function(name, fn_args))


def test_function_defaults(code_dir: Path) -> None:
    d = deploy_function(args(code_dir))
    component = d.named("place-order", "eventcraft:index:Function")
    fn = d.named("place-order-function", FN)
    assert fn.parent == component.urn
    inputs = fn.inputs
    assert inputs["name"] == FN_NAME
    assert inputs["runtime"] == "python3.12"
    assert inputs["handler"] == "handlers.place_order.handler"
    assert inputs["architectures"] == ["arm64"]
    assert inputs["tracingConfig"] == {"mode": "Active"}
    assert inputs["timeout"] == 30.0
    assert inputs["memorySize"] == 256.0
    assert "reservedConcurrentExecutions" not in inputs
    assert "layers" not in inputs
    assert inputs["environment"] == {
        "variables": {"POWERTOOLS_SERVICE_NAME": "place-order", "POWERTOOLS_LOG_LEVEL": "INFO"}
    }
    assert inputs["loggingConfig"] == {
        "logFormat": "JSON",
        "logGroup": f"/aws/lambda/{FN_NAME}",
        "applicationLogLevel": "INFO",
        "systemLogLevel": "WARN",
    }
    assert inputs["role"] == f"arn:aws:iam::{ACCOUNT}:role/place-order-role"


def test_log_group_is_the_functions_with_retention(code_dir: Path) -> None:
    d = deploy_function(args(code_dir))
    group = d.named("place-order-logs", "aws:cloudwatch/logGroup:LogGroup")
    assert group.parent == d.named("place-order").urn
    assert group.inputs == {"name": f"/aws/lambda/{FN_NAME}", "retentionInDays": 14.0}


def test_code_asset_leaves_out_tests_caches_and_bytecode(code_dir: Path) -> None:
    d = deploy_function(args(code_dir))
    code = d.named("place-order-function", FN).inputs["code"]
    assert sorted(code.assets) == [
        "eventcraft/__init__.py",
        "handlers/__init__.py",
        "handlers/broken.py",
        "handlers/place_order.py",
        "handlers/relay.py",
        "requirements.txt",
    ]
    assert code.assets["handlers/place_order.py"].path == str(
        code_dir / "handlers" / "place_order.py"
    )
    assert sorted(code_archive(code_dir).assets) == sorted(code.assets)


def test_role_allows_only_its_logs_and_tracing(code_dir: Path) -> None:
    d = deploy_function(args(code_dir))
    role = d.named("place-order-role", "aws:iam/role:Role")
    trust = doc(role, "assumeRolePolicy")["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]
    policies = d.of_type(ROLE_POLICY)
    assert [p.name for p in policies] == ["place-order-role-policy"]
    assert policies[0].inputs["role"] == "place-order-role"
    assert doc(policies[0])["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": PREFIX.format("logs") + f"log-group:/aws/lambda/{FN_NAME}:*",
        },
        {
            "Effect": "Allow",
            "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            "Resource": "*",
        },
    ]


def test_alarms_on_errors_and_throttles(code_dir: Path) -> None:
    topic = PREFIX.format("sns") + "alerts"
    d = deploy_function(args(code_dir, alarm_actions=[topic]))
    alarms = {a.name: a.inputs for a in d.of_type(ALARM)}
    assert sorted(alarms) == ["place-order-errors", "place-order-throttles"]
    for name, metric in (("place-order-errors", "Errors"), ("place-order-throttles", "Throttles")):
        alarm = alarms[name]
        assert alarm["namespace"] == "AWS/Lambda"
        assert alarm["metricName"] == metric
        assert alarm["dimensions"] == {"FunctionName": FN_NAME}
        assert alarm["statistic"] == "Sum"
        assert alarm["threshold"] == 1.0
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["period"] == 60.0
        assert alarm["alarmActions"] == [topic]
    assert all(a.parent == d.named("place-order").urn for a in d.of_type(ALARM))
    assert d.of_type(ALARM) and not deploy_function(args(code_dir, alarms=False)).of_type(ALARM)


def test_settings_are_passed_through(code_dir: Path) -> None:
    d = deploy_function(
        args(
            code_dir,
            handler="handlers.relay.handler",
            timeout_seconds=900,
            memory_mb=1024,
            architecture="x86_64",
            runtime="python3.13",
            reserved_concurrency=5,
            log_retention_days=30,
            log_level="DEBUG",
            environment={"TABLE_NAME": "orders", "POWERTOOLS_LOG_LEVEL": "ERROR"},
            function_name="relay",
            description="outbox relay",
        ),
        name="relay",
    )
    fn = d.named("relay-function", FN).inputs
    assert fn["name"] == "relay"
    assert fn["handler"] == "handlers.relay.handler"
    assert (fn["timeout"], fn["memorySize"]) == (900.0, 1024.0)
    assert fn["architectures"] == ["x86_64"]
    assert fn["runtime"] == "python3.13"
    assert fn["reservedConcurrentExecutions"] == 5.0
    assert fn["description"] == "outbox relay"
    # The user's variables are merged last.
    assert fn["environment"]["variables"] == {
        "POWERTOOLS_SERVICE_NAME": "relay",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "TABLE_NAME": "orders",
    }
    assert fn["loggingConfig"]["applicationLogLevel"] == "DEBUG"
    group = d.named("relay-logs").inputs
    assert group == {"name": "/aws/lambda/relay", "retentionInDays": 30.0}


def test_layer_is_attached(code_dir: Path, tmp_path: Path) -> None:
    def fake_pip(command: Sequence[str]) -> None:
        target = Path(command[command.index("--target") + 1])
        (target / "dep").mkdir(parents=True)
        (target / "dep" / "__init__.py").write_text("")

    def program() -> None:
        layer = DependencyLayer(
            "deps",
            DependencyLayerArgs(
                requirements_file=code_dir / "requirements.txt",
                cache_dir=tmp_path / "layers",
                runner=fake_pip,
            ),
        )
        Function("place-order", args(code_dir, layer=layer))

    d = deploy(program)
    layer_arn = PREFIX.format("lambda") + "layer:project-dev-deps:1"
    assert d.named("place-order-function", FN).inputs["layers"] == [layer_arn]


def test_grant_creates_one_named_inline_policy(code_dir: Path) -> None:
    target = PREFIX.format("sqs") + "work"

    def program() -> None:
        fn = Function("place-order", args(code_dir))
        fn.grant("custom", [Statement(actions=["sqs:SendMessage"], resources=[target])])
        with pytest.raises(ValueError, match="already has a grant named 'custom'"):
            fn.grant("custom", [Statement(actions=["sqs:SendMessage"], resources=[target])])
        with pytest.raises(ValueError, match="grant name 'a b' must be"):
            fn.grant("a b", [Statement(actions=["sqs:SendMessage"], resources=[target])])

    d = deploy(program)
    policy = d.named("place-order-custom", ROLE_POLICY)
    assert policy.parent == d.named("place-order").urn
    assert policy.inputs["role"] == "place-order-role"
    assert doc(policy)["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": target}
    ]


def test_typed_grants_use_the_targets_statements(code_dir: Path) -> None:
    table_arn = PREFIX.format("dynamodb") + "table/events-table"
    machine_arn = PREFIX.format("states") + "stateMachine:project-dev-saga"

    def program() -> None:
        fn = Function("place-order", args(code_dir))
        table = Table("events", event_store_table())
        other = Function("relay", args(code_dir, handler="handlers.relay.handler"))
        machine = StateMachine(
            "saga",
            StateMachineArgs(
                definition={"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
            ),
        )
        fn.grant_read(table)
        fn.grant_write(table)
        fn.grant_read_write(table)
        fn.grant_put_events(FakeTarget("bus", "events"))
        fn.grant_send(FakeTarget("work", "sqs"))
        fn.grant_consume(FakeTarget("inbox", "sqs"))
        fn.grant_put_records(FakeTarget("clicks", "kinesis"))
        fn.grant_start_execution(machine)
        fn.grant_invoke(other)

    d = deploy(program)
    policies = {
        p.name: doc(p)["Statement"]
        for p in d.of_type(ROLE_POLICY)
        if p.name.startswith("place-order-") and p.name != "place-order-role-policy"
    }
    assert sorted(policies) == [
        "place-order-consume-inbox",
        "place-order-invoke-relay",
        "place-order-put-events-bus",
        "place-order-put-records-clicks",
        "place-order-read-events",
        "place-order-read-write-events",
        "place-order-send-work",
        "place-order-start-execution-saga",
        "place-order-write-events",
    ]
    assert policies["place-order-read-events"][0]["Action"][0] == "dynamodb:GetItem"
    assert policies["place-order-read-events"][0]["Resource"] == table_arn
    assert policies["place-order-write-events"][0]["Action"][0] == "dynamodb:PutItem"
    assert len(policies["place-order-read-write-events"]) == 2
    assert policies["place-order-put-events-bus"] == [
        {
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": PREFIX.format("events") + "bus",
        }
    ]
    assert policies["place-order-consume-inbox"][0]["Action"] == [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ]
    assert policies["place-order-start-execution-saga"][0]["Action"] == "states:StartExecution"
    assert policies["place-order-start-execution-saga"][0]["Resource"] == machine_arn
    assert policies["place-order-invoke-relay"] == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": PREFIX.format("lambda") + "function:project-dev-relay",
        }
    ]


def test_invoke_statements(code_dir: Path) -> None:
    def program() -> None:
        fn = Function("place-order", args(code_dir))
        pulumi.export("invoke", policy_document(fn.invoke_statements()))

    d = deploy(program)
    assert json.loads(d.outputs["invoke"])["Statement"] == [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": FN_ARN}
    ]


def test_async_failures_go_to_the_given_queue_with_a_role_grant(code_dir: Path) -> None:
    d = deploy_function(args(code_dir, async_on_failure=FakeDlq()))
    config = d.named(
        "place-order-async", "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
    )
    assert config.parent == d.named("place-order").urn
    assert config.inputs == {
        "functionName": FN_NAME,
        "maximumRetryAttempts": 2.0,
        "maximumEventAgeInSeconds": 3600.0,
        "destinationConfig": {"onFailure": {"destination": DLQ_ARN}},
    }
    # Lambda sends destination records with the execution role: the role is granted.
    grant = d.named("place-order-async-on-failure", ROLE_POLICY)
    assert doc(grant)["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": DLQ_ARN}
    ]
    delivery = d.named("place-order-destination-delivery-failures", ALARM).inputs
    assert delivery["metricName"] == "DestinationDeliveryFailures"
    assert delivery["threshold"] == 1.0


def test_async_settings(code_dir: Path) -> None:
    d = deploy_function(
        args(
            code_dir,
            async_on_failure=FakeDlq(),
            async_max_retry_attempts=0,
            async_max_event_age_seconds=60,
        )
    )
    config = d.named("place-order-async").inputs
    assert (config["maximumRetryAttempts"], config["maximumEventAgeInSeconds"]) == (0.0, 60.0)


def test_no_async_config_by_default(code_dir: Path) -> None:
    d = deploy_function(args(code_dir))
    assert not d.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")


def test_recursive_invocations_are_allowed_only_when_asked(code_dir: Path) -> None:
    """Lambda stops a chain of invocations of one event after ~16 hops by default; a
    function that continues itself in new invocations must allow them."""
    recursion = "aws:lambda/functionRecursionConfig:FunctionRecursionConfig"
    assert not deploy_function(args(code_dir)).of_type(recursion)
    d = deploy_function(args(code_dir, recursive_loop="Allow"))
    config = d.named("place-order-recursion", recursion)
    assert config.inputs == {"functionName": FN_NAME, "recursiveLoop": "Allow"}
    assert config.parent == d.named("place-order", "eventcraft:index:Function").urn


def test_missing_timeout_is_a_clear_type_error(code_dir: Path) -> None:
    with pytest.raises(
        TypeError, match="missing 1 required keyword-only argument: 'timeout_seconds'"
    ):
        FunctionArgs(handler="handlers.place_order.handler", code_dir=code_dir)  # type: ignore[call-arg]


def test_the_code_folder_is_an_argument(code_dir: Path) -> None:
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'code_dir'"):
        FunctionArgs(handler="handlers.place_order.handler", timeout_seconds=30)  # type: ignore[call-arg]


class WrongLayer:
    def __init__(self, architecture: str, runtime: str) -> None:
        self.architecture = architecture
        self.runtime = runtime


class FifoDlq(FakeDlq):
    fifo = True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timeout_seconds": 0}, "timeout_seconds: 0 is outside 1..900 seconds"),
        ({"timeout_seconds": 901}, "timeout_seconds: 901 is outside 1..900 seconds"),
        ({"timeout_seconds": 2.5}, "timeout_seconds: 2.5 must be whole seconds"),
        ({"memory_mb": 64}, "memory_mb: 64 is outside 128..10240 MB"),
        ({"architecture": "arm"}, "architecture: 'arm' is not allowed; use one of arm64, x86_64"),
        ({"runtime": "python3.11"}, "runtime: 'python3.11' is not supported; use python3.12"),
        ({"runtime": "nodejs20.x"}, "runtime: 'nodejs20.x' is not supported"),
        ({"log_retention_days": 10}, "log_retention_days: 10 is not a CloudWatch Logs retention"),
        ({"log_level": "TRACE"}, "log_level: 'TRACE' is not allowed; use one of DEBUG, INFO"),
        ({"reserved_concurrency": -1}, "reserved_concurrency: -1 must be None (unreserved)"),
        ({"environment": {"AWS_REGION": "x"}}, "environment: 'AWS_REGION' is reserved"),
        ({"environment": {"1X": "x"}}, "environment: '1X' is not a valid variable name"),
        ({"handler": "place_order"}, "handler: 'place_order' must be 'module.path.function'"),
        (
            {"handler": "handlers.missing.handler"},
            "handler: 'handlers.missing.handler' names module 'handlers.missing', but neither "
            "handlers/missing.py nor handlers/missing/__init__.py exists",
        ),
        (
            {"handler": "handlers.place_order.main"},
            "handler: 'handlers.place_order.main': handlers/place_order.py defines no "
            "top-level 'main'",
        ),
        ({"code_dir": Path("/nope")}, "code_dir: /nope is not a directory"),
        (
            {"handler": "handlers.broken.handler"},
            "handler: 'handlers.broken.handler': handlers/broken.py does not parse (line 1:",
        ),
        (
            {"layer": WrongLayer("x86_64", "python3.12")},
            "layer: built for x86_64 but the function runs on arm64; build the layer with "
            "architecture='arm64'",
        ),
        (
            {"layer": WrongLayer("arm64", "python3.13")},
            "layer: built for python3.13 but the function runs python3.12; build the layer "
            "with python_version='3.12'",
        ),
        ({"async_max_retry_attempts": 3}, "async_max_retry_attempts: 3 is outside 0..2"),
        (
            {"async_max_event_age_seconds": 30},
            "async_max_event_age_seconds: 30 is outside 60..21600 seconds",
        ),
        (
            {"async_on_failure": FifoDlq()},
            "async_on_failure: Lambda destinations cannot send to a FIFO queue",
        ),
        ({"function_name": "a/b"}, "function_name: 'a/b' must be 1..64 letters"),
        (
            {"recursive_loop": "Forever"},
            "recursive_loop: 'Forever' is not allowed; use one of Terminate, Allow",
        ),
    ],
)
def test_refuses_bad_args_before_creating_anything(
    code_dir: Path, overrides: dict[str, Any], message: str
) -> None:
    recorder = RecordingMocks()
    with pytest.raises(ValueError, match=re.escape(message)):
        deploy(lambda: Function("f", args(code_dir, **overrides)), mocks=recorder)
    assert recorder.registrations == []


def test_long_names_are_shortened_with_a_hash(code_dir: Path) -> None:
    name = "x" * 80
    d = deploy_function(args(code_dir), name=name)
    physical = d.named(f"{name}-function", FN).inputs["name"]
    assert len(physical) == 64
    assert physical.startswith("project-dev-xxx")
    assert re.fullmatch(r"[A-Za-z0-9_-]+-[0-9a-f]{8}", physical)


def test_async_on_failure_true_creates_an_alarmed_dead_letter_queue(code_dir: Path) -> None:
    topic = PREFIX.format("sns") + "alerts"
    d = deploy_function(args(code_dir, async_on_failure=True, alarm_actions=[topic]))
    dlq = d.named("place-order-async-dlq", "eventcraft:index:DeadLetterQueue")
    assert dlq.parent == d.named("place-order").urn
    queue = d.named("place-order-async-dlq-queue", "aws:sqs/queue:Queue")
    assert queue.inputs["fifoQueue"] is False
    assert queue.inputs["sqsManagedSseEnabled"] is True
    queue_arn = PREFIX.format("sqs") + "place-order-async-dlq-queue"
    config = d.named("place-order-async").inputs
    assert config["destinationConfig"] == {"onFailure": {"destination": queue_arn}}
    assert doc(d.named("place-order-async-on-failure", ROLE_POLICY))["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}
    ]
    # No AWS service may send to it through its queue policy: Lambda uses the role.
    queue_policy = doc(d.named("place-order-async-dlq-policy"))["Statement"]
    assert [st["Effect"] for st in queue_policy] == ["Deny"]
    dlq_alarm = d.named("place-order-async-dlq-alarm", ALARM).inputs
    assert dlq_alarm["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq_alarm["alarmActions"] == [topic]
