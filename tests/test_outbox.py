"""Notifications wait in the outbox until delivered; two delivery workers never take the same one."""

import asyncio
from datetime import timedelta

from tests.conftest import Org
from tickets import outbox
from tickets.clock import ManualClock
from tickets.db import unit_of_work
from tickets.service import NewTicket, TicketService


async def test_claim_retry_and_deliver(service: TicketService, org: Org, clock: ManualClock) -> None:
    resident = await org.resident(compound="安居苑")
    await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))
    async with unit_of_work(service.sessions) as session:
        (note,) = await outbox.claim_due(session, clock.now())
        assert note.kind == "assigned"
        outbox.retry_later(note, clock.now(), "telegram: 502 Bad Gateway")
    async with unit_of_work(service.sessions) as session:
        assert await outbox.claim_due(session, clock.now()) == []  # backing off (2 s)
    clock.advance(timedelta(seconds=3))
    async with unit_of_work(service.sessions) as session:
        (again,) = await outbox.claim_due(session, clock.now())
        assert again.attempts == 1 and again.last_error == "telegram: 502 Bad Gateway"
        outbox.retry_later(again, clock.now(), "429", after=timedelta(seconds=30))  # RetryAfter honoured
        assert again.next_attempt_at == clock.now() + timedelta(seconds=30)
    clock.advance(timedelta(seconds=31))
    async with unit_of_work(service.sessions) as session:
        (last,) = await outbox.claim_due(session, clock.now())
        await outbox.mark_delivered(session, last.id, clock.now())
    clock.advance(timedelta(days=1))
    async with unit_of_work(service.sessions) as session:
        assert await outbox.claim_due(session, clock.now()) == []


async def test_concurrent_workers_claim_disjoint_notifications(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    for i in range(20):
        await service.create_ticket(NewTicket(resident, "facility_repair", f"{i}号路灯不亮"))
    claimed: list[list[int]] = []

    async def worker() -> None:
        async with unit_of_work(service.sessions) as session:
            notes = await outbox.claim_due(session, clock.now(), limit=8)
            claimed.append([n.id for n in notes])
            await asyncio.sleep(0.05)  # hold the row locks while "sending"
            for n in notes:
                await outbox.mark_delivered(session, n.id, clock.now())

    await asyncio.gather(worker(), worker(), worker())
    ids = [i for batch in claimed for i in batch]
    assert len(ids) == len(set(ids)) == 20
