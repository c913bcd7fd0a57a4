"""The event store's stream -> the order history read model, incrementally.

Entry: `handler(event, context)`, a DynamoDB Streams event source mapping on EVENTS_TABLE
(stream view NEW_IMAGE; ReportBatchItemFailures on). Only INSERT records are events;
MODIFY/REMOVE are skipped.
Effect: each order's row in HISTORY_TABLE (key `orderId` S; the view's fields as
attributes, `version` = the last event folded in; see domain.history) is advanced by the
batch's new events: one GetItem and one conditional PutItem per order per batch
(eventcraft.eventstore.Projector), never a re-read of the whole history. A gap (an event
the row has not seen before the batch's first one) is filled from the store with a
Query of exactly the missing versions.

Idempotency: the row's version. An event at or below it is a duplicate and a no-op; the
write is conditional on the version read, so a concurrent projector cannot be
overwritten (the projector reloads and retries).

Failures: an order whose projection fails is reported with the sequence number of its
first record in the batch; the stream is retried from there (records of other orders
after it come again and are no-ops). A record that is not an event (malformed image) is
reported the same way, and ends in the mapping's on-failure destination once its retries
are spent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any, Final

from domain.history import apply, for_each_order, initial_state
from eventcraft.eventstore import (
    DynamoDBEventRecorder,
    DynamoDBReadModel,
    EventStore,
    Projector,
)
from eventcraft.settings import env

ACCESS: Final[dict[str, frozenset[str]]] = {
    "HISTORY_TABLE": frozenset({"dynamodb:GetItem", "dynamodb:PutItem"}),
    # Filling a gap reads the missing events.
    "EVENTS_TABLE": frozenset({"dynamodb:Query"}),
}
HISTORY_TABLE_ENV: Final = "HISTORY_TABLE"
EVENTS_TABLE_ENV: Final = "EVENTS_TABLE"
KEY_ATTRIBUTE: Final = "orderId"

logger = logging.getLogger(__name__)


@functools.cache
def _projector() -> Projector[dict[str, Any]]:
    store = EventStore(DynamoDBEventRecorder(env(EVENTS_TABLE_ENV)))
    read_model = DynamoDBReadModel(env(HISTORY_TABLE_ENV), key_attribute=KEY_ATTRIBUTE)
    return Projector(read_model, store, apply, initial_state())


def handler(event: Mapping[str, Any], context: object) -> dict[str, list[dict[str, str]]]:
    projector = _projector()  # settings first: a misconfigured function fails the batch
    return for_each_order(
        event.get("Records", []),
        lambda _, events: projector.project(events),
        what="projection",
        logger=logger,
    )
