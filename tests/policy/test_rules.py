"""The policy pack: each rule passes what the components and both stacks declare, fails a
deliberately broken resource with the exact message a user would see, and runs through
the pulumi-policy SDK (its analyzer service, as the CLI drives it) without starting one.

Three ways in: `check(views)` on a mocked deployment (`view_from_mock`); the SDK's
analyzer service fed the same resources as `pulumi preview`/`up` would (inputs for
resource policies, outputs for stack policies); and hand-made preview requests whose
computed values are unknown.
"""

from __future__ import annotations

import json
import runpy
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_policy
import pytest
import yaml
from pulumi.runtime import proto
from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from eventcraft_sandbox.mock_deploy import ACCOUNT_ID, Deployment, deploy
from eventcraft_sandbox.summary import deploy_stack
from policy.rules import (
    RULES,
    Findings,
    PolicyView,
    check_all,
    mapping_source,
    policies,
    policy_documents,
    queue_roles,
    view_from_mock,
)
from pulumi_eventcraft.alarms import Alerts
from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.event_rule import EventRule, EventRuleArgs, LambdaTarget, SqsTarget
from pulumi_eventcraft.event_source import (
    DynamoDbStreamSource,
    EventSourceMapping,
    EventSourceMappingArgs,
    KinesisSource,
    SqsSource,
)
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.queue import DeadLetterQueue, Queue, QueueArgs
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.stream import Stream
from pulumi_eventcraft.table import Table, event_store_table

ROOT = Path(__file__).resolve().parents[2]
RULE = {rule.name: rule for rule in RULES}
ARN = f"arn:aws:{{}}:us-east-1:{ACCOUNT_ID}:"
QUEUE_ARN = ARN.format("sqs") + "elsewhere"
STREAM_ARN = ARN.format("kinesis") + "stream/clicks"
TABLE_STREAM_ARN = ARN.format("dynamodb") + "table/events/stream/2026-01-01T00:00:00.000"
FUNCTION_ARN = ARN.format("lambda") + "function:worker"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/worker"
RULE_ARN = ARN.format("events") + "rule/orders/placed"
DEFINITION = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
PACK = "order-saga-policies"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
Program = Callable[[], object]


def views(d: Deployment) -> list[PolicyView]:
    return [view_from_mock(r) for r in d]


def run_rule(rule: str, program: Program) -> list[str]:
    """The violation messages of one rule on a mocked deployment (everything is known)."""
    findings = RULE[rule].check(views(deploy(program)))
    assert findings.unchecked == []
    return findings.messages


def plain_queue(name: str, **extra: Any) -> aws.sqs.Queue:
    return aws.sqs.Queue(name, sqs_managed_sse_enabled=True, **extra)


# ------------------------------------------------------------ real components


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("code") / "functions"
    (root / "handlers").mkdir(parents=True)
    for name in ("reserve", "consume", "project", "clicks"):
        (root / "handlers" / f"{name}.py").write_text("def handler(event, context):\n    pass\n")
    return root


def components_program(code_dir: Path) -> None:
    """One of each component, wired as the order saga wires them."""
    alerts = Alerts("alerts")
    actions = [alerts.topic_arn]

    def fn(name: str, **extra: Any) -> Function:
        return Function(
            name,
            FunctionArgs(
                handler=f"handlers.{name}.handler",
                timeout_seconds=30,
                code_dir=code_dir,
                alarm_actions=actions,
                **extra,
            ),
        )

    bus = EventBus("orders", EventBusArgs(organization_id="o-a1b2c3d4e5"))
    rule = EventRule(
        "placed", EventRuleArgs(bus=bus, pattern={"source": ["orders"]}, alarm_actions=actions)
    )
    inventory = Queue(
        "inventory",
        QueueArgs(
            visibility_timeout_seconds=180, senders=[rule.as_sender()], alarm_actions=actions
        ),
    )
    rule.add_target(SqsTarget(queue=inventory))
    async_failures = DeadLetterQueue("async-failures")
    reserve = fn("reserve", async_on_failure=async_failures)
    rule.add_target(LambdaTarget(function_arn=reserve.arn, function_name=reserve.name))
    EventSourceMapping(
        "consume", EventSourceMappingArgs(function=fn("consume"), source=SqsSource(queue=inventory))
    )
    events = Table("events", event_store_table())
    EventSourceMapping(
        "project",
        EventSourceMappingArgs(
            function=fn("project"),
            source=DynamoDbStreamSource(stream=events),
            alarm_actions=actions,
        ),
    )
    clicks = Stream("clicks")
    EventSourceMapping(
        "clicks", EventSourceMappingArgs(function=fn("clicks"), source=KinesisSource(stream=clicks))
    )
    StateMachine(
        "saga",
        StateMachineArgs(
            definition={
                "StartAt": "Reserve",
                "States": {"Reserve": {"Type": "Task", "Resource": reserve.arn, "End": True}},
            },
            task_function_arns=[reserve.arn],
            alarm_actions=actions,
        ),
    )


