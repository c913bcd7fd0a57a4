"""Step Functions on the virtual clock.

moto runs each execution of a state machine in daemon threads with a vendored ASL
interpreter whose `Retry` intervals (`retrier_decl.py`: `time.sleep(interval)`) and
`Wait` states (`wait_function.py`: `env.program_state_event.wait(seconds)`) are real
sleeps (shared notes/moto.md). `StepFunctionsClock.install()` replaces both with
*virtual waits*: the execution's thread registers a wake-up item on the scheduler and
parks until `run_until_quiet` reaches that virtual time, so a task that retries
with `IntervalSeconds: 30` costs no real seconds. `Wait` with `Timestamp` /
`TimestampPath` counts from the virtual now.

It is also the scheduler's `BackgroundWork` for executions: it counts the executions
in flight (moto's `ExecutionWorker.start` .. the end of its thread) and, per execution,
the states being evaluated (every state but Parallel and Map, which only wait for
their branches) and the threads parked in a virtual wait or a task-token wait
(`.waitForTaskToken`). A wait ends, as far as the count goes, when its time comes or
its token is sent (in the sender's thread), not when the parked thread next gets the
CPU: on a loaded machine that can be long after the scheduler's quiet period. An
execution with a state running (a Lambda task, a Choice), or with nothing parked, is
busy: the scheduler does not move virtual time until it
parks or ends, so an execution's retry at t+30 happens after everything it and the
rest of the sandbox do at t. Between two states nothing is counted for an instant;
the scheduler's quiet period (no history event for `settle_seconds`) covers it.

Synchronous executions (`StartSyncExecution`, EXPRESS) run inside the caller's
request, which may be the scheduler's own thread: their waits are not virtual waits
but take no time at all (the clock does not move).

An EXPRESS execution runs at most 5 minutes (Step Functions quotas), as AWS enforces:
one started with `StartExecution` and still running `EXPRESS_MAX_SECONDS` (300)
virtual seconds after its start is stopped there, whatever it is doing (a Wait, a
task's retry interval): status TIMED_OUT, no error or cause on the execution, and an
`ExecutionTimedOut` history event with the error `States.Timeout` (the shape AWS
gives any execution that outlives its time); the delivery log records it
(`stepfunctions.timeout`). STANDARD executions have no such limit. (moto does not
serve `StartSyncExecution`, whose answer would be status TIMED_OUT.)

The `redeliver=P` fault (`eventcraft_sandbox.faults`, TARGET `states`): an execution of
an EXPRESS state machine started with `StartExecution` (by any caller) is, with
probability P, started once more a seeded 1..60 virtual seconds later with the same
input (asynchronous EXPRESS workflows run at least once), under the name
`<name>-redelivered-<n>` (moto keeps names unique). A STANDARD start is exactly-once
for its name, and `StartSyncExecution` answers its caller once: neither is repeated.

Approximations: a task's `TimeoutSeconds` / `HeartbeatSeconds` and an execution's
own `TimeoutSeconds` stay real-time limits (generous next to in-process handlers);
`.sync` service integrations poll in real time.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from eventcraft_sandbox.clock import BackgroundState, Handle, Patches, Scheduler
from eventcraft_sandbox.delivery.common import DeliveryContext, short_name

__all__ = ["EXPRESS_MAX_SECONDS", "StepFunctionsClock"]

# The longest an EXPRESS execution runs (Step Functions quotas, "Express Workflows
# execution duration: 5 minutes"); the error of an execution AWS times out.
EXPRESS_MAX_SECONDS: Final = 300.0
TIMEOUT_ERROR: Final = "States.Timeout"

_local = threading.local()


@dataclass(eq=False)  # each one is itself (kept in sets)
class _Sleeper:
    execution: str
    releases: int  # states it stops counting as running while parked (0 or 1)
    event: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    handle: Handle | None = None


def _execution_arn(env: Any) -> str:
    try:
        return str(env.states.context_object.context_object_data["Execution"]["Id"])
    except (AttributeError, KeyError, TypeError):
        return "unknown-execution"


class _VirtualTime:
    """Stands in for the `time` module inside moto's retrier: `sleep` is virtual."""

    def __init__(self, owner: StepFunctionsClock) -> None:
        self._owner = owner

    def sleep(self, seconds: float) -> None:
        env = getattr(_local, "env", None)
        self._owner.sleep(seconds, env)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# An execution name is at most 80 characters.
