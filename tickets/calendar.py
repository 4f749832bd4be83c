"""Deadlines on the Chinese working calendar: office hours on working days, with public holidays and
调休 make-up workdays from the maintained chinese-calendar package (no hand-typed dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

from tickets.catalogue import Catalogue, Duration
from tickets.errors import CalendarNotCovered


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
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            raise CalendarNotCovered(year=day.year) from None

    def deadline(self, start: datetime, within: Duration, *, urgent: bool = False) -> datetime:
        """When work started at `start` must be done. Urgent work runs on the plain clock."""
        if urgent:
            unit = timedelta(hours=1) if within.unit == "h" else timedelta(days=1)
            return start + within.amount * unit
        working = timedelta(hours=within.amount) if within.unit == "h" else within.amount * self.office_day
        return self.add_working_time(start, working)

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

    def covered_until(self) -> date:
        """The last day the holiday data knows: deadlines past it raise CalendarNotCovered."""
        year = date.today().year
        while True:
            try:
                self.is_workday(date(year + 1, 1, 1))
            except CalendarNotCovered:
                return date(year, 12, 31)
            year += 1
