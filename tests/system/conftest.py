"""The order-saga system as the recording mocks see it: deployments of `__main__.py` per
stack and saga mode (cached: each takes seconds), and a view of what routes where.

A `System` answers the questions the tests ask of a deployment: which rules exist
(by short name: `saga-<short>-rule`), what their patterns are, which targets they have,
and which handler finally runs for a target (through a queue or a stream when the
target is one).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts import sample_event
from eventcraft_sandbox.mock_deploy import Deployment, Resource, run_program_file
from eventcraft_sandbox.stack_files import stack_config
from tests.conftest import ROOT

PROGRAM = ROOT / "__main__.py"
SYSTEM = "saga"
STACKS = ("dev", "prod")
MODES = ("choreography", "orchestration", "both")

FUNCTION = "aws:lambda/function:Function"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
QUEUE = "aws:sqs/queue:Queue"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TABLE = "aws:dynamodb/table:Table"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
STREAM = "aws:kinesis/stream:Stream"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

HEX = "0123456789abcdef"
# What a handler's environment variable can name.
NAMED_RESOURCES = frozenset(
    {
        TABLE,
        QUEUE,
        STREAM,
        "aws:cloudwatch/eventBus:EventBus",
        "aws:s3/bucket:Bucket",
    }
)


PARTNER_BUS = "arn:aws:events:us-east-1:210987654321:event-bus/partner"
# Every optional part on: forwarding, partner accounts and organization, an emulator.
ALL_OPTIONS: dict[str, str] = {
    "forwardToBusArn": PARTNER_BUS,
    "forwardDetailTypes": '["OrderCompleted", "OrderCancelled"]',
    "partnerAccountIds": '["111122223333"]',
    "partnerOrganizationId": "o-abcd123456",
    "partnerSources": '["partner.shipping"]',
    "partnerDetailTypes": '["ParcelDelivered", "ParcelLost"]',
    "awsEndpoint": "http://localhost:4566",
}


def config_for(stack: str, **overrides: str) -> dict[str, str]:
    """The stack file's config with `order-saga:` keys overridden (camelCase names)."""
    config = stack_config(stack, ROOT)
    config.update({f"order-saga:{key}": value for key, value in overrides.items()})
    return config


@functools.lru_cache(maxsize=16)
def _deploy(stack: str, overrides: tuple[tuple[str, str], ...]) -> Deployment:
    return run_program_file(PROGRAM, stack=stack, config=config_for(stack, **dict(overrides)))


def deploy(stack: str, mode: str | None = None, **overrides: str) -> System:
    """`__main__.py` for `stack` under the recording mocks (cached per arguments)."""
    # The stack file's own mode is explicit too, so equal configs share one deployment.
    overrides["sagaMode"] = mode or stack_config(stack, ROOT).get("order-saga:sagaMode", "both")
    return System(_deploy(stack, tuple(sorted(overrides.items()))))


@dataclass(frozen=True)
class Target:
    """One target of a rule: its id, kind, the resource it delivers to and the handlers
    that finally run (a queue's or stream's consumers, a function itself; none for a
    state machine or another bus)."""

    id: str
    kind: str
    arn: str
    resource: Resource | None
    handlers: tuple[str, ...]
    inputs: Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    short: str
    resource: Resource
    pattern: dict[str, Any]
    bus: str
    targets: tuple[Target, ...]

    def target(self, target_id: str) -> Target:
        (found,) = [t for t in self.targets if t.id == target_id]
        return found


