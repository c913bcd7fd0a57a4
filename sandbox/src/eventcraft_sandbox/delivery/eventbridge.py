"""EventBridge delivery with AWS's semantics, replacing moto's.

moto delivers `PutEvents` synchronously inside the call, only to SQS, logs, archives
and other buses (a Lambda, Step Functions or Kinesis target raises
`NotImplementedError`), with its own pattern matcher, to disabled rules too, ignoring
`Input`/`InputPath`, retry policies and dead-letter queues. Here `PutEvents` on any bus
(the API call, handled by moto's request parsing, then by `put_events` below):

* validates each entry as moto does and answers with event ids at once;
* matches the event against every ENABLED rule of its bus with the project's matcher
  (`pulumi_eventcraft.event_pattern.compile_pattern`, compiled once per rule) and keeps it in
  every archive of the bus whose pattern matches (archives are moto's managed
  `Events-Archive-<name>` rules, whose pattern excludes replayed events);
* schedules one delivery per matching target, run by the scheduler:
  - Lambda: handed to Lambda's asynchronous queue (`LambdaAsync`: its own retries and
    OnFailure destination) after checking the function exists and its resource policy
    lets this rule invoke it;
  - Step Functions: `StartExecution` with the target's role (name: the event id and
    target id, so a retried delivery cannot start a second execution);
  - Kinesis: `PutRecord` with the role, partition key from
    `KinesisParameters.PartitionKeyPath` (default: the event id);
  - SQS: `SendMessage` as EventBridge after checking the queue policy (FIFO: the
    `MessageGroupId` of `SqsParameters`; the queue must have content-based
    deduplication, as AWS requires);
  - another event bus: the original event, with the role (same account) or straight
    into the other account's bus;
  - CloudWatch Logs: a log stream per event;
  with `InputTransformer` (`InputPathsMap` + `InputTemplate`, including
  `<aws.events.rule-arn>`, `<aws.events.rule-name>`, `<aws.events.event>`,
  `<aws.events.event.json>`, `<aws.events.event.ingestion-time>`), constant `Input` or
  `InputPath` applied;
* a failed delivery is retried per the target's `RetryPolicy`
  (`MaximumRetryAttempts`, default 185; `MaximumEventAgeInSeconds`, default 86400)
  with exponential backoff on the virtual clock (1 s, 2 s, 4 s, ... at most 300 s; no
  jitter, for determinism); missing permissions and missing targets are not retried
  (as AWS); then the original event goes to the target's `DeadLetterConfig` queue with
  the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE,
  EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS.

S3 notifications of an EventBridge-enabled bucket (moto sends them to rules directly,
not through `PutEvents`) are built as AWS builds them (`s3_event`) and routed the same
way, on the account's default bus.

`replay(archive, start, end, ...)` (also what `StartReplay` does) re-puts the archived
events whose `time` is within the window, with `replay-name` set, to the destination
bus's rules (only those in `rule_arns`, if given).

Faults (`eventcraft_sandbox.faults`):

* `redeliver=P` (TARGET `events`): a delivery to a target that succeeded is, with
  probability P, made once more a seeded 1..60 virtual seconds later (EventBridge
  delivers at least once): the same event (same `id`) to the same target. A Lambda
  target is delivered by Lambda's event queue, which may duplicate too
  (`lambda_async`: a fault on the function applies there). A copy is not copied again.
* `reorder=SECONDS` (TARGET `events` or a Lambda target's function): each delivery to
  a target is held back by a seeded delay in [0, SECONDS) of virtual time, so later
  events may overtake it (EventBridge promises no order, to a FIFO queue target
  neither: the queue keeps the order they reach it in). Retries keep their backoff.

Scheduled rules (`ScheduleExpression`) are run by `delivery.schedules`, through
`deliver`. Approximations: API destinations are not called; the transformer's JSONPath
is the subset EventBridge documents (dot notation, array indices, `*`); a path that
matches nothing fills `null` outside quotes and nothing inside a string; replayed
events keep their original `id`.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from eventcraft_sandbox.clock import Patches
from eventcraft_sandbox.delivery.common import (
    Arn,
    DeliveryContext,
    DeliveryFailure,
    classify,
    moto_lock,
    policy_allows,
    short_name,
)
from eventcraft_sandbox.delivery.lambda_async import LambdaAsync
from pulumi_eventcraft.event_pattern import (
    CompiledPattern,
    InvalidEventPatternError,
    compile_pattern,
)

__all__ = [
    "DEFAULT_MAX_EVENT_AGE",
    "DEFAULT_MAX_RETRIES",
    "EVENTS_SERVICE",
    "ArchivedEvent",
    "EventBridgeDelivery",
    "json_path",
    "render_template",
    "target_input",
]

EVENTS_SERVICE = "events.amazonaws.com"
DEFAULT_MAX_RETRIES = 185
DEFAULT_MAX_EVENT_AGE = 86_400
MAX_BACKOFF = 300.0
MAX_ENTRIES = 10


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# -------------------------------------------------------------- input transforms

_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+|\*)\]|\[['\"]([^'\"]+)['\"]\]")


def json_path(document: Any, path: str) -> Any:
    """The value at a JSONPath (`$`, `$.a.b`, `$.a[0]`, `$.a[*].b`, `$['a']`), or
    `MISSING`. A `*` gives the list of what each element yields."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r} is not a JSON path (it must start with '$')")
    rest = path[1:]
    tokens: list[str | int] = []
    pos = 0
    while pos < len(rest):
        match = _PATH_TOKEN.match(rest, pos)
        if match is None:
            raise ValueError(f"{path!r}: cannot read {rest[pos:]!r}")
        name, index, quoted = match.groups()
        if index is not None:
            tokens.append("*" if index == "*" else int(index))
        else:
            tokens.append(name if name is not None else quoted)
        pos = match.end()
    return _walk(document, tokens)


