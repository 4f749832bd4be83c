"""民呼我应 accounting, fast (the loop's last step, what staff read on the figures page): the same figures
as tickets.metrics and tickets.trends, read from the roll-up (tickets.rollup_table) instead of counting the
period's tickets one by one, and with the percentiles computed by PostgreSQL. Same definitions, same
numbers: tests/test_rollup.py compares every figure with the plain computation over random tickets.

Counts
    The clock-free counts are sums over `ticket_rollup` rows of the period's Beijing days, plus the rows of
    `ticket_rollup_delta` the triggers appended since the last `fold` (in the same statement, so in one
    snapshot: a concurrent fold moves rows from one to the other atomically). The rest come
    from the unsettled tickets (open, or live and never accepted; a partial index holds them):
    response_due = accepted (roll-up) + never accepted but past its first promise at `now`;
    responded_in_time the same with responded_in_time; overdue_now counted outright.
    Periods whose ends are not Beijing midnights, or a slice by responder (the roll-up has no assignee:
    per day it would have nearly one row per ticket), are not served here: `usable` says so, and the
    caller takes the plain path.

Durations (PostgreSQL)
    One query per call: each group's and the total's count, sum and percentile_cont(0.5, 0.9) of the
    millisecond-rounded times (GROUP BY ROLLUP), and the time buckets of trends. percentile_cont is the
    same interpolation as metrics.percentile, on the same float values (ms / 1000), in the same order of
    operations; the mean is the exact sum's (metrics.exact_mean). On SQLite (no percentile function) the
    times are metrics' and trends' own queries.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import fields
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Subquery, Table, and_, case, cast, func, literal, select, text, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import metrics, trends
from tickets.catalogue import Catalogue
from tickets.metrics import TOTAL_LABEL, Breakdown, Counts, Dimension, Durations, LoopFigures, Period, Slice
from tickets.models import Community, Grid, Status, Street, Ticket
from tickets.rollup_table import (
    NO_GRID,
    ROLLUP_TIMEZONE,
    TICKET_ROLLUP_DELTA,
    UNSETTLED_TICKET_SQL,
    RollupCounts,
    TicketRollup,
    TicketRollupCommunity,
)

Key = int | str | None


def _table(where: Slice | None, group_by: Dimension | None) -> Subquery:
    """The per-community roll-up when neither the slice nor the grouping needs grid or category; with the
    deltas not yet folded (as rows of its own shape: their sums are the exact counts)."""
    by_place = group_by in (None, Dimension.STREET, Dimension.COMMUNITY)
    if by_place and (where is None or (where.grid_id is None and where.category is None)):
        return _with_deltas(TicketRollupCommunity)
    return _with_deltas(TicketRollup)


def _with_deltas(table: type[TicketRollup | TicketRollupCommunity]) -> Subquery:
    names = [column.name for column in table.__table__.columns]
    return union_all(
        select(*(table.__table__.c[n] for n in names)),
        select(*(TICKET_ROLLUP_DELTA.c[n] for n in names)),
    ).subquery(table.__tablename__)


_NAMES: dict[Dimension, Any] = {
    Dimension.STREET: Street,
    Dimension.COMMUNITY: Community,
    Dimension.GRID: Grid,
}
_PLAIN = [f.name for f in fields(Counts) if f.name not in ("by_status", "response_due", "responded_in_time")]
_PLAIN.remove("overdue_now")


def _day(moment: datetime) -> date | None:
    """The Beijing day starting at `moment`, or None when `moment` is not a Beijing midnight."""
    local = moment.astimezone(ZoneInfo(ROLLUP_TIMEZONE))
    return local.date() if local.time() == time(0) else None


def usable(periods: Sequence[Period], where: Slice | None, group_by: Dimension | None = None) -> bool:
    """Whether the roll-up can count these: every period made of whole Beijing days, no responder."""
    if group_by is Dimension.RESPONDER or (where is not None and where.assignee_id is not None):
        return False
    return all(_day(p.start) is not None and _day(p.end) is not None for p in periods)


def _rollup_slice(table: Subquery, where: Slice | None) -> list[Any]:
    if where is None:
        return []
    found = []
    for column, value in (
        ("street_id", where.street_id),
        ("community_id", where.community_id),
        ("grid_key", where.grid_id),
        ("category", where.category),
    ):
        if value is not None:
            found.append(table.c[column] == value)
    return found


def _which(column: Any, bounds: Sequence[Any]) -> Any:
    """The index of the period a value falls in (bounds: each period's end but the last, ascending)."""
    whens = [(column < bound, i) for i, bound in enumerate(bounds)]
    return case(*whens, else_=len(bounds)) if whens else literal(0)


async def counts(
    session: AsyncSession,
    periods: Sequence[Period],
    *,
    now: datetime,
    where: Slice | None,
    group_by: Dimension | None,
) -> dict[tuple[int, Key], Counts]:
    """Counts per (index of the period, group key) for back-to-back periods (`usable` ones)."""
    days = [_day(p.start) for p in periods] + [_day(periods[-1].end)]
    table = _table(where, group_by)
    which = _which(table.c.day, days[1:-1]).label("period")
    key = literal(None).label("key")
    if group_by is not None:
        column = {Dimension.GRID: "grid_key", Dimension.CATEGORY: "category"}.get(group_by, f"{group_by}_id")
        key = table.c[column].label("key")
    sums = [func.coalesce(func.sum(table.c[n]), 0).label(n) for n in _PLAIN]
    sums += [func.coalesce(func.sum(table.c[f"status_{s.value}"]), 0).label(f"s_{s.value}") for s in Status]
    sums += [func.coalesce(func.sum(table.c.accepted), 0).label("live_accepted")]
    sums += [func.coalesce(func.sum(table.c.accepted_in_time), 0).label("accepted_in_time")]
    query = (
        select(which, key, *sums)
        .where(table.c.day >= days[0], table.c.day < days[-1], *_rollup_slice(table, where))
        .group_by(which, key)
    )
    found: dict[tuple[int, Key], dict[str, Any]] = {}
    for row in await session.execute(query):
        values = row._mapping
        group: Key = row.key
        if group_by is Dimension.GRID and group == NO_GRID:
            group = None
        found[(int(row.period), group)] = {
            **{n: int(values[n]) for n in _PLAIN},
            "by_status": {s: int(values[f"s_{s.value}"]) for s in Status},
            "response_due": int(values["live_accepted"]),
            "responded_in_time": int(values["accepted_in_time"]),
            "overdue_now": 0,
        }
    # The clock's part, from the unsettled tickets only.
    live_unaccepted_late = and_(
        Ticket.status != Status.CANCELLED, Ticket.first_accepted_at.is_(None), Ticket.first_respond_by < now
    )
    ticket_key = (metrics._GROUP_KEYS[group_by] if group_by else literal(None)).label("key")
    ticket_which = _which(Ticket.created_at, [p.end for p in periods[:-1]]).label("period")
    query = (
        select(
            ticket_which,
            ticket_key,
            metrics._count(live_unaccepted_late).label("due"),
            metrics._count(and_(live_unaccepted_late, Ticket.responded_in_time.is_(True))).label("in_time"),
            metrics._count(Ticket.overdue_condition(now)).label("overdue"),
        )
        .where(
            text(f"({UNSETTLED_TICKET_SQL})"),  # the partial index's own predicate: the planner uses it
            Ticket.created_at >= periods[0].start,
            Ticket.created_at < periods[-1].end,
            *(where.conditions() if where else []),
        )
        .group_by(ticket_which, ticket_key)
    )
    for row in await session.execute(query):
        entry = found.setdefault((int(row.period), row.key), _zero())
        entry["response_due"] += int(row.due)
        entry["responded_in_time"] += int(row.in_time)
        entry["overdue_now"] += int(row.overdue)
    return {k: Counts(**v) for k, v in found.items() if v["total"]}


def _zero() -> dict[str, Any]:
    return {f.name: 0 for f in fields(Counts) if f.name != "by_status"} | {
        "by_status": dict.fromkeys(Status, 0)
    }


async def series(
    session: AsyncSession, periods: Sequence[Period], *, now: datetime, where: Slice | None = None
) -> list[trends.Point]:
    """trends.series (counts and rates, durations empty) of back-to-back `usable` periods."""
    found = await counts(session, periods, now=now, where=where, group_by=None)
    return [
        trends.Point(
            p, LoopFigures(None, TOTAL_LABEL, found.get((i, None), Counts()), Durations(), Durations())
        )
        for i, p in enumerate(periods)
    ]


# ------------------------------------------------------------------------------------------ folding

FOLD_LOCK = 0x4D48_0010  # pg_advisory_xact_lock key: one fold at a time (another one running: skip)


def cast_table(model: type[TicketRollup | TicketRollupCommunity]) -> Table:
    return model.__table__  # type: ignore[return-value]  # a declarative model's table is a Table


@functools.cache
def _fold_statements(dialect: str) -> tuple[str, ...]:
    """The deltas summed into each roll-up table (one upsert per key), and the deltas gone.

    PostgreSQL: one statement (DELETE … RETURNING feeding both upserts), so exactly the deltas it deletes
    are the ones it adds, whatever commits meanwhile. SQLite: one writer at a time, so the statements of one
    transaction see the same deltas."""
    counts = [name for name in RollupCounts.__annotations__]
    upserts = []
    source = "moved" if dialect == "postgresql" else "ticket_rollup_delta"
    for table in (TicketRollup, TicketRollupCommunity):
        name: str = table.__tablename__
        keys = ", ".join(c.name for c in cast_table(table).primary_key)
        target = f"{name}." if dialect == "postgresql" else ""
        upserts.append(
            f"INSERT INTO {name} ({keys}, {', '.join(counts)}) "
            f"SELECT {keys}, {', '.join(f'SUM({c})' for c in counts)} FROM {source} WHERE 1 = 1 "
            f"GROUP BY {keys} ORDER BY {keys} "  # the key order: concurrent writers lock rows alike
            f"ON CONFLICT ({keys}) DO UPDATE SET {', '.join(f'{c} = {target}{c} + excluded.{c}' for c in counts)}"
        )
    if dialect == "postgresql":
        return (
            "WITH moved AS (DELETE FROM ticket_rollup_delta RETURNING *), "
            f"grid AS ({upserts[0]}), community AS ({upserts[1]}) SELECT count(*) FROM moved",
        )
    return ("SELECT count(*) FROM ticket_rollup_delta", *upserts, "DELETE FROM ticket_rollup_delta")


async def fold(session: AsyncSession) -> int:
    """Moves the deltas the triggers appended into ticket_rollup and ticket_rollup_community, in the
    caller's transaction; how many delta rows it moved. The figures read the same before and after (readers
    sum both). On PostgreSQL a fold already running elsewhere makes this one return 0 at once."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        locked = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": FOLD_LOCK})
        if not locked:
            return 0
    first, *rest = _fold_statements(dialect)
    moved = int(await session.scalar(text(first)) or 0)
    for statement in rest:
        await session.execute(text(statement))
    return moved


# ------------------------------------------------------------------------------------------ durations


async def _times_pg(
    session: AsyncSession, period: Period, where: Slice | None, group_by: Dimension | None
) -> tuple[dict[Key, tuple[Durations, Durations]], tuple[Durations, Durations], list[tuple[int, ...]]]:
    """(each group's times, the total's, the two measures' bucket counts) in one query."""
    # Each ticket's two elapsed times computed once (OFFSET 0 keeps PostgreSQL from inlining the
    # subquery, which would evaluate EXTRACT, on numerics, again in every aggregate and bucket test).
    rows = (
        select(
            (metrics._GROUP_KEYS[group_by] if group_by else literal(None)).label("key"),
            metrics._seconds_between(
                Ticket.first_accepted_at, Ticket.first_dispatched_at, "postgresql"
            ).label("a"),
            metrics._seconds_between(Ticket.resolved_at, Ticket.created_at, "postgresql").label("r"),
        )
        .where(
            *metrics._in_slice(period, where),
            Ticket.status != Status.CANCELLED,
            (Ticket.first_accepted_at.is_not(None)) | (Ticket.resolved_at.is_not(None)),
        )
        .offset(0)
        .subquery()
    )
    key = rows.c.key
    columns: list[Any] = [key.label("key"), func.grouping(key).label("is_total")]
    for name in ("a", "r"):
        seconds = rows.c[name]
        rounded = func.round(seconds * 1000)  # metrics' rounding to the ms (round() on float8: half-even)
        columns += [
            func.count(rounded).label(f"{name}_n"),
            func.sum(rounded).label(f"{name}_sum"),
            # one sort for both percentiles; percentile_cont is metrics.percentile's interpolation, over
            # the same floats (ms / 1000)
            func.percentile_cont(postgresql.array([0.5, 0.9]))
            .within_group(rounded / cast(1000, Float))
            .label(name),
        ]
        # trends.distribution's buckets: of the raw seconds, over the tickets that have both ends
        bucket = trends._bucket_sql(seconds)
        columns += [
            metrics._count(and_(seconds.is_not(None), bucket == i)).label(f"{name}_b{i}")
            for i in range(len(trends.BUCKETS))
        ]
    query = select(*columns).group_by(func.rollup(key))
    # The sorts behind the percentiles (a month: ~40,000 rows, a few MB) in memory, not on disk.
    await session.execute(text("SET LOCAL work_mem = '32MB'"))

    def durations(row: Any, name: str) -> Durations:
        n = int(getattr(row, f"{name}_n"))
        if not n:
            return Durations()
        return Durations(
            count=n,
            mean=metrics.exact_mean(int(getattr(row, f"{name}_sum")) * 1000, n),
            median=timedelta(seconds=getattr(row, name)[0]),
            p90=timedelta(seconds=getattr(row, name)[1]),
        )

    groups: dict[Key, tuple[Durations, Durations]] = {}
    total = (Durations(), Durations())
    buckets = [(0,) * len(trends.BUCKETS)] * 2
    for row in await session.execute(query):
        measured = (durations(row, "a"), durations(row, "r"))
        if row.is_total:
            total = measured
            buckets = [
                tuple(int(getattr(row, f"{name}_b{i}")) for i in range(len(trends.BUCKETS))) for name in "ar"
            ]
        else:
            groups[row.key] = measured
    return groups, total, buckets


# ------------------------------------------------------------------------------------------- figures


async def _names(session: AsyncSession, group_by: Dimension, keys: set[Key]) -> dict[Key, str]:
    table = _NAMES.get(group_by)
    ids = [k for k in keys if isinstance(k, int)]
    if table is None or not ids:
        return {}
    return {k: n for k, n in await session.execute(select(table.id, table.name).where(table.id.in_(ids)))}


async def figures(
    session: AsyncSession,
    period: Period,
    *,
    now: datetime,
    where: Slice | None,
    group_by: Dimension,
    catalogue: Catalogue | None = None,
) -> tuple[Breakdown, trends.Distribution, trends.Distribution]:
    """metrics.figures(…, group_by=) and the period's two trends.distribution, for a `usable` period."""
    found = await counts(session, [period], now=now, where=where, group_by=group_by)
    names = await _names(session, group_by, {key for _, key in found})
    aggregates = [(key, names.get(key), c) for (_, key), c in found.items()]
    total_counts = sum((c for _, _, c in aggregates), Counts())
    if session.get_bind().dialect.name == "postgresql":
        groups, total_times, buckets = await _times_pg(session, period, where, group_by)
        first_response = trends.Distribution(trends.Measure.FIRST_RESPONSE, buckets[0])
        resolution = trends.Distribution(trends.Measure.RESOLUTION, buckets[1])
    else:  # SQLite: metrics' and trends' own reading of the times
        plain = await metrics.figures(
            session, period, now=now, where=where, group_by=group_by, catalogue=catalogue
        )
        groups = {r.key: (r.time_to_accept, r.time_to_resolve) for r in plain.rows}
        total_times = (plain.total.time_to_accept, plain.total.time_to_resolve)
        first_response = await trends.distribution(
            session, period, trends.Measure.FIRST_RESPONSE, where=where
        )
        resolution = await trends.distribution(session, period, trends.Measure.RESOLUTION, where=where)
    total = LoopFigures(None, TOTAL_LABEL, total_counts, *total_times)
    breakdown = metrics.breakdown_of(group_by, aggregates, groups, total, catalogue)
    return breakdown, first_response, resolution
