"""The loop as residents and responders live it: 群众点单 → 社区派单 → 党员接单 → 办结 → 评价."""

from datetime import timedelta

import pytest

from tests.conftest import Org, actions, count, notifications
from tickets.actors import Actor
from tickets.clock import ManualClock
from tickets.errors import AlreadyTaken, IllegalTransition, NotAllowed, ReasonRequired, TicketNotFound
from tickets.models import Notification, PointsEntry, Rating, Status, TicketEvent
from tickets.service import NewTicket, TicketService


async def test_eldercare_is_offered_to_three_volunteers_grid_first(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "eldercare", "想给我妈申请助餐"))

    assert ticket.status == Status.DISPATCHED
    assert ticket.assignee_id is None  # 抢单: nobody owns it until someone accepts
    offered = [r for kind, _, r in await notifications(service, ticket.number) if kind == "offered"]
    # Both volunteers of grid anju-1 first, then the least-recently-used of the rest of the community.
    assert offered == [org["vol-a1"], org["vol-a3"], org["vol-a2"]]


async def test_full_loop_satisfied_closes_and_earns_points(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(
        NewTicket(resident, "eldercare", "隔壁婆婆一个人住 想请人每周来看看")
    )
    clock.advance(timedelta(minutes=20))
    accepted = await service.accept(ticket.number, org["vol-a3"])
    assert accepted.status == Status.ACCEPTED
    assert accepted.assignee_id == org["vol-a3"]
    assert accepted.responded_in_time is True

    clock.advance(timedelta(hours=3))
    await service.resolve(ticket.number, org["vol-a3"], "已上门探望,约好每周三来")
    closed = await service.rate(ticket.number, resident, contacted=True, solved=True, rating=Rating.SATISFIED)

    assert closed.status == Status.CLOSED
    assert await actions(service, ticket.number) == [
        ("create", None, "created"),
        ("dispatch", "created", "dispatched"),
        ("accept", "dispatched", "accepted"),
        ("resolve", "accepted", "resolved"),
        ("rate", "resolved", "closed"),
    ]
    balance, history = await service.points_of(org["vol-a3"])
    assert balance == 15 and [e.reason for e in history] == ["rated_satisfied"]
    kinds = [(k, r) for k, _, r in await notifications(service, ticket.number)]
    # The two who lost the race hear it is taken; the resident hears it was accepted, then is asked to rate.
    assert ("taken", org["vol-a1"]) in kinds and ("taken", org["vol-a2"]) in kinds
    assert ("accepted", resident) in kinds and ("rate", resident) in kinds


async def test_basic_satisfaction_closes_with_base_points(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "小区门口路灯不亮"))
    await service.accept(ticket.number, org["grid-a1"])
    await service.resolve(ticket.number, org["grid-a1"], "路灯已报修更换")
    await service.rate(ticket.number, resident, contacted=True, solved=True, rating="basic")
    assert (await service.points_of(org["grid-a1"]))[0] == 10


@pytest.mark.parametrize(("rating", "solved"), [(Rating.UNSATISFIED, True), (Rating.SATISFIED, False)])
async def test_unsatisfied_or_unsolved_reopens_to_someone_else(
    service: TicketService, org: Org, rating: Rating, solved: bool
) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "下水道堵了 污水漫到路上"))
    assert ticket.assignee_id == org["grid-a1"]
    await service.accept(ticket.number, org["grid-a1"])
    await service.resolve(ticket.number, org["grid-a1"], "已疏通")

    again = await service.rate(ticket.number, resident, contacted=False, solved=solved, rating=rating)

    assert again.status == Status.DISPATCHED  # 二次派单
    assert again.reopen_count == 1
    assert again.assignee_id == org["grid-a2"]  # the previous assignee only if nobody else can
    assert again.rating == rating
    assert (await service.points_of(org["grid-a1"]))[0] == 0
    assert [a for a, _, _ in await actions(service, ticket.number)][-3:] == ["rate", "reopen", "dispatch"]


