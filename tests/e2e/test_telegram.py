"""A resident on Telegram through the REAL Rasa 3.6 server and action server (the session's `stack`, shared with
the other end-to-end tests) to a ticket: the real PTB Application on the fake Bot API, the bot relaying to
Rasa's REST channel as `telegram:<user id>`, Rasa's buttons as inline keyboards pressed back as payloads, the
request form answered in Telegram messages, the ticket registered for that Telegram resident; then the offer
delivered to a bound volunteer and taken from its button."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.app import build_application, minhu_of
from tests.bot.conftest import Telegram, config_for
from tests.bot.fake_api import FakeBotAPI
from tests.e2e.conftest import FORM_ANSWERS, Stack
from tickets.actors import SYSTEM
from tickets.models import Responder, Status
from tickets.service import TicketService

pytestmark = pytest.mark.slow
RESIDENT = 7001
VOLUNTEER = 7101


@pytest.fixture
async def tg(stack: Stack, core: TicketService) -> AsyncIterator[Telegram]:
    api = FakeBotAPI()
    await api.start()
    application = build_application(config_for(api, stack.rasa_url), core)
    async with application:
        yield Telegram(application, api)
    await minhu_of(application).relay.rasa.close()
    await api.stop()


async def test_a_telegram_resident_reaches_a_ticket_through_real_rasa(
    tg: Telegram, core: TicketService
) -> None:
    await tg.say(RESIDENT, "你好")
    greeting = tg.api.sent(RESIDENT)[-1]
    assert ("物业服务", "r:/property") in greeting.buttons
    await tg.press(RESIDENT, "r:/property", greeting)

    said = await tg.say(RESIDENT, "电梯坏了三天了物业一直不管")
    for _ in range(14):
        text = "\n".join(said)
        if "已受理" in text:
            break
        cue = next((cue for cue in FORM_ANSWERS if cue in text), None)
        assert cue is not None, f"unexpected reply: {text!r}"
        said = await tg.say(RESIDENT, FORM_ANSWERS[cue])
    else:
        raise AssertionError(f"form did not finish: {said!r}")

    resident = await core.resident_for(f"telegram:{RESIDENT}")
    tickets = await core.tickets_of_resident(resident.id)
    assert len(tickets) == 1 and tickets[0].category == "property"
    assert tickets[0].number in "\n".join(said)
    assert tickets[0].number in (await tg.say(RESIDENT, "/mytickets"))[0]
    assert await tg.minhu.relay.replay(tg.application.bot) == 0  # every message answered, none stored

    # Staff send it to a volunteer (the shared e2e database may have filled the usual responders' capacity);
    # the volunteer, once bound, gets it on Telegram and takes it from the button.
    ticket = await core.ticket(tickets[0].number, SYSTEM)
    async with core.sessions() as session:
        people = {r.code: r.id for r in await session.scalars(select(Responder))}
    if ticket.status == Status.CREATED:
        await core.dispatch(ticket.number, people["staff-a"], people["vol-a3"])
    else:
        await core.reassign(ticket.number, people["staff-a"], people["vol-a3"], "熟悉情况")
    await tg.bind(VOLUNTEER, "vol-a3")
    for _ in range(50):
        if await tg.deliver() == 0 and tg.api.delivered(VOLUNTEER):
            break
    assigned = next(c for c in tg.api.delivered(VOLUNTEER) if ticket.number in c.text)
    await tg.press(VOLUNTEER, f"acc:{ticket.number}", assigned)
    assert (await core.ticket(ticket.number, SYSTEM)).status == Status.ACCEPTED
