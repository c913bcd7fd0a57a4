"""Stream: what `pulumi preview` shows, access statements, and refusals."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import ACCOUNT_ID, Deployment, deploy
from pulumi_eventcraft.iam import policy_document
from pulumi_eventcraft.stream import Stream, StreamArgs

STREAM = "aws:kinesis/stream:Stream"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ARN = f"arn:aws:kinesis:us-east-1:{ACCOUNT_ID}:stream/outbox-stream"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:ops"
READ_ACTIONS = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
]


def deploy_stream(args: StreamArgs | None = None) -> Deployment:
    def program() -> None:
        stream = Stream("outbox", args)
        pulumi.export("put", policy_document(stream.put_statements()))
        pulumi.export("read", policy_document(stream.read_statements()))
        pulumi.export("arn", stream.arn)
        pulumi.export("name", stream.name)

    return deploy(program)


def statements(d: Deployment, key: str) -> list[dict[str, Any]]:
    return json.loads(d.outputs[key])["Statement"]


def test_defaults_on_demand_kms_encrypted_one_day() -> None:
    d = deploy_stream()
    component = d.named("outbox", "eventcraft:index:Stream")
    assert sorted(r.name for r in d.children(component)) == [
        "outbox-iterator-age-alarm",
        "outbox-stream",
    ]
    stream = d.named("outbox-stream", STREAM)
    assert stream.inputs == {
        "encryptionType": "KMS",
        "kmsKeyId": "alias/aws/kinesis",
        "retentionPeriod": 24.0,
        "streamModeDetails": {"streamMode": "ON_DEMAND"},
    }
    assert d.outputs["arn"] == ARN
    assert d.outputs["name"] == "outbox-stream"


def test_iterator_age_alarm() -> None:
    d = deploy_stream(StreamArgs(iterator_age_alarm_ms=300_000, alarm_actions=[TOPIC_ARN]))
    alarm = d.named("outbox-iterator-age-alarm", ALARM)
    assert alarm.parent == d.named("outbox", "eventcraft:index:Stream").urn
    assert alarm.inputs["namespace"] == "AWS/Kinesis"
    assert alarm.inputs["metricName"] == "GetRecords.IteratorAgeMilliseconds"
    assert alarm.inputs["dimensions"] == {"StreamName": "outbox-stream"}
    assert alarm.inputs["statistic"] == "Maximum"
    assert alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm.inputs["threshold"] == 300_000.0
    assert alarm.inputs["alarmActions"] == [TOPIC_ARN]
    assert alarm.inputs["okActions"] == [TOPIC_ARN]


def test_default_alarm_threshold_is_one_minute() -> None:
    d = deploy_stream()
    assert d.named("outbox-iterator-age-alarm", ALARM).inputs["threshold"] == 60_000.0


def test_no_alarms_when_turned_off() -> None:
    d = deploy_stream(StreamArgs(alarms=False))
    assert d.of_type(ALARM) == []


def test_provisioned_with_shards_and_longer_retention() -> None:
    d = deploy_stream(StreamArgs(mode="PROVISIONED", shard_count=2, retention_hours=168))
    stream = d.named("outbox-stream", STREAM)
    assert stream.inputs["streamModeDetails"] == {"streamMode": "PROVISIONED"}
    assert stream.inputs["shardCount"] == 2.0
    assert stream.inputs["retentionPeriod"] == 168.0


def test_statements_with_the_aws_managed_key_are_stream_only() -> None:
    d = deploy_stream()
    assert statements(d, "put") == [
        {"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"], "Resource": ARN}
    ]
    # What a Lambda event source mapping needs; no ListStreams (unscopable, not needed).
    assert statements(d, "read") == [{"Effect": "Allow", "Action": READ_ACTIONS, "Resource": ARN}]


def test_customer_key_is_used_and_granted() -> None:
    d = deploy_stream(StreamArgs(kms_key_id=KEY_ARN))
    assert d.named("outbox-stream", STREAM).inputs["kmsKeyId"] == KEY_ARN
    assert statements(d, "put") == [
        {"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"], "Resource": ARN},
        {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": KEY_ARN},
    ]
    assert statements(d, "read") == [
        {"Effect": "Allow", "Action": READ_ACTIONS, "Resource": ARN},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY_ARN},
    ]


def test_customer_key_as_an_output() -> None:
    def program() -> None:
        import pulumi_aws as aws

        key = aws.kms.Key("outbox-key", enable_key_rotation=True)
        stream = Stream("outbox", StreamArgs(kms_key_id=key.arn))
        pulumi.export("read", policy_document(stream.read_statements()))

    d = deploy(program)
    key_arn = d.named("outbox-key").outputs["arn"]
    assert d.named("outbox-stream", STREAM).inputs["kmsKeyId"] == key_arn
    assert statements(d, "read")[1] == {
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key_arn,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"mode": "SERVERLESS"},
            "StreamArgs.mode: 'SERVERLESS' is not allowed; use ON_DEMAND or PROVISIONED",
        ),
        (
            {"mode": "PROVISIONED"},
            "StreamArgs.shard_count: a PROVISIONED stream needs shard_count >= 1; got None",
        ),
        (
            {"mode": "PROVISIONED", "shard_count": 0},
            "StreamArgs.shard_count: a PROVISIONED stream needs shard_count >= 1; got 0",
        ),
        (
            {"shard_count": 4},
            "StreamArgs.shard_count: an ON_DEMAND stream manages its own shards; leave "
            r"shard_count None or use mode='PROVISIONED' \(got 4\)",
        ),
        (
            {"retention_hours": 23},
            "StreamArgs.retention_hours: 23 is outside the allowed 24..8760 hours",
        ),
        (
            {"retention_hours": 8761},
            "StreamArgs.retention_hours: 8761 is outside the allowed 24..8760 hours",
        ),
        (
            {"iterator_age_alarm_ms": 86_400_000},
            "StreamArgs.iterator_age_alarm_ms: 86400000 is not allowed; use 1..86399999 ms",
        ),
        ({"iterator_age_alarm_ms": 0}, "StreamArgs.iterator_age_alarm_ms: 0 is not allowed"),
        (
            {"kms_key_id": "alias/outbox"},
            "StreamArgs.kms_key_id: 'alias/outbox' is not allowed; use 'alias/aws/kinesis' "
            "or a KMS key ARN",
        ),
    ],
)
def test_refuses_bad_args(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamArgs(**kwargs)
