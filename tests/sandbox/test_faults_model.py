"""The fault model: what `--fault NAME[@TARGET]=VALUE` accepts, what it covers, its
seeded draws and its counts (the parts of the sandbox that apply it are tested with
them)."""

from __future__ import annotations

import pytest

from eventcraft_sandbox.faults import Fault, FaultError, FaultPlan


def test_a_fault_reads_name_target_and_value() -> None:
    assert Fault.parse("lost-reply@ship-order-task=0.2") == Fault(
        "lost-reply", "ship-order-task", 0.2
    )
    assert Fault.parse("outage@events=60+600").window == (60.0, 660.0)
    assert Fault.parse("reorder=30").value == 30.0
    assert Fault.parse("concurrency@reserve-inventory=4").value == 4.0
    assert str(Fault.parse(" throttle@dynamodb = 0.30 ")) == "throttle@dynamodb=0.3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lost-reply", "expected NAME[@TARGET]=VALUE"),
        ("lost-replies=0.2", "unknown name 'lost-replies'; allowed: lost-reply, timeout-mid"),
        ("throttle@=0.2", "empty TARGET"),
        ("throttle=1.5", "must be a probability within 0..1"),
        ("throttle=lots", "must be a probability within 0..1"),
        ("outage@events=600", "must be START+DURATION in virtual seconds"),
        ("outage@events=60+0", "must be START+DURATION"),
        ("outage@events=-1+10", "must be START+DURATION"),
        ("reorder=0", "must be a number of virtual seconds > 0"),
        ("concurrency=0", "must be a whole number >= 1"),
        ("concurrency=2.5", "must be a whole number >= 1"),
    ],
)
def test_a_fault_that_cannot_be_injected_says_which_part_is_wrong(text: str, message: str) -> None:
    with pytest.raises(
        FaultError, match=message.replace("[", r"\[").replace(".", r"\.").replace("+", r"\+")
    ):
        Fault.parse(text)


def test_targets_must_be_a_deployed_function_or_a_service_the_fault_reaches() -> None:
    plan = FaultPlan.parse(["lost-reply@ship-order-task=1", "throttle@dynamodb=0.1"])
    plan.validate_targets(["ship-order-task", "place-order"])
    with pytest.raises(
        FaultError,
        match=r"unknown TARGET 'shipping'; allowed: a function \(place-order\) "
        r"or a service \(lambda\)",
    ):
        FaultPlan.parse(["lost-reply@shipping=1"]).validate_targets(["place-order"])
    with pytest.raises(FaultError, match=r"a service \(dynamodb\)"):
        FaultPlan.parse(["txn-conflict@events=1"]).validate_targets([])


def test_a_fault_covers_its_target_or_everywhere_it_applies() -> None:
    plan = FaultPlan.parse(["throttle@dynamodb=1", "txn-conflict=1", "outage@place-order=0+10"])
    assert plan.of("throttle", function="place-order", service="dynamodb")
    assert not plan.of("throttle", function="place-order", service="events")
    assert plan.of("txn-conflict", function="any", service="dynamodb")
    assert not plan.of("txn-conflict", function="any", service="events")
    assert plan.of("outage", function="place-order", service="sqs")
    assert not plan.of("outage", function="ship-order", service="sqs")


def test_draws_are_seeded_counted_and_independent_of_other_faults() -> None:
    def draws(texts: list[str]) -> list[bool]:
        plan = FaultPlan.parse(texts, seed=7)
        return [plan.draw("lost-reply", function="f", service="lambda") for _ in range(200)]

    first = draws(["lost-reply=0.3"])
    assert first == draws(["lost-reply=0.3"])
    assert first == draws(["throttle=0.5", "lost-reply=0.3"])
    assert 30 < sum(first) < 90
    plan = FaultPlan.parse(["lost-reply=0.3", "throttle=0.5"], seed=7)
    hits = sum(plan.draw("lost-reply", function="f", service="lambda") for _ in range(200))
    assert plan.snapshot() == {"lost-reply": hits, "throttle": 0}


def test_an_outage_covers_its_window_of_virtual_time_from_the_start_of_the_run() -> None:
    plan = FaultPlan.parse(["outage@events=60+600"])
    plan.start = 1_000.0
    assert not plan.in_outage(1_059.9, service="events")
    assert plan.in_outage(1_060.0, service="events")
    assert plan.in_outage(1_659.9, service="events")
    assert not plan.in_outage(1_660.0, service="events")
    assert not plan.in_outage(1_100.0, service="sqs")
    assert plan.snapshot() == {"outage": 2}


def test_a_share_of_entries_fails_with_the_probability() -> None:
    plan = FaultPlan.parse(["putevents-partial=0.5"], seed=1)
    failed = [plan.share("putevents-partial", 10, service="events") for _ in range(50)]
    total = sum(len(f) for f in failed)
    assert 150 < total < 350
    assert all(0 <= i < 10 for f in failed for i in f)
    assert plan.snapshot() == {"putevents-partial": total}


def test_a_choice_is_seeded_by_the_run_and_the_fault() -> None:
    """`choice` (whose turn among the invocations in flight) draws from the first
    `concurrency` fault's generator, targeted or not: the same seed, the same turns."""

    def turns(seed: int, fault: str = "concurrency@worker=2") -> list[int]:
        plan = FaultPlan.parse([fault], seed=seed)
        return [plan.choice("concurrency", 3) for _ in range(20)]

    assert turns(1) == turns(1)
    assert turns(1) != turns(2)
    assert set(turns(1)) == {0, 1, 2}
    assert FaultPlan.parse(["throttle=0.5"]).choice("concurrency", 3) == 0  # no such fault
