"""EventBridge schedule expressions (`rate(...)`, `cron(...)`), parsed as AWS parses them.

    schedule = parse_schedule("cron(0/15 8-17 ? * MON-FRI *)")
    schedule.next_after(datetime(2026, 11, 27, 17, 50, tzinfo=UTC))   # Mon 30 Nov 08:00

`EventRule` validates a rule's expression with it when the rule is declared, and the
sandbox runs scheduled rules with it on its virtual clock: one definition of what an
expression means. Times are UTC (scheduled rules have no time zone).

Rules, from the EventBridge user guide ("Creating a rule that runs on a schedule"):
- `rate(value unit)`: value a positive whole number; unit `minute`, `hour` or `day`,
  singular when the value is 1 and plural otherwise (`rate(1 hours)` is refused). A
  rate counts from when the rule was created (`anchor`).
- `cron(minutes hours day-of-month month day-of-week year)`, six fields:
  minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 1-7
  (1 = Sunday) or SUN-SAT, year 1970-2199. Every field takes `*`, values, ranges
  `a-b` and lists `a,b`; `/` steps (`0/15`, `*/5`, `10-40/10`) in minutes, hours,
  day-of-month, month and year. Exactly one of day-of-month and day-of-week is `?`.
  Day-of-month also takes `L` (last day), `nW` (the weekday nearest day n, within the
  month) and `LW` (last weekday); day-of-week `L` (Saturday), `nL` (last weekday n of
  the month) and `n#k` (the k-th weekday n, k 1-5).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

MIN_YEAR, MAX_YEAR = 1970, 2199
MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_RATE = re.compile(r"rate\(\s*(\S+)\s+(\S+)\s*\)")
_CRON = re.compile(r"cron\((.*)\)")
_UNITS: Final = {"minute": 60, "hour": 3600, "day": 86_400}
_FIELDS: Final = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
SATURDAY: Final = 7  # AWS's day-of-week numbers: 1 = Sunday .. 7 = Saturday
MAX_NTH_WEEK: Final = 5
_ISO_SATURDAY, _ISO_SUNDAY = 6, 7


@dataclass(frozen=True)
class _Field:
    """A cron field: its name, range, names (JAN.., SUN..) and whether it takes steps."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    steps: bool = True


_MINUTES: Final = _Field("minutes", 0, 59)
_HOURS: Final = _Field("hours", 0, 23)
_DAY_OF_MONTH: Final = _Field("day-of-month", 1, 31)
_MONTH: Final = _Field("month", 1, 12, MONTHS)
_DAY_OF_WEEK: Final = _Field("day-of-week", 1, 7, DAYS, steps=False)
_YEAR: Final = _Field("year", MIN_YEAR, MAX_YEAR)


class InvalidScheduleError(ValueError):
    """A schedule expression EventBridge would refuse; the message says why."""