_MAX_NAME = 80


class StepFunctionsClock:
    """Virtual waits for moto's Step Functions executions (see the module docstring).

    `ctx`: the delivery's context, for the `redeliver` fault of EXPRESS starts (None:
    no faults)."""

    def __init__(self, scheduler: Scheduler, ctx: DeliveryContext | None = None) -> None:
        self.scheduler = scheduler
        self.ctx = ctx
        self._redeliveries = itertools.count(1)
        self._copies: set[str] = set()  # names of the starts made by `redeliver`
        self.clock = scheduler.clock
        self._lock = threading.Lock()
        self._in_flight: dict[str, bool] = {}  # execution ARN -> synchronous?
        # Per execution: states being evaluated (not Parallel / Map, which only wait
        # for their branches) and threads parked in a virtual or task-token wait.
        self._running: Counter[str] = Counter()
        self._parked: Counter[str] = Counter()
        self._activity = 0
        self._patches = Patches()
        self.waits: list[tuple[str, float]] = []  # (execution, seconds), for reports
        # EXPRESS's 5 minutes: the deadline item of each execution; the threads parked
        # in a virtual wait, per execution (woken at once when it times out).
        self._deadlines: dict[str, Handle] = {}
        self._sleepers: dict[str, set[_Sleeper]] = {}

    # -- BackgroundWork ---------------------------------------------------------------

    def state(self) -> BackgroundState:
        with self._lock:
            running = [arn for arn, sync in self._in_flight.items() if not sync]
            if not running:
                return BackgroundState("idle")
            busy = [arn for arn in running if self._running[arn] > 0 or self._parked[arn] <= 0]
            if busy:
                return BackgroundState("busy", "executions running: " + ", ".join(_names(busy)))
            return BackgroundState("parked", "executions waiting: " + ", ".join(_names(running)))

    def activity(self) -> int:
        return self._activity

    def in_flight(self) -> list[str]:
        """ARNs of the executions whose threads are still running."""
        with self._lock:
            return list(self._in_flight)

    def _changed(self) -> None:
        self._activity += 1
        self.scheduler.notify()

    # -- install ----------------------------------------------------------------------

    def install(self) -> None:
        self._patch_executions()
        self._patch_waits()
        if self.ctx is not None and self.ctx.faults.of("redeliver", service="states"):
            self._patch_express_starts()
        self.scheduler.add_background(self)

    def _patch_express_starts(self) -> None:
        """The `redeliver` fault on EXPRESS `StartExecution` (module docstring)."""
        from moto.stepfunctions.models import StepFunctionBackend
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        owner = self
        for backend_cls in (StepFunctionBackend, StepFunctionsParserBackend):
            original = vars(backend_cls)["start_execution"]

            def start_execution(
                backend: Any,
                arn: str,
                name: Any = None,
                execution_input: Any = None,
                *args: Any,
                original: Any = original,
                **kwargs: Any,
            ) -> Any:
                execution = original(backend, arn, name, execution_input, *args, **kwargs)
                owner._started(backend, arn, name, execution_input)
                return execution

            self._patches.set(backend_cls, "start_execution", start_execution)

    def _started(self, backend: Any, arn: str, name: Any, execution_input: Any) -> None:
        ctx = self.ctx
        if ctx is None or name in self._copies:
            return
        try:
            machine_type = str(getattr(backend.describe_state_machine(arn), "type", ""))
        except Exception:  # moto's own errors (e.g. an alias ARN): the start stands alone
            return
        if machine_type != "EXPRESS":
            return
        if not ctx.faults.draw("redeliver", service="states"):
            return
        again = f"-redelivered-{next(self._redeliveries)}"
        again_name = str(name or "execution")[: _MAX_NAME - len(again)] + again
        self._copies.add(again_name)
        delay = ctx.redelivery_delay()
        ctx.record("stepfunctions.redeliver", short_name(arn), again_name, "scheduled")

        def start_again() -> None:
            params: dict[str, Any] = {"stateMachineArn": arn, "name": again_name}
            if execution_input is not None:
                params["input"] = execution_input
            try:
                ctx.admin("stepfunctions", arn.split(":")[3]).start_execution(**params)
            except ClientError as exc:  # e.g. the state machine was deleted meanwhile
                ctx.record(
                    "stepfunctions.redeliver", short_name(arn), again_name, "failed", str(exc)
                )
                return
            ctx.record("stepfunctions.redeliver", short_name(arn), again_name, "started")

        self.scheduler.call_later(delay, f"stepfunctions-redeliver {short_name(arn)}", start_again)

    def _patch_executions(self) -> None:
        """Count executions in flight, and their progress (history events)."""
        from moto.stepfunctions.parser.asl.component.state import state as state_module
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import (
            StateMap,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel import (  # noqa: E501
            StateParallel,
        )
        from moto.stepfunctions.parser.asl.eval.event import event_manager
        from moto.stepfunctions.parser.backend import execution_worker

        owner = self
        worker_cls = execution_worker.ExecutionWorker
        original_state_body = state_module.CommonStateField._eval_body
        original_start = worker_cls.start
        original_logic = worker_cls._execution_logic
        original_add_event = event_manager.EventManager.add_event

        def start(worker: Any) -> None:
            arn = str(worker._evaluation_details.execution_details.arn)
            owner._begin(worker, arn, isinstance(worker, execution_worker.SyncExecutionWorker))
            try:
                original_start(worker)
            except BaseException:
                owner._finished(arn)
                raise

        def execution_logic(worker: Any) -> None:
            arn = str(worker._evaluation_details.execution_details.arn)
            try:
                original_logic(worker)
            finally:
                owner._finished(arn)

        def add_event(manager: Any, *args: Any, **kwargs: Any) -> Any:
            owner._activity += 1
            _name_the_timeout(kwargs)
            return original_add_event(manager, *args, **kwargs)

        def state_body(state: Any, env: Any) -> None:
            # A Parallel or Map state only waits for its branches, which count themselves.
            counted = not isinstance(state, StateParallel | StateMap)
            arn = _execution_arn(env)
            stack = _counted_stack()
            stack.append(counted)
            if counted:
                owner._adjust(arn, running=1)
            try:
                original_state_body(state, env)
            finally:
                stack.pop()
                if counted:
                    owner._adjust(arn, running=-1)

        self._patches.set(state_module.CommonStateField, "_eval_body", state_body)
        self._patches.set(worker_cls, "start", start)
        self._patches.set(worker_cls, "_execution_logic", execution_logic)
        self._patches.set(event_manager.EventManager, "add_event", add_event)

    def _patch_waits(self) -> None:
        """Retry intervals, Wait states and task-token waits on the virtual clock."""
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import (
            timestamp,
            wait_function,
        )

        owner = self
        original_retry = retrier_decl.RetrierDecl._eval_body
        original_timestamp = timestamp.Timestamp._get_wait_seconds

        def retry_body(retrier: Any, env: Any) -> None:
            previous = getattr(_local, "env", None)
            _local.env = env
            try:
                original_retry(retrier, env)
            finally:
                _local.env = previous

        def wait_interval(function: Any, env: Any, wait_seconds: int) -> None:
            owner.sleep(wait_seconds, env)

        def timestamp_seconds(function: Any, env: Any) -> int:
            # moto counts from the real now; count from the virtual one instead.
            function.string.eval(env=env)
            text = env.stack.pop()
            moment = function._from_timestamp_string(timestamp=text)
            if moment is None:
                return int(original_timestamp(function, env))  # raises moto's failure
            seconds = (moment - owner.clock.utcnow()).total_seconds()
            return max(0, math.ceil(seconds))

        self._patches.set(retrier_decl, "time", _VirtualTime(self))
        self._patches.set(retrier_decl.RetrierDecl, "_eval_body", retry_body)
        self._patches.set(wait_function.WaitFunction, "_wait_interval", wait_interval)
        self._patches.set(timestamp.Timestamp, "_get_wait_seconds", timestamp_seconds)
        self._patch_token_waits()

    def _patch_token_waits(self) -> None:
        """Task-token waits (`.waitForTaskToken`) count as parked (module docstring)."""
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_callback as callback,
        )

        owner = self
        original_token = callback.StateTaskServiceCallback._eval_wait_for_task_token
        original_notify = callback.CallbackEndpoint.notify
        original_interrupt = callback.CallbackEndpoint.interrupt_all

        def wait_for_token(task: Any, env: Any, **kwargs: Any) -> Any:
            # Inside the Task's evaluation (counted as running): parked while it waits.
            # Whoever sends the token unparks it (`notify`), not this thread when it
            # next gets the CPU: on a loaded machine the scheduler would otherwise see
            # everything parked meanwhile and call the sandbox quiet.
            arn = _execution_arn(env)
            sleeper = _Sleeper(arn, releases=1)
            kwargs["callback_endpoint"].sandbox_sleeper = sleeper
            with owner._lock:
                owner._sleepers.setdefault(arn, set()).add(sleeper)
            owner._adjust(arn, running=-1, parked=1)
            try:
                return original_token(task, env=env, **kwargs)
            finally:
                owner._wake(sleeper)
                with owner._lock:
                    owner._sleepers.get(arn, set()).discard(sleeper)

        def notify(endpoint: Any, *args: Any, **kwargs: Any) -> Any:
            sleeper = getattr(endpoint, "sandbox_sleeper", None)
            if sleeper is not None:
                owner._wake(sleeper)
            return original_notify(endpoint, *args, **kwargs)

        def interrupt_all(endpoint: Any) -> Any:
            sleeper = getattr(endpoint, "sandbox_sleeper", None)
            if sleeper is not None:
                owner._wake(sleeper)
            return original_interrupt(endpoint)

        self._patches.set(
            callback.StateTaskServiceCallback, "_eval_wait_for_task_token", wait_for_token
        )
        self._patches.set(callback.CallbackEndpoint, "notify", notify)
        self._patches.set(callback.CallbackEndpoint, "interrupt_all", interrupt_all)

    def uninstall(self) -> None:
        self.scheduler.remove_background(self)
        self._patches.restore()

    # -- EXPRESS's 5 minutes -----------------------------------------------------------

    def _begin(self, worker: Any, arn: str, sync: bool) -> None:
        """An execution starts: counted in flight; an asynchronous EXPRESS one is timed
        out `EXPRESS_MAX_SECONDS` after now unless it ends first."""
        with self._lock:
            self._in_flight[arn] = sync
        if not sync and _is_express(worker):
            handle = self.scheduler.call_later(
                EXPRESS_MAX_SECONDS,
                f"stepfunctions-express-limit {_name(arn)}",
                lambda: self._time_out(getattr(worker, "env", None), arn),
            )
            with self._lock:
                self._deadlines[arn] = handle
        self._changed()

    def _time_out(self, env: Any, arn: str) -> None:
        """End a running execution as AWS does when its time is up (module docstring):
        the ASL code sees it stopped, and its parked threads wake at once (their
        wake-up items are dropped: virtual time stops at the timeout)."""
        if env is None or not _set_timed_out(env):
            return
        with self._lock:
            sleepers = list(self._sleepers.get(arn, ()))
        for sleeper in sleepers:
            self._wake(sleeper)
        if self.ctx is not None:
            machine, execution = _name(arn).rsplit(":", 1)
            self.ctx.record(
                "stepfunctions.timeout",
                machine,
                execution,
                "timed-out",
                f"{TIMEOUT_ERROR}: an EXPRESS execution runs at most {EXPRESS_MAX_SECONDS:.0f} s",
            )

    # -- waits --------------------------------------------------------------------------

    def _finished(self, arn: str) -> None:
        with self._lock:
            self._in_flight.pop(arn, None)
            self._running.pop(arn, None)
            self._parked.pop(arn, None)
            self._sleepers.pop(arn, None)
            deadline = self._deadlines.pop(arn, None)
        if deadline is not None:
            deadline.cancel()  # ended in time: no item left to move the clock
        self._changed()

    def _adjust(self, arn: str, *, running: int = 0, parked: int = 0) -> None:
        with self._lock:
            self._running[arn] += running
            self._parked[arn] += parked
        self._changed()

    def sleep(self, seconds: float, env: Any) -> None:
        """Wait `seconds` of virtual time in an execution's thread (`env`: its ASL
        environment; the wait ends early if the execution stops)."""
        if seconds <= 0:
            return
        arn = _execution_arn(env) if env is not None else "unknown-execution"
        with self._lock:
            synchronous = self._in_flight.get(arn, False)
        self.waits.append((arn, float(seconds)))
        if synchronous:
            return
        # The waiting state (a Wait, or a Task between retries) stops counting as
        # running while parked, unless it is a Parallel / Map retrying (never counted).
        # Registered, and its wake-up scheduled, while it still counts as running: virtual
        # time cannot reach its end (or the execution's deadline) before it is parked.
        stack = _counted_stack()
        sleeper = _Sleeper(arn, releases=1 if stack and stack[-1] else 0)
        with self._lock:
            self._sleepers.setdefault(arn, set()).add(sleeper)
        sleeper.handle = self.scheduler.call_later(
            seconds, f"stepfunctions-wait {_name(arn)}", lambda: self._wake(sleeper)
        )
        self._adjust(arn, running=-sleeper.releases, parked=1)
        try:
            while not sleeper.event.wait(0.05):
                if env is not None and not _running(env):
                    self._wake(sleeper)  # stopped: running again, its wake-up dropped
        finally:
            with self._lock:
                self._sleepers.get(arn, set()).discard(sleeper)

    def _wake(self, sleeper: _Sleeper) -> None:
        """End a virtual wait (its time came, or its execution stopped); once."""
        arn = sleeper.execution
        with self._lock:
            if sleeper.done:
                return
            sleeper.done = True
            self._running[arn] += sleeper.releases
            self._parked[arn] -= 1
        if sleeper.handle is not None:
            sleeper.handle.cancel()
        # Running again from here, before the scheduler settles.
        self._changed()
        sleeper.event.set()


