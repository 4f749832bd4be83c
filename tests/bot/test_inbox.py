"""Several bot processes (docs/deploy.md, Telegram): updates recorded once in the inbox (tickets/inbox.py) and
handled by workers (bot/worker.py) on PostgreSQL, in-process here (each worker with its own engine, as another
process would have); tests/bot/test_inbox_processes.py kills real processes."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot.app import build_application, minhu_of
from bot.rasa import WAIT_NOTICE
from bot.receiver import SECRET_HEADER, webhook_app, webhook_server
from bot.residents import START
from bot.worker import JournalRequest, Worker
from tests.bot.conftest import RESIDENT, FakeRasa, Telegram, config_for
from tests.bot.fake_api import FakeBotAPI
from tests.bot.test_responders import resident_ticket
from tests.conftest import Org
from tickets.clock import ManualClock
from tickets.db import create_engine
from tickets.inbox import MAX_ATTEMPTS, Inbox, Received, scoped_sessions
from tickets.models import ChatState, InboxCall, InboxUpdate, Resident, Status
from tickets.service import TicketService

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # several processes: PostgreSQL


@asynccontextmanager
async def a_worker(db_url: str, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock) -> AsyncIterator[Worker]:
    """A worker as `minhu bot --worker` builds it (bot/app.run_worker), on an engine of its own."""
    engine = create_engine(db_url)
    inbox = Inbox(engine, clock)
    service = TicketService(scoped_sessions(engine), clock=clock)
    application = build_application(config_for(api, rasa.url), service, request=JournalRequest(inbox))
    try:
        async with application:
            yield Worker(application, inbox, concurrency=4)
    finally:
        await minhu_of(application).relay.rasa.close()
        await engine.dispose()


def recorded(raw: dict[str, Any]) -> Received:
    body = raw.get("message") or raw["callback_query"]
    chat = body["chat"]["id"] if "chat" in body else body["message"]["chat"]["id"]
    return Received(raw["update_id"], chat, json.dumps(raw, ensure_ascii=False))


async def test_a_repeated_update_is_recorded_once_and_handled_once_in_order(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock, db_url: str
) -> None:
    updates = [tg.text_update(RESIDENT, f"第{i}句") for i in range(5)] + [tg.text_update(RESIDENT, "/help")]
    async with a_worker(db_url, api, rasa, clock) as worker:
        assert await worker.inbox.record([recorded(u) for u in updates]) == 6
        assert await worker.inbox.record([recorded(u) for u in updates[2:]]) == 0  # Telegram sent them again
        assert await worker.drain() == 6
    assert rasa.received == [(f"telegram:{RESIDENT}", f"第{i}句") for i in range(5)]
    texts = [t for t in api.texts(RESIDENT) if t != WAIT_NOTICE]  # a slow moment may add "please wait"
    assert texts[:5] == [f"收到:第{i}句" for i in range(5)] and "/mytickets" in texts[5]
    assert await worker.inbox.pending() == 0


async def test_a_card_conversation_goes_on_in_another_worker(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock, db_url: str
) -> None:
    """The card's step is in the database, not in the worker that saw the button: 办结 pressed on one worker,
    the note written on another."""
    ticket = await resident_ticket(tg, org, "facility_repair", "楼道灯坏了")
    await tg.bind(1101, "grid-a1")
    await org.service.accept(ticket.number, org["grid-a1"])
    async with a_worker(db_url, api, rasa, clock) as first, a_worker(db_url, api, rasa, clock) as second:
        await first.inbox.record([recorded(tg.press_update(1101, f"done:{ticket.number}"))])
        assert await first.drain() == 1
        async with org.service.sessions() as session:
            state = (await session.get_one(ChatState, 1101)).state
        assert state["user_data"] == {"ticket": ticket.number} and state["step"] is not None
        await second.inbox.record([recorded(tg.text_update(1101, "换了新灯泡"))])
        assert await second.drain() == 1
    assert "已办结" in api.texts(1101)[-1]
    assert (await org.service.ticket(ticket.number, org.service_actor)).status == Status.RESOLVED
    assert rasa.received == []  # the note did not go to the assistant as a new request
    async with org.service.sessions() as session:
        assert "step" not in (await session.get_one(ChatState, 1101)).state  # the conversation ended


async def test_a_worker_dying_before_the_commit_leaves_no_effect_and_sends_nothing_twice(
    tg: Telegram,
    org: Org,
    api: FakeBotAPI,
    rasa: FakeRasa,
    clock: ManualClock,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/start creates the resident and sends the introduction; the worker "dies" after sending it, before
    its transaction commits: no resident is left, and handling the update again sends nothing new (the
    journal answers the call) and creates the resident once."""
    async with a_worker(db_url, api, rasa, clock) as worker:
        start = tg.text_update(RESIDENT, "/start")
        await worker.inbox.record([recorded(start)])
        real = Inbox.handled

        async def dies(*args: Any, **kwargs: Any) -> None:
            raise ConnectionResetError("killed")

        monkeypatch.setattr(Inbox, "handled", dies)
        assert await worker.handle_one()
        async with org.service.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Resident)) == 0  # rolled back
            assert (await session.get_one(InboxUpdate, start["update_id"])).done_at is None
        assert [c.text for c in api.sent(RESIDENT)] == [START]
        monkeypatch.setattr(Inbox, "handled", real)
        assert await worker.drain() == 1
    assert [c.text for c in api.sent(RESIDENT)] == [START]  # sent once
    async with org.service.sessions() as session:
        residents = (await session.scalars(select(Resident.channel_id))).all()
        assert residents == [f"telegram:{RESIDENT}"]
        assert await session.scalar(select(func.count()).select_from(InboxCall)) == 1


