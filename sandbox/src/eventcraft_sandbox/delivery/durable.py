"""Durable executions run on the virtual clock: Lambda's side of durable functions.

An asynchronous invocation of a durable function (`Invoke` with `InvocationType=Event`,
an EventBridge rule target, `Delivery.submit_async`) starts a durable execution
(`eventcraft_sandbox.durable_service`) instead of entering the asynchronous event
queue: the event is accepted once, and from then on the execution's own replays do
what the queue's retries would. Each invocation runs the handler in its container,
under its role, with the envelope Lambda sends (`DurableExecutionArn`, a fresh
`CheckpointToken`, the checkpoint log); the SDK's checkpoint calls are real boto3
calls to the sandbox's moto, checked against the role's policies. Its answer:

- `SUCCEEDED` / `FAILED`: the execution ends so (its `Result` / `Error`), unless a
  checkpoint of the EXECUTION operation ended it already;
- `PENDING`: the handler suspended; it is invoked again when the earliest wait ends
  or step retry is due (`WaitDetails.ScheduledEndTimestamp`,
  `StepDetails.NextAttemptTimestamp`), on the scheduler, in virtual time: a
  `context.wait(Duration.from_hours(1))` takes no real time and moves the clock an
  hour. Completed operations replay from the log (the SDK does not run those steps
  again); code outside steps runs again on every replay, as on AWS;
- an invocation error (an unhandled exception outside the SDK's handling, a
  timeout, a reply lost on the way back: the `lost-reply` fault, a throttle): the
  work it checkpointed stands and the invocation is made again, replaying from the
  last checkpoint, after 1 s, then 2, 4 ... at most `MAX_REPLAY_BACKOFF` (the
  sandbox's choice: AWS does not document its backoff).

`ExecutionTimeout` (DurableConfig; 86,400 s by default) ends a RUNNING execution with
status `TIMED_OUT` on the virtual clock, wherever it stands (a later checkpoint of an
invocation in flight is refused: it has no token). `StopDurableExecution` ends it
`STOPPED`. Each step is in the delivery log (`lambda.durable`: started, invoked,
pending, replay, SUCCEEDED / FAILED / TIMED_OUT / STOPPED).

A synchronous Invoke (`RequestResponse`, through moto's Invoke API: the runtime hands
it to `run_sync` through `LambdaRuntime.durable_runner`) waits for the execution, as
AWS's does, at most 15 minutes of virtual time (`SYNC_LIMIT`, less if the execution
timeout is shorter): its invocations run one after the other, the virtual clock moved
to each wait's end as a handler's sleep moves it (work due elsewhere meanwhile runs
later, at the later time); the caller gets the execution's result, or its error as the
function's error (`Sandbox.DurableExecutionTimedOut` / `Sandbox.DurableExecutionStopped`
for those ends, the sandbox's names); past the window the execution goes on on the
scheduler and the caller gets `Sandbox.Timedout`.

Not modelled: event source mappings to durable functions (their batches reach the
handler as plain events, which the SDK refuses: "Unexpected payload");
`DurableExecutionName` (idempotent starts); invocations of one execution are never in
flight together. The SDK runs the handler and its checkpoints on threads of its own,
which the runtime does not count as the invocation's (real sleeps and clock there, no
log capture, no `timeout-mid` stop, no `concurrency` turns: README, "Durable
functions").
"""

from __future__ import annotations

import json
from typing import Any

from eventcraft_sandbox.clock import Handle
from eventcraft_sandbox.delivery.common import Arn, DeliveryContext, short_name
from eventcraft_sandbox.durable_service import (
    DurableExecution,
    DurableExecutionService,
    durable_config,
)
from eventcraft_sandbox.lambda_runtime import InvocationResult

__all__ = ["MAX_REPLAY_BACKOFF", "SYNC_LIMIT", "DurableDelivery"]

MAX_REPLAY_BACKOFF = 300.0
# A synchronous invocation waits for its execution at most this long (AWS: 15 minutes).
SYNC_LIMIT = 900.0


