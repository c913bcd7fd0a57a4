"""Queue and DeadLetterQueue: what `pulumi preview` shows, policies, and refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import ACCOUNT_ID, Deployment, RecordingMocks, deploy
from pulumi_eventcraft.iam import policy_document
from pulumi_eventcraft.queue import (
    QUEUE_ACTIONS,
    DeadLetterQueue,
    DeadLetterQueueArgs,
    Queue,
    QueueArgs,
    QueueSender,
)

QUEUE = "aws:sqs/queue:Queue"
POLICY = "aws:sqs/queuePolicy:QueuePolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SQS = f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}"
URL = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT_ID}"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
RULE_ARN = f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/orders/placed"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:ops"

DENY_NON_TLS = {
    "Effect": "Deny",
    "Sid": "DenyInsecureTransport",
    "Principal": "*",
    "Action": list(QUEUE_ACTIONS),
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def deny_non_tls(arn: str) -> dict[str, Any]:
    return {**DENY_NON_TLS, "Resource": arn}


def run(build: Callable[[], Any]) -> Deployment:
    """Deploy `build()`'s component and export its access statements as documents."""

    def program() -> None:
        component = build()
        pulumi.export("send", policy_document(component.send_statements()))
        pulumi.export("consume", policy_document(component.consume_statements()))

    return deploy(program)


def statements(d: Deployment, key: str) -> list[dict[str, Any]]:
    return json.loads(d.outputs[key])["Statement"]


def policy_of(d: Deployment, name: str) -> list[dict[str, Any]]:
    return json.loads(d.named(name, POLICY).inputs["policy"])["Statement"]


# --- DeadLetterQueue -------------------------------------------------------------------


def test_dead_letter_queue_defaults() -> None:
    d = run(lambda: DeadLetterQueue("events-dlq"))
    component = d.named("events-dlq", "eventcraft:index:DeadLetterQueue")
    assert sorted(r.name for r in d.children(component)) == [
        "events-dlq-alarm",
        "events-dlq-policy",
        "events-dlq-queue",
    ]
    queue = d.named("events-dlq-queue", QUEUE)
    assert queue.inputs == {
        "fifoQueue": False,
        "messageRetentionSeconds": 1_209_600.0,
        "receiveWaitTimeSeconds": 20.0,
        "sqsManagedSseEnabled": True,
    }
    assert policy_of(d, "events-dlq-policy") == [deny_non_tls(f"{SQS}:events-dlq-queue")]
    assert d.named("events-dlq-policy", POLICY).inputs["queueUrl"] == f"{URL}/events-dlq-queue"


def test_dead_letter_queue_alarm_fires_on_the_first_message() -> None:
    d = run(lambda: DeadLetterQueue("events-dlq", DeadLetterQueueArgs(alarm_actions=[TOPIC_ARN])))
    alarm = d.named("events-dlq-alarm", ALARM)
    assert alarm.parent == d.named("events-dlq", "eventcraft:index:DeadLetterQueue").urn
    assert alarm.inputs["namespace"] == "AWS/SQS"
    assert alarm.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm.inputs["dimensions"] == {"QueueName": "events-dlq-queue"}
    assert alarm.inputs["statistic"] == "Maximum"
    assert alarm.inputs["threshold"] == 1.0
    assert alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm.inputs["treatMissingData"] == "notBreaching"
    assert alarm.inputs["alarmActions"] == [TOPIC_ARN]
    assert alarm.inputs["okActions"] == [TOPIC_ARN]


