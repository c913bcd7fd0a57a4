"""How long a handler has run, in function seconds, and sleeps that cost no real time.

A handler's elapsed time is what its timeout and `context.get_remaining_time_in_millis()`
are measured on:

    elapsed = CPU seconds of its worker thread / timeout_scale
            + the seconds it slept (virtually)
            + the elapsed time of the synchronous invocations it waited on

never the wall clock, which on a loaded machine runs ahead of the handler's own work,
nor the CPU time the thread spent collecting garbage: the heap is the whole sandbox's
(moto, every function, the test), not the function's, and a full collection of it
can take seconds (`GcTime`).
An infinite loop still times out (its CPU time grows); a handler blocked forever (a
deadlock) uses neither CPU nor sleeps, and only the runtime's wall-clock backstop
stops it.

`virtual_sleep` replaces `time.sleep` while a `LambdaRuntime` is installed: on an
invocation's worker thread (`thread_state.STATE.invocation`) a sleep returns at once
(after the other invocations in flight had their chance to run: a switch point of
`interleaving`), adds its seconds to the invocation's elapsed time and moves the
runtime's clock (the sandbox's `VirtualClock`) forward by as much. A sleep that
outlasts the time left ends the invocation as a Lambda timeout: the clock moves to the
deadline and the thread unwinds with `InvocationTimedOut` (a BaseException, so handler
code's `except Exception` does not swallow it). Sleeps on any other thread (the sandbox's own,
a test's, threads a handler starts) are real.

The handler's clock (`time.time()`, `datetime.now()`, ...) reads the same time on
that thread: the virtual clock at the invocation's start plus its elapsed time
(`HandlerTime.now`, `handler_clock`).

`time.sleep` is looked up at call time by most code (botocore's legacy retries and
waiters, `time.sleep(...)` in handlers), but some code captured the function object
when it was defined: a default argument (botocore's standard-mode `RetryHandler`,
eventcraft's `Publisher`) or a module-level `from time import sleep`; the same goes
for the clock (`from datetime import datetime`, `clock=time.time`).
`install_handler_time` also points those at the replacements, in every module already
imported (`captured`); modules imported later capture the replacements themselves.
The runtime's uninstall restores everything, those later captures included.
"""

from __future__ import annotations

import gc
import numbers
import sys
import threading
import time
from typing import Any

from eventcraft_sandbox.lambda_runtime import handler_clock
from eventcraft_sandbox.lambda_runtime.captured import Replacements, rebind_captured
from eventcraft_sandbox.lambda_runtime.moto_hooks import Patches
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

__all__ = ["HandlerTime", "InvocationTimedOut", "install_handler_time", "virtual_sleep"]

REAL_SLEEP = time.sleep


class InvocationTimedOut(BaseException):
    """Unwinds a worker thread whose invocation has run out of time (see module doc)."""


def virtual_sleep(seconds: float) -> None:
    """`time.sleep` that is virtual on an invocation's thread (see the module docstring)."""
    invocation = STATE.invocation
    if invocation is None:
        REAL_SLEEP(seconds)
        return
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise TypeError(
            f"'{type(seconds).__name__}' object cannot be interpreted as an integer or float"
        )
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    invocation.sleep_turn()  # others in flight may run meanwhile (`interleaving`)
    invocation.time.sleep(float(seconds))