def _walk(node: Any, tokens: list[str | int]) -> Any:
    for position, token in enumerate(tokens):
        if token == "*":
            if isinstance(node, list):
                items = [_walk(item, tokens[position + 1 :]) for item in node]
            elif isinstance(node, dict):
                items = [_walk(item, tokens[position + 1 :]) for item in node.values()]
            else:
                return MISSING
            return [item for item in items if item is not MISSING]
        if isinstance(token, int):
            if not isinstance(node, list) or token >= len(node):
                return MISSING
            node = node[token]
        else:
            if not isinstance(node, dict) or token not in node:
                return MISSING
            node = node[token]
    return node


_PLACEHOLDER = re.compile(r"<([^<>\s]+)>")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _fill(value: Any, *, in_string: bool, json_template: bool) -> str:
    if value is MISSING:
        return "" if in_string or not json_template else "null"
    if isinstance(value, str):
        if in_string:
            return json.dumps(value)[1:-1] if json_template else value
        return json.dumps(value) if json_template else value
    text = _compact(value)
    if in_string and json_template and isinstance(value, dict | list):
        return json.dumps(text)[1:-1]
    return text


def render_template(template: str, values: Mapping[str, Any]) -> str:
    """Fill `<name>` placeholders as EventBridge's InputTemplate does.

    In a JSON template (one starting with `{` or `[`), a value outside quotes is
    inserted as JSON (`"text"`, `12`, `{...}`) and one inside a string literal as its
    text, escaped; in a plain-text template values are inserted as text.
    """
    json_template = template.lstrip().startswith(("{", "["))
    out: list[str] = []
    in_string = escaped = False
    pos = 0
    while pos < len(template):
        char = template[pos]
        if char == "<":
            match = _PLACEHOLDER.match(template, pos)
            if match is not None and match.group(1) in values:
                out.append(
                    _fill(values[match.group(1)], in_string=in_string, json_template=json_template)
                )
                pos = match.end()
                continue
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        out.append(char)
        pos += 1
    return "".join(out)


def target_input(
    target: Mapping[str, Any],
    event: Mapping[str, Any],
    *,
    rule_arn: str,
    rule_name: str,
    ingestion_time: str,
) -> str:
    """What EventBridge sends a target for `event`: the event JSON, or the target's
    `Input`, `InputPath` selection or `InputTransformer` output."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        selected = json_path(event, str(target["InputPath"]))
        return "null" if selected is MISSING else json.dumps(selected)
    transformer = target.get("InputTransformer")
    if transformer:
        without_detail = {k: v for k, v in event.items() if k != "detail"}
        values: dict[str, Any] = {
            "aws.events.rule-arn": rule_arn,
            "aws.events.rule-name": rule_name,
            "aws.events.event.ingestion-time": ingestion_time,
            "aws.events.event": without_detail,
            "aws.events.event.json": dict(event),
        }
        for name, path in (transformer.get("InputPathsMap") or {}).items():
            values[name] = json_path(event, str(path))
        return render_template(str(transformer.get("InputTemplate", "")), values)
    return json.dumps(event)


# ---------------------------------------------------------------------- events


def _event_time(value: Any, default: float) -> float:
    """An entry's `Time` (epoch number, datetime or ISO text) in epoch seconds."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    text = str(value)
    try:
        return float(text)
    except ValueError:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()


