"""OutboxRelay: the function, stream mapping, grants and alarms a user sees in
`pulumi preview`, its sweeper and schedule, and the tables and settings it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from eventcraft_sandbox.mock_deploy import Deployment, RecordingMocks, deploy
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.function import FunctionArgs
from pulumi_eventcraft.iam import find_violations
from pulumi_eventcraft.outbox_relay import (
    INSERT_FILTER,
    OUTBOX_KEY,
    OUTBOX_KEY_PREFIX,
    OUTBOX_TTL_ATTRIBUTE,
    OutboxRelay,
    OutboxRelayArgs,
)
from pulumi_eventcraft.queue import DeadLetterQueue
from pulumi_eventcraft.table import OUTBOX_PENDING_INDEX, Table, outbox_table, state_table

ACCOUNT = "123456789012"
FUNCTION = "aws:lambda/function:Function"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
QUEUE = "aws:sqs/queue:Queue"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/outbox-table"
STREAM_ARN = f"{TABLE_ARN}/stream/2026-01-01T00:00:00.000"
BUS_ARN = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/orders-bus"
DLQ_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:relay-stream-failures-queue"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
INDEX_ARN = f"{TABLE_ARN}/index/pending"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PERMISSION = "aws:lambda/permission:Permission"


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """A code root with the relay handler module (the real one lives in functions/)."""
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "outbox_relay.py").write_text(
        "def handler(event, context):\n    return {'batchItemFailures': []}\n"
    )
    (tmp_path / "handlers" / "outbox_sweeper.py").write_text(
        "def handler(event, context):\n    return {}\n"
    )
    return tmp_path


def sweeper_args(code_dir: Path, **overrides: Any) -> FunctionArgs:
    return FunctionArgs(
        handler="handlers.outbox_sweeper.handler",
        timeout_seconds=300,
        code_dir=code_dir,
        **overrides,
    )


def relay_program(
    code_dir: Path, table_args: Any = None, **overrides: Any
) -> tuple[Deployment, RecordingMocks]:
    mocks = RecordingMocks()

    def program() -> None:
        table = Table("outbox", table_args or outbox_table())
        bus = EventBus("orders", EventBusArgs(archive=False))
        args: dict[str, Any] = {
            "table": table,
            "bus": bus,
            "function": FunctionArgs(
                handler="handlers.outbox_relay.handler", timeout_seconds=60, code_dir=code_dir
            ),
            # The relay alone unless a test asks for the sweeper.
            "sweeper": False,
            "alarm_actions": ["arn:aws:sns:us-east-1:123456789012:alerts"],
            **overrides,
        }
        if args.get("sweeper") == "default":
            args["sweeper"] = sweeper_args(code_dir)
        if args.get("dead_letter_queue") == "own":
            args["dead_letter_queue"] = DeadLetterQueue("own-dlq")
        relay = OutboxRelay("relay", OutboxRelayArgs(**args))
        pulumi.export("dlq", relay.dead_letter_queue.arn)
        pulumi.export("functionArn", relay.function.arn)

    return deploy(program, mocks=mocks), mocks


def role_statements(d: Deployment, role_id: str = "relay-function-role") -> list[dict[str, Any]]:
    """Every statement of every inline policy of the relay function's role (or another)."""
    found = []
    for policy in d.of_type(ROLE_POLICY):
        if policy.inputs["role"] == role_id:
            doc = json.loads(policy.inputs["policy"])
            assert find_violations(doc) == []
            found.extend(doc["Statement"])
    return found


