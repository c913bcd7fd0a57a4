"""StateMachine: the resources, role and alarms a user sees in `pulumi preview`, and the
definitions and arguments it refuses."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.mock_deploy import Deployment, RecordingMocks, Resource, deploy
from pulumi_eventcraft.iam import find_violations, grant_policy
from pulumi_eventcraft.saga import (
    TRANSIENT_ERRORS,
    RetryPolicy,
    SagaStep,
    function_arns,
    saga_definition,
)
from pulumi_eventcraft.state_machine import (
    DefinitionError,
    StateMachine,
    StateMachineArgs,
    UnboundedDurationError,
    lambda_task_arns,
    validate_definition,
    worst_case_duration,
)

SFN = "aws:sfn/stateMachine:StateMachine"
COMPONENT = "eventcraft:index:StateMachine"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FN = "arn:aws:lambda:us-east-1:123456789012:function"
SM_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:project-dev-orders"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
LOG_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]
XRAY_ACTIONS = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
]


def lambda_function(name: str) -> aws.lambda_.Function:
    """A Lambda declared in the same program: its ARN is an Output until it is created."""
    return aws.lambda_.Function(
        name,
        role="arn:aws:iam::123456789012:role/fn",
        runtime="python3.11",
        handler="handler.handler",
        code=pulumi.AssetArchive({"handler.py": pulumi.StringAsset("def handler(e, c): ...")}),
    )


# Short retriers, for a saga that must fit in EXPRESS's 5 minutes: 3 retries of the
# transient errors (waits 1 + 2 + 4 s), compensations 5 retries of anything (31 s).
SHORT_RETRY = RetryPolicy(errors=TRANSIENT_ERRORS)
SHORT_COMPENSATION_RETRY = RetryPolicy(errors=("States.ALL",), max_attempts=5)


def saga_program(
    mocks: RecordingMocks | None = None, *, short_retries: bool = True, **overrides: Any
) -> tuple[Deployment, Resource]:
    """The orders saga, with its functions declared in the program (`mocks`: to see what
    was registered when it fails). `short_retries`: SHORT_RETRY and
    SHORT_COMPENSATION_RETRY instead of the steps' patient defaults."""

    def program() -> None:
        fns = {n: lambda_function(n) for n in ("reserve", "release", "pay", "refund", "ship")}
        retries: dict[str, Any] = (
            {"retry": SHORT_RETRY, "compensation_retry": SHORT_COMPENSATION_RETRY}
            if short_retries
            else {}
        )
        steps = [
            SagaStep(
                name="reserve",
                task=fns["reserve"].arn,
                compensation=fns["release"].arn,
                **retries,
            ),
            SagaStep(name="pay", task=fns["pay"].arn, compensation=fns["refund"].arn, **retries),
            SagaStep(name="ship", task=fns["ship"].arn, **retries),
        ]
        args: dict[str, Any] = {
            "definition": saga_definition(steps),
            "task_function_arns": function_arns(steps),
            "alarm_actions": [TOPIC],
            **overrides,
        }
        machine = StateMachine("orders", StateMachineArgs(**args))
        caller = aws.iam.Role("starter", assume_role_policy="{}")
        grant_policy("starter-policy", caller, machine.start_execution_statements(), parent=caller)
        pulumi.export("arn", machine.arn)
        pulumi.export("roleArn", machine.role.arn)

    d = deploy(program, mocks=mocks)
    return d, d.named("orders-sm", SFN)


