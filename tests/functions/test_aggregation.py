"""Fork/join aggregation against DynamoDB (moto): one conditional UpdateItem per result,
exactly one completion, even with duplicate and concurrent deliveries and crashes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from eventcraft.aggregation import (
    ALL_CHECKS_COMPLETE,
    Aggregator,
    CheckResult,
    CompletionPendingError,
    JoinState,
    UnknownCheckError,
    all_checks_complete,
    completion_event_id,
)
from tests.functions.awsenv import DynamoDB, moto_dynamodb, run_threads

CHECKS = ("inventory", "credit", "shipping")


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ddb() -> Iterator[DynamoDB]:
    with moto_dynamodb() as ddb:
        ddb.create_table("joins", "joinId")
        ddb.reads.reset()
        yield ddb


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def join(ddb: DynamoDB, clock: FakeClock) -> Aggregator:
    return Aggregator("joins", CHECKS, client=ddb.client, clock=clock, claim_seconds=60)


def result(name: str, outcome: str = "PASSED", **data: Any) -> CheckResult:
    return CheckResult(name=name, outcome=outcome, data=data)


def test_the_last_result_completes_the_join_with_one_update_per_result(
    join: Aggregator, ddb: DynamoDB
) -> None:
    first = join.record("order-1", result("inventory", reserved=2))
    assert (first.recorded, first.just_completed) == (True, False)
    assert first.state.missing == {"credit", "shipping"}
    # One conditional UpdateItem, ALL_NEW: no read after the write.
    assert dict(ddb.reads.calls) == {"UpdateItem": 1}

    join.record("order-1", result("credit", "FAILED", reason="limit"))
    ddb.reads.reset()
    last = join.record("order-1", result("shipping", quote=4.5))

    assert (last.recorded, last.just_completed) == (True, True)
    assert last.state.complete
    assert last.state.completed_at is not None
    # Record + claim: two updates, still no read.
    assert dict(ddb.reads.calls) == {"UpdateItem": 2}
    assert all_checks_complete(last.state) == {
        "joinId": "order-1",
        "checks": {
            "credit": {"outcome": "FAILED", "data": {"reason": "limit"}},
            "inventory": {"outcome": "PASSED", "data": {"reserved": 2}},
            "shipping": {"outcome": "PASSED", "data": {"quote": 4.5}},
        },
        "allPassed": False,
    }
    assert completion_event_id(last.state) == f"order-1:{ALL_CHECKS_COMPLETE}"


def test_a_redelivered_result_is_a_no_op_and_the_first_outcome_stands(
    join: Aggregator, ddb: DynamoDB
) -> None:
    join.record("order-1", result("credit", "PASSED", limit=500))
    ddb.reads.reset()

    again = join.record("order-1", result("credit", "FAILED"))

    assert (again.recorded, again.just_completed) == (False, False)
    assert again.state.checks["credit"].outcome == "PASSED"
    assert again.state.checks["credit"].data == {"limit": 500}
    assert dict(ddb.reads.calls) == {"UpdateItem": 1}  # the old item came with the failure


def test_an_unknown_check_is_refused_and_nothing_is_written(join: Aggregator) -> None:
    with pytest.raises(UnknownCheckError, match=r"'fraud' is not one of .*required checks"):
        join.record("order-1", result("fraud"))
    assert join.get("order-1") is None


def test_concurrent_and_duplicate_results_emit_exactly_once_per_join(join: Aggregator) -> None:
    emitted: Counter[str] = Counter()
    deliveries = [(f"order-{n}", name) for n in range(8) for name in CHECKS for _ in range(2)]

    def emit(state: JoinState) -> None:
        assert state.complete
        emitted[state.join_id] += 1

    def deliver(index: int) -> list[bool]:
        """A worker delivers every 6th message; a CompletionPendingError is retried, as SQS
        would after the visibility timeout."""
        completions = []
        for join_id, name in deliveries[index::6]:
            while True:
                try:
                    outcome = join.record_and_emit(join_id, result(name), emit)
                    break
                except CompletionPendingError:
                    continue
            completions.append(outcome.just_completed)
        return completions

    results = run_threads(6, deliver)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(sum(r) for r in results) == 8  # exactly one "just completed" per join
    assert emitted == Counter({f"order-{n}": 1 for n in range(8)})
    for n in range(8):
        state = join.get(f"order-{n}")
        assert state is not None
        assert state.emitted_at is not None
        assert state.claimed_until is None


def test_results_after_the_emission_are_no_ops(join: Aggregator) -> None:
    emits: list[str] = []
    for name in CHECKS:
        join.record_and_emit("order-1", result(name), lambda s: emits.append(s.join_id))

    for name in CHECKS:
        again = join.record_and_emit("order-1", result(name), lambda s: emits.append("again"))
        assert (again.recorded, again.just_completed) == (False, False)
    assert emits == ["order-1"]


def test_a_failed_emit_releases_the_claim_and_the_retry_emits(join: Aggregator) -> None:
    join.record("order-1", result("inventory"))
    join.record("order-1", result("credit"))

    def broken(state: JoinState) -> None:
        raise ConnectionError("EventBridge unreachable")

    with pytest.raises(ConnectionError):
        join.record_and_emit("order-1", result("shipping"), broken)
    emitted: list[JoinState] = []

    retried = join.record_and_emit("order-1", result("shipping"), emitted.append)

    assert (retried.recorded, retried.just_completed) == (False, True)
    assert len(emitted) == 1


def test_a_claimant_that_dies_is_taken_over_after_its_claim_expires(
    join: Aggregator, clock: FakeClock
) -> None:
    join.record("order-1", result("inventory"))
    join.record("order-1", result("credit"))
    dying = join.record("order-1", result("shipping"))
    assert dying.just_completed  # ...and the invocation dies before emitting

    clock.now += 30
    with pytest.raises(CompletionPendingError, match="Let this message be retried"):
        join.record("order-1", result("shipping"))  # its redelivery, claim still live

    clock.now += 31
    retry = join.record("order-1", result("shipping"))
    assert retry.just_completed
    join.mark_emitted("order-1")
    assert not join.record("order-1", result("credit")).just_completed


def test_new_joins_get_a_ttl(join: Aggregator, ddb: DynamoDB, clock: FakeClock) -> None:
    join.record("order-1", result("credit"))
    item = ddb.raw.get_item(TableName="joins", Key={"joinId": {"S": "order-1"}})["Item"]
    assert int(item["expiresAt"]["N"]) == int(clock.now) + 7 * 24 * 3600
    assert item["check:credit"]["M"]["outcome"] == {"S": "PASSED"}


def test_required_checks_and_claim_length_are_validated() -> None:
    with pytest.raises(ValueError, match="at least one check name"):
        Aggregator("joins", [])
    with pytest.raises(ValueError, match="claim_seconds must be > 0"):
        Aggregator("joins", ["a"], claim_seconds=0)
