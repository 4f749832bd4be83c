"""The figures page's fast path (tickets.rollup, the roll-up table kept by triggers, migration 0008) gives
exactly the figures of the plain computation (tickets.metrics, tickets.trends) over random tickets, on
SQLite and PostgreSQL; and the roll-up always equals a recount of the tickets, whatever wrote them (the
ORM, bulk SQL updates, deletes), in both its tables. tests/test_properties.py checks the recount after every operation of its
random walks through the service (every transition, escalation, auto-close)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Org
from tickets import insights, metrics, rollup, trends
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.db import session_factory, unit_of_work
from tickets.metrics import Dimension, Period, Slice
from tickets.models import DispatchMode, Grid, Rating, Status, Ticket, TicketRollup, TicketRollupCommunity
from tickets.rollup_table import TICKET_ROLLUP_DELTA as DELTA
from tickets.service import NewTicket, TicketService

BEIJING = ZoneInfo("Asia/Shanghai")
COUNT_COLUMNS = [
    c.name for c in TicketRollup.__table__.columns if c.name not in TicketRollup.__table__.primary_key
]

# ------------------------------------------------------------------------------------ the recount


def _contribution(t: Ticket) -> dict[str, int]:
    """What one ticket adds to its roll-up row, by metrics' definitions written out in Python."""
    live = t.status != Status.CANCELLED
    accepted = live and t.first_accepted_at is not None
    found = {
        "total": True,
        **{f"status_{s.value}": t.status == s for s in Status},
        "received": live,
        "dispatched": live and t.first_dispatched_at is not None,
        "accepted": accepted,
        "accepted_in_time": accepted and t.responded_in_time is True,
        "resolved": live and t.status in (Status.RESOLVED, Status.CLOSED),
        "rated": live and t.rating is not None,
        "satisfied": live and t.rating == Rating.SATISFIED,
        "basic": live and t.rating == Rating.BASIC,
        "unsatisfied": live and t.rating == Rating.UNSATISFIED,
        "reopened": live and t.reopen_count > 0,
        "ever_resolved": live
        and (t.resolved_at is not None or t.reopen_count > 0 or t.status == Status.CLOSED),
    }
    return {k: int(v) for k, v in found.items()}


async def _rollup_rows(service: TicketService, keys: int) -> dict[tuple[Any, ...], dict[str, int]]:
    """The roll-up as readers see it: each key's row of the table (`keys` 5: ticket_rollup, 3:
    ticket_rollup_community) plus the deltas not yet folded, summed in Python; keys that count nothing
    left out (a key all of whose tickets moved away or went)."""
    table = TicketRollup if keys == 5 else TicketRollupCommunity
    names = [c.name for c in table.__table__.primary_key.columns]
    async with service.sessions() as session:
        rows = [*await session.execute(select(table.__table__)), *await session.execute(select(DELTA))]
    found: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        entry = found.setdefault(tuple(row._mapping[n] for n in names), dict.fromkeys(COUNT_COLUMNS, 0))
        for name in COUNT_COLUMNS:
            entry[name] += row._mapping[name]
    for key, counts in list(found.items()):
        if counts["total"] == 0:  # no ticket: all zero, never negative
            assert set(counts.values()) == {0}, f"roll-up row without tickets still counts: {counts}"
            del found[key]
    return found


async def assert_rollup_is_a_recount(service: TicketService) -> None:
    """ticket_rollup and ticket_rollup_community, with the deltas not yet folded, == the tickets recounted
    in Python."""
    async with service.sessions() as session:
        tickets = (await session.scalars(select(Ticket))).all()
    expected: dict[tuple[Any, ...], dict[str, int]] = {}
    for t in tickets:
        key = (
            t.created_at.astimezone(BEIJING).date(),
            t.street_id,
            t.community_id,
            t.grid_id or 0,
            t.category,
        )
        entry = expected.setdefault(key, dict.fromkeys(COUNT_COLUMNS, 0))
        for name, n in _contribution(t).items():
            entry[name] += n
    assert await _rollup_rows(service, 5) == expected
    # The per-community table: the same counts summed over grid and category.
    per_community: dict[tuple[Any, ...], dict[str, int]] = {}
    for key, counts in expected.items():
        entry = per_community.setdefault(key[:3], dict.fromkeys(COUNT_COLUMNS, 0))
        for name, n in counts.items():
            entry[name] += n
    assert await _rollup_rows(service, 3) == per_community


# -------------------------------------------------------------------------------- random tickets

START = datetime(2026, 9, 1, tzinfo=BEIJING)  # three months of tickets: September to November 2026


def _moment(rng: random.Random, after: datetime, within: timedelta) -> datetime:
    """A time after `after`, to the microsecond; now and then exactly on half a millisecond (the rounding
    tie metrics breaks half-to-even, as PostgreSQL must)."""
    moment = after + timedelta(microseconds=rng.randrange(int(within / timedelta(microseconds=1))))
    if rng.random() < 0.2:
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000 + 500)
    return moment


