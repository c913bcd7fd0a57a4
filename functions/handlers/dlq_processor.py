"""The DLQ tool: inspect a dead-letter queue, or redrive its messages after a fix.

Entry: `handler(event, context)`, invoked by an operator (console, CLI, a runbook), with
    {"action": "inspect" | "redrive", "max": N, "target": "queue" | "bus"}
- action: "inspect" (default) summarises up to `max` messages by error, detail-type
  and source, with a few samples, and leaves every message in the DLQ (made visible
  again at once). "redrive" moves up to `max` messages to `target`.
- max: messages to look at, 1..1000 (default 100).
- target (redrive only, required): "queue" sends each message to REDRIVE_QUEUE_URL (the
  queue whose redrive policy fed this DLQ, or a rule's target queue); "bus" puts the
  EventBridge event each message carries back on EVENT_BUS_NAME (every rule matching it
  delivers it again: consumers are idempotent on eventId, so the targets that had
  succeeded ignore it).

What each message is, and moving it: `eventcraft.dlq` (a stream failure record is a
pointer, never moved; a Lambda destination record goes to a queue as its original
payload). Never loses a message: a message is deleted from the DLQ only after the send
to its target succeeded; any other is reported and made visible again at once.
Per-message SendMessage/DeleteMessage (not the *Batch calls) keeps the role's actions
exactly those listed in ACCESS.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eventcraft import clients
from eventcraft import dlq as dlqs
from eventcraft.publisher import Publisher
from eventcraft.settings import env

ACCESS: Final[dict[str, frozenset[str]]] = {
    "DLQ_URL": frozenset(
        {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        }
    ),
    "REDRIVE_QUEUE_URL": frozenset({"sqs:SendMessage"}),
    "EVENT_BUS_NAME": frozenset({"events:PutEvents"}),
}
DLQ_URL_ENV: Final = "DLQ_URL"
REDRIVE_QUEUE_URL_ENV: Final = "REDRIVE_QUEUE_URL"
EVENT_BUS_ENV: Final = "EVENT_BUS_NAME"

# Hidden from other readers while this invocation handles them (seconds); longer than
# handling one receive batch takes.
VISIBILITY_TIMEOUT: Final = 120
MAX_SAMPLES: Final = 10


class DlqProcessorError(Exception):
    """Base of this tool's errors."""


class ConfigurationError(DlqProcessorError):
    """A required environment variable is missing."""


class InvalidCommandError(DlqProcessorError, ValueError):
    """The invocation event is not a valid command."""


def _env(name: str, why: str) -> str:
    return env(
        name,
        f"{why}. The function's component must set it (and grant the actions listed in "
        "ACCESS on it).",
        error=ConfigurationError,
    )


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["inspect", "redrive"] = "inspect"
    max: int = Field(default=100, ge=1, le=1000)
    target: Literal["queue", "bus"] | None = None


def parse_command(event: Mapping[str, Any] | None) -> Command:
    try:
        command = Command.model_validate(dict(event or {}))
    except ValidationError as exc:
        raise InvalidCommandError(
            f"invalid DLQ command {dict(event or {})!r}: {exc.errors()[0]['msg']} at "
            f"{'.'.join(map(str, exc.errors()[0]['loc'])) or '<root>'}. Send "
            '{"action": "inspect" | "redrive", "max": 1..1000, "target": "queue" | "bus"}.'
        ) from exc
    if command.action == "redrive" and command.target is None:
        raise InvalidCommandError(
            'redrive needs a target: "queue" (REDRIVE_QUEUE_URL) or "bus" (EVENT_BUS_NAME); '
            "inspect first to see what the messages are"
        )
    return command


# --- results ---------------------------------------------------------------------------


@dataclass
class Report:
    action: str
    dlq_url: str
    target: str | None = None
    examined: int = 0
    by_error: Counter[str] = field(default_factory=Counter)
    by_detail_type: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)
    run: dlqs.RedriveRun | None = None
    approximate_remaining: int | None = None

    def add(self, message: dlqs.DlqMessage) -> None:
        described = message.described
        self.examined += 1
        self.by_error[described.error] += 1
        self.by_detail_type[described.detail_type] += 1
        self.by_source[described.source] += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(
                {
                    "messageId": message.message_id,
                    "error": described.error,
                    "errorMessage": described.error_message,
                    "detailType": described.detail_type,
                    "source": described.source,
                    "eventId": described.event_id,
                    "orderId": described.detail_value("orderId"),
                }
            )

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "action": self.action,
            "dlqUrl": self.dlq_url,
            "examined": self.examined,
            "byError": dict(self.by_error),
            "byDetailType": dict(self.by_detail_type),
            "bySource": dict(self.by_source),
            "samples": self.samples,
            "approximateRemaining": self.approximate_remaining,
        }
        if self.run is not None:
            outcomes = self.run.outcomes
            result.update(
                target=self.target,
                moved=sum(o.status in ("moved", "moved-not-deleted") for o in outcomes),
                notMoved=[_moved(o) for o in outcomes if o.status == "not-moved"],
                movedNotDeleted=[_moved(o) for o in outcomes if o.status == "moved-not-deleted"],
            )
        return result


def _moved(outcome: dlqs.Outcome) -> dict[str, str]:
    return {"messageId": outcome.message.message_id, "reason": outcome.reason or ""}


# --- use cases ---------------------------------------------------------------------------


@functools.cache
def _publisher() -> Publisher:
    return Publisher()


def _queue(dlq_url: str) -> dlqs.DeadLetterQueue:
    return dlqs.DeadLetterQueue(clients.client("sqs"), dlq_url, visibility=VISIBILITY_TIMEOUT)


def inspect(dlq_url: str, limit: int) -> Report:
    queue = _queue(dlq_url)
    report = Report("inspect", dlq_url)
    messages, _ = dlqs.examine(queue, limit)
    for message in messages:
        report.add(message)
    report.approximate_remaining = queue.approximate_count()
    return report


def redrive(dlq_url: str, limit: int, target: Literal["queue", "bus"]) -> Report:
    # Resolve the target before touching any message.
    if target == "queue":
        destination = _env(REDRIVE_QUEUE_URL_ENV, "redrive to a queue needs the queue's URL")
    else:
        destination = _env(EVENT_BUS_ENV, "redrive to the bus needs the bus name")
    queue = _queue(dlq_url)
    run = dlqs.redrive(
        queue,
        limit,
        lambda message: dlqs.to_queue_or_bus(message, target, destination),
        publisher=_publisher() if target == "bus" else None,
    )
    report = Report("redrive", dlq_url, target=target, run=run)
    for outcome in run.outcomes:
        report.add(outcome.message)
    report.approximate_remaining = queue.approximate_count()
    return report


def handler(event: Mapping[str, Any] | None, context: object) -> dict[str, Any]:
    command = parse_command(event)
    dlq_url = _env(DLQ_URL_ENV, "the tool needs the URL of the DLQ it works on")
    if command.action == "inspect":
        return inspect(dlq_url, command.max).as_dict()
    assert command.target is not None  # parse_command guarantees it for redrive
    return redrive(dlq_url, command.max, command.target).as_dict()