async def test_direct_decline_needs_a_reason_and_moves_on(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "井盖松了 踩上去晃"))
    with pytest.raises(ReasonRequired):
        await service.decline(ticket.number, org["grid-a1"], "  ")
    moved = await service.decline(ticket.number, org["grid-a1"], "今天在外培训")
    assert moved.status == Status.DISPATCHED and moved.assignee_id == org["grid-a2"]
    with pytest.raises(NotAllowed):
        await service.accept(ticket.number, org["grid-a1"])


async def test_grab_declines_leave_the_other_offers_open(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "eldercare", "我爸腿脚不好 想申请助浴"))
    still = await service.decline(ticket.number, org["vol-a1"], "这周不在武汉")
    assert still.status == Status.DISPATCHED
    with pytest.raises(NotAllowed):
        await service.accept(ticket.number, org["vol-a1"])
    assert (await service.accept(ticket.number, org["vol-a2"])).assignee_id == org["vol-a2"]


async def test_return_tells_the_resident_why_and_redispatches(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "楼道外面的健身器材坏了"))
    await service.accept(ticket.number, org["grid-a1"])
    with pytest.raises(NotAllowed):
        await service.return_ticket(ticket.number, org["grid-a2"], "不是我的")
    back = await service.return_ticket(ticket.number, org["grid-a1"], "需要园林部门处理,已转交")
    assert back.status == Status.DISPATCHED and back.assignee_id == org["grid-a2"]
    async with service.sessions() as session:
        from sqlalchemy import select

        note = await session.scalar(select(Notification).where(Notification.kind == "returned"))
    assert note is not None and note.recipient_id == resident
    assert note.payload["reason"] == "需要园林部门处理,已转交"


async def test_cancel_only_by_the_owner_and_only_before_acceptance(service: TicketService, org: Org) -> None:
    owner = await org.resident("owner", compound="安居苑")
    other = await org.resident("other")
    first = await service.create_ticket(NewTicket(owner, "eldercare", "帮我家老人申请助餐"))
    with pytest.raises(TicketNotFound):
        await service.cancel(first.number, other)
    cancelled = await service.cancel(first.number, owner, "家里人已经安排好了")
    assert cancelled.status == Status.CANCELLED
    assert [k for k, _, _ in await notifications(service, first.number)].count("withdrawn") == 3

    second = await service.create_ticket(NewTicket(owner, "facility_repair", "路灯不亮"))
    await service.accept(second.number, org["grid-a1"])
    with pytest.raises(IllegalTransition, match="不能撤销"):
        await service.cancel(second.number, owner)


async def test_nobody_on_duty_waits_and_tells_staff(service: TicketService, org: Org) -> None:
    resident = await org.resident(community="jinjiang")
    ticket = await service.create_ticket(NewTicket(resident, "legal_aid", "老板拖欠工资三个月了"))
    assert ticket.status == Status.CREATED  # jinjiang has no legal adviser
    assert await notifications(service, ticket.number) == [("needs_dispatch", "responder", org["staff-j"])]