async def random_tickets(service: TicketService, org: Org, rng: random.Random, n: int) -> None:
    resident = await org.resident("rollup")
    categories = list(service.catalogue.categories)
    async with unit_of_work(service.sessions) as session:
        grids = [(g.id, g.community_id) for g in await session.scalars(select(Grid))]
        street_of = {c: s for c, s in await _communities(session)}
        responders = list(org.responders.values())
        for i in range(n):
            grid_id, community_id = rng.choice(grids)
            created = START + timedelta(seconds=rng.randrange(92 * 86400))
            if rng.random() < 0.1:  # right on a Beijing midnight: the day and month edges
                created = created.replace(hour=0, minute=0, second=0)
            status = rng.choice(list(Status))
            dispatched = _moment(rng, created, timedelta(hours=2)) if rng.random() < 0.85 else None
            accepted = (
                _moment(rng, dispatched, timedelta(days=rng.choice([0.01, 0.2, 2, 9])))
                if dispatched and status != Status.CREATED and rng.random() < 0.8
                else None
            )
            resolved = (
                _moment(rng, accepted or created, timedelta(days=rng.choice([0.05, 1, 5, 12])))
                if status in (Status.RESOLVED, Status.CLOSED) or rng.random() < 0.05
                else None
            )
            first_respond_by = created + timedelta(hours=rng.choice([4, 24, 48]))
            session.add(
                Ticket(
                    number=f"MH-R-{i:05d}",
                    resident_id=resident,
                    category=rng.choice(categories),
                    text="楼道灯坏了",
                    street_id=street_of[community_id],
                    community_id=community_id,
                    grid_id=grid_id if rng.random() < 0.9 else None,
                    channel="test",
                    status=status,
                    dispatch_mode=DispatchMode.DIRECT,
                    assignee_id=rng.choice(responders) if rng.random() < 0.8 else None,
                    created_at=created,
                    respond_by=first_respond_by + timedelta(hours=rng.choice([0, 4])),
                    resolve_by=created + timedelta(days=rng.choice([1, 5, 7])),
                    first_respond_by=first_respond_by,
                    paused_at=_moment(rng, created, timedelta(days=1)) if rng.random() < 0.1 else None,
                    first_dispatched_at=dispatched,
                    first_accepted_at=accepted,
                    responded_in_time=None if accepted is None else accepted <= first_respond_by,
                    resolved_at=resolved,
                    reopen_count=rng.choice([0, 0, 0, 1, 2]),
                    rating=rng.choice([None, *Rating])
                    if status in (Status.RESOLVED, Status.CLOSED)
                    else None,
                )
            )


async def _communities(session: Any) -> Sequence[tuple[int, int]]:
    from tickets.models import Community

    return (await session.execute(select(Community.id, Community.street_id))).all()  # type: ignore[no-any-return]


def _assert_same(fast: Any, plain: Any, what: str) -> None:
    assert fast == plain, f"{what}:\nroll-up {fast}\nplain   {plain}"


async def assert_fast_equals_plain(service: TicketService, rng: random.Random) -> None:
    async with service.sessions() as session:
        communities = [c for c, _ in await _communities(session)]
        grids = [g for g in await session.scalars(select(Grid.id))]
    months = [Period.month(2026, m) for m in (9, 10, 11)]
    weeks = trends.periods_ending(trends.week(2026, 48), trends.Span.WEEK, 6)
    slices = [
        None,
        Slice(street_id=1),
        Slice(community_id=rng.choice(communities)),
        Slice(grid_id=rng.choice(grids)),
        Slice(category=rng.choice(list(service.catalogue.categories))),
    ]
    nows = [
        datetime(2026, 11, 20, 12, tzinfo=UTC),
        datetime(2026, 12, 31, tzinfo=UTC),
        START + timedelta(days=40),
    ]
    async with service.sessions() as session:
        for where in slices:
            now = rng.choice(nows)
            for periods in (months, weeks, months[1:2]):
                assert rollup.usable(periods, where)
                fast = await rollup.series(session, periods, now=now, where=where)
                plain = await trends.series(session, periods, now=now, where=where)
                _assert_same(fast, plain, f"series {where} {periods[0].label}")
            for period in (*months, rng.choice(weeks)):
                for by in (Dimension.STREET, Dimension.COMMUNITY, Dimension.GRID, Dimension.CATEGORY):
                    breakdown, first, resolution = await rollup.figures(
                        session, period, now=now, where=where, group_by=by, catalogue=service.catalogue
                    )
                    plain_breakdown = await metrics.figures(
                        session, period, now=now, where=where, group_by=by, catalogue=service.catalogue
                    )
                    _assert_same(breakdown, plain_breakdown, f"{period.label} {where} by {by}")
                    for measure, got in (
                        (trends.Measure.FIRST_RESPONSE, first),
                        (trends.Measure.RESOLUTION, resolution),
                    ):
                        expected = await trends.distribution(session, period, measure, where=where)
                        _assert_same(got, expected, f"{measure} {period.label} {where}")


