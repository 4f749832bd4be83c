"""One overdue rule everywhere: a ticket paused while the responder waits on the resident is not late, in
/overdue, in the sweeper or in the 民呼我应 figures; a running one past its deadline is late in all three."""

from __future__ import annotations

from datetime import timedelta

from tests.bot.conftest import STAFF, Telegram
from tests.conftest import Org
from tickets.clock import ManualClock
from tickets.metrics import Period
from tickets.service import NewTicket


async def test_a_paused_ticket_past_its_deadline_is_not_overdue_anywhere(
    roles: Telegram, org: Org, clock: ManualClock
) -> None:
    service = roles.minhu.service
    resident = await org.resident(compound="安居苑")
    paused = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))
    running = await service.create_ticket(NewTicket(resident, "facility_repair", "下水道井盖松了"))
    for ticket in (paused, running):
        await service.accept(ticket.number, org["grid-a1"])
    await service.pause(paused.number, org["grid-a1"], "等居民回来开门")
    clock.set(max(paused.resolve_by, running.resolve_by) + timedelta(hours=1))

    listed = "\n".join(await roles.say(STAFF, "/overdue"))
    assert running.number in listed
    assert paused.number not in listed

    created = paused.created_at.astimezone(service.calendar.tz)
    month = Period.month(created.year, created.month)
    figures = await service.community_figures(org["staff-a"], month)
    assert figures.overdue_now == 1

    assert await service.escalate_overdue() == [running.number]
    assert not (await service.ticket(paused.number, org.service_actor)).is_overdue(clock.now())
