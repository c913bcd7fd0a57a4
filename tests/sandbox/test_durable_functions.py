"""Lambda durable functions in the sandbox: a handler written with the real SDK
(`aws-durable-execution-sdk-python`, in the function's zip as AWS asks), its
checkpoints served by moto under its role, its waits and retries on the virtual clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_durable_execution_sdk_python
import pulumi
import pulumi_aws
import pytest
from botocore.exceptions import ClientError

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery import Delivery
from eventcraft_sandbox.delivery.testing import code_zip, trust
from eventcraft_sandbox.fault_injection import FaultInjector
from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.lambda_runtime import LambdaRuntime
from eventcraft_sandbox.moto_deploy import Sandbox

T0 = 1_800_000_000.0
HOUR = 3600.0

# Reserve, wait an hour, charge (retried 3 times, 10 s then 20 s apart), and release
# the reservation in code when the charge fails for good. Every step counts its runs
# in DynamoDB: what ran, and how often, is visible in the table.
HANDLER = """
import os

import boto3
from aws_durable_execution_sdk_python import StepError, durable_execution
from aws_durable_execution_sdk_python.config import Duration, JitterStrategy, StepConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

runs = boto3.client("dynamodb")
CHARGE_RETRIES = StepConfig(
    retry_strategy=create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=3,
            initial_delay=Duration.from_seconds(10),
            backoff_rate=2,
            jitter_strategy=JitterStrategy.NONE,
        )
    )
)


def ran(step):
    runs.update_item(
        TableName=os.environ["RUNS"],
        Key={"step": {"S": step}},
        UpdateExpression="ADD runs :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )


def reserve(_):
    ran("reserve")
    return "r-1"


def charge(event):
    def run(_):
        ran("charge")
        if event.get("card") == "declined":
            raise RuntimeError("card declined")
        return "c-1"
    return run


def release(_):
    ran("release")
    return "released"


@durable_execution
def handler(event, context):
    reservation = context.step(reserve, name="reserve")
    context.wait(Duration.from_hours(1), name="cool-off")
    try:
        payment = context.step(charge(event), name="charge", config=CHARGE_RETRIES)
    except StepError:
        context.step(release, name="release")
        return {"status": "compensated", "reservation": reservation}
    return {"status": "done", "reservation": reservation, "payment": payment}
"""

CHECKPOINT_ACTIONS = ["lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"]


def sdk_files() -> dict[str, str]:
    """The SDK's package, as `pip install -t` puts it into a deployment zip."""
    root = Path(aws_durable_execution_sdk_python.__file__).parent
    return {
        f"aws_durable_execution_sdk_python/{path.relative_to(root)}": path.read_text()
        for path in root.rglob("*.py")
    }


@dataclass
class World:
    sandbox: Sandbox
    clock: VirtualClock
    runtime: LambdaRuntime
    delivery: Delivery

    def client(self, service: str) -> Any:
        return self.sandbox.client(service)

    def durable_function(
        self,
        name: str,
        *,
        timeout: int = 86_400,
        actions: list[str] = CHECKPOINT_ACTIONS,
    ) -> str:
        """A durable function whose role may count runs and do `actions` on its
        executions (`function:<name>:*`, as AWS documents)."""
        dynamodb, iam = self.client("dynamodb"), self.client("iam")
        table = f"{name}-runs"
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "step", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "step", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        table_arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
        role = iam.create_role(
            RoleName=f"{name}-role", AssumeRolePolicyDocument=trust("lambda.amazonaws.com")
        )["Role"]["Arn"]
        function_arn = f"arn:aws:lambda:us-east-1:{self.sandbox.account}:function:{name}"
        statements = [{"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": table_arn}]
        if actions:
            statements.append(
                {"Effect": "Allow", "Action": actions, "Resource": f"{function_arn}:*"}
            )
        iam.put_role_policy(
            RoleName=f"{name}-role",
            PolicyName="run",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        created = self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler="handler.handler",
            Timeout=60,
            Code={"ZipFile": code_zip({"handler.py": HANDLER, **sdk_files()})},
            Environment={"Variables": {"RUNS": table}},
            DurableConfig={"ExecutionTimeout": timeout, "RetentionPeriodInDays": 7},
        )
        return str(created["FunctionArn"])

    def runs(self, name: str) -> dict[str, int]:
        items = self.client("dynamodb").scan(TableName=f"{name}-runs")["Items"]
        return {item["step"]["S"]: int(item["runs"]["N"]) for item in items}

    def start(self, name: str, event: dict[str, Any]) -> str:
        """Invoke asynchronously, as a client does; the execution's ARN."""
        self.client("lambda").invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps(event)
        )
        (execution,) = self.executions(name)
        return str(execution["DurableExecutionArn"])

    def executions(self, name: str) -> list[dict[str, Any]]:
        listed = self.client("lambda").list_durable_executions_by_function(FunctionName=name)
        return list(listed["DurableExecutions"])

    def execution(self, arn: str) -> dict[str, Any]:
        return dict(self.client("lambda").get_durable_execution(DurableExecutionArn=arn))


