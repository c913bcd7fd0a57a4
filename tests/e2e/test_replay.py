"""Archive and replay, and the bulk import, on the dev stack as configured (`sagaMode:
both`: each order goes to one of the sagas by its orderId)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import (
    DECLINED_PREFIX,
    E2E,
    UNDELIVERABLE_PREFIX,
    assert_invariants,
    e2e_session,
)

# Functions that act on the saga's events: a replay to the history rule must not run them.
SAGA_FUNCTIONS = (
    "reserve-inventory",
    "process-payment",
    "ship-order",
    "release-inventory",
    "refund-payment",
    "saga-progress",
    "reserve-inventory-task",
    "process-payment-task",
    "ship-order-task",
    "release-inventory-task",
    "refund-payment-task",
    "record-outcome",
    "enrich-order",
    "check-inventory",
    "check-credit",
    "check-shipping-quote",
)


def _event_time_window(read_model: Mapping[str, Mapping[str, Any]]) -> tuple[float, float]:
    """[first, last] event time of the rows, in epoch seconds (the archive keeps events by
    their `time`: the producers' occurredAt, not the sandbox's virtual clock)."""
    times = [
        datetime.fromisoformat(str(row[key])).timestamp()
        for row in read_model.values()
        for key in ("firstEventAt", "lastEventAt")
    ]
    return math.floor(min(times)), math.ceil(max(times))


@pytest.fixture(scope="module")
def e2e() -> Iterator[E2E]:
    with e2e_session() as started:
        yield started


def test_replaying_the_archive_to_the_history_rule_rebuilds_the_read_model(e2e: E2E) -> None:
    """Orders run, the read model is snapshotted, the read model and the event store are
    emptied, the archive's window is replayed to the history rule only: the read model
    is rebuilt equal to the snapshot, and no saga step ran again."""
    session = e2e.session
    sku = e2e.sku(20)
    order_ids = [
        e2e.place("replay-customer-1", sku, 1),
        e2e.place("replay-customer-2", sku, 2),
        e2e.place(f"{DECLINED_PREFIX}replay", sku, 3),
        e2e.place(f"{UNDELIVERABLE_PREFIX}replay", sku, 4),
    ]
    e2e.run()
    assert [e2e.order(o)["status"] for o in order_ids] == [
        "COMPLETED",
        "COMPLETED",
        "CANCELLED",
        "CANCELLED",
    ]
    snapshot = session.read_model()
    assert set(snapshot) == set(order_ids)
    start, end = _event_time_window(snapshot)
    before = {
        "invocations": {f: session.invocations.get(f, 0) for f in SAGA_FUNCTIONS},
        "orders": session.orders(),
        "stock": session.stock(),
        "payments": session.payments(),
    }
    stored = sum(len(events) for events in session.stored_events().values())

    assert session.clear_table("history") == len(order_ids)
    assert session.clear_table("events") == stored
    session.clear_table("snapshots")
    assert session.read_model() == {}
    history_runs = session.invocations["record-history"]

    session.replay(start, end, rules=["history"])
    e2e.run()

    assert session.read_model() == snapshot
    assert sum(len(events) for events in session.stored_events().values()) == stored
    assert session.invocations["record-history"] - history_runs >= stored
    after = {
        "invocations": {f: session.invocations.get(f, 0) for f in SAGA_FUNCTIONS},
        "orders": session.orders(),
        "stock": session.stock(),
        "payments": session.payments(),
    }
    assert after == before
    assert_invariants(session)


def test_s3_import_places_each_line_once(e2e: E2E) -> None:
    """A JSON Lines file uploaded to the import bucket places one order per line; the
    same file uploaded again places nothing twice."""
    sku = e2e.sku(10)
    customers = ["import-customer-1", "import-customer-2"]
    body = "".join(
        json.dumps({"customerId": c, "items": [{"sku": sku, "quantity": 1, "unitPriceCents": 500}]})
        + "\n"
        for c in customers
    )
    s3 = e2e.session.client("s3")
    bucket = e2e.session.outputs["bucket"]

    def imported() -> list[tuple[str, str]]:
        return sorted(
            (str(o["customerId"]), str(o["status"]))
            for o in e2e.session.orders().values()
            if o["customerId"] in customers
        )

    runs = e2e.session.invocations.get("import-orders", 0)
    s3.put_object(Bucket=bucket, Key="e2e/orders.jsonl", Body=body.encode())
    e2e.run()
    assert imported() == [(c, "COMPLETED") for c in customers]
    s3.put_object(Bucket=bucket, Key="e2e/orders.jsonl", Body=body.encode())
    e2e.run()
    assert e2e.session.invocations["import-orders"] - runs == 2  # one per upload
    assert imported() == [(c, "COMPLETED") for c in customers]
    assert e2e.session.stock()[sku] == 8
    assert_invariants(e2e.session)