@dataclass(frozen=True)
class RateSchedule:
    """`rate(...)`: every `period`, counted from the rule's creation (`anchor`)."""

    expression: str
    period: timedelta

    def next_after(self, moment: datetime, *, anchor: datetime) -> datetime:
        """The first firing strictly after `moment`: anchor + k x period, k >= 1."""
        elapsed = max((moment - anchor) // self.period, 0)
        return anchor + (elapsed + 1) * self.period


@dataclass(frozen=True)
class CronSchedule:
    """`cron(...)`: the UTC minutes whose fields all match."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    years: tuple[int, ...]
    day_matches: Callable[[date], bool]

    def next_after(self, moment: datetime, *, anchor: datetime | None = None) -> datetime | None:
        """The first matching minute strictly after `moment` (UTC), or None when its
        years are over. `anchor` is unused (a cron does not count from creation)."""
        del anchor
        moment = _utc(moment)
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for year in (y for y in self.years if y >= start.year):
            for month in range(1, 13):
                if month not in self.months or (year, month) < (start.year, start.month):
                    continue
                first = start.day if (year, month) == (start.year, start.month) else 1
                for day in range(first, calendar.monthrange(year, month)[1] + 1):
                    if not self.day_matches(date(year, month, day)):
                        continue
                    found = self._first_time(datetime(year, month, day, tzinfo=UTC), start)
                    if found is not None:
                        return found
        return None

    def _first_time(self, day: datetime, start: datetime) -> datetime | None:
        for hour in self.hours:
            for minute in self.minutes:
                candidate = day.replace(hour=hour, minute=minute)
                if candidate >= start:
                    return candidate
        return None


Schedule = RateSchedule | CronSchedule


def parse_schedule(expression: str) -> Schedule:
    """Parse a schedule expression; raises InvalidScheduleError naming the bad part."""
    if not isinstance(expression, str):
        raise InvalidScheduleError(f"a schedule expression is a string, got {expression!r}")
    text = expression.strip()
    if (rate := _RATE.fullmatch(text)) is not None:
        return _rate(expression, rate.group(1), rate.group(2))
    if (cron := _CRON.fullmatch(text)) is not None:
        return _cron(expression, cron.group(1).split())
    raise InvalidScheduleError(
        f"{expression!r} is not a schedule expression: use rate(<value> <unit>), e.g. "
        "rate(5 minutes), or cron(<minutes> <hours> <day-of-month> <month> <day-of-week> "
        "<year>), e.g. cron(0 12 * * ? *)"
    )


def _rate(expression: str, value: str, unit: str) -> RateSchedule:
    if not value.isdigit() or int(value) < 1:
        raise InvalidScheduleError(f"{expression!r}: the rate's value must be a whole number >= 1")
    count = int(value)
    singular = unit.removesuffix("s")
    if singular not in _UNITS:
        raise InvalidScheduleError(
            f"{expression!r}: the unit must be minute(s), hour(s) or day(s), got {unit!r}"
        )
    expected = singular if count == 1 else f"{singular}s"
    if unit != expected:
        raise InvalidScheduleError(
            f"{expression!r}: with the value {count} the unit is {expected!r} (singular for 1, "
            "plural otherwise)"
        )
    return RateSchedule(expression, timedelta(seconds=count * _UNITS[singular]))


def _cron(expression: str, fields: Sequence[str]) -> CronSchedule:
    if len(fields) != len(_FIELDS):
        raise InvalidScheduleError(
            f"{expression!r}: a cron expression has 6 fields ({' '.join(_FIELDS)}), "
            f"got {len(fields)}"
        )
    minutes, hours, dom, month, dow, year = fields
    where = f"{expression!r}:"
    if (dom == "?") == (dow == "?"):
        raise InvalidScheduleError(
            f"{where} exactly one of day-of-month ({dom!r}) and day-of-week ({dow!r}) must "
            "be '?' (a value or '*' in one needs '?' in the other)"
        )
    return CronSchedule(
        expression=expression,
        minutes=tuple(sorted(_values(where, _MINUTES, minutes))),
        hours=tuple(sorted(_values(where, _HOURS, hours))),
        months=frozenset(_values(where, _MONTH, month)),
        years=tuple(sorted(_values(where, _YEAR, year))),
        day_matches=_day_of_month(where, dom) if dow == "?" else _day_of_week(where, dow),
    )


def _number(where: str, field: _Field, text: str) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names.index(upper) + field.low
    if not text.isdigit() or not field.low <= int(text) <= field.high:
        allowed = f"{field.low}-{field.high}"
        if field.names:
            allowed += f" or {field.names[0]}-{field.names[-1]}"
        raise InvalidScheduleError(f"{where} {field.name} {text!r} is not in {allowed}")
    return int(text)


def _values(where: str, field: _Field, text: str) -> set[int]:
    """The values of a field made of `*`, numbers, ranges, lists and steps."""
    found: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        if step_text and not field.steps:
            raise InvalidScheduleError(f"{where} {field.name} does not take '/' steps ({part!r})")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidScheduleError(
                    f"{where} {field.name} step {step_text!r} must be a whole number >= 1"
                )
            step = int(step_text)
        if base == "*":
            first, last = field.low, field.high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(where, field, a), _number(where, field, b)
            if first > last:
                raise InvalidScheduleError(
                    f"{where} {field.name} range {base!r} runs backwards; give it low-high"
                )
        else:
            first = _number(where, field, base)
            last = field.high if step_text else first
        found.update(range(first, last + 1, step))
    return found


def _day_of_month(where: str, text: str) -> Callable[[date], bool]:
    if text == "L":
        return lambda day: day.day == _month_length(day)
    if text == "LW":
        return lambda day: day == _last_weekday(day)
    if text.endswith("W"):
        target = _number(where, _DAY_OF_MONTH, text[:-1])
        return lambda day: day == _nearest_weekday(day, target)
    days = _values(where, _DAY_OF_MONTH, text)
    return lambda day: day.day in days


def _day_of_week(where: str, text: str) -> Callable[[date], bool]:
    if text == "L":
        return lambda day: _aws_weekday(day) == SATURDAY
    if "#" in text:
        weekday_text, _, nth_text = text.partition("#")
        weekday = _number(where, _DAY_OF_WEEK, weekday_text)
        if not nth_text.isdigit() or not 1 <= int(nth_text) <= MAX_NTH_WEEK:
            raise InvalidScheduleError(
                f"{where} day-of-week {text!r}: the week after '#' must be 1-5"
            )
        nth = int(nth_text)
        return lambda day: _aws_weekday(day) == weekday and (day.day - 1) // 7 + 1 == nth
    if len(text) > 1 and text.endswith("L"):
        weekday = _number(where, _DAY_OF_WEEK, text[:-1])
        return lambda day: _aws_weekday(day) == weekday and day.day + 7 > _month_length(day)
    days = _values(where, _DAY_OF_WEEK, text)
    return lambda day: _aws_weekday(day) in days


def _aws_weekday(day: date) -> int:
    """1 = Sunday .. 7 = Saturday."""
    return (day.weekday() + 1) % 7 + 1


def _month_length(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _nearest_weekday(day: date, target: int) -> date | None:
    """The weekday nearest `target` in `day`'s month, never crossing into another month."""
    length = _month_length(day)
    if target > length:
        return None
    wanted = day.replace(day=target)
    weekday = wanted.isoweekday()  # Monday 1 .. Sunday 7
    if weekday == _ISO_SATURDAY:  # Friday before, or Monday after on the 1st
        wanted = wanted - timedelta(days=1) if target > 1 else wanted + timedelta(days=2)
    elif weekday == _ISO_SUNDAY:  # Monday after, or Friday before on the last day
        wanted = wanted + timedelta(days=1) if target < length else wanted - timedelta(days=2)
    return wanted


def _last_weekday(day: date) -> date:
    last = day.replace(day=_month_length(day))
    while last.isoweekday() >= _ISO_SATURDAY:
        last -= timedelta(days=1)
    return last


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