def actions_on(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """resource -> the actions allowed on it."""
    allowed: dict[str, set[str]] = {}
    for st in statements:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        for resource in resources:
            allowed.setdefault(resource, set()).update(actions)
    return allowed


def test_the_stream_feeds_the_relay_function_insert_records_only(code_dir: Path) -> None:
    d, _ = relay_program(code_dir)
    mapping = d.named("relay-stream-mapping", MAPPING)
    assert mapping.parent == d.named("relay-stream").urn
    assert mapping.inputs["eventSourceArn"] == STREAM_ARN
    assert mapping.inputs["functionName"] == d.outputs["functionArn"]
    assert mapping.inputs["startingPosition"] == "TRIM_HORIZON"
    assert mapping.inputs["batchSize"] == 100
    assert mapping.inputs["maximumBatchingWindowInSeconds"] == 0
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.inputs["bisectBatchOnFunctionError"] is True
    assert mapping.inputs["maximumRetryAttempts"] == 10
    assert mapping.inputs["maximumRecordAgeInSeconds"] == 3600
    assert mapping.inputs["parallelizationFactor"] == 1
    (pattern,) = [json.loads(f["pattern"]) for f in mapping.inputs["filterCriteria"]["filters"]]
    assert pattern == {
        "eventName": ["INSERT"],
        "dynamodb": {"NewImage": {"pk": {"S": [{"prefix": "outbox#"}]}}},
    }
    assert mapping.inputs["destinationConfig"] == {"onFailure": {"destinationArn": DLQ_ARN}}
    assert d.outputs["dlq"] == DLQ_ARN


def test_the_function_is_told_which_bus_and_table(code_dir: Path) -> None:
    d, _ = relay_program(code_dir)
    (fn,) = d.of_type(FUNCTION)
    assert fn.parent == d.named("relay-function").urn
    assert fn.inputs["handler"] == "handlers.outbox_relay.handler"
    assert fn.inputs["timeout"] == 60
    variables = fn.inputs["environment"]["variables"]
    assert variables["EVENT_BUS_NAME"] == "orders-bus"
    assert variables["OUTBOX_TABLE"] == "outbox-table"


def test_the_role_may_read_the_stream_put_on_the_bus_mark_rows_and_nothing_else(
    code_dir: Path,
) -> None:
    d, _ = relay_program(code_dir)
    allowed = actions_on(role_statements(d))
    log_group = (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/project-dev-relay-function"
    )
    assert allowed == {
        # The Function's own: its log group and traces.
        f"{log_group}:*": {"logs:CreateLogStream", "logs:PutLogEvents"},
        "*": {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},
        # The relay's.
        STREAM_ARN: {
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        },
        DLQ_ARN: {"sqs:SendMessage"},
        BUS_ARN: {"events:PutEvents"},
        # Marking a row published: one UpdateItem, no PutItem, DeleteItem or reads.
        TABLE_ARN: {"dynamodb:UpdateItem"},
    }


def test_the_mapping_waits_for_its_read_grant(code_dir: Path) -> None:
    # Lambda checks the role when the mapping is created: the grant is a child of the
    # mapping component, created by it before the mapping (see event_source.py).
    d, _ = relay_program(code_dir)
    read = d.named("relay-stream-read", ROLE_POLICY)
    assert read.parent == d.named("relay-stream").urn
    names = [r.name for r in d]
    assert names.index("relay-stream-read") < names.index("relay-stream-mapping")


def test_a_customer_key_on_the_table_is_usable_for_marking(code_dir: Path) -> None:
    d, _ = relay_program(code_dir, outbox_table(kms_key_arn=KEY_ARN))
    allowed = actions_on(role_statements(d))
    assert allowed[TABLE_ARN] == {"dynamodb:UpdateItem"}
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= allowed[KEY_ARN]


def test_lag_failures_and_errors_raise_alarms(code_dir: Path) -> None:
    d, _ = relay_program(code_dir)
    age = d.named("relay-stream-iterator-age", ALARM)
    assert age.inputs["namespace"] == "AWS/Lambda"
    assert age.inputs["metricName"] == "IteratorAge"
    assert age.inputs["dimensions"] == {"FunctionName": "project-dev-relay-function"}
    assert age.inputs["threshold"] == 300_000  # 300 s, in milliseconds
    assert age.inputs["statistic"] == "Maximum"
    assert age.inputs["alarmActions"] == ["arn:aws:sns:us-east-1:123456789012:alerts"]
    dlq = d.named("relay-stream-failures-alarm", ALARM)
    assert dlq.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq.inputs["threshold"] == 1
    metrics = sorted(a.inputs["metricName"] for a in d.of_type(ALARM))
    assert metrics == [
        "ApproximateNumberOfMessagesVisible",
        "Errors",
        "IteratorAge",
        "Throttles",
    ]


def test_settings_reach_the_mapping(code_dir: Path) -> None:
    d, _ = relay_program(
        code_dir,
        starting_position="LATEST",
        batch_size=10,
        maximum_batching_window_seconds=2,
        maximum_retry_attempts=3,
        maximum_record_age_seconds=600,
        bisect_on_error=False,
        parallelization_factor=2,
        iterator_age_alarm_seconds=60,
    )
    mapping = d.named("relay-stream-mapping", MAPPING).inputs
    assert (
        mapping["startingPosition"],
        mapping["batchSize"],
        mapping["maximumBatchingWindowInSeconds"],
        mapping["maximumRetryAttempts"],
        mapping["maximumRecordAgeInSeconds"],
        mapping["bisectBatchOnFunctionError"],
        mapping["parallelizationFactor"],
    ) == ("LATEST", 10, 2, 3, 600, False, 2)
    assert d.named("relay-stream-iterator-age", ALARM).inputs["threshold"] == 60_000


def test_a_given_dead_letter_queue_is_used_instead_of_a_new_one(code_dir: Path) -> None:
    d, _ = relay_program(code_dir, dead_letter_queue="own")
    own = "arn:aws:sqs:us-east-1:123456789012:own-dlq-queue"
    mapping = d.named("relay-stream-mapping", MAPPING)
    assert mapping.inputs["destinationConfig"] == {"onFailure": {"destinationArn": own}}
    assert [q.name for q in d.of_type(QUEUE)] == ["own-dlq-queue"]
    assert d.outputs["dlq"] == own


def test_alarms_off_for_the_mapping_and_its_queue(code_dir: Path) -> None:
    d, _ = relay_program(
        code_dir,
        alarms=False,
        function=FunctionArgs(
            handler="handlers.outbox_relay.handler",
            timeout_seconds=60,
            code_dir=code_dir,
            alarms=False,
        ),
    )
    assert d.of_type(ALARM) == []


def test_the_row_layout_matches_eventkit_outbox() -> None:
    from eventcraft import outbox

    assert (OUTBOX_KEY, OUTBOX_KEY_PREFIX, OUTBOX_TTL_ATTRIBUTE) == (
        outbox.PK,
        outbox.PK_PREFIX,
        outbox.TTL_ATTRIBUTE,
    )
    assert INSERT_FILTER["dynamodb"]["NewImage"][outbox.PK] == {"S": [{"prefix": outbox.PK_PREFIX}]}


@pytest.mark.parametrize(
    ("table_args", "overrides", "message"),
    [
        (
            state_table("pk"),
            {},
            r"OutboxRelayArgs.table: 'outbox' has stream view None; the relay reads the new row",
        ),
        (
            outbox_table(stream_view_type="KEYS_ONLY"),
            {},
            r"has stream view 'KEYS_ONLY'",
        ),
        (
            state_table("orderId", stream="NEW_IMAGE", ttl_attribute="expiresAt"),
            {},
            r"'outbox' must be keyed by 'pk' alone",
        ),
        (
            outbox_table(ttl_attribute="ttl"),
            {},
            r"has TTL attribute 'ttl'; the relay sets 'expiresAt'",
        ),
        (None, {"batch_size": 0}, r"OutboxRelayArgs.batch_size: 0 is outside 1..10000"),
        (
            None,
            {"maximum_retry_attempts": -1},
            r"OutboxRelayArgs.maximum_retry_attempts: -1 \(infinite retries\) is refused",
        ),
        (
            None,
            {"maximum_record_age_seconds": -1},
            r"OutboxRelayArgs.maximum_record_age_seconds: -1 \(no age limit\) is refused",
        ),
        (
            None,
            {"starting_position": "AT_TIMESTAMP"},
            r"OutboxRelayArgs.starting_position: 'AT_TIMESTAMP' is not allowed",
        ),
        (
            None,
            {"iterator_age_alarm_seconds": 0},
            r"OutboxRelayArgs.iterator_age_alarm_seconds: 0 is outside 1..604800 seconds",
        ),
        (None, {"function": {"handler": "x"}}, r"OutboxRelayArgs.function: expected FunctionArgs"),
        (
            None,
            {"sweeper": {"handler": "x"}},
            r"OutboxRelayArgs.sweeper: expected FunctionArgs, or False for no sweeper",
        ),
        (
            outbox_table(global_secondary_indexes=()),
            {"sweeper": "default"},
            r"'outbox' has no index 'pending' \(pendingShard, createdAt\): the sweeper finds",
        ),
        (
            None,
            {"sweeper": "default", "sweep_schedule": "rate(5 minute)"},
            r"OutboxRelayArgs.sweep_schedule: 'rate\(5 minute\)': with the value 5 the unit is",
        ),
        (
            None,
            {"sweeper": "default", "sweep_after_seconds": 30},
            r"OutboxRelayArgs.sweep_after_seconds: 30 is outside 60..604800 seconds",
        ),
    ],
)
def test_bad_tables_and_settings_are_refused_before_any_relay_resource(
    code_dir: Path, table_args: Any, overrides: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()

    def program() -> None:
        table = Table("outbox", table_args or outbox_table())
        bus = EventBus("orders", EventBusArgs(archive=False))
        args: dict[str, Any] = {
            "table": table,
            "bus": bus,
            "function": FunctionArgs(
                handler="handlers.outbox_relay.handler", timeout_seconds=60, code_dir=code_dir
            ),
            "sweeper": False,
            **overrides,
        }
        if args["sweeper"] == "default":
            args["sweeper"] = sweeper_args(code_dir)
        OutboxRelay("relay", OutboxRelayArgs(**args))

    with pytest.raises(ValueError, match=message):
        deploy(program, mocks=mocks)
    assert not [r for r in mocks.registrations if r.name.startswith("relay")]


def test_the_relay_function_and_the_sweeper_are_arguments() -> None:
    with pytest.raises(TypeError, match="missing 2 required keyword-only arguments: 'function'"):
        OutboxRelayArgs(table=None, bus=None)  # type: ignore[call-arg, arg-type]
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'sweeper'"):
        OutboxRelayArgs(table=None, bus=None, function=None)  # type: ignore[call-arg, arg-type]


# ------------------------------------------------------------------------ the sweeper


def test_the_sweeper_runs_on_a_schedule_told_which_bus_table_and_age(code_dir: Path) -> None:
    d, _ = relay_program(code_dir, sweeper="default", sweep_after_seconds=300)
    sweeper = d.named("relay-sweeper-function", FUNCTION)
    assert sweeper.parent == d.named("relay-sweeper").urn
    assert sweeper.inputs["handler"] == "handlers.outbox_sweeper.handler"
    variables = sweeper.inputs["environment"]["variables"]
    assert (
        variables["EVENT_BUS_NAME"],
        variables["OUTBOX_TABLE"],
        variables["SWEEP_AFTER_SECONDS"],
    ) == ("orders-bus", "outbox-table", "300")

    rule = d.named("relay-sweep-rule", RULE)
    assert rule.parent == d.named("relay-sweep").urn
    assert d.named("relay-sweep").parent == d.named("relay").urn
    assert rule.inputs["scheduleExpression"] == "rate(5 minutes)"
    assert rule.inputs["eventBusName"] == "default"
    assert "eventPattern" not in rule.inputs
    target = d.named("relay-sweep-lambda", TARGET)
    assert target.inputs["arn"] == sweeper.outputs["arn"]
    assert target.inputs["deadLetterConfig"]["arn"].endswith("relay-sweep-lambda-dlq-queue")
    permission = d.named("relay-sweep-lambda-permission", PERMISSION)
    assert permission.inputs["principal"] == "events.amazonaws.com"


def test_the_sweeper_may_query_the_pending_index_mark_rows_and_put_events_only(
    code_dir: Path,
) -> None:
    d, _ = relay_program(code_dir, outbox_table(kms_key_arn=KEY_ARN), sweeper="default")
    allowed = actions_on(role_statements(d, "relay-sweeper-role"))
    log_group = (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/project-dev-relay-sweeper"
    )
    assert allowed == {
        f"{log_group}:*": {"logs:CreateLogStream", "logs:PutLogEvents"},
        "*": {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},
        BUS_ARN: {"events:PutEvents"},
        # The unpublished rows, through the sparse index only; no Scan, no writes but
        # the conditional mark.
        INDEX_ARN: {"dynamodb:Query"},
        TABLE_ARN: {"dynamodb:UpdateItem"},
        KEY_ARN: {"kms:Decrypt", "kms:GenerateDataKey"},
    }


def test_the_schedule_and_age_are_settings(code_dir: Path) -> None:
    d, _ = relay_program(
        code_dir, sweeper="default", sweep_schedule="cron(0/10 * * * ? *)", sweep_after_seconds=60
    )
    assert d.named("relay-sweep-rule", RULE).inputs["scheduleExpression"] == "cron(0/10 * * * ? *)"
    variables = d.named("relay-sweeper-function", FUNCTION).inputs["environment"]["variables"]
    assert variables["SWEEP_AFTER_SECONDS"] == "60"


def test_without_a_sweeper_nothing_is_scheduled(code_dir: Path) -> None:
    d, _ = relay_program(code_dir, sweeper=False)
    assert d.of_type(RULE) == []
    assert [f.name for f in d.of_type(FUNCTION)] == ["relay-function-function"]


def test_the_pending_index_matches_eventcraft_outbox() -> None:
    from eventcraft import outbox

    assert OUTBOX_PENDING_INDEX.name == outbox.PENDING_INDEX
    assert OUTBOX_PENDING_INDEX.hash_key.name == outbox.PENDING_SHARD
    assert OUTBOX_PENDING_INDEX.range_key is not None
    assert OUTBOX_PENDING_INDEX.range_key.name == outbox.CREATED_AT
    assert OUTBOX_PENDING_INDEX in outbox_table().global_secondary_indexes
