"""民呼我应 accounting over time: the figures of tickets.metrics as series by week and by month, and how the
first-response and resolution times are spread over working buckets. Every definition (rates, durations,
what a ticket's period is) stays in tickets.metrics; this module only cuts time into periods and counts.

Weeks
    ISO weeks, Monday 00:00 to the next Monday 00:00 in the catalogue's time zone (Asia/Shanghai), labelled
    "2026-W48". A ticket belongs to the week (or month) it was created in, as for `Period.month`.

Series
    `series(session, periods, …)`: the counts and rates of back-to-back periods in ONE query grouped by
    period (a CASE over created_at, metrics' own count expressions: the same definitions), durations
    left empty; with `durations=True`, one `metrics.figures` per period (two queries each, the second
    reading every accepted ticket of the period). At 1M tickets the one-query series of six months of a
    street reads ~250k index entries; the figures page reads the same series from the roll-up instead
    (tickets.rollup.series, ~550 rows).

Time buckets (plain elapsed time, like metrics' durations)
    <1小时, 1–4小时, 4–24小时, 1–3天, 3–7天, ≥7天: each bucket holds lo ≤ t < hi. The edges follow the
    promises staff work to: 4 hours is the usual respond-by for urgent categories, a day is the next
    working day, 3 days a long weekend, 7 days the usual resolve-by (5 working days) plus slack.
    First response = first_accepted_at − first_dispatched_at; resolution = resolved_at − created_at,
    over the same tickets metrics times (live tickets that have both ends). Counted by the database
    (one grouped query per measure), so the cost is one pass over the period's index range.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import metrics
from tickets.catalogue import Catalogue
from tickets.errors import ValidationError
from tickets.metrics import SHANGHAI, TOTAL_LABEL, Counts, Durations, LoopFigures, Period, Slice
from tickets.models import Status, Ticket


class Span(StrEnum):
    """How long a period of a chart is."""

    WEEK = "week"
    MONTH = "month"

    @property
    def label(self) -> str:
        return {"week": "按周", "month": "按月"}[self.value]


# ------------------------------------------------------------------------------------------------ weeks


def week(year: int, number: int, timezone: str = SHANGHAI) -> Period:
    """ISO week `number` of `year` in `timezone`: Monday 00:00 to the next Monday 00:00."""
    try:
        monday = date.fromisocalendar(year, number, 1)
    except ValueError:
        raise ValidationError(f"没有这一周:{year} 年第 {number} 周。") from None
    if not 1900 <= year <= 9998:
        raise ValidationError(f"没有这一周:{year} 年第 {number} 周。")
    tz = ZoneInfo(timezone)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=tz)
    end = start + timedelta(days=7)  # ZoneInfo: wall-clock arithmetic, right across DST where there is one
    return Period(start.astimezone(UTC), end.astimezone(UTC), f"{year:04d}-W{number:02d}")


def parse_week(text: str, timezone: str = SHANGHAI) -> Period:
    """'2026-W48' (or '2026-48') → that ISO week; anything else is a readable ValidationError."""
    match = re.fullmatch(r"\s*(\d{4})-W?(\d{1,2})\s*", text or "", flags=re.IGNORECASE)
    if not match:
        raise ValidationError(
            f"周“{(text or '')[:20]}”无效,请写成 YYYY-Www,例如 2026-W48 (week must be YYYY-Www)."
        )
    return week(int(match.group(1)), int(match.group(2)), timezone)


def period_containing(moment: datetime, span: Span, timezone: str = SHANGHAI) -> Period:
    """The week or month `moment` falls in, in `timezone`."""
    local = moment.astimezone(ZoneInfo(timezone))
    if span is Span.MONTH:
        return Period.month(local.year, local.month, timezone)
    year, number, _ = local.isocalendar()
    return week(year, number, timezone)


def previous(period: Period, span: Span, timezone: str = SHANGHAI) -> Period:
    """The week or month before `period` (which must itself be one, as made above)."""
    return period_containing(period.start - timedelta(seconds=1), span, timezone)


def periods_ending(last: Period, span: Span, count: int, timezone: str = SHANGHAI) -> list[Period]:
    """`count` consecutive weeks or months, oldest first, ending with `last`."""
    if count < 1:
        raise ValueError("count must be at least 1")
    found = [last]
    while len(found) < count:
        found.append(previous(found[-1], span, timezone))
    return found[::-1]


# ----------------------------------------------------------------------------------------------- series


@dataclass(frozen=True)
class Point:
    """The figures of one period of a series (without durations unless asked: see `series`)."""

    period: Period
    figures: LoopFigures


def _consecutive(periods: Sequence[Period]) -> bool:
    return all(a.end == b.start for a, b in itertools.pairwise(periods))


async def series(
    session: AsyncSession,
    periods: Sequence[Period],
    *,
    now: datetime,
    where: Slice | None = None,
    catalogue: Catalogue | None = None,
    durations: bool = False,
) -> list[Point]:
    """The figures of each period, in the order given. Counts and rates of consecutive periods come from
    one query grouped by period (metrics' own count expressions, so the same definitions); their
    durations are left empty unless `durations`, which costs one metrics.figures per period."""
    if durations or not _consecutive(periods):
        return [
            Point(p, await metrics.figures(session, p, now=now, where=where, catalogue=catalogue))
            for p in periods
        ]
    if not periods:
        return []
    # The index of the period a ticket's created_at falls in (periods ascending and back to back).
    whens = [(Ticket.created_at < p.end, i) for i, p in enumerate(periods[:-1])]
    index = (case(*whens, else_=len(periods) - 1) if whens else literal(0)).label("period")
    columns = metrics._count_columns(now)
    query = (
        select(index, *(c.label(name) for name, c in columns.items()))
        .where(
            Ticket.created_at >= periods[0].start,
            Ticket.created_at < periods[-1].end,
            *(where.conditions() if where else []),
        )
        .group_by(index)
    )
    found = {int(row.period): metrics._counts_from(row) for row in await session.execute(query)}
    return [
        Point(p, LoopFigures(None, TOTAL_LABEL, found.get(i, Counts()), Durations(), Durations()))
        for i, p in enumerate(periods)
    ]


# ---------------------------------------------------------------------------------------------- buckets


@dataclass(frozen=True)
class Bucket:
    label: str
    low: timedelta
    high: timedelta | None  # None: no upper edge


H = timedelta(hours=1)
D = timedelta(days=1)
BUCKETS: tuple[Bucket, ...] = (
    Bucket("<1小时", timedelta(0), H),
    Bucket("1–4小时", H, 4 * H),
    Bucket("4–24小时", 4 * H, D),
    Bucket("1–3天", D, 3 * D),
    Bucket("3–7天", 3 * D, 7 * D),
    Bucket("≥7天", 7 * D, None),
)


class Measure(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"

    @property
    def label(self) -> str:
        return {"first_response": "首次响应时长", "resolution": "办结时长"}[self.value]


@dataclass(frozen=True)
class Distribution:
    """How many tickets fall in each of BUCKETS, for one measure."""

    measure: Measure
    counts: tuple[int, ...]  # one per bucket, in BUCKETS' order

    @property
    def total(self) -> int:
        return sum(self.counts)

    def rows(self) -> list[tuple[str, int]]:
        return [(b.label, n) for b, n in zip(BUCKETS, self.counts, strict=True)]


def bucket_of(elapsed: timedelta) -> int:
    """The index in BUCKETS of an elapsed time (lo ≤ t < hi); negative times (clock skew) go in the first."""
    for i, bucket in enumerate(BUCKETS):
        if bucket.high is None or elapsed < bucket.high:
            return i
    raise AssertionError("the last bucket has no upper edge")


def _bucket_sql(seconds: Any) -> Any:
    """The bucket index of an elapsed time in seconds, as a CASE the database evaluates."""
    whens = [(seconds < b.high.total_seconds(), i) for i, b in enumerate(BUCKETS) if b.high is not None]
    return case(*whens, else_=literal(len(BUCKETS) - 1))


async def distribution(
    session: AsyncSession, period: Period, measure: Measure, *, where: Slice | None = None
) -> Distribution:
    """The period's live tickets of the slice counted by bucket of the measure."""
    dialect = session.get_bind().dialect.name
    if measure is Measure.FIRST_RESPONSE:
        later, earlier = Ticket.first_accepted_at, Ticket.first_dispatched_at
    else:
        later, earlier = Ticket.resolved_at, Ticket.created_at
    bucket = _bucket_sql(metrics._seconds_between(later, earlier, dialect)).label("bucket")
    query = (
        select(bucket, func.count().label("n"))
        .where(
            Ticket.created_at >= period.start,
            Ticket.created_at < period.end,
            *(where.conditions() if where else []),
            Ticket.status != Status.CANCELLED,
            later.is_not(None),
            earlier.is_not(None),
        )
        .group_by(bucket)
    )
    counts = [0] * len(BUCKETS)
    for row in await session.execute(query):
        counts[int(row.bucket)] += int(row.n)
    return Distribution(measure, tuple(counts))
