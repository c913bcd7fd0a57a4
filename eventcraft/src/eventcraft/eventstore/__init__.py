"""Event store on DynamoDB: conditional appends, paged reads, snapshots, projections.

    from eventcraft import eventstore as es

    store = es.EventStore(
        es.DynamoDBEventRecorder("order-events"),
        snapshots=es.DynamoDBSnapshotRecorder("order-snapshots"),
        policy=es.SnapshotPolicy(every=100),
    )
    order = store.execute("order-1", decide, reducer, initial={})

Layers: `model` (pure: records, policy, errors, adapter protocols), `store` (the use
cases), `projection` (read models), adapters `memory` and `dynamodb` (boto3 is only
imported when a default client is created). See `dynamodb` for the table layouts.
"""

from .dynamodb import (
    DynamoDBEventRecorder,
    DynamoDBReadModel,
    DynamoDBSnapshotRecorder,
    event_item,
    stored_event_from_image,
    stored_events_from_stream,
)
from .memory import InMemoryEventRecorder, InMemoryReadModel, InMemorySnapshotRecorder
from .model import (
    MAX_EVENTS_PER_APPEND,
    AppendTooLargeError,
    ConcurrencyError,
    EventOrderError,
    EventRecorder,
    EventStoreError,
    NewEvent,
    Reducer,
    Rehydrated,
    Snapshot,
    SnapshotPolicy,
    SnapshotRecorder,
    StoredEvent,
    fold,
)
from .projection import ProjectionConflictError, ProjectionOutcome, Projector, ReadModel
from .store import EventStore

__all__ = [
    "MAX_EVENTS_PER_APPEND",
    "AppendTooLargeError",
    "ConcurrencyError",
    "DynamoDBEventRecorder",
    "DynamoDBReadModel",
    "DynamoDBSnapshotRecorder",
    "EventOrderError",
    "EventRecorder",
    "EventStore",
    "EventStoreError",
    "InMemoryEventRecorder",
    "InMemoryReadModel",
    "InMemorySnapshotRecorder",
    "NewEvent",
    "ProjectionConflictError",
    "ProjectionOutcome",
    "Projector",
    "ReadModel",
    "Reducer",
    "Rehydrated",
    "Snapshot",
    "SnapshotPolicy",
    "SnapshotRecorder",
    "StoredEvent",
    "event_item",
    "fold",
    "stored_event_from_image",
    "stored_events_from_stream",
]