class DurableDelivery:
    """Starts durable executions and replays them (module docstring); `service` is
    the execution service the API is served from while installed."""

    def __init__(self, ctx: DeliveryContext) -> None:
        self.ctx = ctx
        self.service = DurableExecutionService(now=ctx.clock.now, on_end=self._ended)
        self._next: dict[str, Handle] = {}
        self._timeouts: dict[str, Handle] = {}

    def install(self) -> DurableDelivery:
        self.service.install()
        return self

    def uninstall(self) -> None:
        self.service.uninstall()

    # -- starting -------------------------------------------------------------------

    def config(self, function: str) -> dict[str, Any] | None:
        """The function's DurableConfig (None: not a durable function)."""
        from moto.awslambda.models import lambda_backends

        arn = Arn.parse(function)
        try:
            backend = lambda_backends[arn.account][arn.region]
            found = backend.get_function(arn.resource.split(":")[1])
        except Exception:  # not there: the asynchronous queue reports it
            return None
        return durable_config(found)

    def start(
        self, function_arn: str, payload: Any, *, source: str = "", invoke: bool = True
    ) -> DurableExecution:
        """Start an execution of the durable `function_arn` with `payload`; its first
        invocation is scheduled now (`invoke=False`: the caller runs it)."""
        unqualified = ":".join(function_arn.split(":")[:7])
        execution = self.service.start(unqualified, payload, self.config(unqualified) or {})
        self.ctx.record(
            "lambda.durable", source, short_name(unqualified), "started", execution.name
        )
        self._timeouts[execution.arn] = self.ctx.scheduler.call_at(
            execution.timeout_at,
            f"durable-timeout {execution.name}",
            lambda: self._time_out(execution),
        )
        if invoke:
            self._schedule(execution, self.ctx.clock.now(), 0)
        return execution

    def run_sync(self, function_arn: str, payload: Any) -> InvocationResult:
        """A synchronous Invoke: start an execution and run its invocations one after
        the other, the virtual clock moved to each wait's end, until it ends or its
        window (`SYNC_LIMIT`, or the execution's timeout if shorter) runs out. Past
        the window the execution goes on on the scheduler and the caller gets
        `Sandbox.Timedout`."""
        execution = self.start(function_arn, payload, source="invoke", invoke=False)
        window = execution.started + min(SYNC_LIMIT, execution.timeout)
        failures = 0
        while not execution.done:
            result = self.ctx.invoker.invoke(execution.function_arn, self._event(execution))
            due, failures = self._settle(execution, failures, result)
            if execution.done:
                break
            if due is None or due > window:
                if execution.timeout_at <= window:
                    self.ctx.clock.advance_to(execution.timeout_at)
                    self._time_out(execution)
                    break
                if due is not None:
                    self._schedule(execution, due, failures)
                message = (
                    f"the synchronous invocation's {SYNC_LIMIT:g} s ran out; durable "
                    f"execution {execution.arn} goes on"
                )
                return InvocationResult(None, "Sandbox.Timedout", message, SYNC_LIMIT * 1000, "")
            self.ctx.clock.advance_to(due)
        return _final(execution)

    # -- invoking -------------------------------------------------------------------

    def _schedule(self, execution: DurableExecution, when: float, failures: int) -> None:
        self._next[execution.arn] = self.ctx.scheduler.call_at(
            max(when, self.ctx.clock.now()),
            f"durable-invoke {execution.name}",
            lambda: self._invoke(execution, failures),
        )

    def _event(self, execution: DurableExecution) -> dict[str, Any]:
        self.service.resume_due(execution)
        return self.service.envelope(execution)

    def _invoke(self, execution: DurableExecution, failures: int) -> None:
        self._next.pop(execution.arn, None)
        if execution.done:
            return
        self.ctx.start(
            execution.function_arn,
            self._event(execution),
            lambda result: self._invoked(execution, failures, result),
            asynchronous=True,
            errors_as_results=True,
        )

    def _invoked(
        self, execution: DurableExecution, failures: int, result: InvocationResult
    ) -> None:
        due, failures = self._settle(execution, failures, result)
        if due is not None:
            self._schedule(execution, due, failures)

    def _settle(
        self, execution: DurableExecution, failures: int, result: InvocationResult
    ) -> tuple[float | None, int]:
        """What an invocation's answer means for the execution (module docstring):
        when to invoke it next (None: not again, or nothing is due) and the count of
        invocation errors in a row."""
        name = short_name(execution.function_arn)
        number = f"invocation {execution.invocations}"
        if execution.done:
            self.ctx.record("lambda.durable", execution.name, name, execution.status, number)
            return None, 0
        if result.refused or result.error_type is not None:
            delay = min(MAX_REPLAY_BACKOFF, 2.0**failures)
            detail = f"{number}: {result.error_type}: {result.error_message}; again in {delay:g} s"
            self.ctx.record("lambda.durable", execution.name, name, "replay", detail)
            return self.ctx.clock.now() + delay, failures + 1
        answer = result.payload if isinstance(result.payload, dict) else {}
        status = answer.get("Status")
        if status == "SUCCEEDED":
            self.service.finish(execution, "SUCCEEDED", result=answer.get("Result") or "")
        elif status == "FAILED":
            self.service.finish(execution, "FAILED", error=answer.get("Error") or {})
        elif status == "PENDING":
            due = execution.due_at()
            when = "nothing due" if due is None else f"until {self.ctx.clock.iso(due)}"
            self.ctx.record("lambda.durable", execution.name, name, "pending", f"{number}: {when}")
            return due, 0
        else:
            error = {
                "ErrorType": "Sandbox.InvalidDurableResponse",
                "ErrorMessage": "a durable function must answer with Status SUCCEEDED, FAILED "
                f"or PENDING (the SDK's @durable_execution does); it answered {result.payload!r}",
            }
            self.service.finish(execution, "FAILED", error=error)
        self.ctx.record("lambda.durable", execution.name, name, execution.status, number)
        return None, 0

    def _time_out(self, execution: DurableExecution) -> None:
        self._timeouts.pop(execution.arn, None)
        if self.service.finish(execution, "TIMED_OUT"):
            self.ctx.record(
                "lambda.durable",
                execution.name,
                short_name(execution.function_arn),
                "TIMED_OUT",
                f"after {execution.timeout} s",
            )

    def _ended(self, execution: DurableExecution) -> None:
        """The execution ended (its answer, a checkpoint, a timeout, a stop): nothing
        of it stays on the scheduler to move the clock."""
        for timers in (self._next, self._timeouts):
            handle = timers.pop(execution.arn, None)
            if handle is not None:
                handle.cancel()


def _final(execution: DurableExecution) -> InvocationResult:
    """What a synchronous caller gets from an ended execution: its result, or its
    error as the function's error (TIMED_OUT and STOPPED under the sandbox's names)."""
    if execution.status == "SUCCEEDED":
        payload = json.loads(execution.result) if execution.result else None
        return InvocationResult(payload, None, None, 0.0, "")
    error = execution.error or {}
    kind = {
        "TIMED_OUT": "Sandbox.DurableExecutionTimedOut",
        "STOPPED": "Sandbox.DurableExecutionStopped",
    }
    return InvocationResult(
        None,
        str(error.get("ErrorType") or kind.get(execution.status, "Unhandled")),
        str(error.get("ErrorMessage") or f"durable execution {execution.arn}: {execution.status}"),
        0.0,
        "",
    )