async def test_staff_dispatch_and_reassign_by_hand(service: TicketService, org: Org) -> None:
    resident = await org.resident(community="jinjiang")
    ticket = await service.create_ticket(NewTicket(resident, "legal_aid", "租房押金房东不退"))
    with pytest.raises(NotAllowed):
        await service.dispatch(ticket.number, org["vol-j1"], org["grid-j1"])  # volunteers do not dispatch
    with pytest.raises(NotAllowed):
        await service.dispatch(ticket.number, org["staff-a"], org["grid-j1"])  # another community's staff
    with pytest.raises(NotAllowed):
        await service.dispatch(
            ticket.number, org["staff-j"], org["law-a"]
        )  # a responder of another community
    sent = await service.dispatch(ticket.number, org["staff-j"], org["grid-j1"])
    assert sent.status == Status.DISPATCHED and sent.assignee_id == org["grid-j1"]
    await service.accept(ticket.number, org["grid-j1"])
    with pytest.raises(ReasonRequired):
        await service.reassign(ticket.number, org["staff-j"], org["vol-j1"], "")
    moved = await service.reassign(ticket.number, org["staff-j"], org["vol-j1"], "需要党员志愿者陪同")
    assert moved.status == Status.DISPATCHED and moved.assignee_id == org["vol-j1"]
    assert ("withdrawn", "responder", org["grid-j1"]) in await notifications(service, ticket.number)
    street = await service.reassign(ticket.number, org["street-1"], org["staff-j"], "街道督办")
    assert street.assignee_id == org["staff-j"]


async def test_only_the_right_people_accept(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路面有个大坑"))
    with pytest.raises(NotAllowed):
        await service.accept(ticket.number, org["grid-j1"])  # another community
    with pytest.raises(NotAllowed):
        await service.accept(ticket.number, org["grid-a2"])  # same community, assigned to someone else
    await service.accept(ticket.number, org["grid-a1"])
    with pytest.raises(AlreadyTaken):
        await service.accept(ticket.number, org["grid-a2"])


async def test_rating_someone_elses_ticket_is_not_found_and_writes_nothing(
    service: TicketService, org: Org
) -> None:
    owner = await org.resident("owner", compound="安居苑")
    stranger = await org.resident("stranger")
    ticket = await service.create_ticket(NewTicket(owner, "facility_repair", "路灯不亮"))
    await service.accept(ticket.number, org["grid-a1"])
    await service.resolve(ticket.number, org["grid-a1"], "修好了")
    events, notes = await count(service, TicketEvent), await count(service, Notification)
    with pytest.raises(TicketNotFound):
        await service.rate(ticket.number, stranger, contacted=True, solved=True, rating="satisfied")
    with pytest.raises(TicketNotFound):
        await service.ticket(ticket.number, Actor.resident(stranger))
    assert (await count(service, TicketEvent), await count(service, Notification)) == (events, notes)
    assert (await service.ticket(ticket.number, Actor.resident(owner))).status == Status.RESOLVED


async def test_pause_stops_the_deadlines(service: TicketService, org: Org, clock: ManualClock) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))
    await service.accept(ticket.number, org["grid-a1"])
    paused = await service.pause(ticket.number, org["grid-a1"], "居民出差,约好周四上门")
    clock.advance(timedelta(days=2, hours=3))
    resumed = await service.resume(ticket.number, Actor.resident(resident))
    assert resumed.resolve_by - paused.resolve_by == timedelta(days=2, hours=3)
    assert resumed.paused_at is None


async def test_unrated_tickets_close_by_themselves(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))
    await service.accept(ticket.number, org["grid-a1"])
    await service.resolve(ticket.number, org["grid-a1"], "已修复")
    clock.advance(timedelta(days=6))
    assert await service.auto_close() == []
    clock.advance(timedelta(days=1, minutes=1))
    assert await service.auto_close() == [ticket.number]
    assert (await service.ticket(ticket.number, Actor.resident(resident))).status == Status.CLOSED
    assert (await service.points_of(org["grid-a1"]))[0] == 10
    assert await count(service, PointsEntry) == 1


async def test_numbers_count_per_day_in_wuhan_time(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    first = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))
    second = await service.create_ticket(NewTicket(resident, "environment", "垃圾桶满了没人收"))
    clock.advance(timedelta(hours=15))  # 00:00 Tuesday in Wuhan
    third = await service.create_ticket(NewTicket(resident, "environment", "小区门口有人乱倒建筑垃圾"))
    assert [first.number, second.number, third.number] == [
        "MH-20261123-0001",
        "MH-20261123-0002",
        "MH-20261124-0001",
    ]