def policy(d: Deployment, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(d.named(name, ROLE_POLICY).inputs["policy"])
    assert find_violations(doc) == []
    return doc


def test_state_machine_runs_the_rendered_definition_with_its_own_role() -> None:
    d, sm = saga_program()
    component = d.named("orders", COMPONENT)
    assert {r.name for r in d.children(component)} == {
        "orders-logs",
        "orders-role",
        "orders-role-policy",
        "orders-sm",
        "orders-failed-alarm",
        "orders-timedout-alarm",
    }
    assert sm.inputs["type"] == "STANDARD"
    assert sm.inputs["name"] == "project-dev-orders"  # unique per stack
    assert sm.inputs["roleArn"] == "arn:aws:iam::123456789012:role/orders-role"
    assert d.outputs["arn"] == SM_ARN
    # The Output ARNs were rendered into the JSON the state machine receives.
    definition = json.loads(sm.inputs["definition"])
    assert definition["StartAt"] == "reserve"
    assert definition["States"]["pay"]["Resource"] == f"{FN}:pay"
    assert definition["States"]["CompensatePay"]["Resource"] == f"{FN}:refund"
    validate_definition(definition)


def test_logs_go_to_its_own_vended_log_group_without_execution_data() -> None:
    d, sm = saga_program()
    group = d.named("orders-logs", LOG_GROUP)
    assert group.inputs["name"] == "/aws/vendedlogs/states/project-dev-orders"
    assert group.inputs["retentionInDays"] == 14
    assert "kmsKeyId" not in group.inputs
    assert sm.inputs["loggingConfiguration"] == {
        "level": "ERROR",
        "includeExecutionData": False,
        "logDestination": "arn:aws:logs:us-east-1:123456789012:log-group:"
        "/aws/vendedlogs/states/project-dev-orders:*",
    }
    assert sm.inputs["tracingConfiguration"] == {"enabled": True}


def test_role_may_invoke_exactly_the_task_functions_and_deliver_logs_and_traces() -> None:
    d, _ = saga_program()
    names = ["reserve", "pay", "ship", "release", "refund"]
    assert policy(d, "orders-role-policy")["Statement"] == [
        {
            "Effect": "Allow",
            "Sid": "InvokeTaskFunctions",
            "Action": "lambda:InvokeFunction",
            "Resource": [arn for n in names for arn in (f"{FN}:{n}", f"{FN}:{n}:*")],
        },
        {"Effect": "Allow", "Sid": "VendedLogDelivery", "Action": LOG_ACTIONS, "Resource": "*"},
        {"Effect": "Allow", "Sid": "XRayTracing", "Action": XRAY_ACTIONS, "Resource": "*"},
    ]


def test_only_this_state_machine_in_this_account_may_assume_the_role() -> None:
    d, _ = saga_program()
    trust = json.loads(d.named("orders-role", "aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": "123456789012"},
                "ArnLike": {"aws:SourceArn": SM_ARN},
            },
        }
    ]


def test_start_execution_statements_allow_starting_exactly_this_state_machine() -> None:
    d, _ = saga_program()
    assert policy(d, "starter-policy")["Statement"] == [
        {
            "Effect": "Allow",
            "Sid": "StartExecution",
            "Action": "states:StartExecution",
            "Resource": SM_ARN,
        }
    ]


def test_failed_and_timed_out_executions_raise_alarms() -> None:
    d, _ = saga_program()
    for name, metric in (
        ("orders-failed-alarm", "ExecutionsFailed"),
        ("orders-timedout-alarm", "ExecutionsTimedOut"),
    ):
        alarm = d.named(name, ALARM)
        assert alarm.parent == d.named("orders", COMPONENT).urn
        assert alarm.inputs["namespace"] == "AWS/States"
        assert alarm.inputs["metricName"] == metric
        assert alarm.inputs["dimensions"] == {"StateMachineArn": SM_ARN}
        assert alarm.inputs["threshold"] == 1.0
        assert alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm.inputs["statistic"] == "Sum"
        assert alarm.inputs["alarmActions"] == [TOPIC]


def test_options_reach_the_resources() -> None:
    d, sm = saga_program(
        type="EXPRESS",
        max_task_seconds=5,  # the worst case, 203 s, fits in EXPRESS's 5 minutes
        log_level="ALL",
        include_execution_data=True,
        log_retention_days=30,
        log_kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
        tracing=False,
        alarms=False,
    )
    assert sm.inputs["type"] == "EXPRESS"
    assert sm.inputs["loggingConfiguration"]["level"] == "ALL"
    assert sm.inputs["loggingConfiguration"]["includeExecutionData"] is True
    assert sm.inputs["tracingConfiguration"] == {"enabled": False}
    group = d.named("orders-logs", LOG_GROUP)
    assert group.inputs["retentionInDays"] == 30
    assert group.inputs["kmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/k"
    assert d.of_type(ALARM) == []
    sids = [s["Sid"] for s in policy(d, "orders-role-policy")["Statement"]]
    assert sids == ["InvokeTaskFunctions", "VendedLogDelivery"]


def test_logging_off_creates_no_log_group_and_grants_no_log_delivery() -> None:
    d, sm = saga_program(log_level="OFF")
    assert d.of_type(LOG_GROUP) == []
    assert "loggingConfiguration" not in sm.inputs
    sids = [s["Sid"] for s in policy(d, "orders-role-policy")["Statement"]]
    assert sids == ["InvokeTaskFunctions", "XRayTracing"]


def test_a_machine_that_needs_no_permission_gets_a_role_without_policy() -> None:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}

    def program() -> None:
        StateMachine(
            "noop",
            StateMachineArgs(definition=definition, log_level="OFF", tracing=False, alarms=False),
        )

    d = deploy(program)
    assert d.of_type(ROLE_POLICY) == []
    assert json.loads(d.named("noop-sm", SFN).inputs["definition"]) == definition