def test_dead_letter_queue_senders_are_scoped_to_their_source() -> None:
    d = run(
        lambda: DeadLetterQueue(
            "events-dlq",
            DeadLetterQueueArgs(
                senders=[
                    QueueSender("events.amazonaws.com", RULE_ARN),
                    QueueSender("sns.amazonaws.com", TOPIC_ARN),
                ],
                alarm_threshold=10,
            ),
        )
    )
    arn = f"{SQS}:events-dlq-queue"
    assert policy_of(d, "events-dlq-policy") == [
        deny_non_tls(arn),
        {
            "Effect": "Allow",
            "Sid": "AllowSendMessage0",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
        },
        {
            "Effect": "Allow",
            "Sid": "AllowSendMessage1",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": TOPIC_ARN}},
        },
    ]
    assert d.named("events-dlq-alarm", ALARM).inputs["threshold"] == 10.0


def test_dead_letter_queue_fifo_with_kms_key_and_no_alarm() -> None:
    d = run(
        lambda: DeadLetterQueue(
            "steps-dlq",
            DeadLetterQueueArgs(
                fifo=True, retention_seconds=86_400, kms_master_key_id=KEY_ARN, alarms=False
            ),
        )
    )
    queue = d.named("steps-dlq-queue", QUEUE)
    assert queue.inputs["fifoQueue"] is True
    assert queue.outputs["name"] == "steps-dlq-queue.fifo"
    assert queue.inputs["messageRetentionSeconds"] == 86_400.0
    assert queue.inputs["kmsMasterKeyId"] == KEY_ARN
    assert "sqsManagedSseEnabled" not in queue.inputs
    assert d.of_type(ALARM) == []
    # With a customer key, the KMS actions come with the SQS ones, scoped to the key.
    arn = f"{SQS}:steps-dlq-queue.fifo"
    assert statements(d, "send") == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn},
        {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": KEY_ARN},
    ]
    assert statements(d, "consume")[1] == {
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": KEY_ARN,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"retention_seconds": 59},
            "DeadLetterQueueArgs.retention_seconds: 59 is outside the allowed 60..1209600 seconds",
        ),
        (
            {"retention_seconds": 1_209_601},
            "DeadLetterQueueArgs.retention_seconds: 1209601 is outside",
        ),
        ({"alarm_threshold": 0}, "DeadLetterQueueArgs.alarm_threshold: 0 is not allowed"),
        (
            {"kms_master_key_id": "alias/aws/sqs"},
            "DeadLetterQueueArgs.kms_master_key_id: 'alias/aws/sqs' is not a KMS key ARN",
        ),
    ],
)
def test_dead_letter_queue_refuses_bad_args(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeadLetterQueueArgs(**kwargs)


@pytest.mark.parametrize(
    ("service", "source_arn", "message"),
    [
        ("*", RULE_ARN, r"QueueSender.service: '\*' is not an AWS service principal"),
        ("events", RULE_ARN, "QueueSender.service: 'events' is not an AWS service principal"),
        (
            "events.amazonaws.com",
            f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/*",
            "QueueSender.source_arn: .* must be the ARN of one resource",
        ),
        ("events.amazonaws.com", "placed", "QueueSender.source_arn: 'placed' must be the ARN"),
    ],
)
def test_queue_sender_refuses_bad_args(service: str, source_arn: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueueSender(service, source_arn)


# --- Queue -----------------------------------------------------------------------------


def test_queue_defaults_create_its_own_dead_letter_queue() -> None:
    d = run(lambda: Queue("orders", QueueArgs(visibility_timeout_seconds=180)))
    component = d.named("orders", "eventcraft:index:Queue")
    assert sorted(r.name for r in d.children(component)) == [
        "orders-age-alarm",
        "orders-dlq",
        "orders-policy",
        "orders-queue",
        "orders-redrive-allow",
    ]
    queue = d.named("orders-queue", QUEUE)
    assert queue.inputs == {
        "fifoQueue": False,
        "visibilityTimeoutSeconds": 180.0,
        "messageRetentionSeconds": 345_600.0,
        "receiveWaitTimeSeconds": 20.0,
        "delaySeconds": 0.0,
        "sqsManagedSseEnabled": True,
        "redrivePolicy": queue.inputs["redrivePolicy"],
    }
    assert json.loads(queue.inputs["redrivePolicy"]) == {
        "deadLetterTargetArn": f"{SQS}:orders-dlq-queue",
        "maxReceiveCount": 5,
    }
    dlq = d.named("orders-dlq-queue", QUEUE)
    assert dlq.parent == d.named("orders-dlq", "eventcraft:index:DeadLetterQueue").urn
    assert dlq.inputs["messageRetentionSeconds"] == 1_209_600.0
    assert dlq.inputs["fifoQueue"] is False


def test_queue_redrive_allow_names_only_the_source_queue() -> None:
    d = run(lambda: Queue("orders", QueueArgs(visibility_timeout_seconds=30)))
    allow = d.named("orders-redrive-allow", "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy")
    assert allow.inputs["queueUrl"] == f"{URL}/orders-dlq-queue"
    assert json.loads(allow.inputs["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [f"{SQS}:orders-queue"],
    }


def test_queue_policy_is_tls_only_plus_senders() -> None:
    d = run(
        lambda: Queue(
            "orders",
            QueueArgs(
                visibility_timeout_seconds=30,
                senders=[QueueSender("events.amazonaws.com", RULE_ARN)],
            ),
        )
    )
    arn = f"{SQS}:orders-queue"
    assert policy_of(d, "orders-policy") == [
        deny_non_tls(arn),
        {
            "Effect": "Allow",
            "Sid": "AllowSendMessage0",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
        },
    ]
    # The DLQ created for it accepts no service senders: only SQS redrive fills it.
    assert policy_of(d, "orders-dlq-policy") == [deny_non_tls(f"{SQS}:orders-dlq-queue")]


def test_queue_statements_are_exact_and_scoped() -> None:
    d = run(lambda: Queue("orders", QueueArgs(visibility_timeout_seconds=30)))
    arn = f"{SQS}:orders-queue"
    assert statements(d, "send") == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}
    ]
    assert statements(d, "consume") == [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": arn,
        }
    ]


def test_queue_with_kms_key_grants_key_use_and_encrypts_its_dlq_too() -> None:
    d = run(
        lambda: Queue("orders", QueueArgs(visibility_timeout_seconds=30, kms_master_key_id=KEY_ARN))
    )
    assert d.named("orders-queue", QUEUE).inputs["kmsMasterKeyId"] == KEY_ARN
    assert d.named("orders-dlq-queue", QUEUE).inputs["kmsMasterKeyId"] == KEY_ARN
    assert statements(d, "send")[1] == {
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": KEY_ARN,
    }
    assert statements(d, "consume")[1] == {
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": KEY_ARN,
    }


def test_queue_age_alarm_defaults_to_half_the_retention() -> None:
    d = run(
        lambda: Queue("orders", QueueArgs(visibility_timeout_seconds=30, alarm_actions=[TOPIC_ARN]))
    )
    alarm = d.named("orders-age-alarm", ALARM)
    assert alarm.parent == d.named("orders", "eventcraft:index:Queue").urn
    assert alarm.inputs["metricName"] == "ApproximateAgeOfOldestMessage"
    assert alarm.inputs["dimensions"] == {"QueueName": "orders-queue"}
    assert alarm.inputs["threshold"] == 172_800.0
    assert alarm.inputs["statistic"] == "Maximum"
    assert alarm.inputs["alarmActions"] == [TOPIC_ARN]
    # The DLQ it created carries the same alarm settings.
    dlq_alarm = d.named("orders-dlq-alarm", ALARM)
    assert dlq_alarm.inputs["alarmActions"] == [TOPIC_ARN]
    assert dlq_alarm.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"


def test_queue_without_alarms_has_none_anywhere() -> None:
    d = run(
        lambda: Queue(
            "orders", QueueArgs(visibility_timeout_seconds=30, alarms=False, age_alarm_seconds=600)
        )
    )
    assert d.of_type(ALARM) == []


def test_fifo_queue_high_throughput() -> None:
    d = run(
        lambda: Queue(
            "steps",
            QueueArgs(
                visibility_timeout_seconds=60,
                fifo=True,
                content_based_deduplication=True,
                high_throughput=True,
                max_receive_count=3,
                age_alarm_seconds=900,
            ),
        )
    )
    queue = d.named("steps-queue", QUEUE)
    assert queue.outputs["name"] == "steps-queue.fifo"
    assert queue.inputs["fifoQueue"] is True
    assert queue.inputs["contentBasedDeduplication"] is True
    assert queue.inputs["deduplicationScope"] == "messageGroup"
    assert queue.inputs["fifoThroughputLimit"] == "perMessageGroupId"
    assert json.loads(queue.inputs["redrivePolicy"]) == {
        "deadLetterTargetArn": f"{SQS}:steps-dlq-queue.fifo",
        "maxReceiveCount": 3,
    }
    assert d.named("steps-dlq-queue", QUEUE).inputs["fifoQueue"] is True
    assert d.named("steps-age-alarm", ALARM).inputs["threshold"] == 900.0


def test_fifo_queue_defaults_to_queue_scoped_deduplication() -> None:
    d = run(lambda: Queue("steps", QueueArgs(visibility_timeout_seconds=60, fifo=True)))
    queue = d.named("steps-queue", QUEUE)
    assert queue.inputs["contentBasedDeduplication"] is False
    assert queue.inputs["deduplicationScope"] == "queue"
    assert queue.inputs["fifoThroughputLimit"] == "perQueue"


def test_queue_uses_a_given_dead_letter_queue_without_redrive_allow() -> None:
    def build() -> Queue:
        shared = DeadLetterQueue("shared-dlq")
        Queue("payments", QueueArgs(visibility_timeout_seconds=30, dead_letter=shared))
        return Queue("orders", QueueArgs(visibility_timeout_seconds=30, dead_letter=shared))

    d = run(build)
    assert len(d.of_type("eventcraft:index:DeadLetterQueue")) == 1
    for name in ("orders", "payments"):
        queue = d.named(f"{name}-queue", QUEUE)
        assert json.loads(queue.inputs["redrivePolicy"])["deadLetterTargetArn"] == (
            f"{SQS}:shared-dlq-queue"
        )
    # Two queues share it: one redrive-allow policy each would overwrite the other.
    assert d.of_type("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy") == []


def test_fifo_dead_letter_queue_may_keep_messages_shorter() -> None:
    # FIFO queues reset the enqueue timestamp when a message moves to the DLQ.
    def build() -> Queue:
        dlq = DeadLetterQueue("steps-dlq", DeadLetterQueueArgs(fifo=True, retention_seconds=60))
        return Queue("steps", QueueArgs(visibility_timeout_seconds=30, fifo=True, dead_letter=dlq))

    d = run(build)
    assert d.named("steps-dlq-queue", QUEUE).inputs["messageRetentionSeconds"] == 60.0


@pytest.mark.parametrize(
    ("queue_fifo", "dlq_fifo", "message"),
    [
        (
            True,
            False,
            "QueueArgs.dead_letter: FIFO queue 'orders' needs a FIFO dead-letter queue; "
            "got standard 'x-dlq'",
        ),
        (
            False,
            True,
            "QueueArgs.dead_letter: standard queue 'orders' needs a standard dead-letter "
            "queue; got FIFO 'x-dlq'",
        ),
    ],
)
def test_queue_refuses_a_dead_letter_queue_of_the_other_kind(
    queue_fifo: bool, dlq_fifo: bool, message: str
) -> None:
    def program() -> None:
        dlq = DeadLetterQueue("x-dlq", DeadLetterQueueArgs(fifo=dlq_fifo))
        Queue("orders", QueueArgs(visibility_timeout_seconds=30, fifo=queue_fifo, dead_letter=dlq))

    with pytest.raises(ValueError, match=message):
        deploy(program)


def test_queue_refuses_before_declaring_anything() -> None:
    mocks = RecordingMocks()

    def program() -> None:
        dlq = DeadLetterQueue("x-dlq", DeadLetterQueueArgs(fifo=True))
        Queue("orders", QueueArgs(visibility_timeout_seconds=30, dead_letter=dlq))

    with pytest.raises(ValueError, match="needs a standard dead-letter queue"):
        deploy(program, mocks=mocks)
    # Only the given DLQ was declared: no part of 'orders' reached the engine.
    assert not [r for r in mocks.registrations if r.name.startswith("orders")]


def test_queue_refuses_a_standard_dlq_that_expires_messages_early() -> None:
    def program() -> None:
        dlq = DeadLetterQueue("x-dlq", DeadLetterQueueArgs(retention_seconds=86_400))
        Queue("orders", QueueArgs(visibility_timeout_seconds=30, dead_letter=dlq))

    with pytest.raises(
        ValueError,
        match=r"QueueArgs.dead_letter: 'x-dlq' keeps messages 86400 s, less than queue "
        r"'orders' \(345600 s\)",
    ):
        deploy(program)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"visibility_timeout_seconds": -1},
            "QueueArgs.visibility_timeout_seconds: -1 is outside the allowed 0..43200 seconds",
        ),
        (
            {"visibility_timeout_seconds": 43_201},
            "QueueArgs.visibility_timeout_seconds: 43201 is outside the allowed 0..43200",
        ),
        (
            {"max_receive_count": 0},
            "QueueArgs.max_receive_count: 0 is outside the allowed 1..1000",
        ),
        (
            {"max_receive_count": 1001},
            "QueueArgs.max_receive_count: 1001 is outside the allowed 1..1000",
        ),
        (
            {"message_retention_seconds": 59},
            "QueueArgs.message_retention_seconds: 59 is outside the allowed 60..1209600",
        ),
        (
            {"message_retention_seconds": 1_209_601},
            "QueueArgs.message_retention_seconds: 1209601 is outside",
        ),
        (
            {"receive_wait_time_seconds": 21},
            "QueueArgs.receive_wait_time_seconds: 21 is outside the allowed 0..20 seconds",
        ),
        ({"delay_seconds": 901}, "QueueArgs.delay_seconds: 901 is outside the allowed 0..900"),
        (
            {"content_based_deduplication": True},
            "QueueArgs.content_based_deduplication: only FIFO queues support it; set "
            "fifo=True or leave it False",
        ),
        (
            {"high_throughput": True},
            "QueueArgs.high_throughput: only FIFO queues support it",
        ),
        (
            {"age_alarm_seconds": 345_600},
            "QueueArgs.age_alarm_seconds: 345600 is outside the allowed 60..345599 seconds",
        ),
        (
            {"kms_master_key_id": "alias/orders"},
            "QueueArgs.kms_master_key_id: 'alias/orders' is not a KMS key ARN",
        ),
    ],
)
def test_queue_refuses_bad_args(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueueArgs(**{"visibility_timeout_seconds": 30, **kwargs})


def test_queue_exposes_plain_settings_for_consumers() -> None:
    seen: dict[str, Any] = {}

    def build() -> Queue:
        queue = Queue("orders", QueueArgs(visibility_timeout_seconds=180, max_receive_count=7))
        seen.update(
            visibility=queue.visibility_timeout_seconds,
            receives=queue.max_receive_count,
            fifo=queue.fifo,
        )
        pulumi.export("url", queue.url)
        pulumi.export("dlq_url", queue.dlq.url)
        pulumi.export("name", queue.name)
        return queue

    d = run(build)
    assert seen == {"visibility": 180, "receives": 7, "fifo": False}
    assert d.outputs["url"] == f"{URL}/orders-queue"
    assert d.outputs["dlq_url"] == f"{URL}/orders-dlq-queue"
    assert d.outputs["name"] == "orders-queue"
