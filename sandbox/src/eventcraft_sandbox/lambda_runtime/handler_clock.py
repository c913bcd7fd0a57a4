"""A handler's clock: the sandbox's virtual time, on the invocation's own thread.

Delivery runs on the sandbox's `VirtualClock`, which after retries, backoffs and
outages is minutes or hours ahead of the wall clock. Handler code that compared the
wall clock with times written on the virtual one would see time stand still: a
Powertools idempotency record left INPROGRESS by a timed-out invocation (its expiry is
`datetime.now()` + the remaining time) would still be in progress when the retry
comes minutes later in virtual time, a circuit breaker would never cool down. So
while a `LambdaRuntime` with a clock is installed, on an invocation's worker thread
(`thread_state.STATE.invocation`) these read the handler's time:

    time.time()  time.time_ns()  time.gmtime()  time.localtime()  time.ctime()
    time.strftime(format)  datetime.datetime.now(tz)  .utcnow()  .today()
    datetime.date.today()

The handler's time is `HandlerTime.now()`: the virtual clock when the invocation
started plus the invocation's elapsed time (its CPU time, sleeps and the synchronous
invocations it waited on: what its timeout counts), so it agrees with
`context.get_remaining_time_in_millis()`, moves while the handler works (two reads a
CPU-second apart differ by a second) and never goes backwards. A nested synchronous
invocation starts no earlier than its caller's time. The virtual clock itself moves
by waits (sleeps, the delivery's schedule), not by the CPU time handlers use: an
invocation that starts right after another may read a time that much (milliseconds)
before the other's last reading.

Everything else reads the real clock: other threads (the sandbox's, a test's, threads
a handler starts), a runtime without a clock, and the simulated AWS: a handler's
boto3 call runs moto (and the sandbox's hooks in it) on the handler's thread, and
while that request is in flight the clock is the one moto had before (real time,
except what `clock.MotoTimePatch` and the delivery put on the virtual clock).

`datetime.datetime` and `datetime.date` are C types whose methods cannot be replaced:
the `datetime` module's names point at subclasses (`VirtualDatetime`, `VirtualDate`)
whose `now`/`utcnow`/`today` read the handler's time and whose constructors return
the real types, so every instance is a real `datetime`/`date` (json, pydantic-core and
boto3 see nothing new). Their metaclass makes `isinstance`/`issubclass` with them
accept the real types and makes each equal to its real class, with the same hash (a
dict keyed by types finds either: only `is` tells them apart); pydantic builds its
usual schema for them, and pickling a datetime names `datetime.datetime` as before.
References captured before install (`from datetime import datetime`, `clock=time.time`)
are rebound by `handler_time.install_handler_time` (`captured`).

Not covered: `time.monotonic`/`perf_counter` (durations, real), time read in C code
(pydantic-core's `PastDatetime` checks), and closures or objects made before install.
"""

from __future__ import annotations

import copyreg
import datetime
import time
from typing import Any

from eventcraft_sandbox.lambda_runtime.thread_state import STATE

__all__ = [
    "CLOCK_REPLACEMENTS",
    "VirtualDate",
    "VirtualDatetime",
    "handler_now",
    "install_pickling",
]

REAL_TIME = time.time
REAL_TIME_NS = time.time_ns
REAL_GMTIME = time.gmtime
REAL_LOCALTIME = time.localtime
REAL_CTIME = time.ctime
REAL_STRFTIME = time.strftime
REAL_DATETIME = datetime.datetime
REAL_DATE = datetime.date


def handler_now() -> float | None:
    """The handler's time on an invocation's thread outside its AWS requests, else
    None: the real clock (see the module docstring)."""
    invocation = STATE.invocation
    if invocation is None or invocation.in_request:
        return None
    return invocation.time.now()


# ---------------------------------------------------------------------- time
# Each is a staticmethod object (callable): kept as a class attribute (`clock =
# time.time`), it is not bound as a method, as the builtin it replaces is not.


def _time() -> float:
    now = handler_now()
    return REAL_TIME() if now is None else now


def _time_ns() -> int:
    now = handler_now()
    return REAL_TIME_NS() if now is None else int(now * 1e9)


def _gmtime(seconds: float | None = None) -> time.struct_time:
    return REAL_GMTIME(handler_now() if seconds is None else seconds)


def _localtime(seconds: float | None = None) -> time.struct_time:
    return REAL_LOCALTIME(handler_now() if seconds is None else seconds)


def _ctime(seconds: float | None = None) -> str:
    return REAL_CTIME(handler_now() if seconds is None else seconds)


def _strftime(pattern: str, moment: Any = None) -> str:
    if moment is not None:
        return REAL_STRFTIME(pattern, moment)
    now = handler_now()
    return REAL_STRFTIME(pattern) if now is None else REAL_STRFTIME(pattern, REAL_LOCALTIME(now))


virtual_time = staticmethod(_time)
virtual_time_ns = staticmethod(_time_ns)
virtual_gmtime = staticmethod(_gmtime)
virtual_localtime = staticmethod(_localtime)
virtual_ctime = staticmethod(_ctime)
virtual_strftime = staticmethod(_strftime)


