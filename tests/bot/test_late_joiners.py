"""Volunteers who join Telegram after work was sent their way (issue 13): what still stands reaches them when
they redeem their invite, and `/my` lists the offers they may still take with 接单 / 不接; an offer taken by
someone else or withdrawn meanwhile never arrives late. Through the real PTB Application and the fake Bot API."""

from __future__ import annotations

from sqlalchemy import select

from tests.bot.conftest import VOLUNTEER, Telegram
from tests.bot.fake_api import Call
from tests.bot.test_responders import resident_ticket
from tests.conftest import Org
from tickets.models import Offer, Status, Ticket

LATE = 1003  # vol-a3: offered eldercare work in 安居第一网格, not on Telegram until the test binds them


async def offered_to(org: Org, ticket: Ticket) -> set[int]:
    async with org.service.sessions() as session:
        return set(await session.scalars(select(Offer.responder_id).where(Offer.ticket_id == ticket.id)))


def about(tg: Telegram, chat: int, number: str) -> list[Call]:
    return [c for c in tg.api.sent(chat) if number in c.text]


async def test_an_open_offer_reaches_a_volunteer_when_they_join_and_under_my(tg: Telegram, org: Org) -> None:
    ticket = await resident_ticket(tg, org)
    assert org["vol-a3"] in await offered_to(org, ticket)
    await tg.deliver()  # vol-a3 has no Telegram yet: given up for now
    assert not tg.api.sent(LATE)

    await tg.bind(LATE, "vol-a3")
    await tg.deliver()
    offers = [c for c in tg.api.delivered(LATE) if c.text.startswith(f"📋 新工单 {ticket.number}")]
    assert len(offers) == 1, tg.api.texts(LATE)
    assert offers[0].buttons == [("接单", f"acc:{ticket.number}"), ("不接", f"dec:{ticket.number}")]
    assert await tg.deliver() == 0  # once

    listed = await tg.say(LATE, "/my")
    assert len(listed) == 1 and listed[0].startswith(f"📋 新工单 {ticket.number}")
    assert tg.api.sent(LATE)[-1].buttons == offers[0].buttons

    calls = await tg.press(LATE, f"acc:{ticket.number}", offers[0])
    assert any("您已接单" in c.text for c in calls)
    assert (await org.service.ticket(ticket.number, org.service_actor)).assignee_id == org["vol-a3"]


async def test_an_assignment_reaches_a_grid_worker_when_they_join(tg: Telegram, org: Org) -> None:
    ticket = await resident_ticket(tg, org, "facility_repair", "楼下路灯不亮")  # direct: grid-a1
    assert ticket.assignee_id == org["grid-a1"] and ticket.status == Status.DISPATCHED
    await tg.deliver()

    await tg.bind(1101, "grid-a1")
    await tg.deliver()
    assigned = [c for c in tg.api.delivered(1101) if c.text.startswith(f"📌 派给您的工单 {ticket.number}")]
    assert len(assigned) == 1 and ("接单", f"acc:{ticket.number}") in assigned[0].buttons


async def test_offers_taken_or_withdrawn_before_they_join_never_arrive(tg: Telegram, org: Org) -> None:
    taken = await resident_ticket(tg, org, text="想给我妈申请助餐")
    withdrawn = await resident_ticket(tg, org, text="独居老人想请人每周上门探访")
    still_open = await resident_ticket(tg, org, text="老人腿脚不便需要上门助浴")
    for ticket in (taken, withdrawn, still_open):
        assert org["vol-a3"] in await offered_to(org, ticket)
    await tg.deliver()
    await org.service.accept(taken.number, org["vol-a1"])
    await org.service.cancel(withdrawn.number, withdrawn.resident_id)
    await tg.deliver()

    await tg.bind(LATE, "vol-a3")
    await tg.deliver()
    assert not about(tg, LATE, taken.number) and not about(tg, LATE, withdrawn.number)
    assert len(about(tg, LATE, still_open.number)) == 1

    listed = await tg.say(LATE, "/my")
    assert [line.splitlines()[0] for line in listed] == [f"📋 新工单 {still_open.number}(先接先得)"]


async def test_an_offer_taken_before_delivery_is_not_sent_nor_its_taken_notice(
    tg: Telegram, org: Org
) -> None:
    await tg.bind(LATE, "vol-a3")
    ticket = await resident_ticket(tg, org)
    await org.service.accept(ticket.number, org["vol-a1"])  # before the delivery round came
    await tg.deliver()
    assert not about(tg, LATE, ticket.number)  # neither the offer nor 已被他人接单 for an offer never seen
    assert not [c for c in tg.api.sent(VOLUNTEER) if c.text.startswith("📋 新工单")]


async def test_my_says_when_there_is_nothing_to_do_or_take(tg: Telegram) -> None:
    assert await tg.say(VOLUNTEER, "/my") == ["您目前没有在办的工单,也没有等您接的工单。"]
