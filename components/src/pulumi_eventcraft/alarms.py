"""CloudWatch alarms for every hop, and the SNS topic they notify.

`metric_alarm` declares one alarm on one metric with the project's conventions: the
same actions on ALARM and on OK (whoever is paged also hears that it recovered), and
missing data treated as not breaching (an idle queue publishes no datapoints; that is
not an incident). `Alerts` is the topic those actions point at: encrypted at rest with
a customer-managed KMS key that CloudWatch may use, and publishable only by CloudWatch
alarms of this account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from pulumi_eventcraft.iam import (
    Condition,
    Principal,
    Statement,
    key_policy_document,
    policy_document,
)
from pulumi_eventcraft.tags import Tags, check_tags, tag_input

Comparison = Literal[
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]
Statistic = Literal["SampleCount", "Average", "Sum", "Minimum", "Maximum"]
TreatMissingData = Literal["notBreaching", "breaching", "ignore", "missing"]

COMPARISONS: tuple[str, ...] = (
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
)
STATISTICS: tuple[str, ...] = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
TREAT_MISSING_DATA: tuple[str, ...] = ("notBreaching", "breaching", "ignore", "missing")
# CloudWatch accepts 10, 20 and 30 s (high-resolution metrics) or any multiple of 60 s.
HIGH_RESOLUTION_PERIODS: tuple[int, ...] = (10, 20, 30)
# The AWS-managed SNS key: its key policy cannot be edited and does not let CloudWatch
# use it, so alarms publishing to a topic encrypted with it fail silently.
AWS_MANAGED_SNS_KEY = "alias/aws/sns"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def metric_alarm(
    name: str,
    *,
    namespace: str,
    metric_name: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    threshold: float,
    comparison: Comparison = "GreaterThanOrEqualToThreshold",
    statistic: Statistic = "Maximum",
    period_seconds: int = 60,
    evaluation_periods: int = 1,
    alarm_actions: Sequence[pulumi.Input[str]] = (),
    description: str,
    parent: pulumi.Resource,
    treat_missing_data: TreatMissingData = "notBreaching",
    tags: Tags = None,
) -> aws.cloudwatch.MetricAlarm:
    """One CloudWatch alarm named `name` (the Pulumi logical name), a child of `parent`.

    Alarms when `statistic` of `namespace`/`metric_name` over `period_seconds`
    (default 60 s; 10, 20, 30 or a multiple of 60) is `comparison` (default
    GreaterThanOrEqualToThreshold) `threshold` for `evaluation_periods` (default 1)
    consecutive periods. `statistic` defaults to Maximum. `alarm_actions` (SNS topic
    ARNs, default none) are notified on ALARM and on OK. Missing data is treated as
    not breaching by default (`treat_missing_data`): depth and age metrics publish
    nothing while a resource is idle. `tags` (default none) are the alarm's tags.
    """
    if comparison not in COMPARISONS:
        raise ValueError(
            f"metric_alarm comparison: {comparison!r} is not allowed; "
            f"use one of {', '.join(COMPARISONS)}"
        )
    if statistic not in STATISTICS:
        raise ValueError(
            f"metric_alarm statistic: {statistic!r} is not allowed; "
            f"use one of {', '.join(STATISTICS)}"
        )
    if treat_missing_data not in TREAT_MISSING_DATA:
        raise ValueError(
            f"metric_alarm treat_missing_data: {treat_missing_data!r} is not allowed; "
            f"use one of {', '.join(TREAT_MISSING_DATA)}"
        )
    if period_seconds not in HIGH_RESOLUTION_PERIODS and (
        period_seconds <= 0 or period_seconds % 60
    ):
        raise ValueError(
            f"metric_alarm period_seconds: {period_seconds} is not allowed; "
            "use 10, 20, 30 or a positive multiple of 60"
        )
    if evaluation_periods < 1:
        raise ValueError(
            f"metric_alarm evaluation_periods: {evaluation_periods} is not allowed; use >= 1"
        )
    actions = list(alarm_actions)
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric_name,
        dimensions=dict(dimensions),
        statistic=statistic,
        period=period_seconds,
        evaluation_periods=evaluation_periods,
        # Every breaching period counts: no "M out of N" smoothing unless asked.
        datapoints_to_alarm=evaluation_periods,
        threshold=threshold,
        comparison_operator=comparison,
        treat_missing_data=treat_missing_data,
        actions_enabled=True,
        alarm_actions=actions,
        ok_actions=actions,
        tags=tag_input(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True, kw_only=True)
class AlertsArgs:
    """Arguments of `Alerts`; every default is the secure one.

    - `email`: None (default) = no subscription; else an address subscribed to the
      topic (AWS mails a confirmation link that must be clicked before any alert).
    - `kms_master_key_id`: None (default) = a customer-managed KMS key is created for
      the topic (`{name}-key`, yearly rotation) whose key policy lets CloudWatch of
      this account (`aws:SourceAccount`) encrypt messages; else the ID, ARN or alias
      of your own key, whose policy must allow `cloudwatch.amazonaws.com`
      `kms:GenerateDataKey` and `kms:Decrypt`. The
      AWS-managed `alias/aws/sns` is refused: CloudWatch cannot use it.
    - `tags`: None (default); tags of the key and the topic.
    """

    email: str | None = None
    kms_master_key_id: str | None = None
    tags: Tags = None

    def __post_init__(self) -> None:
        check_tags("AlertsArgs", self.tags)
        if self.email is not None and not _EMAIL.fullmatch(self.email):
            raise ValueError(
                f"AlertsArgs.email: {self.email!r} is not an email address; "
                "give one address such as 'oncall@example.com', or None for no subscription"
            )
        if self.kms_master_key_id is not None and (
            self.kms_master_key_id.strip() == ""
            or self.kms_master_key_id.endswith(AWS_MANAGED_SNS_KEY)
        ):
            raise ValueError(
                f"AlertsArgs.kms_master_key_id: {self.kms_master_key_id!r} is not allowed: "
                "CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed "
                "key alias/aws/sns (its key policy does not allow cloudwatch.amazonaws.com); "
                "use None to create a customer-managed key, or your own key whose policy "
                "allows CloudWatch kms:GenerateDataKey and kms:Decrypt"
            )


class Alerts(pulumi.ComponentResource):
    """An SNS topic for alarm notifications, encrypted at rest, publishable by CloudWatch only.

    Children: `{name}-key` (unless a key is given), `{name}-topic`,
    `{name}-topic-policy`, `{name}-email` (when an address is given). Pass
    `alerts.topic_arn` as `alarm_actions` to the components that create alarms.
    """

    topic: aws.sns.Topic
    topic_arn: pulumi.Output[str]
    topic_policy: aws.sns.TopicPolicy
    key: aws.kms.Key | None
    subscription: aws.sns.TopicSubscription | None

    def __init__(
        self,
        name: str,
        args: AlertsArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args or AlertsArgs()
        super().__init__("eventcraft:index:Alerts", name, None, opts)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id

        self.key = None
        key_id: pulumi.Input[str]
        if args.kms_master_key_id is None:
            self.key = aws.kms.Key(
                f"{name}-key",
                description=f"Encrypts the {name} alarm topic; usable by CloudWatch alarms",
                enable_key_rotation=True,
                policy=key_policy_document(
                    [
                        Statement(
                            sid="AllowCloudWatchAlarmsToEncrypt",
                            principals=[Principal("Service", ["cloudwatch.amazonaws.com"])],
                            actions=["kms:GenerateDataKey", "kms:Decrypt"],
                            resources=["*"],
                            conditions=[Condition("StringEquals", "aws:SourceAccount", [account])],
                        )
                    ],
                    account_id=account,
                ),
                tags=tag_input(args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            key_id = self.key.arn
        else:
            key_id = args.kms_master_key_id

        self.topic = aws.sns.Topic(
            f"{name}-topic",
            kms_master_key_id=key_id,
            tags=tag_input(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.topic_arn = self.topic.arn
        self.topic_policy = aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=self.topic.arn,
            policy=policy_document(
                [
                    Statement(
                        sid="AllowCloudWatchAlarmsOfThisAccount",
                        principals=[Principal("Service", ["cloudwatch.amazonaws.com"])],
                        actions=["sns:Publish"],
                        resources=[self.topic.arn],
                        conditions=[Condition("StringEquals", "aws:SourceAccount", [account])],
                    )
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.subscription = None
        if args.email is not None:
            self.subscription = aws.sns.TopicSubscription(
                f"{name}-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.register_outputs({"topicArn": self.topic_arn})
