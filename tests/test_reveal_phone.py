"""Who may see the resident's full phone (TicketService.reveal_phone), the one rule every edge uses: the
assignee once accepted, staff of the ticket's area while it is open, nobody once it is resolved, closed or
cancelled; every reveal is recorded as a `reveal_phone` event without the number."""

from __future__ import annotations

import pytest

from tests.conftest import Org
from tickets.errors import IllegalTransition, NotAllowed, TicketNotFound
from tickets.models import Rating, Status, Ticket
from tickets.service import NewTicket

PHONE = "+8613912345678"


async def phone_ticket(org: Org, category: str = "eldercare", phone: str | None = "13912345678") -> Ticket:
    resident = await org.resident("r1")
    return await org.service.create_ticket(NewTicket(resident, category, "想申请助餐", phone=phone))


async def accepted_by_vol_a1(org: Org) -> Ticket:
    ticket = await phone_ticket(org)
    await org.service.reassign(ticket.number, org["staff-a"], org["vol-a1"], "熟悉情况")
    return await org.service.accept(ticket.number, org["vol-a1"])


async def reveals(org: Org, number: str) -> list[tuple[str, dict[str, object], str, str]]:
    return [
        (e.actor, e.data, e.from_status, e.to_status)
        for e in await org.service.history(number, org.service_actor)
        if e.action == "reveal_phone"
    ]


async def test_open_ticket_assignee_and_area_staff_see_it_others_are_refused(org: Org) -> None:
    ticket = await accepted_by_vol_a1(org)
    service = org.service

    assert await service.reveal_phone(ticket.number, org["vol-a1"]) == PHONE  # the assignee
    assert await service.reveal_phone(ticket.number, org["staff-a"]) == PHONE  # staff of the community
    assert await service.reveal_phone(ticket.number, org["street-1"]) == PHONE  # street staff of its street
    with pytest.raises(NotAllowed, match="只有接单人和本社区工作人员"):
        await service.reveal_phone(ticket.number, org["vol-a2"])  # a volunteer of the area, not assigned
    for outsider in ("staff-j", "vol-j1"):  # another community: the ticket is not even found
        with pytest.raises(TicketNotFound):
            await service.reveal_phone(ticket.number, org[outsider])

    accepted = Status.ACCEPTED.value
    assert await reveals(org, ticket.number) == [
        (f"responder:{org['vol-a1']}", {"role": "assignee"}, accepted, accepted),
        (f"responder:{org['staff-a']}", {"role": "staff"}, accepted, accepted),
        (f"responder:{org['street-1']}", {"role": "staff"}, accepted, accepted),
    ]
    history = await service.history(ticket.number, org.service_actor)
    assert not any("1391234" in str(e.data) for e in history)  # the record never holds the number
    assert (await service.ticket(ticket.number, org.service_actor)).status == Status.ACCEPTED


async def test_before_acceptance_only_staff_see_it(org: Org) -> None:
    await org.service.set_on_duty(org["law-a"], False)
    waiting = await phone_ticket(org, "legal_aid")  # the only legal adviser is off duty: waits for staff
    assert waiting.status == Status.CREATED
    offered = await phone_ticket(org)
    await org.service.reassign(offered.number, org["staff-a"], org["vol-a1"], "熟悉情况")
    assert (await org.service.ticket(offered.number, org.service_actor)).status == Status.DISPATCHED

    for ticket in (waiting, offered):
        assert await org.service.reveal_phone(ticket.number, org["staff-a"]) == PHONE
    with pytest.raises(NotAllowed, match="请先接单"):
        await org.service.reveal_phone(offered.number, org["vol-a1"])  # assigned, not accepted yet


async def test_nobody_sees_it_once_resolved_closed_or_cancelled(org: Org) -> None:
    ticket = await accepted_by_vol_a1(org)
    await org.service.resolve(ticket.number, org["vol-a1"], "已上门")
    everyone = ("vol-a1", "staff-a", "street-1", "vol-a2", "staff-j")

    async def refused_for_everyone(number: str) -> None:
        for code in everyone:
            with pytest.raises((IllegalTransition, NotAllowed, TicketNotFound)):
                await org.service.reveal_phone(number, org[code])

    await refused_for_everyone(ticket.number)  # resolved, waiting for the rating
    closed = await org.service.rate(
        ticket.number, ticket.resident_id, contacted=True, solved=True, rating=Rating.SATISFIED
    )
    assert closed.status == Status.CLOSED
    await refused_for_everyone(ticket.number)
    with pytest.raises(IllegalTransition, match="已结案"):
        await org.service.reveal_phone(ticket.number, org["staff-a"])

    cancelled = await phone_ticket(org, "environment")
    await org.service.cancel(cancelled.number, cancelled.resident_id, "已经好了")
    await refused_for_everyone(cancelled.number)
    assert await reveals(org, ticket.number) == [] and await reveals(org, cancelled.number) == []


async def test_no_phone_left_nothing_revealed_nothing_recorded(org: Org) -> None:
    ticket = await phone_ticket(org, "legal_aid", phone=None)
    assert await org.service.reveal_phone(ticket.number, org["staff-a"]) is None
    assert await reveals(org, ticket.number) == []
