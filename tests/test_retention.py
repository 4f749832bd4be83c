"""Contact details are kept only as long as they serve (个人信息保护法): a year after a ticket ended the sweeper
erases its phone and address, and a resident who asks has theirs erased at once, except on tickets still
being worked."""

from datetime import timedelta

import pytest

from app.settings import Settings
from tests.conftest import Org, actions
from tickets.actors import Actor
from tickets.clock import ManualClock
from tickets.errors import NotFound
from tickets.models import Rating, Ticket
from tickets.privacy import DATA_KEPT
from tickets.service import NewTicket, Policy, TicketService


async def closed_ticket(service: TicketService, org: Org, resident: int, text: str) -> Ticket:
    ticket = await service.create_ticket(
        NewTicket(resident, "facility_repair", text, compound="安居苑", address="5栋302", phone="13912345678")
    )
    await service.accept(ticket.number, org["grid-a1"])
    await service.resolve(ticket.number, org["grid-a1"], "已修好")
    return await service.rate(ticket.number, resident, contacted=True, solved=True, rating=Rating.SATISFIED)


async def test_a_year_after_a_ticket_ended_its_phone_and_address_are_erased(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident()
    closed = await closed_ticket(service, org, resident, "楼道灯坏了一个星期")
    cancelled = await service.create_ticket(
        NewTicket(resident, "environment", "楼下垃圾没人清", phone="13912345678")
    )
    await service.cancel(cancelled.number, resident)
    still_open = await service.create_ticket(
        NewTicket(resident, "property", "电梯坏了三天物业不管", address="3栋", phone="13912345678")
    )

    clock.advance(timedelta(days=364))
    assert await service.erase_expired() == []

    clock.advance(timedelta(days=2))
    assert sorted(await service.erase_expired()) == sorted([closed.number, cancelled.number])
    assert await service.erase_expired() == []  # once
    for number in (closed.number, cancelled.number):
        ticket = await service.ticket(number, org.service_actor)
        assert (ticket.contact_phone, ticket.address) == (None, None)
        assert ticket.text and ticket.category  # what the figures need stays
        assert (await actions(service, number))[-1][0] == "erase"
    erased = [e for e in await service.history(closed.number, org.service_actor) if e.action == "erase"]
    assert [(e.actor, e.data) for e in erased] == [
        ("system", {"fields": ["contact_phone", "address"], "why": "retention"})
    ]
    untouched = await service.ticket(still_open.number, org.service_actor)
    assert untouched.contact_phone == "+8613912345678" and untouched.address


async def test_a_resident_who_asks_is_forgotten_except_on_tickets_still_worked(
    service: TicketService, org: Org
) -> None:
    resident = await org.resident("asks")
    await service.remember_resident(resident, phone="13912345678", address="5栋302")
    neighbour = await org.resident("neighbour")
    closed = await closed_ticket(service, org, resident, "楼道灯坏了一个星期")
    theirs = await closed_ticket(service, org, neighbour, "路灯不亮好几天了")
    open_ticket = await service.create_ticket(
        NewTicket(resident, "property", "电梯坏了三天", phone="13912345678")
    )

    staff = Actor.responder(org["staff-a"])
    forgotten = await service.forget_resident("test:asks", staff)

    assert (forgotten.erased, forgotten.still_open) == ([closed.number], [open_ticket.number])
    me = await service.resident_for("test:asks")
    assert (me.phone, me.address, me.display_name) == (None, None, None)
    assert (await service.ticket(closed.number, org.service_actor)).contact_phone is None
    assert (await service.ticket(open_ticket.number, org.service_actor)).contact_phone == "+8613912345678"
    assert (await service.ticket(theirs.number, org.service_actor)).contact_phone == "+8613912345678"
    erased = [e for e in await service.history(closed.number, org.service_actor) if e.action == "erase"]
    assert [(e.actor, e.data["why"]) for e in erased] == [(str(staff), "resident asked")]


async def test_forgetting_someone_unknown_says_so(service: TicketService, org: Org) -> None:
    with pytest.raises(NotFound):
        await service.forget_resident("telegram:404", Actor.responder(org["staff-a"]))


def test_what_residents_are_told_is_what_the_sweep_does_by_default() -> None:
    settings = Settings(_env_file=None)
    assert Policy().keep_contact_for == timedelta(days=settings.keep_contact_days) == timedelta(days=365)
    assert settings.keep_chat_days == 30
    assert f"最后一次对话 {settings.keep_chat_days} 天后删除" in DATA_KEPT and "满一年后" in DATA_KEPT