@pytest.fixture(scope="module")
def components(code_dir: Path) -> Deployment:
    return deploy(lambda: components_program(code_dir))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_break_no_rule(stack: str) -> None:
    results = check_all(views(deploy_stack(ROOT, stack)))
    assert {name: f.messages for name, f in results.items() if f.messages} == {}
    assert {name: f.unchecked for name, f in results.items() if f.unchecked} == {}


@pytest.mark.parametrize("rule", list(RULE))
def test_the_components_pass_each_rule(components: Deployment, rule: str) -> None:
    findings = RULE[rule].check(views(components))
    assert findings.messages == []
    assert findings.unchecked == []


def test_the_rules_see_what_the_components_declare(components: Deployment) -> None:
    """The passes above are not vacuous: each rule found what it judges."""
    all_views = views(components)
    by_urn = {v.urn: v.name for v in all_views}
    roles = queue_roles(all_views)
    assert sorted(by_urn[u] for u in roles.dlqs) == [
        "async-failures-queue",  # a Lambda async on-failure destination
        "clicks-failures-queue",  # a Kinesis mapping's on-failure destination
        "inventory-dlq-queue",  # a queue's redrive target
        "placed-lambda-dlq-queue",  # rule target DLQs
        "placed-sqs-dlq-queue",
        "project-failures-queue",  # a DynamoDB stream mapping's on-failure destination
    ]
    assert sorted(by_urn[u] for u in roles.with_dlq) == ["inventory-queue"]
    assert {v.name: mapping_source(v) for v in all_views if v.type == ESM} == {
        "consume-mapping": "sqs",
        "project-mapping": "stream",
        "clicks-mapping": "stream",
    }

    documents = {
        f"{v.type} {v.name}.{path}": doc
        for v in all_views
        for path, doc in policy_documents(v.props)
    }
    assert Counter(where.split(" ")[0] for where in documents) == {
        "aws:iam/role:Role": 5,  # trust policies
        "aws:iam/rolePolicy:RolePolicy": 9,  # each grant
        "aws:sqs/queuePolicy:QueuePolicy": 7,
        "aws:kms/key:Key": 1,
        "aws:cloudwatch/eventBusPolicy:EventBusPolicy": 1,
        "aws:sns/topicPolicy:TopicPolicy": 1,
    }
    # The two exceptions rules 4 and 5 make were exercised: AWS's default key policy
    # statement, and a '*' principal pinned to an organization.
    key_policy = documents["aws:kms/key:Key alerts-key.policy"]
    assert key_policy["Statement"][0]["Action"] == "kms:*"
    bus_policy = documents["aws:cloudwatch/eventBusPolicy:EventBusPolicy orders-policy.policy"]
    assert bus_policy["Statement"][0]["Principal"] == "*"


# --------------------------------------------------- rule 1: queues have a DLQ

NO_DLQ = (
    "aws:sqs/queue:Queue '{}': has no dead-letter queue (no redrivePolicy) and is not the "
    "dead-letter queue of any queue, rule target, event source mapping or Lambda "
    'destination; give it redrive_policy={{"deadLetterTargetArn": <DLQ ARN>, '
    '"maxReceiveCount": <n>}} (pulumi_eventcraft.queue.Queue does)'
)


def test_a_plain_queue_has_no_dlq() -> None:
    assert run_rule("sqs-queues-have-dlq", lambda: [plain_queue("plain")]) == [
        NO_DLQ.format("plain")
    ]


def test_a_redrive_policy_without_a_target_is_refused() -> None:
    def program() -> None:
        plain_queue("work", redrive_policy=json.dumps({"maxReceiveCount": 5}))

    assert run_rule("sqs-queues-have-dlq", program) == [
        "aws:sqs/queue:Queue 'work': redrivePolicy has no deadLetterTargetArn; give it a JSON "
        'redrive policy {"deadLetterTargetArn": <DLQ ARN>, "maxReceiveCount": <n>}'
    ]


def _redrive(dlq: aws.sqs.Queue) -> None:
    plain_queue(
        "work",
        redrive_policy=dlq.arn.apply(
            lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
        ),
    )


def _redrive_resource(dlq: aws.sqs.Queue) -> None:
    work = plain_queue("work")
    aws.sqs.RedrivePolicy(
        "work-redrive",
        queue_url=work.url,
        redrive_policy=dlq.arn.apply(
            lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
        ),
    )


def _rule_target(dlq: aws.sqs.Queue) -> None:
    aws.cloudwatch.EventTarget(
        "target",
        rule="placed",
        arn=FUNCTION_ARN,
        dead_letter_config={"arn": dlq.arn},
        retry_policy={"maximum_retry_attempts": 8, "maximum_event_age_in_seconds": 3600},
    )


def _stream_mapping(dlq: aws.sqs.Queue) -> None:
    aws.lambda_.EventSourceMapping(
        "mapping",
        function_name=FUNCTION_ARN,
        event_source_arn=STREAM_ARN,
        starting_position="LATEST",
        destination_config={"on_failure": {"destination_arn": dlq.arn}},
    )


