"""The sandbox's in-process Lambda runtime (work in progress: interface first).

`InvocationResult` and `Invoker` are the fixed interface between the Lambda runtime
and the delivery/scheduler part of the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class InvocationResult:
    """The outcome of one invocation, as Lambda reports it."""

    payload: Any  # the handler's return value (JSON-compatible) or None
    error_type: str | None  # e.g. "PaymentDeclined", "Sandbox.Timedout"; None on success
    error_message: str | None
    duration_ms: float
    logs: str


class Invoker(Protocol):
    """Runs a function by name or ARN (moto's) and reports how it went."""

    def invoke(
        self,
        function: str,
        payload: Any,
        *,
        invocation_type: Literal["RequestResponse", "Event"] = "RequestResponse",
    ) -> InvocationResult: ...
