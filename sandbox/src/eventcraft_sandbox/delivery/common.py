"""What the delivery modules share: the context they run in, ARNs, clients (the
administrator's and assumed roles'), resource-policy checks (`policy_allows`, from
`eventcraft_sandbox.iam_policies`), destinations and the log.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from eventcraft_sandbox.clock import Scheduler, VirtualClock
from eventcraft_sandbox.delivery.concurrency import Launches
from eventcraft_sandbox.faults import FaultPlan
from eventcraft_sandbox.iam_policies import policy_allows
from eventcraft_sandbox.lambda_runtime import InvocationResult, Invoker, RoleNotAssumableError
from eventcraft_sandbox.lambda_runtime.credentials import assume_role_as_service

__all__ = [
    "BOTO_CONFIG",
    "Arn",
    "ClientSource",
    "DefaultClients",
    "DeliveryContext",
    "DeliveryFailure",
    "DeliveryLog",
    "LogEntry",
    "MappingLike",
    "RecordsLike",
    "classify",
    "moto_lock",
    "policy_allows",
]

LAMBDA_SERVICE = "lambda.amazonaws.com"
# A copy made by the `redeliver` fault (a Lambda async event, a rule target's delivery,
# an EXPRESS start) comes this many virtual seconds after the delivery it repeats
# (seeded): late enough that the first one has been handled.
REDELIVERY_DELAY_SECONDS = (1.0, 60.0)
# moto does not route account-based endpoints (shared notes/moto.md); one attempt:
# the sandbox's own retry semantics apply, not botocore's.
BOTO_CONFIG = Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 1})


# ------------------------------------------------------------- what we consume


class MappingLike(Protocol):
    """An event source mapping as the deployer records it
    (`eventcraft_sandbox.deployers.base.EventSourceMappingRecord`)."""

    @property
    def name(self) -> str: ...
    @property
    def uuid(self) -> str: ...
    @property
    def arn(self) -> str: ...
    @property
    def function_arn(self) -> str: ...
    @property
    def event_source_arn(self) -> str | None: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def request(self) -> dict[str, Any]: ...


class RecordsLike(Protocol):
    """What the deployer recorded (`eventcraft_sandbox.deployers.base.Records`)."""

    @property
    def event_source_mappings(self) -> Sequence[MappingLike]: ...


class ClientSource(Protocol):
    """boto3 clients on moto as the administrator (`eventcraft_sandbox.moto_deploy.Sandbox`)."""

    def client(self, service: str, region: str | None = None) -> Any: ...


class DefaultClients:
    """`ClientSource` with the environment's credentials (tests on a bare `mock_aws`)."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region

    def client(self, service: str, region: str | None = None) -> Any:
        # boto3-stubs types `client` per service literal; the name is dynamic here.
        make_client: Any = boto3.client
        return make_client(service, region_name=region or self.region, config=BOTO_CONFIG)


_FALLBACK_LOCK = threading.RLock()


def moto_lock() -> Any:
    """The process-wide lock around moto's request dispatch.

    `eventcraft_sandbox.lambda_runtime.MOTO_LOCK` when the Lambda runtime defines it (it owns the
    lock); otherwise a lock of this package. Taken only for short direct reads of moto's
    models; never while invoking a function or waiting.
    """
    from eventcraft_sandbox import lambda_runtime

    lock = getattr(lambda_runtime, "MOTO_LOCK", None)
    return lock if lock is not None else _FALLBACK_LOCK


# ---------------------------------------------------------------------- ARNs


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Arn:
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            raise ValueError(f"{text!r} is not an ARN")
        return cls(parts[1], parts[2], parts[3], parts[4], parts[5])

    @property
    def resource_type(self) -> str:
        """`function`, `stateMachine`, `event-bus`, `stream`, `table`, ... ('' for SQS)."""
        for sep in (":", "/"):
            if sep in self.resource:
                return self.resource.split(sep, 1)[0]
        return ""

    @property
    def resource_name(self) -> str:
        """The name after the type (`function:name` -> `name`; SQS: the queue name)."""
        for sep in (":", "/"):
            if sep in self.resource:
                return self.resource.split(sep, 2)[1]
        return self.resource


