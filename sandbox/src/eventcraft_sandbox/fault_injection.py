"""The faults of a `FaultPlan` made real: AWS calls refused or cut short, and Lambda
invocations whose caller sees a timeout, each as AWS shapes it.

    injector = FaultInjector(plan, clock=clock, functions={"submit": "app-dev-submit"})
    with injector.installed(runtime):      # the request hook, and the runtime's _invoke
        ...

`SandboxSession(faults=...)` installs one (`session.fault_injector`); a user of a bare
`Sandbox` can install one too (`clients=True` also faults the calls that the process's
own boto3 clients make, with no Lambda runtime needed).

Where each fault acts:

* **calls** (`throttle`, `outage`, `putevents-partial`, `txn-conflict`): in moto's one
  entry for every request (`BotocoreStubber.process_request`), for the calls made by
  handler code (a thread running an invocation: a fault targeted at a function covers
  the calls its code makes) and by Step Functions executions (their service integrations
  and Lambda tasks). The sandbox's own calls (the session's readers and seeding, the
  delivery's reads) are not faulted unless `clients=True`. A refused call gets the
  service's own error as botocore parses it (HTTP status, code, message, modelled
  members), so botocore's retries apply as they do against AWS: a throttled call
  that succeeds on a retry is counted once per refused attempt.
  - `throttle`: DynamoDB `ProvisionedThroughputExceededException` (item operations,
    with `ThrottlingReasons`), `ThrottlingException` (table operations) and, for
    transactions, `TransactionCanceledException` with a `ThrottlingError` reason;
    EventBridge and Step Functions `ThrottlingException`; SQS `RequestThrottled`;
    Lambda `TooManyRequestsException` (429, with `Reason`); Kinesis
    `ProvisionedThroughputExceededException` (records) / `LimitExceededException`.
  - `outage` (a window on the virtual clock): DynamoDB `InternalServerError` (500),
    EventBridge `InternalException` (500), Lambda `ServiceException` (500), SQS, Step
    Functions and Kinesis `ServiceUnavailable` (503).
  - `putevents-partial`: the chosen entries come back with `ErrorCode`
    `InternalFailure` (and `FailedEntryCount`); only the others reach the bus.
  - `txn-conflict`: TransactWriteItems / TransactGetItems cancelled with
    `TransactionCanceledException`, `TransactionConflict` for one item and `None` for
    the others; nothing is written.
* **invocations** (`lost-reply`, `timeout-mid`, and `throttle` / `outage` of `lambda`):
  around the runtime's `_invoke`, which every invocation path goes through.
  - `lost-reply`: the function runs to its end (its writes stand); its caller sees
    the timeout a real one shows: the function error `Sandbox.Timedout` ("Task timed
    out after N.00 seconds") for Step Functions tasks, pollers, asynchronous
    invocations and `SandboxSession.invoke`; botocore's `ReadTimeoutError` for a
    synchronous Invoke made with boto3 by a handler or a client (botocore retries it,
    which runs the function again, as with AWS). A durable function's invocation
    whose reply is lost is replayed from its execution's last checkpoint
    (`delivery.durable`): the steps it completed stand and do not run again.
  - `timeout-mid`: at the invocation's first call that is not a read (reads: Get*,
    Describe*, List*, BatchGet*, TransactGet*, Query, Scan, ReceiveMessage, any GET),
    the call is made and then the handler is stopped with `FunctionTimedOut`, a
    `BaseException` its `except Exception` cannot catch (Powertools' idempotency
    keeps its INPROGRESS record, as after a real timeout); any later call of that
    invocation is stopped again, and its execution environment is not reused (the
    next invocation starts cold, as after a real timeout). Every caller, synchronous
    ones included, sees `Sandbox.Timedout`: what Lambda answers when a function times
    out. Not for durable functions' handler code: the SDK runs it, and makes its
    checkpoints, on threads of its own, which are not the invocation's.
  - `throttle@lambda` / `outage@lambda`: invocations made outside the Invoke API (the
    delivery's pollers, rule targets and asynchronous queue; `SandboxSession.invoke`)
    end without running, with `TooManyRequestsException` / `ServiceException`; the
    Invoke API (handlers, clients, Step Functions tasks, which see
    `Lambda.TooManyRequestsException` / `Lambda.ServiceException`) gets the error
    response above. A refused invocation did not run (`InvocationResult.refused`): the
    delivery retries an asynchronous event or a stream batch without using up an
    attempt, as Lambda does.
* **concurrency** (`concurrency=N`, TARGET a function or `lambda`): installed into the
  runtime. Its limit per function is N (`lambda_runtime.concurrency`: an invocation
  past it is throttled as Lambda throttles, beside the function's reserved
  concurrency); invocations in flight together take turns drawn with the fault's seed
  at each of their AWS calls and sleeps (`lambda_runtime.interleaving`: without the
  fault a chain of invocations runs to its end before the next starts); the delivery
  starts up to N of a function's deliveries together (`delivery.concurrency`). Counted:
  each invocation of a covered function that starts while another of the same
  function is in flight.

Approximations: a lost reply or a stop takes no virtual time (a real timeout costs the
caller the function's timeout); SQS answers in its JSON protocol only (botocore's).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Final

from botocore.exceptions import ReadTimeoutError

from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.lambda_runtime import InvocationResult, LambdaRuntime
from eventcraft_sandbox.lambda_runtime.interface import Clock
from eventcraft_sandbox.lambda_runtime.interleaving import BATON
from eventcraft_sandbox.lambda_runtime.invocation import Outcome
from eventcraft_sandbox.lambda_runtime.moto_hooks import lambda_error_response
from eventcraft_sandbox.lambda_runtime.thread_state import STATE

__all__ = ["FaultInjector", "FunctionTimedOut"]

_CALL_FAULTS: Final = frozenset({"throttle", "outage", "putevents-partial", "txn-conflict"})
_READ_PREFIXES: Final = ("Get", "Describe", "List", "BatchGet", "TransactGet")
_READS: Final = frozenset({"Query", "Scan", "ReceiveMessage"})
_TRANSACTIONS: Final = frozenset({"TransactWriteItems", "TransactGetItems"})
_DYNAMODB_ITEM_READS: Final = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_DYNAMODB_ITEM_WRITES: Final = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "ExecuteStatement"}
)
_KINESIS_RECORDS: Final = frozenset({"PutRecord", "PutRecords", "GetRecords"})
_DYNAMODB_CAPACITY_MESSAGE: Final = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is "
    "automatically scaling your table or index so please try again shortly. If exceptions "
    "persist, check if you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html."
)
# How each service's JSON errors name their type, and the content type it answers in.
_ERROR_PREFIX: Final = {
    "dynamodb": "com.amazonaws.dynamodb.v20120810#",
    "sqs": "com.amazonaws.sqs#",
}
_CONTENT_TYPE: Final = {
    "dynamodb": "application/x-amz-json-1.0",
    "sqs": "application/x-amz-json-1.0",
    "states": "application/x-amz-json-1.0",
    "events": "application/x-amz-json-1.1",
    "kinesis": "application/x-amz-json-1.1",
    "lambda": "application/json",
}
# service -> (status, code, message) of its throttling error (its simple case) ...
_THROTTLING: Final = {
    "dynamodb": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
    "events": (400, "ThrottlingException", "Rate exceeded"),
    "states": (400, "ThrottlingException", "Rate exceeded"),
    "sqs": (400, "RequestThrottled", "Request is throttled."),
}
# ... and of its error in an outage (the others: 503 ServiceUnavailable).
_OUTAGE: Final = {
    "dynamodb": (500, "InternalServerError", "Internal server error"),
    "events": (500, "InternalException", "Internal service error."),
    "lambda": (500, "ServiceException", "Lambda encountered an internal error."),
}
_FAILED_ENTRY: Final = {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."}
_UNAVAILABLE: Final = "The request has failed due to a temporary failure of the server."

Response = tuple[int, dict[str, str], str]


class FunctionTimedOut(BaseException):
    """Stops a handler where a `timeout-mid` fault cuts it (a BaseException: the
    handler's own `except Exception` does not swallow it, as nothing catches a real
    timeout)."""


# ------------------------------------------------------------------ the request


class _Call:
    """What the fault hook needs of a botocore request."""

    def __init__(self, request: Any) -> None:
        url = str(getattr(request, "url", ""))
        host, _, path = url.split("//", 1)[-1].partition("/")
        labels = host.split(".")
        name = labels[0].removeprefix("sync-")  # StartSyncExecution's host prefix
        self.region = labels[1] if len(labels) > 2 else "us-east-1"
        # one of faults.SERVICES, else None (dynamodb streams' host is streams.dynamodb)
        self.service: str | None = name if name in _CONTENT_TYPE else None
        method = str(getattr(request, "method", "POST")).upper()
        headers = getattr(request, "headers", None) or {}
        target = headers.get("X-Amz-Target")
        if isinstance(target, bytes):
            target = target.decode()
        raw = getattr(request, "body", None)
        if isinstance(raw, bytes | bytearray):
            raw = bytes(raw).decode("utf-8", "replace")
        self._raw = raw if target and isinstance(raw, str) else None
        if target:
            self.operation = str(target).rsplit(".", 1)[-1]
        elif name == "lambda" and method == "POST" and path.endswith("/invocations"):
            self.operation = "Invoke"
        elif isinstance(raw, str) and raw.startswith("Action="):  # query protocol
            self.operation = raw.split("&", 1)[0].removeprefix("Action=")
        else:
            self.operation = method
        self.read = (
            method in ("GET", "HEAD")
            or self.operation.startswith(_READ_PREFIXES)
            or self.operation in _READS
        )

    @functools.cached_property
    def body(self) -> Mapping[str, Any]:
        """The JSON body of a JSON-protocol request ({} otherwise)."""
        if self._raw:
            with contextlib.suppress(ValueError):
                body = json.loads(self._raw)
                if isinstance(body, Mapping):
                    return body
        return {}

    def table(self) -> str | None:
        """The DynamoDB table an item operation works on (the first of a batch)."""
        body = self.body
        name = body.get("TableName")
        if name is None and isinstance(body.get("RequestItems"), Mapping):
            name = next(iter(body["RequestItems"]), None)
        return str(name) if name else None

    def items(self) -> int:
        return len(self.body.get("TransactItems") or []) or 1


def _error(service: str, status: int, code: str, message: str, **members: Any) -> Response:
    """An error response as the service sends it (what botocore parses)."""
    headers = {
        "Content-Type": _CONTENT_TYPE[service],
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    if service == "lambda":
        return lambda_error_response(status, code, message, **members)
    if service == "sqs":
        # SQS's JSON protocol also names the error as its query protocol did.
        headers["x-amzn-query-error"] = f"{code};{'Receiver' if status >= 500 else 'Sender'}"
    message_key = "Message" if code == "TransactionCanceledException" else "message"
    body = {"__type": _ERROR_PREFIX.get(service, "") + code, message_key: message, **members}
    return status, headers, json.dumps(body)


def _cancelled(reason: str, message: str, items: int, index: int) -> Response:
    """TransactionCanceledException: `reason` for item `index`, None for the others."""
    reasons = [
        {"Code": reason, "Message": message} if i == index else {"Code": "None"}
        for i in range(items)
    ]
    codes = ", ".join(r["Code"] for r in reasons)
    return _error(
        "dynamodb",
        400,
        "TransactionCanceledException",
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
        CancellationReasons=reasons,
    )


def _in_step_functions() -> bool:
    """Whether this thread is making a call for a Step Functions execution (moto's
    interpreter is on the stack; its threads have no name of their own)."""
    frame = sys._getframe(1)
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("moto.stepfunctions"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


# ------------------------------------------------------------------ the injector


class FaultInjector:
    """Applies `plan` to the calls that reach moto and to the runtime's invocations
    (module docstring).

    - `clock`: the virtual clock outage windows are read on (default: real time);
    - `functions`: short name -> deployed name (the stack's `functions` output), so
      faults can name functions as the plan does;
    - `account`: for the ARNs in error messages (default: moto's default account);
    - `clients`: also fault calls made outside handlers and Step Functions (default
      False: a session's own reads and the delivery's are not AWS's to fault).
    """

    def __init__(
        self,
        plan: FaultPlan,
        *,
        clock: Clock | None = None,
        functions: Mapping[str, str] | None = None,
        account: str | None = None,
        clients: bool = False,
    ) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID

        self.plan = plan
        self.clock = clock
        self.clients = clients
        self.account = account or str(DEFAULT_ACCOUNT_ID)
        self._short = {deployed: short for short, deployed in (functions or {}).items()}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._written: set[str] = set()  # request ids of invocations past their first write
        self._stopped: set[str] = set()  # request ids stopped by timeout-mid
        self._undo: list[Callable[[], None]] = []
        self._active = False

    # -------------------------------------------------------------- install

    def install(self, runtime: LambdaRuntime | None = None) -> FaultInjector:
        """Hook moto's request entry (composing with the hooks already there) and,
        given a runtime, its invocations. `uninstall()` (or the context manager) undoes
        it."""
        if self._active:
            return self
        from moto.core.botocore_stubber import BotocoreStubber
        from moto.events.responses import EventsHandler

        if tuple(inspect.signature(EventsHandler.put_events).parameters) != ("self",):
            raise RuntimeError(
                "moto's EventsHandler.put_events changed: the putevents-partial fault "
                "replaces it (sandbox/fault_injection.py)"
            )
        if not self.plan.start:
            self.plan.start = self._now()
        self._active = True
        self._patch(BotocoreStubber, "process_request", self._request_hook)
        self._patch(EventsHandler, "put_events", self._put_events_hook)
        if runtime is not None:
            invoke = runtime._invoke
            runtime._invoke = self._invocation_hook(invoke)  # type: ignore[method-assign,assignment]
            self._undo.append(lambda: vars(runtime).pop("_invoke", None))
            self._install_concurrency(runtime)
        return self

    def _install_concurrency(self, runtime: LambdaRuntime) -> None:
        """`concurrency`: the runtime's limit per function, the overlaps counted, and
        the seeded turns of the invocations in flight (`lambda_runtime.interleaving`).
        Read from `self.plan` at each use (a test may swap the plan)."""
        concurrency = runtime.concurrency
        previous = (concurrency.limit, concurrency.on_overlap, BATON.pick)
        concurrency.limit = self._concurrency_limit
        concurrency.on_overlap = self._overlapped
        BATON.pick = self._pick_turn

        def undo() -> None:
            concurrency.limit, concurrency.on_overlap, BATON.pick = previous

        self._undo.append(undo)

    def uninstall(self) -> None:
        self._active = False
        while self._undo:
            self._undo.pop()()

    @contextlib.contextmanager
    def installed(self, runtime: LambdaRuntime | None = None) -> Iterator[FaultInjector]:
        self.install(runtime)
        try:
            yield self
        finally:
            self.uninstall()

    def _patch(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        """Replace `owner.name` with `make(original)`; undone by putting the original
        back if ours is still there, else by turning ours into a pass-through (a hook
        installed later keeps working)."""
        original = owner.__dict__[name]
        hook = make(original)
        setattr(owner, name, hook)

        def undo() -> None:
            if owner.__dict__.get(name) is hook:
                setattr(owner, name, original)

        self._undo.append(undo)

    def _now(self) -> float:
        return float(self.clock.time()) if self.clock is not None else time.time()

    # ---------------------------------------------------------- the requests

    def _request_hook(self, original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        injector = self

        def process_request(stub: Any, request: Any) -> Any:
            if not injector._active:
                return original(stub, request)
            return injector._handle(original, stub, request)

        process_request.__wrapped__ = original  # type: ignore[attr-defined]
        return process_request

    def _handle(self, original: Callable[[Any, Any], Any], stub: Any, request: Any) -> Any:
        if not self.plan.faults:
            return original(stub, request)
        invocation = STATE.invocation
        if invocation is not None and invocation.frozen:
            return original(stub, request)  # the runtime refuses it
        if invocation is not None and invocation.request_id in self._stopped:
            raise FunctionTimedOut(self._stop_message(invocation.spec.timeout))
        call = _Call(request)
        function = self._short_name(invocation.spec.name) if invocation is not None else None
        faultable = call.service is not None and self._faultable(invocation)
        if faultable:
            refusal = self._refusal(call, function)
            if refusal is not None:
                return refusal
        local = self._local
        local.lost_reply, local.failed_entries = False, None
        if faultable and call.service == "events" and call.operation == "PutEvents":
            failed = self._failed_entries(call, function)
            if failed is not None and len(failed) == len(call.body["Entries"]):
                return self._all_entries_failed(len(failed))
            local.failed_entries = failed
        try:
            response = original(stub, request)
        finally:
            lost, local.lost_reply, local.failed_entries = local.lost_reply, False, None
        if lost and not _in_step_functions():
            # The client's read timed out: what it gets instead of the answer.
            raise ReadTimeoutError(endpoint_url=str(request.url))
        if invocation is not None and not call.read:
            self._after_write(invocation, function)
        return response

    def _faultable(self, invocation: Any) -> bool:
        if not any(f.name in _CALL_FAULTS for f in self.plan.faults):
            return False
        return invocation is not None or self.clients or _in_step_functions()

    def _refusal(self, call: _Call, function: str | None) -> Response | None:
        service = call.service
        assert service is not None
        if self.plan.in_outage(self._now(), function=function, service=service):
            return _error(service, *_OUTAGE.get(service, (503, "ServiceUnavailable", _UNAVAILABLE)))
        if self.plan.draw("throttle", function=function, service=service):
            return self._throttling_error(call)
        if (
            service == "dynamodb"
            and call.operation in _TRANSACTIONS
            and self.plan.draw("txn-conflict", function=function, service=service)
        ):
            index = int(self.plan.uniform("txn-conflict", call.items()))
            return _cancelled(
                "TransactionConflict", "Transaction is ongoing for the item", call.items(), index
            )
        return None

    def _throttling_error(self, call: _Call) -> Response:
        service, operation = call.service, call.operation
        assert service is not None
        if service == "dynamodb":
            return self._dynamodb_throttling(call)
        if service == "kinesis":
            stream = str(call.body.get("StreamName") or call.body.get("StreamARN") or "")
            stream = stream.rsplit("/", 1)[-1]
            if operation in _KINESIS_RECORDS:
                return _error(
                    service,
                    400,
                    "ProvisionedThroughputExceededException",
                    f"Rate exceeded for shard shardId-000000000000 in stream {stream} under "
                    f"account {self.account}.",
                )
            return _error(
                service,
                400,
                "LimitExceededException",
                f"Rate exceeded for stream {stream} under account {self.account}.",
            )
        if service == "lambda":
            reason = (
                "ConcurrentInvocationLimitExceeded"
                if operation == "Invoke"
                else ("CallerRateLimitExceeded")
            )
            return _error(service, 429, "TooManyRequestsException", "Rate Exceeded.", Reason=reason)
        return _error(service, *_THROTTLING[service])

    def _dynamodb_throttling(self, call: _Call) -> Response:
        if call.operation in _TRANSACTIONS:
            index = int(self.plan.uniform("throttle", call.items()))
            return _cancelled("ThrottlingError", _DYNAMODB_CAPACITY_MESSAGE, call.items(), index)
        table = call.table()
        if call.operation in _DYNAMODB_ITEM_READS | _DYNAMODB_ITEM_WRITES and table:
            kind = "Read" if call.operation in _DYNAMODB_ITEM_READS else "Write"
            arn = f"arn:aws:dynamodb:{call.region}:{self.account}:table/{table}"
            return _error(
                "dynamodb",
                400,
                "ProvisionedThroughputExceededException",
                _DYNAMODB_CAPACITY_MESSAGE,
                ThrottlingReasons=[
                    {"reason": f"Table{kind}KeyRangeThroughputExceeded", "resource": arn}
                ],
            )
        # Table operations (DescribeTable, UpdateTable, ...): the control plane's limit.
        return _error("dynamodb", *_THROTTLING["dynamodb"])

    # ----------------------------------------------------- putevents-partial

    def _failed_entries(self, call: _Call, function: str | None) -> set[int] | None:
        entries = call.body.get("Entries")
        if not isinstance(entries, list) or not 0 < len(entries) <= 10:
            return None  # moto answers the request's own problem
        chosen = self.plan.share(
            "putevents-partial", len(entries), function=function, service="events"
        )
        return set(chosen) or None

    @staticmethod
    def _all_entries_failed(count: int) -> Response:
        body = {"FailedEntryCount": count, "Entries": [dict(_FAILED_ENTRY)] * count}
        headers = {"Content-Type": _CONTENT_TYPE["events"], "x-amzn-RequestId": str(uuid.uuid4())}
        return 200, headers, json.dumps(body)

    def _put_events_hook(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        local = self._local

        def put_events(response: Any) -> Any:
            failed = getattr(local, "failed_entries", None)
            if not failed:
                return original(response)
            local.failed_entries = None
            entries = response._get_param("Entries")
            surviving = [e for i, e in enumerate(entries) if i not in failed]
            put = iter(response.events_backend.put_events(surviving))
            merged = [
                dict(_FAILED_ENTRY) if i in failed else next(put) for i in range(len(entries))
            ]
            return json.dumps(
                {"FailedEntryCount": sum("ErrorCode" in e for e in merged), "Entries": merged}
            )

        return put_events

    # ----------------------------------------------------------- timeout-mid

    def _after_write(self, invocation: Any, function: str | None) -> None:
        request_id = invocation.request_id
        with self._lock:
            if request_id in self._written:
                return
            self._written.add(request_id)
        if self.plan.draw("timeout-mid", function=function, service="lambda"):
            with self._lock:
                self._stopped.add(request_id)
            invocation.discard = True  # Lambda restarts a timed-out environment
            raise FunctionTimedOut(self._stop_message(invocation.spec.timeout))

    @staticmethod
    def _stop_message(timeout: float) -> str:
        return f"Task timed out after {timeout:.2f} seconds (timeout-mid fault)"

    # ----------------------------------------------------------- invocations

    def _invocation_hook(
        self, invoke: Callable[[Any, Any, str, str], Outcome]
    ) -> Callable[[Any, Any, str, str], Outcome]:
        def _invoke(spec: Any, event: Any, invocation_type: str, invoked_arn: str) -> Outcome:
            if not self._active:
                return invoke(spec, event, invocation_type, invoked_arn)
            return self._invocation(invoke, spec, event, invocation_type, invoked_arn)

        return _invoke

    def _invocation(
        self,
        invoke: Callable[[Any, Any, str, str], Outcome],
        spec: Any,
        event: Any,
        invocation_type: str,
        invoked_arn: str,
    ) -> Outcome:
        function = self._short_name(spec.name)
        through_api = STATE.api_call is not None  # the request hook faulted the call
        if not through_api:
            refused = self._refused_invocation()
            if refused is not None:
                return refused
        outcome = invoke(spec, event, invocation_type, invoked_arn)
        if outcome.result.refused:
            return outcome  # throttled: it never ran, there is no reply to lose
        with self._lock:
            self._written.discard(outcome.request_id)
            stopped = outcome.request_id in self._stopped
            self._stopped.discard(outcome.request_id)
        if stopped:
            return _timed_out(outcome, spec.timeout)
        if outcome.result.error_type == "Sandbox.Timedout":
            return outcome  # it timed out itself: no reply to lose
        if self.plan.draw("lost-reply", function=function, service="lambda"):
            if through_api and invocation_type == "RequestResponse":
                self._local.lost_reply = True  # the request hook answers with a read timeout
            return _timed_out(outcome, spec.timeout)
        return outcome

    def _refused_invocation(self) -> Outcome | None:
        if self.plan.in_outage(self._now(), service="lambda"):
            status, code, message = _OUTAGE["lambda"]
        elif self.plan.draw("throttle", service="lambda"):
            status, code, message = 429, "TooManyRequestsException", "Rate Exceeded."
        else:
            return None
        result = InvocationResult(None, code, message, 0.0, "", status)
        return Outcome(result, str(uuid.uuid4()))

    def _short_name(self, deployed: str) -> str:
        return self._short.get(deployed, deployed)

    # ----------------------------------------------------------- concurrency

    def _concurrency_limit(self, deployed: str) -> int:
        if not self._active:
            return 0
        return self.plan.limit("concurrency", function=self._short_name(deployed))

    def _overlapped(self, deployed: str) -> None:
        if self._concurrency_limit(deployed):
            self.plan.count("concurrency")

    def _pick_turn(self, candidates: int) -> int | None:
        """The next chain to run among `candidates` (None: no switching without a
        `concurrency` fault)."""
        if not self._active or not any(f.name == "concurrency" for f in self.plan.faults):
            return None
        return self.plan.choice("concurrency", candidates)


def _timed_out(outcome: Outcome, timeout: float) -> Outcome:
    """The outcome as the caller of a timed-out invocation sees it."""
    message = f"RequestId: {outcome.request_id} Error: Task timed out after {timeout:.2f} seconds"
    result = replace(
        outcome.result,
        payload=None,
        error_type="Sandbox.Timedout",
        error_message=message,
        duration_ms=timeout * 1000,
    )
    return Outcome(result, outcome.request_id)
