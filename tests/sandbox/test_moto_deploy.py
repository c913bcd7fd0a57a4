"""Deploying programs into the sandbox's moto: the Sandbox (identity, IAM enforced,
lifecycle), queues read back through boto3, chained outputs, what fails and how, the
summary, and the real program."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pulumi
import pulumi_aws as aws
import pytest
from botocore.exceptions import ClientError

from eventcraft_sandbox.moto_deploy import (
    DeployError,
    MotoMocks,
    Sandbox,
    UnknownResourceTypeError,
    deploy_into_moto,
)
from eventcraft_sandbox.stack_files import stack_config
from pulumi_eventcraft.queue import Queue, QueueArgs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def _attributes(sandbox: Sandbox, url: str) -> dict[str, str]:
    sqs = sandbox.client("sqs")
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


# ----------------------------------------------------------------------- sandbox


def test_the_sandbox_runs_as_an_administrator_with_iam_enforced(sandbox: Sandbox) -> None:
    identity = sandbox.client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{sandbox.account}:user/sandbox-admin"
    # Anyone else (here: the test-wide fake credentials) is not an identity in moto.
    stranger = boto3.client("sqs", region_name="us-east-1")
    with pytest.raises(ClientError, match="InvalidClientTokenId"):
        stranger.list_queues()


def test_an_identity_without_rights_is_denied(sandbox: Sandbox) -> None:
    iam = sandbox.client("iam")
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    sqs = boto3.client(
        "sqs",
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        sqs.list_queues()


def test_rest_reads_pass_the_signature_check(sandbox: Sandbox) -> None:
    # moto re-signs a bodiless GET with its headers as the body; the sandbox fixes it.
    assert sandbox.client("lambda").list_functions()["Functions"] == []


def test_stopping_the_sandbox_ends_moto_and_only_one_runs_at_a_time() -> None:
    first = Sandbox().start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            Sandbox().start()
        first.client("sqs").create_queue(QueueName="left-over")
    finally:
        first.stop()
    assert not first.running
    with pytest.raises(RuntimeError, match="not running"):
        first.client("sqs")
    with Sandbox() as second:
        assert second.client("sqs").list_queues().get("QueueUrls", []) == []


# ------------------------------------------------------------------------ queues


def test_a_queue_with_its_dlq_is_created_with_its_settings(sandbox: Sandbox) -> None:
    def program() -> None:
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=60, max_receive_count=3))
        pulumi.export("url", queue.url)
        pulumi.export("dlqUrl", queue.dlq.url)

    deployment = sandbox.deploy(program)

    attributes = _attributes(sandbox, deployment.outputs["url"])
    dlq = _attributes(sandbox, deployment.outputs["dlqUrl"])
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": 3,
    }
    assert attributes["VisibilityTimeout"] == "60"
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"
    assert attributes["SqsManagedSseEnabled"] == "true"
    policy = json.loads(attributes["Policy"])
    assert policy["Statement"][0]["Sid"] == "DenyInsecureTransport"
    assert policy["Statement"][0]["Resource"] == attributes["QueueArn"]
    # Only this queue may use the DLQ it created.
    assert json.loads(dlq["RedriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [attributes["QueueArn"]],
    }
    assert dlq["MessageRetentionPeriod"] == "1209600"
    # Outputs are moto's: the recorded ARN is the queue's real one.
    assert deployment.arn("work-queue") == attributes["QueueArn"]
    assert deployment.resource_id("work-queue") == deployment.outputs["url"]
    alarms = sandbox.client("cloudwatch").describe_alarms(AlarmNames=["work-age-alarm"])
    [alarm] = alarms["MetricAlarms"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "work-queue"}]
    assert alarm["Threshold"] == 345_600 // 2


def test_a_fifo_queue_encrypted_with_a_customer_key(sandbox: Sandbox) -> None:
    def program() -> None:
        key = aws.kms.Key("key", description="queue key", enable_key_rotation=True)
        dlq = aws.sqs.Queue("dlq", name="orders-dlq.fifo", fifo_queue=True)
        queue = aws.sqs.Queue(
            "orders",
            name="orders.fifo",
            fifo_queue=True,
            content_based_deduplication=True,
            deduplication_scope="messageGroup",
            fifo_throughput_limit="perMessageGroupId",
            kms_master_key_id=key.arn,
            kms_data_key_reuse_period_seconds=300,
            redrive_policy=dlq.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 4})
            ),
        )
        pulumi.export("url", queue.url)
        pulumi.export("keyArn", key.arn)

    deployment = sandbox.deploy(program)

    attributes = _attributes(sandbox, deployment.outputs["url"])
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["DeduplicationScope"] == "messageGroup"
    assert attributes["FifoThroughputLimit"] == "perMessageGroupId"
    assert attributes["KmsMasterKeyId"] == deployment.outputs["keyArn"]
    assert attributes["KmsDataKeyReusePeriodSeconds"] == "300"
    key_id = deployment.resource_id("key")
    kms = sandbox.client("kms")
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


def test_a_fifo_queue_name_without_the_suffix_is_refused_by_moto(sandbox: Sandbox) -> None:
    def program() -> None:
        aws.sqs.Queue("orders", name="orders", fifo_queue=True)

    with pytest.raises(DeployError, match=r"'orders'.*Queue name must end in \.fifo"):
        sandbox.deploy(program)


def test_a_parameter_boto3_refuses_fails_the_deployment(sandbox: Sandbox) -> None:
    def program() -> None:
        aws.kinesis.Stream(
            "activity", shard_count=1.5, stream_mode_details={"stream_mode": "PROVISIONED"}
        )

    with pytest.raises(DeployError, match=r"(?s)aws:kinesis/stream:Stream 'activity'.*ShardCount"):
        sandbox.deploy(program)


def test_an_unknown_resource_type_fails_naming_the_type(sandbox: Sandbox) -> None:
    def program() -> None:
        aws.ec2.Vpc("network", cidr_block="10.0.0.0/16")

    with pytest.raises(UnknownResourceTypeError, match=r"'aws:ec2/vpc:Vpc' \('network'\)"):
        sandbox.deploy(program)


def test_components_are_recorded_and_outputs_chain_between_resources(sandbox: Sandbox) -> None:
    def program() -> None:
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=30, alarms=False))
        pulumi.export("arn", queue.arn)

    deployment = sandbox.deploy(program)
    component = deployment.named("work", typ="eventcraft:index:Queue")
    assert not component.custom
    children = {r.name for r in deployment.descendants(component)}
    assert children >= {"work-queue", "work-policy", "work-redrive-allow", "work-dlq-queue"}
    # The policy was written with the ARN moto gave the queue.
    policy = json.loads(deployment.named("work-policy").inputs["policy"])
    assert policy["Statement"][0]["Resource"] == deployment.outputs["arn"]
    assert deployment.arns[("aws:sqs/queue:Queue", "work-queue")] == deployment.outputs["arn"]
    assert "aws:sqs/queuePolicy:QueuePolicy" in deployment.by_type()


def test_the_caller_identity_invoke_answers_the_sandbox_administrator(sandbox: Sandbox) -> None:
    def program() -> None:
        identity = aws.get_caller_identity_output()
        pulumi.export("arn", identity.arn)
        pulumi.export("account", identity.account_id)

    deployment = sandbox.deploy(program)
    assert deployment.outputs == {
        "arn": sandbox.admin.arn,
        "account": sandbox.account,
    }


def test_an_explicit_provider_deploys_into_its_region(sandbox: Sandbox) -> None:
    def program() -> None:
        west = aws.Provider("west", region="eu-west-1")
        remote = aws.sqs.Queue("remote", opts=pulumi.ResourceOptions(provider=west))
        local = aws.sqs.Queue("local")
        pulumi.export("remote", remote.arn)
        pulumi.export("local", local.arn)

    deployment = sandbox.deploy(program)
    assert deployment.outputs["remote"].startswith("arn:aws:sqs:eu-west-1:")
    assert deployment.outputs["local"].startswith("arn:aws:sqs:us-east-1:")
    west_queues = sandbox.client("sqs", region="eu-west-1").list_queues()["QueueUrls"]
    assert west_queues == [deployment.resource_id("remote")]


def test_the_summary_shows_resources_and_what_the_sandbox_delivers(sandbox: Sandbox) -> None:
    def program() -> None:
        Queue("work", QueueArgs(visibility_timeout_seconds=30, alarms=False))

    summary = sandbox.deploy(program, stack="demo").summary()
    assert summary.startswith("Stack project-demo (sandbox: deployed into an in-process moto)")
    assert "aws:sqs/queue:Queue" in summary
    assert "visibilityTimeoutSeconds=30" in summary
    assert "Resources: 5 created (2 components)" in summary


def test_deploy_into_moto_without_a_sandbox_owns_a_new_one() -> None:
    with deploy_into_moto(lambda: aws.sqs.Queue("solo")) as deployment:
        assert deployment.sandbox is not None
        assert deployment.sandbox.running
        urls = deployment.sandbox.client("sqs").list_queues()["QueueUrls"]
        assert urls == [deployment.resource_id("solo")]
    assert not deployment.sandbox.running


def test_a_failed_deployment_stops_the_sandbox_it_started() -> None:
    with pytest.raises(UnknownResourceTypeError):
        deploy_into_moto(lambda: aws.ec2.Vpc("network", cidr_block="10.0.0.0/16"))
    with Sandbox() as fresh:  # would fail if the first were still running
        assert fresh.running


def test_the_mocks_can_be_given_other_deployers(sandbox: Sandbox) -> None:
    mocks = MotoMocks(sandbox, deployers={})
    assert mocks.deployers == {}
    with pytest.raises(UnknownResourceTypeError, match="aws:sqs/queue:Queue"):
        from eventcraft_sandbox.mock_deploy import deploy

        deploy(lambda: aws.sqs.Queue("q"), mocks=mocks, preview=False)


# -------------------------------------------------------------- the real program


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_real_program_deploys_into_moto(stack: str) -> None:
    with deploy_into_moto(ROOT / "__main__.py", stack=stack) as deployment:
        config = stack_config(stack, ROOT)
        assert deployment.outputs["sagaMode"] == config["order-saga:sagaMode"]
        assert deployment.sandbox is not None
        # Every custom resource was created in moto and has its provider id.
        for resource in deployment:
            if resource.custom:
                assert deployment.resource_id(resource.name, resource.typ)
        assert f"Stack order-saga-{stack}" in deployment.summary()