def test_a_task_function_missing_from_task_function_arns_is_refused() -> None:
    mocks = RecordingMocks()
    steps = [SagaStep(name="pay", task=f"{FN}:pay", compensation=f"{FN}:refund")]

    def program() -> None:
        StateMachine(
            "orders",
            StateMachineArgs(definition=saga_definition(steps), task_function_arns=[f"{FN}:pay"]),
        )

    # Literal ARNs: refused before any resource is declared.
    with pytest.raises(DefinitionError, match=r"invokes \['arn:aws:lambda:.*:function:refund'\]"):
        deploy(program, mocks=mocks)
    assert mocks.registrations == []


def test_a_missing_task_function_known_only_at_deploy_time_fails_the_deployment() -> None:
    def program() -> None:
        pay, refund = lambda_function("pay"), lambda_function("refund")
        steps = [SagaStep(name="pay", task=pay.arn, compensation=refund.arn)]
        StateMachine(
            "orders",
            StateMachineArgs(definition=saga_definition(steps), task_function_arns=[pay.arn]),
        )

    with pytest.raises(
        ValueError,
        match=r"StateMachine 'orders': the definition invokes \['arn:aws:lambda:.*:refund'\]",
    ):
        deploy(program)


def test_qualified_task_arns_are_covered_by_the_function_arn() -> None:
    definition = {
        "StartAt": "Pay",
        "States": {"Pay": {"Type": "Task", "Resource": f"{FN}:pay:live", "End": True}},
    }

    def program() -> None:
        StateMachine(
            "orders",
            StateMachineArgs(definition=definition, task_function_arns=[f"{FN}:pay"]),
        )

    sm = deploy(program).named("orders-sm", SFN)
    assert json.loads(sm.inputs["definition"])["States"]["Pay"]["Resource"] == f"{FN}:pay:live"


def test_lambda_task_arns_finds_both_task_forms_in_every_scope() -> None:
    definition = {
        "StartAt": "Fork",
        "States": {
            "Fork": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "A",
                        "States": {"A": {"Type": "Task", "Resource": f"{FN}:a", "End": True}},
                    },
                    {
                        "StartAt": "B",
                        "States": {
                            "B": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName": f"{FN}:b", "Payload.$": "$"},
                                "End": True,
                            }
                        },
                    },
                ],
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "C",
                    "States": {"C": {"Type": "Task", "Resource": f"{FN}:c", "End": True}},
                },
                "Next": "Queue",
            },
            "Queue": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": "u", "MessageBody.$": "$"},
                "End": True,
            },
        },
    }
    validate_definition(definition)
    assert lambda_task_arns(definition) == [f"{FN}:a", f"{FN}:b", f"{FN}:c"]


def good() -> dict[str, Any]:
    return {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": f"{FN}:a", "Next": "B"},
            "B": {"Type": "Succeed"},
        },
    }


