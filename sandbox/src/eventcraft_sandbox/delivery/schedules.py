"""Scheduled EventBridge rules (`ScheduleExpression`), run on the virtual clock.

Every enabled rule of a default bus with a schedule fires as EventBridge fires it: at
each time its expression gives (`pulumi_eventcraft.schedule`: `rate(...)` counted from
when the sandbox first saw the rule, `cron(...)` at the matching UTC minutes), an event

    {"version": "0", "id": "<uuid>", "detail-type": "Scheduled Event",
     "source": "aws.events", "account": "<rule's account>", "time": "<now>Z",
     "region": "<rule's region>", "resources": ["<rule ARN>"], "detail": {}}

goes to each of the rule's targets through `EventBridgeDelivery.deliver`: the same
input transformation, retry policy, dead-letter queue and permission checks as any
event (a Lambda target is invoked asynchronously, with Lambda's retries). Rules put
after `install()` are picked up (`PutRule` is watched); a deleted rule stops, a
disabled one skips its firings.

Quiet: each rule is a `RecurringWork` of the scheduler (`eventcraft_sandbox.clock`).
`run_until_quiet` ends once only the rules' firings are pending and every rule is
settled: it fired after the last other activity, and each of its targets took that
firing (EventBridge delivered it, and a Lambda target's invocation succeeded). A target
that found nothing to do ends the run; one that failed (e.g. a sweeper during an
outage) fires again on schedule until it succeeds, or until the run's bounds. So a
target that leaves work for a later firing must say so by failing (the outbox sweeper
raises when rows are left), or the run may end before that firing.
Approximations: the first `rate` firing is one period after the sandbox saw the rule;
the firing time has no jitter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventcraft_sandbox.clock import Handle, Patches
from eventcraft_sandbox.delivery.common import Arn, DeliveryContext, short_name
from eventcraft_sandbox.delivery.eventbridge import EventBridgeDelivery
from eventcraft_sandbox.lambda_runtime import InvocationResult
from pulumi_eventcraft.schedule import InvalidScheduleError, Schedule, parse_schedule

__all__ = ["SCHEDULED_EVENT", "ScheduleDelivery", "ScheduledRule"]

SCHEDULED_EVENT = "Scheduled Event"
SCHEDULED_SOURCE = "aws.events"
DEFAULT_BUS = "default"


@dataclass(eq=False)
class ScheduledRule:
    """One scheduled rule: when it fires next, and how its last firing went."""

    owner: ScheduleDelivery
    account: str
    region: str
    name: str
    expression: str
    schedule: Schedule
    anchor: float
    handle: Handle | None = None
    fired_at_activity: int | None = None
    log_mark: int = 0
    targets: tuple[str, ...] = ()
    invocations: dict[str, InvocationResult] = field(default_factory=dict)
    stopped: bool = False
    last_note: str = "not fired yet"

    # -- RecurringWork --------------------------------------------------------------

    def settled(self) -> bool:
        """Fired after the last activity, and every target took that firing."""
        if self.stopped or not self._enabled():
            return True
        scheduler = self.owner.ctx.scheduler
        return self.fired_at_activity == scheduler.activity and self._succeeded()

    def describe(self) -> str:
        return f"schedule {self.name} ({self.expression}): {self.last_note}"

    # -- firing ---------------------------------------------------------------------

    def rule(self) -> Any:
        """moto's rule, or None once deleted."""
        return self.owner.rule(self.account, self.region, self.name)

    def _enabled(self) -> bool:
        rule = self.rule()
        return rule is not None and str(rule.state or "ENABLED").startswith("ENABLED")

    def next_due(self, after: float) -> float | None:
        moment = datetime.fromtimestamp(after, UTC)
        anchor = datetime.fromtimestamp(self.anchor, UTC)
        due = self.schedule.next_after(moment, anchor=anchor)
        return None if due is None else due.timestamp()

    def plan(self) -> None:
        """Schedule the next firing (none when the expression has no more times)."""
        if self.stopped:
            return
        due = self.next_due(self.owner.ctx.clock.now())
        if due is None:
            self.stopped = True
            return
        self.handle = self.owner.ctx.scheduler.call_at(
            due, f"schedule {self.name}", self.fire, recurring=self
        )

    def fire(self) -> None:
        rule = self.rule()
        if rule is None or rule.scheduled_expression != self.expression:
            self.stopped = True  # deleted, or replaced (PutRule registered the new one)
            return
        if self._enabled():
            self._deliver(rule)
        self.plan()

    def _deliver(self, rule: Any) -> None:
        ctx = self.owner.ctx
        self.fired_at_activity = ctx.scheduler.activity
        self.log_mark = len(ctx.log.entries)
        self.targets = tuple(str(t.get("Arn", "")) for t in rule.targets)
        self.invocations = {}
        event = self.owner.scheduled_event(rule)
        ctx.record("schedule", self.name, self.expression, "fired", event["id"])
        self.owner.eventbridge.deliver(self.owner.backend(self.account, self.region), rule, event)

    def invoked(self, function_arn: str, result: InvocationResult) -> None:
        """A Lambda target of this rule ran for its firing."""
        if function_arn in self.targets:
            self.invocations[function_arn] = result

    def _succeeded(self) -> bool:
        entries = self.owner.ctx.log.entries[self.log_mark :]
        outcomes = {
            e.target: e.outcome
            for e in entries
            if e.kind == "eventbridge.target" and e.source == self.name
        }
        for arn in self.targets:
            delivered = outcomes.get(short_name(arn))
            if delivered != "ok":
                self.last_note = f"target {short_name(arn)}: delivery {delivered or 'pending'}"
                return False
            if Arn.parse(arn).service != "lambda":
                continue
            result = self.invocations.get(arn)
            if result is None or result.error_type is not None:
                error = "not run" if result is None else f"{result.error_type}: "
                error += "" if result is None else str(result.error_message)[:200]
                self.last_note = f"target {short_name(arn)}: {error}"
                return False
        self.last_note = "its last firing succeeded"
        return True


