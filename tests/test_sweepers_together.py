"""Two sweepers at once (two deployments' sweeper replicas, each with its own engine and pool) over many
overdue and many unrated tickets on PostgreSQL: the claims (FOR UPDATE SKIP LOCKED, tickets.escalation)
give each ticket to one of them, so each is escalated exactly once and each auto-closed exactly once. No
advisory lock is needed (this test is why)."""

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import Org
from tickets.clock import ManualClock
from tickets.db import create_engine, session_factory
from tickets.models import Ticket, TicketEvent
from tickets.service import NewTicket, TicketService
from tickets.transitions import Action

OVERDUE, UNRATED = 120, 80


# SQLite has one writer at a time: nothing runs at once to prove
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_two_sweepers_escalate_and_close_each_ticket_exactly_once(
    service: TicketService, org: Org, clock: ManualClock, db_url: str
) -> None:
    resident = await org.resident(compound="安居苑")
    unrated = []
    for i in range(UNRATED):
        ticket = await service.create_ticket(NewTicket(resident, "facility_repair", f"{i}号楼路灯不亮"))
        await service.accept(ticket.number, org["grid-a1"])
        await service.resolve(ticket.number, org["grid-a1"], "已修复")
        unrated.append(ticket.number)
    overdue = [
        t.number
        for t in await service.create_tickets(
            [NewTicket(resident, "environment", f"{i}号楼下垃圾没人清") for i in range(OVERDUE)]
        )
        if isinstance(t, Ticket)
    ]
    assert len(overdue) == OVERDUE

    engines = [create_engine(db_url) for _ in range(2)]
    try:
        sweepers = [TicketService(session_factory(e), clock=clock) for e in engines]
        clock.advance(timedelta(days=1))  # every unanswered ticket is past its respond_by
        escalated = await asyncio.gather(*(s.escalate_overdue(batch=9) for s in sweepers))

        async def close_all(sweeper: TicketService) -> list[str]:
            closed: list[str] = []
            while batch := await sweeper.auto_close(limit=7):
                closed += batch
                await asyncio.sleep(0)  # let the other sweeper claim in between
            return closed

        clock.advance(timedelta(days=8))  # every resolved ticket is past the days to rate it
        closed = await asyncio.gather(*(close_all(s) for s in sweepers))
    finally:
        for e in engines:
            await e.dispose()

    # Both did part of the work, and no ticket was claimed by both.
    assert all(escalated) and all(closed)
    assert sorted(escalated[0] + escalated[1]) == sorted(overdue)
    assert sorted(closed[0] + closed[1]) == sorted(unrated)
    async with service.sessions() as session:
        rows = (
            await session.execute(
                select(Ticket.number, TicketEvent.action)
                .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                .where(TicketEvent.action.in_([Action.ESCALATE, Action.AUTO_CLOSE]))
            )
        ).all()
    per_ticket = Counter((number, action) for number, action in rows)
    assert per_ticket == Counter(
        {(n, Action.ESCALATE): 1 for n in overdue} | {(n, Action.AUTO_CLOSE): 1 for n in unrated}
    )
