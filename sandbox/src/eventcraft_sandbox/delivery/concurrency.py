"""Invocations the delivery starts together: the `concurrency=N` fault's side of the
delivery (`eventcraft_sandbox.faults`).

Without the fault the delivery invokes one thing at a time: a poll, an asynchronous
attempt, each runs its invocation inline and handles the result before the scheduler
runs the next item. With `concurrency=N` covering a function, each delivery to it is
*submitted* instead, and every invocation submitted at one virtual instant is started
together by one scheduler item (`lambda-launch`), after the items already due then:

* a round starts at most a function's free slots of its invocations (N less those
  in flight), as Lambda's own pollers scale to the concurrency available; the others
  wait for the next round, at the same instant. Only when every slot is taken by
  invocations the delivery did not start (Step Functions tasks, synchronous Invokes)
  are they started anyway, and Lambda throttles them;
* they are started in the order they were submitted, each taking its function's
  concurrency slot (or being throttled: its reserved concurrency may be lower than N)
  before the next starts, and only then do they run, in turns drawn by the run's seed
  at each of their AWS calls (`eventcraft_sandbox.lambda_runtime.interleaving`): their
  calls interleave as overlapping invocations' calls do in AWS;
* the scheduler waits for all of them (virtual time does not move meanwhile, except by
  their own sleeps), then hands each result to its delivery (deleting messages,
  checkpoints, retries, destinations) in the order they were submitted, so everything
  outside the handlers happens in the same order whatever the interleaving was.

What each delivery submits (each module's docstring has the rest): an SQS poller takes
up to its free slots as separate batches (N less the function's invocations in flight
or submitted, and at most the mapping's `ScalingConfig.MaximumConcurrency`), so a FIFO
queue's batches overlap across message groups only (SQS blocks a group while one of
its messages is in flight); each stream shard its next batch (shards in parallel); the
asynchronous queue every attempt due; Step Functions tasks already run on executions'
own threads and take their turns like the rest.

Approximation: an invocation takes no virtual time, so the delivery's invocations
overlap only when they are due at the same virtual instant (a burst of events, one
poll's batches, shards written by one transaction); deliveries spread out in time (by
`reorder`, a redelivery's delay, retries' backoff) seldom meet. Step Functions tasks
overlap whenever their executions run at once.

With an `Invoker` that cannot run invocations together (no `invoke_together`, e.g.
the delivery tests' `FakeInvoker`), invocations submitted together run one after the
other, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eventcraft_sandbox.clock import Scheduler
from eventcraft_sandbox.lambda_runtime import InvocationResult

__all__ = ["Launches", "function_key"]

Call = tuple[str, Any, Literal["RequestResponse", "Event"]]
RunTogether = Callable[[Sequence[Call]], list["InvocationResult | Exception"]]


def function_key(function: str) -> str:
    """A function's name from its name or (qualified) ARN: what its slots are counted by."""
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function.split(":", 1)[0]


@dataclass
class _Launch:
    function_arn: str
    payload: Any
    asynchronous: bool
    then: Callable[[InvocationResult], None]
    errors_as_results: bool


class Launches:
    """The invocations submitted and not yet started (module docstring).

    - `concurrent(function_arn)`: whether the function's deliveries are submitted
      (a `concurrency` fault covers it); if not, `submit` invokes inline;
    - `free_slots(function_arn)`: how many more of its invocations may start now;
    - `invoke(function_arn, payload, asynchronous)`: one invocation;
    - `run_together(calls)`: several at once (results or exceptions, in order).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        concurrent: Callable[[str], bool],
        free_slots: Callable[[str], int],
        invoke: Callable[[str, Any, bool], InvocationResult],
        run_together: RunTogether,
    ) -> None:
        self.scheduler = scheduler
        self._concurrent = concurrent
        self._free_slots = free_slots
        self._invoke = invoke
        self._run_together = run_together
        self._pending: list[_Launch] = []
        self._lock = threading.Lock()

    def pending(self, function_arn: str) -> int:
        """Invocations of the function submitted and not started yet."""
        key = function_key(function_arn)
        with self._lock:
            return sum(1 for launch in self._pending if function_key(launch.function_arn) == key)

    def submit(
        self,
        function_arn: str,
        payload: Any,
        then: Callable[[InvocationResult], None],
        *,
        asynchronous: bool = False,
        errors_as_results: bool = False,
    ) -> None:
        """Invoke the function and hand the result to `then`: at once, or with the
        others submitted at this instant. An exception the invoker raises goes to the
        scheduler (or, with `errors_as_results`, to `then` as a function error named
        after it)."""
        launch = _Launch(function_arn, payload, asynchronous, then, errors_as_results)
        if not self._concurrent(function_arn):
            launch.then(self._result(launch, self._one(launch)))
            return
        with self._lock:
            first = not self._pending
            self._pending.append(launch)
        if first:
            self.scheduler.call_soon("lambda-launch", self._launch)

    def _one(self, launch: _Launch) -> InvocationResult | Exception:
        try:
            return self._invoke(launch.function_arn, launch.payload, launch.asynchronous)
        except Exception as exc:
            return exc

    def _launch(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        launches, left = self._round(pending)
        if left:
            with self._lock:
                self._pending[:0] = left  # first in the next round
            self.scheduler.call_soon("lambda-launch", self._launch)
        if len(launches) == 1:
            results = [self._one(launches[0])]
        else:
            calls: list[Call] = [
                (
                    launch.function_arn,
                    launch.payload,
                    "Event" if launch.asynchronous else "RequestResponse",
                )
                for launch in launches
            ]
            results = self._run_together(calls)
        for launch, result in zip(launches, results, strict=True):
            launch.then(self._result(launch, result))

    def _round(self, pending: list[_Launch]) -> tuple[list[_Launch], list[_Launch]]:
        """The launches of this round, and those left for the next (module docstring)."""
        room: dict[str, int] = {}
        started: list[_Launch] = []
        left: list[_Launch] = []
        for launch in pending:
            key = function_key(launch.function_arn)
            if key not in room:
                free = self._free_slots(launch.function_arn)
                room[key] = free if free > 0 else len(pending)  # all taken: Lambda throttles
            if room[key] > 0:
                room[key] -= 1
                started.append(launch)
            else:
                left.append(launch)
        return started, left

    @staticmethod
    def _result(launch: _Launch, result: InvocationResult | Exception) -> InvocationResult:
        if not isinstance(result, Exception):
            return result
        if not launch.errors_as_results:
            raise result
        return InvocationResult(None, type(result).__name__, str(result), 0.0, "")
