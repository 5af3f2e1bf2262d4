"""Calendar.add skips plain weeks; it must land exactly where walking day by day lands."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.rules.clocks import _WEEKDAYS, Calendar


def walk_day_by_day(cal: Calendar, start: datetime, duration: timedelta) -> datetime:
    """The definition: consume working time one day at a time."""
    if cal.always:
        return start + duration
    zone = ZoneInfo(cal.timezone)
    cursor = start.astimezone(zone)
    days, rest = divmod(duration, timedelta(days=1))
    remaining = days * (datetime.combine(date.min, cal.end) - datetime.combine(date.min, cal.start)) + rest
    workdays = {_WEEKDAYS[d] for d in cal.days}
    while True:
        day = cursor.date()
        if day in cal.extra_workdays or (day.weekday() in workdays and day not in cal.holidays):
            open_at, close_at = datetime.combine(day, cal.start, zone), datetime.combine(day, cal.end, zone)
            begin = max(cursor, open_at)
            if begin < close_at:
                if remaining <= close_at - begin:
                    return (begin + remaining).astimezone(start.tzinfo)
                remaining -= close_at - begin
        cursor = datetime.combine(day + timedelta(days=1), time(0), zone)


DAY0 = date(2026, 9, 1)
days_near = st.integers(0, 400).map(lambda n: DAY0 + timedelta(days=n))


@st.composite
def calendars(draw):
    start = draw(st.integers(0, 22 * 60))
    end = draw(st.integers(start + 1, 24 * 60 - 1))
    return Calendar(
        timezone=draw(st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"])),
        days=tuple(draw(st.lists(st.sampled_from(list(_WEEKDAYS)), min_size=1, max_size=7, unique=True))),
        start=time(start // 60, start % 60),
        end=time(end // 60, end % 60),
        holidays=frozenset(draw(st.lists(days_near, max_size=25))),
        extra_workdays=frozenset(draw(st.lists(days_near, max_size=5))),
    )


@settings(max_examples=400, deadline=None)
@given(
    cal=calendars(),
    start=st.datetimes(min_value=datetime(2026, 9, 1), max_value=datetime(2027, 3, 1), timezones=st.just(UTC)),
    duration=st.builds(
        timedelta,
        days=st.integers(0, 120),
        hours=st.integers(0, 30),
        minutes=st.integers(0, 59),
        seconds=st.integers(0, 59),
    ),
)
def test_skipping_plain_weeks_lands_where_walking_day_by_day_lands(cal, start, duration):
    assert cal.add(start, duration) == walk_day_by_day(cal, start, duration)


def test_a_long_clock_across_a_holiday_week_counts_every_day():
    cal = Calendar(holidays=frozenset(date(2026, 10, 1) + timedelta(days=i) for i in range(7)))
    start = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, a Tuesday
    assert cal.add(start, timedelta(days=90)) == walk_day_by_day(cal, start, timedelta(days=90))
    assert cal.add(start, timedelta(days=90)) > Calendar().add(start, timedelta(days=90))


@settings(max_examples=400, deadline=None)
@given(
    cal=calendars(),
    day=days_near,
    at=st.sampled_from(["open", "close", "midnight", "before_open", "after_close"]),
    whole=st.integers(0, 130),
    extra=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(seconds=-1), timedelta(hours=1)]),
)
def test_clocks_that_start_or_end_at_an_opening_or_a_closing_land_where_walking_lands(cal, day, at, whole, extra):
    """The corners of counting from the opening: exact multiples of a working day (the clock runs
    out at a closing time), zero, and starts on the edges of the working hours."""
    zone = ZoneInfo(cal.timezone)
    wall = {
        "open": cal.start,
        "close": cal.end,
        "midnight": time(0),
        "before_open": (datetime.combine(day, cal.start) - timedelta(seconds=1)).time(),
        "after_close": (datetime.combine(day, cal.end) + timedelta(seconds=1)).time(),
    }[at]
    start = datetime.combine(day, wall, zone).astimezone(UTC)
    workday = datetime.combine(date.min, cal.end) - datetime.combine(date.min, cal.start)
    duration = max(timedelta(0), workday * whole + extra)  # hours and minutes: working time, as given
    assert cal.add(start, duration) == walk_day_by_day(cal, start, duration)
    days = timedelta(days=whole)  # whole days: one office day each
    assert cal.add(start, days) == walk_day_by_day(cal, start, days)
