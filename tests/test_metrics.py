"""民呼我应 figures on hand-computed fixtures: tickets go through the real service with the clock moved
between steps, so every duration is known; the expected figures are worked out in the comments."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import MONDAY_9AM, SHANGHAI, Org
from tickets.clock import ManualClock
from tickets.errors import ValidationError
from tickets.metrics import (
    Breakdown,
    Dimension,
    Durations,
    LoopFigures,
    Period,
    Slice,
    figures,
    percentile,
)
from tickets.models import Community, Rating, Status
from tickets.service import NewTicket, TicketService

H = timedelta(hours=1)
# A period that holds every ticket the scenarios create (all on Monday 23 November 2026).
NOVEMBER = Period.month(2026, 11)


def at(hour: int, minute: int = 0) -> datetime:
    """Monday 23 November 2026 at hh:mm, Beijing time."""
    return MONDAY_9AM.replace(hour=hour, minute=minute)


async def compute(
    service: TicketService,
    period: Period = NOVEMBER,
    *,
    now: datetime,
    where: Slice | None = None,
) -> LoopFigures:
    async with service.sessions() as session:
        return await figures(session, period, now=now, where=where)


async def breakdown(service: TicketService, by: Dimension, *, now: datetime) -> Breakdown:
    async with service.sessions() as session:
        return await figures(session, NOVEMBER, now=now, group_by=by, catalogue=service.catalogue)


@dataclass
class Scenario:
    t1: str
    t2: str
    t3: str
    t4: str
    t5: str
    t6: str
    anju: int
    jinjiang: int


async def november_monday(service: TicketService, org: Org, clock: ManualClock) -> Scenario:
    """Six tickets, all created Monday 09:00 (respond-by 13:00 for the 4-working-hour categories):

    T1 公共设施维修 安居 → 刘洋: accepted 10:00 (1h, in time), resolved 12:00 (3h), 满意 → closed
    T2 公共设施维修 安居 → 刘洋: accepted 14:00 (5h, LATE), resolved 15:00 (6h), 基本满意 → closed
    T3 公共设施维修 安居 → 刘洋: accepted 11:00 (2h, in time), resolved 13:00, 不满意 at 13:00 → reopened
       and re-dispatched to 陈静 (respond-by restarts: 13:00 + 4h = 17:00); resolved_at cleared
    T4 公共设施维修 锦江 → 马丽: never accepted (dispatched, respond-by 13:00)
    T5 证明开具 安居 → 周丽: cancelled at 09:30
    T6 物业服务 锦江 → 林峰: accepted 09:30 (0.5h, in time), resolved 10:30 (1.5h), not rated → resolved
    """
    anju = await org.resident("anju", compound="安居苑")
    jinjiang = await org.resident("jinjiang", community="jinjiang", compound="锦江花园")
    clock.set(at(9))
    t1 = await service.create_ticket(NewTicket(anju, "facility_repair", "楼下路灯坏了"))
    t2 = await service.create_ticket(NewTicket(anju, "facility_repair", "井盖松动"))
    t3 = await service.create_ticket(NewTicket(anju, "facility_repair", "下水道堵了"))
    t4 = await service.create_ticket(NewTicket(jinjiang, "facility_repair", "健身器材坏了"))
    t5 = await service.create_ticket(NewTicket(anju, "certificate", "要开居住证明"))
    t6 = await service.create_ticket(NewTicket(jinjiang, "property", "电梯停了"))
    assert {t.status for t in (t1, t2, t3, t4, t5, t6)} == {Status.DISPATCHED}

    clock.set(at(9, 30))
    await service.cancel(t5.number, anju, "不需要了")
    await service.accept(t6.number, org["staff-j"])
    clock.set(at(10))
    await service.accept(t1.number, org["grid-a1"])
    clock.set(at(10, 30))
    await service.resolve(t6.number, org["staff-j"], "已联系物业修好")
    clock.set(at(11))
    await service.accept(t3.number, org["grid-a1"])
    clock.set(at(12))
    await service.resolve(t1.number, org["grid-a1"], "已更换灯泡")
    clock.set(at(12, 30))
    await service.rate(t1.number, anju, contacted=True, solved=True, rating=Rating.SATISFIED)
    clock.set(at(13))
    await service.resolve(t3.number, org["grid-a1"], "已疏通")
    reopened = await service.rate(t3.number, anju, contacted=True, solved=False, rating=Rating.UNSATISFIED)
    assert reopened.status == Status.DISPATCHED and reopened.assignee_id == org["grid-a2"]
    assert reopened.respond_by == at(17).astimezone(UTC)
    clock.set(at(14))
    late = await service.accept(t2.number, org["grid-a1"])
    assert late.responded_in_time is False
    clock.set(at(15))
    await service.resolve(t2.number, org["grid-a1"], "已加固")
    await service.rate(t2.number, anju, contacted=True, solved=True, rating=Rating.BASIC)
    clock.set(at(16))

    async with service.sessions() as session:
        ids = {c.code: c.id for c in await session.scalars(select(Community))}
    return Scenario(
        t1.number, t2.number, t3.number, t4.number, t5.number, t6.number, ids["anju"], ids["jinjiang"]
    )


# ------------------------------------------------------------------------------------- the whole period


async def test_the_loop_figures_of_a_period(service: TicketService, org: Org, clock: ManualClock) -> None:
    await november_monday(service, org, clock)
    f = await compute(service, now=at(16))

    # 6 tickets: T3 and T4 dispatched, T6 resolved, T1 and T2 closed, T5 cancelled.
    assert f.total == 6
    assert f.counts.by_status == {
        Status.CREATED: 0,
        Status.DISPATCHED: 2,
        Status.ACCEPTED: 0,
        Status.RESOLVED: 1,
        Status.CLOSED: 2,
        Status.CANCELLED: 1,
    }
    # Dispatched (cancelled T5 left out): T1 T2 T3 T4 T6 = 5. In time: T1 T3 T6 → 3/5.
    assert (f.counts.dispatched, f.counts.responded_in_time) == (5, 3)
    assert f.response_rate == pytest.approx(3 / 5)
    # Resolved or closed now: T1 T2 T6 → 3/5 (T3 was resolved, but reopened).
    assert f.resolution_rate == pytest.approx(3 / 5)
    # Rated: T1 满意, T2 基本满意, T3 不满意 (its latest rating, kept while reopened) → 2/3.
    assert (f.counts.rated, f.counts.satisfied, f.counts.basic, f.counts.unsatisfied) == (3, 1, 1, 1)
    assert f.satisfaction_rate == pytest.approx(2 / 3)
    # Weighted: (1 + 0.9 × 1) / 3 = 1.9 / 3.
    assert f.weighted_satisfaction == pytest.approx(1.9 / 3)
    # At 16:00 only T4 is past its respond-by (13:00); T3's restarted respond-by is 17:00.
    assert f.overdue_now == 1
    # Resolved at least once: T1 T2 T6 (resolved_at) and T3 (reopened) = 4; reopened: T3 → 1/4.
    assert (f.counts.reopened, f.counts.ever_resolved) == (1, 4)
    assert f.reopen_rate == pytest.approx(1 / 4)

    # Time to accept: T6 0.5h, T1 1h, T3 2h, T2 5h → sorted [0.5, 1, 2, 5].
    # mean 8.5/4 = 2.125h; median (1 + 2)/2 = 1.5h; p90: rank 3 × 0.9 = 2.7 → 2 + 0.7 × (5 − 2) = 4.1h.
    assert f.time_to_accept == Durations(4, 2.125 * H, 1.5 * H, 4.1 * H)
    # Time to resolve (created 09:00 → resolved): T6 1.5h, T1 3h, T2 6h (T3's resolution was cleared).
    # mean 10.5/3 = 3.5h; median 3h; p90: rank 2 × 0.9 = 1.8 → 3 + 0.8 × (6 − 3) = 5.4h.
    assert f.time_to_resolve == Durations(3, 3.5 * H, 3 * H, 5.4 * H)


async def test_overdue_now_follows_the_injected_clock(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    # 12:59: T4's respond-by (13:00) has not passed yet; T3's is 17:00.
    assert (await compute(service, now=at(12, 59))).overdue_now == 0
    # Exactly 13:00 is not late (respond_by < now), a minute later it is.
    assert (await compute(service, now=at(13))).overdue_now == 0
    assert (await compute(service, now=at(13, 1))).overdue_now == 1
    # 17:01: T3 (re-dispatched, respond-by 17:00) is late too. Closed, resolved, cancelled never are.
    assert (await compute(service, now=at(17, 1))).overdue_now == 2
    assert (await compute(service, now=at(9) + timedelta(days=365))).overdue_now == 2


async def test_accepted_work_is_overdue_on_resolve_by_unless_paused(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    working = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))
    waiting = await service.create_ticket(NewTicket(resident, "facility_repair", "楼道灯不亮"))
    await service.accept(working.number, org["grid-a1"])
    await service.accept(waiting.number, org["grid-a1"])
    await service.pause(waiting.number, org["grid-a1"], "居民出差,约好下周上门")
    # Accepted at once, so respond-by no longer matters: resolve-by (5 working days) does.
    resolve_by = working.resolve_by
    assert (await compute(service, now=resolve_by)).overdue_now == 0
    # Past resolve-by: the working one is late; the paused one's deadlines are stopped.
    assert (await compute(service, now=resolve_by + timedelta(seconds=1))).overdue_now == 1


# ---------------------------------------------------------------------------------------------- slices


async def test_grouped_by_community(service: TicketService, org: Org, clock: ManualClock) -> None:
    s = await november_monday(service, org, clock)
    b = await breakdown(service, Dimension.COMMUNITY, now=at(16))
    assert [(r.key, r.label, r.total) for r in b.rows] == [
        (s.anju, "安居社区", 4),
        (s.jinjiang, "锦江社区", 2),
    ]
    anju, jinjiang = b.rows

    # 安居: T1 T2 T3 T5. Dispatched (no T5) 3; in time T1 T3 → 2/3; resolved T1 T2 → 2/3.
    assert anju.counts.by_status[Status.CANCELLED] == 1
    assert anju.response_rate == pytest.approx(2 / 3)
    assert anju.resolution_rate == pytest.approx(2 / 3)
    # Rated T1 T2 T3: 2/3, weighted 1.9/3; nothing late at 16:00; reopened T3 of T1 T2 T3 → 1/3.
    assert anju.satisfaction_rate == pytest.approx(2 / 3)
    assert anju.weighted_satisfaction == pytest.approx(1.9 / 3)
    assert anju.overdue_now == 0
    assert anju.reopen_rate == pytest.approx(1 / 3)
    # Accept [1, 2, 5]h: median 2h, p90 rank 1.8 → 2 + 0.8 × 3 = 4.4h. Resolve [3, 6]h: median 4.5h,
    # p90 rank 0.9 → 3 + 0.9 × 3 = 5.7h.
    assert anju.time_to_accept == Durations(3, 8 / 3 * H, 2 * H, 4.4 * H)
    assert anju.time_to_resolve == Durations(2, 4.5 * H, 4.5 * H, 5.7 * H)

    # 锦江: T4 (never accepted, late) and T6 (in time, resolved, unrated).
    assert jinjiang.response_rate == pytest.approx(1 / 2)
    assert jinjiang.resolution_rate == pytest.approx(1 / 2)
    assert jinjiang.satisfaction_rate is None and jinjiang.weighted_satisfaction is None  # nobody rated
    assert jinjiang.overdue_now == 1
    assert jinjiang.reopen_rate == 0.0  # T6 resolved once, never reopened: 0/1, not None
    assert jinjiang.time_to_accept == Durations(1, 0.5 * H, 0.5 * H, 0.5 * H)
    assert jinjiang.time_to_resolve == Durations(1, 1.5 * H, 1.5 * H, 1.5 * H)

    # The total row is the whole period, its percentiles over all the groups' durations together.
    assert b.total == await compute(service, now=at(16))
    assert b.total.label == "合计"


async def test_grouped_by_category_in_catalogue_order_with_chinese_names(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    b = await breakdown(service, Dimension.CATEGORY, now=at(16))
    # Catalogue order: property before certificate before facility_repair.
    assert [(r.key, r.label, r.total) for r in b.rows] == [
        ("property", "物业服务与纠纷", 1),
        ("certificate", "证明开具", 1),
        ("facility_repair", "公共设施维修", 4),
    ]
    prop, certificate, repair = b.rows
    # 证明开具: only the cancelled T5: every denominator is 0, so every rate is None (not 0).
    assert certificate.counts.by_status[Status.CANCELLED] == 1
    assert certificate.response_rate is None
    assert certificate.resolution_rate is None
    assert certificate.satisfaction_rate is None
    assert certificate.weighted_satisfaction is None
    assert certificate.reopen_rate is None
    assert certificate.time_to_accept == Durations()
    # 公共设施维修: T1–T4. Dispatched 4, in time T1 T3 → 1/2; resolved T1 T2 → 1/2; rated 3 → 2/3;
    # late T4; reopened T3 of T1 T2 T3.
    assert repair.response_rate == pytest.approx(1 / 2)
    assert repair.resolution_rate == pytest.approx(1 / 2)
    assert repair.satisfaction_rate == pytest.approx(2 / 3)
    assert repair.overdue_now == 1
    assert repair.reopen_rate == pytest.approx(1 / 3)
    # 物业: T6 alone: 1/1 responded and resolved.
    assert (prop.response_rate, prop.resolution_rate, prop.satisfaction_rate) == (1.0, 1.0, None)


async def test_grouped_by_responder_follows_the_current_assignee(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    b = await breakdown(service, Dimension.RESPONDER, now=at(16))
    rows = {r.label: r for r in b.rows}
    assert {label: r.total for label, r in rows.items()} == {
        "刘洋": 2,  # T1 T2
        "陈静": 1,  # T3, re-dispatched to her after the reopen
        "马丽": 1,  # T4
        "林峰": 1,  # T6
        "周丽": 1,  # T5, cancelled while assigned to her
    }
    assert rows["刘洋"].response_rate == pytest.approx(1 / 2)  # T1 in time, T2 late
    # T3 was accepted in time by 刘洋, but the figures follow the ticket to its current assignee.
    assert rows["陈静"].response_rate == 1.0


async def test_grouped_by_grid_names_the_tickets_without_a_grid(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    placed = await org.resident("placed", compound="幸福家园")
    unplaced = await org.resident("unplaced")  # community only: no compound, no grid
    await service.create_ticket(NewTicket(placed, "facility_repair", "路灯坏了"))
    await service.create_ticket(NewTicket(unplaced, "facility_repair", "路灯坏了"))
    await service.create_ticket(NewTicket(unplaced, "eldercare", "老人需要助餐"))
    b = await breakdown(service, Dimension.GRID, now=clock.now())
    assert [(r.label, r.total) for r in b.rows] == [("安居第二网格", 1), ("未划分网格", 2)]
    assert b.rows[-1].key is None
    assert b.total.total == 3


async def test_a_slice_filters_every_figure(service: TicketService, org: Org, clock: ManualClock) -> None:
    s = await november_monday(service, org, clock)
    jinjiang = await compute(service, now=at(16), where=Slice(community_id=s.jinjiang))
    assert (jinjiang.total, jinjiang.overdue_now, jinjiang.response_rate) == (2, 1, 0.5)
    # 刘洋's 公共设施维修: T1 (1h, in time, 满意) and T2 (5h, late, 基本满意).
    liu = await compute(
        service, now=at(16), where=Slice(category="facility_repair", assignee_id=org["grid-a1"])
    )
    assert liu.total == 2
    assert liu.response_rate == pytest.approx(1 / 2)
    assert liu.weighted_satisfaction == pytest.approx((1 + 0.9) / 2)
    assert liu.time_to_accept.median == 3 * H  # (1h + 5h) / 2
    nobody = await compute(service, now=at(16), where=Slice(community_id=s.anju, category="legal_aid"))
    assert nobody.total == 0


# --------------------------------------------------------------------------------------- rates and edges


async def test_an_empty_period_has_no_rates(service: TicketService, org: Org, clock: ManualClock) -> None:
    await november_monday(service, org, clock)
    f = await compute(service, Period.month(2026, 10), now=at(16))
    assert f.total == 0 and f.overdue_now == 0
    assert set(f.counts.by_status.values()) == {0}
    assert f.response_rate is None
    assert f.resolution_rate is None
    assert f.satisfaction_rate is None
    assert f.weighted_satisfaction is None
    assert f.reopen_rate is None
    assert f.time_to_accept == f.time_to_resolve == Durations(0, None, None, None)
    async with service.sessions() as session:
        b = await figures(session, Period.month(2026, 10), now=at(16), group_by=Dimension.COMMUNITY)
    assert b.rows == [] and b.total.total == 0


async def test_reopened_and_resolved_again_counts_once_in_each(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    clock.set(at(9))
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯坏了"))
    await service.accept(ticket.number, org["grid-a1"])
    clock.set(at(10))
    await service.resolve(ticket.number, org["grid-a1"], "修好了")
    await service.rate(ticket.number, resident, contacted=True, solved=False, rating=Rating.UNSATISFIED)
    clock.set(at(11))
    await service.accept(ticket.number, org["grid-a2"])
    clock.set(at(12))
    await service.resolve(ticket.number, org["grid-a2"], "换了新的灯")
    clock.set(at(12, 30))
    await service.rate(ticket.number, resident, contacted=True, solved=True, rating=Rating.BASIC)
    f = await compute(service, now=at(13))
    # One ticket, reopened once and resolved again: reopen rate 1/1.
    assert (f.counts.reopened, f.counts.ever_resolved, f.reopen_rate) == (1, 1, 1.0)
    # Its current rating is the latest (基本满意): satisfied 1/1, weighted 0.9.
    assert f.satisfaction_rate == 1.0
    assert f.weighted_satisfaction == pytest.approx(0.9)
    # Time to accept is the first acceptance (09:00 → 09:00 = 0); time to resolve the latest (3h).
    assert f.time_to_accept.median == timedelta(0)
    assert f.time_to_resolve.median == 3 * H


async def test_period_bounds_include_start_and_exclude_end(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    period = Period(at(9), at(10))
    tiny = timedelta(microseconds=1)
    for moment in (at(9) - tiny, at(9), at(10) - tiny, at(10)):
        clock.set(moment)
        await service.create_ticket(NewTicket(resident, "eldercare", "帮老人买菜"))
    # Created at 08:59:59.999999 and exactly at the end (10:00) are out: 2 tickets.
    assert (await compute(service, period, now=at(10))).total == 2


async def test_month_boundary_is_beijing_midnight(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    # 1 December 00:30 in Beijing is still 30 November in UTC, but it belongs to December.
    for moment in (
        datetime(2026, 11, 1, 0, 0, tzinfo=SHANGHAI),
        datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI),
        datetime(2026, 12, 1, 0, 0, tzinfo=SHANGHAI),
        datetime(2026, 12, 1, 0, 30, tzinfo=SHANGHAI),
    ):
        clock.set(moment)
        await service.create_ticket(NewTicket(resident, "eldercare", "帮老人买菜"))
    assert (await compute(service, NOVEMBER, now=clock.now())).total == 2
    assert (await compute(service, Period.month(2026, 12), now=clock.now())).total == 2


# -------------------------------------------------------------------------------- pure: no database


def test_month_periods() -> None:
    november = Period.parse_month("2026-11")
    assert november == NOVEMBER
    assert november.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert november.end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert november.label == "2026-11"
    december = Period.parse_month(" 2026-12 ")
    assert december.end == datetime(2027, 1, 1, tzinfo=SHANGHAI)
    assert Period.parse_month("2026-3").label == "2026-03"


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "0000-05", "0001-01", "abc", "", "2026/11", "11-2026", "2026-11-01"]
)
def test_bad_months_are_refused_with_a_readable_message(text: str) -> None:
    with pytest.raises(ValidationError, match="YYYY-MM"):
        Period.parse_month(text)


def test_periods_must_be_aware_and_forward() -> None:
    with pytest.raises(ValueError, match="aware"):
        Period(datetime(2026, 11, 1), datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="before"):
        Period(at(10), at(10))


@pytest.mark.parametrize(
    "values",
    [[1.0, 2.0], [3.0, 1.0, 2.0], [0.5, 1.0, 2.0, 5.0], [7.0, 7.0, 1.0, 9.0, 4.0, 4.0, 10.0, 2.0, 8.0]],
)
def test_percentiles_match_statistics_inclusive(values: list[float]) -> None:
    ordered = sorted(values)
    deciles = statistics.quantiles(ordered, n=10, method="inclusive")
    assert percentile(ordered, 0.9) == pytest.approx(deciles[8])
    assert percentile(ordered, 0.5) == pytest.approx(statistics.median(ordered))


def test_percentile_edges() -> None:
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.9) == 4.0
    assert percentile([1.0, 3.0], 0.0) == 1.0 and percentile([1.0, 3.0], 1.0) == 3.0
    with pytest.raises(ValueError, match="q must"):
        percentile([1.0], 1.5)
    assert Durations.of([]) == Durations()
    assert Durations.of([H, 3 * H]) == Durations(2, 2 * H, 2 * H, 2.8 * H)  # p90: 1 + 0.9 × 2 = 2.8h


async def test_response_is_judged_against_the_first_promise(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    # 1) Missed its 13:00 promise, escalated at 13:01, accepted by community staff at 13:31: late, not on time.
    late = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯坏了一个星期了"))
    # 2) Nobody in 锦江 gives legal aid: never dispatched, but its promise (next working day) is broken.
    stranded = await service.create_ticket(
        NewTicket(await org.resident("j", community="jinjiang"), "legal_aid", "老板拖欠工资")
    )
    clock.set(at(13, 1))
    assert await service.escalate_overdue() == [late.number]
    clock.set(at(13, 31))
    await service.accept(late.number, org["staff-a"])
    # Not judged yet at 13:31 on Monday: the legal-aid promise runs to Tuesday.
    early = await compute(service, now=clock.now())
    assert (early.counts.response_due, early.counts.responded_in_time) == (1, 0)
    later = await compute(service, now=stranded.first_respond_by + H)
    assert (later.counts.response_due, later.counts.responded_in_time) == (2, 0)
    assert later.response_rate == 0.0
    assert later.resolution_rate == 0.0  # 0 resolved of 2 received, the undispatched one included
