"""民呼我应 accounting (the loop's last step, what staff read): the figures for a period and a slice.
Every definition lives here, once.

Period
    Tickets CREATED in [start, end): `start <= created_at < end`, both bounds timezone-aware. A month is
    a calendar month in Asia/Shanghai (`Period.month(2026, 11)` = 2026-11-01 00:00 to 2026-12-01 00:00
    Beijing time). A ticket belongs to the period it was created in, whatever happened to it later.

Slice
    `Slice` filters the period's tickets by street_id, community_id, grid_id, category and assignee_id
    (all given fields must match). `group_by` (a `Dimension`) splits the slice into one row per value of
    street, community, grid, category or responder, plus a total row over the whole slice. "Responder" is
    the ticket's CURRENT assignee (`assignee_id`): after a reassignment or an escalation the ticket's
    figures follow it to whoever holds it now. Tickets without a value (no grid, nobody assigned) form
    their own row. Labels are human: street/community/grid/responder names and the category's Chinese
    name from the catalogue.

Counts
    `total`: every ticket of the slice, cancelled included; `by_status`: tickets per current `Status`.
    Cancelled tickets (已撤销) count in `total` and `by_status` ONLY: every other figure below excludes them.

响应率 response rate = responded_in_time / response_due
    response_due: tickets whose response can be judged at `now`: accepted at least once, or past the
    respond-by promised at creation (`first_respond_by`). A ticket nobody could be dispatched to counts
    against the rate once its promise is broken; one still inside its window is not judged yet.
    responded_in_time: tickets whose first acceptance was at or before that first promise
    (`responded_in_time IS TRUE`, set once by the service on the first 接单; later re-dispatches that grant a
    new responder fresh time do not make a late response punctual).
    dispatched (shown, not a rate's denominator): tickets with `first_dispatched_at` set.

解决率 resolution rate = resolved / received
    received: every ticket of the slice that was not cancelled (the resident asked; a ticket that was
    never dispatched is still unresolved).
    resolved: tickets whose current status is resolved (已办结待评价) or closed (已结案). A ticket
    reopened by an unsatisfied resident is not resolved until it is resolved again.

满意率 satisfaction = (满意 + 基本满意) / rated
综合满意度 weighted satisfaction = (满意 + 0.9 × 基本满意) / rated
    rated: tickets with a rating (`rating IS NOT NULL`); the rating is the ticket's current one, i.e. the
    resident's latest answer (a reopened ticket keeps its 不满意 until it is rated again).

Durations (plain elapsed time, not working hours)
    time to accept = first_accepted_at − first_dispatched_at, over tickets that have both;
    time to resolve = resolved_at − created_at, over tickets with resolved_at (the latest resolution: a
    reopen clears resolved_at, so a reopened ticket counts again only once it is resolved again).
    For each: count, mean (the exact mean to the microsecond, half to even), median and p90. Percentiles use linear interpolation between closest ranks
    (the "inclusive" method: rank h = (n − 1) × q counted from 0, value = x[⌊h⌋] + (h − ⌊h⌋) ×
    (x[⌊h⌋+1] − x[⌊h⌋])), which is statistics.quantiles(method="inclusive"), numpy's default and
    PostgreSQL's percentile_cont. The median is q = 0.5 (the mean of the two middle values for even n).

超期 overdue now
    Open, unpaused tickets of the slice past their deadline at `now` (an argument, from the injected
    clock), by the ticket's own rule (`Ticket.is_overdue` / `Ticket.overdue_condition`): status created or
    dispatched with respond_by < now, or status accepted with resolve_by < now; tickets with `paused_at`
    set (waiting on the resident) are never overdue. Counted among the period's
    tickets only: a report on November does not count October's tickets that are still late.

重开率 reopen rate = reopened / resolved at least once
    reopened: tickets with reopen_count > 0; resolved at least once: resolved_at set, or reopen_count > 0
    (a reopen clears resolved_at), or status closed.

A rate whose denominator is 0 is None (shown as "—"), never 0 or 100 %.

Cost: two queries per call, both on the created_at index: one aggregate (counts by group, with the
group's label joined in) and one narrow select of the two durations (in seconds, subtracted by the
database, kept to the millisecond) of each ticket that was accepted or resolved, whose mean and
percentiles are computed in Python (SQLite has no percentile function). The figures page reads the same
figures faster from the roll-up (tickets.rollup); Period, Slice and Dimension live in tickets.slicing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, overload

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, null, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.catalogue import Catalogue
from tickets.models import Community, Grid, Rating, Responder, Status, Street, Ticket
from tickets.slicing import SHANGHAI as SHANGHAI
from tickets.slicing import Dimension as Dimension
from tickets.slicing import Period as Period
from tickets.slicing import Slice as Slice

BASIC_WEIGHT = 0.9  # 基本满意 counts for 0.9 of 满意 in the weighted satisfaction


# ------------------------------------------------------------------------------------------- figures


def ratio(numerator: float, denominator: int) -> float | None:
    """numerator / denominator, or None when there is nothing to divide by."""
    return numerator / denominator if denominator else None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (statistics.quantiles "inclusive", percentile_cont)."""
    if not sorted_values:
        return None
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be between 0 and 1")
    h = (len(sorted_values) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (h - low) * (sorted_values[high] - sorted_values[low])


MICROSECOND = timedelta(microseconds=1)


def exact_mean(total_microseconds: int, count: int) -> timedelta:
    """The mean to the microsecond, rounded half to even from the exact sum (not a float sum, whose last
    bit would depend on the order of the values: the database's sum and Python's must agree)."""
    return timedelta(microseconds=round(Fraction(total_microseconds, count)))


@dataclass(frozen=True)
class Durations:
    """count, mean, median and p90 of a set of elapsed times; None when there are none."""

    count: int = 0
    mean: timedelta | None = None
    median: timedelta | None = None
    p90: timedelta | None = None

    @classmethod
    def of(cls, values: Iterable[timedelta]) -> Durations:
        values = list(values)
        seconds = sorted(v.total_seconds() for v in values)
        if not seconds:
            return cls()

        def td(x: float | None) -> timedelta | None:
            return None if x is None else timedelta(seconds=x)

        return cls(
            count=len(seconds),
            mean=exact_mean(sum(v // MICROSECOND for v in values), len(seconds)),
            median=td(percentile(seconds, 0.5)),
            p90=td(percentile(seconds, 0.9)),
        )


@dataclass(frozen=True)
class Counts:
    """The countable facts about a set of tickets (see the module docstring for each one)."""

    total: int = 0
    by_status: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    received: int = 0
    dispatched: int = 0
    response_due: int = 0
    responded_in_time: int = 0
    resolved: int = 0
    rated: int = 0
    satisfied: int = 0
    basic: int = 0
    unsatisfied: int = 0
    overdue_now: int = 0
    reopened: int = 0
    ever_resolved: int = 0

    def __add__(self, other: Counts) -> Counts:
        values: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "by_status":
                values[f.name] = {s: self.by_status[s] + other.by_status[s] for s in Status}
            else:
                values[f.name] = getattr(self, f.name) + getattr(other, f.name)
        return Counts(**values)


@dataclass(frozen=True)
class LoopFigures:
    """The 民呼我应 figures of one group (or of the whole slice)."""

    key: int | str | None  # the group's id or category code; None for "no value" and for the total row
    label: str
    counts: Counts
    time_to_accept: Durations
    time_to_resolve: Durations

    @classmethod
    def empty(cls, key: int | str | None, label: str) -> LoopFigures:
        """A group without tickets: zero counts, rates None."""
        return cls(key, label, Counts(), Durations(), Durations())

    @property
    def total(self) -> int:
        return self.counts.total

    @property
    def response_rate(self) -> float | None:
        """响应率"""
        return ratio(self.counts.responded_in_time, self.counts.response_due)

    @property
    def resolution_rate(self) -> float | None:
        """解决率"""
        return ratio(self.counts.resolved, self.counts.received)

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率"""
        return ratio(self.counts.satisfied + self.counts.basic, self.counts.rated)

    @property
    def weighted_satisfaction(self) -> float | None:
        """综合满意度"""
        return ratio(self.counts.satisfied + BASIC_WEIGHT * self.counts.basic, self.counts.rated)

    @property
    def reopen_rate(self) -> float | None:
        """重开率"""
        return ratio(self.counts.reopened, self.counts.ever_resolved)

    @property
    def overdue_now(self) -> int:
        """超期"""
        return self.counts.overdue_now


TOTAL_LABEL = "合计"


@dataclass(frozen=True)
class Breakdown:
    """One row per value of the dimension, and the total over the whole slice."""

    dimension: Dimension
    rows: list[LoopFigures]
    total: LoopFigures


# ------------------------------------------------------------------------------------------ the queries

_DONE = (Status.RESOLVED, Status.CLOSED)


def _count(condition: ColumnElement[bool]) -> Any:
    """COUNT of the rows meeting the condition (portable: COUNT ignores the NULLs of a CASE without ELSE)."""
    return func.count(case((condition, 1)))


def _count_columns(now: datetime) -> dict[str, Any]:
    """The SQL behind each field of Counts; the definitions in the module docstring, as expressions."""
    live = Ticket.status != Status.CANCELLED
    dispatched = and_(live, Ticket.first_dispatched_at.is_not(None))
    columns: dict[str, Any] = {"total": func.count()}
    for status in Status:
        columns[f"status_{status.value}"] = _count(Ticket.status == status)
    due = and_(live, or_(Ticket.first_accepted_at.is_not(None), Ticket.first_respond_by < now))
    columns |= {
        "received": _count(live),
        "dispatched": _count(dispatched),
        "response_due": _count(due),
        "responded_in_time": _count(and_(due, Ticket.responded_in_time.is_(True))),
        "resolved": _count(and_(live, Ticket.status.in_(_DONE))),
        "rated": _count(and_(live, Ticket.rating.is_not(None))),
        "satisfied": _count(and_(live, Ticket.rating == Rating.SATISFIED)),
        "basic": _count(and_(live, Ticket.rating == Rating.BASIC)),
        "unsatisfied": _count(and_(live, Ticket.rating == Rating.UNSATISFIED)),
        "overdue_now": _count(Ticket.overdue_condition(now)),
        "reopened": _count(and_(live, Ticket.reopen_count > 0)),
        "ever_resolved": _count(
            and_(
                live,
                or_(Ticket.resolved_at.is_not(None), Ticket.reopen_count > 0, Ticket.status == Status.CLOSED),
            )
        ),
    }
    return columns


def _counts_from(row: Any) -> Counts:
    mapping = row._mapping
    by_status = {s: int(mapping[f"status_{s.value}"]) for s in Status}
    plain = {f.name: int(mapping[f.name]) for f in fields(Counts) if f.name != "by_status"}
    return Counts(by_status=by_status, **plain)


_GROUP_KEYS: dict[Dimension, Any] = {
    Dimension.STREET: Ticket.street_id,
    Dimension.COMMUNITY: Ticket.community_id,
    Dimension.GRID: Ticket.grid_id,
    Dimension.CATEGORY: Ticket.category,
    Dimension.RESPONDER: Ticket.assignee_id,
}
# The name of a group, joined into the aggregate query (outer joins: a ticket may have no grid or assignee).
_GROUP_NAMES: dict[Dimension, Any] = {
    Dimension.STREET: (Street, Street.id == Ticket.street_id, Street.name),
    Dimension.COMMUNITY: (Community, Community.id == Ticket.community_id, Community.name),
    Dimension.GRID: (Grid, Grid.id == Ticket.grid_id, Grid.name),
    Dimension.RESPONDER: (Responder, Responder.id == Ticket.assignee_id, Responder.name),
}


def _in_slice(period: Period, where: Slice | None) -> list[ColumnElement[bool]]:
    return [
        Ticket.created_at >= period.start,
        Ticket.created_at < period.end,
        *(where.conditions() if where else []),
    ]


async def _aggregate(
    session: AsyncSession, period: Period, now: datetime, where: Slice | None, group_by: Dimension | None
) -> list[tuple[int | str | None, str | None, Counts]]:
    """(key, name, counts) per group; one row with key None when not grouping."""
    columns = _count_columns(now)
    key = _GROUP_KEYS[group_by] if group_by else null()
    query = select(key.label("key"), *(c.label(name) for name, c in columns.items()))
    name: Any = null()
    if group_by in _GROUP_NAMES:
        table, on, name = _GROUP_NAMES[group_by]
        query = query.outerjoin(table, on).group_by(key, name)
    elif group_by:
        query = query.group_by(key)
    query = query.add_columns(name.label("name")).where(*_in_slice(period, where))
    rows = (await session.execute(query)).all()
    return [(row.key, row.name, _counts_from(row)) for row in rows]


def _seconds_between(later: Any, earlier: Any, dialect: str) -> Any:
    """later − earlier in seconds, computed by the database (far cheaper than fetching the timestamps)."""
    if dialect == "sqlite":  # UTC text timestamps; julianday is in days, precise to well under a ms
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return cast(func.extract("epoch", later - earlier), Float)


async def _durations(
    session: AsyncSession, period: Period, where: Slice | None, group_by: Dimension | None
) -> list[tuple[int | str | None, timedelta | None, timedelta | None]]:
    """(key, time to accept, time to resolve) of every live ticket that was accepted or resolved,
    to the millisecond (the same on every database)."""
    dialect = session.get_bind().dialect.name
    key = _GROUP_KEYS[group_by] if group_by else null()
    query = select(
        key.label("key"),
        _seconds_between(Ticket.first_accepted_at, Ticket.first_dispatched_at, dialect).label("accept"),
        _seconds_between(Ticket.resolved_at, Ticket.created_at, dialect).label("resolve"),
    ).where(
        *_in_slice(period, where),
        Ticket.status != Status.CANCELLED,
        or_(Ticket.first_accepted_at.is_not(None), Ticket.resolved_at.is_not(None)),
    )

    def elapsed(seconds: float | None) -> timedelta | None:
        return None if seconds is None else timedelta(milliseconds=round(seconds * 1000))

    return [(row.key, elapsed(row.accept), elapsed(row.resolve)) for row in await session.execute(query)]


def _figures(
    key: int | str | None,
    label: str,
    counts: Counts,
    durations: Sequence[tuple[int | str | None, timedelta | None, timedelta | None]],
) -> LoopFigures:
    return LoopFigures(
        key=key,
        label=label,
        counts=counts,
        time_to_accept=Durations.of(a for _, a, _ in durations if a is not None),
        time_to_resolve=Durations.of(r for _, _, r in durations if r is not None),
    )


@overload
async def figures(
    session: AsyncSession,
    period: Period,
    *,
    now: datetime,
    where: Slice | None = None,
    group_by: None = None,
    catalogue: Catalogue | None = None,
) -> LoopFigures: ...


@overload
async def figures(
    session: AsyncSession,
    period: Period,
    *,
    now: datetime,
    where: Slice | None = None,
    group_by: Dimension,
    catalogue: Catalogue | None = None,
) -> Breakdown: ...


async def figures(
    session: AsyncSession,
    period: Period,
    *,
    now: datetime,
    where: Slice | None = None,
    group_by: Dimension | None = None,
    catalogue: Catalogue | None = None,
) -> LoopFigures | Breakdown:
    """The figures of the period's tickets in the slice `where`: one LoopFigures, or with `group_by` a
    Breakdown (a row per value and the total). `now` decides what is overdue. `catalogue` names the
    categories (loaded from the package when not given)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    aggregates = await _aggregate(session, period, now, where, group_by)
    durations = await _durations(session, period, where, group_by)
    total_counts = sum((counts for _, _, counts in aggregates), Counts())
    total = _figures(None, TOTAL_LABEL, total_counts, durations)
    if group_by is None:
        return total
    by_key: dict[int | str | None, list[tuple[int | str | None, timedelta | None, timedelta | None]]]
    by_key = defaultdict(list)
    for item in durations:
        by_key[item[0]].append(item)
    times = {key: (_figures(key, "", Counts(), items)) for key, items in by_key.items()}
    return breakdown_of(
        group_by,
        aggregates,
        {key: (f.time_to_accept, f.time_to_resolve) for key, f in times.items()},
        total,
        catalogue,
    )


def breakdown_of(
    group_by: Dimension,
    aggregates: Sequence[tuple[int | str | None, str | None, Counts]],
    times: dict[int | str | None, tuple[Durations, Durations]],
    total: LoopFigures,
    catalogue: Catalogue | None,
) -> Breakdown:
    """The Breakdown of `aggregates` ((key, name, counts) per group) with each group's (time to accept,
    time to resolve): labels and the rows' order, the same whichever way the numbers were counted."""
    names = (catalogue or Catalogue.load()) if group_by is Dimension.CATEGORY else None
    order = list(names.categories) if names else []

    def label(key: int | str | None, name: str | None) -> str:
        if key is None:
            return group_by.none_label
        if names is not None:
            category = names.categories.get(str(key))
            return category.name if category else str(key)
        return name or str(key)

    def sort_key(item: tuple[int | str | None, str | None, Counts]) -> tuple[int, int, str]:
        key = item[0]
        if key is None:
            return (2, 0, "")
        if isinstance(key, int):
            return (0, key, "")
        return (0, order.index(key), "") if key in order else (1, 0, key)

    empty = (Durations(), Durations())
    rows = [
        LoopFigures(key, label(key, name), counts, *times.get(key, empty))
        for key, name, counts in sorted(aggregates, key=sort_key)
    ]
    return Breakdown(dimension=group_by, rows=rows, total=total)
