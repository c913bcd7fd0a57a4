"""Outbox relay: the outbox table's stream -> PutEvents on the bus -> row marked published.

Deployed by `pulumi_eventcraft.outbox_relay.OutboxRelay` behind a DynamoDB stream event source
mapping (INSERT records of outbox rows only, ReportBatchItemFailures on). Only the
records that failed are reported, so the stream retries from the first of them; an
event published twice (a retried batch) is harmless because every consumer is
idempotent on the producer's `eventId`.
"""

from __future__ import annotations

from typing import Any

from eventcraft import outbox
from eventcraft.publisher import Publisher
from eventcraft.settings import env

# What this handler touches: the system wires env vars and grants from this.
ACCESS: dict[str, frozenset[str]] = {
    "EVENT_BUS_NAME": frozenset({"events:PutEvents"}),
    "OUTBOX_TABLE": frozenset({"dynamodb:UpdateItem"}),
}

_ENV_HINT = "the relay needs it"
_publisher: Publisher | None = None  # one per container: its client is reused when warm


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    global _publisher  # noqa: PLW0603 (warm-container cache)
    if _publisher is None:
        _publisher = Publisher(env("EVENT_BUS_NAME", _ENV_HINT))
    result = outbox.relay(
        event.get("Records", []), table_name=env("OUTBOX_TABLE", _ENV_HINT), publisher=_publisher
    )
    return result.batch_response()
