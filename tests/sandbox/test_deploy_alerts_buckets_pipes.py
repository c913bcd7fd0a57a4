"""Alert topics (KMS key, policy, subscription), buckets with their configuration, and
pipes, deployed into the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.moto_deploy import DeployError, Sandbox
from pulumi_eventcraft.alarms import Alerts, AlertsArgs

TRUST_PIPES = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pipes.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def test_an_alert_topic_with_its_key_policy_and_email(sandbox: Sandbox) -> None:
    def program() -> None:
        alerts = Alerts("alerts", AlertsArgs(email="oncall@example.com"))
        pulumi.export("topicArn", alerts.topic_arn)
        pulumi.export("keyArn", alerts.key.arn)  # type: ignore[union-attr]

    deployment = sandbox.deploy(program)
    out = deployment.outputs
    sns = sandbox.client("sns")
    attributes = sns.get_topic_attributes(TopicArn=out["topicArn"])["Attributes"]
    assert attributes["KmsMasterKeyId"] == out["keyArn"]
    [statement] = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": sandbox.account}}
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=out["topicArn"])["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "oncall@example.com")

    kms = sandbox.client("kms")
    key_id = deployment.resource_id("alerts-key")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"] == out["keyArn"]
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    sids = [s.get("Sid") for s in policy["Statement"]]
    assert "AllowCloudWatchAlarmsToEncrypt" in sids


def test_an_alarm_notifies_the_topic(sandbox: Sandbox) -> None:
    def program() -> None:
        topic = aws.sns.Topic("alarms")
        aws.cloudwatch.MetricAlarm(
            "dlq-depth",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": "orders-dlq"},
            statistic="Maximum",
            period=60,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic.arn],
        )
        pulumi.export("topicArn", topic.arn)

    deployment = sandbox.deploy(program)
    [alarm] = sandbox.client("cloudwatch").describe_alarms(AlarmNames=["dlq-depth"])["MetricAlarms"]
    assert alarm["AlarmActions"] == [deployment.outputs["topicArn"]]
    assert alarm["AlarmArn"] == deployment.arn("dlq-depth")
    assert alarm["TreatMissingData"] == "notBreaching"


def alarm_on(name: str, namespace: str, metric: str, dimensions: dict[str, str]) -> None:
    aws.cloudwatch.MetricAlarm(
        name,
        namespace=namespace,
        metric_name=metric,
        dimensions=dimensions,
        statistic="Sum",
        period=60,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
    )


NEVER_FIRES = "AWS would accept it, but it would never fire; the sandbox refuses it"


def test_an_alarm_on_a_metric_aws_does_not_publish_fails_the_deploy(sandbox: Sandbox) -> None:
    """A misspelt metric: CloudWatch (and moto) would create an alarm that never fires."""
    with pytest.raises(DeployError) as refused:
        sandbox.deploy(
            lambda: alarm_on(
                "dlq-depth", "AWS/SQS", "ApproximateNumberOfMessagesVisble", {"QueueName": "q"}
            )
        )
    message = str(refused.value)
    assert message.startswith(
        "aws:cloudwatch/metricAlarm:MetricAlarm 'dlq-depth': alarm 'dlq-depth' watches AWS/SQS "
        "ApproximateNumberOfMessagesVisble (QueueName), a metric AWS never publishes: AWS/SQS "
        "has no metric 'ApproximateNumberOfMessagesVisble'; it publishes "
        "ApproximateAgeOfOldestMessage, ApproximateNumberOfGroupsWithInflightMessages, "
    )
    assert "ApproximateNumberOfMessagesVisible, " in message
    assert "(see https://docs.aws.amazon.com/AWSSimpleQueueService/" in message
    assert message.endswith(NEVER_FIRES)
    assert sandbox.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_an_alarm_with_dimensions_aws_does_not_publish_the_metric_with_fails_the_deploy(
    sandbox: Sandbox,
) -> None:
    with pytest.raises(DeployError) as refused:
        sandbox.deploy(lambda: alarm_on("errors", "AWS/Lambda", "Errors", {"QueueName": "q"}))
    assert str(refused.value) == (
        "aws:cloudwatch/metricAlarm:MetricAlarm 'errors': alarm 'errors' watches AWS/Lambda "
        "Errors (QueueName), a metric AWS never publishes: AWS/Lambda publishes Errors with "
        "the dimensions ExecutedVersion, FunctionName, Resource | FunctionName | "
        "FunctionName, Resource | no dimension, not with QueueName (see "
        "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html). "
        + NEVER_FIRES
    )
    # A rule on a custom bus publishes with both names; RuleName alone is the default bus.
    sandbox.deploy(
        lambda: alarm_on(
            "rule-dlq",
            "AWS/Events",
            "InvocationsFailedToBeSentToDlq",
            {"RuleName": "r", "EventBusName": "orders"},
        )
    )
    with pytest.raises(DeployError, match=r"'bus-only' watches AWS/Events Invocations"):
        sandbox.deploy(
            lambda: alarm_on("bus-only", "AWS/Events", "Invocations", {"EventBusName": "orders"})
        )


def test_a_metric_math_alarm_is_checked_query_by_query_and_custom_namespaces_pass(
    sandbox: Sandbox,
) -> None:
    def query(id_: str, namespace: str, metric: str, dimensions: dict[str, str]) -> object:
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=id_,
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=namespace,
                metric_name=metric,
                dimensions=dimensions,
                period=60,
                stat="Sum",
            ),
        )

    def program(failures_namespace: str) -> None:
        aws.cloudwatch.MetricAlarm(
            "error-rate",
            comparison_operator="GreaterThanThreshold",
            evaluation_periods=1,
            threshold=5,
            metric_queries=[
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="rate", expression="100 * failures / calls", return_data=True
                ),
                query("calls", "AWS/Lambda", "Invocations", {"FunctionName": "f"}),
                query("failures", failures_namespace, "Error", {"FunctionName": "f"}),
            ],
        )
        alarm_on("orders", "Shop/Orders", "OrdersRefused", {"Anything": "goes"})

    with pytest.raises(DeployError) as refused:
        sandbox.deploy(lambda: program("AWS/Lambda"))
    assert str(refused.value).startswith(
        "aws:cloudwatch/metricAlarm:MetricAlarm 'error-rate': alarm 'error-rate' metric "
        "query 'failures': watches AWS/Lambda Error (FunctionName), a metric AWS never "
        "publishes: AWS/Lambda has no metric 'Error'; "
    )

    # The same metric in a namespace of the program's own is not AWS's to judge.
    sandbox.deploy(lambda: program("Shop/Functions"))
    names = [a["AlarmName"] for a in sandbox.client("cloudwatch").describe_alarms()["MetricAlarms"]]
    assert sorted(names) == ["error-rate", "orders"]


def test_a_bucket_encrypted_private_versioned_and_notifying_eventbridge(
    sandbox: Sandbox,
) -> None:
    def program() -> None:
        bucket = aws.s3.Bucket("order-documents", bucket="order-documents")
        aws.s3.BucketServerSideEncryptionConfiguration(
            "sse",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                    "bucket_key_enabled": True,
                }
            ],
        )
        aws.s3.BucketPublicAccessBlock(
            "private",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
        aws.s3.BucketVersioning(
            "versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}
        )
        aws.s3.BucketNotification("notify", bucket=bucket.id, eventbridge=True)
        pulumi.export("arn", bucket.arn)

    deployment = sandbox.deploy(program)
    s3 = sandbox.client("s3")
    assert deployment.outputs["arn"] == "arn:aws:s3:::order-documents"
    [rule] = s3.get_bucket_encryption(Bucket="order-documents")[
        "ServerSideEncryptionConfiguration"
    ]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    block = s3.get_public_access_block(Bucket="order-documents")
    assert all(block["PublicAccessBlockConfiguration"].values())
    assert s3.get_bucket_versioning(Bucket="order-documents")["Status"] == "Enabled"
    # moto stores EventBridgeConfiguration (and sends S3 events to the bus) but leaves
    # it out of GetBucketNotificationConfiguration: read its state instead.
    from moto.s3.models import s3_backends

    stored = s3_backends[sandbox.account]["aws"].buckets["order-documents"]
    assert stored.notification_configuration.event_bridge == {}


def test_a_pipe_is_created_in_moto_and_recorded_for_delivery(sandbox: Sandbox) -> None:
    def program() -> None:
        source = aws.sqs.Queue("pipe-source")
        bus = aws.cloudwatch.EventBus("pipe-bus", name="pipe-bus")
        role = aws.iam.Role("pipe-role", assume_role_policy=TRUST_PIPES)
        aws.pipes.Pipe(
            "forward",
            role_arn=role.arn,
            source=source.arn,
            target=bus.arn,
            source_parameters={
                "sqs_queue_parameters": {"batch_size": 5},
                "filter_criteria": {"filters": [{"pattern": '{"body": {"kind": ["order"]}}'}]},
            },
            target_parameters={
                "eventbridge_event_bus_parameters": {
                    "detail_type": "OrderForwarded",
                    "source": "order-saga.pipe",
                }
            },
        )
        pulumi.export("sourceArn", source.arn)
        pulumi.export("busArn", bus.arn)

    deployment = sandbox.deploy(program)
    pipe = sandbox.client("pipes").describe_pipe(Name="forward")
    assert pipe["Source"] == deployment.outputs["sourceArn"]
    assert pipe["Target"] == deployment.outputs["busArn"]
    [record] = deployment.pipes
    assert record.pipe_name == "forward"
    assert record.arn == pipe["Arn"]
    assert record.request["SourceParameters"]["SqsQueueParameters"] == {"BatchSize": 5}
    assert record.request["TargetParameters"]["EventBridgeEventBusParameters"] == {
        "DetailType": "OrderForwarded",
        "Source": "order-saga.pipe",
    }
    assert record.desired_state == "RUNNING"
