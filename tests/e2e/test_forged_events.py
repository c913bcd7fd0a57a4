"""Forged events move no goods and no money (choreography, a partner account configured).

- A partner may put on the order bus only its own sources and detail-types (the bus
  policy), and no rule of the order bus takes an event another account put: a partner's
  PaymentProcessed reaches no step.
- Inside the account too, the steps check the tables, not the event: a PaymentProcessed
  for 1 cent of a 250,000-cent order whose payment was declined ships nothing, and the
  order's record is left as it was (the event ends in the DLQs with the reason).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from contracts import sample_detail
from tests.e2e.conftest import DECLINED_PREFIX, E2E, assert_invariants, e2e_session

PARTNER = "111122223333"
PARTNER_CONFIG = {
    "partnerAccountIds": json.dumps([PARTNER]),
    "partnerSources": '["partner.shipping"]',
    "partnerDetailTypes": '["ParcelDelivered"]',
}
TOTAL = 250_000


@pytest.fixture(scope="module")
def e2e() -> Iterator[E2E]:
    with e2e_session("choreography", **PARTNER_CONFIG) as started:
        yield started


def declined_order(e2e: E2E) -> tuple[str, str]:
    """A 250,000-cent order of a declined customer, run to its end (CANCELLED)."""
    sku = e2e.sku(3)
    order_id = e2e.place(f"{DECLINED_PREFIX}big-spender", sku, 1, TOTAL)
    e2e.run()
    assert e2e.order(order_id)["status"] == "CANCELLED"
    return order_id, sku


def forged_payment(order_id: str) -> dict[str, Any]:
    return sample_detail(
        "PaymentProcessed",
        orderId=order_id,
        customerId=f"{DECLINED_PREFIX}big-spender",
        eventId=str(uuid.uuid4()),
        amountCents=1,
    )


def assert_nothing_moved(e2e: E2E, order_id: str, sku: str, before: dict[str, Any]) -> None:
    """The order as it was, its stock back, no charge, no shipment."""
    assert e2e.order(order_id) == before
    assert e2e.session.stock()[sku] == 3
    payment = e2e.payment(order_id)
    assert payment is not None
    assert (payment["status"], payment.get("chargedCents", 0)) == ("DECLINED", 0)
    assert e2e.session.get("shipments", {"pk": f"shipment#{order_id}"}) is None
    assert e2e.bus.count(order_id, "OrderShipped") == 0


def test_the_bus_lets_partners_put_only_their_own_events(e2e: E2E) -> None:
    """The deployed bus policy: the partner account may put only partnerSources with
    partnerDetailTypes."""
    bus = e2e.session.client("events").describe_event_bus(Name=e2e.session.outputs["busName"])
    (statement,) = json.loads(bus["Policy"])["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{PARTNER}:root"}
    assert statement["Condition"] == {
        "StringEquals": {
            "events:source": "partner.shipping",
            "events:detail-type": "ParcelDelivered",
        }
    }


def test_a_partners_forged_payment_reaches_no_step(e2e: E2E) -> None:
    """The partner account puts `order-saga.payments` PaymentProcessed for 1 cent (the
    sandbox, like moto, does not evaluate bus policies: this is what a too-wide policy
    would let through). No rule of the order bus takes it: nothing runs, nothing moves."""
    order_id, sku = declined_order(e2e)
    before = e2e.order(order_id)
    runs_before = {f: len(e2e.calls.of(f)) for f in ("ship-order", "saga-progress")}

    partner_events(e2e).put_events(
        Entries=[
            {
                "Source": "order-saga.payments",
                "DetailType": "PaymentProcessed",
                "Detail": json.dumps(forged_payment(order_id)),
                "EventBusName": e2e.session.outputs["busArn"],
            }
        ]
    )
    e2e.run()

    (seen,) = [e for e in e2e.bus.of(order_id) if e.detail.get("amountCents") == 1]
    assert seen.detail_type == "PaymentProcessed"  # it was on the bus ...
    assert {f: len(e2e.calls.of(f)) for f in runs_before} == runs_before  # ... and went nowhere
    assert_nothing_moved(e2e, order_id, sku, before)
    assert_invariants(e2e.session)


def test_a_forged_payment_from_inside_ships_nothing(e2e: E2E) -> None:
    """The same forgery put by this account (a compromised producer, an operator's
    mistake): ship_order reads the payments table and refuses (the event ends in its
    DLQ with the reason), saga_progress refuses to record it; the order is unchanged."""
    order_id, sku = declined_order(e2e)
    before = e2e.order(order_id)

    e2e.session.put_event("PaymentProcessed", forged_payment(order_id))
    e2e.run()

    assert_nothing_moved(e2e, order_id, sku, before)
    refused = [
        call
        for call in e2e.calls.failed("ship-order")
        if order_id in str(call.event) and call.result.error_type == "ShipmentRefused"
    ]
    assert refused, "ship-order did not refuse the forged payment"
    assert f"the payment of order {order_id} is DECLINED, not CHARGED" in str(
        refused[0].result.error_message
    )
    (dead,) = [m for m in e2e.session.dlq_messages("ship-order-async") if order_id in json.dumps(m)]
    assert "is DECLINED, not CHARGED" in json.dumps(dead["body"])
    assert [m for m in e2e.session.dlq_messages("progress-dlq") if order_id in json.dumps(m)], (
        "saga-progress did not dead-letter the forged payment"
    )
    assert_invariants(e2e.session)


def partner_events(e2e: E2E) -> Any:
    """An EventBridge client of the partner account (a role there, assumed by this
    account's administrator; the sandbox has no API for another account's IAM)."""
    from moto.iam.models import iam_backends

    iam = iam_backends[PARTNER]["global"]
    if "partner-producer" not in {role.name for role in iam.get_roles()}:
        own_account = e2e.session.outputs["busArn"].split(":")[4]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{own_account}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        iam.create_role("partner-producer", json.dumps(trust), "/", None, "", [], None)
        may_put = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*"}],
        }
        iam.put_role_policy("partner-producer", "put-events", json.dumps(may_put))
    credentials = e2e.session.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{PARTNER}:role/partner-producer", RoleSessionName="partner"
    )["Credentials"]
    return boto3.client(
        "events",
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