@pytest.fixture
def world() -> Iterator[World]:
    with Sandbox() as sandbox:
        clock = VirtualClock(start=T0)
        runtime = LambdaRuntime(admin=sandbox.admin, clock=clock)
        delivery = Delivery(Scheduler(clock), runtime, None, sandbox)
        runtime.event_dispatcher = delivery.dispatch_event
        runtime.durable_runner = delivery.durable.run_sync
        with runtime, delivery:
            yield World(sandbox, clock, runtime, delivery)


def test_steps_a_virtual_hour_of_waiting_and_a_compensated_failing_step(world: World) -> None:
    world.durable_function("book")

    arn = world.start("book", {"card": "declined"})
    report = world.delivery.run_until_quiet()

    execution = world.execution(arn)
    assert execution["Status"] == "SUCCEEDED"
    assert json.loads(execution["Result"]) == {"status": "compensated", "reservation": "r-1"}
    assert json.loads(execution["InputPayload"]) == {"card": "declined"}
    assert execution["DurableConfig"] == {"ExecutionTimeout": 86_400, "RetentionPeriodInDays": 7}
    # Completed steps replayed from the log: the reservation was made once, the charge
    # tried three times, the compensation once.
    assert world.runs("book") == {"reserve": 1, "charge": 3, "release": 1}
    # The hour's wait and the two retry delays (10 s, 20 s) in virtual time.
    ended = execution["EndTimestamp"].timestamp()
    assert ended - T0 == pytest.approx(HOUR + 10 + 20, abs=1)
    assert report.virtual_seconds == pytest.approx(HOUR + 10 + 20, abs=1)
    outcomes = [e.outcome for e in world.delivery.log.of("lambda.durable")]
    assert outcomes == ["started", "pending", "pending", "pending", "SUCCEEDED"]
    configuration = world.client("lambda").get_function_configuration(FunctionName="book")
    assert configuration["DurableConfig"]["ExecutionTimeout"] == 86_400


def test_a_lost_reply_replays_from_the_last_checkpoint(world: World) -> None:
    world.durable_function("book")
    plan = FaultPlan.parse(["lost-reply@book=0.5"], seed=3)
    injector = FaultInjector(plan, clock=world.clock, functions={"book": "book"})
    with injector.installed(world.runtime):
        arn = world.start("book", {"card": "ok"})
        world.delivery.run_until_quiet()

    assert injector.plan.counts["lost-reply"] >= 1
    replays = [e for e in world.delivery.log.of("lambda.durable") if e.outcome == "replay"]
    assert replays and "Sandbox.Timedout" in replays[0].detail
    execution = world.execution(arn)
    assert execution["Status"] == "SUCCEEDED"
    assert json.loads(execution["Result"])["payment"] == "c-1"
    # The work of the invocations whose reply was lost stands; no completed step
    # ran again.
    assert world.runs("book") == {"reserve": 1, "charge": 1}


def test_the_execution_timeout_ends_it_on_the_virtual_clock(world: World) -> None:
    world.durable_function("book", timeout=1800)

    arn = world.start("book", {"card": "ok"})
    report = world.delivery.run_until_quiet()

    execution = world.execution(arn)
    assert execution["Status"] == "TIMED_OUT"
    assert execution["EndTimestamp"].timestamp() - T0 == pytest.approx(1800, abs=1)
    assert report.virtual_seconds == pytest.approx(1800, abs=1)
    assert world.runs("book") == {"reserve": 1}  # the hour's wait never ended


def test_a_checkpoint_token_is_used_once(world: World) -> None:
    world.durable_function("book")
    arn = world.start("book", {"card": "ok"})
    execution = world.delivery.durable.service.executions[arn]
    token = world.delivery.durable.service.envelope(execution)["CheckpointToken"]
    lambda_ = world.client("lambda")
    update = {"Id": "probe", "Type": "STEP", "Action": "START", "Name": "probe"}

    answer = lambda_.checkpoint_durable_execution(
        DurableExecutionArn=arn, CheckpointToken=token, Updates=[update]
    )
    assert answer["CheckpointToken"] != token
    assert [op["Status"] for op in answer["NewExecutionState"]["Operations"]] == ["STARTED"]
    with pytest.raises(ClientError) as refused:
        lambda_.checkpoint_durable_execution(
            DurableExecutionArn=arn, CheckpointToken=token, Updates=[update]
        )

    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert error["Message"].startswith("Invalid checkpoint token")


