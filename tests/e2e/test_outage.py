"""The database goes away and comes back, through the REAL Rasa server and action server (a stack of its own,
on PostgreSQL behind a loopback proxy this test cuts): residents are answered politely, not with silence or
“没太明白”; what they submit is saved; the logs keep none of their words; once the database is back the
action server registers what was saved by itself, at the time it was made, and writes each resident the
number (outbox, Kind.REGISTERED)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.settings import Settings
from minhu.stack import running
from tests.conftest import truncate
from tests.e2e.conftest import REPO, STARTUP_TIMEOUT, Chat, Stack, _script, free_port
from tickets.catalogue import Catalogue
from tickets.db import create_engine, session_factory, unit_of_work
from tickets.models import Notification, Resident, Ticket
from tickets.org import load_org, parse_org

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ID_NUMBER = "420102199001011234"


class Proxy:
    """A loopback TCP proxy to the database that can be cut (listener and every connection closed) and
    started again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target, self.port = (host, port), free_port()
        self.server: asyncio.Server | None = None
        self.open: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self.open += [writer, up_writer]
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self.server = await asyncio.start_server(relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.open:
                writer.close()
            self.open = []
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def outage(pg_database: str, rasa: Path, tmp_path: Path) -> AsyncIterator[tuple[Stack, Proxy]]:
    engine = create_engine(pg_database)
    await truncate(engine)  # the session's PostgreSQL database, shared with the other tests
    async with unit_of_work(session_factory(engine)) as session:
        await load_org(session, parse_org(REPO / "tests" / "fixtures" / "org.yml"), Catalogue.load())
    url = make_url(pg_database)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL=through)
    model = os.environ.get("MINHU_E2E_MODEL") or _script("rasa-train.sh")
    ports = {"action_port": free_port(), "rasa_port": free_port()}
    try:
        servers = running(settings, **ports, log_dir=tmp_path, model=model, wait_s=STARTUP_TIMEOUT)
        assistant = await asyncio.to_thread(servers.__enter__)  # `running` wants no event loop in its thread
        try:
            action_url = f"http://127.0.0.1:{ports['action_port']}"
            yield Stack(assistant.url, action_url, pg_database, tmp_path, assistant), proxy
        finally:
            await asyncio.to_thread(servers.__exit__, None, None, None)
    finally:
        await proxy.cut()
        await engine.dispose()


async def tickets_of(stack: Stack, channel: str) -> list[Ticket]:
    engine = create_engine(stack.db_url)
    try:
        async with session_factory(engine)() as session:
            query = select(Ticket).join(Resident, Resident.id == Ticket.resident_id)
            return list(
                await session.scalars(query.where(Resident.channel_id == channel).order_by(Ticket.id))
            )
    finally:
        await engine.dispose()


# Known defect (issue 12 stays open for it): with the emergency model, a form answer given while the
# database is away ("安居社区" to 哪个社区) is rejected by the form and answered by the nlu_fallback rule
# (“没太明白”) instead of the validation's “请稍后再回复一次”. Found after the last merge; not strict, so a
# run that passes is not an error either.
@pytest.mark.xfail(
    reason="a form answer with the database away falls back to 没太明白 (issue 12)", strict=False
)
async def test_the_database_away_and_back(outage: tuple[Stack, Proxy]) -> None:
    stack, proxy = outage
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        known = Chat(http, stack, "outage-a")  # while the database answers: a ticket, the org lists read
        await known.say("电梯坏了三天了物业不管")
        assert "已受理" in await known.answer_form()

        await proxy.cut()
        resident = Chat(http, stack, "outage-b")
        await resident.say("地下车库积水 我车子都泡了 物业说排水泵坏了")
        assert "我来帮您登记" in resident.text and "没太明白" not in resident.text
        assert "已经保存了您的留言" in await resident.answer_form()
        await resident.say(f"查一下我的工单 我身份证号{ID_NUMBER}")
        assert "请稍后再试" in resident.text
        await resident.say("转人工")
        assert "已经保存了您的留言和转人工的请求" in resident.text
        await known.say("查一下我的工单")
        assert "请稍后再试" in known.text
        saved = [
            json.loads(line) for line in (stack.data_dir / "pending_requests.jsonl").read_text().splitlines()
        ]
        assert [s["kind"] for s in saved] == ["request", "handoff"]
        assert ID_NUMBER not in saved[1]["text"]  # kept masked

        await proxy.start()  # back; nobody says anything
        for _ in range(120):
            registered = await tickets_of(stack, "web:outage-b")
            if len(registered) == 2:
                break
            await asyncio.sleep(1)
        request, handoff = registered
        assert request.created_at == datetime.fromisoformat(saved[0]["saved_at"])  # the resident's time
        assert handoff.intent == "human_handoff" and handoff.created_at == datetime.fromisoformat(
            saved[1]["saved_at"]
        )

    engine = create_engine(stack.db_url)
    async with session_factory(engine)() as session:
        notes = (await session.scalars(select(Notification).where(Notification.kind == "registered"))).all()
    await engine.dispose()
    assert sorted(n.payload["number"] for n in notes) == sorted([request.number, handoff.number])
    assert {n.recipient_id for n in notes} == {request.resident_id}
    for log in ("actions.log", "rasa.log"):
        written = (stack.data_dir / log).read_text(errors="replace")
        assert ID_NUMBER not in written and "request_body" not in written, log
