"""The figures staff read through TicketService (tickets.insights): always their own scope — community staff
their community, street staff the street — on the six hand-worked tickets of test_metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import Org
from tests.test_metrics import NOVEMBER, at, compute, november_monday
from tickets import trends
from tickets.catalogue import Role
from tickets.clock import ManualClock
from tickets.errors import NotAllowed, ResponderNotFound
from tickets.metrics import Dimension, Slice
from tickets.service import TicketService
from tickets.trends import Measure, Span

H = timedelta(hours=1)


async def test_each_staff_member_sees_their_own_scope(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    s = await november_monday(service, org, clock)  # the clock is left at 16:00
    anju = await service.figures_view(org["staff-a"], NOVEMBER, group_by=Dimension.GRID)
    jinjiang = await service.figures_view(org["staff-j"], NOVEMBER)
    street = await service.figures_view(org["street-1"], NOVEMBER, group_by=Dimension.COMMUNITY)

    assert (anju.scope.name, anju.scope.community_id) == ("安居社区", s.anju)
    assert (street.scope.name, street.scope.is_street) == ("民安街道", True)
    # The same figures metrics gives for each slice.
    assert anju.figures == await compute(service, now=at(16), where=Slice(community_id=s.anju))
    assert jinjiang.figures == await compute(service, now=at(16), where=Slice(community_id=s.jinjiang))
    assert street.figures == await compute(service, now=at(16))
    assert (anju.figures.total, jinjiang.figures.total, street.figures.total) == (4, 2, 6)
    # 安居's breakdown by grid holds only its own grid; the street's by community both.
    assert [(r.label, r.total) for r in anju.breakdown.rows] == [("安居第一网格", 4)]
    assert [(r.label, r.total) for r in street.breakdown.rows] == [("安居社区", 4), ("锦江社区", 2)]
    # Time buckets of 安居: accepted after 1h, 2h, 5h; resolved after 3h, 6h.
    assert anju.first_response.counts == (0, 2, 1, 0, 0, 0)
    assert anju.resolution.counts == (0, 1, 1, 0, 0, 0)
    # The monthly series ends with November, which holds every ticket.
    assert [(p.period.label, p.figures.total) for p in anju.series][-2:] == [("2026-10", 0), ("2026-11", 4)]
    assert len(anju.series) == 6
    # By week: the period is a week, the series the weeks ending with it.
    weekly = await service.figures_view(org["staff-a"], trends.week(2026, 48), span=Span.WEEK, history=3)
    assert [(p.period.label, p.figures.total) for p in weekly.series] == [
        ("2026-W46", 0),
        ("2026-W47", 0),
        ("2026-W48", 4),
    ]
    assert weekly.figures == anju.figures


async def test_only_staff_read_figures(service: TicketService, org: Org, clock: ManualClock) -> None:
    await november_monday(service, org, clock)
    for code in ("vol-a1", "grid-a1", "law-a"):
        with pytest.raises(NotAllowed):
            await service.figures_view(org[code], NOVEMBER)
        with pytest.raises(NotAllowed):
            await service.scoped_report(org[code], NOVEMBER)
        with pytest.raises(NotAllowed):
            await service.responders_view(org[code], NOVEMBER)
    with pytest.raises(ResponderNotFound):
        await service.figures_view(999_999, NOVEMBER)


async def test_a_narrower_slice_never_widens_the_scope(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    s = await november_monday(service, org, clock)
    # 安居's staff asking for 锦江 is refused; the street's staff may narrow to it.
    with pytest.raises(NotAllowed):
        await service.figures_series(org["staff-a"], [NOVEMBER], where=Slice(community_id=s.jinjiang))
    (point,) = await service.figures_series(org["street-1"], [NOVEMBER], where=Slice(community_id=s.jinjiang))
    assert point.figures.total == 2
    # Asking for another street gets the own street (street_id is the scope's, not the request's).
    (point,) = await service.figures_series(org["staff-a"], [NOVEMBER], where=Slice(street_id=999))
    assert point.figures.total == 4
    distribution = await service.time_distribution(org["staff-j"], NOVEMBER, Measure.FIRST_RESPONSE)
    assert distribution.counts == (1, 0, 0, 0, 0, 0)  # 锦江: only T6, accepted after half an hour


async def test_the_scoped_monthly_report(service: TicketService, org: Org, clock: ManualClock) -> None:
    await november_monday(service, org, clock)
    anju = await service.scoped_report(org["staff-a"], NOVEMBER)
    # A community's report: no street section (its one row would be the community again).
    assert [s.key for s in anju.sections] == ["community", "category", "responder"]
    community = anju.sections[0]
    assert [(r.label, r.total) for r in community.rows] == [("安居社区", 4), ("合计", 4)]
    assert anju.total.total == 4
    responders = {r.label: r.total for r in anju.sections[2].rows}
    assert responders == {"刘洋": 2, "陈静": 1, "周丽": 1, "合计": 4}  # nobody of 锦江

    street = await service.scoped_report(org["street-1"], NOVEMBER)
    assert [s.key for s in street.sections] == ["street", "community", "category", "responder"]
    assert [(r.label, r.total) for r in street.sections[0].rows] == [("民安街道", 6)]
    assert [(r.label, r.total) for r in street.sections[1].rows] == [
        ("安居社区", 4),
        ("锦江社区", 2),
        ("合计", 6),
    ]


async def test_responders_with_load_points_and_figures(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    scope, rows = await service.responders_view(org["staff-a"], NOVEMBER)
    assert scope.name == "安居社区"
    by_name = {r.name: r for r in rows}
    # Every active responder of 安居 (and nobody of 锦江 or the street).
    assert set(by_name) == {
        "张建国",
        "李秀英",
        "王志强",
        "赵敏",
        "刘洋",
        "陈静",
        "周丽",
        "吴刚",
        "孙律师",
        "郑调解",
    }
    liu, chen = by_name["刘洋"], by_name["陈静"]
    # 刘洋 holds T1 (closed, 满意: 10 + 5 points) and T2 (closed, 基本满意: 10 points); nothing open.
    assert (liu.load, liu.capacity, liu.points, liu.on_duty, liu.role) == (0, 5, 25, True, Role.GRID_WORKER)
    assert liu.role_label == "网格员"
    assert liu.figures.total == 2 and liu.figures.resolution_rate == 1.0
    assert liu.figures.time_to_accept.median == 3 * H  # accepted after 1h and 5h
    # 陈静 holds the reopened T3, re-dispatched to her: one open ticket, no points yet.
    assert (chen.load, chen.points, chen.figures.total) == (1, 0, 1)
    assert by_name["张建国"].figures.total == 0 and by_name["张建国"].figures.response_rate is None

    _, street_rows = await service.responders_view(org["street-1"], NOVEMBER)
    assert {"林峰", "马丽", "何主任", "刘洋"} <= {r.name for r in street_rows}
    assert len(street_rows) == 14
