"""Named faults that AWS really produces, injected into a sandbox run: seeded, on the
virtual clock, counted.

    faults = FaultPlan.parse(["lost-reply@ship-order-task=0.2", "outage@events=60+600"], seed=7)
    with SandboxSession(program, "dev", faults=faults) as session:
        ...
        session.fault_counts        # {"lost-reply": 17, "outage": 240}

A fault is `NAME[@TARGET]=VALUE` (the `--fault` option of a driver's command line):

| name                | value             | what happens                                        |
|---------------------|-------------------|-----------------------------------------------------|
| `lost-reply`        | P (0..1)          | the function ran to the end and its writes stand,   |
|                     |                   | but its caller sees a timeout                        |
| `timeout-mid`       | P                 | the function is stopped after its first AWS write    |
| `throttle`          | P                 | a call fails with the service's throttling error     |
| `putevents-partial` | P                 | a share P of each PutEvents' entries fail            |
| `txn-conflict`      | P                 | a DynamoDB transaction is cancelled (conflict)       |
| `outage`            | START+DURATION    | every call to the service fails in that window      |
|                     |                   | (virtual seconds from the start of the run)          |
| `redeliver`         | P                 | a delivery that succeeded is made again, as AWS's    |
|                     |                   | at-least-once delivery does                          |
| `reorder`           | SECONDS           | deliveries held back up to that long, out of order  |
| `concurrency`       | N (>= 1)          | up to N invocations of a function at once, their    |
|                     |                   | AWS calls interleaved; more are throttled            |

TARGET is a function's short name (`ship-order-task`: what the stack's `functions`
output calls it) or a service (`dynamodb`, `events`, `sqs`, `lambda`, `states`,
`kinesis`); without one the fault applies everywhere it can. A fault on a function
applies to that function's invocations (`lost-reply`, `timeout-mid`, `redeliver`,
`reorder`, `concurrency`) or to the calls its code makes (`throttle`, `outage`,
`putevents-partial`, `txn-conflict`); a fault on a service to the calls made to it, or
the deliveries it makes.

Decisions are seeded: each fault draws from its own generator, seeded by the run's
seed and the fault's text, so adding a fault does not change the others' draws (the
order of draws still follows the order of events, which background work such as Step
Functions executions can vary).

This module is the model (what is asked, what applies, the draws, the counts); the
parts of the sandbox that make the calls and deliveries apply it.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "FAULT_NAMES",
    "SERVICES",
    "Fault",
    "FaultError",
    "FaultPlan",
]

SERVICES: Final = ("dynamodb", "events", "sqs", "lambda", "states", "kinesis")

# name -> (kind of value, the services it can target)
_Kind = Literal["probability", "window", "seconds", "count"]
_FAULTS: Final[Mapping[str, tuple[_Kind, frozenset[str]]]] = {
    "lost-reply": ("probability", frozenset({"lambda"})),
    "timeout-mid": ("probability", frozenset({"lambda"})),
    "throttle": ("probability", frozenset(SERVICES)),
    "putevents-partial": ("probability", frozenset({"events"})),
    "txn-conflict": ("probability", frozenset({"dynamodb"})),
    "outage": ("window", frozenset(SERVICES)),
    "redeliver": (
        "probability",
        frozenset({"sqs", "lambda", "kinesis", "dynamodb", "events", "states"}),
    ),
    "reorder": ("seconds", frozenset({"sqs", "events"})),
    "concurrency": ("count", frozenset({"lambda"})),
}
FAULT_NAMES: Final = tuple(_FAULTS)

_VALUE_HELP: Final[Mapping[_Kind, str]] = {
    "probability": "a probability within 0..1 (e.g. 0.2)",
    "window": "START+DURATION in virtual seconds from the start of the run (e.g. 60+600)",
    "seconds": "a number of virtual seconds > 0 (e.g. 30)",
    "count": "a whole number >= 1 (e.g. 4)",
}


class FaultError(ValueError):
    """A fault that cannot be injected as written (the message names the part)."""


@dataclass(frozen=True)
class Fault:
    """One fault as asked: `name`, `target` (function short name, service or None) and
    its value (`probability`, `window` (start, duration), `seconds` or `count`)."""

    name: str
    target: str | None
    value: float | tuple[float, float]

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`NAME[@TARGET]=VALUE`; raises `FaultError` naming what is wrong."""
        spec, equals, raw_value = text.strip().partition("=")
        if not equals or not raw_value.strip():
            raise FaultError(f"fault {text!r}: expected NAME[@TARGET]=VALUE (e.g. lost-reply=0.2)")
        name, at, target = spec.strip().partition("@")
        name = name.strip()
        if name not in _FAULTS:
            raise FaultError(
                f"fault {text!r}: unknown name {name!r}; allowed: {', '.join(FAULT_NAMES)}"
            )
        target = target.strip()
        if at and not target:
            raise FaultError(
                f"fault {text!r}: empty TARGET after '@' (a function's short name or a service)"
            )
        kind = _FAULTS[name][0]
        return cls(name, target or None, _parse_value(text, kind, raw_value.strip()))

    @property
    def kind(self) -> _Kind:
        return _FAULTS[self.name][0]

    @property
    def number(self) -> float:
        """The value of a probability, seconds or count fault."""
        if isinstance(self.value, tuple):
            raise TypeError(f"{self}: a window, not a number")
        return self.value

    @property
    def probability(self) -> float:
        return self.number if self.kind == "probability" else 0.0

    @property
    def window(self) -> tuple[float, float]:
        """(start, end) in virtual seconds from the start of the run."""
        if not isinstance(self.value, tuple):
            raise TypeError(f"{self}: not a window")
        start, duration = self.value
        return start, start + duration

    def __str__(self) -> str:
        target = f"@{self.target}" if self.target else ""
        if isinstance(self.value, tuple):
            start, duration = self.value
            value = f"{start:g}+{duration:g}"
        elif self.kind == "count":
            value = f"{int(self.value):d}"
        else:
            value = f"{self.value:g}"
        return f"{self.name}{target}={value}"

    def applies(self, *, function: str | None, service: str | None) -> bool:
        """Whether this fault covers a call or delivery of `function` (short name) to
        or by `service`."""
        if self.target is None:
            return service is None or service in _FAULTS[self.name][1]
        return self.target in (function, service)


