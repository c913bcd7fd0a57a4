"""Every pattern in the system matches what its producers emit, and everything produced is
taken: sample events generated from the contracts (an orderId ending in every hex
digit; OrderPlaced below, at and above the high-value threshold) are run through the
project's EventBridge matcher against every rule of each stack and saga mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import REGISTRY
from order_saga.catalogue import EMITS
from order_saga.system import (
    CHOREOGRAPHY_DIGITS,
    CHOREOGRAPHY_RULES,
    EXTERNAL_OUTPUTS,
    OBSERVER_RULES,
    ORCHESTRATION_DIGITS,
)
from pulumi_eventcraft.event_pattern import matches
from pulumi_eventcraft.outbox_relay import INSERT_FILTER
from tests.system.conftest import (
    ALL_OPTIONS,
    MODES,
    SAGA_EVENTS,
    STACKS,
    System,
    deploy,
    order_placed,
    s3_object_created,
    samples,
)

# Deployed handlers that emit no event of the contracts (readers, projections, tools;
# the relay and the sweeper republish what others wrote).
EMITS_NOTHING = frozenset(
    {
        "handlers.order_status.handler",
        "handlers.record_history.handler",
        "handlers.project_order_history.handler",
        "handlers.snapshot_aggregates.handler",
        "handlers.window_aggregate.handler",
        "handlers.dlq_processor.handler",
        "handlers.outbox_relay.handler",
        "handlers.outbox_sweeper.handler",
    }
)
CASES = [(stack, mode) for stack in STACKS for mode in MODES]


def produced(system: System) -> set[str]:
    """The event types the deployed functions emit."""
    unknown = system.handlers - set(EMITS) - EMITS_NOTHING
    assert not unknown, f"add {sorted(unknown)} to EMITS (or to EMITS_NOTHING here)"
    return {t for handler in system.handlers for t in EMITS.get(handler, ())}


def produced_events(system: System) -> list[dict[str, Any]]:
    threshold = system.outputs["highValueThresholdCents"]
    return [event for t in sorted(produced(system)) for event in samples(t, threshold)]


def test_emits_names_only_contract_events() -> None:
    assert {t for types in EMITS.values() for t in types} <= set(REGISTRY)
    assert set(REGISTRY) >= EXTERNAL_OUTPUTS


@pytest.mark.parametrize(("stack", "mode"), CASES)
def test_every_rule_matches_something_its_producers_emit(stack: str, mode: str) -> None:
    system = deploy(stack, mode)
    events = produced_events(system)
    for short, rule in system.bus_rules().items():
        assert any(matches(rule.pattern, e) for e in events), (
            f"rule {short} can never match a produced event: {json.dumps(rule.pattern)}"
        )


@pytest.mark.parametrize(("stack", "mode"), CASES)
def test_every_produced_event_type_is_taken_by_a_rule(stack: str, mode: str) -> None:
    system = deploy(stack, mode)
    threshold = system.outputs["highValueThresholdCents"]
    for detail_type in produced(system):
        for event in samples(detail_type, threshold):
            assert system.matching(event), f"no rule takes {detail_type} {event['detail']}"


@pytest.mark.parametrize("mode", ["choreography", "both"])
def test_what_no_rule_acts_on_is_declared_external(mode: str) -> None:
    """Besides the observers (history, activity feed): in the modes with a choreography
    every produced type drives something, except the declared external outputs (and
    the declaration stays honest: nothing acts on those)."""
    system = deploy("dev", mode)
    threshold = system.outputs["highValueThresholdCents"]
    acted_on = {
        detail_type
        for detail_type in produced(system)
        for event in samples(detail_type, threshold)
        if system.matching(event) - OBSERVER_RULES
    }
    assert produced(system) - acted_on == set(EXTERNAL_OUTPUTS)


@pytest.mark.parametrize("stack", STACKS)
def test_in_both_modes_each_order_enters_exactly_one_saga(stack: str) -> None:
    system = deploy(stack, "both")
    for digit in "0123456789abcdef":
        entries = system.matching(order_placed(digit)) & {"reserve", "orchestrate"}
        expected = {"reserve"} if digit in CHOREOGRAPHY_DIGITS else {"orchestrate"}
        assert entries == expected, digit


@pytest.mark.parametrize("stack", STACKS)
def test_choreography_rules_reject_the_events_of_orchestrated_orders(stack: str) -> None:
    system = deploy(stack, "both")
    threshold = system.outputs["highValueThresholdCents"]
    for detail_type in REGISTRY:
        for event in samples(detail_type, threshold):
            digit = event["detail"]["orderId"][-1]
            taken = system.matching(event) & set(CHOREOGRAPHY_RULES)
            if digit in ORCHESTRATION_DIGITS:
                assert not taken, f"{detail_type} of an orchestrated order reaches {taken}"
    # ... while a choreographed order's saga events do reach them.
    assert system.matching(samples("InventoryReserved", threshold)[0]) >= {"pay", "progress"}


def test_single_mode_stacks_route_every_order_to_their_saga() -> None:
    for mode, entry in (("choreography", "reserve"), ("orchestration", "orchestrate")):
        system = deploy("dev", mode)
        for digit in "0123456789abcdef":
            assert entry in system.matching(order_placed(digit)), (mode, digit)


@pytest.mark.parametrize("stack", STACKS)
def test_only_orders_over_the_threshold_go_to_review(stack: str) -> None:
    system = deploy(stack)
    threshold = system.outputs["highValueThresholdCents"]
    for total, reviewed in ((1, False), (threshold, False), (threshold + 1, True)):
        taken = system.matching(order_placed("3", total))
        assert ("high-value" in taken) is reviewed, total
        # Standard or not, every order is enriched and checked.
        assert {"enrich", "checks", "history", "activity"} <= taken


def test_the_saga_progress_rule_takes_every_saga_event_and_nothing_else() -> None:
    system = deploy("dev", "choreography")
    takes = {
        detail_type
        for detail_type in REGISTRY
        if "progress" in system.matching(samples(detail_type, 100_000)[0])
    }
    assert takes == set(SAGA_EVENTS)


def test_s3_object_created_of_the_import_bucket_starts_an_import() -> None:
    system = deploy("dev")
    (bucket,) = system.of_type("aws:s3/bucket:Bucket")
    # AWS appends a unique suffix to the prefix.
    name = f"{bucket.inputs['bucketPrefix']}20261127abcdef"
    assert system.matching(s3_object_created(name), bus=False) == {"import"}
    assert system.matching(s3_object_created("someone-elses-bucket"), bus=False) == set()
    # The import rule is not on the order bus: order events never reach it.
    assert "import" not in system.matching(order_placed(), bus=False)


def test_forwarded_types_only_reach_the_partner_bus() -> None:
    system = deploy("dev", **ALL_OPTIONS)
    threshold = system.outputs["highValueThresholdCents"]
    for detail_type in REGISTRY:
        forwarded = "forward" in system.matching(samples(detail_type, threshold)[0])
        assert forwarded is (detail_type in ("OrderCompleted", "OrderCancelled")), detail_type


def _stream_record(event_name: str, image: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventID": "1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"NewImage": image, "SequenceNumber": "100"},
    }


def test_stream_filters_pass_only_new_items() -> None:
    system = deploy("dev")
    filters = {
        m.name: [json.loads(f["pattern"]) for f in m.inputs["filterCriteria"]["filters"]]
        for m in system.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
        if m.inputs.get("filterCriteria")
    }
    event_item = {"aggregateId": {"S": "o-1"}, "version": {"N": "1"}}
    outbox_row = {"pk": {"S": "outbox#e-1"}, "detailType": {"S": "OrderPlaced"}}
    for name in ("saga-history-projection-mapping", "saga-history-snapshots-mapping"):
        (pattern,) = filters[name]
        assert matches(pattern, _stream_record("INSERT", event_item))
        assert not matches(pattern, _stream_record("MODIFY", event_item))
        assert not matches(pattern, _stream_record("REMOVE", event_item))
    (relay,) = filters["saga-outbox-relay-stream-mapping"]
    assert relay == INSERT_FILTER
    assert matches(relay, _stream_record("INSERT", outbox_row))
    assert not matches(relay, _stream_record("MODIFY", outbox_row))
