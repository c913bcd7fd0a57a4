"""Test doubles for the delivery part: a Python-callable `Invoker` and mapping records.

    invoker = FakeInvoker({"jobs-fn": handle_jobs})        # name -> callable(event)
    delivery = Delivery(scheduler, invoker, FakeRecords([mapping(...)]))

A callable's return value is the invocation's payload; an exception it raises is the
function error (`error_type` = the exception's class name, as the Lambda runtime
reports it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from eventcraft_sandbox.lambda_runtime import InvocationResult

__all__ = ["Call", "FakeInvoker", "FakeMapping", "FakeRecords", "function_name"]

Handler = Callable[[Any], Any]


def function_name(function: str) -> str:
    """`name` from a function name, `name:qualifier` or (qualified) ARN."""
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function.split(":", 1)[0]


@dataclass(frozen=True)
class Call:
    """One invocation the fake ran."""

    function: str
    payload: Any
    invocation_type: str
    result: InvocationResult


class FakeInvoker:
    """An `Invoker` that runs Python callables by function name (see module doc)."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def register(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    def invoke(
        self,
        function: str,
        payload: Any,
        *,
        invocation_type: Literal["RequestResponse", "Event"] = "RequestResponse",
    ) -> InvocationResult:
        name = function_name(function)
        handler = self.handlers.get(name)
        if handler is None:
            raise LookupError(f"FakeInvoker: no handler registered for {name!r}")
        started = time.perf_counter()
        try:
            value = handler(payload)
        except Exception as exc:  # the function's error, reported like Lambda's
            result = InvocationResult(None, type(exc).__name__, str(exc), 0.0, "")
        else:
            result = InvocationResult(value, None, None, 0.0, "")
        result = InvocationResult(
            result.payload,
            result.error_type,
            result.error_message,
            (time.perf_counter() - started) * 1000,
            "",
        )
        with self._lock:
            self.calls.append(Call(name, payload, invocation_type, result))
        return result

    def calls_of(self, name: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.function == name]

    @contextlib.contextmanager
    def in_moto_lambda(self) -> Iterator[FakeInvoker]:
        """moto's own Lambda invocations (a Step Functions Lambda task) run this
        invoker's callables while the context is open (the Lambda runtime's job in
        the sandbox); a function error is reported as Lambda reports it."""
        import json

        from moto.awslambda.models import LambdaFunction

        def invoke(function: Any, event: Any = None) -> tuple[str, bool, str]:
            payload = json.loads(event) if isinstance(event, str | bytes) else (event or {})
            result = self.invoke(function.function_arn, payload)
            if result.error_type is not None:
                error = {"errorType": result.error_type, "errorMessage": result.error_message}
                return json.dumps(error), True, ""
            return json.dumps(result.payload), False, ""

        original = vars(LambdaFunction)["_invoke_lambda"]
        LambdaFunction._invoke_lambda = invoke  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            LambdaFunction._invoke_lambda = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class FakeMapping:
    """An event source mapping record (`MappingLike`) built by hand."""

    function_arn: str
    event_source_arn: str
    request: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    name: str = "mapping"
    uuid: str = "00000000-0000-0000-0000-000000000000"
    arn: str = "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:fake"


@dataclass
class FakeRecords:
    """What a deployer records (`RecordsLike`): just the mappings."""

    event_source_mappings: list[FakeMapping] = field(default_factory=list)


# ----------------------------------------------------------------- moto fixtures

HANDLER_SOURCE = "def handler(event, context):\n    return None\n"


def code_zip(files: Mapping[str, str] | None = None) -> bytes:
    """A Lambda code zip with `files` (path -> source; default: a no-op handler.py)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, source in (files or {"handler.py": HANDLER_SOURCE}).items():
            archive.writestr(path, source)
    return buffer.getvalue()


def trust(service: str) -> str:
    import json

    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


class World:
    """Resources in a bare `mock_aws` for delivery tests, made the way the components
    make them (roles that trust their service, resource policies naming the rule)."""

    def __init__(self, region: str = "us-east-1") -> None:
        import boto3

        self.region = region
        make: Any = boto3.client
        self.iam = make("iam", region_name=region)
        self.sqs = make("sqs", region_name=region)
        self.lambda_ = make("lambda", region_name=region)
        self.events = make("events", region_name=region)
        self.sfn = make("stepfunctions", region_name=region)
        self.kinesis = make("kinesis", region_name=region)
        self.dynamodb = make("dynamodb", region_name=region)

    def role(self, name: str, service: str = "lambda.amazonaws.com") -> str:
        import json

        arn = str(
            self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(service))["Role"][
                "Arn"
            ]
        )
        self.iam.put_role_policy(
            RoleName=name,
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        return arn

    def function(self, name: str, *, files: Mapping[str, str] | None = None, **extra: Any) -> str:
        role = self.role(f"{name}-role")
        created = self.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code_zip(files)},
            **extra,
        )
        return str(created["FunctionArn"])

    def queue(
        self,
        name: str,
        *,
        visibility: int = 30,
        dead_letter: str | None = None,
        max_receive: int = 3,
        senders: list[str] | None = None,
        **attributes: str,
    ) -> tuple[str, str]:
        """(url, arn) of a new queue; `senders`: rule ARNs EventBridge may send for."""
        import json

        values = {"VisibilityTimeout": str(visibility), **attributes}
        if dead_letter:
            values["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dead_letter, "maxReceiveCount": max_receive}
            )
        url = str(self.sqs.create_queue(QueueName=name, Attributes=values)["QueueUrl"])
        arn = str(
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )
        if senders:
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": senders}},
                    }
                ],
            }
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        return url, arn

    def bodies(self, url: str) -> list[str]:
        """Receive and delete everything visible in a queue; the bodies in order."""
        out: list[str] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(str(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def messages(self, url: str) -> list[dict[str, Any]]:
        """Receive (and delete) everything visible, with attributes."""
        out: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(dict(message))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def allow_rule(self, function: str, rule_arn: str) -> None:
        """The resource policy statement an EventRule target grants."""
        self.lambda_.add_permission(
            FunctionName=function,
            StatementId=f"allow-{rule_arn.rsplit('/', 1)[-1]}",
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule_arn,
        )
