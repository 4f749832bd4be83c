"""民呼我应 figures, hotspots and responders as staff read them (the dashboard's 数据 / 热点 / 人员 pages),
always for the asking staff member's scope: community staff see their community, street staff their whole
street (the same rule as `Queries.community_figures`). Anyone else is refused (NotAllowed). Read-only;
the definitions live in tickets.metrics, tickets.trends, tickets.hotspots and tickets.roster."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import hotspots, metrics, report, rollup, roster, trends
from tickets.catalogue import Role
from tickets.core import ServiceCore
from tickets.errors import NotAllowed
from tickets.metrics import Breakdown, Dimension, LoopFigures, Period, Slice
from tickets.models import Community, Street

SIMILAR_WITHIN = timedelta(days=30)


@dataclass(frozen=True)
class Scope:
    """What a staff member may see: one community, or (community_id None) the whole street."""

    street_id: int
    community_id: int | None
    name: str  # 安居社区, or the street's name

    @property
    def slice(self) -> Slice:
        if self.community_id is None:
            return Slice(street_id=self.street_id)
        return Slice(community_id=self.community_id)

    @property
    def is_street(self) -> bool:
        return self.community_id is None


@dataclass(frozen=True)
class FiguresView:
    """Everything the figures page shows for one period and one breakdown."""

    scope: Scope
    period: Period
    span: trends.Span
    figures: LoopFigures
    breakdown: Breakdown
    series: list[trends.Point]
    first_response: trends.Distribution
    resolution: trends.Distribution


@dataclass(frozen=True)
class HotspotsView:
    scope: Scope
    span: trends.Span
    current: Period
    before: Period
    grids: list[hotspots.GridHotspots]
    groups: list[hotspots.SimilarGroup]


class Insights(ServiceCore):
    # The figures page reads the roll-up (tickets.rollup) where it can; False counts the tickets themselves
    # (the same figures, slower): for benchmarks/figures_speed.py's old-versus-new comparison.
    rollup_reads: bool = True

    async def _figures_scope(self, session: AsyncSession, staff_id: int) -> Scope:
        staff = await self._responder(session, staff_id)
        if not Role(staff.role).is_staff:
            raise NotAllowed("只有社区工作人员可以查看统计。")
        if staff.community_id is None:
            name = (await session.get_one(Street, staff.street_id)).name
        else:
            name = (await session.get_one(Community, staff.community_id)).name
        return Scope(staff.street_id, staff.community_id, name)

    async def fold_rollup(self) -> int:
        """The sweeper's housekeeping for the figures (not a staff read): moves the roll-up's deltas into
        its tables (tickets.rollup.fold) in a transaction of its own; how many delta rows it moved."""
        async with self._work() as session:
            return await rollup.fold(session)

    async def scope_of(self, staff_id: int) -> Scope:
        async with self.sessions() as session:
            return await self._figures_scope(session, staff_id)

    def _series_periods(self, period: Period, span: trends.Span, count: int) -> list[Period]:
        return trends.periods_ending(period, span, count, self.catalogue.timezone)

    async def figures_view(
        self,
        staff_id: int,
        period: Period,
        *,
        span: trends.Span = trends.Span.MONTH,
        group_by: Dimension = Dimension.COMMUNITY,
        history: int = 6,
        fast: bool | None = None,
    ) -> FiguresView:
        """The period's figures for the staff's scope, broken down by `group_by`; the series of the
        `history` weeks or months (`span`) ending with the one holding the period's start; the period's
        time distributions. With `fast` (`rollup_reads` unless given), read from the roll-up where it can serve
        (tickets.rollup: the same figures); `fast=False` counts the tickets themselves, for comparison."""
        now = self.clock.now()
        fast = self.rollup_reads if fast is None else fast
        async with self.sessions() as session:
            scope = await self._figures_scope(session, staff_id)
            where = scope.slice
            last = trends.period_containing(period.start, span, self.catalogue.timezone)
            periods = self._series_periods(last, span, history)
            if fast and rollup.usable([period], where, group_by):
                breakdown, first_response, resolution = await rollup.figures(
                    session, period, now=now, where=where, group_by=group_by, catalogue=self.catalogue
                )
            else:
                breakdown = await metrics.figures(
                    session, period, now=now, where=where, group_by=group_by, catalogue=self.catalogue
                )
                first_response = await trends.distribution(
                    session, period, trends.Measure.FIRST_RESPONSE, where=where
                )
                resolution = await trends.distribution(
                    session, period, trends.Measure.RESOLUTION, where=where
                )
            if fast and rollup.usable(periods, where) and trends._consecutive(periods):
                points = await rollup.series(session, periods, now=now, where=where)
            else:
                points = await trends.series(session, periods, now=now, where=where, catalogue=self.catalogue)
        return FiguresView(
            scope, period, span, breakdown.total, breakdown, points, first_response, resolution
        )

    async def figures_series(
        self, staff_id: int, periods: Sequence[Period], *, where: Slice | None = None
    ) -> list[trends.Point]:
        """The figures of each period for the staff's scope (`where` narrows it further, never widens)."""
        async with self.sessions() as session:
            scope = await self._figures_scope(session, staff_id)
            return await trends.series(
                session,
                periods,
                now=self.clock.now(),
                where=_narrowed(scope, where),
                catalogue=self.catalogue,
            )

    async def time_distribution(
        self, staff_id: int, period: Period, measure: trends.Measure
    ) -> trends.Distribution:
        async with self.sessions() as session:
            scope = await self._figures_scope(session, staff_id)
            return await trends.distribution(session, period, measure, where=scope.slice)

    async def scoped_report(self, staff_id: int, period: Period) -> report.MonthlyReport:
        """月调度 of the period for the staff's scope (what `minhu report` builds, cut to what they may see)."""
        async with self.sessions() as session:
            scope = await self._figures_scope(session, staff_id)
            return await report.build_monthly_report(
                session,
                period,
                now=self.clock.now(),
                catalogue=self.catalogue,
                street_id=scope.street_id,
                community_id=scope.community_id,
            )

    async def hotspots_view(
        self, staff_id: int, *, span: trends.Span = trends.Span.WEEK, top: int = 3
    ) -> HotspotsView:
        """This week's (or month's) top categories by grid against the previous one, and the groups of
        similar open requests of the last 30 days, for the staff's scope."""
        now = self.clock.now()
        tz = self.catalogue.timezone
        current = trends.period_containing(now, span, tz)
        before = trends.previous(current, span, tz)
        async with self.sessions() as session:
            scope = await self._figures_scope(session, staff_id)
            grids = await hotspots.top_categories(
                session, current, before, where=scope.slice, catalogue=self.catalogue, top=top
            )
            requests = await hotspots.open_requests(session, now - SIMILAR_WITHIN, where=scope.slice)
            names = await hotspots.grid_names(session, (r.grid_id for r in requests))
        # jieba and rapidfuzz are CPU work: off the event loop.
        groups = await asyncio.to_thread(
            hotspots.group_similar, requests, grid_names=names, catalogue=self.catalogue
        )
        return HotspotsView(scope, span, current, before, grids, groups)

    async def prepare_hotspots(self) -> None:
        """Load what grouping similar requests needs (jieba's dictionary) off the event loop, so that the
        first 热点 page does not wait for it."""
        await asyncio.to_thread(hotspots.warm_up)

    async def responders_view(self, staff_id: int, period: Period) -> tuple[Scope, list[roster.ResponderRow]]:
        async with self.sessions() as session:
            scope = await self._figures_scope(session, staff_id)
            rows = await roster.roster(
                session,
                period,
                now=self.clock.now(),
                street_id=scope.street_id,
                community_id=scope.community_id,
                catalogue=self.catalogue,
            )
            return scope, rows

    async def communities_of(self, staff_id: int) -> list[tuple[int, str]]:
        """(id, name) of the communities the staff member may see."""
        async with self.sessions() as session:
            scope = await self._figures_scope(session, staff_id)
            query = select(Community.id, Community.name).where(Community.street_id == scope.street_id)
            if scope.community_id is not None:
                query = query.where(Community.id == scope.community_id)
            return [(cid, name) for cid, name in await session.execute(query.order_by(Community.id))]


def _narrowed(scope: Scope, where: Slice | None) -> Slice:
    """The scope's slice with `where`'s other fields; a community outside the scope sees nothing."""
    base = scope.slice
    if where is None:
        return base
    community = where.community_id if scope.community_id is None else scope.community_id
    if scope.community_id is not None and where.community_id not in (None, scope.community_id):
        raise NotAllowed("只能查看本社区的统计。")
    return Slice(
        street_id=scope.street_id,
        community_id=community,
        grid_id=where.grid_id,
        category=where.category,
        assignee_id=where.assignee_id,
    )