def _counted_stack() -> list[bool]:
    """This thread's states being evaluated: whether each counts as running."""
    stack: list[bool] | None = getattr(_local, "states", None)
    if stack is None:
        stack = []
        _local.states = stack
    return stack


def _is_express(worker: Any) -> bool:
    # The machine's `type` (moto's `sm_type`, which the worker's details carry, is
    # always STANDARD).
    try:
        machine = worker._execution_communication.execution.state_machine
    except AttributeError:
        return False
    return str(getattr(machine, "type", "")) == "EXPRESS"


def _name_the_timeout(event: dict[str, Any]) -> None:
    """moto's ExecutionTimedOut history event carries no error; AWS's carries
    States.Timeout (`event`: `EventManager.add_event`'s keyword arguments)."""
    from moto.stepfunctions.parser.api import HistoryEventType

    if event.get("event_type") != HistoryEventType.ExecutionTimedOut:
        return
    details = (event.get("event_details") or {}).get("executionTimedOutEventDetails")
    if details is not None and not details.get("error"):
        details["error"] = TIMEOUT_ERROR


def _set_timed_out(env: Any) -> bool:
    """Time the execution out if it is still running (not if it just ended)."""
    with env._state_mutex:  # an RLock, also taken by set_timed_out
        if not _running(env):
            return False
        env.set_timed_out()
        return True


def _running(env: Any) -> bool:
    try:
        return bool(env.is_running())
    except Exception:  # a torn-down environment is not running
        return False


def _name(arn: str) -> str:
    parts = arn.split(":")
    return ":".join(parts[-2:]) if len(parts) >= 2 else arn


def _names(arns: list[str]) -> list[str]:
    return [_name(a) for a in arns]
