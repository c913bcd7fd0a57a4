"""Circuit breaker for calls to a downstream dependency.

    mailer = circuit_breaker("mail-api", failure_threshold=5, cool_down_seconds=30)

    def record_handler(record):
        with mailer.guard():            # raises CircuitOpenError without calling
            send(record)                # an exception here counts as a failure

closed: calls go through; `failure_threshold` consecutive failures open the circuit.
open: calls fail at once with CircuitOpenError, for `cool_down_seconds`.
half-open: after the cool-down, ONE call (the probe) goes through; the others still get
    CircuitOpenError. The probe's success closes the circuit, its failure re-opens it for
    another cool-down. A probe that never reports (its invocation died) is replaced after
    `probe_timeout_seconds`.

State lives at module level (`circuit_breaker(name)` returns the same breaker for the
life of the container), so it carries over between invocations of a warm container.
It is per container: each concurrent container trips on its own failures. (Sharing the
state in DynamoDB would cost a read on every call and a write on every failure, on one
hot item per dependency; the per-container breaker stops a container's hammering after
`failure_threshold` calls, which is what protects the dependency.)

A message refused by an open circuit is not lost: CircuitOpenError propagates out of the
record handler, `eventcraft.batch` reports the record in batchItemFailures (every record
failing fails the invocation), and SQS redelivers it after the visibility timeout. Size
the queue's maxReceiveCount x visibility timeout above the outages you want to ride out;
messages beyond that go to the DLQ, from which the redrive tool returns them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """The circuit is open: the dependency was not called. Let the message be retried."""

    def __init__(self, name: str, retry_after: float, failures: int, last_error: str) -> None:
        self.name = name
        self.retry_after = retry_after
        self.failures = failures
        self.last_error = last_error
        super().__init__(
            f"Circuit {name!r} is open after {failures} consecutive failures (last: "
            f"{last_error}); the call was not made. Let the message return to the queue: "
            "raise this from the record handler so the batch reports it as an item "
            "failure and SQS redelivers it after the visibility timeout. Next attempt "
            f"allowed in {retry_after:.1f}s."
        )


@dataclass(frozen=True)
class BreakerStatus:
    """A snapshot of a breaker, for logs and metrics. retry_after: seconds until the next
    call is allowed through (0 when closed)."""

    name: str
    state: CircuitState
    consecutive_failures: int
    retry_after: float
    last_error: str


class CircuitBreaker:
    """A closed/open/half-open breaker (thread-safe).

    failure_threshold: consecutive failures that open the circuit (default 5).
    cool_down_seconds: how long it stays open before a probe (default 30 s).
    probe_timeout_seconds: after this long without a result, the probe is presumed dead
        and another call may probe (default: cool_down_seconds).
    ignore: exception types that do not count as failures (the dependency answered,
        e.g. a validation error); they count as successes.
    clock: seconds (default time.time: wall time keeps running while Lambda freezes a
        warm container between invocations); injectable for tests.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cool_down_seconds: float = 30.0,
        probe_timeout_seconds: float | None = None,
        ignore: tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if cool_down_seconds <= 0:
            raise ValueError(f"cool_down_seconds must be > 0, got {cool_down_seconds}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down_seconds = cool_down_seconds
        self.probe_timeout_seconds = (
            cool_down_seconds if probe_timeout_seconds is None else probe_timeout_seconds
        )
        self.ignore = ignore
        self.clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self._last_error = ""

    def config(self) -> tuple[int, float, float, tuple[type[BaseException], ...]]:
        return (
            self.failure_threshold,
            self.cool_down_seconds,
            self.probe_timeout_seconds,
            self.ignore,
        )

    def status(self) -> BreakerStatus:
        with self._lock:
            now = self.clock()
            if self._state is CircuitState.CLOSED:
                retry_after = 0.0
            elif self._state is CircuitState.OPEN:
                retry_after = max(0.0, self._opened_at + self.cool_down_seconds - now)
            else:
                retry_after = self._probe_wait(now)
            return BreakerStatus(
                self.name, self._state, self._failures, retry_after, self._last_error
            )

    @property
    def state(self) -> CircuitState:
        return self.status().state

    def _probe_wait(self, now: float) -> float:
        if self._probe_started is None:
            return 0.0
        return max(0.0, self._probe_started + self.probe_timeout_seconds - now)

    def _refuse(self, retry_after: float) -> CircuitOpenError:
        return CircuitOpenError(self.name, retry_after, self._failures, self._last_error)

    def before_call(self) -> None:
        """Allow a call, or raise CircuitOpenError. Pair with record_success/failure."""
        with self._lock:
            now = self.clock()
            if self._state is CircuitState.CLOSED:
                return
            if self._state is CircuitState.OPEN:
                reopens = self._opened_at + self.cool_down_seconds
                if now < reopens:
                    raise self._refuse(reopens - now)
                self._state = CircuitState.HALF_OPEN
                self._probe_started = now
                return
            wait = self._probe_wait(now)
            if wait > 0:
                raise self._refuse(wait)  # one probe at a time
            self._probe_started = now  # the previous probe never reported: replace it

    def record_success(self) -> None:
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._probe_started = None

    def record_failure(self, error: BaseException) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = f"{type(error).__name__}: {error}"[:200]
            if self._state is CircuitState.HALF_OPEN or (
                self._state is CircuitState.CLOSED and self._failures >= self.failure_threshold
            ):
                self._state = CircuitState.OPEN
                self._opened_at = self.clock()
                self._probe_started = None

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run the block as a call to the dependency: refused with CircuitOpenError when
        open; an exception from the block (except `ignore`d types) is a failure and is
        re-raised."""
        self.before_call()
        try:
            yield
        except CircuitOpenError:
            # A nested breaker refused: not evidence about this dependency.
            self._release_probe()
            raise
        except self.ignore:
            self.record_success()
            raise
        except Exception as error:
            self.record_failure(error)
            raise
        except BaseException:
            self._release_probe()  # interrupted, not failed
            raise
        self.record_success()

    def call(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`function(*args, **kwargs)` under `guard()`."""
        with self.guard():
            return function(*args, **kwargs)

    def _release_probe(self) -> None:
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._probe_started = None

    def reset(self) -> None:
        """Back to closed with no failures (operations, tests)."""
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._probe_started = None
            self._last_error = ""


# One breaker per dependency per container: module state outlives an invocation.
_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def circuit_breaker(
    name: str,
    *,
    failure_threshold: int = 5,
    cool_down_seconds: float = 30.0,
    probe_timeout_seconds: float | None = None,
    ignore: tuple[type[BaseException], ...] = (),
    clock: Callable[[], float] = time.time,
) -> CircuitBreaker:
    """The container's breaker for `name`, created on first use with these settings.

    Raises ValueError if `name` already exists with other settings (two call sites
    disagreeing about one dependency is a bug worth hearing about).
    """
    with _breakers_lock:
        existing = _breakers.get(name)
        wanted = CircuitBreaker(
            name,
            failure_threshold=failure_threshold,
            cool_down_seconds=cool_down_seconds,
            probe_timeout_seconds=probe_timeout_seconds,
            ignore=ignore,
            clock=clock,
        )
        if existing is None:
            _breakers[name] = wanted
            return wanted
        if existing.config() != wanted.config() or existing.clock is not clock:
            raise ValueError(
                f"circuit_breaker({name!r}) already exists with settings "
                f"{existing.config()}; this call asks for {wanted.config()}. Use one "
                "setting per dependency (define the breaker once, in a module)."
            )
        return existing


def reset_breakers() -> None:
    """Forget every breaker (tests: each test starts from closed circuits)."""
    with _breakers_lock:
        _breakers.clear()
