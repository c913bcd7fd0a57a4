"""notifications: a welcome email for every new user, sent by a two-step saga.

    UserSignedUp (bus) -> rule -> welcome queue -> `welcome` (idempotent per eventId)
      -> one execution of the welcome saga (Step Functions):
         reserveQuota (undone by releaseQuota) -> sendEmail -> recordOutcome
    recordOutcome writes the user's welcome (SENT / FAILED) to the welcomes table and
    publishes WelcomeSent / WelcomeFailed on the bus; a failed send releases the quota.

Built only from `pulumi_eventcraft`; the handlers (functions/) use `eventcraft`, which
the dependency layer installs from functions/requirements.txt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pulumi

from pulumi_eventcraft.event_bus import EventBus, EventBusArgs
from pulumi_eventcraft.event_pattern import Pattern
from pulumi_eventcraft.event_rule import EventRule, EventRuleArgs, SqsTarget
from pulumi_eventcraft.event_source import EventSourceMapping, EventSourceMappingArgs, SqsSource
from pulumi_eventcraft.function import Function, FunctionArgs
from pulumi_eventcraft.iam import Statement
from pulumi_eventcraft.layer import DependencyLayer, DependencyLayerArgs
from pulumi_eventcraft.queue import Queue, QueueArgs
from pulumi_eventcraft.saga import SagaStep, function_arns, saga_definition
from pulumi_eventcraft.state_machine import StateMachine, StateMachineArgs
from pulumi_eventcraft.table import Table, idempotency_table, state_table

CODE_DIR = Path(__file__).resolve().parent / "functions"
SIGNUP_SOURCE = "accounts.users"  # the producer of UserSignedUp, outside this program

config = pulumi.Config()
daily_quota = config.get_int("dailyQuota") or 100
rejected_domains: Sequence[str] = config.get_object("rejectedDomains") or []
if daily_quota < 1:
    raise ValueError(f"notifications:dailyQuota: {daily_quota} must be at least 1 email a day")
tags = {"app": pulumi.get_project(), "stack": pulumi.get_stack()}

bus = EventBus("events", EventBusArgs(description="signups and welcomes", tags=tags))
quota = Table("quota", state_table("pk", tags=tags))
welcomes = Table("welcomes", state_table("userId", tags=tags))
idempotency = Table("idempotency", idempotency_table(tags=tags))
layer = DependencyLayer(
    "deps", DependencyLayerArgs(requirements_file=CODE_DIR / "requirements.txt", tags=tags)
)


def function(
    name: str,
    handler: str,
    environment: Mapping[str, pulumi.Input[str]],
    *,
    timeout_seconds: int = 10,
) -> Function:
    return Function(
        name,
        FunctionArgs(
            handler=f"notifications.{handler}",
            code_dir=CODE_DIR,
            timeout_seconds=timeout_seconds,
            layer=layer,
            environment=environment,
            tags=tags,
        ),
    )


def dynamodb(table: Table, *actions: str) -> list[Statement]:
    """Exactly these DynamoDB actions on exactly this table."""
    return [Statement(actions=[f"dynamodb:{a}" for a in actions], resources=[table.arn])]


# Each function gets the grants its handler's docstring lists, nothing more.
reserve = function(
    "reserve-quota",
    "steps.reserve_quota",
    {"QUOTA_TABLE": quota.name, "DAILY_QUOTA": str(daily_quota)},
)
reserve.grant("quota", dynamodb(quota, "UpdateItem", "GetItem"))
release = function("release-quota", "steps.release_quota", {"QUOTA_TABLE": quota.name})
release.grant("quota", dynamodb(quota, "UpdateItem"))
send = function("send-email", "steps.send_email", {"REJECTED_DOMAINS": ",".join(rejected_domains)})
outcome = function(
    "record-outcome",
    "steps.record_outcome",
    {"WELCOMES_TABLE": welcomes.name, "EVENT_BUS_NAME": bus.name},
)
outcome.grant("welcomes", dynamodb(welcomes, "PutItem"))
outcome.grant_put_events(bus)

steps = [
    SagaStep(name="reserveQuota", task=reserve.arn, compensation=release.arn),
    # Nothing undoes an email; its failure undoes the quota reservation.
    SagaStep(name="sendEmail", task=send.arn),
]
saga = StateMachine(
    "welcome-saga",
    StateMachineArgs(
        definition=saga_definition(
            steps,
            comment="Welcome: reserve a send quota, send the email; a failure releases the quota",
            on_success=outcome.arn,
            on_failure=outcome.arn,
        ),
        task_function_arns=function_arns(steps, on_success=outcome.arn, on_failure=outcome.arn),
        tags=tags,
    ),
)

welcome = function(
    "welcome",
    "welcome.handler",
    {"IDEMPOTENCY_TABLE": idempotency.name, "WELCOME_SAGA_ARN": saga.arn},
    timeout_seconds=30,
)
welcome.grant(
    "idempotency", dynamodb(idempotency, "GetItem", "PutItem", "UpdateItem", "DeleteItem")
)
welcome.grant_start_execution(saga)

signups = EventRule(
    "signups",
    EventRuleArgs(
        bus=bus,
        pattern=Pattern(source=SIGNUP_SOURCE, detail_type="UserSignedUp"),
        description="New users: welcome them",
        tags=tags,
    ),
)
queue = Queue(
    "welcome",
    QueueArgs(
        # The event source mapping asks for 6 x the function's timeout.
        visibility_timeout_seconds=6 * welcome.timeout_seconds,
        senders=[signups.as_sender()],
        tags=tags,
    ),
)
signups.add_target(SqsTarget(queue=queue))
EventSourceMapping(
    "welcome-consumer",
    EventSourceMappingArgs(function=welcome, source=SqsSource(queue=queue), tags=tags),
)

# What `pulumi stack output` shows, and what the sandbox's session reads.
functions = {"welcome": welcome, "reserve-quota": reserve, "send-email": send}
functions |= {"release-quota": release, "record-outcome": outcome}
pulumi.export("busName", bus.name)
pulumi.export("archiveName", bus.archive.name if bus.archive else None)
pulumi.export("functions", {short: f.name for short, f in functions.items()})
pulumi.export(
    "tables", {"quota": quota.name, "welcomes": welcomes.name, "idempotency": idempotency.name}
)
pulumi.export("queues", {"welcome": {"url": queue.url}, "welcome-dlq": {"url": queue.dlq.url}})
pulumi.export("stateMachineArn", saga.arn)