def _async_destination(dlq: aws.sqs.Queue) -> None:
    aws.lambda_.FunctionEventInvokeConfig(
        "async",
        function_name="worker",
        destination_config={"on_failure": {"destination": dlq.arn}},
    )


def _function_dlq(dlq: aws.sqs.Queue) -> None:
    aws.lambda_.Function(
        "worker",
        role=ROLE_ARN,
        runtime="python3.12",
        handler="h.handler",
        code=pulumi.AssetArchive({}),
        dead_letter_config={"target_arn": dlq.arn},
    )


def _subscription(dlq: aws.sqs.Queue) -> None:
    aws.sns.TopicSubscription(
        "sub",
        topic=ARN.format("sns") + "orders",
        protocol="lambda",
        endpoint=FUNCTION_ARN,
        redrive_policy=dlq.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn})),
    )


@pytest.mark.parametrize(
    "use",
    [
        _redrive,
        _redrive_resource,
        _rule_target,
        _stream_mapping,
        _async_destination,
        _function_dlq,
        _subscription,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_queue_is_a_dlq_by_what_points_at_it(use: Callable[[aws.sqs.Queue], None]) -> None:
    assert run_rule("sqs-queues-have-dlq", lambda: use(plain_queue("dlq"))) == []


def test_a_queue_named_like_a_dlq_is_not_one() -> None:
    assert run_rule("sqs-queues-have-dlq", lambda: [plain_queue("orders-dlq")]) == [
        NO_DLQ.format("orders-dlq")
    ]


# ---------------------------------------- rule 2: rule targets have DLQ and retry


def test_a_rule_target_without_dlq_or_retry_policy() -> None:
    def program() -> None:
        aws.cloudwatch.EventTarget("to-queue", rule="placed", arn=QUEUE_ARN)

    assert run_rule("rule-targets-have-dlq-and-retry", program) == [
        "aws:cloudwatch/eventTarget:EventTarget 'to-queue': has no deadLetterConfig: events it "
        "fails to deliver are dropped; set dead_letter_config={'arn': <standard SQS queue "
        "ARN>} (pulumi_eventcraft.event_rule.EventRule.add_target does)",
        "aws:cloudwatch/eventTarget:EventTarget 'to-queue': has no explicit retryPolicy "
        "(EventBridge's default retries 185 times over 24 hours, hiding a broken target for a "
        "day); set retry_policy with maximum_retry_attempts and maximum_event_age_in_seconds",
    ]


def test_a_retry_policy_must_set_both_limits() -> None:
    def program() -> None:
        aws.cloudwatch.EventTarget(
            "to-queue",
            rule="placed",
            arn=QUEUE_ARN,
            dead_letter_config={"arn": QUEUE_ARN},
            retry_policy={"maximum_retry_attempts": 3},
        )

    assert run_rule("rule-targets-have-dlq-and-retry", program) == [
        "aws:cloudwatch/eventTarget:EventTarget 'to-queue': retryPolicy does not set "
        "maximumEventAgeInSeconds; set both explicitly"
    ]


# ------------------------------------------------------ rule 3: encryption at rest


def _table(**extra: Any) -> None:
    aws.dynamodb.Table(
        "orders",
        attributes=[{"name": "pk", "type": "S"}],
        hash_key="pk",
        billing_mode="PAY_PER_REQUEST",
        **extra,
    )


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (
            lambda: aws.sqs.Queue("plain"),
            "aws:sqs/queue:Queue 'plain': is not encrypted at rest; set "
            "sqs_managed_sse_enabled=True (SSE-SQS) or kms_master_key_id=<KMS key ARN>",
        ),
        (
            _table,
            "aws:dynamodb/table:Table 'orders': serverSideEncryption is not enabled (only "
            "DynamoDB's AWS-owned key, which you cannot audit or control); set "
            "server_side_encryption={'enabled': True} for the AWS-managed key, or with "
            "kms_key_arn for your own key (pulumi_eventcraft.table.Table does)",
        ),
        (
            lambda: _table(server_side_encryption={"enabled": False}),
            "aws:dynamodb/table:Table 'orders': serverSideEncryption is not enabled (only "
            "DynamoDB's AWS-owned key, which you cannot audit or control); set "
            "server_side_encryption={'enabled': True} for the AWS-managed key, or with "
            "kms_key_arn for your own key (pulumi_eventcraft.table.Table does)",
        ),
        (
            lambda: aws.kinesis.Stream("clicks", shard_count=1, encryption_type="NONE"),
            "aws:kinesis/stream:Stream 'clicks': is not encrypted at rest; set "
            "encryption_type='KMS' and kms_key_id ('alias/aws/kinesis' or a key ARN; "
            "pulumi_eventcraft.stream.Stream does)",
        ),
        (
            lambda: aws.sns.Topic("alerts"),
            "aws:sns/topic:Topic 'alerts': is not encrypted at rest; set kms_master_key_id to "
            "a KMS key (a customer-managed one if CloudWatch alarms publish to it, as "
            "pulumi_eventcraft.alarms.Alerts creates)",
        ),
    ],
    ids=["queue", "table", "table-disabled", "stream", "topic"],
)
def test_unencrypted_resources(program: Program, message: str) -> None:
    assert run_rule("encrypted-at-rest", program) == [message]


def test_each_way_to_encrypt_passes() -> None:
    key = ARN.format("kms") + "key/1234abcd-12ab-34cd-56ef-1234567890ab"

    def program() -> None:
        aws.sqs.Queue("sse-sqs", sqs_managed_sse_enabled=True)
        aws.sqs.Queue("sse-kms", kms_master_key_id=key)
        _table(server_side_encryption={"enabled": True})
        aws.kinesis.Stream("s", shard_count=1, encryption_type="KMS", kms_key_id=key)
        aws.sns.Topic("t", kms_master_key_id=key)

    assert run_rule("encrypted-at-rest", program) == []


# ------------------------------------------------------- rule 4: least privilege


def _document(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_a_role_policy_with_a_wildcard_action() -> None:
    def program() -> None:
        aws.iam.RolePolicy(
            "broad",
            role="worker",
            policy=_document({"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}),
        )

    assert run_rule("least-privilege-iam", program) == [
        "aws:iam/rolePolicy:RolePolicy 'broad': policy Statement[0]: wildcard action 'sqs:*'; "
        "name each action",
        "aws:iam/rolePolicy:RolePolicy 'broad': policy Statement[0]: resource '*' for "
        "['sqs:*']; scope them to ARNs ('*' is allowed only for actions AWS cannot scope)",
    ]


def test_inline_policies_and_full_access_attachments_are_checked() -> None:
    def program() -> None:
        aws.iam.Role(
            "worker",
            assume_role_policy=_document(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ),
            inline_policies=[
                {
                    "name": "tables",
                    "policy": _document(
                        {
                            "Sid": "Tables",
                            "Effect": "Allow",
                            "Action": "dynamodb:Get*",
                            "Resource": ARN.format("dynamodb") + "table/orders",
                        }
                    ),
                }
            ],
        )
        aws.iam.RolePolicyAttachment(
            "worker-sqs",
            role="worker",
            policy_arn="arn:aws:iam::aws:policy/AmazonSQSFullAccess",
        )

    # Two independent resources: the mocks may register them in either order.
    assert sorted(run_rule("least-privilege-iam", program)) == [
        "aws:iam/role:Role 'worker': inlinePolicies[0].policy Tables: wildcard action "
        "'dynamodb:Get*'; name each action",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment 'worker-sqs': attaches "
        "arn:aws:iam::aws:policy/AmazonSQSFullAccess, which grants wildcard actions; grant the "
        "named actions on the resources' ARNs instead (pulumi_eventcraft.iam.Statement)",
    ]


def test_a_key_policy_may_keep_the_default_root_statement_only() -> None:
    root = {
        "Sid": "EnableIamPolicies",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    scoped = {
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": "*",
    }
    to_role = {
        "Effect": "Allow",
        "Principal": {"AWS": ROLE_ARN},
        "Action": "kms:*",
        "Resource": "*",
    }

    assert (
        run_rule("least-privilege-iam", lambda: aws.kms.Key("k", policy=_document(root, scoped)))
        == []
    )
    assert run_rule(
        "least-privilege-iam", lambda: aws.kms.Key("k", policy=_document(root, to_role))
    ) == ["aws:kms/key:Key 'k': policy Statement[1]: wildcard action 'kms:*'; name each action"]


# ---------------------------------------------------- rule 5: no public principal

OPEN = (
    "{}: allows principal '*' (anyone); name the principals, or scope '*' with a "
    "StringEquals condition on aws:PrincipalOrgID or aws:PrincipalAccount, or an ArnEquals "
    "condition on aws:SourceArn"
)


def _queue_policy(statement: Mapping[str, Any]) -> Program:
    def program() -> None:
        aws.sqs.QueuePolicy(
            "open",
            queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/orders",
            policy=_document({"Action": "sqs:SendMessage", "Resource": QUEUE_ARN, **statement}),
        )

    return program


def test_a_queue_policy_open_to_anyone() -> None:
    program = _queue_policy({"Sid": "AllowAll", "Effect": "Allow", "Principal": "*"})
    assert run_rule("no-public-principals", program) == [
        OPEN.format("aws:sqs/queuePolicy:QueuePolicy 'open': policy AllowAll")
    ]
    # Rule 5 owns public principals: rule 4 does not report the same statement again.
    assert run_rule("least-privilege-iam", program) == []


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        ({"Effect": "Deny", "Principal": "*"}, False),
        (
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
            },
            False,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
            },
            False,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
            },
            False,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT_ID}},
            },
            False,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"StringLike": {"aws:PrincipalOrgID": "o-*"}},
            },
            True,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"StringEqualsIfExists": {"aws:PrincipalAccount": ACCOUNT_ID}},
            },
            True,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"ArnLike": {"aws:SourceArn": ARN.format("events") + "rule/*"}},
            },
            True,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}},
            },
            True,
        ),
    ],
    ids=[
        "deny",
        "service-principal",
        "source-arn",
        "org",
        "account",
        "org-wildcard",
        "if-exists",
        "source-arn-wildcard",
        "unrelated-condition",
    ],
)
def test_what_scopes_a_star_principal(statement: Mapping[str, Any], public: bool) -> None:
    found = run_rule("no-public-principals", _queue_policy(statement))
    assert found == (
        [OPEN.format("aws:sqs/queuePolicy:QueuePolicy 'open': policy Statement[0]")]
        if public
        else []
    )


