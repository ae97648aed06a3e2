"""Night-time in Asia/Shanghai: nights, and OSM opening_hours with China's holiday calendar.

* A **night** runs from 12:00 to 12:00 the next day, Asia/Shanghai, and is named
  by its first date: a visit at 01:00 on the 3rd belongs to the night of the 2nd.
* Opening hours use the OSM ``opening_hours`` syntax, parsed and evaluated by
  opening-hours-py. Intervals past midnight (``19:00-01:30``) are normal.
* ``PH`` (public holiday) follows China's official calendar from the ``holidays``
  package: statutory holidays plus the days off moved there by make-up working
  days (调休). A make-up working day (a Saturday or Sunday worked) is never
  ``PH``; weekday selectors such as ``Sa`` always mean the calendar weekday.
  opening-hours-py ships its own, older holiday table, so we never give it a
  country: instead every ``PH`` token is replaced by the weekdays that are
  holidays in a window of at most six consecutive dates, where weekdays are
  unique, and the expression is evaluated window by window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from opening_hours import OpeningHours, ParserError, State

TZ = ZoneInfo("Asia/Shanghai")
NIGHT_STARTS = time(12, 0)
# Sun events (dusk, sunset) need a place; the old town's centre is close enough for every venue.
SUZHOU = (31.31, 120.62)
WEEKDAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
_WINDOW_DAYS = 5  # plus the day before for spill-over: six dates, six distinct weekdays
_PH = re.compile(r"\bPH\b")
_UNSUPPORTED = (
    (re.compile(r"\bSH\b"), "school holidays (SH) are not supported"),
    (re.compile(r"\bPH\s*[+-]"), "offsets from public holidays (PH +1 day) are not supported"),
)


class InvalidSchedule(ValueError):
    """The opening_hours expression cannot be parsed or uses unsupported syntax."""


def night_of(moment: datetime) -> date:
    """The night a moment belongs to (noon-to-noon, Asia/Shanghai)."""
    local = moment.astimezone(TZ)
    return local.date() if local.time() >= NIGHT_STARTS else local.date() - timedelta(days=1)


def night_bounds(night: date) -> tuple[datetime, datetime]:
    start = datetime.combine(night, NIGHT_STARTS, TZ)
    return start, start + timedelta(days=1)


@lru_cache(maxsize=64)
def _china_days_off(year: int) -> frozenset[date]:
    return frozenset(holidays.China(years=year).keys())


def is_public_holiday(day: date) -> bool:
    return day in _china_days_off(day.year)


@lru_cache(maxsize=8192)
def _compile(expression: str) -> OpeningHours:
    return OpeningHours(expression, timezone=TZ, coords=SUZHOU, auto_country=False)


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime
    open: bool | None  # None: the expression says "unknown"


_STATE = {State.OPEN: True, State.CLOSED: False, State.UNKNOWN: None}


class Schedule:
    """An opening_hours expression evaluated in Asia/Shanghai with China's holidays."""

    __slots__ = ("_uses_ph", "expression")

    def __init__(self, expression: str) -> None:
        expression = expression.strip()
        if not expression:
            raise InvalidSchedule("opening_hours is empty")
        if len(expression) > 1000:
            raise InvalidSchedule("opening_hours is longer than 1000 characters")
        for pattern, reason in _UNSUPPORTED:
            if pattern.search(expression):
                raise InvalidSchedule(reason)
        try:
            _compile(expression)
        except (ParserError, SyntaxError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
            raise InvalidSchedule(f"not valid OSM opening_hours syntax: {first_line}") from None
        self.expression = expression
        self._uses_ph = bool(_PH.search(expression))

    def __repr__(self) -> str:
        return f"Schedule({self.expression!r})"

    def _for_window(self, first_day: date) -> OpeningHours:
        if not self._uses_ph:
            return _compile(self.expression)
        days = (first_day + timedelta(days=i) for i in range(-1, _WINDOW_DAYS))
        holiday_weekdays = sorted({d.weekday() for d in days if is_public_holiday(d)})
        if not holiday_weekdays:
            return _compile(self.expression)  # without a country, PH never matches
        replacement = ",".join(WEEKDAYS[i] for i in holiday_weekdays)
        return _compile(_PH.sub(replacement, self.expression))

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Open/closed/unknown intervals covering [start, end), adjacent equal states merged."""
        start, end = start.astimezone(TZ), end.astimezone(TZ)
        out: list[Interval] = []
        day = start.date()
        while True:
            window_start = max(start, datetime.combine(day, time(0), TZ))
            window_end = min(end, datetime.combine(day + timedelta(days=_WINDOW_DAYS), time(0), TZ))
            if window_start >= window_end:
                break
            for s, e, state, _comment in self._for_window(day).intervals(window_start, window_end):
                s, e = max(s, window_start), min(e or window_end, window_end)
                if s >= e:
                    continue
                value = _STATE[state]
                if out and out[-1].open is value and out[-1].end == s:
                    out[-1] = Interval(out[-1].start, e, value)
                else:
                    out.append(Interval(s, e, value))
            day += timedelta(days=_WINDOW_DAYS)
        return out

    def state(self, moment: datetime) -> bool | None:
        moment = moment.astimezone(TZ)
        return _STATE[self._for_window(moment.date()).state(moment)[0]]

    def is_open(self, moment: datetime) -> bool:
        return self.state(moment) is True

    def next_change(self, moment: datetime, horizon: timedelta = timedelta(days=14)) -> datetime | None:
        """When the state at ``moment`` next changes, or None if not within the horizon."""
        spans = self.intervals(moment, moment + horizon)
        if not spans or spans[0].end >= moment + horizon:
            return None
        return spans[0].end

    def open_intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        return [(i.start, i.end) for i in self.intervals(start, end) if i.open]


@lru_cache(maxsize=8192)
def parse_schedule(expression: str) -> Schedule:
    """Cached constructor: the same expression is shared by many rows and requests."""
    return Schedule(expression)
