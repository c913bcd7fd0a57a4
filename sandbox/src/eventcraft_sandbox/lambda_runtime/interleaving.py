"""Invocations in flight together, run in turns: the baton.

Lambda runs overlapping invocations of a function in separate execution environments,
truly in parallel, and what they race on is AWS: both read an item, both decide, both
write. The sandbox cannot run two handlers in parallel in one process: each invocation
swaps process-wide state in (its container's modules in `sys.modules`, `sys.path`,
`os.environ`, stdout/stderr, boto3's default session: `containers`), and no thread can
have an `os.environ` of its own. So invocations in flight together take turns:

* a *chain* is a top-level invocation with the synchronous invocations nested in it
  (they run inside it, in its turn); each chain has its own threads;
* a chain joins the baton when it starts (`join`) and leaves it when it ends
  (`leave`); only the chain holding the baton runs, the others are parked;
* the holder may hand the baton over at a *switch point* (`switch`): just before each
  AWS request its handler code makes (the `BotocoreStubber.process_request` hook) and
  at each of its sleeps. The next holder is drawn among the ready chains, the holder
  included, by `pick` (seeded by the run's fault plan: the `concurrency` fault). The
  holder's process-wide state is set aside (`containers.suspend`) and the next one's
  put back where it left it (`containers.resume`), so each runs with its own modules,
  environment and boto3 session whatever ran in between;
* without a `pick` (or when it answers None) the baton never changes hands at a switch
  point: a chain runs to its end, then the chain that has waited longest starts (what
  the runtime's single lock did before there were turns).

Why only at AWS calls: the races between Lambda invocations that matter are the
interleavings of their AWS calls (a read-modify-write of one item, two conditional puts
of one idempotency record, a compensation's write between a step's read and its write).
Code between two calls touches only the invocation's own memory, so running it without
interruption loses no interleaving AWS could produce; and moto handles one request at a
time anyway (`MOTO_LOCK`).

Determinism: the draws follow the switch points, and the set of chains in flight is
fixed by who starts them. Invocations the delivery starts together are gathered
(`holding` and `gathered`): while the baton is held back, each one takes its
concurrency slot (or is throttled) and parks before the next one starts, and only then
is the first holder drawn. Chains started on threads the sandbox does not schedule
(Step Functions executions, a test's own threads) join when they arrive, which can
differ between runs.

Limits: no switch during a function's init (a switch inside an import could deadlock on
Python's import locks); a holder that blocks waiting for another chain (a thread it
started, an execution it polls without sleeping) keeps the baton, so the other never
runs and the wall-clock backstop ends the wait; code between two AWS calls is never
interrupted (a busy loop delays the others, whose parked time is not counted as theirs).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from eventcraft_sandbox.lambda_runtime.containers import resume, suspend

if TYPE_CHECKING:
    from eventcraft_sandbox.lambda_runtime.invocation import Invocation

__all__ = ["BATON", "Baton", "Chain"]

Pick = Callable[[int], "int | None"]  # n candidates -> the index of the next holder


class Chain:
    """One chain of invocations (module docstring): its swaps of process-wide state
    while it runs (`swaps`, innermost last) and what it set aside while parked
    (`suspended`), both guarded by `lock`."""

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = next(self._ids)
        self.swaps: list[Any] = []  # containers._Swap
        self.suspended: list[Any] = []  # containers.Parked
        self.lock = threading.RLock()
        self.parked = False  # waiting for its turn (the backstop does not count it)

    def invocations(self) -> list[Invocation]:
        with self.lock:
            return [entry.invocation for entry in (self.swaps or self.suspended)]

    def __repr__(self) -> str:
        return f"Chain({self.id})"


class Baton:
    """Who runs among the chains in flight (module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: Chain | None = None
        self._ready: list[Chain] = []  # parked, in the order they arrived
        self._holds = 0
        self._member = threading.local()
        self.pick: Pick | None = None

    # -- a chain's life ---------------------------------------------------------------

    def join(self, chain: Chain) -> None:
        """`chain` starts: wait for its first turn (on the thread that starts it)."""
        with self._cond:
            self._ready.append(chain)
            chain.parked = True
            arrived: threading.Event | None = getattr(self._member, "arrived", None)
            if arrived is not None:
                self._member.arrived = None
                arrived.set()
            self._grant()
            while self._owner is not chain:
                self._cond.wait()
            chain.parked = False

    def leave(self, chain: Chain) -> None:
        """`chain` ended: the next one's turn."""
        with self._cond:
            if self._owner is chain:
                self._owner = None
            elif chain in self._ready:
                self._ready.remove(chain)
            self._grant()

    def switch(self, chain: Chain) -> None:
        """A switch point of the holder `chain` (on its running thread): maybe hand the
        baton over, and come back here on its next turn with its state put back."""
        with self._cond:
            pick = self.pick
            if pick is None or self._owner is not chain or self._holds or not self._ready:
                return
            candidates = [chain, *self._ready]
            index = pick(len(candidates))
            if not index:
                return
            chosen = candidates[index]
            with chain.lock:
                suspend(chain)
            self._ready.remove(chosen)
            self._ready.append(chain)
            self._owner = chosen
            chain.parked = True
            self._cond.notify_all()
            since = time.monotonic()
            while self._owner is not chain:
                self._cond.wait()
            chain.parked = False
        self._resumed(chain, time.monotonic() - since)

    def reclaim(self, chain: Chain) -> None:
        """Another thread of `chain` (the one that waits for a stopped invocation) must
        act on its process-wide state: wait for its turn and put its state back."""
        with self._cond:
            while self._owner is not chain:
                self._cond.wait()
        self._resumed(chain, 0.0)

    @staticmethod
    def _resumed(chain: Chain, waited: float) -> None:
        with chain.lock:
            if chain.suspended:
                resume(chain)
        if waited > 0:
            for invocation in chain.invocations():
                invocation.time.parked(waited)

    def _grant(self) -> None:
        """With the condition held: give a free baton to a ready chain."""
        if self._owner is not None or self._holds or not self._ready:
            return
        index = self.pick(len(self._ready)) if self.pick and len(self._ready) > 1 else None
        self._owner = self._ready.pop(index or 0)
        self._cond.notify_all()

    # -- starting invocations together ------------------------------------------------

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """No chain gets the baton while the block runs (the holder keeps it): the
        invocations started in it all park first (`gathered`)."""
        with self._cond:
            self._holds += 1
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1
                self._grant()

    @contextlib.contextmanager
    def gathered(self, arrived: threading.Event) -> Iterator[None]:
        """On a thread that starts an invocation while the baton is held back:
        `arrived` is set once its chain has parked, or the block ended without one
        (refused before it started)."""
        self._member.arrived = arrived
        try:
            yield
        finally:
            self._member.arrived = None
            arrived.set()


BATON = Baton()
"""The one baton: process-wide state allows one running chain per process."""