def test_an_event_bus_policy_open_to_anyone() -> None:
    def program() -> None:
        aws.cloudwatch.EventBusPolicy(
            "bus-policy",
            event_bus_name="orders",
            policy=_document(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": "events:PutEvents",
                    "Resource": ARN.format("events") + "event-bus/orders",
                }
            ),
        )

    assert run_rule("no-public-principals", program) == [
        OPEN.format(
            "aws:cloudwatch/eventBusPolicy:EventBusPolicy 'bus-policy': policy Statement[0]"
        )
    ]


# ------------------------------------------- rules 6 and 7: event source mappings


def _mapping(**settings: Any) -> Program:
    def program() -> None:
        aws.lambda_.EventSourceMapping("mapping", function_name=FUNCTION_ARN, **settings)

    return program


BOUNDED = {
    "starting_position": "LATEST",
    "bisect_batch_on_function_error": True,
    "maximum_retry_attempts": 5,
    "maximum_record_age_in_seconds": 3600,
    "function_response_types": ["ReportBatchItemFailures"],
    "destination_config": {"on_failure": {"destination_arn": QUEUE_ARN}},
}
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping 'mapping'"


@pytest.mark.parametrize("source", [STREAM_ARN, TABLE_STREAM_ARN], ids=["kinesis", "dynamodb"])
def test_a_stream_mapping_retrying_forever(source: str) -> None:
    program = _mapping(event_source_arn=source, **{**BOUNDED, "maximum_retry_attempts": -1})
    assert run_rule("stream-mappings-bounded-retries", program) == [
        f"{MAPPING}: maximumRetryAttempts is -1: a failing record is retried until it expires, "
        "blocking its shard; set it to 0..10000 (e.g. 5)"
    ]
    assert (
        run_rule("stream-mappings-bounded-retries", _mapping(event_source_arn=source, **BOUNDED))
        == []
    )


def test_a_stream_mapping_with_lambdas_defaults() -> None:
    program = _mapping(event_source_arn=STREAM_ARN, starting_position="LATEST")
    assert run_rule("stream-mappings-bounded-retries", program) == [
        f"{MAPPING}: bisectBatchOnFunctionError is not true: a failing batch is retried whole; "
        "set bisect_batch_on_function_error=True to isolate the bad record",
        f"{MAPPING}: maximumRetryAttempts is unset (Lambda's default -1): a failing record is "
        "retried until it expires, blocking its shard; set it to 0..10000 (e.g. 5)",
        f"{MAPPING}: maximumRecordAgeInSeconds is unset (Lambda's default -1): a failing record "
        "is retried until it expires, blocking its shard; set it to 60..604800 (e.g. 3600)",
        f"{MAPPING}: has no on-failure destination: records that exhaust their retries are "
        "dropped; set destination_config.on_failure.destination_arn to a standard SQS queue "
        "(pulumi_eventcraft.event_source.EventSourceMapping does)",
    ]
    assert run_rule("mappings-report-batch-item-failures", program) == [
        f"{MAPPING}: functionResponseTypes lacks 'ReportBatchItemFailures': one failing record "
        "fails (and retries) its whole batch; set function_response_types="
        "['ReportBatchItemFailures'] and return batchItemFailures from the handler"
    ]


def test_an_sqs_mapping_without_batch_item_failures() -> None:
    program = _mapping(event_source_arn=QUEUE_ARN)
    assert run_rule("mappings-report-batch-item-failures", program) == [
        f"{MAPPING}: functionResponseTypes lacks 'ReportBatchItemFailures': one failing record "
        "fails (and retries) its whole batch; set function_response_types="
        "['ReportBatchItemFailures'] and return batchItemFailures from the handler"
    ]
    # The stream rules are not about queues.
    assert run_rule("stream-mappings-bounded-retries", program) == []
    fixed = _mapping(
        event_source_arn=QUEUE_ARN, function_response_types=["ReportBatchItemFailures"]
    )
    assert run_rule("mappings-report-batch-item-failures", fixed) == []


def test_other_sources_are_not_judged() -> None:
    program = _mapping(
        event_source_arn=ARN.format("kafka") + "cluster/orders/abc", topics=["orders"]
    )
    assert run_rule("stream-mappings-bounded-retries", program) == []
    assert run_rule("mappings-report-batch-item-failures", program) == []


# --------------------------------------------- rule 8: state machines log and trace


