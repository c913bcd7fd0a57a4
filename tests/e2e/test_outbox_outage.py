"""An EventBridge outage longer than the outbox relay's retry budget (issue #11, point 2):
the relay gives up, its DLQ gets stream pointers, and the outbox sweeper publishes the
stranded rows once the bus is back. Orders placed during the outage all end COMPLETED
or CANCELLED after it, every outbox row is published, and the relay's DLQ message says
what it holds and how to recover (`ops dlq inspect`, `ops dlq redrive`).

The outage is the sandbox's named fault `outage@events=START+DURATION`: every call to
EventBridge fails for that window of virtual time (PutEvents, and the deliveries it
makes: the sweeper's scheduled event too).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from eventcraft import dynamodb
from ops.aws import Clients
from ops.cli import main
from order_saga.sandbox.session import OrderSagaSession
from tests.e2e.conftest import DECLINED_PREFIX, UNDELIVERABLE_PREFIX, assert_invariants, e2e_session
from tests.ops.conftest import Run

# Longer than the relay's retries (10, with backoff up to a minute: about 5 minutes).
OUTAGE_SECONDS = 1200.0
RELAY_DLQ = "outbox-relay"


def outage(start: float) -> str:
    """EventBridge down from `start` virtual seconds into the run, for OUTAGE_SECONDS."""
    return f"outage@events={start:g}+{OUTAGE_SECONDS:g}"


def outbox_rows(session: OrderSagaSession) -> list[dict[str, Any]]:
    table = session.outputs["tables"]["outbox"]
    pages = session.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [dynamodb.deserialize(item) for page in pages for item in page.get("Items", [])]


def ops(session: OrderSagaSession, tmp_path: Path, *argv: str) -> Run:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(session.outputs))
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [*argv, "--outputs", str(outputs)],
        clients=Clients(session=session.sandbox.new_session()),
        stdout=out,
        stderr=err,
        sleep=lambda _: None,
    )
    return Run(code, out.getvalue(), err.getvalue())


def test_orders_placed_during_an_outage_all_end_after_it(tmp_path: Path) -> None:
    with e2e_session(faults=[outage(0)]) as e2e:  # dev, both sagas
        session = e2e.session
        start = session.clock.now()
        sku = e2e.sku(50)
        customers = [
            *(f"outage-{n}" for n in range(6)),
            f"{DECLINED_PREFIX}outage",
            f"{UNDELIVERABLE_PREFIX}outage",
        ]
        orders = {e2e.place(customer, sku, 1): customer for customer in customers}
        e2e.run()

        statuses = {order_id: e2e.order(order_id)["status"] for order_id in orders}
        failing = (DECLINED_PREFIX, UNDELIVERABLE_PREFIX)
        expected = {
            order_id: "CANCELLED" if customer.startswith(failing) else "COMPLETED"
            for order_id, customer in orders.items()
        }
        assert statuses == expected
        # The run went on past the outage (the sweeper kept failing until it ended).
        assert session.clock.now() >= start + OUTAGE_SECONDS
        rows = outbox_rows(session)
        unpublished = [row["eventId"] for row in rows if row["published"] is not True]
        assert unpublished == []
        assert all("pendingShard" not in row for row in rows)
        assert_invariants(session)
        assert session.invocations.get("outbox-sweeper", 0) >= 1

        # The relay gave up during the outage: its DLQ holds stream pointers, which ops
        # explains; once the sweeper has republished every row, a redrive resolves them.
        assert session.dlq_depths()[RELAY_DLQ] >= 1
        inspected = ops(session, tmp_path, "dlq", "inspect", RELAY_DLQ, "--json")
        assert inspected.code == 0, inspected.err
        sample = inspected.json()["samples"][0]
        assert sample["kind"] == "stream-failure"
        assert "outbox rows the relay could not publish" in sample["holds"]
        assert "outbox republish" in sample["recover"]
        # Inspect made the messages visible again (visibility 0), which moto applies once
        # its clock, the virtual one, moves past that moment.
        session.clock.advance(1)
        # Nothing is left to republish: the sweeper did it.
        listed = ops(session, tmp_path, "outbox", "list", "--older-than", "0", "--json")
        assert listed.code == 0, listed.err
        assert listed.json()["count"] == 0
        redriven = ops(session, tmp_path, "dlq", "redrive", RELAY_DLQ)
        assert redriven.code == 0, redriven.out
        assert "resolved: no outbox row is unpublished" in redriven.out
        assert session.dlq_depths()[RELAY_DLQ] == 0


def test_saga_steps_written_during_an_outage_are_published_after_it() -> None:
    """Orders placed before the outage: each first payment attempt fails transiently, so
    the payment is retried (the queue's visibility timeout, Step Functions' backoff)
    while EventBridge is down; the outbox rows those retries write are stranded like
    the orders' own, and published once it is back."""
    # The outage begins once the orders and their reservations are out (at once, in
    # virtual time), before the retried payments.
    with e2e_session(faults=[outage(0.5)], paymentTransientFailureRate="1") as e2e:
        session = e2e.session
        sku = e2e.sku(20)
        orders = [e2e.place(f"retried-{n}", sku, 1) for n in range(6)]
        e2e.run()

        assert {e2e.order(order_id)["status"] for order_id in orders} == {"COMPLETED"}
        assert [row for row in outbox_rows(session) if row["published"] is not True] == []
        assert session.dlq_depths()[RELAY_DLQ] >= 1  # the relay gave up on some rows
        swept = sum(
            int((call.result.payload or {}).get("republished", 0))
            for call in e2e.calls.of("outbox-sweeper")
        )
        assert swept >= 1  # the sweeper published them: saga steps, not OrderPlaced
        assert_invariants(session)
