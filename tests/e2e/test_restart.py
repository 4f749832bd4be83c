"""Rasa restarts in the middle of a conversation: the conversation is in Rasa's SQL tracker store
(endpoints.yml; SQLite in the data folder here), so a half-filled request carries on where it was."""

from __future__ import annotations

import asyncio

import aiohttp
from sqlalchemy import select

from tests.e2e.conftest import Chat, Stack
from tickets.models import Community, Resident, Ticket
from tickets.service import TicketService


async def test_a_half_filled_request_carries_on_after_rasa_restarts(
    stack: Stack, http: aiohttp.ClientSession, core: TicketService
) -> None:
    chat = Chat(http, stack, "restart-midform")
    await chat.say("楼上养鸽子 鸽子屎落得我家窗台上到处都是")
    assert "哪个社区" in chat.text  # the form's first question
    await chat.say("安居社区")
    assert "哪个小区" in chat.text  # the second

    rasa = stack.assistant.rasa
    assert rasa.process is not None
    before = rasa.process.pid
    await asyncio.to_thread(stack.assistant.restart, rasa)
    assert rasa.process.pid != before

    await chat.say("安居苑")
    assert "几栋" in chat.text and "哪个社区" not in chat.text  # the third question, not the first again
    reply = await chat.answer_form()
    assert reply.startswith("已受理,工单号 MH-")
    async with core.sessions() as session:  # the answer given before the restart is on the ticket
        ticket = await session.scalar(
            select(Ticket).join(Resident).where(Resident.channel_id == f"web:{chat.sender}")
        )
        assert ticket is not None
        community = await session.get(Community, ticket.community_id)
    assert community is not None and community.name == "安居社区"
    assert (stack.data_dir / "rasa-tracker.db").exists()