def test_a_state_machine_without_logging_or_tracing() -> None:
    def program() -> None:
        aws.sfn.StateMachine("bare", role_arn=ROLE_ARN, definition=DEFINITION)

    assert run_rule("state-machines-log-and-trace", program) == [
        "aws:sfn/stateMachine:StateMachine 'bare': does not log executions "
        "(loggingConfiguration level is OFF or unset); set logging_configuration with level "
        "'ERROR' (or 'ALL'/'FATAL') and log_destination '<log group ARN>:*' "
        "(pulumi_eventcraft.state_machine.StateMachine does)",
        "aws:sfn/stateMachine:StateMachine 'bare': X-Ray tracing is off; set "
        "tracing_configuration={'enabled': True}",
    ]


def test_a_state_machine_logging_nowhere() -> None:
    def program() -> None:
        aws.sfn.StateMachine(
            "bare",
            role_arn=ROLE_ARN,
            definition=DEFINITION,
            logging_configuration={"level": "ERROR"},
            tracing_configuration={"enabled": True},
        )

    assert run_rule("state-machines-log-and-trace", program) == [
        "aws:sfn/stateMachine:StateMachine 'bare': loggingConfiguration has no logDestination; "
        "set it to '<log group ARN>:*'"
    ]


# ---------------------------------------------------- rule 9: every DLQ has an alarm


def _dlq_alarm(name: str, **settings: Any) -> None:
    aws.cloudwatch.MetricAlarm(
        name,
        comparison_operator="GreaterThanOrEqualToThreshold",
        evaluation_periods=1,
        threshold=1,
        period=60,
        statistic="Maximum",
        **settings,
    )


def test_a_dlq_without_an_alarm() -> None:
    def program() -> None:
        dlq = plain_queue("dlq")
        _redrive(dlq)
        # An alarm on the work queue's age does not watch the DLQ.
        _dlq_alarm(
            "work-age",
            namespace="AWS/SQS",
            metric_name="ApproximateAgeOfOldestMessage",
            dimensions={"QueueName": "work"},
        )

    assert run_rule("dlqs-have-alarms", program) == [
        "aws:sqs/queue:Queue 'dlq': is a dead-letter queue without a CloudWatch alarm: failed "
        "messages would pile up unnoticed; add an aws.cloudwatch.MetricAlarm on AWS/SQS "
        "ApproximateNumberOfMessagesVisible with dimensions {'QueueName': 'dlq'} "
        "(pulumi_eventcraft.queue.DeadLetterQueue creates one)"
    ]


@pytest.mark.parametrize("form", ["metric", "metric-query"])
def test_an_alarm_on_visible_messages_covers_the_dlq(form: str) -> None:
    def program() -> None:
        dlq = plain_queue("dlq")
        _rule_target(dlq)
        metric: dict[str, Any] = {
            "namespace": "AWS/SQS",
            "metric_name": "ApproximateNumberOfMessagesVisible",
            "dimensions": {"QueueName": dlq.name},
        }
        if form == "metric":
            _dlq_alarm("dlq-alarm", **metric)
        else:
            query: Any = {
                "id": "visible",
                "return_data": True,
                "metric": {**metric, "period": 60, "stat": "Maximum"},
            }
            aws.cloudwatch.MetricAlarm(
                "dlq-alarm",
                comparison_operator="GreaterThanOrEqualToThreshold",
                evaluation_periods=1,
                threshold=1,
                metric_queries=[query],
            )

    assert run_rule("dlqs-have-alarms", program) == []


# ---------------------------------------------- rule 10: Lambda tracing and logs


def _function(**extra: Any) -> None:
    aws.lambda_.Function(
        "bare",
        role=ROLE_ARN,
        runtime="python3.12",
        handler="h.handler",
        code=pulumi.AssetArchive({}),
        **extra,
    )


def test_a_function_without_tracing_or_log_group() -> None:
    assert run_rule("lambda-tracing-active", _function) == [
        "aws:lambda/function:Function 'bare': X-Ray tracing is unset, not Active; set "
        "tracing_config={'mode': 'Active'} (pulumi_eventcraft.function.Function does)"
    ]
    assert run_rule("lambda-log-retention", _function) == [
        "aws:lambda/function:Function 'bare': has no log group: Lambda creates "
        "/aws/lambda/bare on first use and keeps its logs forever; declare an "
        "aws.cloudwatch.LogGroup named '/aws/lambda/bare' with retention_in_days "
        "(pulumi_eventcraft.function.Function does)"
    ]


def test_a_log_group_without_retention() -> None:
    def program() -> None:
        aws.cloudwatch.LogGroup("bare-logs", name="/aws/lambda/bare")
        _function(tracing_config={"mode": "PassThrough"})

    assert run_rule("lambda-log-retention", program) == [
        "aws:cloudwatch/logGroup:LogGroup 'bare-logs': keeps the logs of "
        "aws:lambda/function:Function 'bare' forever (no retentionInDays); set "
        "retention_in_days (e.g. 14)"
    ]
    assert run_rule("lambda-tracing-active", program) == [
        "aws:lambda/function:Function 'bare': X-Ray tracing is PassThrough, not Active; set "
        "tracing_config={'mode': 'Active'} (pulumi_eventcraft.function.Function does)"
    ]


