"""Functions deployed into the sandbox (code, role, log group, async destination,
layer) and event source mappings, which are checked and recorded, not created."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest
from botocore.exceptions import ClientError

from eventcraft_sandbox.deployers.archive import zip_bytes
from eventcraft_sandbox.moto_deploy import DeployError, Sandbox
from pulumi_eventcraft.event_source import (
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
    SqsSource,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import Queue, QueueArgs
from pulumi_eventcraft.table import KeyAttribute, Table, TableArgs


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    (root / "handlers").mkdir(parents=True)
    (root / "handlers" / "__init__.py").write_text("")
    (root / "handlers" / "echo.py").write_text("def handler(event, context):\n    return event\n")
    (root / "handlers" / "tests").mkdir()
    (root / "handlers" / "tests" / "test_echo.py").write_text("")
    return root


def _function(code_dir: Path, **overrides: object) -> Function:
    args: dict[str, object] = {
        "handler": "handlers.echo.handler",
        "timeout_seconds": 10,
        "code_dir": code_dir,
        "alarms": False,
        **overrides,
    }
    return Function("echo", FunctionArgs(**args))  # type: ignore[arg-type]


def test_a_function_with_its_role_log_group_and_async_destination(
    sandbox: Sandbox, code_dir: Path
) -> None:
    def program() -> None:
        function = _function(
            code_dir,
            memory_mb=512,
            architecture="x86_64",
            environment={"TABLE_NAME": "orders"},
            reserved_concurrency=7,
            log_retention_days=30,
            async_on_failure=True,
            async_max_retry_attempts=1,
        )
        pulumi.export("name", function.name)
        pulumi.export("arn", function.arn)
        pulumi.export("roleArn", function.role.arn)
        pulumi.export("dlqArn", function.async_dlq.arn)  # type: ignore[union-attr]

    deployment = sandbox.deploy(program)
    out = deployment.outputs
    assert out["name"] == "project-dev-echo"
    client = sandbox.client("lambda")

    config = client.get_function_configuration(FunctionName=out["arn"])
    assert config["FunctionArn"] == out["arn"]
    assert config["Role"] == out["roleArn"]
    assert config["Runtime"] == "python3.12"
    assert config["Handler"] == "handlers.echo.handler"
    assert (config["Timeout"], config["MemorySize"]) == (10, 512)
    assert config["Architectures"] == ["x86_64"]
    assert config["TracingConfig"] == {"Mode": "Active"}
    assert config["Environment"]["Variables"] == {
        "POWERTOOLS_SERVICE_NAME": "echo",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "TABLE_NAME": "orders",
    }
    concurrency = client.get_function_concurrency(FunctionName=out["name"])
    assert concurrency["ReservedConcurrentExecutions"] == 7
    invoke_config = client.get_function_event_invoke_config(FunctionName=out["name"])
    assert invoke_config["MaximumRetryAttempts"] == 1
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == out["dlqArn"]

    # The code is the folder, zipped without tests: moto holds exactly those bytes.
    code = client.get_function(FunctionName=out["name"])
    assert code["Configuration"]["CodeSize"] == len(
        zip_bytes(deployment.named("echo-function").inputs["code"])
    )
    archive = deployment.named("echo-function").inputs["code"]
    names = zipfile.ZipFile(io.BytesIO(zip_bytes(archive))).namelist()
    assert names == ["handlers/__init__.py", "handlers/echo.py"]

    groups = sandbox.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")
    [group] = groups["logGroups"]
    assert group["logGroupName"] == "/aws/lambda/project-dev-echo"
    assert group["retentionInDays"] == 30

    iam = sandbox.client("iam")
    role_name = deployment.resource_id("echo-role")
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert set(iam.list_role_policies(RoleName=role_name)["PolicyNames"]) == {
        "echo-role-policy",
        "echo-async-on-failure",
    }


def test_zips_are_deterministic_and_cached() -> None:
    archive = pulumi.AssetArchive(
        {
            "a.py": pulumi.StringAsset("A = 1\n"),
            "pkg": pulumi.AssetArchive({"b.py": pulumi.StringAsset("B = 2\n")}),
        }
    )
    first = zip_bytes(archive)
    assert zip_bytes(archive) is first
    again = pulumi.AssetArchive(
        {
            "pkg": pulumi.AssetArchive({"b.py": pulumi.StringAsset("B = 2\n")}),
            "a.py": pulumi.StringAsset("A = 1\n"),
        }
    )
    assert zip_bytes(again) == first
    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == ["a.py", "pkg/b.py"]


def test_a_layer_version_and_a_function_using_it(sandbox: Sandbox, tmp_path: Path) -> None:
    layer_zip = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer_zip, "w") as out:
        out.writestr("python/dep.py", "X = 1\n")

    def program() -> None:
        layer = aws.lambda_.LayerVersion(
            "deps",
            layer_name="order-saga-deps",
            code=pulumi.FileArchive(str(layer_zip)),
            compatible_runtimes=["python3.12"],
            compatible_architectures=["arm64"],
        )
        role = aws.iam.Role(
            "fn-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        aws.lambda_.Function(
            "fn",
            role=role.arn,
            runtime="python3.12",
            handler="dep.handler",
            code=pulumi.AssetArchive({"dep.py": pulumi.StringAsset("def handler(e, c): pass")}),
            layers=[layer.arn],
        )
        pulumi.export("layerArn", layer.arn)
        pulumi.export("layerName", layer.layer_arn)

    deployment = sandbox.deploy(program)
    client = sandbox.client("lambda")
    [version] = client.list_layer_versions(LayerName="order-saga-deps")["LayerVersions"]
    assert version["LayerVersionArn"] == deployment.outputs["layerArn"]
    assert version["CompatibleRuntimes"] == ["python3.12"]
    assert deployment.outputs["layerName"] == deployment.outputs["layerArn"].rsplit(":", 1)[0]
    config = client.get_function_configuration(FunctionName="fn")
    assert [layer["Arn"] for layer in config["Layers"]] == [deployment.outputs["layerArn"]]


def test_event_source_mappings_are_recorded_not_created(sandbox: Sandbox, code_dir: Path) -> None:
    def program() -> None:
        function = _function(code_dir)
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=60, alarms=False))
        table = Table(
            "outbox", TableArgs(hash_key=KeyAttribute("pk"), stream_view_type="NEW_IMAGE")
        )
        EventSourceMapping(
            "work-consumer",
            EventSourceMappingArgs(
                function=function,
                source=SqsSource(queue=queue, batch_size=5, maximum_concurrency=3),
            ),
        )
        EventSourceMapping(
            "outbox-relay",
            EventSourceMappingArgs(
                function=function,
                source=DynamoDbStreamSource(
                    stream=table, batch_size=25, filter_patterns=[{"eventName": ["INSERT"]}]
                ),
                enabled=False,
                alarms=False,
            ),
        )
        pulumi.export("functionArn", function.arn)
        pulumi.export("queueArn", queue.arn)
        pulumi.export("streamArn", table.stream_arn)

    deployment = sandbox.deploy(program)
    out = deployment.outputs
    # moto has none: its own mappings would deliver synchronously, one record at a time.
    assert sandbox.client("lambda").list_event_source_mappings()["EventSourceMappings"] == []

    # Registration order is the engine's: look the records up by name.
    mappings = {m.name: m for m in deployment.event_source_mappings}
    assert set(mappings) == {"work-consumer-mapping", "outbox-relay-mapping"}
    sqs, stream = mappings["work-consumer-mapping"], mappings["outbox-relay-mapping"]
    assert sqs.function_arn == out["functionArn"]
    assert sqs.event_source_arn == out["queueArn"]
    assert sqs.enabled is True
    assert sqs.request["BatchSize"] == 5
    assert sqs.request["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert sqs.request["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs.arn.endswith(f":event-source-mapping:{sqs.uuid}")
    assert deployment.named("work-consumer-mapping").outputs["state"] == "Enabled"

    assert stream.event_source_arn == out["streamArn"]
    assert stream.enabled is False
    assert stream.request["StartingPosition"] == "TRIM_HORIZON"
    [pattern] = stream.request["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == {"eventName": ["INSERT"]}
    failures = deployment.resource_id("outbox-relay-failures-queue")
    failures_arn = deployment.arn("outbox-relay-failures-queue")
    assert failures.endswith("/outbox-relay-failures-queue")
    assert stream.request["DestinationConfig"] == {"OnFailure": {"Destination": failures_arn}}
    assert stream.request["BisectBatchOnFunctionError"] is True
    assert "event source mapping outbox-relay-mapping" in deployment.summary()


def test_a_mapping_whose_role_cannot_read_the_source_is_refused(
    sandbox: Sandbox, code_dir: Path
) -> None:
    def program() -> None:
        function = _function(code_dir)
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=60, alarms=False))
        # A bare mapping, without the consume grant the component would add.
        aws.lambda_.EventSourceMapping(
            "unauthorised", function_name=function.arn, event_source_arn=queue.arn
        )

    with pytest.raises(DeployError, match=r"'unauthorised'.*may not sqs:ReceiveMessage"):
        sandbox.deploy(program)


def test_a_stream_mapping_needs_a_starting_position(sandbox: Sandbox, code_dir: Path) -> None:
    def program() -> None:
        function = _function(code_dir)
        stream = aws.kinesis.Stream("clicks", stream_mode_details={"stream_mode": "ON_DEMAND"})
        aws.lambda_.EventSourceMapping(
            "clicks", function_name=function.name, event_source_arn=stream.arn
        )

    with pytest.raises(DeployError, match="needs startingPosition"):
        sandbox.deploy(program)


def test_a_recursion_config_is_checked_as_lambda_checks_it(
    sandbox: Sandbox, code_dir: Path
) -> None:
    """moto has no recursion config: the deployer checks the call's parameters and that
    the function exists, as PutFunctionRecursionConfig would, and sends nothing."""

    def allowed() -> None:
        _function(code_dir, recursive_loop="Allow")

    deployment = sandbox.deploy(allowed)
    config = deployment.named("echo-recursion")
    assert config.outputs == {"functionName": "project-dev-echo", "recursiveLoop": "Allow"}

    def for_a_missing_function() -> None:
        aws.lambda_.FunctionRecursionConfig("ghost", function_name="ghost", recursive_loop="Allow")

    with pytest.raises(DeployError, match=r"Function not found: .*function:ghost"):
        sandbox.deploy(for_a_missing_function)

    def sometimes() -> None:  # on the function deployed above
        aws.lambda_.FunctionRecursionConfig(
            "sometimes", function_name="project-dev-echo", recursive_loop="Sometimes"
        )

    with pytest.raises(DeployError, match="recursiveLoop 'Sometimes' is not one of Allow"):
        sandbox.deploy(sometimes)


# ------------------------------------------------------- the role, as Lambda checks it

NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
NO_XRAY = "The provided execution role does not have permissions to call PutTraceSegments on XRAY"


def _bare_function(
    name: str = "orders",
    *,
    principal: str = "lambda.amazonaws.com",
    condition: dict[str, object] | None = None,
    tracing: str | None = None,
    xray: bool = False,
) -> Callable[[], None]:
    """A program: the function `name` under a role trusting `principal` (with
    `condition`), traced with `tracing`, its role allowed X-Ray or not."""

    def program() -> None:
        statement: dict[str, object] = {
            "Effect": "Allow",
            "Principal": {"Service": principal},
            "Action": "sts:AssumeRole",
        }
        if condition:
            statement["Condition"] = condition
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )
        grants = []
        if xray:
            grant = {"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"}
            policy = json.dumps({"Version": "2012-10-17", "Statement": [grant]})
            grants.append(aws.iam.RolePolicy(f"{name}-xray", role=role.id, policy=policy))
        function = aws.lambda_.Function(
            name,
            name=name,
            role=role.arn,
            runtime="python3.12",
            handler="app.handler",
            code=pulumi.AssetArchive({"app.py": pulumi.StringAsset("def handler(e, c): pass")}),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode=tracing) if tracing else None,
            opts=pulumi.ResourceOptions(depends_on=grants),
        )
        pulumi.export("arn", function.arn)

    return program


def _function_arn(sandbox: Sandbox, name: str) -> str:
    return f"arn:aws:lambda:us-east-1:{sandbox.account}:function:{name}"


def _refused(sandbox: Sandbox, program: Callable[[], None], message: str) -> None:
    with pytest.raises(DeployError) as refused:
        sandbox.deploy(program)
    text = str(refused.value)
    assert "'orders'" in text
    assert (
        f"(InvalidParameterValueException) when calling the CreateFunction operation: {message}"
    ) in text
    assert sandbox.client("lambda").list_functions()["Functions"] == []


@pytest.mark.parametrize("case", ["another function", "another account", "another service"])
def test_a_role_lambda_cannot_assume_for_the_function_is_refused(
    sandbox: Sandbox, case: str
) -> None:
    program = {
        "another function": _bare_function(
            condition={"ArnLike": {"aws:SourceArn": _function_arn(sandbox, "other")}}
        ),
        "another account": _bare_function(
            condition={"StringEquals": {"aws:SourceAccount": "999999999999"}}
        ),
        "another service": _bare_function(principal="states.amazonaws.com"),
    }[case]
    _refused(sandbox, program, NOT_ASSUMABLE)


def test_a_role_trusting_lambda_for_this_function_is_accepted(sandbox: Sandbox) -> None:
    condition = {
        "ArnLike": {"aws:SourceArn": _function_arn(sandbox, "orders")},
        "StringEquals": {"aws:SourceAccount": sandbox.account},
    }
    deployment = sandbox.deploy(_bare_function(condition=condition))
    config = sandbox.client("lambda").get_function_configuration(FunctionName="orders")
    assert config["FunctionArn"] == deployment.outputs["arn"]


def test_active_tracing_needs_xray_in_the_role(sandbox: Sandbox) -> None:
    _refused(sandbox, _bare_function(tracing="Active"), NO_XRAY)
    sandbox.deploy(_bare_function("traced", tracing="Active", xray=True))
    config = sandbox.client("lambda").get_function_configuration(FunctionName="traced")
    assert config["TracingConfig"] == {"Mode": "Active"}


def test_update_function_configuration_checks_the_new_role(sandbox: Sandbox) -> None:
    sandbox.deploy(_bare_function())
    iam = sandbox.client("iam")
    trust = {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"ArnLike": {"aws:SourceArn": _function_arn(sandbox, "other")}},
    }
    other = iam.create_role(
        RoleName="other-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]}),
    )["Role"]["Arn"]
    with pytest.raises(ClientError) as refused:
        sandbox.client("lambda").update_function_configuration(FunctionName="orders", Role=other)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert refused.value.response["Error"]["Message"] == NOT_ASSUMABLE
