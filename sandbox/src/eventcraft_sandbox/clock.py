"""The sandbox's virtual clock and its deterministic scheduler.

Everything time-based in the sandbox's event delivery (SQS visibility timeouts and
batching windows, EventBridge and Lambda retry backoffs, stream retries, Step
Functions `Retry` intervals and `Wait` states) is an item scheduled on a
`VirtualClock`. Time only moves inside `Scheduler.run_until_quiet`: it runs every item
that is due, and when nothing is due it jumps the clock to the next due item, until
nothing is left. A state machine whose step retries with `IntervalSeconds: 30` costs
no real seconds.

    clock = VirtualClock()
    scheduler = Scheduler(clock)
    scheduler.call_later(30, "sqs-poll jobs", poll)
    report = scheduler.run_until_quiet()     # runs `poll` at virtual t+30 at once

Determinism: items run in (due time, scheduling order); the same inputs give the same
order. Work done in other threads (Step Functions executions, which moto runs in
daemon threads) registers as *background work* (`BackgroundWork`): before the clock
moves, the scheduler waits until every execution has finished or is parked in a
virtual wait, so an execution's retry at t+30 happens after everything due at t.

Handler sleeps move the clock too: a `time.sleep` in handler code (its own backoff,
botocore's retries, a publisher's) is virtual and advances the clock by its length
(`lambda_runtime.handler_time`), from whichever thread runs the handler. That is safe
with the scheduler: the clock only moves forward (`advance` and `advance_to` take the
same lock), and a handler always runs while the scheduler cannot move time itself:
inside a scheduled item (the scheduler's thread waits for it), inside a Step
Functions execution (busy background work, so the scheduler is settling and does not
move time), or outside `run_until_quiet`. Items that fell due during the sleep are
late, not lost: they run once the handler returns, in (due time, scheduling order),
at the later virtual time (the sandbox does one thing at a time; in AWS they would
have run during the sleep). Handler code also reads this clock as its own
(`time.time()`, `datetime.now()` on its thread: the clock at the invocation's start
plus the handler's elapsed time, `lambda_runtime.handler_clock`); the CPU time a
handler uses is in its reading but does not move the clock.

Recurring work (a scheduled rule) would keep `run_until_quiet` from ever ending, so its
items are marked (`call_at(..., recurring=work)`) and the run is quiet when nothing but
recurring items is pending and each recurring work is *settled*: it has fired since the
last other activity and what it fired succeeded (`RecurringWork.settled`). Activity is
counted per item run (`Scheduler.activity`); an item scheduled while a recurring item,
or an item it caused, runs (from any thread: a handler runs on a worker thread while
the scheduler waits for it) is caused by that work and is not activity. So a sweeper
that finds nothing to do stops the run, and one that keeps failing (an outage) keeps it
going, firing on its schedule, until it succeeds.

moto's own time and virtual time: moto stamps SQS messages and decides visibility,
delays, receive counts' timing, retention and FIFO deduplication windows with
`unix_time()` / `unix_time_millis()` imported into `moto.sqs.models`; DynamoDB stream
records (`ApproximateCreationDateTime`) and Kinesis records
(`ApproximateArrivalTimestamp`) with `utcnow()` in `moto.dynamodb.models.table` and
`moto.kinesis.models`. `MotoTimePatch` points those names at the virtual clock, so
moto stays the one owner of SQS state (receive counts, in-flight messages, lazy
redrive to the DLQ on receive, FIFO group blocking) and every client, the sandbox's
pollers and handler code alike, sees the same time: a message received with a 30 s
visibility timeout is invisible to everyone until the scheduler has moved virtual time
past t+30, and stream records age in virtual time (`MaximumRecordAgeInSeconds`). The
alternative, a poller that tracks visibility itself, would disagree with what a
handler or a test sees through the API (`ApproximateReceiveCount`, `SentTimestamp`,
redrive). One consequence: with the clock standing still outside `run_until_quiet`,
an SQS long poll (`WaitTimeSeconds` > 0, or a queue's `ReceiveMessageWaitTimeSeconds`)
would wait forever, so while the patch is on moto answers every receive at once with
what is visible (what a long poll returns when nothing arrives in time).
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "BackgroundState",
    "BackgroundWork",
    "Handle",
    "MotoTimePatch",
    "NotQuietError",
    "Patches",
    "RecurringWork",
    "RunReport",
    "Scheduler",
    "SchedulerError",
    "VirtualClock",
]

DAY = 86_400.0


class VirtualClock:
    """Epoch seconds that only move when told to (thread-safe, never backwards).

    `start`: the initial time in epoch seconds (default: the real time now, whole
    milliseconds). Pass a fixed value for reproducible timestamps.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = float(start) if start is not None else round(time.time(), 3)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The virtual time, in epoch seconds."""
        return self._now

    def time(self) -> float:
        """`now()`, named like `time.time()` (the Lambda runtime's `Clock`)."""
        return self._now

    def advance_to(self, when: float) -> None:
        """Move the clock to `when` (epoch seconds); earlier times leave it where it is."""
        with self._lock:
            if when > self._now:
                self._now = float(when)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (>= 0); handler sleeps call it, from any
        thread (see the module docstring)."""
        if seconds < 0:
            raise ValueError(f"cannot move the clock backwards ({seconds} s)")
        with self._lock:
            self._now += seconds

    # -- the shapes moto asks for ------------------------------------------------

    def utcnow(self) -> datetime.datetime:
        """The virtual time as a naive UTC datetime (moto's `utcnow()`)."""
        return datetime.datetime.fromtimestamp(self._now, datetime.UTC).replace(tzinfo=None)

    def unix_time(self, dt: datetime.datetime | None = None) -> float:
        """moto's `unix_time(dt=None)`: `dt` (naive UTC) in epoch seconds, or the virtual now."""
        if dt is None:
            return self._now
        return _epoch(dt)

    def unix_time_millis(self, dt: datetime.datetime | None = None) -> float:
        """moto's `unix_time_millis(dt=None)`: epoch milliseconds."""
        return self.unix_time(dt) * 1000.0

    def iso(self, when: float | None = None) -> str:
        """`when` (default: now) as EventBridge writes times: `2026-11-26T12:00:00Z`."""
        value = self._now if when is None else when
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def iso_millis(self, when: float | None = None) -> str:
        """`when` (default: now) with milliseconds: `2026-11-26T12:00:00.123Z`."""
        value = self._now if when is None else when
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _epoch(dt: datetime.datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.timestamp()


# ------------------------------------------------------------------- patching


class Patches:
    """Attribute replacements that can be undone, last first."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any, bool]] = []

    def set(self, target: Any, name: str, value: Any) -> None:
        had = name in vars(target) if isinstance(target, type) else hasattr(target, name)
        original = (
            vars(target).get(name) if isinstance(target, type) else getattr(target, name, None)
        )
        self._undo.append((target, name, original, had))
        setattr(target, name, value)

    def original(self, target: Any, name: str) -> Any:
        """The value `name` had before the first replacement through these patches."""
        for patched, patched_name, value, _ in self._undo:
            if patched is target and patched_name == name:
                return value
        return getattr(target, name)

    def restore(self) -> None:
        while self._undo:
            target, name, original, had = self._undo.pop()
            if had:
                setattr(target, name, original)
            else:
                delattr(target, name)

    def __bool__(self) -> bool:
        return bool(self._undo)


class MotoTimePatch:
    """Points moto's clocks for SQS, DynamoDB streams and Kinesis at a `VirtualClock`.

    See the module docstring for why. `install()` / `uninstall()` (or `with`).
    """

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._patches = Patches()

    def install(self) -> MotoTimePatch:
        if self._patches:
            return self
        import moto.dynamodb.models.table as ddb_table
        import moto.kinesis.models as kinesis_models
        import moto.sqs.models as sqs_models

        clock = self.clock
        self._patches.set(sqs_models, "unix_time", clock.unix_time)
        self._patches.set(sqs_models, "unix_time_millis", clock.unix_time_millis)
        self._patches.set(ddb_table, "utcnow", clock.utcnow)
        self._patches.set(kinesis_models, "utcnow", clock.utcnow)
        self._patches.set(kinesis_models, "unix_time", clock.unix_time)

        original_receive = sqs_models.SQSBackend.receive_message

        def receive_message(backend: Any, *args: Any, **kwargs: Any) -> Any:
            # (queue_name, count, wait_seconds_timeout, visibility_timeout, ...): a long
            # poll waits for time that only passes in run_until_quiet, so answer now.
            if len(args) > 2:
                args = (*args[:2], 0, *args[3:])
            else:
                kwargs["wait_seconds_timeout"] = 0
            return original_receive(backend, *args, **kwargs)

        self._patches.set(sqs_models.SQSBackend, "receive_message", receive_message)
        return self

    def uninstall(self) -> None:
        self._patches.restore()

    def __enter__(self) -> MotoTimePatch:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


# ------------------------------------------------------------------ scheduler


class SchedulerError(RuntimeError):
    """Delivery could not go on (an item failed, or background work never settled)."""


class NotQuietError(SchedulerError):
    """`run_until_quiet` hit one of its bounds; the message names what keeps scheduling."""


@dataclass(frozen=True)
class BackgroundState:
    """What a source of background work is doing.

    - `idle`: nothing in flight.
    - `parked`: work in flight, all of it waiting on the virtual clock or on an
      outside signal (a task token); the scheduler confirms it with a short quiet
      period, then may move the clock.
    - `busy`: work is running; the clock must not move until it parks or ends.
    `detail` names the work (e.g. the executions in flight) for error messages.
    """

    kind: Literal["idle", "parked", "busy"]
    detail: str = ""


IDLE = BackgroundState("idle")


class BackgroundWork(Protocol):
    """Work running outside the scheduler's thread that virtual time must wait for."""

    def state(self) -> BackgroundState: ...

    def activity(self) -> int:
        """A counter that changes whenever the work makes progress."""
        ...


class RecurringWork(Protocol):
    """Work that repeats as long as the sandbox runs (a scheduled rule): its items must
    not keep `run_until_quiet` from ending once it has nothing left to do."""

    def settled(self) -> bool:
        """Whether the run may end without firing it again: it fired after the last
        activity (`Scheduler.activity`) and what it fired succeeded."""
        ...

    def describe(self) -> str:
        """What it is and how its last firing went, for error messages."""
        ...


@dataclass(order=True)
class _Item:
    due: float
    seq: int
    name: str = field(compare=False)
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)
    # The recurring work this item fires (None: an ordinary item).
    recurring: RecurringWork | None = field(default=None, compare=False)
    # The recurring work this item was caused by, if any: not activity.
    cause: RecurringWork | None = field(default=None, compare=False)


class Handle:
    """A scheduled item: `cancel()` it, or read when it is `due` and its `name`."""

    __slots__ = ("_item", "_scheduler")

    def __init__(self, scheduler: Scheduler, item: _Item) -> None:
        self._scheduler = scheduler
        self._item = item

    @property
    def due(self) -> float:
        return self._item.due

    @property
    def name(self) -> str:
        return self._item.name

    @property
    def cancelled(self) -> bool:
        return self._item.cancelled

    def cancel(self) -> None:
        self._scheduler._cancel(self._item)


@dataclass(frozen=True)
class RunReport:
    """What one `run_until_quiet` did.

    `steps`: items run; `virtual_seconds`: how far the clock moved; `real_seconds`:
    wall time spent; `by_name`: items run per name; `waiting`: background work still
    parked at the end (e.g. executions waiting for a task token that nothing sends).
    """

    steps: int
    virtual_seconds: float
    real_seconds: float
    by_name: dict[str, int]
    waiting: tuple[str, ...] = ()


class Scheduler:
    """Runs scheduled items in virtual time, deterministically (see the module doc).

    - `settle_seconds`: 0.02 (default), the real quiet period that confirms parked
      background work has really parked (a Parallel branch may still be computing).
    - `max_settle_seconds`: 60 (default), real seconds background work may stay busy
      before `run_until_quiet` gives up naming it.

    Items may be scheduled from any thread; they all run in the thread that calls
    `run_until_quiet`. An item that raises stops the run with a `SchedulerError`
    naming it (handler failures are results, not exceptions: an exception here is a
    bug in the sandbox or a resource the delivery cannot reach).
    """

    def __init__(
        self,
        clock: VirtualClock | None = None,
        *,
        settle_seconds: float = 0.02,
        max_settle_seconds: float = 60.0,
    ) -> None:
        self.clock = clock or VirtualClock()
        self.settle_seconds = settle_seconds
        self.max_settle_seconds = max_settle_seconds
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.RLock())
        self._background: list[BackgroundWork] = []
        self._running_thread: int | None = None
        self._current: str | None = None
        self._cause: RecurringWork | None = None
        self._activity_count = 0

    # -- scheduling ---------------------------------------------------------------

    def call_at(
        self,
        when: float,
        name: str,
        action: Callable[[], None],
        *,
        recurring: RecurringWork | None = None,
    ) -> Handle:
        """Run `action` when the virtual clock reaches `when` (epoch seconds).

        `recurring`: the item fires that recurring work (module docstring): it does not
        by itself keep `run_until_quiet` going once the work is settled.
        """
        with self._cond:
            item = _Item(
                max(when, self.clock.now()),
                next(self._seq),
                name,
                action,
                recurring=recurring,
                cause=recurring or self._cause,
            )
            heapq.heappush(self._heap, item)
            self._cond.notify_all()
        return Handle(self, item)

    def call_later(self, delay: float, name: str, action: Callable[[], None]) -> Handle:
        """Run `action` `delay` virtual seconds from now."""
        return self.call_at(self.clock.now() + max(0.0, delay), name, action)

    def call_soon(self, name: str, action: Callable[[], None]) -> Handle:
        """Run `action` at the current virtual time, after what is already due."""
        return self.call_at(self.clock.now(), name, action)

    def _cancel(self, item: _Item) -> None:
        with self._cond:
            item.cancelled = True
            self._cond.notify_all()

    def pending(self) -> list[tuple[float, str]]:
        """(due, name) of every item not yet run, in the order they would run."""
        with self._cond:
            return [(i.due, i.name) for i in sorted(self._heap) if not i.cancelled]

    @property
    def running(self) -> bool:
        """Whether `run_until_quiet` is running (in any thread)."""
        return self._running_thread is not None

    @property
    def current(self) -> str | None:
        """The name of the item running now, if any."""
        return self._current

    @property
    def current_cause(self) -> RecurringWork | None:
        """The recurring work that caused the item running now (None: none, or idle)."""
        return self._cause

    @property
    def activity(self) -> int:
        """How many items have run that no recurring work caused (module docstring)."""
        return self._activity_count

    def _quiet_but_recurring(self) -> bool:
        """Only recurring items are pending, and each of their works is settled."""
        with self._cond:
            live = [item for item in self._heap if not item.cancelled]
        works = {id(i.recurring): i.recurring for i in live if i.recurring is not None}
        if len(works) == 0 or any(i.recurring is None for i in live):
            return False
        return all(work.settled() for work in works.values())

    def _unsettled(self) -> list[str]:
        with self._cond:
            works = {id(i.recurring): i.recurring for i in self._heap if i.recurring}
        return [work.describe() for work in works.values() if not work.settled()]

    # -- background work ----------------------------------------------------------

    def add_background(self, work: BackgroundWork) -> None:
        with self._cond:
            if work not in self._background:
                self._background.append(work)

    def remove_background(self, work: BackgroundWork) -> None:
        with self._cond:
            if work in self._background:
                self._background.remove(work)

    def notify(self) -> None:
        """Background work changed state: wake a scheduler waiting for it."""
        with self._cond:
            self._cond.notify_all()

    def _background_states(self) -> list[BackgroundState]:
        return [work.state() for work in list(self._background)]

    def _activity(self) -> int:
        return sum(work.activity() for work in list(self._background))

    def _settle(self, deadline: float) -> tuple[str, ...]:
        """Wait until no background work is busy (confirmed by a quiet period).

        Returns the details of background work left parked.
        """
        busy_since = time.monotonic()
        while True:
            states = self._background_states()
            busy = [s.detail for s in states if s.kind == "busy"]
            parked = tuple(s.detail for s in states if s.kind == "parked")
            now = time.monotonic()
            if busy:
                if now - busy_since > self.max_settle_seconds or now > deadline:
                    raise SchedulerError(
                        "background work is still running after "
                        f"{now - busy_since:.0f} real seconds without finishing or "
                        f"reaching a virtual wait: {'; '.join(busy)}"
                    )
                with self._cond:
                    self._cond.wait(0.005)
                continue
            if not parked:
                return ()
            # Parked: confirm nothing moves for a quiet period (another thread of the
            # same execution, e.g. a Parallel branch, may still be computing).
            before = self._activity()
            with self._cond:
                self._cond.wait(self.settle_seconds)
            states = self._background_states()
            if self._activity() == before and all(s.kind != "busy" for s in states):
                return tuple(s.detail for s in states if s.kind == "parked")
            busy_since = time.monotonic()

    def _pop_due(self) -> _Item | None:
        with self._cond:
            while self._heap and self._heap[0].cancelled:
                heapq.heappop(self._heap)
            if self._heap and self._heap[0].due <= self.clock.now():
                return heapq.heappop(self._heap)
            return None

    def _peek(self) -> _Item | None:
        with self._cond:
            while self._heap and self._heap[0].cancelled:
                heapq.heappop(self._heap)
            return self._heap[0] if self._heap else None

    # -- running ------------------------------------------------------------------

    def run_until_quiet(
        self,
        *,
        max_steps: int = 10_000,
        max_virtual_seconds: float = 7 * DAY,
        max_real_seconds: float = 600.0,
    ) -> RunReport:
        """Deliver everything that is due, moving virtual time, until nothing is left.

        - `max_steps`: 10000 (default) items at most;
        - `max_virtual_seconds`: 7 days (default) the clock may move;
        - `max_real_seconds`: 600 (default) wall-clock seconds.
        Hitting a bound raises `NotQuietError` naming the items that kept running and
        what is still pending. Returns a `RunReport`.
        """
        me = threading.get_ident()
        with self._cond:
            if self._running_thread is not None:
                raise SchedulerError(
                    "run_until_quiet is already running"
                    + (
                        " (called from inside a scheduled item)"
                        if self._running_thread == me
                        else ""
                    )
                )
            self._running_thread = me
        start_virtual = self.clock.now()
        start_real = time.monotonic()
        deadline = start_real + max_real_seconds
        ran: Counter[str] = Counter()
        steps = 0
        waiting: tuple[str, ...] = ()
        try:
            while True:
                item = self._pop_due()
                if item is None:
                    # Nothing due now: before time moves, background work must finish
                    # or park (it may still schedule something for now).
                    waiting = self._settle(deadline)
                    item = self._pop_due()
                if item is not None:
                    if steps >= max_steps:
                        raise NotQuietError(self._not_quiet(f"after {max_steps} steps", ran, item))
                    steps += 1
                    ran[item.name] += 1
                    self._run(item)
                    if time.monotonic() > deadline:
                        raise NotQuietError(
                            self._not_quiet(f"after {max_real_seconds:.0f} real seconds", ran)
                        )
                    continue
                upcoming = self._peek()
                if upcoming is None or self._quiet_but_recurring():
                    break
                if upcoming.due - start_virtual > max_virtual_seconds:
                    raise NotQuietError(
                        self._not_quiet(
                            f"within {max_virtual_seconds:.0f} virtual seconds", ran, upcoming
                        )
                    )
                self.clock.advance_to(upcoming.due)
        finally:
            with self._cond:
                self._running_thread = None
                self._current = None
        return RunReport(
            steps=steps,
            virtual_seconds=self.clock.now() - start_virtual,
            real_seconds=time.monotonic() - start_real,
            by_name=dict(ran),
            waiting=waiting,
        )

    def _run(self, item: _Item) -> None:
        self._current = item.name
        self._cause = item.cause
        if item.cause is None:
            self._activity_count += 1
        try:
            item.action()
        except Exception as exc:
            raise SchedulerError(f"{item.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            self._current = None
            self._cause = None

    def _not_quiet(self, bound: str, ran: Counter[str], next_item: _Item | None = None) -> str:
        busiest = ", ".join(f"{name!r} ({count}x)" for name, count in ran.most_common(3))
        pending = self.pending()
        if next_item is not None and (next_item.due, next_item.name) not in pending:
            pending.insert(0, (next_item.due, next_item.name))
        shown = ", ".join(
            f"{name!r} at +{due - self.clock.now():.0f}s" for due, name in pending[:5]
        )
        more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        unsettled = self._unsettled()
        recurring = f"; recurring work not settled: {'; '.join(unsettled)}" if unsettled else ""
        return (
            f"delivery did not quiesce {bound}: still scheduling {busiest or 'nothing'}; "
            f"pending: {shown or 'nothing'}{more}{recurring}"
        )