def _parse_value(text: str, kind: _Kind, raw: str) -> float | tuple[float, float]:
    problem = f"fault {text!r}: value {raw!r} must be {_VALUE_HELP[kind]}"
    try:
        if kind == "window":
            start_text, plus, duration_text = raw.partition("+")
            if not plus:
                raise FaultError(problem)
            start, duration = float(start_text), float(duration_text)
            if (
                not (start >= 0 and duration > 0)
                or start == float("inf")
                or duration == float("inf")
            ):
                raise FaultError(problem)
            return start, duration
        if kind == "count":
            count = int(raw)
            if count < 1:
                raise FaultError(problem)
            return float(count)
        number = float(raw)
    except ValueError as exc:
        if isinstance(exc, FaultError):
            raise
        raise FaultError(problem) from None
    if kind == "probability" and not 0.0 <= number <= 1.0:
        raise FaultError(problem)
    if kind == "seconds" and not 0.0 < number < float("inf"):
        raise FaultError(problem)
    return number


@dataclass
class FaultPlan:
    """The faults of one run, their seeded draws and their counts (thread-safe).

    `start`: the virtual time (epoch seconds) windows count from; the session sets it
    when the run starts."""

    faults: tuple[Fault, ...] = ()
    seed: int | str = 0
    start: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    _rngs: dict[Fault, random.Random] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, texts: Iterable[str], *, seed: int | str = 0) -> FaultPlan:
        return cls(tuple(Fault.parse(t) for t in texts), seed)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def validate_targets(self, functions: Collection[str]) -> None:
        """Every TARGET is a service the fault can reach or one of `functions` (short
        names); raises `FaultError` listing what is allowed."""
        for fault in self.faults:
            if fault.target is None:
                continue
            services = _FAULTS[fault.name][1]
            if fault.target in services or fault.target in functions:
                continue
            raise FaultError(
                f"fault {str(fault)!r}: unknown TARGET {fault.target!r}; allowed: a function "
                f"({', '.join(sorted(functions)) or 'none deployed'}) or a service "
                f"({', '.join(s for s in SERVICES if s in services)})"
            )

    def of(
        self, name: str, *, function: str | None = None, service: str | None = None
    ) -> list[Fault]:
        """The faults named `name` that cover this function / service."""
        return [
            f
            for f in self.faults
            if f.name == name and f.applies(function=function, service=service)
        ]

    def draw(self, name: str, *, function: str | None = None, service: str | None = None) -> bool:
        """A seeded yes/no for a probability fault; a yes is counted."""
        for fault in self.of(name, function=function, service=service):
            with self._lock:
                hit = self._rng(fault).random() < fault.probability
            if hit:
                self.count(name)
                return True
        return False

    def share(
        self, name: str, size: int, *, function: str | None = None, service: str | None = None
    ) -> list[int]:
        """Which of `size` entries fail (indexes), each with the fault's probability;
        each failed entry is counted."""
        chosen: set[int] = set()
        for fault in self.of(name, function=function, service=service):
            with self._lock:
                rng = self._rng(fault)
                chosen |= {i for i in range(size) if rng.random() < fault.probability}
        if chosen:
            self.count(name, len(chosen))
        return sorted(chosen)

    def in_outage(
        self, now: float, *, function: str | None = None, service: str | None = None
    ) -> bool:
        """Whether `now` (virtual epoch seconds) falls in an outage of this service or
        function's calls; a call refused is counted."""
        offset = now - self.start
        for fault in self.of("outage", function=function, service=service):
            begin, end = fault.window
            if begin <= offset < end:
                self.count("outage")
                return True
        return False

    def seconds(
        self, name: str, *, function: str | None = None, service: str | None = None
    ) -> float:
        """The largest `seconds` value of a fault covering this (0 if none)."""
        return max(
            (f.number for f in self.of(name, function=function, service=service)), default=0.0
        )

    def uniform(self, name: str, high: float) -> float:
        """A seeded draw in [0, high) from the generator of the first fault `name`."""
        for fault in self.faults:
            if fault.name == name:
                with self._lock:
                    return self._rng(fault).uniform(0.0, high)
        return 0.0

    def choice(self, name: str, size: int) -> int:
        """A seeded index in [0, size) from the generator of the first fault `name`
        (0 if there is none)."""
        for fault in self.faults:
            if fault.name == name:
                with self._lock:
                    return self._rng(fault).randrange(size)
        return 0

    def limit(self, name: str, *, function: str | None = None) -> int:
        """The smallest `count` of a fault covering this function (0: no fault)."""
        counts = [int(f.number) for f in self.of(name, function=function, service="lambda")]
        return min(counts, default=0)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def snapshot(self) -> dict[str, int]:
        """The counts so far, by fault name (every fault asked for, 0 included)."""
        with self._lock:
            counted = dict(self.counts)
        return {name: counted.get(name, 0) for name in dict.fromkeys(f.name for f in self.faults)}

    def _rng(self, fault: Fault) -> random.Random:
        rng = self._rngs.get(fault)
        if rng is None:
            rng = self._rngs[fault] = random.Random(f"faults/{self.seed}/{fault}")
        return rng
