"""Outbox sweeper: publishes the outbox rows the relay gave up on.

Deployed by `pulumi_eventcraft.outbox_relay.OutboxRelay` (its sweeper) behind a
scheduled EventBridge rule. A relay gives up on a stream record after its retries (an
EventBridge outage longer than its retry budget) and the row stays unpublished; each run
republishes every row still unpublished SWEEP_AFTER_SECONDS after it was written
(`eventcraft.outbox.sweep`), and marks it published with the relay's own conditional
update. "Now" is the later of the clock and the scheduled event's `time`, so a clock
that runs behind the scheduler's (the sandbox's virtual time) still sees the rows age.

A run that leaves rows behind (the bus still refuses them, or the invocation ran out of
time) raises `SweepIncompleteError`: the error alarm of the function reports it, and
the next scheduled run goes on where it stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from eventcraft import outbox
from eventcraft.publisher import Publisher
from eventcraft.settings import env

# What this handler touches: the component grants exactly these.
ACCESS: dict[str, frozenset[str]] = {
    "EVENT_BUS_NAME": frozenset({"events:PutEvents"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:Query", "dynamodb:UpdateItem"}),
}

_ENV_HINT = "the sweeper needs it"
# Stop starting batches this long before the invocation's timeout.
_MARGIN_MS: Final = 10_000
_publisher: Publisher | None = None  # one per container: its client is reused when warm


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """A scheduled event in, the rows republished out (raises when some are left)."""
    global _publisher  # noqa: PLW0603 (warm-container cache)
    if _publisher is None:
        _publisher = Publisher(env("EVENT_BUS_NAME", _ENV_HINT))
    after = env("SWEEP_AFTER_SECONDS", _ENV_HINT)
    if not after.isdigit():
        raise ValueError(f"SWEEP_AFTER_SECONDS must be whole seconds, got {after!r}")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    scheduled = _event_time(event)
    result = outbox.sweep(
        env("OUTBOX_TABLE", _ENV_HINT),
        publisher=_publisher,
        older_than=timedelta(seconds=int(after)),
        now=lambda: max(outbox.utc_now(), scheduled or outbox.utc_now()),
        out_of_time=lambda: remaining is not None and remaining() < _MARGIN_MS,
    )
    result.raise_if_incomplete()
    return {"republished": len(result.marked), "alreadyPublished": len(result.already_marked)}


def _event_time(event: Any) -> datetime | None:
    """The scheduled event's `time` (ISO-8601, UTC), if it has a valid one."""
    text = event.get("time") if isinstance(event, dict) else None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
