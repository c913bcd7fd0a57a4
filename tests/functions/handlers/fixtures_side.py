"""Fixtures of the side-flow handler tests (enrichment, high-value review, checks, order
history, windows, DLQ tool, bulk import), against moto.

Import the fixture function in a test module (`from ...fixtures_side import side_fixture
# noqa: F401`) and take `side: Side` as a parameter; likewise `side_calls_fixture` for
`side_calls: CallRecorder` (tests.functions.awsenv: the calls each handler makes, to
check its ACCESS).

Table layouts, as the handlers use them (every table PAY_PER_REQUEST):
    customers      customerId S                      enrich_order, credit check
    reviews        pk S ("review#<orderId>")         high_value_review
    outbox         pk S, stream NEW_IMAGE             eventcraft.outbox (TTL expiresAt)
    idempotency    id S                               Powertools (TTL expiration)
    order-events   aggregateId S + version N, stream NEW_IMAGE    event store
    order-snapshots aggregateId S                     event store snapshots
    order-history  orderId S                          read model of the history
    order-checks   joinId S                           fork/join (eventcraft.aggregation)
    order-windows  windowKey S + windowStart N        eventcraft.windows
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import boto3
import pytest

from tests.functions.awsenv import CallRecorder, capture_bus, create_table, drain, mocked

CUSTOMERS: Final = "customers"
REVIEWS: Final = "reviews"
OUTBOX: Final = "outbox"
IDEMPOTENCY: Final = "idempotency"
EVENTS: Final = "order-events"
SNAPSHOTS: Final = "order-snapshots"
HISTORY: Final = "order-history"
CHECKS: Final = "order-checks"
WINDOWS: Final = "order-windows"
BUS: Final = "order-bus"

ENVIRONMENT: Final = {
    "CUSTOMERS_TABLE": CUSTOMERS,
    "REVIEWS_TABLE": REVIEWS,
    "OUTBOX_TABLE": OUTBOX,
    "IDEMPOTENCY_TABLE": IDEMPOTENCY,
    "EVENTS_TABLE": EVENTS,
    "SNAPSHOTS_TABLE": SNAPSHOTS,
    "HISTORY_TABLE": HISTORY,
    "CHECKS_TABLE": CHECKS,
    "WINDOWS_TABLE": WINDOWS,
    "EVENT_BUS_NAME": BUS,
    "HIGH_VALUE_THRESHOLD_CENTS": "100000",
    "SNAPSHOT_EVERY": "10",
    "WINDOW_SECONDS": "300",
    "ALLOWED_LATENESS_SECONDS": "120",
}

# The handler modules whose per-container caches (functools.cache) must not outlive a test.
SIDE_HANDLERS: Final = (
    "handlers.enrich_order",
    "handlers.high_value_review",
    "handlers.run_check",
    "handlers.aggregate_checks",
    "handlers.record_history",
    "handlers.project_order_history",
    "handlers.snapshot_aggregates",
    "handlers.window_aggregate",
    "handlers.dlq_processor",
    "handlers.import_orders",
)


def clear_handler_caches() -> None:
    """Forget what handler modules cached per container (clients, stores, settings)."""
    for name in SIDE_HANDLERS:
        module = sys.modules.get(name)
        for value in vars(module).values() if module else ():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


@dataclass(frozen=True)
class Side:
    capture_url: str

    def published(self) -> list[dict[str, Any]]:
        """Every event put on the bus since the last call (EventBridge envelopes)."""
        return drain(self.capture_url)

    def details(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        return [
            event["detail"]
            for event in self.published()
            if detail_type is None or event["detail-type"] == detail_type
        ]


def put_customer(customer_id: str, **attributes: Any) -> None:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    item = {"customerId": customer_id, **attributes}
    boto3.client("dynamodb").put_item(
        TableName=CUSTOMERS, Item={k: serializer.serialize(v) for k, v in item.items()}
    )


@pytest.fixture(name="side")
def side_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Side]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    clear_handler_caches()
    with mocked():
        for table in (CUSTOMERS, REVIEWS, SNAPSHOTS, HISTORY, CHECKS, IDEMPOTENCY):
            key = {
                CUSTOMERS: "customerId",
                SNAPSHOTS: "aggregateId",
                HISTORY: "orderId",
                CHECKS: "joinId",
                IDEMPOTENCY: "id",
            }.get(table, "pk")
            create_table(table, key=key)
        create_table(OUTBOX, stream=True)
        create_table(EVENTS, "aggregateId", ("version", "N"), stream=True)
        create_table(WINDOWS, "windowKey", ("windowStart", "N"))
        try:
            yield Side(capture_url=capture_bus(BUS))
        finally:
            clear_handler_caches()


@pytest.fixture(name="side_calls")
def side_calls_fixture(side: Side) -> CallRecorder:
    """Records the calls made through eventcraft.clients (the handlers' clients) from now
    on; test setup uses plain boto3 clients, which are not recorded."""
    return CallRecorder().attach("dynamodb", "events", "sqs", "s3")
