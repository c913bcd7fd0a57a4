"""Raw Lambda records: the parts every consumer needs, without pydantic or the contracts.

Kept apart from `eventcraft.envelopes` (which validates records into contract models) so
that a consumer that only moves records, like the outbox relay, stays light at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventcraft import dynamodb


def unwrap(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The raw dict of a record (Powertools data classes keep it in `raw_event`)."""
    raw = getattr(record, "raw_event", record)
    return raw if isinstance(raw, Mapping) else {}


def new_image(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The NewImage of a DynamoDB stream record as plain Python (numbers are Decimal),
    or None when the record has none (REMOVE, or a KEYS_ONLY / OLD_IMAGE stream)."""
    image = unwrap(record).get("dynamodb", {}).get("NewImage")
    return None if image is None else dynamodb.deserialize(image)


def sequence_number(record: Mapping[str, Any]) -> str | None:
    """The stream sequence number (DynamoDB or Kinesis): the batchItemFailures identifier."""
    raw = unwrap(record)
    if "dynamodb" in raw:
        return raw["dynamodb"].get("SequenceNumber")
    return raw.get("kinesis", {}).get("sequenceNumber")
