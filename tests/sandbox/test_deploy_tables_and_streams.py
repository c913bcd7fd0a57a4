"""Tables and streams deployed into the sandbox, read back through boto3."""

from __future__ import annotations

from collections.abc import Iterator

import pulumi
import pulumi_aws as aws
import pytest

from eventcraft_sandbox.moto_deploy import Sandbox
from pulumi_eventcraft.stream import Stream, StreamArgs
from pulumi_eventcraft.table import GlobalSecondaryIndex, KeyAttribute, Table, TableArgs


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def test_a_table_with_stream_ttl_pitr_and_an_index(sandbox: Sandbox) -> None:
    def program() -> None:
        table = Table(
            "orders",
            TableArgs(
                hash_key=KeyAttribute("pk"),
                range_key=KeyAttribute("sk"),
                stream_view_type="NEW_AND_OLD_IMAGES",
                ttl_attribute="expiresAt",
                global_secondary_indexes=[
                    GlobalSecondaryIndex(
                        name="by-status",
                        hash_key=KeyAttribute("status"),
                        range_key=KeyAttribute("placedAt", "N"),
                        projection_type="INCLUDE",
                        non_key_attributes=["total"],
                    )
                ],
            ),
        )
        pulumi.export("name", table.name)
        pulumi.export("streamArn", table.stream_arn)

    deployment = sandbox.deploy(program)
    name = deployment.outputs["name"]
    ddb = sandbox.client("dynamodb")

    table = ddb.describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    # The stream ARN output is moto's, so consumers read the real stream.
    assert deployment.outputs["streamArn"] == table["LatestStreamArn"]
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert table["SSEDescription"]["SSEType"] == "KMS"
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-status"
    assert index["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "placedAt", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["total"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {"pk": "S", "sk": "S", "status": "S", "placedAt": "N"}

    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    recovery = backups["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"

    stream = sandbox.client("dynamodbstreams").describe_stream(
        StreamArn=deployment.outputs["streamArn"]
    )["StreamDescription"]
    assert stream["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_a_provisioned_table_without_stream_or_pitr(sandbox: Sandbox) -> None:
    def program() -> None:
        Table(
            "snapshots",
            TableArgs(
                hash_key=KeyAttribute("aggregateId"),
                billing_mode="PROVISIONED",
                read_capacity=5,
                write_capacity=2,
                point_in_time_recovery=False,
                deletion_protection=True,
            ),
        )

    deployment = sandbox.deploy(program)
    ddb = sandbox.client("dynamodb")
    name = deployment.resource_id("snapshots-table")
    table = ddb.describe_table(TableName=name)["Table"]
    throughput = table["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (5, 2)
    assert "LatestStreamArn" not in table
    assert table["DeletionProtectionEnabled"] is True
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    assert "streamArn" not in deployment.named("snapshots-table").outputs


def test_an_on_demand_stream_encrypted_with_the_kinesis_key(sandbox: Sandbox) -> None:
    def program() -> None:
        stream = Stream("activity", StreamArgs(retention_hours=48))
        pulumi.export("arn", stream.arn)
        pulumi.export("name", stream.name)

    deployment = sandbox.deploy(program)
    kinesis = sandbox.client("kinesis")
    summary = kinesis.describe_stream_summary(StreamName=deployment.outputs["name"])[
        "StreamDescriptionSummary"
    ]
    assert summary["StreamARN"] == deployment.outputs["arn"]
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["RetentionPeriodHours"] == 48
    assert summary["EncryptionType"] == "KMS"
    assert summary["KeyId"] == "alias/aws/kinesis"
    # The provider's id of a stream is its ARN.
    assert deployment.resource_id("activity-stream") == deployment.outputs["arn"]
    alarms = sandbox.client("cloudwatch").describe_alarms(
        AlarmNames=["activity-iterator-age-alarm"]
    )["MetricAlarms"]
    assert alarms[0]["Dimensions"] == [{"Name": "StreamName", "Value": "activity-stream"}]


def test_a_provisioned_stream_gets_its_shards_and_metrics(sandbox: Sandbox) -> None:
    def program() -> None:
        aws.kinesis.Stream(
            "clicks",
            shard_count=2,
            stream_mode_details={"stream_mode": "PROVISIONED"},
            shard_level_metrics=["IncomingBytes"],
        )

    sandbox.deploy(program)
    summary = sandbox.client("kinesis").describe_stream_summary(StreamName="clicks")[
        "StreamDescriptionSummary"
    ]
    assert summary["OpenShardCount"] == 2
    assert summary["EncryptionType"] == "NONE"
    assert summary["EnhancedMonitoring"] == [{"ShardLevelMetrics": ["IncomingBytes"]}]
