"""Overdue work goes up a level (grid → community → street), found by a sweeper driven by an injected clock."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from tests.conftest import Org, actions, notifications
from tickets.clock import ManualClock
from tickets.models import Level, Status, TicketEvent
from tickets.service import NewTicket, TicketService


async def test_unanswered_ticket_climbs_to_community_then_street(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯坏了一个星期"))
    assert ticket.respond_by == clock.now() + timedelta(hours=4)  # Monday 09:00 → 13:00

    clock.advance(timedelta(hours=3, minutes=59))
    assert await service.escalate_overdue() == []

    clock.advance(timedelta(minutes=2))
    assert await service.escalate_overdue() == [ticket.number]
    community = await service.ticket(ticket.number, org.service_actor)
    assert community.level == Level.COMMUNITY and community.status == Status.DISPATCHED
    assert community.assignee_id == org["staff-a"]
    assert community.respond_by > ticket.respond_by
    assert ("escalated", "responder", org["staff-a"]) in await notifications(service, ticket.number)

    clock.set(community.respond_by + timedelta(minutes=1))
    assert await service.escalate_overdue() == [ticket.number]
    street = await service.ticket(ticket.number, org.service_actor)
    assert street.level == Level.STREET and street.assignee_id == org["street-1"]
    assert ("escalated", "responder", org["street-1"]) in await notifications(service, ticket.number)

    clock.advance(timedelta(days=30))
    assert await service.escalate_overdue() == []  # the street is the top: it stays overdue, not re-escalated
    history = await service.history(ticket.number, org.service_actor)
    reasons = [e.data["reason"] for e in history if e.action == "escalate"]
    assert reasons == ["respond_by passed", "respond_by passed"]


async def test_accepted_but_unresolved_escalates_on_resolve_by(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "下水道反味"))
    await service.accept(ticket.number, org["grid-a1"])
    clock.set(ticket.resolve_by + timedelta(minutes=1))
    assert await service.escalate_overdue() == [ticket.number]
    after = await service.ticket(ticket.number, org.service_actor)
    assert after.level == Level.COMMUNITY and after.assignee_id == org["staff-a"]
    assert after.resolve_by > ticket.resolve_by
    assert ("withdrawn", "responder", org["grid-a1"]) in await notifications(service, ticket.number)
    assert [a for a, _, _ in await actions(service, ticket.number)][-2:] == ["escalate", "dispatch"]


async def test_paused_tickets_do_not_escalate(service: TicketService, org: Org, clock: ManualClock) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))
    await service.accept(ticket.number, org["grid-a1"])
    await service.pause(ticket.number, org["grid-a1"], "等居民回来开门")
    clock.advance(timedelta(days=60))
    assert await service.escalate_overdue() == []


async def test_concurrent_sweepers_escalate_each_ticket_once(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    numbers = set()
    for i in range(30):
        ticket = await service.create_ticket(NewTicket(resident, "environment", f"第{i}号楼下垃圾没人清"))
        numbers.add(ticket.number)
    clock.advance(timedelta(days=1))
    # Another process's sweeper is simulated by a second service on the same database.
    other = TicketService(service.sessions, clock=clock, catalogue=service.catalogue)
    results = await asyncio.gather(*(s.escalate_overdue(batch=7) for s in (service, other, service, other)))
    swept = [n for result in results for n in result]
    assert sorted(swept) == sorted(numbers)  # every ticket once, none twice
    async with service.sessions() as session:
        escalations = await session.scalar(
            select(func.count()).select_from(TicketEvent).where(TicketEvent.action == "escalate")
        )
    assert escalations == 30
    # A restarted sweeper finds nothing left to do at this level.
    assert await TicketService(service.sessions, clock=clock).escalate_overdue() == []
