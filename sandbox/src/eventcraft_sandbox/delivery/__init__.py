"""Event delivery with AWS's semantics for the sandbox, on a virtual clock.

moto delivers events itself in a few places, wrongly for this project (one message at
a time inside the write, no batching, filters, partial failures, retries or
destinations; `NotImplementedError` for Lambda, Step Functions and Kinesis rule
targets). `Delivery` replaces all of it:

    from eventcraft_sandbox.clock import Scheduler, VirtualClock
    from eventcraft_sandbox.delivery import Delivery
    from eventcraft_sandbox.lambda_runtime import LambdaRuntime

    with Sandbox() as sandbox:                          # moto, IAM enforced
        deployment = sandbox.deploy(ROOT / "__main__.py", stack="dev")
        clock = VirtualClock()                           # starts at the real time now
        runtime = LambdaRuntime(admin=sandbox.admin, clock=clock)
        delivery = Delivery(Scheduler(clock), runtime, deployment.records, sandbox)
        runtime.event_dispatcher = delivery.dispatch_event   # Invoke(Event) -> async queue
        runtime.durable_runner = delivery.durable.run_sync   # durable functions' Invoke
        with runtime, delivery:
            ...                                          # put events, send, write items
            report = delivery.run_until_quiet()          # deliver it all, in virtual time

* `invoker`: a `eventcraft_sandbox.lambda_runtime.Invoker` (runs a function and reports how it
  went, for both invocation types: retries of asynchronous invocations are done here);
* `records`: what the deployer recorded (`SandboxDeployment.records`): the event
  source mappings the pollers deliver (`add_mapping` for one recorded later);
* `clients`: boto3 clients on moto as the administrator (the `Sandbox`; for tests on a
  bare `mock_aws`, `DefaultClients()`).

Install the delivery after the deployment (it reads the stream shards and starting
positions) and read queues while it is installed: moto's SQS clock is the virtual one
only then (`eventcraft_sandbox.clock`).

Parts (each module's docstring has the semantics and what is approximated):
`eventbridge` (PutEvents -> rules -> targets, retry policies, DLQs, archives, replay),
`lambda_async` (asynchronous invocation retries and destinations), `durable`
(durable functions' executions, their replays and timeouts), `schedules`
(scheduled rules), `sqs` (queue -> function pollers), `streams` (DynamoDB stream /
Kinesis shard pollers), `stepfunctions` (virtual Retry / Wait), `concurrency`
(deliveries started together under the `concurrency` fault), and
`eventcraft_sandbox.clock` (virtual time, the scheduler, moto's SQS / stream clocks).
Only one `Delivery` can be installed at a time:
its patches are process-wide, like moto's state.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from eventcraft_sandbox.clock import MotoTimePatch, RunReport, Scheduler
from eventcraft_sandbox.delivery.common import (
    ClientSource,
    DefaultClients,
    DeliveryContext,
    DeliveryLog,
    LogEntry,
    MappingLike,
    RecordsLike,
)
from eventcraft_sandbox.delivery.durable import DurableDelivery
from eventcraft_sandbox.delivery.eventbridge import ArchivedEvent, EventBridgeDelivery
from eventcraft_sandbox.delivery.lambda_async import LambdaAsync
from eventcraft_sandbox.delivery.schedules import ScheduleDelivery
from eventcraft_sandbox.delivery.sqs import SqsDelivery
from eventcraft_sandbox.delivery.stepfunctions import StepFunctionsClock
from eventcraft_sandbox.delivery.streams import StreamDelivery
from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.lambda_runtime import Invoker

__all__ = [
    "ArchivedEvent",
    "ClientSource",
    "DefaultClients",
    "Delivery",
    "DeliveryLog",
    "LogEntry",
    "MappingLike",
    "RecordsLike",
]


class Delivery:
    """All of the sandbox's event delivery, installed into moto (module docstring).

    - `region`: "us-east-1" (default), for clients without a region in an ARN;
    - `use_roles`: True (default): pollers and destinations call AWS with the
      function's execution role (assumed as lambda.amazonaws.com for the function),
      role-based rule targets with the target's role (assumed as events.amazonaws.com
      for the rule): a role whose trust policy does not let the service in for that
      resource (aws:SourceArn, aws:SourceAccount) cannot be assumed, and with IAM enforced
      moto judges every call by the role's policies; False: as the administrator;
    - `check_resource_policies`: True (default): EventBridge only invokes a function /
      sends to a queue (target or DLQ) whose resource policy lets the rule (else
      NO_PERMISSIONS -> the target's DLQ without retries, as AWS does);
    - `faults`: the run's `eventcraft_sandbox.faults.FaultPlan` (default: none): its
      delivery faults (`redeliver`, `reorder`, and `concurrency`'s side) are made
      here, as each part's docstring says; `function_names`: deployed name -> the
      short name a fault's TARGET uses.
    """

    _installed: Delivery | None = None
    _installed_lock = threading.Lock()

    def __init__(
        self,
        scheduler: Scheduler,
        invoker: Invoker,
        records: RecordsLike | None = None,
        clients: ClientSource | None = None,
        *,
        region: str = "us-east-1",
        use_roles: bool = True,
        check_resource_policies: bool = True,
        faults: FaultPlan | None = None,
        function_names: Mapping[str, str] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.records = records
        self.ctx = DeliveryContext(
            scheduler,
            invoker,
            clients or DefaultClients(region),
            region=region,
            use_roles=use_roles,
            check_resource_policies=check_resource_policies,
            faults=faults,
            function_names=function_names,
        )
        mappings: list[MappingLike] = list(records.event_source_mappings) if records else []
        self.time = MotoTimePatch(self.clock)
        self.durable = DurableDelivery(self.ctx)
        self.ctx.durable = self.durable
        self.lambda_async = LambdaAsync(self.ctx)
        self.eventbridge = EventBridgeDelivery(self.ctx, self.lambda_async)
        self.sqs = SqsDelivery(self.ctx, mappings)
        self.streams = StreamDelivery(self.ctx, mappings)
        self.stepfunctions = StepFunctionsClock(scheduler, self.ctx)
        self.schedules = ScheduleDelivery(self.ctx, self.eventbridge)
        self._installed_parts: list[Any] = []

    @property
    def log(self) -> DeliveryLog:
        """Every delivery step so far, in order."""
        return self.ctx.log

    def install(self) -> Delivery:
        """Patch moto (process-wide) and start the pollers. Returns self."""
        with Delivery._installed_lock:
            if Delivery._installed is self:
                return self
            if Delivery._installed is not None:
                raise RuntimeError(
                    "another Delivery is installed in this process: uninstall() it first"
                )
            Delivery._installed = self
        try:
            for part in (
                self.time,
                self.durable,
                self.stepfunctions,
                self.eventbridge,
                self.sqs,
                self.streams,
                self.schedules,
            ):
                part.install()
                self._installed_parts.append(part)
        except BaseException:
            self.uninstall()
            raise
        return self

    def uninstall(self) -> None:
        """Undo every patch (pending scheduled items stay in the scheduler, inert)."""
        while self._installed_parts:
            self._installed_parts.pop().uninstall()
        with Delivery._installed_lock:
            if Delivery._installed is self:
                Delivery._installed = None

    def __enter__(self) -> Delivery:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def run_until_quiet(
        self,
        *,
        max_steps: int = 10_000,
        max_virtual_seconds: float = 7 * 86_400,
        max_real_seconds: float = 600.0,
    ) -> RunReport:
        """`Scheduler.run_until_quiet`: deliver everything, moving virtual time."""
        return self.scheduler.run_until_quiet(
            max_steps=max_steps,
            max_virtual_seconds=max_virtual_seconds,
            max_real_seconds=max_real_seconds,
        )

    def add_mapping(self, mapping: MappingLike) -> None:
        """Deliver an event source mapping recorded after `install()` (ignored if it
        is disabled or its source is not SQS, a DynamoDB stream or Kinesis)."""
        source = mapping.event_source_arn or ""
        if not mapping.enabled or not source.startswith("arn:"):
            return
        service = source.split(":")[2]
        if service == "sqs":
            self.sqs.add_mapping(mapping)
        elif service in ("dynamodb", "kinesis"):
            self.streams.add_mapping(mapping)

    def dispatch_event(self, function: str, event: Any) -> None:
        """An `InvocationType=Event` call through the Invoke API: queued for
        asynchronous delivery (`LambdaRuntime(event_dispatcher=delivery.dispatch_event)`)."""
        self.lambda_async.submit(function, event, source="invoke")

    def submit_async(self, function: str, payload: Any) -> str:
        """Queue an asynchronous invocation (what `Invoke` with `InvocationType=Event`
        does in AWS): retries and destinations per the function's config."""
        return self.lambda_async.submit(function, payload, source="invoke")

    def replay(self, archive: str, start: Any, end: Any, **kwargs: Any) -> str:
        """`EventBridgeDelivery.replay`."""
        return self.eventbridge.replay(archive, start, end, **kwargs)
