"""`python -m eventcraft_sandbox up` deploys a stack's program into the sandbox (an in-process
moto) and prints what it created, like `pulumi up`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from eventcraft_sandbox.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventcraft_sandbox", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def up_dev() -> str:
    result = run("up", "--stack", "dev")
    assert result.returncode == 0, result.stderr
    return result.stdout


def _types(stdout: str) -> Counter[str]:
    """Resource rows (`+ <type>  <name>  ...`) counted by type."""
    return Counter(line.split()[1] for line in stdout.splitlines() if line.startswith("+ "))


def test_up_deploys_the_dev_stack_into_moto(up_dev: str) -> None:
    """The header says where it went, the rows are the created resources, the total
    matches them."""
    assert up_dev.startswith("Stack order-saga-dev (sandbox: deployed into an in-process moto)")
    types = _types(up_dev)
    assert types["aws:dynamodb/table:Table"] == 13
    assert types["aws:lambda/function:Function"] == 31
    assert types["aws:sfn/stateMachine:StateMachine"] == 1
    assert types["aws:cloudwatch/eventBus:EventBus"] == 1
    assert types["aws:cloudwatch/eventRule:EventRule"] == 15
    assert types["aws:lambda/eventSourceMapping:EventSourceMapping"] == 8
    assert types["order-saga:order_saga:OrderSaga"] == 1
    custom = sum(n for t, n in types.items() if t.startswith("aws:"))
    components = sum(n for t, n in types.items() if not t.startswith("aws:"))
    assert f"Resources: {custom} created ({components} components)" in up_dev


def test_up_names_the_resources_and_outputs_of_both_sagas(up_dev: str) -> None:
    """sagaMode both (Pulumi.dev.yaml): choreography's rules and the orchestrator."""
    names = {line.split()[2] for line in up_dev.splitlines() if line.startswith("+ ")}
    assert {"saga-reserve-rule", "saga-orchestrate-rule", "saga-orders-table"} <= names
    assert "  sagaMode: both" in up_dev.splitlines()
    assert "  busName: saga-orders-bus" in up_dev.splitlines()
    assert re.search(
        r"^  stateMachineArn: arn:aws:states:us-east-1:\d{12}:stateMachine:"
        r"order-saga-dev-saga-orchestrator$",
        up_dev,
        re.MULTILINE,
    )


def test_up_lists_what_the_sandbox_delivers_itself(up_dev: str) -> None:
    """Event source mappings (8, one per mapping resource) and the bus's schemas."""
    delivered = up_dev.split("Delivered by the sandbox (not by moto):\n", 1)[1].splitlines()
    mappings = [line for line in delivered if line.startswith("  event source mapping ")]
    assert len(mappings) == 8
    assert any(
        "saga-reserve-consumer-mapping: arn:aws:sqs:us-east-1:" in m and "(enabled" in m
        for m in mappings
    )
    assert "  schema saga-orders-schemas/OrderPlaced (JSONSchemaDraft4)" in delivered


def test_up_with_an_unknown_stack_names_the_stacks_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit status 2 and the stacks there (in-process: the same `main` as `-m sandbox`)."""
    assert main(["up", "--stack", "staging"]) == 2
    captured = capsys.readouterr()
    assert "error: no stack file Pulumi.staging.yaml; stacks here: dev, prod" in captured.err
    assert captured.out == ""


# ------------------------------------------------------------- what AWS would refuse


def test_up_refuses_reserved_concurrency_beyond_the_accounts_quota_with_lambdas_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """prod reserves 20 for each of 20 functions: 400 fits AWS's usual quota of 1000
    (the prod deploy tests), not a quota of 400, which leaves 300 to reserve: the 16th
    function is refused as Lambda refuses it, and `up` exits 2 with the error."""
    assert main(["up", "--stack", "prod", "--concurrency-quota", "400"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: creating aws:lambda/function:Function ")
    assert captured.err.rstrip().endswith(
        "An error occurred (InvalidParameterValueException) when calling the "
        "PutFunctionConcurrency operation: Specified ReservedConcurrentExecutions for "
        "function decreases account's UnreservedConcurrentExecution below its minimum value "
        "of [100]."
    )


@pytest.mark.parametrize("quota", ["0", "-3", "1.5", "lots"])
def test_up_with_a_quota_that_is_not_a_whole_number_above_0_exits_2_naming_the_option(
    quota: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["up", "--concurrency-quota", quota])
    assert exited.value.code == 2
    assert (
        f"argument --concurrency-quota: {quota} is not a whole number >= 1 (the account's "
        "Lambda concurrent executions quota; AWS's usual one is 1000)"
    ) in capsys.readouterr().err


BROKEN_ALARM_PROGRAM = """
import pulumi_aws as aws

queue = aws.sqs.Queue("orders")
aws.cloudwatch.MetricAlarm(
    "orders-backlog",
    namespace="AWS/SQS",
    metric_name="ApproximateNumberOfMessagesVisble",  # misspelt on purpose
    dimensions={"QueueName": queue.name},
    statistic="Maximum",
    period=60,
    evaluation_periods=1,
    threshold=100,
    comparison_operator="GreaterThanOrEqualToThreshold",
)
"""


def test_up_refuses_an_alarm_on_a_metric_aws_never_publishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: shop\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (tmp_path / "__main__.py").write_text(BROKEN_ALARM_PROGRAM)

    assert main(["up", "--program-dir", str(tmp_path)]) == 2

    err = capsys.readouterr().err
    assert err.startswith(
        "error: aws:cloudwatch/metricAlarm:MetricAlarm 'orders-backlog': alarm "
        "'orders-backlog' watches AWS/SQS ApproximateNumberOfMessagesVisble (QueueName), a "
        "metric AWS never publishes: AWS/SQS has no metric 'ApproximateNumberOfMessagesVisble'"
    )
    assert err.rstrip().endswith(
        "AWS would accept it, but it would never fire; the sandbox refuses it"
    )
