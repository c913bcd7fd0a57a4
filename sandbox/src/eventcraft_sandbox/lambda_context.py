"""The `context` a handler receives, shaped like the AWS Python runtime's.

Mirrors `awslambdaric.lambda_context.LambdaContext` (the object Lambda's python3.x
runtimes pass): the same attribute names and types, including the one that surprises
people: `memory_limit_in_mb` is a string there (read from the environment), so it is
one here too, and code that does arithmetic on it fails in the sandbox as in AWS.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class LambdaContext:
    """What a handler's second argument offers.

    `get_remaining_time_in_millis()` counts down from the function's timeout (in
    milliseconds, never below 0); Powertools idempotency and batch processing read it.
    `identity` and `client_context` are None (no Cognito / mobile SDK callers here).
    """

    def __init__(
        self,
        *,
        aws_request_id: str,
        function_name: str,
        function_version: str,
        invoked_function_arn: str,
        memory_limit_in_mb: str,
        log_group_name: str,
        log_stream_name: str,
        remaining_time_in_millis: Callable[[], int],
        identity: Any = None,
        client_context: Any = None,
        tenant_id: str | None = None,
    ) -> None:
        self.aws_request_id = aws_request_id
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        self.identity = identity
        self.client_context = client_context
        self.tenant_id = tenant_id
        self._remaining = remaining_time_in_millis

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (0 once it has)."""
        return max(0, int(self._remaining()))

    def log(self, msg: str) -> None:
        """Write `msg` to the invocation's log, as the AWS runtime's `context.log` does."""
        sys.stdout.write(msg)

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )
