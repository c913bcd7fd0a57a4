"""Asynchronous Lambda invocation: Lambda's internal event queue, its retries and
destinations.

What EventBridge (and any `Invoke` with `InvocationType=Event`) hands to Lambda is
queued here and run on the scheduler. A function error is retried
`MaximumRetryAttempts` times (2 by default; FunctionEventInvokeConfig), one minute
before the second attempt and two minutes before the third, as AWS documents, unless
the event is older than `MaximumEventAgeInSeconds` (6 hours by default). Then the
invocation record goes to the OnFailure destination (and the event to the function's
dead-letter queue, if it has one: moto drops a function's `DeadLetterConfig`, so the
sandbox lists those in `LambdaAsync.dead_letter_targets`); a success goes to the
OnSuccess destination. (An event for a durable function starts a durable execution
instead: `eventcraft_sandbox.delivery.durable`.) The record has AWS's shape:

    {"version": "1.0", "timestamp": "...Z",
     "requestContext": {"requestId", "functionArn": "...:$LATEST",
                        "condition": "RetriesExhausted" | "EventAgeExceeded" | "Success",
                        "approximateInvokeCount": 3},
     "requestPayload": <the event>,
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Unhandled"},
     "responsePayload": {"errorType", "errorMessage"} | <the return value>}

An invocation Lambda did not run (throttled: the function's reserved concurrency or
the run's concurrency limit reached; or Lambda's own 5xx error, e.g. an `outage` of
`lambda`) does not use up an attempt: the event goes back to the queue and is tried
again 1 s later, then 2, 4 ... at most 5 minutes apart, until it is older than
`MaximumEventAgeInSeconds` (then `EventAgeExceeded`), as AWS documents for throttling
(429) and system (500-series) errors.

Destinations are sent with the function's execution role (as Lambda does): a role
without `sqs:SendMessage` on its OnFailure queue loses the record, visibly, in the log.

The `redeliver=P` fault (`eventcraft_sandbox.faults`, TARGET `lambda` or the function):
an event whose invocation succeeded is, with probability P, invoked again (Lambda's
event queue delivers at least once), with the same payload, a seeded 1..60 virtual
seconds later; the copy has its own retries and destinations (its invocation records
carry the same requestId) and is not copied again.

Under a `concurrency` fault on the function (`delivery.concurrency`) the attempts due at
the same instant are started together, as many at a time as the function has free
slots; one that Lambda throttles all the same (reserved concurrency below N, slots taken
by Step Functions tasks) is retried as above.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from eventcraft_sandbox.delivery.common import Arn, DeliveryContext, short_name
from eventcraft_sandbox.lambda_runtime import InvocationResult

__all__ = [
    "DEFAULT_MAX_EVENT_AGE",
    "DEFAULT_RETRIES",
    "RETRY_DELAYS",
    "AsyncInvocation",
    "LambdaAsync",
]

DEFAULT_RETRIES = 2
DEFAULT_MAX_EVENT_AGE = 21_600
# Seconds before the 2nd and the 3rd attempt (AWS: "one minute", "two minutes").
RETRY_DELAYS = (60.0, 120.0)
# After a throttle: 1 s, doubling, at most 5 minutes (AWS).
MAX_THROTTLE_BACKOFF = 300.0


@dataclass
class AsyncInvocation:
    """One queued asynchronous invocation."""

    request_id: str
    function_arn: str
    payload: Any
    enqueued_at: float
    source: str
    attempts: int = 0
    throttles: int = 0  # invocations Lambda refused (not attempts)
    last: InvocationResult | None = None
    redelivered: bool = False  # a copy made by the `redeliver` fault


@dataclass(frozen=True)
class _AsyncConfig:
    retries: int
    max_age: int
    on_success: str | None
    on_failure: str | None
    dead_letter: str | None


class LambdaAsync:
    """Lambda's asynchronous invocation queue (see the module docstring).

    `submit(function, payload)` queues an event and returns its request id.
    """

    def __init__(self, ctx: DeliveryContext) -> None:
        self.ctx = ctx
        self._ids = itertools.count(1)
        self.invocations: list[AsyncInvocation] = []
        # moto does not keep a function's DeadLetterConfig: function ARN -> target ARN
        # for the functions that have one (the sandbox fills it from the deployment).
        self.dead_letter_targets: dict[str, str] = {}

    def submit(self, function: str, payload: Any, *, source: str = "") -> str:
        """Queue an asynchronous invocation of `function` (name or ARN)."""
        function_arn = self._function_arn(function)
        durable = self.ctx.durable
        if durable is not None and function_arn.startswith("arn:") and durable.config(function_arn):
            # A durable function: the event starts an execution, whose replays stand
            # in for this queue's retries (`delivery.durable`).
            return str(durable.start(function_arn, payload, source=source).arn)
        request_id = f"async-{next(self._ids):06d}"
        invocation = AsyncInvocation(
            request_id, function_arn, payload, self.ctx.clock.now(), source
        )
        self.invocations.append(invocation)
        self.ctx.scheduler.call_soon(
            f"lambda-async {short_name(function_arn)}", lambda: self._attempt(invocation)
        )
        return request_id

    def _function_arn(self, function: str) -> str:
        if function.startswith("arn:"):
            parts = function.split(":")
            # Drop a qualifier: arn:aws:lambda:region:acct:function:name[:qualifier]
            return ":".join(parts[:7])
        try:
            configuration = self.ctx.admin("lambda").get_function_configuration(
                FunctionName=function
            )
        except ClientError:
            return function
        return str(configuration["FunctionArn"])

    def _config(self, function_arn: str) -> _AsyncConfig:
        client = self.ctx.admin("lambda", Arn.parse(function_arn).region)
        retries, max_age = DEFAULT_RETRIES, DEFAULT_MAX_EVENT_AGE
        on_success = on_failure = dead_letter = None
        try:
            config = client.get_function_event_invoke_config(FunctionName=function_arn)
        except ClientError:
            config = {}
        if config.get("MaximumRetryAttempts") is not None:
            retries = int(config["MaximumRetryAttempts"])
        if config.get("MaximumEventAgeInSeconds") is not None:
            max_age = int(config["MaximumEventAgeInSeconds"])
        destinations = config.get("DestinationConfig") or {}
        on_success = (destinations.get("OnSuccess") or {}).get("Destination") or None
        on_failure = (destinations.get("OnFailure") or {}).get("Destination") or None
        try:
            function = client.get_function_configuration(FunctionName=function_arn)
            dead_letter = (function.get("DeadLetterConfig") or {}).get("TargetArn") or None
        except ClientError:
            pass
        dead_letter = dead_letter or self.dead_letter_targets.get(function_arn)
        return _AsyncConfig(retries, max_age, on_success, on_failure, dead_letter)

    def _attempt(self, invocation: AsyncInvocation) -> None:
        config = self._config(invocation.function_arn)
        age = self.ctx.clock.now() - invocation.enqueued_at
        if invocation.attempts > 0 and age > config.max_age:
            self._fail(invocation, config, "EventAgeExceeded")
            return
        invocation.attempts += 1
        # An invoker's error (e.g. the function was deleted after the event was queued)
        # is the attempt's error.
        self.ctx.start(
            invocation.function_arn,
            invocation.payload,
            lambda result: self._attempted(invocation, config, age, result),
            asynchronous=True,
            errors_as_results=True,
        )

    def _attempted(
        self,
        invocation: AsyncInvocation,
        config: _AsyncConfig,
        age: float,
        result: InvocationResult,
    ) -> None:
        name = short_name(invocation.function_arn)
        if result.refused:
            self._throttled(invocation, config, result)
            return
        invocation.last = result
        if result.error_type is None:
            self.ctx.record(
                "lambda.async", invocation.source, name, "ok", f"attempt {invocation.attempts}"
            )
            self._maybe_redeliver(invocation)
            if config.on_success:
                self.ctx.send_destination(
                    config.on_success,
                    self._record(invocation, "Success"),
                    role_arn=self.ctx.function_role(invocation.function_arn),
                    function_arn=invocation.function_arn,
                    success=True,
                    submit_async=self._submit_record,
                )
            return
        detail = f"attempt {invocation.attempts}: {result.error_type}: {result.error_message}"
        retries_done = invocation.attempts - 1
        if retries_done >= config.retries:
            self.ctx.record("lambda.async", invocation.source, name, "failed", detail)
            self._fail(invocation, config, "RetriesExhausted")
            return
        delay = RETRY_DELAYS[min(retries_done, len(RETRY_DELAYS) - 1)]
        if age + delay > config.max_age:
            self.ctx.record("lambda.async", invocation.source, name, "failed", detail)
            self.ctx.scheduler.call_at(
                invocation.enqueued_at + config.max_age,
                f"lambda-async-expire {name}",
                lambda: self._fail(invocation, config, "EventAgeExceeded"),
            )
            return
        self.ctx.record("lambda.async", invocation.source, name, "retry", detail)
        self.ctx.scheduler.call_later(
            delay, f"lambda-async-retry {name}", lambda: self._attempt(invocation)
        )

    def _throttled(
        self, invocation: AsyncInvocation, config: _AsyncConfig, result: InvocationResult
    ) -> None:
        """Lambda did not run it: back to the queue, the attempt not used up (module
        docstring)."""
        invocation.attempts -= 1
        invocation.throttles += 1
        name = short_name(invocation.function_arn)
        delay = min(MAX_THROTTLE_BACKOFF, 2.0 ** (invocation.throttles - 1))
        detail = f"{result.error_type}: {result.error_message} (not an attempt)"
        age = self.ctx.clock.now() - invocation.enqueued_at
        if age + delay > config.max_age:
            self.ctx.record("lambda.async", invocation.source, name, "throttled", detail)
            self.ctx.scheduler.call_at(
                invocation.enqueued_at + config.max_age,
                f"lambda-async-expire {name}",
                lambda: self._fail(invocation, config, "EventAgeExceeded"),
            )
            return
        self.ctx.record(
            "lambda.async", invocation.source, name, "throttled", f"{detail}, again in {delay:g} s"
        )
        self.ctx.scheduler.call_later(
            delay, f"lambda-async-retry {name}", lambda: self._attempt(invocation)
        )

    def _maybe_redeliver(self, invocation: AsyncInvocation) -> None:
        """The `redeliver` fault: queue the succeeded event once more (module docstring)."""
        if invocation.redelivered or not self.ctx.redeliver(
            service="lambda", function_arn=invocation.function_arn
        ):
            return
        copy = AsyncInvocation(
            invocation.request_id,
            invocation.function_arn,
            invocation.payload,
            invocation.enqueued_at,
            invocation.source,
            redelivered=True,
        )
        delay = self.ctx.redelivery_delay()
        name = short_name(invocation.function_arn)
        self.ctx.record("lambda.async", invocation.source, name, "redeliver", f"in {delay:.1f} s")
        self.ctx.scheduler.call_later(
            delay, f"lambda-async-redeliver {name}", lambda: self._attempt(copy)
        )

    def _fail(self, invocation: AsyncInvocation, config: _AsyncConfig, condition: str) -> None:
        role = self.ctx.function_role(invocation.function_arn)
        if config.on_failure:
            self.ctx.send_destination(
                config.on_failure,
                self._record(invocation, condition),
                role_arn=role,
                function_arn=invocation.function_arn,
                success=False,
                submit_async=self._submit_record,
            )
        if config.dead_letter:
            self._dead_letter(invocation, config.dead_letter, role)
        if not config.on_failure and not config.dead_letter:
            self.ctx.record(
                "lambda.async",
                invocation.source,
                short_name(invocation.function_arn),
                "dropped",
                condition,
            )

    def _dead_letter(self, invocation: AsyncInvocation, target: str, role: str | None) -> None:
        import json

        last = invocation.last
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": invocation.request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {
                "DataType": "String",
                "StringValue": (last.error_message if last and last.error_message else "")
                or "Unhandled",
            },
        }
        try:
            arn = Arn.parse(target)
            body = json.dumps(invocation.payload)
            if arn.service == "sqs":
                self.ctx.role_client(
                    role, "sqs", arn.region, source_arn=invocation.function_arn
                ).send_message(
                    QueueUrl=self.ctx.queue_url(target),
                    MessageBody=body,
                    MessageAttributes=attributes,
                )
            else:
                self.ctx.role_client(
                    role, "sns", arn.region, source_arn=invocation.function_arn
                ).publish(TopicArn=target, Message=body, MessageAttributes=attributes)
        except Exception as exc:  # a lost DLQ message is logged (AWS counts it)
            self.ctx.record(
                "lambda.dlq", short_name(invocation.function_arn), target, "failed", str(exc)
            )
            return
        self.ctx.record("lambda.dlq", short_name(invocation.function_arn), target, "ok")

    def _submit_record(self, destination: str, record: Any) -> object:
        return self.submit(destination, record, source="destination")

    def _record(self, invocation: AsyncInvocation, condition: str) -> dict[str, Any]:
        last = invocation.last
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        payload: Any
        if condition == "Success" and last is not None:
            payload = last.payload
        else:
            if last is not None and last.error_type is not None:
                response["functionError"] = "Unhandled"
            payload = (
                {"errorType": last.error_type, "errorMessage": last.error_message}
                if last is not None and last.error_type is not None
                else None
            )
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": self.ctx.clock.iso_millis(),
            "requestContext": {
                "requestId": invocation.request_id,
                "functionArn": f"{invocation.function_arn}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": invocation.attempts,
            },
            "requestPayload": invocation.payload,
            "responseContext": response,
        }
        if payload is not None or condition == "Success":
            record["responsePayload"] = payload
        return record
