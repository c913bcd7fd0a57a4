"""Alarms and the alert topic: what `pulumi preview` shows, and the refusals."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import ACCOUNT_ID, Deployment, deploy
from pulumi_eventcraft.alarms import Alerts, AlertsArgs, metric_alarm
from pulumi_eventcraft.iam import PolicyViolation, Principal, Statement, key_policy_document

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:ops-topic"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def deploy_alerts(args: AlertsArgs | None = None) -> tuple[Deployment, Any]:
    def program() -> None:
        Alerts("ops", args)

    d = deploy(program)
    return d, d.named("ops", "eventcraft:index:Alerts")


def deploy_alarm(**kwargs: Any) -> Deployment:
    def program() -> None:
        parent = pulumi.ComponentResource("test:index:Parent", "parent")
        metric_alarm(
            "depth-alarm",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": "orders"},
            threshold=1,
            description="messages are waiting",
            parent=parent,
            **kwargs,
        )

    return deploy(program)


def test_metric_alarm_defaults() -> None:
    d = deploy_alarm()
    alarm = d.named("depth-alarm", ALARM)
    assert alarm.parent == d.named("parent").urn
    assert alarm.inputs == {
        "alarmDescription": "messages are waiting",
        "namespace": "AWS/SQS",
        "metricName": "ApproximateNumberOfMessagesVisible",
        "dimensions": {"QueueName": "orders"},
        "statistic": "Maximum",
        "period": 60.0,
        "evaluationPeriods": 1.0,
        "datapointsToAlarm": 1.0,
        "threshold": 1.0,
        "comparisonOperator": "GreaterThanOrEqualToThreshold",
        # An idle queue publishes no datapoints: that is not an incident.
        "treatMissingData": "notBreaching",
        "actionsEnabled": True,
        "alarmActions": [],
        "okActions": [],
    }


def test_metric_alarm_notifies_on_alarm_and_on_ok() -> None:
    d = deploy_alarm(
        alarm_actions=[TOPIC_ARN],
        comparison="GreaterThanThreshold",
        statistic="Sum",
        period_seconds=300,
        evaluation_periods=3,
    )
    alarm = d.named("depth-alarm", ALARM)
    assert alarm.inputs["alarmActions"] == [TOPIC_ARN]
    assert alarm.inputs["okActions"] == [TOPIC_ARN]
    assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
    assert alarm.inputs["statistic"] == "Sum"
    assert alarm.inputs["period"] == 300.0
    assert alarm.inputs["evaluationPeriods"] == 3.0
    assert alarm.inputs["datapointsToAlarm"] == 3.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"comparison": "Above"},
            "metric_alarm comparison: 'Above' is not allowed; use one of "
            "GreaterThanOrEqualToThreshold, GreaterThanThreshold",
        ),
        ({"statistic": "p99"}, "metric_alarm statistic: 'p99' is not allowed"),
        (
            {"period_seconds": 90},
            "metric_alarm period_seconds: 90 is not allowed; use 10, 20, 30 or a "
            "positive multiple of 60",
        ),
        ({"period_seconds": 0}, "metric_alarm period_seconds: 0 is not allowed"),
        (
            {"evaluation_periods": 0},
            "metric_alarm evaluation_periods: 0 is not allowed; use >= 1",
        ),
        ({"treat_missing_data": "zero"}, "metric_alarm treat_missing_data: 'zero'"),
    ],
)
def test_metric_alarm_refuses_bad_args(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        deploy_alarm(**kwargs)


def test_metric_alarm_accepts_high_resolution_periods() -> None:
    d = deploy_alarm(period_seconds=10)
    assert d.named("depth-alarm", ALARM).inputs["period"] == 10.0


def test_alerts_topic_is_encrypted_with_a_key_cloudwatch_can_use() -> None:
    d, component = deploy_alerts()
    children = {r.name: r for r in d.children(component)}
    assert sorted(children) == ["ops-key", "ops-topic", "ops-topic-policy"]
    key, topic = children["ops-key"], children["ops-topic"]
    assert key.inputs["enableKeyRotation"] is True
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]

    policy = json.loads(key.inputs["policy"])
    assert policy["Statement"] == [
        {
            "Sid": "EnableIamPolicies",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Sid": "AllowCloudWatchAlarmsToEncrypt",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": "*",
            # CloudWatch of this account only (no confused deputy from another account).
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
        },
    ]


def test_alerts_topic_policy_allows_only_cloudwatch_of_this_account() -> None:
    d, _ = deploy_alerts()
    topic_policy = d.named("ops-topic-policy", "aws:sns/topicPolicy:TopicPolicy")
    assert topic_policy.inputs["arn"] == TOPIC_ARN
    assert json.loads(topic_policy.inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Sid": "AllowCloudWatchAlarmsOfThisAccount",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": TOPIC_ARN,
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
            }
        ],
    }


def test_alerts_email_subscription_and_own_key() -> None:
    d, component = deploy_alerts(AlertsArgs(email="oncall@example.com", kms_master_key_id=KEY_ARN))
    assert sorted(r.name for r in d.children(component)) == [
        "ops-email",
        "ops-topic",
        "ops-topic-policy",
    ]
    assert d.named("ops-topic", TOPIC).inputs["kmsMasterKeyId"] == KEY_ARN
    sub = d.named("ops-email", "aws:sns/topicSubscription:TopicSubscription")
    assert sub.inputs == {
        "topic": TOPIC_ARN,
        "protocol": "email",
        "endpoint": "oncall@example.com",
    }


def test_alerts_topic_arn_feeds_alarm_actions() -> None:
    def program() -> None:
        alerts = Alerts("ops")
        metric_alarm(
            "x-alarm",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": "f"},
            threshold=1,
            statistic="Sum",
            alarm_actions=[alerts.topic_arn],
            description="errors",
            parent=alerts,
        )

    d = deploy(program)
    alarm = d.named("x-alarm", ALARM)
    assert alarm.inputs["alarmActions"] == [TOPIC_ARN]
    assert alarm.inputs["okActions"] == [TOPIC_ARN]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kms_master_key_id": "alias/aws/sns"},
            r"AlertsArgs.kms_master_key_id: 'alias/aws/sns' is not allowed: CloudWatch "
            r"alarms cannot publish to a topic encrypted with the AWS-managed key",
        ),
        (
            {"kms_master_key_id": f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:alias/aws/sns"},
            "AlertsArgs.kms_master_key_id: .* is not allowed",
        ),
        ({"email": "not-an-address"}, "AlertsArgs.email: 'not-an-address' is not an email"),
    ],
)
def test_alerts_refuses_bad_args(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlertsArgs(**kwargs)


def test_key_policy_document_refuses_scoped_resources_and_wildcards() -> None:
    cloudwatch = [Principal("Service", ["cloudwatch.amazonaws.com"])]
    with pytest.raises(PolicyViolation, match=r"resources must be \['\*'\]"):
        key_policy_document(
            [Statement(actions=["kms:Decrypt"], resources=[KEY_ARN], principals=cloudwatch)],
            account_id=ACCOUNT_ID,
        )
    with pytest.raises(PolicyViolation, match="no principals"):
        key_policy_document(
            [Statement(actions=["kms:Decrypt"], resources=["*"])], account_id=ACCOUNT_ID
        )
    with pytest.raises(PolicyViolation, match="wildcard action 'kms:Generate\\*'"):
        key_policy_document(
            [Statement(actions=["kms:Generate*"], resources=["*"], principals=cloudwatch)],
            account_id=ACCOUNT_ID,
        )