def broken(edit: Any) -> dict[str, Any]:
    d = good()
    edit(d)
    return d


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"States": {}}, r"definition has no StartAt"),
        ({"StartAt": "A"}, r"definition has no States"),
        (
            broken(lambda d: d.update(StartAt="Z")),
            r"StartAt 'Z' is not a state; states are \['A', 'B'\]",
        ),
        (
            broken(lambda d: d["States"]["A"].update(Next="C")),
            r"state 'A' goes to 'C', which is not a state of this scope",
        ),
        (
            broken(
                lambda d: d["States"]["A"].update(
                    Catch=[{"ErrorEquals": ["States.ALL"], "Next": "X"}]
                )
            ),
            r"state 'A' goes to 'X'",
        ),
        (
            broken(lambda d: d["States"]["A"].update(Catch=[{"ErrorEquals": ["States.ALL"]}])),
            r"state 'A': Catch\[0\] needs a Next",
        ),
        (
            broken(lambda d: d["States"].update(Orphan={"Type": "Pass", "End": True})),
            r"states \['Orphan'\] are unreachable from StartAt 'A'",
        ),
        (
            broken(lambda d: d["States"]["A"].pop("Next")),
            r"state 'A': a Task state needs exactly one of Next or End: true",
        ),
        (
            broken(lambda d: d["States"]["A"].update(End=True)),
            r"state 'A': a Task state needs exactly one of Next or End: true",
        ),
        (
            broken(lambda d: d["States"]["B"].update(Next="A")),
            r"state 'B': a Succeed state takes neither Next nor End",
        ),
        (broken(lambda d: d["States"]["B"].update(Type="Sucess")), r"Type 'Sucess' is not one of"),
        (
            broken(lambda d: d["States"]["A"].pop("Resource")),
            r"state 'A': a Task state needs a Resource",
        ),
        (
            broken(lambda d: d["States"].update({"x" * 81: {"Type": "Succeed"}})),
            r"state names must be 1-80 characters",
        ),
        (
            broken(
                lambda d: d["States"].update(
                    B={
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "A"}],
                        "Default": "Nope",
                    }
                )
            ),
            r"state 'B' goes to 'Nope'",
        ),
        (
            broken(lambda d: d["States"].update(B={"Type": "Choice", "Choices": []})),
            r"state 'B': a Choice state needs a non-empty Choices list",
        ),
        (
            broken(
                lambda d: d["States"].update(
                    B={
                        "Type": "Parallel",
                        "End": True,
                        "Branches": [
                            {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}
                        ],
                    }
                )
            ),
            r"state 'B' branch 0: state 'X' goes to 'Y'",
        ),
        (
            broken(lambda d: d["States"].update(B={"Type": "Map", "End": True})),
            r"state 'B': a Map state needs an ItemProcessor",
        ),
    ],
)
def test_invalid_definitions_are_refused_with_the_reason(
    definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        validate_definition(definition)


def test_express_refuses_integration_patterns_it_cannot_run() -> None:
    definition = broken(
        lambda d: d["States"]["A"].update(
            Resource="arn:aws:states:::lambda:invoke.waitForTaskToken"
        )
    )
    validate_definition(definition)  # fine for STANDARD
    with pytest.raises(DefinitionError, match=r"EXPRESS state machines do not support"):
        validate_definition(definition, express=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "FAST"}, r"StateMachineArgs.type must be 'STANDARD' or 'EXPRESS', got 'FAST'"),
        ({"log_level": "DEBUG"}, r"StateMachineArgs.log_level must be 'ALL', 'ERROR', 'FATAL'"),
        (
            {"type": "EXPRESS", "log_level": "OFF"},
            r"log_level 'OFF' with type 'EXPRESS': Express executions keep no history",
        ),
        (
            {"log_retention_days": 10},
            r"log_retention_days must be a CloudWatch Logs retention period \(1, 3, 5, 7, 14",
        ),
        ({"log_retention_days": 0}, r"log_retention_days must be a CloudWatch Logs retention"),
        (
            {"task_function_arns": [f"{FN}:a:live"]},
            r"task_function_arns: each must be an unqualified Lambda function ARN",
        ),
        ({"task_function_arns": f"{FN}:a"}, r"task_function_arns must be a list of ARNs"),
        ({"definition": {"StartAt": "A", "States": {}}}, r"definition has no States"),
        ({"max_task_seconds": 0}, r"StateMachineArgs.max_task_seconds must be 1..99999999"),
        # A Lambda task without a timeout may run Lambda's 900 s.
        (
            {"type": "EXPRESS"},
            r"StateMachine 'orders' is EXPRESS, .* but its worst case is 900 s: A 900 s\.",
        ),
    ],
)
def test_bad_args_are_refused_before_any_resource(kwargs: dict[str, Any], message: str) -> None:
    mocks = RecordingMocks()
    args: dict[str, Any] = {"definition": good(), "task_function_arns": [f"{FN}:a"], **kwargs}

    def program() -> None:
        StateMachine("orders", StateMachineArgs(**args))

    with pytest.raises(ValueError, match=message):
        deploy(program, mocks=mocks)
    assert mocks.registrations == []


# ------------------------------------------------------------------ worst case


