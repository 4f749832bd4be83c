"""Requests saved while the database was away are registered by themselves once it is back, keep the time
the resident made them, and the resident is sent the number (outbox, Kind.REGISTERED)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import actions.runtime
from actions.actions import ActionHandoff, ActionSubmitRequest
from actions.runtime import RUNTIME, PendingRequest
from actions.texts import HANDOFF_SAVED_TEXT, SAVED_FOR_RETRY_TEXT
from tests.actions.conftest import READY, Bot, texts, tracker
from tests.conftest import MONDAY_9AM, count
from tests.e2e.conftest import free_port
from tickets.clock import ManualClock
from tickets.create import MAX_BACKDATE
from tickets.db import create_engine, session_factory
from tickets.models import Notification, Resident, Ticket
from tickets.outbox import Kind, Recipient

EVERY = 0.2  # the replay loop's interval in these tests (20 s in the action server)
REGISTERED_WITHIN_S = 30.0  # generous: a busy machine slows the first rounds; the wait ends when it is there


@pytest.fixture
async def outage(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """Takes the database away (a PostgreSQL port nothing listens on) until the test calls the returned
    function; the replay loop runs every EVERY seconds."""
    monkeypatch.setattr(actions.runtime, "CALL_TIMEOUT", 0.5)
    monkeypatch.setattr(RUNTIME, "replay_every", EVERY)
    real = bot.service.sessions
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/minhu")
    bot.service.sessions = session_factory(engine)

    def back() -> None:
        bot.service.sessions = real

    yield back
    bot.service.sessions = real
    await engine.dispose()


async def tickets_of(bot: Bot, channel: str) -> list[Ticket]:
    async with bot.service.sessions() as session:
        return list(
            await session.scalars(
                select(Ticket)
                .join(Resident, Resident.id == Ticket.resident_id)
                .where(Resident.channel_id == channel)
            )
        )


async def registered_notes(bot: Bot) -> list[Notification]:
    async with bot.service.sessions() as session:
        return list(await session.scalars(select(Notification).where(Notification.kind == Kind.REGISTERED)))


async def eventually(bot: Bot, channel: str, within_s: float) -> list[Ticket]:
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        if found := await tickets_of(bot, channel):
            return found
        await asyncio.sleep(EVERY / 4)
    return []


async def test_a_saved_request_is_registered_by_itself_with_its_time_and_the_number_is_sent(
    bot: Bot, clock: ManualClock, outage: Any
) -> None:
    messages, _ = await bot.run(ActionSubmitRequest(), tracker(sender="telegram:5001", slots=READY))
    assert texts(messages) == SAVED_FOR_RETRY_TEXT  # told it is saved
    assert [p.saved_at for p in RUNTIME.pending.all()] == [MONDAY_9AM.isoformat()]
    clock.advance(timedelta(minutes=40))
    await asyncio.sleep(3 * EVERY)
    assert RUNTIME.pending.all() != []  # still away: kept
    outage()  # the database is back; nobody else says anything
    [ticket] = await eventually(bot, "telegram:5001", within_s=REGISTERED_WITHIN_S)
    assert ticket.created_at == MONDAY_9AM  # the resident's time, not the replay's
    property_ = bot.service.catalogue.get("property")
    assert ticket.respond_by == bot.service.calendar.deadline(MONDAY_9AM, property_.respond_within)
    assert ticket.number.startswith("MH-20261123-") and ticket.text == READY["description"]
    [note] = await registered_notes(bot)
    assert (note.recipient_type, note.recipient_id, note.ticket_id) == (
        Recipient.RESIDENT,
        ticket.resident_id,
        ticket.id,
    )
    assert note.payload["number"] == ticket.number and not RUNTIME.pending.path.exists()
    assert [n for n in RUNTIME.pending.path.parent.iterdir() if n.name.startswith("pending")] == []


async def test_a_saved_handoff_is_handed_over_by_itself(bot: Bot, clock: ManualClock, outage: Any) -> None:
    events = [{"event": "user", "text": "我的电话13912345678 房子的事说不清"}]
    messages, _ = await bot.run(
        ActionHandoff(),
        tracker(
            "转人工", "human_handoff", sender="telegram:5002", slots={"community": "安居社区"}, events=events
        ),
    )
    assert texts(messages) == HANDOFF_SAVED_TEXT
    clock.advance(timedelta(minutes=5))
    outage()
    [ticket] = await eventually(bot, "telegram:5002", within_s=REGISTERED_WITHIN_S)
    assert ticket.intent == "human_handoff" and ticket.created_at == MONDAY_9AM
    assert ticket.assignee_id == bot.org["staff-a"] and "139****5678" in ticket.text
    [note] = await registered_notes(bot)
    assert note.payload == {"number": ticket.number, "category": ticket.category, "handoff": True}


async def test_the_saved_time_comes_from_the_service_clock(bot: Bot, outage: Any) -> None:
    await bot.run(ActionSubmitRequest(), tracker(sender="web:dave", slots=READY))
    [saved] = RUNTIME.pending.all()
    assert saved.saved_at == MONDAY_9AM.isoformat()


async def test_replay_registers_at_once_what_is_older_than_a_week(bot: Bot, clock: ManualClock) -> None:
    old = (MONDAY_9AM - MAX_BACKDATE - timedelta(hours=1)).isoformat()
    RUNTIME.pending.add(PendingRequest("web:old", "property", READY["description"], "安居社区", saved_at=old))
    [intake] = await RUNTIME.pending.replay(bot.service)
    assert intake.ticket.created_at == clock.now()  # registered, its deadlines from now


async def test_replay_sets_aside_what_the_core_refuses_for_good(bot: Bot) -> None:
    RUNTIME.pending.add(PendingRequest(channel_id="web:c", category="no_such_category", text="x"))
    RUNTIME.pending.add(PendingRequest("web:d", "property", READY["description"], "安居社区"))
    [intake] = await RUNTIME.pending.replay(bot.service)
    assert intake.ticket.text == READY["description"] and RUNTIME.pending.all() == []
    rejected = RUNTIME.pending.path.with_suffix(".rejected.jsonl").read_text(encoding="utf-8")
    assert '"web:c"' in rejected and '"web:d"' not in rejected


async def test_replay_stops_at_the_first_database_error_and_keeps_everything(bot: Bot, outage: Any) -> None:
    for sender in ("web:e", "web:f"):
        RUNTIME.pending.add(PendingRequest(sender, "property", READY["description"], "安居社区"))
    assert await RUNTIME.pending.replay(bot.service) == []
    assert [p.channel_id for p in RUNTIME.pending.all()] == ["web:e", "web:f"]
    outage()
    assert len(await RUNTIME.pending.replay(bot.service)) == 2
    assert await count(bot.service, Ticket) == 2
