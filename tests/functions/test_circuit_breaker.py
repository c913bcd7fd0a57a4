"""Circuit breaker: closed -> open -> half-open with one probe, on a fake clock; state
kept between invocations; refused records go back to the queue via the batch layer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from eventcraft.circuit_breaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    circuit_breaker,
    reset_breakers,
)
from tests.functions.awsenv import run_threads


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """A downstream service that is up or down, counting the calls that reach it."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    def __call__(self, value: int = 0) -> int:
        self.calls += 1
        if not self.up:
            raise TimeoutError("payments-api timed out")
        return value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("payments", failure_threshold=3, cool_down_seconds=30, clock=clock)


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


def fail(breaker: CircuitBreaker, dependency: Dependency, times: int) -> None:
    for _ in range(times):
        with pytest.raises(TimeoutError):
            breaker.call(dependency)


def test_consecutive_failures_open_the_circuit_and_calls_stop(breaker: CircuitBreaker) -> None:
    dependency = Dependency()
    dependency.up = False
    fail(breaker, dependency, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, dependency, 1)
    assert breaker.state is CircuitState.OPEN

    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(dependency)

    assert dependency.calls == 3  # the refused call never reached the dependency
    message = str(refused.value)
    assert "'payments' is open after 3 consecutive failures" in message
    assert "TimeoutError: payments-api timed out" in message
    assert "batch reports it as an item failure" in message
    assert "visibility timeout" in message
    assert refused.value.retry_after == 30


def test_a_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    dependency = Dependency()
    dependency.up = False
    fail(breaker, dependency, 2)
    dependency.up = True
    assert breaker.call(dependency, 7) == 7
    dependency.up = False
    fail(breaker, dependency, 2)
    assert breaker.status().consecutive_failures == 2
    assert breaker.state is CircuitState.CLOSED


def test_after_the_cool_down_one_probe_closes_the_circuit(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    dependency = Dependency()
    dependency.up = False
    fail(breaker, dependency, 3)
    clock.now += 29.9
    with pytest.raises(CircuitOpenError):
        breaker.call(dependency)

    clock.now += 0.1
    dependency.up = True
    breaker.before_call()  # the probe goes through...
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(CircuitOpenError):  # ...and nobody else while it is in flight
        breaker.call(dependency)
    breaker.record_success()

    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(dependency, 1) == 1


def test_a_failed_probe_reopens_for_another_cool_down(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    dependency = Dependency()
    dependency.up = False
    fail(breaker, dependency, 3)
    clock.now += 30

    fail(breaker, dependency, 1)  # the probe

    assert breaker.state is CircuitState.OPEN
    assert breaker.status().retry_after == 30
    clock.now += 29
    with pytest.raises(CircuitOpenError):
        breaker.call(dependency)
    assert dependency.calls == 4


def test_a_probe_that_never_reports_is_replaced_after_the_probe_timeout(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(
        "payments", failure_threshold=1, cool_down_seconds=10, probe_timeout_seconds=5, clock=clock
    )
    fail(breaker, _down(), 1)
    clock.now += 10
    breaker.before_call()  # the probe's invocation dies: no success, no failure
    clock.now += 4
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now += 1
    breaker.before_call()  # a new probe
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def _down() -> Dependency:
    dependency = Dependency()
    dependency.up = False
    return dependency


def test_concurrent_callers_in_half_open_send_exactly_one_probe(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    dependency = _down()
    fail(breaker, dependency, 3)
    clock.now += 30
    dependency.up = True
    release = threading.Event()

    def slow_dependency() -> str:
        release.wait(5)  # the probe is in flight while the others arrive
        return "ok"

    threading.Timer(0.3, release.set).start()
    results = run_threads(8, lambda index: breaker.call(slow_dependency))

    assert results.count("ok") == 1
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 7
    assert breaker.state is CircuitState.CLOSED


def test_ignored_errors_do_not_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker("payments", failure_threshold=1, ignore=(ValueError,), clock=clock)

    def rejects() -> None:
        raise ValueError("card declined")  # the dependency answered

    with pytest.raises(ValueError):
        breaker.call(rejects)
    assert breaker.state is CircuitState.CLOSED


def test_the_breaker_survives_between_invocations_of_a_warm_container(clock: FakeClock) -> None:
    dependency = _down()

    def handler(event: dict[str, Any]) -> str:
        # As a handler module would: the same breaker on every invocation.
        payments = circuit_breaker("payments", failure_threshold=2, clock=clock)
        try:
            payments.call(dependency)
        except TimeoutError:
            return "failed"
        except CircuitOpenError:
            return "refused"
        return "ok"

    assert [handler({}) for _ in range(4)] == ["failed", "failed", "refused", "refused"]
    assert dependency.calls == 2
    with pytest.raises(ValueError, match="already exists with settings"):
        circuit_breaker("payments", failure_threshold=9, clock=clock)


def test_refused_records_are_reported_as_batch_item_failures(clock: FakeClock) -> None:
    """With eventcraft.batch: the open circuit fails the remaining records fast; SQS keeps
    every failed record and redelivers it after the visibility timeout."""
    from eventcraft import batch

    dependency = Dependency()
    payments = circuit_breaker("payments", failure_threshold=2, clock=clock)

    def record_handler(record: Any) -> None:
        value = json.loads(record.body)["n"]
        if value >= 1:
            dependency.up = False
        with payments.guard():
            dependency(value)

    event = {
        "Records": [
            {
                "messageId": f"m{n}",
                "receiptHandle": f"r{n}",
                "body": json.dumps({"n": n}),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:payments",
                "awsRegion": "us-east-1",
            }
            for n in range(5)
        ]
    }

    response = batch.process_batch(event, None, record_handler, kind="sqs")

    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == ["m1", "m2", "m3", "m4"]
    assert dependency.calls == 3  # m3 and m4 were refused without a call


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="failure_threshold must be >= 1"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="cool_down_seconds must be > 0"):
        CircuitBreaker("x", cool_down_seconds=0)