class GcTime:
    """CPU seconds each thread spent in the garbage collector (a `gc.callbacks` entry,
    installed with the runtime): taken out of a handler's CPU time (module doc)."""

    by_thread: dict[int, float] = {}
    _since: dict[int, float] = {}

    @classmethod
    def callback(cls, phase: str, info: dict[str, Any]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            cls._since[ident] = time.thread_time()
            return
        started = cls._since.get(ident)
        if started is not None:
            # Added before the start is forgotten: `spent` never misses a collection.
            cls.by_thread[ident] = cls.by_thread.get(ident, 0.0) + time.thread_time() - started
            del cls._since[ident]

    @classmethod
    def spent(cls, ident: int | None, cpu_now: float) -> float:
        """The thread's garbage-collection CPU seconds so far, the collection under way
        included (`cpu_now`: the thread's CPU clock now): a single collection of a big
        heap can outlast a function's timeout."""
        if ident is None:
            return 0.0
        started = cls._since.get(ident)  # read first: see `callback`
        total = cls.by_thread.get(ident, 0.0)
        if started is not None:
            total += max(0.0, cpu_now - started)
        return total

    @classmethod
    def install(cls) -> Any:
        """Start counting; returns what stops it."""
        gc.callbacks.append(cls.callback)

        def uninstall() -> None:
            if cls.callback in gc.callbacks:
                gc.callbacks.remove(cls.callback)
            cls.by_thread.clear()
            cls._since.clear()

        return uninstall


class HandlerTime:
    """One invocation's elapsed time (function seconds) and its timeout.

    `start(limit)` is called on the worker thread at the start of each phase (init,
    then the handler), `limit` being the phase's timeout in function seconds. Every
    other method may be called from any thread.

    `clock`: the runtime's clock (None: the handler's clock is the real one);
    `caller`: the time of the invocation waiting on this one (a synchronous invoke),
    whose present this one's clock starts no earlier than.
    """

    def __init__(
        self, *, timeout_scale: float, clock: Any = None, caller: HandlerTime | None = None
    ) -> None:
        self.timeout_scale = timeout_scale
        self._advance = getattr(clock, "advance", None)  # a VirtualClock moves; time() only
        self._clock_time = getattr(clock, "time", None)
        self._not_before = caller.now() if caller is not None else None
        self._base: float | None = None  # the clock when the worker thread started
        self._last_now = 0.0  # the latest now(): it never goes back
        self._lock = threading.Lock()
        self.limit = 0.0
        self.slept = 0.0  # virtual seconds slept, all phases
        self.nested = 0.0  # elapsed seconds of finished synchronous child invocations
        self._child: HandlerTime | None = None
        self._started = False
        self._clock_id: int | None = None  # the worker thread's CPU clock
        self._ident: int | None = None  # the worker thread (`GcTime`)
        self._gc_start = 0.0  # its garbage-collection CPU seconds when it started
        self._cpu_final: float | None = None  # its CPU time when it ended
        self._real_start = time.monotonic()
        self._phase_cpu = 0.0
        self._phase_other = 0.0  # slept + nested at the phase's start
        self._real_phase_start = self._real_start
        self._parked = 0.0  # real seconds parked waiting for its turn (`interleaving`)
        self._parked_at_phase = 0.0
        self.stopped = threading.Event()  # timed out: the thread may run no further

    # -- on the worker thread -------------------------------------------------------

    def start(self, limit: float) -> None:
        """Begin a phase of `limit` function seconds (on the worker thread)."""
        if not self._started:
            try:  # Linux (and most Unixes); elsewhere the thread's real time stands in
                self._clock_id = time.pthread_getcpuclockid(threading.get_ident())
            except (AttributeError, OSError):
                self._clock_id = None
            self._ident = threading.get_ident()
            self._gc_start = GcTime.spent(self._ident, time.thread_time())
            self._real_start = time.monotonic()
            self._base = self._clock_start()
            self._started = True
        with self._lock:
            self.limit = limit
            self._phase_cpu = self._cpu()
            self._phase_other = self.slept + self.nested
            self._real_phase_start = time.monotonic()
            self._parked_at_phase = self._parked

    def finish(self) -> None:
        """The worker thread ends: keep its CPU time (its clock goes with it)."""
        self._cpu_final = self._cpu()

    def sleep(self, seconds: float) -> None:
        """A virtual sleep on the worker thread (see the module docstring)."""
        if self.stopped.is_set():  # already timed out: go no further
            raise InvocationTimedOut
        REAL_SLEEP(0)  # a sleep still lets other threads run
        left = self.limit - self.elapsed()
        if seconds < left:
            self._move(seconds)
            return
        self._move(max(0.0, left))  # Lambda stops it at its deadline, mid-sleep
        self.stop()
        raise InvocationTimedOut

    def stop(self) -> None:
        """The invocation timed out: its thread's next sleep unwinds it."""
        self.stopped.set()

    def _move(self, seconds: float) -> None:
        with self._lock:
            self.slept += seconds
        if self._advance is not None and seconds > 0:
            self._advance(seconds)

    def parked(self, seconds: float) -> None:
        """The invocation waited `seconds` of real time for its turn among invocations in
        flight together (`interleaving`): not the handler's time, nor a sign that it is
        blocked."""
        with self._lock:
            self._parked += seconds

    # -- nested invocations -----------------------------------------------------------

    def waiting_on(self, child: HandlerTime | None) -> None:
        """The worker thread waits for `child` (a synchronous invocation), or stopped
        waiting (None): the child's elapsed time counts as this one's."""
        with self._lock:
            previous, self._child = self._child, child
            if child is None and previous is not None:
                self.nested += previous.elapsed_total()

    # -- from any thread ----------------------------------------------------------------

    def _cpu(self) -> float:
        """CPU time of the worker thread in function seconds (0 before it started)."""
        if not self._started:
            return 0.0
        if self._cpu_final is not None:
            return self._cpu_final
        if self._clock_id is not None:
            try:
                used = time.clock_gettime(self._clock_id)
                collecting = GcTime.spent(self._ident, used) - self._gc_start
                return max(0.0, used - collecting) / self.timeout_scale
            except OSError:  # the thread has just ended
                return self._cpu_final if self._cpu_final is not None else self._phase_cpu
        # No per-thread CPU clock: the thread's real time, an overestimate under load.
        return (time.monotonic() - self._real_start) / self.timeout_scale

    def elapsed_total(self) -> float:
        """Function seconds since the invocation's worker thread started (all phases)."""
        with self._lock:
            child = self._child
            other = self.slept + self.nested
        return self._cpu() + other + (child.elapsed_total() if child is not None else 0.0)

    def elapsed(self) -> float:
        """Function seconds since the current phase started."""
        with self._lock:
            child = self._child
            other = self.slept + self.nested - self._phase_other
            phase_cpu = self._phase_cpu
        running = child.elapsed_total() if child is not None else 0.0
        return max(0.0, self._cpu() - phase_cpu) + other + running

    def remaining(self) -> float:
        """Function seconds left in the current phase (never below 0)."""
        return max(0.0, self.limit - self.elapsed())

    def now(self) -> float | None:
        """The handler's clock in epoch seconds: the runtime's clock when the invocation
        started plus its elapsed time (all phases), never less than a previous reading;
        None without a clock (see `handler_clock`)."""
        base = self._base if self._base is not None else self._clock_start()
        if base is None:
            return None
        value = base + self.elapsed_total()
        with self._lock:
            if value < self._last_now:
                return self._last_now
            self._last_now = value
        return value

    def _clock_start(self) -> float | None:
        if self._clock_time is None:
            return None
        start = float(self._clock_time())
        return start if self._not_before is None else max(start, self._not_before)

    def real_seconds(self) -> float:
        """Wall-clock seconds since the current phase started, less the time it was
        parked waiting for its turn (for the backstop only)."""
        with self._lock:
            parked = self._parked - self._parked_at_phase
        return time.monotonic() - self._real_phase_start - parked

    def cpu_seconds(self) -> float:
        """CPU seconds the worker thread used in the current phase (unscaled)."""
        return max(0.0, self._cpu() - self._phase_cpu) * self.timeout_scale


# ----------------------------------------------------------------------- install

# Modules not searched for captured references: the replaced modules (set by name
# below) and those that keep the originals on purpose.
_NOT_REBOUND = ("time", "datetime", "_datetime", __name__, handler_clock.__name__)


def install_handler_time(patches: Patches) -> None:
    """Make `time.sleep` and the clock virtual on invocation threads (see the module
    docstrings): in `time` and `datetime`, and wherever the modules imported so far
    captured them. Undone with `patches`, with what modules imported meanwhile
    captured."""
    replacements = Replacements(
        {REAL_SLEEP: virtual_sleep, **handler_clock.CLOCK_REPLACEMENTS},
        bound_names=handler_clock.BOUND_NAMES,
    )
    patches.set(time, "sleep", virtual_sleep)
    patches.on_undo(GcTime.install())
    for module, names in handler_clock.MODULE_NAMES.items():
        for name in names:
            new = replacements.get(getattr(module, name))
            if new is not None:  # else someone else's replacement (a test's): leave it
                patches.set(module, name, new)
    patches.on_undo(handler_clock.install_pickling())
    imported = dict(sys.modules)
    patches.on_undo(lambda: _rebind_imported_since(imported, replacements.inverse()))
    rebind_captured(patches, replacements, skip=_NOT_REBOUND)


def _rebind_imported_since(imported: dict[str, Any], originals: Replacements) -> None:
    """Point what the modules imported since install captured back at the originals
    (for good: nothing undoes this)."""
    new = [(n, m) for n, m in list(sys.modules.items()) if imported.get(n) is not m]
    rebind_captured(Patches(), originals, modules=new, skip=_NOT_REBOUND)