def test_an_express_saga_that_can_outlast_five_minutes_is_refused_naming_its_worst_case() -> None:
    """The orders saga with 30 s tasks: three steps retried 3 times (4 x 30 s + 1 + 2 + 4
    s waits) and two compensations retried 5 times (6 x 30 s + 31 s) take 803 s when the
    last step fails; EXPRESS would stop the execution halfway through the compensations."""
    mocks = RecordingMocks()
    with pytest.raises(ValueError) as raised:
        saga_program(mocks, type="EXPRESS", max_task_seconds=30)
    assert str(raised.value) == (
        "StateMachine 'orders' is EXPRESS, which stops an execution after 300 s wherever it "
        "is (e.g. halfway through its compensations), but its worst case is 803 s: "
        "reserve 127 s -> pay 127 s -> ship 127 s -> CompensatePay 211 s -> "
        "CompensateReserve 211 s. Shorten the task timeouts (TimeoutSeconds, "
        "StateMachineArgs.max_task_seconds) or the retries, or use type 'STANDARD'"
    )
    assert [r.name for r in mocks.registrations if r.name.startswith("orders")] == []
    # STANDARD runs for up to a year: the same saga is fine, with the patient defaults too.
    _, sm = saga_program(type="STANDARD", max_task_seconds=30)
    assert sm.inputs["type"] == "STANDARD"
    _, sm = saga_program(type="STANDARD", max_task_seconds=30, short_retries=False)
    assert sm.inputs["type"] == "STANDARD"
    # The defaults ride out an hour of outage: far too long for EXPRESS, even with 1 s tasks.
    with pytest.raises(ValueError, match=r"its worst case is \d{4,} s: reserve"):
        saga_program(type="EXPRESS", max_task_seconds=1, short_retries=False)


def task(resource: str = f"{FN}:a", **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, **fields}


def test_the_worst_case_takes_the_longest_path_with_its_timeouts_retries_and_waits() -> None:
    definition = {
        "StartAt": "Fetch",
        "States": {
            "Fetch": task(
                TimeoutSeconds=10,
                Retry=[
                    {"ErrorEquals": ["A"], "MaxAttempts": 2, "IntervalSeconds": 3},
                    {
                        "ErrorEquals": ["B"],
                        "MaxAttempts": 3,
                        "IntervalSeconds": 20,
                        "BackoffRate": 3.0,
                        "MaxDelaySeconds": 30,
                    },
                ],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Undo"}],
                Next="Pause",
            ),
            "Pause": {"Type": "Wait", "Seconds": 5, "Next": "Fan"},
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Quick", "States": {"Quick": task(TimeoutSeconds=1, End=True)}},
                    {"StartAt": "Slow", "States": {"Slow": task(TimeoutSeconds=40, End=True)}},
                ],
                "End": True,
            },
            "Undo": task(TimeoutSeconds=20, Next="Failed"),
            "Failed": {"Type": "Fail"},
        },
    }
    validate_definition(definition)
    worst = worst_case_duration(definition)
    # Fetch: 6 attempts x 10 s + waits 3 + 6 (retrier A) + 20 + 30 + 30 (B, capped).
    assert worst.path == (("Fetch", 149.0), ("Pause", 5.0), ("Fan", 40.0))
    assert worst.seconds == 194.0
    # A function timeout below a task's TimeoutSeconds bounds it.
    assert worst_case_duration(definition, max_task_seconds=5).seconds == 6 * 5 + 89 + 5 + 5


@pytest.mark.parametrize(
    ("states", "message"),
    [
        (
            {
                "Poll": task(TimeoutSeconds=5, Next="Done?"),
                "Done?": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.done", "BooleanEquals": False, "Next": "Poll"}],
                    "Default": "End",
                },
                "End": {"Type": "Succeed"},
            },
            r"state 'Poll' can run again \(a loop\)",
        ),
        (
            {"Poll": {"Type": "Wait", "TimestampPath": "$.at", "End": True}},
            r"Wait state 'Poll' waits for a path or a timestamp",
        ),
        (
            {"Poll": task("arn:aws:states:::sqs:sendMessage", End=True)},
            r"Task state 'Poll' \(arn:aws:states:::sqs:sendMessage\) has no TimeoutSeconds",
        ),
    ],
)
def test_an_unbounded_definition_is_named(states: dict[str, Any], message: str) -> None:
    with pytest.raises(UnboundedDurationError, match=message):
        worst_case_duration({"StartAt": "Poll", "States": states})