@dataclass
class System:
    deployment: Deployment
    by_arn: dict[str, Resource] = field(init=False)

    def __post_init__(self) -> None:
        self.by_arn = {r.arn: r for r in self.deployment if r.custom and r.arn}

    @property
    def outputs(self) -> dict[str, Any]:
        return self.deployment.outputs

    def of_type(self, typ: str) -> list[Resource]:
        return self.deployment.of_type(typ)

    # ------------------------------------------------------------------ functions

    @functools.cached_property
    def functions(self) -> dict[str, Resource]:
        """Lambda functions by physical name."""
        return {r.outputs["name"]: r for r in self.of_type(FUNCTION)}

    def function(self, short: str) -> Resource:
        """A function of the system by its spec name, e.g. "reserve-inventory"."""
        return self.deployment.named(f"{SYSTEM}-{short}-function", FUNCTION)

    def handler_of(self, function_arn: str) -> str:
        return str(self.by_arn[function_arn].inputs["handler"])

    @functools.cached_property
    def handlers(self) -> set[str]:
        return {str(r.inputs["handler"]) for r in self.of_type(FUNCTION)}

    def consumers(self, source_arn: str) -> tuple[str, ...]:
        """The handlers of the functions an event source mapping feeds from `source_arn`."""
        return tuple(
            sorted(
                self.handler_of(m.inputs["functionName"])
                for m in self.of_type(MAPPING)
                if m.inputs["eventSourceArn"] == source_arn
            )
        )

    # --------------------------------------------------------------------- rules

    @functools.cached_property
    def rules(self) -> dict[str, Rule]:
        targets_by_rule: dict[str, list[Resource]] = {}
        for target in self.of_type(TARGET):
            targets_by_rule.setdefault(target.inputs["rule"], []).append(target)
        rules = {}
        for rule in self.of_type(RULE):
            if "eventPattern" not in rule.inputs:
                continue  # a scheduled rule (the outbox sweep): see `scheduled_rules`
            short = rule.name.removeprefix(f"{SYSTEM}-").removesuffix("-rule")
            targets = tuple(self._target(t) for t in targets_by_rule.get(rule.outputs["name"], []))
            rules[short] = Rule(
                short,
                rule,
                json.loads(rule.inputs["eventPattern"]),
                rule.inputs.get("eventBusName", "default"),
                targets,
            )
        return rules

    @functools.cached_property
    def scheduled_rules(self) -> dict[str, Resource]:
        """The rules that run on a schedule (no event pattern), by short name."""
        return {
            rule.name.removeprefix(f"{SYSTEM}-").removesuffix("-rule"): rule
            for rule in self.of_type(RULE)
            if "eventPattern" not in rule.inputs
        }

    def _target(self, target: Resource) -> Target:
        arn = target.inputs["arn"]
        resource = self.by_arn.get(arn)
        kind = arn.split(":")[2]
        handlers: tuple[str, ...] = ()
        if kind == "lambda":
            handlers = (self.handler_of(arn),)
        elif kind in ("sqs", "kinesis"):
            handlers = self.consumers(arn)
        return Target(target.inputs["targetId"], kind, arn, resource, handlers, target.inputs)

    def bus_rules(self) -> dict[str, Rule]:
        """The rules on the system's own bus (not the default bus)."""
        return {k: r for k, r in self.rules.items() if r.bus != "default"}

    def matching(self, event: Mapping[str, Any], *, bus: bool = True) -> set[str]:
        """Short names of the rules (on the system's bus, or the default one) matching."""
        from pulumi_eventcraft.event_pattern import matches

        rules = self.bus_rules() if bus else self.rules
        return {short for short, rule in rules.items() if matches(rule.pattern, dict(event))}

    # ---------------------------------------------------------------- IAM, misc

    def role_policies(self, function: Resource) -> dict[str, dict[str, Any]]:
        """The inline policies of a function's role: policy logical name -> document."""
        role_arn = function.inputs["role"]
        (role,) = [r for r in self.of_type(ROLE) if r.arn == role_arn]
        return {
            p.name: json.loads(p.inputs["policy"])
            for p in self.of_type(ROLE_POLICY)
            if p.inputs["role"] == role.outputs["name"]
        }

    def resource_named(self, physical: str) -> Resource:
        """The resource whose name, URL or bucket is `physical` (an env var's value)."""
        found = [
            r
            for r in self.deployment
            if r.custom
            and r.typ in NAMED_RESOURCES
            and physical in (r.outputs.get("name"), r.outputs.get("url"), r.outputs.get("bucket"))
        ]
        assert len(found) == 1, f"{physical}: {[(r.typ, r.name) for r in found]}"
        return found[0]


# ------------------------------------------------------------------------ samples


def order_id(digit: str) -> str:
    """A uuid4-shaped orderId ending in `digit`."""
    return f"3f2b8c1e-6a4d-4e9b-9c7a-5d1e2f3a4b5{digit}"


def order_placed(digit: str = "0", total_cents: int = 7499) -> dict[str, Any]:
    """An OrderPlaced of `total_cents` whose orderId ends in `digit`."""
    return sample_event(
        "OrderPlaced",
        orderId=order_id(digit),
        items=[{"sku": "sku-red-mug", "quantity": 1, "unitPriceCents": total_cents}],
        totalCents=total_cents,
    )


def samples(detail_type: str, threshold_cents: int) -> list[dict[str, Any]]:
    """Events of `detail_type` as their producers emit them: an orderId ending in every
    hex digit, and for OrderPlaced amounts below, at and above the high-value threshold."""
    if detail_type != "OrderPlaced":
        return [sample_event(detail_type, orderId=order_id(d)) for d in HEX]
    totals = (1, threshold_cents, threshold_cents + 1, 10 * threshold_cents)
    return [order_placed(d, total) for d in HEX for total in totals]


def s3_object_created(bucket: str, key: str = "orders/2026-11-27.jsonl") -> dict[str, Any]:
    """The event S3 sends to the default bus when an object is created (EventBridge
    notifications on), as AWS documents it."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-27T10:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 5,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "sequencer": "00617F08299329D189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


# The saga's own events: what saga_progress folds into each order's saga state.
SAGA_EVENTS = [
    "InventoryReserved",
    "InventoryReservationFailed",
    "PaymentProcessed",
    "PaymentFailed",
    "OrderShipped",
    "ShippingFailed",
    "PaymentRefunded",
    "InventoryReleased",
]
