"""EventRule and its targets: the rule, targets, permissions, roles and DLQs a user sees in
`pulumi preview`, and the patterns and arguments it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from eventcraft_sandbox.mock_deploy import ACCOUNT_ID, Deployment, RecordingMocks, deploy
from pulumi_eventcraft.event_bus import EventBus
from pulumi_eventcraft.event_pattern import InvalidEventPatternError, Pattern, numeric
from pulumi_eventcraft.event_rule import (
    EventBusTarget,
    EventRule,
    EventRuleArgs,
    InputTransformer,
    InvalidRulePatternError,
    KinesisTarget,
    LambdaTarget,
    RetryPolicy,
    SqsTarget,
    StateMachineTarget,
)
from pulumi_eventcraft.iam import find_violations
from pulumi_eventcraft.queue import (
    QUEUE_ACTIONS,
    DeadLetterQueue,
    DeadLetterQueueArgs,
    Queue,
    QueueArgs,
)

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PERMISSION = "aws:lambda/permission:Permission"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPONENT = "eventcraft:index:EventRule"
DLQ_COMPONENT = "eventcraft:index:DeadLetterQueue"

REGION_ACCOUNT = f"us-east-1:{ACCOUNT_ID}"
RULE_ARN = f"arn:aws:events:{REGION_ACCOUNT}:rule/orders-bus/placed-rule"
FUNCTION_ARN = f"arn:aws:lambda:{REGION_ACCOUNT}:function:reserve"
SM_ARN = f"arn:aws:states:{REGION_ACCOUNT}:stateMachine:saga"
STREAM_ARN = f"arn:aws:kinesis:{REGION_ACCOUNT}:stream/history"
KEY_ARN = f"arn:aws:kms:{REGION_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PARTNER_BUS_ARN = "arn:aws:events:eu-west-1:111122223333:event-bus/partner-orders"
TOPIC_ARN = f"arn:aws:sns:{REGION_ACCOUNT}:ops"
PATTERN = {"source": ["orders"], "detail-type": ["OrderPlaced"]}
DEFAULT_RETRY = {"maximumRetryAttempts": 8.0, "maximumEventAgeInSeconds": 3600.0}

Build = Callable[[EventRule], Any]


def lambda_target(**kwargs: Any) -> LambdaTarget:
    return LambdaTarget(function_arn=FUNCTION_ARN, function_name="reserve", **kwargs)


def run(
    *targets: Build, args: dict[str, Any] | None = None, mocks: RecordingMocks | None = None
) -> tuple[Deployment, list[EventRule]]:
    """Deploy bus `orders` and rule `placed` on it; each `build(rule)` adds targets."""
    made: list[EventRule] = []

    def program() -> None:
        bus = EventBus("orders")
        rule = EventRule(
            "placed", EventRuleArgs(**{"bus": bus, "pattern": PATTERN, **(args or {})})
        )
        made.append(rule)
        for build in targets:
            build(rule)

    return deploy(program, mocks=mocks), made


def add(target: Callable[[EventRule], Any], name: str | None = None) -> Build:
    return lambda rule: rule.add_target(target(rule), name=name)


def queue_policy(d: Deployment, name: str) -> list[dict[str, Any]]:
    return json.loads(d.named(name, QUEUE_POLICY).inputs["policy"])["Statement"]


def only_this_rule_may_send(queue_arn: str) -> list[dict[str, Any]]:
    """The policy of a queue whose only sender is rule `placed`."""
    return [
        {
            "Effect": "Deny",
            "Sid": "DenyInsecureTransport",
            "Principal": "*",
            "Action": list(QUEUE_ACTIONS),
            "Resource": queue_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Effect": "Allow",
            "Sid": "AllowSendMessage0",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
        },
    ]


def role_documents(d: Deployment, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    trust = json.loads(d.named(role, ROLE).inputs["assumeRolePolicy"])
    policy = json.loads(d.named(f"{role}-policy", ROLE_POLICY).inputs["policy"])
    return trust, policy


EVENTS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
        }
    ],
}


# ------------------------------------------------------------------------ the rule


def test_rule_on_the_bus_with_its_pattern_and_dlq_failure_alarm() -> None:
    d, (rule,) = run(args={"description": "Orders placed", "alarm_actions": [TOPIC_ARN]})
    created = d.named("placed-rule", RULE)
    assert created.parent == d.named("placed", COMPONENT).urn
    assert created.inputs["eventBusName"] == "orders-bus"
    assert json.loads(created.inputs["eventPattern"]) == PATTERN
    assert created.inputs["state"] == "ENABLED"
    assert created.inputs["description"] == "Orders placed"
    assert created.outputs["arn"] == RULE_ARN
    assert rule.pattern == PATTERN

    alarm = d.named("placed-dlq-failure-alarm", ALARM)
    assert alarm.parent == d.named("placed", COMPONENT).urn
    assert alarm.inputs["namespace"] == "AWS/Events"
    assert alarm.inputs["metricName"] == "InvocationsFailedToBeSentToDlq"
    assert alarm.inputs["dimensions"] == {"RuleName": "placed-rule", "EventBusName": "orders-bus"}
    assert alarm.inputs["statistic"] == "Sum"
    assert alarm.inputs["threshold"] == 1.0
    assert alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm.inputs["alarmActions"] == [TOPIC_ARN]


def test_rule_on_the_default_bus_from_a_pattern_builder_disabled_without_alarms() -> None:
    made: list[EventRule] = []

    def program() -> None:
        pattern = Pattern(source="orders", detail={"totalCents": numeric(">=", 100_000)})
        made.append(
            EventRule(
                "big",
                EventRuleArgs(bus="default", pattern=pattern, enabled=False, alarms=False),
            )
        )
        made[0].add_target(lambda_target())

    d = deploy(program)
    created = d.named("big-rule", RULE)
    assert created.inputs["eventBusName"] == "default"
    assert created.inputs["state"] == "DISABLED"
    assert json.loads(created.inputs["eventPattern"]) == {
        "source": ["orders"],
        "detail": {"totalCents": [{"numeric": [">=", 100000]}]},
    }
    assert created.outputs["arn"] == f"arn:aws:events:{REGION_ACCOUNT}:rule/big-rule"
    # alarms=False: neither the rule's alarm nor the DLQ's.
    assert d.of_type(ALARM) == []
    assert made[0].alarm is None


def test_own_account_only_matches_only_events_of_the_deploying_account() -> None:
    """A rule that drives an internal step, on a bus partners may put to: the deployed
    pattern filters the deploying account's id, so a partner's event never matches."""
    from pulumi_eventcraft.event_pattern import matches

    d, (rule,) = run(args={"own_account_only": True})
    deployed = json.loads(d.named("placed-rule", RULE).inputs["eventPattern"])
    assert deployed == {**PATTERN, "account": [ACCOUNT_ID]}
    assert rule.pattern == PATTERN
    event = {"source": "orders", "detail-type": "OrderPlaced", "detail": {}}
    assert matches(deployed, {**event, "account": ACCOUNT_ID})
    assert not matches(deployed, {**event, "account": "111122223333"})
    # Without it (the default) the pattern is deployed as given.
    d, _ = run()
    assert json.loads(d.named("placed-rule", RULE).inputs["eventPattern"]) == PATTERN


def test_own_account_only_refuses_a_pattern_that_filters_the_account() -> None:
    mocks = RecordingMocks()

    def program() -> None:
        pattern = {**PATTERN, "account": ["111122223333"]}
        EventRule("placed", EventRuleArgs(bus="default", pattern=pattern, own_account_only=True))

    with pytest.raises(ValueError, match=r"'placed': own_account_only adds the `account` filter"):
        deploy(program, mocks=mocks)
    assert mocks.registrations == []


def test_default_bus_alarm_has_only_the_rule_name_dimension() -> None:
    d = deploy(lambda: EventRule("big", EventRuleArgs(bus="default", pattern=PATTERN)))
    alarm = d.named("big-dlq-failure-alarm", ALARM)
    assert alarm.inputs["dimensions"] == {"RuleName": "big-rule"}


@pytest.mark.parametrize(
    ("pattern", "field", "reason"),
    [
        ({}, "pattern", "empty objects are not allowed"),
        ({"source": "orders"}, "source", "must be an array"),
        ({"source": []}, "source", "empty arrays are not allowed"),
        ({"detail": {"amount": [{"numeric": [">", "ten"]}]}}, "detail.amount", "numeric"),
        ({"detail": {"state": [{"prefix": 1}]}}, "detail.state", "prefix"),
        ({"detail": {"state": [{"regex": "x.*"}]}}, "detail.state", ""),
    ],
)
def test_invalid_pattern_fails_at_declaration_naming_rule_and_field(
    pattern: dict[str, Any], field: str, reason: str
) -> None:
    mocks = RecordingMocks()

    def program() -> None:
        EventRule("placed", EventRuleArgs(bus="default", pattern=pattern))

    with pytest.raises(InvalidRulePatternError) as raised:
        deploy(program, mocks=mocks)
    message = str(raised.value)
    assert message.startswith(f"EventRule 'placed': invalid event pattern at {field}: ")
    assert reason in message
    assert raised.value.rule == "placed"
    assert raised.value.path == field
    assert isinstance(raised.value, InvalidEventPatternError)
    assert mocks.registrations == []  # nothing was declared


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bus": "my bus"}, r"EventRuleArgs.bus: 'my bus' is not an event bus name or ARN"),
        ({"description": "x" * 513}, r"EventRuleArgs.description: 513 characters; at most 512"),
        ({"pattern": "source"}, r"EventRuleArgs.pattern: give a dict or a Pattern, not str"),
        ({"pattern": None}, r"EventRuleArgs: give a pattern .*, a schedule .*, or both"),
        (
            {"schedule": "rate(1 minutes)"},
            r"EventRuleArgs.schedule: 'rate\(1 minutes\)': with the value 1 the unit is 'minute'",
        ),
        (
            {"bus": "orders", "schedule": "rate(5 minutes)"},
            r"EventRuleArgs.schedule: scheduled rules run on the default event bus only",
        ),
    ],
)
def test_refused_rule_args(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventRuleArgs(**{"bus": "default", "pattern": PATTERN, **kwargs})


def test_a_scheduled_rule_on_the_default_bus() -> None:
    made: list[EventRule] = []

    def program() -> None:
        rule = EventRule(
            "nightly",
            EventRuleArgs(bus="default", schedule="cron(0 2 * * ? *)", description="Nightly"),
        )
        rule.add_target(lambda_target())
        made.append(rule)

    d = deploy(program)
    rule = d.named("nightly-rule", RULE)
    assert rule.inputs["scheduleExpression"] == "cron(0 2 * * ? *)"
    assert rule.inputs["eventBusName"] == "default"
    assert "eventPattern" not in rule.inputs
    assert (made[0].pattern, made[0].schedule) == (None, "cron(0 2 * * ? *)")
    assert d.named("nightly-lambda", TARGET).inputs["arn"] == FUNCTION_ARN
    # Rules of the default bus have the RuleName dimension only.
    alarm = d.named("nightly-dlq-failure-alarm", ALARM)
    assert alarm.inputs["dimensions"] == {"RuleName": "nightly-rule"}


# ------------------------------------------------------------------------ Lambda


def test_lambda_target_permission_retry_and_own_dlq() -> None:
    d, (rule,) = run(add(lambda _: lambda_target()))
    component = d.named("placed", COMPONENT)

    target = d.named("placed-lambda", TARGET)
    assert target.parent == component.urn
    assert target.inputs["rule"] == "placed-rule"
    assert target.inputs["eventBusName"] == "orders-bus"
    assert target.inputs["targetId"] == "lambda"
    assert target.inputs["arn"] == FUNCTION_ARN
    assert target.inputs["retryPolicy"] == DEFAULT_RETRY
    dlq_arn = f"arn:aws:sqs:{REGION_ACCOUNT}:placed-lambda-dlq-queue"
    assert target.inputs["deadLetterConfig"] == {"arn": dlq_arn}
    assert "roleArn" not in target.inputs  # Lambda uses its resource policy
    for key in ("input", "inputPath", "inputTransformer"):
        assert key not in target.inputs

    permission = d.named("placed-lambda-permission", PERMISSION)
    assert permission.parent == component.urn
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == "reserve"
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == RULE_ARN

    # The DLQ: a standard queue that only this rule may send to, with its alarm.
    dlq = d.named("placed-lambda-dlq", DLQ_COMPONENT)
    assert dlq.parent == component.urn
    assert d.named("placed-lambda-dlq-queue", QUEUE).inputs["fifoQueue"] is False
    assert queue_policy(d, "placed-lambda-dlq-policy") == only_this_rule_may_send(dlq_arn)
    dlq_alarm = d.named("placed-lambda-dlq-alarm", ALARM)
    assert dlq_alarm.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq_alarm.inputs["threshold"] == 1.0
    assert set(rule.dead_letter_queues) == {"lambda"}
    assert rule.roles == {}
    assert d.of_type(ROLE) == []


def test_retry_policy_and_dlq_alarm_actions_are_the_given_ones() -> None:
    retry = RetryPolicy(maximum_retry_attempts=0, maximum_event_age_seconds=60)
    d, _ = run(
        add(lambda _: lambda_target(retry_policy=retry)), args={"alarm_actions": [TOPIC_ARN]}
    )
    target = d.named("placed-lambda", TARGET)
    assert target.inputs["retryPolicy"] == {
        "maximumRetryAttempts": 0.0,
        "maximumEventAgeInSeconds": 60.0,
    }
    assert d.named("placed-lambda-dlq-alarm", ALARM).inputs["alarmActions"] == [TOPIC_ARN]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"maximum_retry_attempts": 186},
            r"RetryPolicy.maximum_retry_attempts: 186 is outside the allowed 0..185",
        ),
        (
            {"maximum_retry_attempts": -1},
            r"RetryPolicy.maximum_retry_attempts: -1 is outside the allowed 0..185",
        ),
        (
            {"maximum_event_age_seconds": 59},
            r"RetryPolicy.maximum_event_age_seconds: 59 is outside the allowed 60..86400",
        ),
        (
            {"maximum_event_age_seconds": 86_401},
            r"RetryPolicy.maximum_event_age_seconds: 86401 is outside the allowed 60..86400",
        ),
    ],
)
def test_refused_retry_policies(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


# ------------------------------------------------------------------------ SQS


def test_sqs_target_created_with_the_rules_sender() -> None:
    def build(rule: EventRule) -> None:
        queue = Queue(
            "inventory", QueueArgs(visibility_timeout_seconds=60, senders=[rule.as_sender()])
        )
        rule.add_target(SqsTarget(queue=queue))

    d, _ = run(build)
    queue_arn = f"arn:aws:sqs:{REGION_ACCOUNT}:inventory-queue"
    target = d.named("placed-sqs", TARGET)
    assert target.inputs["arn"] == queue_arn
    assert "sqsTarget" not in target.inputs
    assert "roleArn" not in target.inputs
    assert target.inputs["retryPolicy"] == DEFAULT_RETRY
    assert target.inputs["deadLetterConfig"] == {
        "arn": f"arn:aws:sqs:{REGION_ACCOUNT}:placed-sqs-dlq-queue"
    }
    # The queue's own (single) policy lets exactly this rule send.
    assert queue_policy(d, "inventory-policy") == only_this_rule_may_send(queue_arn)


def test_fifo_sqs_target_with_message_group_and_a_standard_dlq() -> None:
    def build(rule: EventRule) -> None:
        queue = Queue(
            "payments",
            QueueArgs(visibility_timeout_seconds=60, fifo=True, senders=[rule.as_sender()]),
        )
        rule.add_target(SqsTarget(queue=queue, message_group_id="orders"))

    d, _ = run(build)
    target = d.named("placed-sqs", TARGET)
    assert target.inputs["arn"] == f"arn:aws:sqs:{REGION_ACCOUNT}:payments-queue.fifo"
    assert target.inputs["sqsTarget"] == {"messageGroupId": "orders"}
    # EventBridge DLQs are standard queues, also for a FIFO target.
    assert d.named("placed-sqs-dlq-queue", QUEUE).inputs["fifoQueue"] is False


def test_fifo_sqs_target_without_message_group_is_refused() -> None:
    def build(rule: EventRule) -> None:
        queue = Queue(
            "payments",
            QueueArgs(visibility_timeout_seconds=60, fifo=True, senders=[rule.as_sender()]),
        )
        rule.add_target(SqsTarget(queue=queue))

    with pytest.raises(
        ValueError,
        match=r"EventRule 'placed' target 'sqs': FIFO queue 'payments' needs "
        r"SqsTarget.message_group_id",
    ):
        run(build)


def test_message_group_on_a_standard_queue_is_refused() -> None:
    def build(rule: EventRule) -> None:
        queue = Queue(
            "inventory", QueueArgs(visibility_timeout_seconds=60, senders=[rule.as_sender()])
        )
        rule.add_target(SqsTarget(queue=queue, message_group_id="orders"))

    with pytest.raises(ValueError, match=r"message_group_id is only for FIFO queues"):
        run(build)


def test_queue_that_does_not_allow_the_rule_is_refused_with_the_fix() -> None:

    def build(rule: EventRule) -> None:
        other = EventRule("other", EventRuleArgs(bus="default", pattern=PATTERN))
        # Allows another rule, not this one: a sender for "a rule" is not enough.
        queue = Queue(
            "inventory", QueueArgs(visibility_timeout_seconds=60, senders=[other.as_sender()])
        )
        rule.add_target(SqsTarget(queue=queue))

    with pytest.raises(
        ValueError,
        match=r"EventRule 'placed' target 'sqs': queue 'inventory' does not let this rule "
        r"send to it; create it with senders=\[placed.as_sender\(\)\]",
    ):
        run(build)


# ------------------------------------------------------------------------ given DLQ


def test_existing_dlq_that_allows_the_rule_is_used_and_none_is_created() -> None:
    def build(rule: EventRule) -> None:
        dlq = DeadLetterQueue("shared-dlq", DeadLetterQueueArgs(senders=[rule.as_sender()]))
        rule.add_target(lambda_target(dead_letter_queue=dlq))

    d, (rule,) = run(build)
    assert d.named("placed-lambda", TARGET).inputs["deadLetterConfig"] == {
        "arn": f"arn:aws:sqs:{REGION_ACCOUNT}:shared-dlq-queue"
    }
    assert [r.name for r in d.of_type(DLQ_COMPONENT)] == ["shared-dlq"]
    assert rule.dead_letter_queues == {}


def test_existing_fifo_dlq_is_refused_because_eventbridge_dlqs_are_standard() -> None:
    def build(rule: EventRule) -> None:
        dlq = DeadLetterQueue(
            "fifo-dlq", DeadLetterQueueArgs(fifo=True, senders=[rule.as_sender()])
        )
        rule.add_target(lambda_target(dead_letter_queue=dlq))

    with pytest.raises(
        ValueError,
        match=r"dead_letter_queue 'fifo-dlq' is a FIFO queue; an EventBridge dead-letter "
        r"queue must be a standard queue",
    ):
        run(build)


def test_existing_dlq_that_does_not_allow_the_rule_is_refused() -> None:

    def build(rule: EventRule) -> None:
        rule.add_target(lambda_target(dead_letter_queue=DeadLetterQueue("shared-dlq")))

    with pytest.raises(
        ValueError,
        match=r"dead_letter_queue 'shared-dlq' does not let this rule send to it; create it "
        r"with DeadLetterQueueArgs\(senders=\[placed.as_sender\(\)\]\)",
    ):
        run(build)


# ------------------------------------------------------------------------ roles


def test_state_machine_target_role_may_only_start_that_machine() -> None:
    d, (rule,) = run(add(lambda _: StateMachineTarget(state_machine_arn=SM_ARN)))
    target = d.named("placed-sfn", TARGET)
    assert target.inputs["arn"] == SM_ARN
    assert target.inputs["roleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/placed-sfn-role"
    assert target.inputs["retryPolicy"] == DEFAULT_RETRY
    trust, policy = role_documents(d, "placed-sfn-role")
    assert trust == EVENTS_TRUST
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Sid": "StartExecution",
            "Action": "states:StartExecution",
            "Resource": SM_ARN,
        }
    ]
    assert find_violations(policy) == []
    assert d.named("placed-sfn-role", ROLE).parent == d.named("placed", COMPONENT).urn
    assert set(rule.roles) == {"sfn"}


def test_kinesis_target_partition_key_and_role_with_stream_key() -> None:
    d, _ = run(
        add(
            lambda _: KinesisTarget(
                stream_arn=STREAM_ARN, partition_key_path="$.detail.orderId", kms_key_arn=KEY_ARN
            )
        )
    )
    target = d.named("placed-kinesis", TARGET)
    assert target.inputs["arn"] == STREAM_ARN
    assert target.inputs["kinesisTarget"] == {"partitionKeyPath": "$.detail.orderId"}
    trust, policy = role_documents(d, "placed-kinesis-role")
    assert trust == EVENTS_TRUST
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Sid": "PutRecord",
            "Action": "kinesis:PutRecord",
            "Resource": STREAM_ARN,
        },
        {
            "Effect": "Allow",
            "Sid": "EncryptRecords",
            "Action": "kms:GenerateDataKey",
            "Resource": KEY_ARN,
        },
    ]


def test_kinesis_target_without_key_has_only_put_record() -> None:
    d, _ = run(add(lambda _: KinesisTarget(stream_arn=STREAM_ARN, partition_key_path="$.id")))
    _, policy = role_documents(d, "placed-kinesis-role")
    assert [(s["Action"], s["Resource"]) for s in policy["Statement"]] == [
        ("kinesis:PutRecord", STREAM_ARN)
    ]


@pytest.mark.parametrize("path", ["detail.orderId", "$", "$detail", ""])
def test_kinesis_partition_key_path_must_start_with_dollar_dot(path: str) -> None:
    with pytest.raises(
        ValueError, match=r"KinesisTarget.partition_key_path: .* must be a JSON path starting"
    ):
        KinesisTarget(stream_arn=STREAM_ARN, partition_key_path=path)


def test_cross_account_bus_target_role_may_only_put_events_on_that_bus() -> None:
    d, _ = run(add(lambda _: EventBusTarget(bus_arn=PARTNER_BUS_ARN), name="partner"))
    target = d.named("placed-partner", TARGET)
    assert target.inputs["targetId"] == "partner"
    assert target.inputs["arn"] == PARTNER_BUS_ARN
    assert target.inputs["roleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/placed-partner-role"
    assert target.inputs["deadLetterConfig"] == {
        "arn": f"arn:aws:sqs:{REGION_ACCOUNT}:placed-partner-dlq-queue"
    }
    trust, policy = role_documents(d, "placed-partner-role")
    assert trust == EVENTS_TRUST
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Sid": "PutEvents",
            "Action": "events:PutEvents",
            "Resource": PARTNER_BUS_ARN,
        }
    ]


@pytest.mark.parametrize(
    "arn",
    [
        "partner-orders",
        "arn:aws:events:eu-west-1:111122223333:rule/partner-orders",
        "arn:aws:events:eu-west-1:*:event-bus/partner-orders",
    ],
)
def test_bus_target_needs_an_event_bus_arn(arn: str) -> None:
    with pytest.raises(ValueError, match=r"EventBusTarget.bus_arn: .* is not an event bus ARN"):
        EventBusTarget(bus_arn=arn)


# ------------------------------------------------------------------------ input


def test_input_transformer_is_passed_to_the_target() -> None:
    transformer = InputTransformer(
        paths={"order": "$.detail.orderId", "total": "$.detail.totalCents"},
        template='{"orderId": "<order>", "total": <total>, "rule": "<aws.events.rule-name>"}',
    )
    d, _ = run(add(lambda _: lambda_target(input_transformer=transformer)))
    assert d.named("placed-lambda", TARGET).inputs["inputTransformer"] == {
        "inputPaths": {"order": "$.detail.orderId", "total": "$.detail.totalCents"},
        "inputTemplate": '{"orderId": "<order>", "total": <total>, '
        '"rule": "<aws.events.rule-name>"}',
    }


def test_constant_input_and_input_path() -> None:
    d, _ = run(
        add(lambda _: lambda_target(input='{"check": "inventory"}'), name="constant"),
        add(lambda _: lambda_target(input_path="$.detail"), name="detail"),
    )
    assert d.named("placed-constant", TARGET).inputs["input"] == '{"check": "inventory"}'
    assert d.named("placed-detail", TARGET).inputs["inputPath"] == "$.detail"
    # One Lambda permission per target, each for this rule.
    permissions = d.of_type(PERMISSION)
    assert sorted(p.name for p in permissions) == [
        "placed-constant-permission",
        "placed-detail-permission",
    ]
    assert {p.inputs["sourceArn"] for p in permissions} == {RULE_ARN}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"input": "{}", "input_path": "$.detail"},
            r"LambdaTarget: input and input_path are mutually exclusive; give at most one of "
            r"input, input_path, input_transformer",
        ),
        (
            {
                "input_path": "$.detail",
                "input_transformer": InputTransformer(paths={}, template='"fixed"'),
            },
            r"LambdaTarget: input_path and input_transformer are mutually exclusive",
        ),
        ({"input": "{not json"}, r"LambdaTarget.input: not valid JSON"),
        ({"input_path": "detail"}, r"LambdaTarget.input_path: 'detail' is not a JSON path"),
    ],
)
def test_refused_inputs(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lambda_target(**kwargs)


@pytest.mark.parametrize(
    ("paths", "template", "message"),
    [
        (
            {"order": "$.detail.orderId"},
            '{"orderId": "<order>", "total": <total>}',
            r"InputTransformer.template: uses <total> but paths define only \['order'\]",
        ),
        (
            {"order": "detail.orderId"},
            '"<order>"',
            r"paths\['order'\]: 'detail.orderId' is not a JSON path",
        ),
        (
            {f"p{i}": "$.detail" for i in range(101)},
            '"x"',
            r"InputTransformer.paths: 101 paths; at most 100 are allowed",
        ),
        ({"order": "$.id"}, '{"<order>": 1}', r"a placeholder cannot be an object key"),
        ({"order": "$.id"}, '{"orderId": <order>', r"must be valid JSON once filled"),
        ({"aws.mine": "$.id"}, '"<aws.mine>"', r"'aws.mine' is not allowed as a name"),
        ({}, "", r"InputTransformer.template: must have 1..8192 characters"),
    ],
)
def test_refused_input_transformers(paths: dict[str, str], template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InputTransformer(paths=paths, template=template)


def test_plain_text_template_with_known_placeholders_is_accepted() -> None:
    transformer = InputTransformer(paths={"id": "$.detail.orderId"}, template='"Order <id> placed"')
    assert transformer.template == '"Order <id> placed"'


# ------------------------------------------------------------------------ names


def test_target_names_are_unique_and_a_rule_has_at_most_five() -> None:
    def duplicate(rule: EventRule) -> None:
        rule.add_target(lambda_target())
        rule.add_target(lambda_target())

    with pytest.raises(
        ValueError,
        match=r"EventRule 'placed' target 'lambda': the rule already has a target named "
        r"'lambda'; pass add_target\(..., name=...\)",
    ):
        run(duplicate)

    def six(rule: EventRule) -> None:
        for index in range(6):
            rule.add_target(lambda_target(), name=f"fn{index}")

    with pytest.raises(ValueError, match=r"target 'fn5': a rule has at most 5 targets"):
        run(six)

    def bad_name(rule: EventRule) -> None:
        rule.add_target(lambda_target(), name="no spaces")

    with pytest.raises(ValueError, match=r"target 'no spaces': name must be 1..64 characters"):
        run(bad_name)


def test_every_target_policy_document_is_least_privilege() -> None:
    d, _ = run(
        add(lambda _: StateMachineTarget(state_machine_arn=SM_ARN)),
        add(lambda _: KinesisTarget(stream_arn=STREAM_ARN, partition_key_path="$.id")),
        add(lambda _: EventBusTarget(bus_arn=PARTNER_BUS_ARN)),
        add(lambda _: lambda_target()),
    )
    for policy in d.of_type(ROLE_POLICY):
        assert find_violations(json.loads(policy.inputs["policy"])) == [], policy.name
    for policy in d.of_type(QUEUE_POLICY):
        assert find_violations(json.loads(policy.inputs["policy"])) == [], policy.name
    # Four targets, four DLQs, each with an alarm, plus the rule's own alarm.
    assert len(d.of_type(TARGET)) == 4
    assert len(d.of_type(DLQ_COMPONENT)) == 4
    assert len(d.of_type(ALARM)) == 5