# ------------------------------------------------------------------------------------------ tests


async def test_the_roll_up_gives_the_plain_figures_over_random_tickets(
    service: TicketService, org: Org
) -> None:
    rng = random.Random(14)
    await random_tickets(service, org, rng, 400)
    # Nothing folded yet: every count is still in the deltas, and the figures are already right.
    async with service.sessions() as session:
        unfolded = await session.scalar(select(func.count()).select_from(DELTA))
    assert unfolded and unfolded >= 400
    await assert_rollup_is_a_recount(service)
    await assert_fast_equals_plain(service, rng)
    # Folded: the deltas are gone into the roll-up tables, the figures the same.
    assert await service.fold_rollup() == unfolded
    assert await service.fold_rollup() == 0
    await assert_rollup_is_a_recount(service)
    await assert_fast_equals_plain(service, rng)
    # Tickets change in bulk (a hand-run SQL fix, retention), move between grids and days, or go:
    # the triggers follow, and the figures stay equal.
    async with unit_of_work(service.sessions) as session:
        await session.execute(
            update(Ticket).where(Ticket.id % 7 == 0).values(status=Status.CLOSED, rating=Rating.BASIC)
        )
        await session.execute(
            update(Ticket).where(Ticket.id % 11 == 0).values(grid_id=None, category="property")
        )
        await session.execute(
            update(Ticket)
            .where(Ticket.id % 13 == 0)
            .values(created_at=datetime(2026, 10, 31, 16, tzinfo=UTC))
        )
        await session.execute(delete(Ticket).where(Ticket.id % 17 == 0))
    await assert_rollup_is_a_recount(service)
    await assert_fast_equals_plain(service, rng)
    assert await service.fold_rollup() > 0
    await assert_rollup_is_a_recount(service)
    await assert_fast_equals_plain(service, rng)


async def test_the_page_reads_the_same_figures_either_way(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    rng = random.Random(48)
    await random_tickets(service, org, rng, 200)
    clock.set(datetime(2026, 11, 25, 3, tzinfo=UTC))
    for staff in ("street-1", "staff-a", "staff-j"):
        for span, period in (
            (trends.Span.MONTH, Period.month(2026, 11)),
            (trends.Span.WEEK, trends.week(2026, 44)),
        ):
            for by in (Dimension.COMMUNITY, Dimension.GRID, Dimension.CATEGORY, Dimension.RESPONDER):
                fast = await service.figures_view(org[staff], period, span=span, group_by=by, fast=True)
                plain = await service.figures_view(org[staff], period, span=span, group_by=by, fast=False)
                _assert_same(fast, plain, f"{staff} {period.label} by {by}")


def test_the_roll_up_serves_whole_beijing_days_without_a_responder() -> None:
    november = Period.month(2026, 11)
    assert rollup.usable([november], Slice(street_id=1))
    assert rollup.usable([november], None, Dimension.GRID)
    assert not rollup.usable([november], Slice(assignee_id=3))
    assert not rollup.usable([november], None, Dimension.RESPONDER)
    assert not rollup.usable([Period.month(2026, 11, "UTC")], None)
    assert insights.Insights.rollup_reads is True
    assert date(2026, 11, 1) == november.start.astimezone(BEIJING).date()
    assert {f.name for f in fields(metrics.Counts)} >= {"response_due", "overdue_now"}


async def test_folding_while_tickets_are_created_counts_every_ticket_once(
    engine: AsyncEngine, service: TicketService, org: Org, clock: ManualClock, catalogue: Catalogue
) -> None:
    """Creators (each a service of its own: separate create transactions, as separate processes) and two
    folders at once, on PostgreSQL truly concurrent: no delta is lost or folded twice."""
    residents = [await org.resident(f"f{i}", community) for i, community in enumerate(("anju", "jinjiang"))]
    creators = [TicketService(session_factory(engine), clock=clock, catalogue=catalogue) for _ in range(4)]
    categories = list(catalogue.categories)
    done = asyncio.Event()
    folded: list[int] = []

    async def create(n: int, creator: TicketService) -> None:
        for i in range(25):
            resident = residents[(n + i) % len(residents)]
            await creator.create_ticket(
                NewTicket(resident, categories[i % len(categories)], f"楼道灯坏了{n}-{i}")
            )

    async def fold() -> None:
        while not done.is_set():
            folded.append(await service.fold_rollup())
            await asyncio.sleep(0)

    async def creating() -> None:
        await asyncio.gather(*(create(n, c) for n, c in enumerate(creators)))
        done.set()

    await asyncio.gather(creating(), fold(), fold())
    await assert_rollup_is_a_recount(service)
    folded.append(await service.fold_rollup())
    async with service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DELTA)) == 0
        assert await session.scalar(select(func.sum(TicketRollup.total))) == 100
    assert sum(folded) == 100  # one delta a created ticket, each folded exactly once
    await assert_rollup_is_a_recount(service)
