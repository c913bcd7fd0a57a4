"""Running a durable function's handler on the official testing SDK's local runner
(`DurableFunctionTestRunner`: the real SDK against an in-memory checkpoint service, waits
and retry delays skipped on a virtual clock), with Lambda's view of a crash."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from unittest import mock

from aws_durable_execution_sdk_python_testing.executor import Executor
from aws_durable_execution_sdk_python_testing.runner import (
    DurableFunctionTestResult,
    DurableFunctionTestRunner,
)


class LambdaCrash(BaseException):
    """The function's process dies (or its reply is lost) mid-step, after the step's
    effect: no checkpoint of the step's end is written. A BaseException, so that no
    handler code catches it."""


def run_durable(
    durable_handler: Callable[[Any, Any], Any],
    event: Any,
    *,
    execution_timeout: int,
    execution_name: str,
) -> DurableFunctionTestResult:
    """One execution of `durable_handler` (a `@durable_execution` handler) started with
    `event`. A LambdaCrash fails the invocation, and the runner invokes it again, as the
    service does."""

    def handler(payload: Any, context: Any) -> Any:
        try:
            return durable_handler(payload, context)
        except LambdaCrash as crash:
            raise RuntimeError(f"the function crashed in {crash}") from None

    # The runner waits RETRY_BACKOFF_SECONDS of real time before invoking a crashed
    # execution again (step retries already run on its virtual clock).
    with (
        mock.patch.object(Executor, "RETRY_BACKOFF_SECONDS", 0),
        DurableFunctionTestRunner(handler=handler) as runner,
    ):
        result: DurableFunctionTestResult = runner.run(
            input=json.dumps(event),
            execution_timeout=execution_timeout,
            execution_name=execution_name,
        )
    return result