def _parse_event_time(text: str) -> float:
    return _event_time(text, 0.0)


@dataclass(frozen=True)
class ArchivedEvent:
    """An event kept by an archive: the event, its `time` and when it was ingested."""

    archive_arn: str
    event_time: float
    ingested: float
    event: dict[str, Any]


@dataclass
class _Delivery:
    rule_arn: str
    rule_name: str
    target: dict[str, Any]
    event: dict[str, Any]
    ingested: float
    account: str
    region: str
    attempts: int = 0
    key: str = field(default="")
    redelivered: bool = False  # a copy made by the `redeliver` fault


class EventBridgeDelivery:
    """See the module docstring. `install()` patches moto's events backend."""

    def __init__(self, ctx: DeliveryContext, lambda_async: LambdaAsync) -> None:
        self.ctx = ctx
        self.lambda_async = lambda_async
        self.archives: dict[str, list[ArchivedEvent]] = {}
        self.errors: list[str] = []
        self._patterns: dict[tuple[str, str], CompiledPattern | InvalidEventPatternError] = {}
        self._patches = Patches()
        self._replay_ids = itertools.count(1)
        self._s3_sequence = itertools.count(1)

    # -- install ------------------------------------------------------------------

    def install(self) -> None:
        from moto.events import models as events_models

        delivery = self

        def put_events(backend: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return delivery.put_events(backend, events)

        def replay_events(replay: Any, archive: Any) -> None:
            delivery._replay_model(replay, archive)

        self._patches.set(events_models.EventsBackend, "put_events", put_events)
        self._patches.set(events_models.Replay, "replay_events", replay_events)

        # An EventBridge-enabled bucket's notifications: moto sends them with
        # `Rule.send_to_targets` to every bus's rules (its own matcher, SQS/logs/bus
        # targets only, errors swallowed), bypassing `put_events`; route them here.
        from moto.s3 import notifications as s3_notifications

        def s3_event(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
            delivery.s3_event(account_id, bucket, event_name, key)

        self._patches.set(s3_notifications, "_send_event_bridge_message", s3_event)

    def uninstall(self) -> None:
        self._patches.restore()

    # -- PutEvents ----------------------------------------------------------------

    def put_events(self, backend: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """moto's `EventsBackend.put_events`, with AWS's delivery (module docstring)."""
        from moto.events.models import ValidationException
        from moto.moto_api._internal import mock_random

        if len(entries) > MAX_ENTRIES:
            raise ValidationException(
                "1 validation error detected: Value '[PutEventsRequestEntry]' at 'entries' "
                "failed to satisfy constraint: Member must have length less than or equal to 10"
            )
        results: list[dict[str, Any]] = []
        for entry in entries:
            error = _entry_error(entry)
            if error is not None:
                results.append(error)
                continue
            target_backend, bus = self._bus(backend, entry.get("EventBusName"))
            now = self.ctx.clock.now()
            event_id = str(mock_random.uuid4())
            event = {
                "version": "0",
                "id": event_id,
                "detail-type": entry["DetailType"],
                "source": entry["Source"],
                "account": backend.account_id,
                "time": self.ctx.clock.iso(_event_time(entry.get("Time"), now)),
                "region": backend.region_name,
                "resources": list(entry.get("Resources") or []),
                "detail": json.loads(entry["Detail"]),
            }
            results.append({"EventId": event_id})
            self.route(target_backend, bus, event)
        return results

    def s3_event(self, account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        """What an EventBridge-enabled bucket sends for `event_name` (moto's
        `s3:ObjectCreated:Put`, ...) on `key`: the event AWS documents (S3 user guide,
        "EventBridge event message structure") to the DEFAULT bus of the bucket's
        account and region. moto's own builder differs from AWS in a fixed `id`, an
        epoch `time`, `eTag` (AWS: `etag`), `reason` and sending to every bus."""
        from moto.events.models import events_backends
        from moto.moto_api._internal import mock_random
        from moto.s3.notifications import _detail_type

        if key is None:  # moto notifies the deletion of a key that was not there
            return
        if event_name == "s3:ObjectTagging:Put" and not _s3_tags(key):
            return  # moto's PutObject "tags" every new key, even with no tags; S3 does not
        detail_type = _detail_type(event_name)
        reason, deletion_type = _S3_REASONS.get(event_name, (None, None))
        obj: dict[str, Any] = {"key": key.name}
        if detail_type != "Object Deleted":
            obj.update(size=key.size, etag=key.etag.replace('"', ""))
        if key.version_id and key.version_id != "null":
            obj["version-id"] = key.version_id
        obj["sequencer"] = f"{next(self._s3_sequence):016X}"
        detail: dict[str, Any] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": mock_random.get_random_hex(16).upper(),
            "requester": account_id,
            "source-ip-address": "1.2.3.4",  # moto's; no caller address here
        }
        if reason is not None:
            detail["reason"] = reason
        if deletion_type is not None:
            detail["deletion-type"] = deletion_type
        event = {
            "version": "0",
            "id": str(mock_random.uuid4()),
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": account_id,
            "time": self.ctx.clock.iso(),
            "region": bucket.region_name,
            "resources": [bucket.arn],
            "detail": detail,
        }
        backend, bus = self._bus(events_backends[account_id][bucket.region_name], "default")
        self.route(backend, bus, event)

    def _bus(self, backend: Any, name_or_arn: str | None) -> tuple[Any, Any]:
        from moto.events.models import events_backends

        if name_or_arn and name_or_arn.startswith("arn:"):
            arn = Arn.parse(name_or_arn)
            owner = events_backends[arn.account][arn.region]
            return owner, owner.describe_event_bus(arn.resource_name)
        return backend, backend.describe_event_bus(name_or_arn or "default")

    def route(
        self,
        backend: Any,
        bus: Any,
        event: dict[str, Any],
        *,
        rule_arns: set[str] | None = None,
    ) -> int:
        """Match `event` against the bus's enabled rules; archive it and schedule a
        delivery per matching target. Returns the number of deliveries scheduled."""
        scheduled = 0
        ingested = self.ctx.clock.now()
        for rule in list(bus.rules.values()):
            if not str(rule.state or "ENABLED").startswith("ENABLED"):
                continue
            if rule_arns is not None and rule.arn not in rule_arns:
                continue
            compiled = self._pattern(rule)
            if compiled is None or not compiled.matches(event):
                continue
            scheduled += self.deliver(backend, rule, event, ingested=ingested)
        return scheduled

    def deliver(
        self, backend: Any, rule: Any, event: dict[str, Any], *, ingested: float | None = None
    ) -> int:
        """Schedule a delivery of `event` to each target of `rule` (an archive keeps
        it); returns the number scheduled. `route` calls it for each matching rule, the
        schedules (`delivery.schedules`) for a scheduled rule's event."""
        ingested = self.ctx.clock.now() if ingested is None else ingested
        scheduled = 0
        for target in list(rule.targets):
            arn = str(target.get("Arn", ""))
            if _is_archive_target(arn):
                self._archive(backend, rule, event, ingested)
                continue
            delivery = _Delivery(
                rule_arn=rule.arn,
                rule_name=rule.name,
                target=json.loads(json.dumps(target)),
                event=event,
                ingested=ingested,
                account=backend.account_id,
                region=backend.region_name,
            )
            delivery.key = f"eventbridge {rule.name} -> {target.get('Id')}"
            function = arn if arn.split(":")[2:3] == ["lambda"] else None
            held_back = self.ctx.reorder_delay(service="events", function_arn=function)
            if held_back > 0:
                self.ctx.scheduler.call_later(held_back, delivery.key, self._attempter(delivery))
            else:
                self.ctx.scheduler.call_soon(delivery.key, self._attempter(delivery))
            scheduled += 1
        return scheduled

    def _attempter(self, delivery: _Delivery) -> Callable[[], None]:
        return lambda: self._attempt(delivery)

    def _pattern(self, rule: Any) -> CompiledPattern | None:
        text = rule.event_pattern.dump() if rule.event_pattern is not None else None
        if not text:
            return None  # a scheduled rule
        key = (rule.arn, text)
        compiled = self._patterns.get(key)
        if compiled is None:
            try:
                compiled = compile_pattern(text)
            except InvalidEventPatternError as exc:
                compiled = exc
                self.errors.append(f"rule {rule.arn}: invalid event pattern: {exc}")
            self._patterns[key] = compiled
        return compiled if isinstance(compiled, CompiledPattern) else None

    # -- archives -----------------------------------------------------------------

    def _archive(self, backend: Any, rule: Any, event: dict[str, Any], ingested: float) -> None:
        archive = next(
            (a for a in backend.archives.values() if a.rule is rule or a.rule == rule), None
        )
        if archive is None:
            return
        kept = self.archives.setdefault(archive.arn, [])
        kept.append(
            ArchivedEvent(archive.arn, _parse_event_time(event["time"]), ingested, dict(event))
        )
        self._expire(archive)
        archive.events.append(dict(event))

    def _expire(self, archive: Any) -> None:
        days = int(archive.retention or 0)
        if days <= 0:
            return
        oldest = self.ctx.clock.now() - days * 86_400
        kept = self.archives.get(archive.arn, [])
        self.archives[archive.arn] = [e for e in kept if e.ingested >= oldest]

    def archived(self, archive: str) -> list[ArchivedEvent]:
        """The events an archive (name or ARN) keeps now, oldest first."""
        model, _ = self._find_archive(archive)
        self._expire(model)
        return list(self.archives.get(model.arn, []))

    def _find_archive(self, archive: str) -> tuple[Any, Any]:
        from moto.events.models import events_backends

        for regions in events_backends.values():
            for backend in regions.values():
                for model in backend.archives.values():
                    if archive in (model.name, model.arn):
                        return model, backend
        raise KeyError(f"no archive {archive!r} in the sandbox")

    def replay(
        self,
        archive: str,
        start: float | datetime.datetime | str,
        end: float | datetime.datetime | str,
        *,
        destination: str | None = None,
        rule_arns: list[str] | None = None,
        name: str | None = None,
    ) -> str:
        """Re-put the events `archive` (name or ARN) keeps whose `time` is within
        [`start`, `end`] to `destination` (a bus ARN; default: the archive's bus),
        only to the rules in `rule_arns` if given, each with `replay-name`. Deliveries
        are scheduled; run the scheduler to deliver them. Returns the replay's name."""
        with moto_lock():
            model, backend = self._find_archive(archive)
        replay_name = name or f"sandbox-replay-{next(self._replay_ids)}"
        self._schedule_replay(
            backend=backend,
            archive=model,
            replay_name=replay_name,
            start=_event_time(start, 0.0),
            end=_event_time(end, 0.0),
            destination=destination or model.source_arn,
            rule_arns=rule_arns,
            model=None,
        )
        return replay_name

    def _replay_model(self, replay: Any, archive: Any) -> None:
        """moto's `Replay.replay_events` (StartReplay), delivered by the sandbox."""
        from moto.events.models import events_backends

        backend = events_backends[replay.account_id][replay.region]
        destination = replay.destination or {}
        self._schedule_replay(
            backend=backend,
            archive=archive,
            replay_name=replay.name,
            start=_event_time(replay.event_start_time, 0.0),
            end=_event_time(replay.event_end_time, 0.0),
            destination=str(destination.get("Arn") or archive.source_arn),
            rule_arns=list(destination.get("FilterArns") or []) or None,
            model=replay,
        )

    def _schedule_replay(
        self,
        *,
        backend: Any,
        archive: Any,
        replay_name: str,
        start: float,
        end: float,
        destination: str,
        rule_arns: list[str] | None,
        model: Any,
    ) -> None:
        from moto.events.models import ReplayState

        self._expire(archive)
        selected = [e for e in self.archives.get(archive.arn, []) if start <= e.event_time <= end]
        filter_arns = set(rule_arns) if rule_arns else None
        if model is not None:
            model.state = ReplayState.RUNNING
        self.ctx.record(
            "eventbridge.replay",
            archive.name,
            destination,
            "started",
            f"{replay_name}: {len(selected)} events",
        )
        for archived in selected:
            event = dict(archived.event, **{"replay-name": replay_name})

            def put(event: dict[str, Any] = event) -> None:
                with moto_lock():
                    owner, bus = self._bus(backend, destination)
                    self.route(owner, bus, event, rule_arns=filter_arns)

            self.ctx.scheduler.call_soon(f"eventbridge-replay {replay_name}", put)

        def done() -> None:
            if model is not None:
                model.state = ReplayState.COMPLETED
                model.end_time = self.ctx.clock.now()
            self.ctx.record(
                "eventbridge.replay", archive.name, destination, "completed", replay_name
            )

        self.ctx.scheduler.call_soon(f"eventbridge-replay {replay_name}", done)

    # -- delivering ---------------------------------------------------------------

    def _attempt(self, delivery: _Delivery) -> None:
        target_arn = str(delivery.target["Arn"])
        source = delivery.rule_name
        try:
            self._send(delivery)
        except Exception as exc:  # any failure is EventBridge's to retry or dead-letter
            failure = classify(exc)
        else:
            self.ctx.record(
                "eventbridge.target", source, short_name(target_arn), "ok", _summary(delivery)
            )
            if not delivery.redelivered and self.ctx.redeliver(service="events"):
                self._redeliver(delivery)
            return
        policy = delivery.target.get("RetryPolicy") or {}
        max_retries = int(policy.get("MaximumRetryAttempts", DEFAULT_MAX_RETRIES))
        max_age = int(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE))
        retries_done = delivery.attempts
        delay = min(MAX_BACKOFF, 2.0**retries_done)
        age = self.ctx.clock.now() - delivery.ingested
        exhausted: str | None = None
        if failure.retriable:
            if retries_done >= max_retries:
                exhausted = "MaximumRetryAttempts"
            elif age + delay > max_age:
                exhausted = "MaximumEventAgeInSeconds"
        if failure.retriable and exhausted is None:
            delivery.attempts += 1
            self.ctx.record(
                "eventbridge.target",
                source,
                short_name(target_arn),
                "retry",
                f"{failure.code}: {failure.message}",
            )
            self.ctx.scheduler.call_later(
                delay, f"{delivery.key} (retry)", lambda: self._attempt(delivery)
            )
            return
        self.ctx.record(
            "eventbridge.target",
            source,
            short_name(target_arn),
            "failed",
            f"{failure.code}: {failure.message}",
        )
        self._dead_letter(delivery, failure, exhausted)

    def _redeliver(self, delivery: _Delivery) -> None:
        """The `redeliver` fault: deliver the same event to the target once more."""
        copy = replace(delivery, attempts=0, redelivered=True)
        delay = self.ctx.redelivery_delay()
        self.ctx.record(
            "eventbridge.target",
            delivery.rule_name,
            short_name(str(delivery.target["Arn"])),
            "redeliver",
            f"{_summary(delivery)} in {delay:.1f} s",
        )
        self.ctx.scheduler.call_later(delay, f"{delivery.key} (redelivered)", self._attempter(copy))

    def _dead_letter(
        self, delivery: _Delivery, failure: DeliveryFailure, exhausted: str | None
    ) -> None:
        dlq = (delivery.target.get("DeadLetterConfig") or {}).get("Arn")
        target_arn = str(delivery.target["Arn"])
        if not dlq:
            self.ctx.record(
                "eventbridge.dlq",
                delivery.rule_name,
                short_name(target_arn),
                "dropped",
                failure.code,
            )
            return
        attributes = {
            "RULE_ARN": delivery.rule_arn,
            "TARGET_ARN": target_arn,
            "ERROR_CODE": failure.code,
            "ERROR_MESSAGE": failure.message[:1000] or failure.code,
            "RETRY_ATTEMPTS": str(delivery.attempts),
        }
        if exhausted:
            attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
        try:
            self.ctx.send_to_queue_as_service(
                dlq,
                json.dumps(delivery.event),
                service=EVENTS_SERVICE,
                source_arn=delivery.rule_arn,
                attributes=attributes,
            )
        except Exception as exc:  # AWS counts it (InvocationsFailedToBeSentToDLQ)
            self.ctx.record(
                "eventbridge.dlq", delivery.rule_name, short_name(dlq), "failed", str(classify(exc))
            )
            return
        self.ctx.record("eventbridge.dlq", delivery.rule_name, short_name(dlq), "ok", failure.code)

    def _input(self, delivery: _Delivery) -> str:
        return target_input(
            delivery.target,
            delivery.event,
            rule_arn=delivery.rule_arn,
            rule_name=delivery.rule_name,
            ingestion_time=self.ctx.clock.iso_millis(delivery.ingested),
        )

    def _send(self, delivery: _Delivery) -> None:
        target = delivery.target
        arn = Arn.parse(str(target["Arn"]))
        if arn.service == "lambda":
            self._to_lambda(delivery, arn)
        elif arn.service == "sqs":
            self._to_sqs(delivery, arn)
        elif arn.service == "states":
            self._to_state_machine(delivery, arn)
        elif arn.service == "kinesis":
            self._to_kinesis(delivery, arn)
        elif arn.service == "events" and arn.resource_type == "event-bus":
            self._to_bus(delivery, arn)
        elif arn.service == "logs":
            self._to_logs(delivery, arn)
        else:
            raise DeliveryFailure(
                "INVALID_PARAMETER",
                f"the sandbox does not deliver to {arn.service} targets ({target['Arn']})",
                retriable=False,
            )

    def _to_lambda(self, delivery: _Delivery, arn: Arn) -> None:
        function_arn = str(delivery.target["Arn"])
        client = self.ctx.admin("lambda", arn.region)
        try:
            client.get_function(FunctionName=function_arn)
        except ClientError as exc:
            raise classify(exc) from exc
        if self.ctx.check_resource_policies:
            try:
                policy = client.get_policy(FunctionName=function_arn)["Policy"]
            except ClientError:
                policy = None
            if not policy_allows(
                policy,
                service=EVENTS_SERVICE,
                action="lambda:InvokeFunction",
                resource=function_arn,
                source_arn=delivery.rule_arn,
                source_account=delivery.account,
            ):
                raise DeliveryFailure(
                    "NO_PERMISSIONS",
                    f"the resource policy of {function_arn} does not let rule "
                    f"{delivery.rule_arn} invoke it",
                    retriable=False,
                )
        payload_text = self._input(delivery)
        try:
            payload: Any = json.loads(payload_text)
        except ValueError:
            payload = payload_text
        self.lambda_async.submit(function_arn, payload, source=f"rule {delivery.rule_name}")

    def _to_sqs(self, delivery: _Delivery, arn: Arn) -> None:
        queue_arn = str(delivery.target["Arn"])
        group_id = (delivery.target.get("SqsParameters") or {}).get("MessageGroupId")
        if queue_arn.endswith(".fifo"):
            url = self.ctx.queue_url(queue_arn)
            attributes = self.ctx.admin("sqs", arn.region).get_queue_attributes(
                QueueUrl=url, AttributeNames=["ContentBasedDeduplication"]
            )["Attributes"]
            if attributes.get("ContentBasedDeduplication") != "true":
                raise DeliveryFailure(
                    "INVALID_PARAMETER",
                    f"FIFO queue {queue_arn} needs content-based deduplication for "
                    "EventBridge to send to it",
                    retriable=False,
                )
        self.ctx.send_to_queue_as_service(
            queue_arn,
            self._input(delivery),
            service=EVENTS_SERVICE,
            source_arn=delivery.rule_arn,
            group_id=group_id,
        )

    def _role(self, delivery: _Delivery) -> str:
        role = delivery.target.get("RoleArn")
        if not role:
            raise DeliveryFailure(
                "NO_PERMISSIONS",
                f"target {delivery.target.get('Id')} of {delivery.rule_arn} has no RoleArn",
                retriable=False,
            )
        return str(role)

    def _client(self, delivery: _Delivery, service: str, region: str) -> Any:
        """A client with the target's role, assumed as EventBridge assumes it."""
        return self.ctx.role_client(
            self._role(delivery),
            service,
            region,
            principal=EVENTS_SERVICE,
            source_arn=delivery.rule_arn,
        )

    def _to_state_machine(self, delivery: _Delivery, arn: Arn) -> None:
        sfn = self._client(delivery, "stepfunctions", arn.region)
        name = f"{delivery.event['id']}_{delivery.target.get('Id', '')}"
        name = re.sub(r"[^A-Za-z0-9_-]", "-", name)[:80]
        try:
            sfn.start_execution(
                stateMachineArn=str(delivery.target["Arn"]), name=name, input=self._input(delivery)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return
            raise classify(exc) from exc

    def _to_kinesis(self, delivery: _Delivery, arn: Arn) -> None:
        kinesis = self._client(delivery, "kinesis", arn.region)
        key_path = (delivery.target.get("KinesisParameters") or {}).get("PartitionKeyPath")
        key: Any = json_path(delivery.event, str(key_path)) if key_path else MISSING
        if key is MISSING or key is None:
            key = delivery.event["id"]
        partition_key = key if isinstance(key, str) else _compact(key)
        try:
            kinesis.put_record(
                StreamARN=str(delivery.target["Arn"]),
                Data=self._input(delivery).encode(),
                PartitionKey=partition_key[:256],
            )
        except ClientError as exc:
            raise classify(exc) from exc

    def _to_bus(self, delivery: _Delivery, arn: Arn) -> None:
        if arn.account != delivery.account:
            from moto.events.models import events_backends

            with moto_lock():
                try:
                    owner = events_backends[arn.account][arn.region]
                    bus = owner.describe_event_bus(arn.resource_name)
                except Exception as exc:  # moto's ResourceNotFoundException
                    raise DeliveryFailure("RESOURCE_NOT_FOUND", str(exc), retriable=False) from exc
                self.route(owner, bus, dict(delivery.event))
            return
        events = self._client(delivery, "events", arn.region)
        event = delivery.event
        try:
            response = events.put_events(
                Entries=[
                    {
                        "Time": _parse_event_time(event["time"]),
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                        "Resources": list(event.get("resources") or []),
                        "EventBusName": str(delivery.target["Arn"]),
                    }
                ]
            )
        except ClientError as exc:
            raise classify(exc) from exc
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise DeliveryFailure(
                "INVALID_PARAMETER",
                f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}",
                retriable=False,
            )

    def _to_logs(self, delivery: _Delivery, arn: Arn) -> None:
        logs = self.ctx.admin("logs", arn.region)
        group = arn.resource.split(":", 2)[1]
        stream = f"{delivery.event['id']}-{delivery.target.get('Id', '')}"
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[
                    {
                        "timestamp": int(self.ctx.clock.now() * 1000),
                        "message": self._input(delivery),
                    }
                ],
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceAlreadyExistsException":
                return
            raise classify(exc) from exc


# moto's S3 event name -> the event's `reason` and `deletion-type` (AWS's values).
def _s3_tags(key: Any) -> dict[str, str]:
    from moto.s3.models import s3_backends

    backend = s3_backends[key.account_id][key.partition]
    tags: dict[str, str] = backend.tagger.get_tag_dict_for_resource(key.arn)
    return tags


_S3_REASONS: dict[str, tuple[str | None, str | None]] = {
    "s3:ObjectCreated:Put": ("PutObject", None),
    "s3:ObjectCreated:Post": ("POST Object", None),
    "s3:ObjectCreated:Copy": ("CopyObject", None),
    "s3:ObjectCreated:CompleteMultipartUpload": ("CompleteMultipartUpload", None),
    "s3:ObjectRemoved:Delete": ("DeleteObject", "Permanently Deleted"),
    "s3:ObjectRemoved:DeleteMarkerCreated": ("DeleteObject", "Delete Marker Created"),
    "s3:LifecycleExpiration:Delete": ("Lifecycle Expiration", "Permanently Deleted"),
    "s3:LifecycleExpiration:DeleteMarkerCreated": (
        "Lifecycle Expiration",
        "Delete Marker Created",
    ),
}


def _is_archive_target(arn: str) -> bool:
    # moto's managed archive rules target "arn:aws:events:<region>:::".
    return re.fullmatch(r"arn:[^:]+:events:[^:]*:::", arn) is not None


def _entry_error(entry: Mapping[str, Any]) -> dict[str, str] | None:
    for key in ("Source", "DetailType", "Detail"):
        if not entry.get(key):
            return {
                "ErrorCode": "InvalidArgument",
                "ErrorMessage": f"Parameter {key} is not valid. Reason: {key} is a required "
                "argument.",
            }
    try:
        detail = json.loads(entry["Detail"])
    except ValueError:
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    if not isinstance(detail, dict):
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    return None


def _summary(delivery: _Delivery) -> str:
    event = delivery.event
    replay = f" replay={event['replay-name']}" if "replay-name" in event else ""
    return f"{event.get('detail-type')}{replay}"
