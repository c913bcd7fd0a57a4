"""How many invocations of each function are in flight, and the limits that throttle
them as Lambda does.

Every invocation takes a slot of its function (by name, all versions) before it runs
and gives it back when it ends. It is throttled instead, without running, when its
function already has as many in flight as:

* its reserved concurrency (`PutFunctionConcurrency`, a function's
  `ReservedConcurrentExecutions`): always, as Lambda does (reserved concurrency 0
  throttles every invocation); reason `ReservedFunctionConcurrentInvocationLimitExceeded`;
* the run's limit for it, `limit(function name)` (0: none; the `concurrency=N` fault
  sets it to N, see `eventcraft_sandbox.fault_injection`); reason
  `ConcurrentInvocationLimitExceeded`.

A throttled invocation's result is the Invoke API's refusal: `TooManyRequestsException`,
"Rate Exceeded.", status 429 (`InvocationResult.refused`). Its caller sees it as Lambda
shows it: a synchronous Invoke gets the 429 error (a Step Functions task
`Lambda.TooManyRequestsException`); the delivery retries an asynchronous event or a
stream batch without using up an attempt, and an SQS batch comes back after its
visibility timeout (`eventcraft_sandbox.delivery`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Final

from eventcraft_sandbox.lambda_runtime.function_spec import FunctionSpec

__all__ = ["THROTTLED_CODE", "THROTTLED_MESSAGE", "Concurrency"]

THROTTLED_CODE: Final = "TooManyRequestsException"
THROTTLED_MESSAGE: Final = "Rate Exceeded."
RESERVED_LIMIT: Final = "ReservedFunctionConcurrentInvocationLimitExceeded"
CONCURRENCY_LIMIT: Final = "ConcurrentInvocationLimitExceeded"


class Concurrency:
    """The slots of each function (module docstring); thread-safe.

    - `limit(function_name)`: the run's limit of invocations in flight (0: none);
    - `on_overlap(function_name)`: called for each invocation that starts while
      another of the same function is in flight.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self.throttles: Counter[str] = Counter()  # by function name
        self.peaks: Counter[str] = Counter()  # the most in flight at once, by function
        self.limit: Callable[[str], int] | None = None
        self.on_overlap: Callable[[str], None] | None = None

    def in_flight(self, function: str) -> int:
        """Invocations of `function` (name, `name:qualifier` or ARN) in flight now."""
        with self._lock:
            return self._in_flight[_name(function)]

    def enter(self, spec: FunctionSpec) -> str | None:
        """Take a slot for an invocation of `spec`; or the reason it is throttled."""
        name = spec.name
        limit = self.limit(name) if self.limit is not None else 0
        with self._lock:
            running = self._in_flight[name]
            reason = None
            if spec.reserved_concurrency is not None and running >= spec.reserved_concurrency:
                reason = RESERVED_LIMIT
            elif limit and running >= limit:
                reason = CONCURRENCY_LIMIT
            if reason is not None:
                self.throttles[name] += 1
                return reason
            self._in_flight[name] = running + 1
            self.peaks[name] = max(self.peaks[name], running + 1)
        if running and self.on_overlap is not None:
            self.on_overlap(name)
        return None

    def leave(self, spec: FunctionSpec) -> None:
        """Give the slot back (the invocation ended)."""
        with self._lock:
            self._in_flight[spec.name] -= 1
            if self._in_flight[spec.name] <= 0:
                del self._in_flight[spec.name]


def _name(function: str) -> str:
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function.split(":", 1)[0]
