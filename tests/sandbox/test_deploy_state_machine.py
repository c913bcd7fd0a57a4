"""State machines deployed into the sandbox: settings read back, executions run (the
sandbox's moto runs Step Functions' interpreter), and a saga over the real handlers
next to an outbox relay."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.moto_deploy import DeployError, Sandbox
from order_saga.catalogue import CODE_DIR, RELAY_HANDLER
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.outbox_relay import OutboxRelay, OutboxRelayArgs
from pulumi_eventcraft.saga import SagaStep, function_arns, saga_definition
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.table import Table, outbox_table

DEFINITION = {
    "StartAt": "Stamp",
    "States": {
        "Stamp": {"Type": "Pass", "Result": "stamped", "ResultPath": "$.status", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def test_a_state_machine_with_role_logging_and_tracing(sandbox: Sandbox) -> None:
    def program() -> None:
        machine = StateMachine(
            "saga",
            StateMachineArgs(definition=DEFINITION, log_level="ALL", include_execution_data=True),
        )
        pulumi.export("arn", machine.arn)
        pulumi.export("roleArn", machine.role.arn)

    deployment = sandbox.deploy(program)
    sfn = sandbox.client("stepfunctions")
    described = sfn.describe_state_machine(stateMachineArn=deployment.outputs["arn"])
    assert described["name"] == "project-dev-saga"
    assert described["type"] == "STANDARD"
    assert described["roleArn"] == deployment.outputs["roleArn"]
    assert json.loads(described["definition"]) == DEFINITION
    assert described["tracingConfiguration"] == {"enabled": True}
    logging = described["loggingConfiguration"]
    assert logging["level"] == "ALL"
    assert logging["includeExecutionData"] is True
    group_arn = deployment.arn("saga-logs")
    assert logging["destinations"] == [
        {"cloudWatchLogsLogGroup": {"logGroupArn": f"{group_arn}:*"}}
    ]
    groups = sandbox.client("logs").describe_log_groups(
        logGroupNamePrefix="/aws/vendedlogs/states/"
    )["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/aws/vendedlogs/states/project-dev-saga"]

    # The deployment's moto runs executions.
    execution = sfn.start_execution(
        stateMachineArn=deployment.outputs["arn"], name="order-1", input=json.dumps({"id": 1})
    )["executionArn"]
    deadline = time.monotonic() + 30
    while (status := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution never finished"
        time.sleep(0.05)
    assert status["status"] == "SUCCEEDED"
    assert json.loads(status["output"]) == {"id": 1, "status": "stamped"}


def test_an_invalid_definition_is_refused_by_moto(sandbox: Sandbox) -> None:
    def program() -> None:
        role = aws.iam.Role(
            "role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "states.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        aws.sfn.StateMachine(
            "broken",
            role_arn=role.arn,
            definition=json.dumps({"StartAt": "Missing", "States": {}}),
        )

    with pytest.raises(DeployError, match=r"(?s)'broken'.*ASLParserException"):
        sandbox.deploy(program)


def test_a_saga_over_the_real_handlers_and_an_outbox_relay(sandbox: Sandbox) -> None:
    def handler(name: str) -> Function:
        return Function(
            name.replace("_", "-"),
            FunctionArgs(
                handler=f"handlers.{name}.handler",
                timeout_seconds=10,
                code_dir=CODE_DIR,
                alarms=False,
            ),
        )

    def program() -> None:
        reserve, release = handler("reserve_inventory"), handler("release_inventory")
        pay, refund = handler("process_payment"), handler("refund_payment")
        steps = [
            SagaStep(name="reserve", task=reserve.arn, compensation=release.arn),
            SagaStep(name="pay", task=pay.arn, compensation=refund.arn),
        ]
        machine = StateMachine(
            "orders-saga",
            StateMachineArgs(
                definition=saga_definition(steps), task_function_arns=function_arns(steps)
            ),
        )
        bus = EventBus("orders", EventBusArgs(archive=False))
        relay = FunctionArgs(handler=RELAY_HANDLER, timeout_seconds=60, code_dir=CODE_DIR)
        OutboxRelay(
            "relay",
            OutboxRelayArgs(
                table=Table("outbox", outbox_table()), bus=bus, function=relay, sweeper=False
            ),
        )
        pulumi.export("machineArn", machine.arn)
        pulumi.export("reserveArn", reserve.arn)

    deployment = sandbox.deploy(program)
    out = deployment.outputs
    definition = json.loads(
        sandbox.client("stepfunctions").describe_state_machine(stateMachineArn=out["machineArn"])[
            "definition"
        ]
    )
    # The definition names moto's function ARNs: the tasks reach the deployed handlers.
    assert out["reserveArn"] in json.dumps(definition["States"]["reserve"])
    # The whole functions/ folder is each function's code (handlers import each other).
    code = sandbox.client("lambda").get_function(FunctionName=out["reserveArn"])
    assert code["Configuration"]["CodeSize"] > 10_000
    [relay] = deployment.event_source_mappings
    assert relay.event_source_arn == deployment.named("outbox-table").outputs["streamArn"]
    assert relay.request["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