def short_name(arn: str) -> str:
    """A readable name for log lines and item names: the resource's own name."""
    try:
        return Arn.parse(arn).resource_name or arn
    except ValueError:
        return arn


# ------------------------------------------------------------------ failures


class DeliveryFailure(Exception):
    """A delivery attempt failed before reaching the target's code.

    `code` is EventBridge's DLQ `ERROR_CODE` vocabulary (NO_PERMISSIONS,
    RESOURCE_NOT_FOUND, THROTTLING, INVALID_PARAMETER, SDK_CLIENT_ERROR);
    `retriable` False sends the event to the DLQ at once, as AWS does for missing
    permissions or a missing target.
    """

    def __init__(self, code: str, message: str, *, retriable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retriable = retriable


_NOT_FOUND = (
    "ResourceNotFoundException",
    "StateMachineDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "NotFoundException",
    "NotFound",
)
_DENIED = (
    "AuthorizationError",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AuthFailure",
)
_THROTTLED = ("ThrottlingException", "Throttling", "TooManyRequestsException", "ThrottledException")
_INVALID = (
    "ValidationException",
    "InvalidParameterValue",
    "InvalidParameterException",
    "InvalidParameterValueException",
    "InvalidInput",
    "InvalidArn",
)


_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


def classify(exc: BaseException) -> DeliveryFailure:
    """An exception from a target call as a `DeliveryFailure` (AWS's error codes)."""
    if isinstance(exc, DeliveryFailure):
        return exc
    code, status, message = type(exc).__name__, 0, str(exc)
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        # moto answers some JSON services' 403s in XML, which botocore leaves unparsed.
        found = _XML_MESSAGE.search(message)
        if found:
            message = found.group(1)
    else:
        code = str(getattr(exc, "code", "") or code)
    if status == 403 or "AccessDenied" in code or code in _DENIED:
        return DeliveryFailure("NO_PERMISSIONS", message, retriable=False)
    if code in _NOT_FOUND or code.endswith(("NotFoundException", "DoesNotExist")):
        return DeliveryFailure("RESOURCE_NOT_FOUND", message, retriable=False)
    if code in _THROTTLED or status == 429:
        return DeliveryFailure("THROTTLING", message, retriable=True)
    if code in _INVALID:
        return DeliveryFailure("INVALID_PARAMETER", message, retriable=False)
    return DeliveryFailure("SDK_CLIENT_ERROR", message, retriable=True)


# ------------------------------------------------------------- service roles


def assume_as_service(
    role_arn: str, principal: str, region: str, *, source_arn: str | None = None
) -> dict[str, str]:
    """Credentials of `role_arn` assumed as the AWS service `principal` assumes it on
    behalf of `source_arn` (the function, the rule; its account is aws:SourceAccount).

    `eventcraft_sandbox.lambda_runtime.credentials.assume_role_as_service` (the trust
    policy checked with the confused-deputy conditions, then moto's STS backend).
    Raises `DeliveryFailure` (NO_PERMISSIONS).
    """
    try:
        return assume_role_as_service(
            role_arn, principal, "sandbox-delivery", region, source_arn=source_arn
        )
    except RoleNotAssumableError as exc:
        raise DeliveryFailure("NO_PERMISSIONS", str(exc), retriable=False) from exc


# ------------------------------------------------------------------------ log


@dataclass(frozen=True)
class LogEntry:
    """One delivery step: `kind` (e.g. `sqs.batch`), from `source` to `target`,
    its `outcome` (`ok`, `failed`, `retry`, `dlq`, ...) and a `detail`."""

    time: float
    kind: str
    source: str
    target: str
    outcome: str
    detail: str = ""


@dataclass
class DeliveryLog:
    """Every delivery step, in order (thread-safe)."""

    entries: list[LogEntry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, entry: LogEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def of(self, kind: str) -> list[LogEntry]:
        with self._lock:
            return [e for e in self.entries if e.kind == kind]

    def __iter__(self) -> Iterator[LogEntry]:
        with self._lock:
            return iter(list(self.entries))

    def __len__(self) -> int:
        return len(self.entries)


# -------------------------------------------------------------------- context


class DeliveryContext:
    """The scheduler, the invoker, clients and the log every delivery module uses.

    `clients` gives the administrator's clients (reads that AWS's services make with
    their own identity); `role_client(role_arn, service)` a client with an assumed
    role's credentials: the target role of an EventBridge target, or a function's
    execution role (pollers and destinations run with it, as Lambda does), so moto's
    IAM enforcement judges those calls by the role's policies.

    `faults`: the run's `FaultPlan` (default: none) whose delivery faults the parts
    apply (`redeliver`, `reorder`: `redeliver()`, `reorder_delay()`; `concurrency`:
    `start()`, `free_slots()`); a fault's function TARGET is a short name, found
    through `function_names` (deployed name -> short name; a function not in it is
    known by its deployed name).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        invoker: Invoker,
        clients: ClientSource,
        *,
        region: str = "us-east-1",
        use_roles: bool = True,
        check_resource_policies: bool = True,
        on_invoke: Callable[[str, Any, InvocationResult], None] | None = None,
        faults: FaultPlan | None = None,
        function_names: Mapping[str, str] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.clock: VirtualClock = scheduler.clock
        self.invoker = invoker
        self.clients = clients
        self.region = region
        self.use_roles = use_roles
        self.check_resource_policies = check_resource_policies
        self.on_invoke = on_invoke
        self.faults = faults if faults is not None else FaultPlan()
        self.function_names = dict(function_names or {})
        self.log = DeliveryLog()
        # The durable executions (`delivery.durable`), set by the `Delivery`.
        self.durable: Any = None
        self._admin: dict[tuple[str, str], Any] = {}
        self._roles: dict[tuple[str, str, str], dict[str, str]] = {}
        self._role_clients: dict[tuple[str, str, str, str, str], Any] = {}
        self._queue_urls: dict[str, str] = {}
        self._function_roles: dict[str, str] = {}
        self._lock = threading.RLock()
        self.launches = Launches(
            scheduler,
            concurrent=lambda function_arn: self.concurrency_limit(function_arn) > 0,
            free_slots=self.free_slots,
            invoke=lambda function_arn, payload, asynchronous: self.invoke(
                function_arn, payload, asynchronous=asynchronous
            ),
            run_together=self.invoke_together,
        )

    # -- clients ----------------------------------------------------------------

    def admin(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.region)
        with self._lock:
            if key not in self._admin:
                self._admin[key] = self.clients.client(service, key[1])
            return self._admin[key]

    def role_client(
        self,
        role_arn: str | None,
        service: str,
        region: str | None = None,
        *,
        principal: str = LAMBDA_SERVICE,
        source_arn: str | None = None,
    ) -> Any:
        """A client with `role_arn`'s credentials, assumed as the AWS service
        `principal` assumes it (default: Lambda; the administrator's client if
        `role_arn` is None or roles are off), on behalf of `source_arn` (the function
        or rule, for the trust policy's conditions). Raises `DeliveryFailure`
        (NO_PERMISSIONS) if the role does not exist or does not trust `principal`."""
        if not role_arn or not self.use_roles:
            return self.admin(service, region)
        key = (role_arn, service, region or self.region, principal, source_arn or "")
        with self._lock:
            if key in self._role_clients:
                return self._role_clients[key]
            credentials = self._roles.get((role_arn, principal, source_arn or ""))
        if credentials is None:
            credentials = assume_as_service(role_arn, principal, key[2], source_arn=source_arn)
            with self._lock:
                self._roles[(role_arn, principal, source_arn or "")] = credentials
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        make_client: Any = session.client
        client = make_client(service, region_name=key[2], config=BOTO_CONFIG)
        with self._lock:
            self._role_clients[key] = client
        return client

    def function_role(self, function_arn: str) -> str | None:
        """The execution role of a function (cached)."""
        with self._lock:
            if function_arn in self._function_roles:
                return self._function_roles[function_arn]
        try:
            config = self.admin(
                "lambda", Arn.parse(function_arn).region
            ).get_function_configuration(FunctionName=function_arn)
        except ClientError:
            return None
        role = str(config.get("Role") or "") or None
        if role:
            with self._lock:
                self._function_roles[function_arn] = role
        return role

    def queue_url(self, queue_arn: str) -> str:
        """The URL of the queue with this ARN (raises `DeliveryFailure` if missing)."""
        with self._lock:
            if queue_arn in self._queue_urls:
                return self._queue_urls[queue_arn]
        arn = Arn.parse(queue_arn)
        try:
            url = self.admin("sqs", arn.region).get_queue_url(
                QueueName=arn.resource, QueueOwnerAWSAccountId=arn.account
            )["QueueUrl"]
        except ClientError as exc:
            raise classify(exc) from exc
        with self._lock:
            self._queue_urls[queue_arn] = url
        return str(url)

    # -- invoking ---------------------------------------------------------------

    def invoke(
        self, function_arn: str, payload: Any, *, asynchronous: bool = False
    ) -> InvocationResult:
        """Run a function through the `Invoker` (synchronously: `Event` only tells the
        runtime the invocation is asynchronous; retries are the caller's)."""
        result = self.invoker.invoke(
            function_arn, payload, invocation_type="Event" if asynchronous else "RequestResponse"
        )
        if self.on_invoke is not None:
            self.on_invoke(function_arn, payload, result)
        return result

    def start(
        self,
        function_arn: str,
        payload: Any,
        then: Callable[[InvocationResult], None],
        *,
        asynchronous: bool = False,
        errors_as_results: bool = False,
    ) -> None:
        """Invoke and hand the result to `then`: at once, or, under a `concurrency`
        fault, together with the other invocations started at this virtual instant
        (`delivery.concurrency`)."""
        self.launches.submit(
            function_arn,
            payload,
            then,
            asynchronous=asynchronous,
            errors_as_results=errors_as_results,
        )

    def invoke_together(
        self, calls: Sequence[tuple[str, Any, Literal["RequestResponse", "Event"]]]
    ) -> list[InvocationResult | Exception]:
        """Run `calls` as invocations in flight together when the invoker can
        (`LambdaRuntime.invoke_together`), else one after the other; results (or the
        exception each raised) in order."""
        together = getattr(self.invoker, "invoke_together", None)
        results: list[InvocationResult | Exception]
        if together is not None:
            results = list(together(calls))
        else:
            results = []
            for function, payload, invocation_type in calls:
                try:
                    results.append(
                        self.invoker.invoke(function, payload, invocation_type=invocation_type)
                    )
                except Exception as exc:
                    results.append(exc)
        if self.on_invoke is not None:
            for (function, payload, _), result in zip(calls, results, strict=True):
                if isinstance(result, InvocationResult):
                    self.on_invoke(function, payload, result)
        return results

    # -- concurrency ----------------------------------------------------------------

    def concurrency_limit(self, function_arn: str) -> int:
        """The `concurrency` fault's N for this function (0: not covered: the delivery
        starts its invocations one at a time)."""
        return self.faults.limit("concurrency", function=self.fault_name(function_arn))

    def free_slots(self, function_arn: str) -> int:
        """How many more invocations of the function the delivery may start now: N
        less those in flight (`Invoker.in_flight`, when it counts them) and those
        submitted but not started."""
        in_flight = getattr(self.invoker, "in_flight", None)
        running = int(in_flight(function_arn)) if in_flight is not None else 0
        return self.concurrency_limit(function_arn) - running - self.launches.pending(function_arn)

    # -- faults -------------------------------------------------------------------

    def fault_name(self, function_arn: str | None) -> str | None:
        """The name a fault's TARGET gives the function with this ARN (or name)."""
        if not function_arn:
            return None
        name = short_name(function_arn).split(":", 1)[0]
        return self.function_names.get(name, name)

    def redeliver(self, *, service: str, function_arn: str | None = None) -> bool:
        """Whether to make a successful delivery again (`redeliver`; a yes is counted)."""
        return self.faults.draw(
            "redeliver", function=self.fault_name(function_arn), service=service
        )

    def redelivery_delay(self) -> float:
        """When a copy made by `redeliver` comes, in virtual seconds from now (seeded)."""
        low, high = REDELIVERY_DELAY_SECONDS
        return low + self.faults.uniform("redeliver", high - low)

    def reorder_delay(self, *, service: str, function_arn: str | None = None) -> float:
        """How long to hold a delivery back (`reorder`: seeded, in [0, SECONDS) of
        virtual time; a delay is counted), 0.0 if no reorder fault covers it."""
        window = self.faults.seconds(
            "reorder", function=self.fault_name(function_arn), service=service
        )
        if window <= 0:
            return 0.0
        self.faults.count("reorder")
        return self.faults.uniform("reorder", window)

    # -- log --------------------------------------------------------------------

    def record(self, kind: str, source: str, target: str, outcome: str, detail: str = "") -> None:
        self.log.add(LogEntry(self.clock.now(), kind, source, target, outcome, detail))

    # -- sending as a service ----------------------------------------------------

    def send_to_queue_as_service(
        self,
        queue_arn: str,
        body: str,
        *,
        service: str,
        source_arn: str,
        attributes: Mapping[str, str] | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> None:
        """SendMessage as an AWS service principal (EventBridge), after checking that
        the queue's policy lets it (raises `DeliveryFailure`)."""
        url = self.queue_url(queue_arn)
        sqs = self.admin("sqs", Arn.parse(queue_arn).region)
        if self.check_resource_policies:
            try:
                policy = (
                    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
                    .get("Attributes", {})
                    .get("Policy")
                )
            except ClientError as exc:
                raise classify(exc) from exc
            if not policy_allows(
                policy,
                service=service,
                action="sqs:SendMessage",
                resource=queue_arn,
                source_arn=source_arn,
                source_account=Arn.parse(source_arn).account,
            ):
                raise DeliveryFailure(
                    "NO_PERMISSIONS",
                    f"the policy of queue {queue_arn} does not let {service} send messages "
                    f"for {source_arn}",
                    retriable=False,
                )
        params: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            params["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        if group_id:
            params["MessageGroupId"] = group_id
        if dedup_id:
            params["MessageDeduplicationId"] = dedup_id
        try:
            sqs.send_message(**params)
        except ClientError as exc:
            raise classify(exc) from exc

    def send_destination(
        self,
        destination: str,
        record: Mapping[str, Any],
        *,
        role_arn: str | None,
        function_arn: str,
        success: bool,
        submit_async: Callable[[str, Any], object] | None = None,
    ) -> None:
        """Send an invocation record to a Lambda destination (SQS, SNS, Lambda,
        EventBridge) with the function's execution role, as Lambda does. A failure is
        logged and dropped (AWS counts it in DestinationDeliveryFailures)."""
        body = json.dumps(record)
        try:
            arn = Arn.parse(destination)
            if arn.service == "sqs":
                sqs = self.role_client(role_arn, "sqs", arn.region, source_arn=function_arn)
                sqs.send_message(QueueUrl=self.queue_url(destination), MessageBody=body)
            elif arn.service == "sns":
                sns = self.role_client(role_arn, "sns", arn.region, source_arn=function_arn)
                sns.publish(TopicArn=destination, Message=body)
            elif arn.service == "lambda":
                if submit_async is None:
                    raise DeliveryFailure("INVALID_PARAMETER", "no async invoker", retriable=False)
                submit_async(destination, dict(record))
            elif arn.service == "events":
                events = self.role_client(role_arn, "events", arn.region, source_arn=function_arn)
                result = "Success" if success else "Failure"
                response = events.put_events(
                    Entries=[
                        {
                            "Source": "lambda",
                            "DetailType": f"Lambda Function Invocation Result - {result}",
                            "Detail": body,
                            "Resources": [function_arn, destination],
                            "EventBusName": destination,
                        }
                    ]
                )
                if response.get("FailedEntryCount"):
                    raise DeliveryFailure(
                        "SDK_CLIENT_ERROR", json.dumps(response.get("Entries")), retriable=False
                    )
            else:
                raise DeliveryFailure(
                    "INVALID_PARAMETER", f"unsupported destination {destination}", retriable=False
                )
        except (ClientError, DeliveryFailure, ValueError) as exc:
            failure = classify(exc)
            self.record(
                "destination", short_name(function_arn), destination, "failed", failure.message
            )
            return
        self.record(
            "destination",
            short_name(function_arn),
            destination,
            "ok",
            str(record.get("requestContext", {}).get("condition", "")),
        )
