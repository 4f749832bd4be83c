"""Deadlines on the Chinese working calendar: office hours on working days, with public holidays and
调休 make-up workdays from the maintained chinese-calendar package (no hand-typed dates).

The State Council publishes next year's 调休 in late autumn and chinese-calendar follows with a release;
until it has the year, the `holidays` package's China calendar (statutory holidays by rule, weekends,
no make-up workdays yet) gives provisional working days, so tickets keep their deadlines over New Year.
Only a year neither package knows is an error."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar
import structlog
from holidays import HolidayBase
from holidays.countries.china import China

from tickets.catalogue import Catalogue, Duration
from tickets.errors import CalendarNotCovered

log = structlog.get_logger()


@cache
def _provisional(year: int) -> HolidayBase:
    if not China.start_year <= year <= China.end_year:
        raise CalendarNotCovered(year=year)
    log.warning("provisional working days: chinesecalendar has no 调休 for this year yet", year=year)
    return China(years=year)  # type: ignore[no-untyped-call]  # its __init__ is not annotated


@cache
def _is_workday(day: date) -> bool:
    """Remembered per day: every deadline asks about several days, and the packages' data is fixed for
    the life of the process."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return bool(_provisional(day.year).is_working_day(day))


@cache
def _is_workday_cached(day: date) -> bool:
    return _is_workday(day)


@lru_cache(maxsize=65536)
def _workdays_strictly_between(first: date, last: date) -> int:
    """Working days after `first` and before `last` (pages ask for the same pairs: today and deadlines)."""
    count, day = 0, first + timedelta(days=1)
    while day < last:
        count += _is_workday_cached(day)
        day += timedelta(days=1)
    return count


class WorkCalendar:
    def __init__(self, timezone: str, office_start: time, office_end: time) -> None:
        self.tz = ZoneInfo(timezone)
        self.office_start = office_start
        self.office_end = office_end
        day = datetime.combine(date.min, office_end) - datetime.combine(date.min, office_start)
        self.office_day = day

    @classmethod
    def for_catalogue(cls, catalogue: Catalogue) -> WorkCalendar:
        return cls(catalogue.timezone, catalogue.office_start, catalogue.office_end)

    def is_workday(self, day: date) -> bool:
        return _is_workday(day)

    def deadline(self, start: datetime, within: Duration, *, urgent: bool = False) -> datetime:
        """When work started at `start` must be done. Urgent work runs on the plain clock."""
        if urgent:
            unit = {"m": timedelta(minutes=1), "h": timedelta(hours=1)}.get(within.unit, timedelta(days=1))
            return start + within.amount * unit
        if within.unit == "d":
            return self.add_working_time(start, within.amount * self.office_day)
        unit = timedelta(minutes=1) if within.unit == "m" else timedelta(hours=1)
        return self.add_working_time(start, within.amount * unit)

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        local = start.astimezone(self.tz)
        remaining = amount
        while True:
            day = local.date()
            opens = datetime.combine(day, self.office_start, self.tz)
            closes = datetime.combine(day, self.office_end, self.tz)
            if not self.is_workday(day) or local >= closes:
                local = datetime.combine(day + timedelta(days=1), self.office_start, self.tz)
                continue
            local = max(local, opens)
            if local + remaining <= closes:
                return (local + remaining).astimezone(UTC)
            remaining -= closes - local
            local = datetime.combine(day + timedelta(days=1), self.office_start, self.tz)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Office time on working days from `start` to `end` (negative when `end` is earlier): how much of
        the working calendar is left before a deadline, or how far past it a ticket is. The days between
        the two ends count whole (one lookup each, cached), so a ticket stuck for two years costs little."""
        if end < start:
            return -self.working_time_between(end, start)
        first, last = start.astimezone(self.tz), end.astimezone(self.tz)
        if first.date() == last.date():
            return self._office_time(first.date(), first, last)
        total = self._office_time(first.date(), first, None) + self._office_time(last.date(), None, last)
        return total + _workdays_strictly_between(first.date(), last.date()) * self.office_day

    def _office_time(self, day: date, after: datetime | None, before: datetime | None) -> timedelta:
        """The office hours of `day` between `after` and `before` (None: from opening / to closing)."""
        if not _is_workday_cached(day):
            return timedelta()
        opens = datetime.combine(day, self.office_start, self.tz)
        closes = datetime.combine(day, self.office_end, self.tz)
        lo = max(opens, after) if after else opens
        hi = min(closes, before) if before else closes
        return max(timedelta(), hi - lo)

    @staticmethod
    def covered_until() -> date:
        """The last day of the official 调休 data; past it working days are provisional."""
        year = date.today().year
        while True:
            try:
                chinese_calendar.is_workday(date(year + 1, 1, 1))
            except NotImplementedError:
                return date(year, 12, 31)
            year += 1
