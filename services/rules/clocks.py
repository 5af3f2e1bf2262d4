"""Durations, working-hours calendars and the due times of a referral's stages.

Stage clocks are measured from the moment of routing, like the response
clocks of a risk rating (red 2 h, amber 6 h, green 24 h): a referral is due
``received`` within one duration, ``decided`` (accepted or declined) within a
longer one, ``completed`` within the longest. Non-critical clocks may run in
working hours only; critical ones always run around the clock.
"""

from __future__ import annotations

import bisect
import re
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> timedelta:
    """``"1d2h30m"``, ``"15m"``, ``"90s"`` (or a timedelta / number of seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str) or not value or not (m := _DURATION.match(value.strip())):
        raise ValueError(f"{value!r} is not a duration like '15m', '2h', '1d12h' or '90s'")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts) or "0s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class Calendar(BaseModel):
    """Working hours in a time zone; clocks that follow it stop outside them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Shanghai"
    always: bool = Field(False, description="Runs 24/7 (the other fields are ignored).")
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(8, 30)
    end: time = time(17, 30)
    holidays: frozenset[date] = frozenset()
    # Weekend days declared working days (调休), which the plan's offices observe.
    extra_workdays: frozenset[date] = frozenset()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in value if d not in _WEEKDAYS]
        if bad:
            raise ValueError(f"unknown day names {bad}; use {list(_WEEKDAYS)}")
        return value

    @model_validator(mode="after")
    def _hours_make_sense(self) -> Calendar:
        if not self.always and self.start >= self.end:
            raise ValueError("start must be before end")
        if not self.always and not self.days:
            raise ValueError("a calendar needs at least one working day (or always = true)")
        return self

    # Derived once per calendar: add() runs for every stage of every referral. add() and
    # _is_workday() read them from pydantic's store of private attributes directly: ``self._zone``
    # goes through BaseModel.__getattr__ each time, and those lookups were ~6% of encode_report on
    # reports received at distinct times (tight loop, 600 reports).
    _zone: ZoneInfo = PrivateAttr()
    _weekdays: frozenset[int] = PrivateAttr()
    _special_days: list[date] = PrivateAttr()  # holidays and extra workdays, sorted
    _workday: timedelta = PrivateAttr()  # working time of one office day

    def model_post_init(self, _context: object) -> None:
        self._zone = ZoneInfo(self.timezone)
        self._weekdays = frozenset(_WEEKDAYS[d] for d in self.days)
        self._special_days = sorted(self.holidays | self.extra_workdays)
        self._workday = datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)

    def _is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        return day.weekday() in self.__pydantic_private__["_weekdays"] and day not in self.holidays

    def _plain_weeks_from(self, day: date, most: int) -> int:
        """How many whole weeks from ``day`` (at most ``most``) hold no holiday or extra
        workday, and so exactly the regular working time of a week."""
        at = bisect.bisect_left(self._special_days, day)
        if at == len(self._special_days):
            return most
        return min(most, (self._special_days[at] - day).days // 7)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when ``duration`` of working time has passed since ``start``.

        A whole day of the duration counts as one full working day ("1d" =
        start to end of one office day); hours and minutes count working time.
        Every office day holds the same working time, so the clock is counted
        from the opening of the day it starts on (plus what had passed of that
        day): the day it runs out on is the n-th workday after, found once per
        (calendar, day, n) and remembered (``_workday_after``), and a report's
        clocks cost a few date operations instead of a walk over the days
        (~8 us per 60-day clock; a unit test holds it to walking day by day).
        """
        if self.always:
            return start + duration
        private = self.__pydantic_private__
        zone, workday = private["_zone"], private["_workday"]
        cursor = start.astimezone(zone)
        days, rest = divmod(duration, timedelta(days=1))
        remaining = days * workday + rest
        day = cursor.date()
        if self._is_workday(day) and cursor < datetime.combine(day, self.end, zone):
            opened = datetime.combine(day, self.start, zone)
            if cursor > opened:
                remaining += cursor - opened  # wall-clock time, as the day's hours are
        else:
            day = _workday_after(self, day, 1)
        if not remaining:
            return max(cursor, datetime.combine(day, self.start, zone)).astimezone(start.tzinfo)
        whole, part = divmod(remaining, workday)
        if not part:  # runs out exactly at a closing time: that day's, not the next opening
            whole, part = whole - 1, workday
        return (datetime.combine(_workday_after(self, day, whole), self.start, zone) + part).astimezone(start.tzinfo)

    def workday_after(self, day: date, n: int) -> date:
        """The ``n``-th workday after ``day`` (``day`` itself for 0)."""
        if n == 0:
            return day
        for _ in range(3660):  # ten years of days: a bound, never reached in practice
            day += timedelta(days=1)
            if n > len(self._weekdays):
                # A week without holidays or extra workdays holds each working weekday once.
                weeks = self._plain_weeks_from(day, (n - 1) // len(self._weekdays))
                if weeks:
                    day += timedelta(days=7 * weeks - 1)
                    n -= weeks * len(self._weekdays)
                    continue
            if self._is_workday(day):
                n -= 1
                if n == 0:
                    return day
        raise ValueError("calendar has no working time within ten years")


@lru_cache(maxsize=8192)
def _workday_after(calendar: Calendar, day: date, n: int) -> date:
    # Keyed by day and count: the reports of one day ask for the same few days again and again.
    return calendar.workday_after(day, n)


ALWAYS = Calendar(always=True)


class StageClocks(BaseModel):
    """How long after routing each stage is due."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    received: Duration
    decided: Duration
    completed: Duration

    @model_validator(mode="after")
    def _ordered(self) -> StageClocks:
        if not (timedelta(0) < self.received <= self.decided <= self.completed):
            raise ValueError("clocks must satisfy 0 < received <= decided <= completed")
        return self


@lru_cache(maxsize=4096)
def _cached_add(calendar: Calendar, start: datetime, duration: timedelta) -> datetime:
    return calendar.add(start, duration)


def due_times(start: datetime, clocks: StageClocks, calendar: Calendar) -> dict[str, datetime]:
    return {
        "received": _cached_add(calendar, start, clocks.received),
        "decided": _cached_add(calendar, start, clocks.decided),
        "completed": _cached_add(calendar, start, clocks.completed),
    }
