"""Schedule expressions: what AWS accepts, when each fires, and the errors for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulumi_eventcraft.schedule import (
    CronSchedule,
    InvalidScheduleError,
    RateSchedule,
    parse_schedule,
)

FRIDAY_EVENING = datetime(2026, 11, 27, 17, 50, tzinfo=UTC)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_a_rate_counts_from_the_rules_creation() -> None:
    schedule = parse_schedule("rate(5 minutes)")
    assert isinstance(schedule, RateSchedule)
    assert schedule.period == timedelta(minutes=5)
    created = at(2026, 11, 27, 10, 0, 30)
    assert schedule.next_after(created, anchor=created) == at(2026, 11, 27, 10, 5, 30)
    later = at(2026, 11, 27, 10, 12)
    assert schedule.next_after(later, anchor=created) == at(2026, 11, 27, 10, 15, 30)
    assert parse_schedule("rate(1 day)").period == timedelta(days=1)  # type: ignore[union-attr]
    assert parse_schedule("rate(2 hours)").period == timedelta(hours=2)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # every 15 minutes in office hours on weekdays: Friday 17:50 -> Monday 08:00
        ("cron(0/15 8-17 ? * MON-FRI *)", at(2026, 11, 30, 8, 0)),
        ("cron(0 12 * * ? *)", at(2026, 11, 28, 12, 0)),
        ("cron(55 17 * * ? *)", at(2026, 11, 27, 17, 55)),
        ("cron(0 10 L * ? *)", at(2026, 11, 30, 10, 0)),  # the last day of the month
        ("cron(0 9 LW * ? *)", at(2026, 11, 30, 9, 0)),  # the last weekday
        ("cron(0 9 15W * ? *)", at(2026, 12, 15, 9, 0)),  # the weekday nearest the 15th
        ("cron(0 9 ? * 6L *)", at(2026, 12, 25, 9, 0)),  # the last Friday (6 = FRI)
        ("cron(0 9 ? * 2#1 *)", at(2026, 12, 7, 9, 0)),  # the first Monday
        ("cron(0 9 ? * L *)", at(2026, 11, 28, 9, 0)),  # Saturday
        ("cron(0 0 1 JAN,JUL ? 2027-2030/2)", at(2027, 1, 1, 0, 0)),
        ("cron(0 0 1 1 ? 2025)", None),  # its years are over
    ],
)
def test_a_cron_fires_at_the_next_matching_utc_minute(
    expression: str, expected: datetime | None
) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(FRIDAY_EVENING) == expected


def test_the_weekday_nearest_a_day_stays_in_its_month() -> None:
    # August 2027 starts on a Sunday: 1W is Monday the 2nd, not Friday 30 July.
    first_weekday = parse_schedule("cron(30 0 1W * ? *)")
    assert first_weekday.next_after(at(2027, 7, 31, 12, 0)) == at(2027, 8, 2, 0, 30)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", r"with the value 1 the unit is 'minute'"),
        ("rate(5 minute)", r"with the value 5 the unit is 'minutes'"),
        ("rate(0 minutes)", r"the rate's value must be a whole number >= 1"),
        ("rate(2 weeks)", r"the unit must be minute\(s\), hour\(s\) or day\(s\), got 'weeks'"),
        ("every 5 minutes", r"is not a schedule expression: use rate\(<value> <unit>\)"),
        ("cron(0 12 * * *)", r"a cron expression has 6 fields .*, got 5"),
        ("cron(0 12 * * * *)", r"exactly one of day-of-month \('\*'\) and day-of-week \('\*'\)"),
        ("cron(0 12 ? * ? *)", r"exactly one of day-of-month"),
        ("cron(60 12 * * ? *)", r"minutes '60' is not in 0-59"),
        ("cron(0 12 * FOO ? *)", r"month 'FOO' is not in 1-12 or JAN-DEC"),
        ("cron(0 17-8 * * ? *)", r"hours range '17-8' runs backwards"),
        ("cron(0 12 ? * MON/2 *)", r"day-of-week does not take '/' steps"),
        ("cron(0 12 ? * 2#6 *)", r"the week after '#' must be 1-5"),
        ("cron(0 12 * * ? 1969)", r"year '1969' is not in 1970-2199"),
    ],
)
def test_what_eventbridge_refuses_is_refused_with_the_reason(expression: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=message):
        parse_schedule(expression)