def test_a_role_without_the_checkpoint_action_fails_the_execution(world: World) -> None:
    world.durable_function("book", actions=["lambda:GetDurableExecutionState"])

    arn = world.start("book", {"card": "ok"})
    world.delivery.run_until_quiet()

    execution = world.execution(arn)
    assert execution["Status"] == "FAILED"
    message = execution["Error"]["ErrorMessage"]
    assert "AccessDenied" in message
    assert "lambda:CheckpointDurableExecution" in message
    # The step ran (the SDK sends an at-least-once step's START in the background),
    # its result was refused, and the execution failed without a replay.
    assert world.runs("book") == {"reserve": 1}
    assert [e.outcome for e in world.delivery.log.of("lambda.durable")] == ["started", "FAILED"]


def test_a_synchronous_invoke_waits_for_the_execution_in_virtual_time(world: World) -> None:
    world.durable_function("book", timeout=900)
    # An hour's wait does not fit in a synchronous invocation's 15 minutes: a
    # handler of 10 minutes' wait does.
    world.client("lambda").update_function_code(
        FunctionName="book",
        ZipFile=code_zip(
            {"handler.py": HANDLER.replace("from_hours(1)", "from_minutes(10)"), **sdk_files()}
        ),
    )

    answer = world.client("lambda").invoke(FunctionName="book", Payload=json.dumps({"card": "ok"}))

    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {
        "status": "done",
        "reservation": "r-1",
        "payment": "c-1",
    }
    (execution,) = world.executions("book")
    assert execution["Status"] == "SUCCEEDED"
    assert world.clock.now() - T0 == pytest.approx(600, abs=1)
    assert world.runs("book") == {"reserve": 1, "charge": 1}


def test_a_synchronous_invoke_of_an_execution_that_times_out_is_a_function_error(
    world: World,
) -> None:
    world.durable_function("book", timeout=900)

    answer = world.client("lambda").invoke(FunctionName="book", Payload=json.dumps({"card": "ok"}))

    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "Sandbox.DurableExecutionTimedOut"
    (execution,) = world.executions("book")
    assert execution["Status"] == "TIMED_OUT"
    assert world.clock.now() - T0 == pytest.approx(900, abs=1)


def test_a_rule_target_starts_an_execution_with_the_event(world: World) -> None:
    function = world.durable_function("book")
    events = world.client("events")
    rule = events.put_rule(Name="bookings", EventPattern='{"source": ["shop"]}')["RuleArn"]
    events.put_targets(Rule="bookings", Targets=[{"Id": "book", "Arn": function}])
    world.client("lambda").add_permission(
        FunctionName="book",
        StatementId="bookings",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule,
    )

    events.put_events(
        Entries=[{"Source": "shop", "DetailType": "Booked", "Detail": '{"card": "ok"}'}]
    )
    world.delivery.run_until_quiet()

    (summary,) = world.executions("book")
    execution = world.execution(summary["DurableExecutionArn"])
    assert execution["Status"] == "SUCCEEDED"
    assert json.loads(execution["InputPayload"])["detail"] == {"card": "ok"}
    assert world.runs("book") == {"reserve": 1, "charge": 1}


def test_a_function_deployed_with_durable_config_keeps_it() -> None:
    def program() -> None:
        role = pulumi_aws.iam.Role("fn-role", assume_role_policy=trust("lambda.amazonaws.com"))
        pulumi_aws.lambda_.Function(
            "fn",
            name="durable-fn",
            role=role.arn,
            runtime="python3.13",
            handler="handler.handler",
            code=pulumi.AssetArchive({"handler.py": pulumi.StringAsset("def handler(e, c): pass")}),
            durable_config=pulumi_aws.lambda_.FunctionDurableConfigArgs(
                execution_timeout=3600, retention_period=30
            ),
        )

    with Sandbox() as sandbox:
        sandbox.deploy(program)
        configuration = sandbox.client("lambda").get_function_configuration(
            FunctionName="durable-fn"
        )

    assert configuration["DurableConfig"] == {"ExecutionTimeout": 3600, "RetentionPeriodInDays": 30}


def test_a_stopped_execution_leaves_nothing_on_the_clock(world: World) -> None:
    world.durable_function("book")
    arn = world.start("book", {"card": "ok"})
    lambda_ = world.client("lambda")

    def stop() -> None:
        lambda_.stop_durable_execution(
            DurableExecutionArn=arn, Error={"ErrorMessage": "cancelled by the operator"}
        )

    world.delivery.scheduler.call_at(T0 + 60, "the operator stops it", stop)
    report = world.delivery.run_until_quiet()

    execution = world.execution(arn)
    assert execution["Status"] == "STOPPED"
    assert execution["Error"] == {"ErrorMessage": "cancelled by the operator"}
    # Neither the end of the hour's wait nor the day's timeout moved the clock.
    assert report.virtual_seconds == pytest.approx(60)
    assert world.runs("book") == {"reserve": 1}
    with pytest.raises(ClientError) as again:
        stop()
    assert again.value.response["Error"]["Code"] == "InvalidParameterValueException"
