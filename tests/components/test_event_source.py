"""EventSourceMapping: mappings, the grants they make, on-failure queues, and refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from eventcraft_sandbox.mock_deploy import Deployment, RecordingMocks, Resource, deploy
from pulumi_eventcraft.event_source import (
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
    KinesisSource,
    SqsSource,
    dynamodb_insert_only,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import DeadLetterQueue, Queue, QueueArgs
from pulumi_eventcraft.stream import Stream, StreamArgs
from pulumi_eventcraft.table import Table, event_store_table, state_table

ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
PREFIX = "arn:aws:{}:us-east-1:123456789012:"
FN_ARN = PREFIX.format("lambda") + "function:project-dev-worker"
STREAM_ARN = PREFIX.format("dynamodb") + "table/events-table/stream/2026-01-01T00:00:00.000"


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "functions"
    (root / "handlers").mkdir(parents=True)
    (root / "handlers" / "worker.py").write_text("def handler(event, context):\n    pass\n")
    return root


def worker(code_dir: Path, **overrides: Any) -> Function:
    settings: dict[str, Any] = {
        "handler": "handlers.worker.handler",
        "timeout_seconds": 30,
        "code_dir": code_dir,
    }
    return Function("worker", FunctionArgs(**{**settings, **overrides}))


def statements(resource: Resource) -> list[dict[str, Any]]:
    return json.loads(resource.inputs["policy"])["Statement"]


def mapping(d: Deployment, name: str = "consume") -> Resource:
    return d.named(f"{name}-mapping", ESM)


# ---------------------------------------------------------------------------- SQS


def test_sqs_mapping_reports_batch_failures_and_grants_consume(code_dir: Path) -> None:
    def program() -> None:
        fn = worker(code_dir)
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=180))
        EventSourceMapping(
            "consume", EventSourceMappingArgs(function=fn, source=SqsSource(queue=queue))
        )

    d = deploy(program)
    component = d.named("consume", "eventcraft:index:EventSourceMapping")
    esm = mapping(d)
    assert esm.parent == component.urn
    assert esm.inputs == {
        "functionName": FN_ARN,
        "eventSourceArn": PREFIX.format("sqs") + "work-queue",
        "enabled": True,
        "batchSize": 10.0,
        "maximumBatchingWindowInSeconds": 0.0,
        "functionResponseTypes": ["ReportBatchItemFailures"],
    }
    policy = d.named("consume-read", ROLE_POLICY)
    assert policy.parent == component.urn
    assert policy.inputs["role"] == "worker-role"
    assert statements(policy) == [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": PREFIX.format("sqs") + "work-queue",
        }
    ]
    # The queue has its own DLQ and alarms: the mapping adds neither.
    assert not [
        r for r in d.descendants(component) if r.typ in (ALARM, "eventcraft:index:DeadLetterQueue")
    ]


def test_sqs_batching_and_maximum_concurrency(code_dir: Path) -> None:
    def program() -> None:
        fn = worker(code_dir, reserved_concurrency=10)
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=200))
        source = SqsSource(
            queue=queue, batch_size=100, maximum_batching_window_seconds=20, maximum_concurrency=5
        )
        EventSourceMapping("consume", EventSourceMappingArgs(function=fn, source=source))

    esm = mapping(deploy(program)).inputs
    assert esm["batchSize"] == 100.0
    assert esm["maximumBatchingWindowInSeconds"] == 20.0
    assert esm["scalingConfig"] == {"maximumConcurrency": 5.0}


def test_refuses_a_visibility_timeout_under_six_function_timeouts(code_dir: Path) -> None:
    recorder = RecordingMocks()

    def program() -> None:
        fn = worker(code_dir)
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=60))
        EventSourceMapping(
            "consume", EventSourceMappingArgs(function=fn, source=SqsSource(queue=queue))
        )

    message = (
        "source.queue: visibility timeout 60s is shorter than 6 x the function timeout 30s "
        "= 180s: a batch could reappear while it is still being processed; set the queue's "
        "visibility_timeout_seconds to at least 180 or lower the function's timeout_seconds "
        "to at most 10"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        deploy(program, mocks=recorder)
    # Nothing of the mapping was declared: not even its component.
    assert not [r for r in recorder.registrations if r.name.startswith("consume")]
    assert recorder.registrations  # (the function and queue were)


def test_visibility_check_counts_the_batching_window(code_dir: Path) -> None:
    def program() -> None:
        fn = worker(code_dir)
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=185))
        source = SqsSource(queue=queue, batch_size=50, maximum_batching_window_seconds=10)
        EventSourceMapping("consume", EventSourceMappingArgs(function=fn, source=source))

    with pytest.raises(
        ValueError,
        match=re.escape(
            "visibility timeout 185s is shorter than 6 x the function timeout 30s + the 10s "
            "batching window = 190s"
        ),
    ):
        deploy(program)


def test_refuses_more_pollers_than_reserved_concurrency(code_dir: Path) -> None:
    def program() -> None:
        fn = worker(code_dir, reserved_concurrency=3)
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=180))
        source = SqsSource(queue=queue, maximum_concurrency=10)
        EventSourceMapping("consume", EventSourceMappingArgs(function=fn, source=source))

    with pytest.raises(
        ValueError,
        match=re.escape(
            "source.maximum_concurrency: 10 exceeds the function's reserved_concurrency 3"
        ),
    ):
        deploy(program)


@pytest.mark.parametrize(
    ("fifo", "kwargs", "message"),
    [
        (False, {"batch_size": 0}, "batch_size: 0 is outside 1..10000"),
        (False, {"batch_size": 20}, "maximum_batching_window_seconds: a batch_size of 20 (> 10)"),
        (False, {"maximum_batching_window_seconds": 301}, "is outside 0..300 seconds"),
        (False, {"maximum_concurrency": 1}, "maximum_concurrency: 1 is outside 2..1000"),
        (True, {"batch_size": 11}, "batch_size: 11 is outside 1..10"),
        (
            True,
            {"maximum_batching_window_seconds": 1},
            "maximum_batching_window_seconds: 1 is outside 0..0 seconds (FIFO queues take no",
        ),
    ],
)
def test_refuses_bad_sqs_settings(fifo: bool, kwargs: dict[str, Any], message: str) -> None:
    def program() -> None:
        queue = Queue("work", QueueArgs(visibility_timeout_seconds=180, fifo=fifo))
        SqsSource(queue=queue, **kwargs)

    with pytest.raises(ValueError, match=re.escape(message)):
        deploy(program)


# ------------------------------------------------------------------ DynamoDB stream


def test_dynamodb_stream_mapping_is_bounded_and_dead_letters(code_dir: Path) -> None:
    topic = PREFIX.format("sns") + "alerts"

    def program() -> None:
        fn = worker(code_dir)
        table = Table("events", event_store_table())
        source = DynamoDbStreamSource(stream=table, filter_patterns=[dynamodb_insert_only()])
        EventSourceMapping(
            "project",
            EventSourceMappingArgs(function=fn, source=source, alarm_actions=[topic]),
        )

    d = deploy(program)
    component = d.named("project", "eventcraft:index:EventSourceMapping")
    failures_arn = PREFIX.format("sqs") + "project-failures-queue"
    assert mapping(d, "project").inputs == {
        "functionName": FN_ARN,
        "eventSourceArn": STREAM_ARN,
        "enabled": True,
        "startingPosition": "TRIM_HORIZON",
        "batchSize": 100.0,
        "maximumBatchingWindowInSeconds": 0.0,
        "functionResponseTypes": ["ReportBatchItemFailures"],
        "bisectBatchOnFunctionError": True,
        "maximumRetryAttempts": 5.0,
        "maximumRecordAgeInSeconds": 3600.0,
        "parallelizationFactor": 1.0,
        "filterCriteria": {"filters": [{"pattern": '{"eventName":["INSERT"]}'}]},
        "destinationConfig": {"onFailure": {"destinationArn": failures_arn}},
    }
    failures = d.named("project-failures", "eventcraft:index:DeadLetterQueue")
    assert failures.parent == component.urn
    assert d.named("project-failures-alarm", ALARM).inputs["alarmActions"] == [topic]
    assert statements(d.named("project-read", ROLE_POLICY)) == [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ],
            "Resource": STREAM_ARN,
        },
        # Lambda sends failure records with the function's role.
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": failures_arn},
    ]
    lag = d.named("project-iterator-age", ALARM)
    assert lag.parent == component.urn
    assert lag.inputs["namespace"] == "AWS/Lambda"
    assert lag.inputs["metricName"] == "IteratorAge"
    assert lag.inputs["dimensions"] == {"FunctionName": "project-dev-worker"}
    assert lag.inputs["threshold"] == 300_000.0
    assert lag.inputs["statistic"] == "Maximum"
    assert lag.inputs["alarmActions"] == [topic]


def test_dynamodb_stream_by_arn_with_a_given_failure_queue(code_dir: Path) -> None:
    def program() -> None:
        fn = worker(code_dir)
        dlq = DeadLetterQueue("shared-failures")
        source = DynamoDbStreamSource(
            stream=STREAM_ARN,
            starting_position="LATEST",
            batch_size=10,
            bisect_on_error=False,
            maximum_retry_attempts=0,
            maximum_record_age_seconds=60,
            parallelization_factor=10,
            on_failure=dlq,
        )
        EventSourceMapping(
            "project", EventSourceMappingArgs(function=fn, source=source, alarms=False)
        )

    d = deploy(program)
    esm = mapping(d, "project").inputs
    assert esm["startingPosition"] == "LATEST"
    assert esm["bisectBatchOnFunctionError"] is False
    assert (esm["maximumRetryAttempts"], esm["maximumRecordAgeInSeconds"]) == (0.0, 60.0)
    assert esm["parallelizationFactor"] == 10.0
    assert "filterCriteria" not in esm
    shared = PREFIX.format("sqs") + "shared-failures-queue"
    assert esm["destinationConfig"] == {"onFailure": {"destinationArn": shared}}
    assert not d.of_type("eventcraft:index:DeadLetterQueue")[1:]
    assert statements(d.named("project-read", ROLE_POLICY))[0]["Resource"] == STREAM_ARN
    assert statements(d.named("project-read", ROLE_POLICY))[1]["Resource"] == shared
    assert not [a for a in d.of_type(ALARM) if a.name.startswith("project-")]


# ----------------------------------------------------------------------- Kinesis


def test_kinesis_mapping_grants_the_streams_read_statements(code_dir: Path) -> None:
    def program() -> None:
        fn = worker(code_dir)
        stream = Stream("clicks", StreamArgs())
        source = KinesisSource(stream=stream, parallelization_factor=4, batch_size=500)
        EventSourceMapping("read-clicks", EventSourceMappingArgs(function=fn, source=source))

    d = deploy(program)
    stream_arn = PREFIX.format("kinesis") + "stream/clicks-stream"
    failures_arn = PREFIX.format("sqs") + "read-clicks-failures-queue"
    esm = mapping(d, "read-clicks").inputs
    assert esm["eventSourceArn"] == stream_arn
    assert esm["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["parallelizationFactor"] == 4.0
    assert esm["batchSize"] == 500.0
    assert esm["maximumRetryAttempts"] == 5.0
    assert esm["destinationConfig"] == {"onFailure": {"destinationArn": failures_arn}}
    read = statements(d.named("read-clicks-read", ROLE_POLICY))
    assert read[0] == {
        "Effect": "Allow",
        "Action": [
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
        ],
        "Resource": stream_arn,
    }
    assert read[1] == {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": failures_arn}
    # The Stream alarms on consumer lag itself; the mapping does not add a second alarm.
    assert not [a for a in d.of_type(ALARM) if a.name == "read-clicks-iterator-age"]


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"maximum_retry_attempts": -1},
            "maximum_retry_attempts: -1 (infinite retries) is refused: a failing record would "
            "block its shard; use 0..10000 (default 5)",
        ),
        ({"maximum_retry_attempts": 10_001}, "maximum_retry_attempts: 10001 is outside 0..10000"),
        (
            {"maximum_record_age_seconds": -1},
            "maximum_record_age_seconds: -1 (no age limit) is refused",
        ),
        (
            {"maximum_record_age_seconds": 59},
            "maximum_record_age_seconds: 59 is outside 60..604800 seconds",
        ),
        ({"parallelization_factor": 11}, "parallelization_factor: 11 is outside 1..10"),
        ({"batch_size": 10_001}, "batch_size: 10001 is outside 1..10000"),
        (
            {"starting_position": "AT_TIMESTAMP"},
            "starting_position: 'AT_TIMESTAMP' is not allowed; use one of TRIM_HORIZON, LATEST",
        ),
        (
            {"filter_patterns": [{"eventName": "INSERT"}]},
            "filter_patterns[0]: eventName: must be an array of match values",
        ),
        (
            {"filter_patterns": [dynamodb_insert_only()] * 6},
            "filter_patterns: 6 patterns; a mapping takes at most 5",
        ),
        (
            {"stream": "arn:aws:dynamodb:us-east-1:123456789012:table/x"},
            "is not a DynamoDB stream ARN",
        ),
    ],
)
def test_refuses_unbounded_or_invalid_stream_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DynamoDbStreamSource(**{"stream": STREAM_ARN, **kwargs})


def test_refuses_a_table_without_stream_and_fifo_failure_queues() -> None:
    def no_stream() -> None:
        DynamoDbStreamSource(stream=Table("plain", state_table("pk")))

    with pytest.raises(
        ValueError,
        match=re.escape("stream: the table has no stream; set TableArgs.stream_view_type"),
    ):
        deploy(no_stream)

    def fifo_failures() -> None:
        from pulumi_eventcraft.queue import DeadLetterQueueArgs

        DynamoDbStreamSource(
            stream=STREAM_ARN, on_failure=DeadLetterQueue("f", DeadLetterQueueArgs(fifo=True))
        )

    with pytest.raises(
        ValueError,
        match=re.escape("on_failure: a stream's on-failure destination cannot be a FIFO queue"),
    ):
        deploy(fifo_failures)


def test_dynamodb_insert_only() -> None:
    assert dynamodb_insert_only() == {"eventName": ["INSERT"]}
