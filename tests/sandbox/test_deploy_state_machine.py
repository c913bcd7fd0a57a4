"""State machines deployed into the sandbox: settings read back, executions run (the
sandbox's moto runs Step Functions' interpreter), and a saga over the real handlers
next to an outbox relay."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from botocore.exceptions import ClientError

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


# ------------------------------------------------------- the role, as AWS checks it

NOT_ASSUMABLE = (
    "Neither the global service principal states.amazonaws.com, nor the regional one is "
    "authorized to assume the provided role."
)
LOGS_DENIED = "The state machine IAM Role is not authorized to access the Log Destination"
LOG_DELIVERY = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]


def _trust(principal: str = "states.amazonaws.com", condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": principal},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _grants(actions: list[str], resource: str = "*") -> str:
    statement = {"Effect": "Allow", "Action": actions, "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _machine(
    *,
    trust: str,
    inline: str | None = None,
    attached: str | None = None,
    level: str | None = None,
    tracing: bool = False,
) -> Callable[[], None]:
    """A program: the state machine `orders` (logging at `level`, traced or not) under
    a role trusting with `trust`, granted `inline` and/or an `attached` policy."""

    def program() -> None:
        role = aws.iam.Role("orders-role", name="orders-role", assume_role_policy=trust)
        grants: list[pulumi.Resource] = []
        if inline is not None:
            grants.append(aws.iam.RolePolicy("orders-grants", role=role.id, policy=inline))
        if attached is not None:
            policy = aws.iam.Policy("orders-logging", policy=attached)
            grants.append(
                aws.iam.RolePolicyAttachment("orders-attach", role=role.name, policy_arn=policy.arn)
            )
        logging = None
        if level is not None:
            group = aws.cloudwatch.LogGroup("orders-logs", name="/aws/vendedlogs/states/orders")
            logging = aws.sfn.StateMachineLoggingConfigurationArgs(
                level=level, log_destination=pulumi.Output.concat(group.arn, ":*")
            )
        machine = aws.sfn.StateMachine(
            "orders",
            name="orders",
            role_arn=role.arn,
            definition=json.dumps(DEFINITION),
            logging_configuration=logging,
            tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(enabled=tracing),
            opts=pulumi.ResourceOptions(depends_on=grants),
        )
        pulumi.export("arn", machine.arn)
        pulumi.export("roleArn", role.arn)

    return program


def _machine_arn(sandbox: Sandbox, name: str = "orders") -> str:
    return f"arn:aws:states:us-east-1:{sandbox.account}:stateMachine:{name}"


def _refused(sandbox: Sandbox, program: Callable[[], None], message: str) -> None:
    with pytest.raises(DeployError) as refused:
        sandbox.deploy(program)
    text = str(refused.value)
    assert "'orders'" in text
    assert f"(AccessDeniedException) when calling the CreateStateMachine operation: {message}" in (
        text
    )
    assert sandbox.client("stepfunctions").list_state_machines()["stateMachines"] == []


@pytest.mark.parametrize(
    "case",
    ["another state machine", "another account", "another service", "no such condition key"],
)
def test_a_role_step_functions_cannot_assume_for_the_state_machine_is_refused(
    sandbox: Sandbox, case: str
) -> None:
    other = _machine_arn(sandbox, "other")
    trust = {
        # The confused-deputy keys pinned to another caller than this state machine.
        "another state machine": _trust(condition={"ArnLike": {"aws:SourceArn": other}}),
        "another account": _trust(
            condition={"StringEquals": {"aws:SourceAccount": "999999999999"}}
        ),
        "another service": _trust("lambda.amazonaws.com"),
        "no such condition key": _trust(
            condition={"ArnEquals": {"aws:SourceArn": f"{_machine_arn(sandbox)}:1"}}
        ),
    }[case]
    _refused(sandbox, _machine(trust=trust), NOT_ASSUMABLE)


@pytest.mark.parametrize("case", ["its own ARN", "a pattern", "the regional principal"])
def test_a_role_trusting_step_functions_for_this_state_machine_is_accepted(
    sandbox: Sandbox, case: str
) -> None:
    own = {
        "StringEquals": {"aws:SourceAccount": sandbox.account},
        "ArnLike": {"aws:SourceArn": _machine_arn(sandbox)},
    }
    trust = {
        "its own ARN": _trust(condition=own),
        "a pattern": _trust(condition={"ArnLike": {"aws:SourceArn": _machine_arn(sandbox, "o*")}}),
        "the regional principal": _trust("states.us-east-1.amazonaws.com", condition=own),
    }[case]
    deployment = sandbox.deploy(_machine(trust=trust))
    described = sandbox.client("stepfunctions").describe_state_machine(
        stateMachineArn=deployment.outputs["arn"]
    )
    assert described["roleArn"] == deployment.outputs["roleArn"]


@pytest.mark.parametrize(
    "case", ["no grant", "one action missing", "scoped to the log group", "denied"]
)
def test_logging_without_the_log_delivery_permissions_is_refused(
    sandbox: Sandbox, case: str
) -> None:
    group = f"arn:aws:logs:us-east-1:{sandbox.account}:log-group:/aws/vendedlogs/states/orders"
    deny = {"Effect": "Deny", "Action": "logs:CreateLogDelivery", "Resource": "*"}
    inline = {
        "no grant": None,
        "one action missing": _grants(LOG_DELIVERY[1:]),
        # These actions take no resource but "*": a grant on the group is no grant.
        "scoped to the log group": _grants(LOG_DELIVERY, f"{group}:*"),
        "denied": json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [json.loads(_grants(LOG_DELIVERY))["Statement"][0], deny],
            }
        ),
    }[case]
    _refused(sandbox, _machine(trust=_trust(), inline=inline, level="ERROR"), LOGS_DENIED)


def test_logging_with_the_log_delivery_permissions_is_accepted(sandbox: Sandbox) -> None:
    # From an attached managed policy as well as from an inline one.
    deployment = sandbox.deploy(
        _machine(trust=_trust(), attached=_grants(LOG_DELIVERY), level="ALL", tracing=True)
    )
    described = sandbox.client("stepfunctions").describe_state_machine(
        stateMachineArn=deployment.outputs["arn"]
    )
    assert described["loggingConfiguration"]["level"] == "ALL"


def test_without_logging_or_with_tracing_no_permission_is_needed(sandbox: Sandbox) -> None:
    # Level OFF delivers nothing; a traced state machine whose role may not send
    # traces is created by AWS too (its traces are lost).
    deployment = sandbox.deploy(_machine(trust=_trust(), level="OFF", tracing=True))
    described = sandbox.client("stepfunctions").describe_state_machine(
        stateMachineArn=deployment.outputs["arn"]
    )
    assert described["tracingConfiguration"] == {"enabled": True}
    assert described["loggingConfiguration"]["level"] == "OFF"


def test_update_state_machine_checks_the_new_role_and_logging(sandbox: Sandbox) -> None:
    deployment = sandbox.deploy(_machine(trust=_trust()))
    arn = deployment.outputs["arn"]
    iam = sandbox.client("iam")
    pinned = _trust(condition={"ArnLike": {"aws:SourceArn": _machine_arn(sandbox, "other")}})
    other_role = iam.create_role(RoleName="other-role", AssumeRolePolicyDocument=pinned)
    sfn = sandbox.client("stepfunctions")
    with pytest.raises(ClientError) as wrong_role:
        sfn.update_state_machine(stateMachineArn=arn, roleArn=other_role["Role"]["Arn"])
    assert wrong_role.value.response["Error"] == {
        "Code": "AccessDeniedException",
        "Message": NOT_ASSUMABLE,
    }
    group = sandbox.client("logs")
    group.create_log_group(logGroupName="/aws/vendedlogs/states/orders")
    group_arn = group.describe_log_groups()["logGroups"][0]["arn"]
    logging = {
        "level": "ERROR",
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": group_arn}}],
    }
    with pytest.raises(ClientError) as no_logs:
        sfn.update_state_machine(stateMachineArn=arn, loggingConfiguration=logging)
    assert no_logs.value.response["Error"]["Message"] == LOGS_DENIED
    # Granted, the same update goes through.
    iam.put_role_policy(
        RoleName="orders-role", PolicyName="logs", PolicyDocument=_grants(LOG_DELIVERY)
    )
    sfn.update_state_machine(stateMachineArn=arn, loggingConfiguration=logging)
    assert sfn.describe_state_machine(stateMachineArn=arn)["loggingConfiguration"]["level"] == (
        "ERROR"
    )


def test_the_components_role_serves_its_own_state_machine_only(sandbox: Sandbox) -> None:
    def program() -> None:
        machine = StateMachine("saga", StateMachineArgs(definition=DEFINITION))
        pulumi.export("roleArn", machine.role.arn)

    deployment = sandbox.deploy(program)
    # Another state machine pointed at the role is refused: the trust policy names
    # `project-dev-saga` as aws:SourceArn (confused deputy).
    with pytest.raises(ClientError) as refused:
        sandbox.client("stepfunctions").create_state_machine(
            name="intruder",
            definition=json.dumps(DEFINITION),
            roleArn=deployment.outputs["roleArn"],
        )
    assert refused.value.response["Error"]["Message"] == NOT_ASSUMABLE
