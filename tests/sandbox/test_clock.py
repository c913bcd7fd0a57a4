"""The virtual clock and its scheduler: order, virtual time, bounds, background work,
and moto's SQS clock on virtual time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from eventcraft_sandbox.clock import (
    BackgroundState,
    MotoTimePatch,
    NotQuietError,
    Scheduler,
    SchedulerError,
    VirtualClock,
)

T0 = 1_800_000_000.0


def make() -> tuple[VirtualClock, Scheduler]:
    clock = VirtualClock(start=T0)
    return clock, Scheduler(clock)


def test_items_run_in_time_order_then_scheduling_order() -> None:
    clock, scheduler = make()
    ran: list[tuple[str, float]] = []

    def note(name: str) -> None:
        ran.append((name, clock.now() - T0))

    scheduler.call_later(60, "late", lambda: note("late"))
    scheduler.call_soon("first", lambda: note("first"))
    scheduler.call_later(5, "b", lambda: note("b"))
    scheduler.call_later(5, "c", lambda: note("c"))
    scheduler.call_soon("second", lambda: note("second"))

    report = scheduler.run_until_quiet()

    assert ran == [("first", 0), ("second", 0), ("b", 5), ("c", 5), ("late", 60)]
    assert report.steps == 5
    assert report.virtual_seconds == 60
    assert scheduler.pending() == []


def test_a_week_of_virtual_time_costs_no_real_time() -> None:
    clock, scheduler = make()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock.now())
        if len(ticks) < 7:
            scheduler.call_later(86_400, "daily", tick)

    scheduler.call_soon("daily", tick)
    started = time.monotonic()
    report = scheduler.run_until_quiet(max_virtual_seconds=8 * 86_400)

    assert time.monotonic() - started < 0.5
    assert [t - T0 for t in ticks] == [i * 86_400 for i in range(7)]
    assert report.virtual_seconds == 6 * 86_400
    assert report.by_name == {"daily": 7}


def test_cancelled_items_do_not_run() -> None:
    _, scheduler = make()
    ran: list[str] = []
    handle = scheduler.call_later(10, "cancelled", lambda: ran.append("x"))
    scheduler.call_later(20, "kept", lambda: ran.append("kept"))
    handle.cancel()

    scheduler.run_until_quiet()

    assert ran == ["kept"]


def test_same_inputs_give_the_same_order() -> None:
    def scenario() -> list[str]:
        clock, scheduler = make()
        order: list[str] = []

        def spawn(name: str, depth: int) -> None:
            order.append(f"{name}@{clock.now() - T0:.0f}")
            if depth:
                scheduler.call_later(depth, f"{name}.a", lambda: spawn(f"{name}.a", depth - 1))
                scheduler.call_soon(f"{name}.b", lambda: spawn(f"{name}.b", depth - 1))

        for root in ("x", "y", "z"):
            scheduler.call_soon(root, lambda r=root: spawn(r, 3))  # type: ignore[misc]
        scheduler.run_until_quiet()
        return order

    first = scenario()
    assert len(first) == 3 * 15
    assert scenario() == first


def test_an_item_that_keeps_scheduling_itself_is_named() -> None:
    _, scheduler = make()

    def again() -> None:
        scheduler.call_later(1, "sqs-poll orders -> reserve", again)

    scheduler.call_soon("sqs-poll orders -> reserve", again)
    with pytest.raises(NotQuietError, match=r"after 50 steps.*'sqs-poll orders -> reserve'"):
        scheduler.run_until_quiet(max_steps=50)


def test_items_beyond_the_virtual_horizon_are_named() -> None:
    _, scheduler = make()
    scheduler.call_later(30 * 86_400, "eventbridge retry -> target", lambda: None)
    with pytest.raises(NotQuietError, match=r"within 604800 virtual seconds.*eventbridge retry"):
        scheduler.run_until_quiet()


def test_an_item_that_raises_stops_the_run_naming_it() -> None:
    _, scheduler = make()

    def broken() -> None:
        raise KeyError("queue-url")

    scheduler.call_soon("sqs-poll broken", broken)
    with pytest.raises(SchedulerError, match="sqs-poll broken: KeyError"):
        scheduler.run_until_quiet()
    assert not scheduler.running


def test_run_until_quiet_is_not_reentrant() -> None:
    _, scheduler = make()
    scheduler.call_soon("nested", scheduler.run_until_quiet)
    with pytest.raises(SchedulerError, match="called from inside a scheduled item"):
        scheduler.run_until_quiet()


class Worker:
    """Background work in another thread: busy for a while, then parked until woken."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.kind = "busy"
        self.counter = 0
        self.woken_at: float | None = None
        self.event = threading.Event()

    def state(self) -> BackgroundState:
        return BackgroundState(self.kind, "worker")  # type: ignore[arg-type]

    def activity(self) -> int:
        return self.counter

    def run(self) -> None:
        time.sleep(0.2)  # real work the clock must wait for
        self.scheduler.call_later(300, "worker wake", self.event.set)
        self.kind = "parked"
        self.counter += 1
        self.scheduler.notify()
        self.event.wait(5)
        self.woken_at = self.scheduler.clock.now()
        self.kind = "idle"
        self.scheduler.notify()


def test_virtual_time_waits_for_busy_background_work() -> None:
    clock, scheduler = make()
    worker = Worker(scheduler)
    scheduler.add_background(worker)
    early: list[float] = []
    scheduler.call_later(100, "timer", lambda: early.append(clock.now() - T0))
    thread = threading.Thread(target=worker.run)
    thread.start()

    scheduler.run_until_quiet()
    thread.join(5)

    # The clock stood still at t0 while the worker was busy; then it moved to the
    # timer (t+100) and to the worker's wake-up (t+300).
    assert early == [100]
    assert worker.woken_at == T0 + 300


def test_busy_background_work_that_never_settles_is_named() -> None:
    _, scheduler = make()
    scheduler.max_settle_seconds = 0.2

    class Stuck:
        def state(self) -> BackgroundState:
            return BackgroundState("busy", "executions running: order-saga:o-1")

        def activity(self) -> int:
            return 0

    scheduler.add_background(Stuck())
    with pytest.raises(SchedulerError, match="order-saga:o-1"):
        scheduler.run_until_quiet()


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_sqs_visibility_and_timestamps_follow_the_virtual_clock(sqs: Any) -> None:
    clock = VirtualClock(start=T0)
    with MotoTimePatch(clock):
        url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="m")

        def receive() -> list[dict[str, Any]]:
            response = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])
            return list(response.get("Messages", []))

        first = receive()
        assert first[0]["Attributes"]["SentTimestamp"] == str(int(T0 * 1000))
        clock.advance(29)
        assert receive() == []
        clock.advance(2)
        again = receive()
        assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_long_poll_on_an_empty_queue_answers_at_once(sqs: Any) -> None:
    with MotoTimePatch(VirtualClock(start=T0)):
        url = sqs.create_queue(
            QueueName="empty", Attributes={"ReceiveMessageWaitTimeSeconds": "20"}
        )["QueueUrl"]
        started = time.monotonic()
        response = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
        assert "Messages" not in response
        assert time.monotonic() - started < 1.0


def test_the_moto_time_patch_is_undone() -> None:
    import moto.sqs.models as sqs_models

    original = sqs_models.unix_time
    with MotoTimePatch(VirtualClock(start=T0)):
        assert sqs_models.unix_time() == T0
    assert sqs_models.unix_time is original