def _logging_to(group: str) -> Program:
    return lambda: _function(logging_config={"log_format": "Text", "log_group": group})


def test_a_function_whose_state_names_the_default_group() -> None:
    """After creation Lambda reports its default group in loggingConfig: still undeclared."""
    assert run_rule("lambda-log-retention", _logging_to("/aws/lambda/bare")) == [
        "aws:lambda/function:Function 'bare': has no log group: Lambda creates "
        "/aws/lambda/bare on first use and keeps its logs forever; declare an "
        "aws.cloudwatch.LogGroup named '/aws/lambda/bare' with retention_in_days "
        "(pulumi_eventcraft.function.Function does)"
    ]
    # A group of another stack is that stack's to judge.
    assert run_rule("lambda-log-retention", _logging_to("/shared/app")) == []


def test_a_function_logging_to_its_own_group() -> None:
    def program() -> None:
        group = aws.cloudwatch.LogGroup("shared-logs", name="/app/orders", retention_in_days=14)
        _function(
            tracing_config={"mode": "Active"},
            logging_config={"log_format": "JSON", "log_group": group.name},
        )

    assert run_rule("lambda-log-retention", program) == []
    assert run_rule("lambda-tracing-active", program) == []


# ------------------------------------------------ the pack and the pulumi-policy SDK


def test_every_rule_is_a_mandatory_policy_and_nothing_is_served() -> None:
    made = policies()
    assert [p.name for p in made] == [rule.name for rule in RULES]
    assert len(made) == 11
    assert {p.enforcement_level for p in made} == {EnforcementLevel.MANDATORY}
    for policy, rule in zip(made, RULES, strict=True):
        kind = ResourceValidationPolicy if rule.scope == "resource" else StackValidationPolicy
        assert isinstance(policy, kind), policy.name
    assert [r.name for r in RULES if r.scope == "stack"] == [
        "sqs-queues-have-dlq",
        "dlqs-have-alarms",
        "lambda-log-retention",
    ]


def test_main_only_declares_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_pack(**kwargs: Any) -> None:
        calls.append(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    monkeypatch.setattr(sys, "path", list(sys.path))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert len(calls) == 1
    assert calls[0]["name"] == PACK
    assert calls[0]["enforcement_level"] is EnforcementLevel.MANDATORY
    assert [p.name for p in calls[0]["policies"]] == [rule.name for rule in RULES]
    manifest = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert manifest["description"]


def _servicer() -> Any:
    return _PolicyAnalyzerServicer(PACK, "0.0.1", policies(), EnforcementLevel.MANDATORY)


def _struct(props: Mapping[str, Any]) -> dict[str, Any]:
    """Props as the CLI sends them (assets in their wire form; protobuf takes the dict)."""
    return dict(serialize_properties(props))


def _urn(typ: str, name: str) -> str:
    return f"urn:pulumi:dev::order-saga::{typ}::{name}"


def _analyze(typ: str, name: str, props: Mapping[str, Any], urn: str | None = None) -> Any:
    """What the CLI sends a resource policy: the resource's inputs."""
    request = proto.AnalyzeRequest(
        type=typ, properties=_struct(props), urn=urn or _urn(typ, name), name=name
    )
    return _servicer().Analyze(request, None)


def _analyze_stack(
    resources: Sequence[tuple[str, str, Mapping[str, Any], dict[str, list[str]]]],
) -> Any:
    """What the CLI sends a stack policy: every resource's outputs and dependencies."""
    request = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type=typ,
                properties=_struct(props),
                urn=_urn(typ, name),
                name=name,
                propertyDependencies={
                    key: proto.AnalyzerPropertyDependencies(urns=urns) for key, urns in deps.items()
                },
            )
            for typ, name, props, deps in resources
        ]
    )
    return _servicer().AnalyzeStack(request, None)


def _diagnostics(response: Any) -> list[tuple[str, str, int, str]]:
    return [(d.policyName, d.urn, d.enforcementLevel, d.message) for d in response.diagnostics]


def test_the_pack_passes_the_components_through_the_sdk(components: Deployment) -> None:
    """Resource policies on every resource's inputs, stack policies on all outputs."""
    custom = [r for r in components if r.custom]
    for resource in custom:
        response = _analyze(resource.typ, resource.name, resource.inputs, resource.urn)
        assert _diagnostics(response) == [], resource.name
    response = _analyze_stack([(r.typ, r.name, r.outputs, {}) for r in custom])
    assert _diagnostics(response) == []