class TrackingRasa(FakeRasa):
    """Fake Rasa that notes when two requests of one sender overlap."""

    overlaps: int = 0

    async def start(self) -> None:
        self.in_flight: set[str] = set()
        await super().start()

    async def _webhook(self, request: web.Request) -> web.Response:
        sender = (await request.json())["sender"]
        if sender in self.in_flight:
            self.overlaps += 1
        self.in_flight.add(sender)
        try:
            await asyncio.sleep(random.uniform(0.0, 0.02))
            return await super()._webhook(request)
        finally:
            self.in_flight.discard(sender)


async def test_two_workers_never_handle_one_chats_updates_at_once_or_out_of_order(
    tg: Telegram, org: Org, api: FakeBotAPI, clock: ManualClock, db_url: str
) -> None:
    rasa = TrackingRasa()
    await rasa.start()
    chats, each = 8, 12
    updates = [tg.text_update(5100 + c, f"{c}-{i}") for i in range(each) for c in range(chats)]
    try:
        async with a_worker(db_url, api, rasa, clock) as one, a_worker(db_url, api, rasa, clock) as two:
            await one.inbox.record([recorded(u) for u in updates])
            handled = await asyncio.gather(*(w.drain() for w in (one, two) for _ in range(4)))
    finally:
        await rasa.stop()
    assert sum(handled) == chats * each
    print(f"handled by task: {handled}")
    assert sum(handled[:4]) > 0 and sum(handled[4:]) > 0  # both workers worked
    assert rasa.overlaps == 0
    for c in range(chats):
        assert [m for s, m in rasa.received if s == f"telegram:{5100 + c}"] == [
            f"{c}-{i}" for i in range(each)
        ]
        answers = [t for t in api.texts(5100 + c) if t.startswith("收到:")]  # not the "please wait" notices
        assert answers == [f"收到:{c}-{i}" for i in range(each)]


async def test_the_webhook_receiver_checks_the_secret_and_records_a_resent_update_once(
    tg: Telegram, org: Org, api: FakeBotAPI, rasa: FakeRasa, clock: ManualClock, db_url: str
) -> None:
    """Telegram posts again when it did not get the 200 (the receiver died after the commit): one row."""
    update = tg.text_update(RESIDENT, "你好")
    async with a_worker(db_url, api, rasa, clock) as worker:
        app = webhook_app(worker.application.bot, worker.inbox, "s3cret")
        async with webhook_server(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/telegram"
            async with http.post(url, json=update, headers={SECRET_HEADER: "wrong"}) as answer:
                assert answer.status == 403
            for _ in range(3):
                async with http.post(url, json=update, headers={SECRET_HEADER: "s3cret"}) as answer:
                    assert answer.status == 200
            async with http.post(url, data=b"not json", headers={SECRET_HEADER: "s3cret"}) as answer:
                assert answer.status == 400
        assert await worker.inbox.pending() == 1
        assert await worker.drain() == 1
    assert [t for t in api.texts(RESIDENT) if t != WAIT_NOTICE] == ["收到:你好"]


async def test_one_receiver_is_active_at_a_time(engine: Any, clock: ManualClock) -> None:
    """A second receiver waits on the advisory lock until the first goes (here: leaves; killed: its
    connection closes, as tests/bot/test_inbox_processes.py shows)."""
    inbox = Inbox(engine, clock)
    order: list[str] = []

    async def receiver(name: str, hold: float) -> None:
        async with inbox.leader("test-receiver"):
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    first = asyncio.create_task(receiver("first", 0.5))
    await asyncio.sleep(0.1)
    await asyncio.gather(first, receiver("second", 0.0))
    assert order == ["first in", "first out", "second in", "second out"]
    await inbox.prune()  # nothing done a day ago: nothing goes, and the statement runs on PostgreSQL


async def test_an_update_that_keeps_failing_is_given_up_after_five_attempts(
    tg: Telegram,
    org: Org,
    api: FakeBotAPI,
    rasa: FakeRasa,
    clock: ManualClock,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It does not hold its chat up for ever: the chat's next update is handled after it."""

    async def fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("always")

    async with a_worker(db_url, api, rasa, clock) as worker:
        bad, good = tg.text_update(RESIDENT, "/help"), tg.text_update(RESIDENT, "/help")
        await worker.inbox.record([recorded(bad)])
        with monkeypatch.context() as patch:
            patch.setattr(Inbox, "handled", fails)
            for _ in range(MAX_ATTEMPTS):
                assert await worker.handle_one()
        await worker.inbox.record([recorded(good)])
        assert await worker.drain() == 2  # the bad one given up, then the next one handled
        async with org.service.sessions() as session:
            given_up = await session.get_one(InboxUpdate, bad["update_id"])
        assert given_up.attempts == MAX_ATTEMPTS and given_up.done_at is not None
    assert len(api.texts(RESIDENT)) == 2  # the help the failing attempt sent once (journal), then the next