class ScheduleDelivery:
    """Runs the scheduled rules (module docstring). `install()` finds the rules and
    watches PutRule; `uninstall()` stops."""

    def __init__(self, ctx: DeliveryContext, eventbridge: EventBridgeDelivery) -> None:
        self.ctx = ctx
        self.eventbridge = eventbridge
        self.rules: dict[tuple[str, str, str], ScheduledRule] = {}
        self._patches = Patches()
        self._lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        from moto.events import models as events_models

        schedules = self
        original_put_rule = events_models.EventsBackend.put_rule

        def put_rule(backend: Any, *args: Any, **kwargs: Any) -> Any:
            rule = original_put_rule(backend, *args, **kwargs)
            schedules.watch(rule)
            return rule

        self._patches.set(events_models.EventsBackend, "put_rule", put_rule)
        previous: Callable[[str, Any, InvocationResult], None] | None = self.ctx.on_invoke

        def on_invoke(function_arn: str, payload: Any, result: InvocationResult) -> None:
            if previous is not None:
                previous(function_arn, payload, result)
            schedules._invoked(function_arn, result)

        self._patches.set(self.ctx, "on_invoke", on_invoke)
        self._installed = True
        for account, regions in list(events_models.events_backends.items()):
            for region, backend in list(regions.items()):
                bus = backend.event_buses.get(DEFAULT_BUS)
                for rule in list(bus.rules.values()) if bus is not None else ():
                    self.watch(rule, account=account, region=region)

    def uninstall(self) -> None:
        self._installed = False
        self._patches.restore()
        with self._lock:
            for scheduled in self.rules.values():
                scheduled.stopped = True
                if scheduled.handle is not None:
                    scheduled.handle.cancel()
            self.rules.clear()

    def watch(self, rule: Any, *, account: str | None = None, region: str | None = None) -> None:
        """Run `rule` on its schedule (a rule without one, or on another bus, is not
        scheduled; a changed expression starts over from now)."""
        expression = getattr(rule, "scheduled_expression", None)
        if not self._installed or not expression or rule.event_bus_name != DEFAULT_BUS:
            return
        try:
            schedule = parse_schedule(expression)
        except InvalidScheduleError as exc:
            self.ctx.record("schedule", rule.name, expression, "refused", str(exc))
            return
        key = (account or rule.account_id, region or rule.region_name, rule.name)
        with self._lock:
            existing = self.rules.get(key)
            if existing is not None and existing.expression == expression:
                return
            if existing is not None:
                existing.stopped = True
                if existing.handle is not None:
                    existing.handle.cancel()
            scheduled = ScheduledRule(
                self, key[0], key[1], rule.name, expression, schedule, self.ctx.clock.now()
            )
            self.rules[key] = scheduled
        scheduled.plan()

    def rule(self, account: str, region: str, name: str) -> Any:
        bus = self.backend(account, region).event_buses.get(DEFAULT_BUS)
        return None if bus is None else bus.rules.get(name)

    def backend(self, account: str, region: str) -> Any:
        from moto.events.models import events_backends

        return events_backends[account][region]

    def scheduled_event(self, rule: Any) -> dict[str, Any]:
        """The event EventBridge sends for a firing of `rule`."""
        from moto.moto_api._internal import mock_random

        return {
            "version": "0",
            "id": str(mock_random.uuid4()),
            "detail-type": SCHEDULED_EVENT,
            "source": SCHEDULED_SOURCE,
            "account": rule.account_id,
            "time": self.ctx.clock.iso(),
            "region": rule.region_name,
            "resources": [rule.arn],
            "detail": {},
        }

    def _invoked(self, function_arn: str, result: InvocationResult) -> None:
        cause = self.ctx.scheduler.current_cause
        if isinstance(cause, ScheduledRule) and cause.owner is self:
            cause.invoked(function_arn, result)