def test_the_sdk_reports_a_violation_as_mandatory() -> None:
    typ = "aws:cloudwatch/eventTarget:EventTarget"
    response = _analyze(
        typ,
        "to-queue",
        {
            "rule": "placed",
            "arn": QUEUE_ARN,
            "retryPolicy": {"maximumRetryAttempts": 3, "maximumEventAgeInSeconds": 600},
        },
    )
    rule = RULE["rule-targets-have-dlq-and-retry"]
    assert _diagnostics(response) == [
        (
            rule.name,
            _urn(typ, "to-queue"),
            proto.MANDATORY,
            f"{rule.description}\naws:cloudwatch/eventTarget:EventTarget 'to-queue': has no "
            "deadLetterConfig: events it fails to deliver are dropped; set "
            "dead_letter_config={'arn': <standard SQS queue ARN>} "
            "(pulumi_eventcraft.event_rule.EventRule.add_target does)",
        )
    ]


# ------------------------------------------------------------------ preview


def test_unknown_values_are_not_violations_at_preview() -> None:
    """A DLQ ARN not known yet is still a DLQ; a policy not rendered yet is unchecked."""
    target = _analyze(
        "aws:cloudwatch/eventTarget:EventTarget",
        "t",
        {
            "arn": UNKNOWN_STRING_VALUE,
            "deadLetterConfig": {"arn": UNKNOWN_STRING_VALUE},
            "retryPolicy": {"maximumRetryAttempts": 8, "maximumEventAgeInSeconds": 3600},
        },
    )
    assert _diagnostics(target) == []

    typ = "aws:iam/rolePolicy:RolePolicy"
    policy = _analyze(typ, "p", {"role": "worker", "policy": UNKNOWN_STRING_VALUE})
    message = (
        f"can't run policy '{{}}' from policy pack '{PACK}@v0.0.1' during preview: "
        f"{typ} 'p': cannot check the policy document at policy: unknown until deployed"
    )
    assert _diagnostics(policy) == [
        ("least-privilege-iam", "", proto.ADVISORY, message.format("least-privilege-iam")),
        ("no-public-principals", "", proto.ADVISORY, message.format("no-public-principals")),
    ]


def test_an_sqs_mapping_is_recognised_before_its_queue_exists() -> None:
    typ = "aws:lambda/eventSourceMapping:EventSourceMapping"
    response = _analyze(
        typ, "m", {"functionName": FUNCTION_ARN, "eventSourceArn": UNKNOWN_STRING_VALUE}
    )
    assert [(name, level) for name, _, level, _ in _diagnostics(response)] == [
        ("mappings-report-batch-item-failures", proto.MANDATORY)
    ]


QUEUE = "aws:sqs/queue:Queue"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _preview_stack(
    *, dependencies: bool
) -> list[tuple[str, str, Mapping[str, Any], dict[str, list[str]]]]:
    """A work queue, its DLQ and the DLQ's alarm as a preview sees them: ARNs unknown."""
    dlq_urn = _urn(QUEUE, "dlq")
    return [
        (
            QUEUE,
            "dlq",
            {"name": "dlq-1a2b3c", "arn": UNKNOWN_STRING_VALUE, "sqsManagedSseEnabled": True},
            {},
        ),
        (
            QUEUE,
            "work",
            {
                "name": "work-4d5e6f",
                "arn": UNKNOWN_STRING_VALUE,
                "redrivePolicy": UNKNOWN_STRING_VALUE,
            },
            {"redrivePolicy": [dlq_urn]} if dependencies else {},
        ),
        (
            ALARM,
            "dlq-alarm",
            {
                "namespace": "AWS/SQS",
                "metricName": "ApproximateNumberOfMessagesVisible",
                "dimensions": {"QueueName": UNKNOWN_STRING_VALUE},
            },
            {"dimensions": [dlq_urn]} if dependencies else {},
        ),
    ]


def test_references_resolve_through_dependencies_at_preview() -> None:
    assert _diagnostics(_analyze_stack(_preview_stack(dependencies=True))) == []
    # The same stack with a DLQ that has no alarm: still found, by structure.
    without_alarm = _preview_stack(dependencies=True)[:2]
    assert [(name, level) for name, _, level, _ in _diagnostics(_analyze_stack(without_alarm))] == [
        ("dlqs-have-alarms", proto.MANDATORY)
    ]


def test_unresolvable_references_are_unchecked_not_violations() -> None:
    found = _diagnostics(_analyze_stack(_preview_stack(dependencies=False)))
    assert [(name, level) for name, _, level, _ in found] == [
        ("sqs-queues-have-dlq", proto.ADVISORY),
        ("dlqs-have-alarms", proto.ADVISORY),
    ]
    assert found[0][3].endswith(
        f"{QUEUE} 'dlq': cannot check whether it is a dead-letter queue ({QUEUE} 'work' "
        "redrivePolicy): unknown until deployed"
    )


def test_findings_from_views_built_by_hand() -> None:
    """The neutral view is plain data: rules run on it without Pulumi at all."""
    view = PolicyView(
        type=QUEUE, name="q", urn=_urn(QUEUE, "q"), props={"sqsManagedSseEnabled": True}
    )
    assert RULE["encrypted-at-rest"].check([view]) == Findings()
    assert RULE["sqs-queues-have-dlq"].check([view]).messages == [NO_DLQ.format("q")]
