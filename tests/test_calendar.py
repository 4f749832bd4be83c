"""Deadlines run on office hours (08:30–17:30 Wuhan time) of Chinese working days, 调休 included."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from tickets.calendar import WorkCalendar
from tickets.catalogue import Catalogue, Duration
from tickets.errors import CalendarNotCovered

WUHAN = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def calendar() -> WorkCalendar:
    return WorkCalendar.for_catalogue(Catalogue.load())


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=WUHAN)


@pytest.mark.parametrize(
    ("start", "within", "due"),
    [
        (at(2026, 11, 23, 9, 0), "4h", at(2026, 11, 23, 13, 0)),  # inside one Monday
        (at(2026, 11, 20, 16, 30), "4h", at(2026, 11, 23, 11, 30)),  # Friday 1 h + Monday 3 h
        (at(2026, 11, 22, 22, 0), "2h", at(2026, 11, 23, 10, 30)),  # asked on Sunday night
        (at(2026, 11, 23, 7, 0), "1h", at(2026, 11, 23, 9, 30)),  # before the office opens
        (at(2026, 11, 23, 9, 0), "3d", at(2026, 11, 26, 9, 0)),  # three office days of 9 h
        (at(2026, 9, 30, 17, 0), "4h", at(2026, 10, 8, 12, 0)),  # 国庆 holidays skipped
        (at(2026, 10, 9, 17, 0), "2h", at(2026, 10, 10, 10, 0)),  # Saturday 10 Oct is a 调休 workday
    ],
)
def test_working_deadlines(calendar: WorkCalendar, start: datetime, within: str, due: datetime) -> None:
    assert calendar.deadline(start, Duration.parse(within)) == due


def test_urgent_runs_on_the_plain_clock(calendar: WorkCalendar) -> None:
    friday_night = at(2026, 11, 20, 22, 0)
    assert calendar.deadline(friday_night, Duration.parse("2h"), urgent=True) == at(2026, 11, 21, 0, 0)
    assert calendar.deadline(friday_night, Duration.parse("1d"), urgent=True) == at(2026, 11, 21, 22, 0)


def test_past_the_official_data_deadlines_use_the_statutory_holidays(calendar: WorkCalendar) -> None:
    # chinesecalendar 1.11 ends with 2026; 2027's Spring Festival (Feb 6-10 by rule) is still skipped.
    assert calendar.covered_until() == date(2026, 12, 31)
    assert calendar.deadline(at(2026, 12, 31, 17, 0), Duration.parse("4h")) == at(2027, 1, 4, 12, 0)
    assert not calendar.is_workday(date(2027, 2, 8))  # Monday of the Spring Festival
    assert calendar.is_workday(date(2027, 2, 11))


def test_a_year_no_holiday_data_covers_is_a_clear_error(calendar: WorkCalendar) -> None:
    with pytest.raises(CalendarNotCovered, match="2101"):
        calendar.deadline(at(2101, 1, 3, 9, 0), Duration.parse("4h"))


@pytest.mark.parametrize("bad", ["", "0h", "-3d", "3w", "h", "2.5h"])
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        Duration.parse(bad)


def test_the_calendar_knows_how_far_its_official_data_goes(calendar: WorkCalendar) -> None:
    last = calendar.covered_until()
    chinese_calendar.is_workday(last)  # official data up to here ...
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(last + timedelta(days=1))  # ... and no further