# ------------------------------------------------------------------ datetime


class _RealInstances(type):
    """The metaclass of the stand-ins: `isinstance(x, VirtualDatetime)` is
    `isinstance(x, datetime)` (and issubclass alike), and a stand-in equals its real
    class with the same hash, so either finds the other in a dict keyed by types (a
    library imported while installed, such as pydantic's schema builder, keys its
    table with the stand-in, and keeps it after uninstall). Subclasses made from a
    stand-in while it is installed are ordinary classes."""

    def __instancecheck__(cls, instance: Any) -> bool:
        real = cls.__dict__.get("_real_class")
        return isinstance(instance, real) if real else type.__instancecheck__(cls, instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        real = cls.__dict__.get("_real_class")
        return issubclass(subclass, real) if real else type.__subclasscheck__(cls, subclass)

    def __eq__(cls, other: object) -> bool:
        return cls is other or (other is not None and other is cls.__dict__.get("_real_class"))

    def __hash__(cls) -> int:
        return hash(cls.__dict__.get("_real_class") or type.__hash__(cls))


class VirtualDate(REAL_DATE, metaclass=_RealInstances):
    """`datetime.date` while installed: `today()` is the handler's (module docstring)."""

    __slots__ = ()
    _real_class = REAL_DATE

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is VirtualDate:  # C constructors (fromordinal, ...) come here too
            return REAL_DATE(*args, **kwargs)
        return REAL_DATE.__new__(cls, *args, **kwargs)

    @classmethod
    def today(cls) -> Any:
        now = handler_now()
        return super().today() if now is None else cls.fromtimestamp(now)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return handler(REAL_DATE)  # a field typed `date` while installed


class VirtualDatetime(REAL_DATETIME, metaclass=_RealInstances):
    """`datetime.datetime` while installed: `now(tz)`, `utcnow()` and `today()` are the
    handler's (module docstring)."""

    __slots__ = ()
    _real_class = REAL_DATETIME

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is VirtualDatetime:  # C constructors (fromtimestamp, ...) come here too
            return REAL_DATETIME(*args, **kwargs)
        return REAL_DATETIME.__new__(cls, *args, **kwargs)

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> Any:
        now = handler_now()
        return super().now(tz) if now is None else cls.fromtimestamp(now, tz)

    @classmethod
    def utcnow(cls) -> Any:
        now = handler_now()
        if now is None:
            return super().utcnow()
        return cls.fromtimestamp(now, datetime.UTC).replace(tzinfo=None)

    @classmethod
    def today(cls) -> Any:
        now = handler_now()
        return super().today() if now is None else cls.fromtimestamp(now)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return handler(REAL_DATETIME)  # a field typed `datetime` while installed


# Named as the real ones: pickle finds a class by its module and name, and repr()
# shows what the code asked for.
for _stand_in, _real in ((VirtualDate, REAL_DATE), (VirtualDatetime, REAL_DATETIME)):
    _stand_in.__name__ = _stand_in.__qualname__ = _real.__name__
    _stand_in.__module__ = _real.__module__

# What the runtime replaces, for `captured.Replacements`; `now`, `utcnow` and `today`
# are also replaced where captured as bound classmethods (`clock=datetime.now`).
CLOCK_REPLACEMENTS: dict[Any, Any] = {
    REAL_TIME: virtual_time,
    REAL_TIME_NS: virtual_time_ns,
    REAL_GMTIME: virtual_gmtime,
    REAL_LOCALTIME: virtual_localtime,
    REAL_CTIME: virtual_ctime,
    REAL_STRFTIME: virtual_strftime,
    REAL_DATETIME: VirtualDatetime,
    REAL_DATE: VirtualDate,
}
BOUND_NAMES = ("now", "utcnow", "today")
MODULE_NAMES = {  # the replaced names in their own modules
    time: ("time", "time_ns", "gmtime", "localtime", "ctime", "strftime"),
    datetime: ("datetime", "date"),
}


# ------------------------------------------------------------------- pickling


def _reduce_date(value: Any) -> tuple[Any, Any]:
    # Pickle finds the class `datetime.date` by name, which is the stand-in while
    # installed: pickle it as the stand-in, which unpickles as a real date anywhere.
    return VirtualDate, value.__reduce_ex__(4)[1]


def _reduce_datetime(value: Any) -> tuple[Any, Any]:
    return VirtualDatetime, value.__reduce_ex__(4)[1]  # protocol 4: keeps `fold`


def install_pickling() -> Any:
    """Let pickle and copy handle real dates and datetimes while the stand-ins are
    installed; returns the function that undoes it."""
    table = copyreg.dispatch_table
    before = {real: table.get(real) for real in (REAL_DATE, REAL_DATETIME)}
    table[REAL_DATE] = _reduce_date
    table[REAL_DATETIME] = _reduce_datetime

    def undo() -> None:
        for real, reducer in before.items():
            if reducer is None:
                table.pop(real, None)
            else:
                table[real] = reducer

    return undo
