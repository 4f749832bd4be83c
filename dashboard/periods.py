"""What the figures pages share: reading the period from the query string (a malformed one is a 400 page
with a Chinese message, through the domain's ValidationError), the choices the period form offers, and
how a figure reads on a page (66.7%, 1.5 小时, — when there is nothing to divide by)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from dashboard.errors import bad_input
from dashboard.keys import CLOCK, SERVICE
from tickets import trends
from tickets.metrics import Period
from tickets.trends import Span

NONE = "—"
CHOICES = 12  # weeks or months offered by the period form
MAX_PARAM = 40  # longer values are refused before any parsing
YEARS = range(2000, 2101)  # figures are kept for these years (and a chart's history reaches back from them)


@dataclass(frozen=True)
class Chosen:
    span: Span
    period: Period
    months: list[Period]  # newest first, for the form
    weeks: list[Period]


def param(request: web.Request, name: str, default: str = "") -> str:
    value = request.query.get(name, default)
    if len(value) > MAX_PARAM:
        raise bad_input(f"参数“{name}”太长了,请从页面上的选项中选择。")
    return value.strip()


def now_of(request: web.Request) -> datetime:
    return request.app[CLOCK].now()


def timezone_of(request: web.Request) -> str:
    return request.app[SERVICE].catalogue.timezone


def span_of(request: web.Request, default: Span = Span.MONTH) -> Span:
    value = param(request, "span", default.value)
    try:
        return Span(value)
    except ValueError:
        raise bad_input("统计周期只能是“按周”(week)或“按月”(month)。") from None


def chosen(request: web.Request, default_span: Span = Span.MONTH) -> Chosen:
    """?span=month&month=2026-11 or ?span=week&week=2026-W48; the current month or week by default."""
    tz = timezone_of(request)
    now = now_of(request)
    span = span_of(request, default_span)
    months = trends.periods_ending(trends.period_containing(now, Span.MONTH, tz), Span.MONTH, CHOICES, tz)
    weeks = trends.periods_ending(trends.period_containing(now, Span.WEEK, tz), Span.WEEK, CHOICES, tz)
    month_text, week_text = param(request, "month"), param(request, "week")
    if span is Span.MONTH:
        period = Period.parse_month(month_text, tz) if month_text else months[-1]
    else:
        period = trends.parse_week(week_text, tz) if week_text else weeks[-1]
    return Chosen(span, _within_years(period), months[::-1], weeks[::-1])


def _within_years(period: Period) -> Period:
    if period.start.year not in YEARS:
        raise bad_input(f"只能查看 {YEARS[0]} 年至 {YEARS[-1]} 年的数据。")
    return period


def month_of(request: web.Request) -> Period:
    """?month=2026-11, the current month by default."""
    tz = timezone_of(request)
    text = param(request, "month")
    if not text:
        return trends.period_containing(now_of(request), Span.MONTH, tz)
    return _within_years(Period.parse_month(text, tz))


# ------------------------------------------------------------------------------------------- formatting


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value:.1%}"


def pct_number(value: float | None) -> float | None:
    """A rate as a chart's number: 66.7 (percent, one decimal)."""
    return None if value is None else round(value * 100, 1)


def hours_number(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 3600, 2)


def duration(value: timedelta | None) -> str:
    """1.5 小时 under two days, 3.2 天 above."""
    if value is None:
        return NONE
    hours = value.total_seconds() / 3600
    return f"{hours:.1f} 小时" if hours < 48 else f"{hours / 24:.1f} 天"


def change(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


FORMATS = {"pct": pct, "duration": duration, "change": change, "NONE": NONE}
