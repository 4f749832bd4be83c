"""The database goes away and comes back, through the REAL Rasa server and action server (a stack of its own,
on a private PostgreSQL server that this test crashes and starts again): residents are answered politely, not with silence or
“没太明白”; what they submit is saved; the logs keep none of their words; once the database is back the
action server registers what was saved by itself, at the time it was made, and writes each resident the
number (outbox, Kind.REGISTERED). A resident already in the conversation store is answered 503 meanwhile:
the relays keep their message and send it again (app/relay.py)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from alembic import command
from sqlalchemy import select, text

from app.relay import relay_headers
from app.settings import Settings
from minhu.stack import running
from tests.e2e.conftest import FORM_ANSWERS, REPO, STARTUP_TIMEOUT, Chat, Stack, _script, free_port
from tests.pgcluster import PrivatePostgres, private_postgres, unavailable
from tickets.catalogue import Catalogue
from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
from tickets.models import Notification, Resident, Ticket
from tickets.org import load_org, parse_org

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ID_NUMBER = "420102199001011234"


@pytest.fixture
async def outage(rasa: Path, tmp_path: Path) -> AsyncIterator[tuple[Stack, PrivatePostgres]]:
    """The assistant on a private PostgreSQL server that the test can crash and start again."""
    if problem := unavailable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the outage test needs a private PostgreSQL server in CI: {problem}", pytrace=False)
        pytest.skip(problem)
    with private_postgres() as server:
        server.create_database("minhu")
        url = server.url("minhu")
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        engine = create_engine(url)
        async with unit_of_work(session_factory(engine)) as session:
            await load_org(session, parse_org(REPO / "tests" / "fixtures" / "org.yml"), Catalogue.load())
        await engine.dispose()
        settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL=url)
        model = os.environ.get("MINHU_E2E_MODEL") or _script("rasa-train.sh")
        ports = {"action_port": free_port(), "rasa_port": free_port()}
        servers = running(settings, **ports, log_dir=tmp_path, model=model, wait_s=STARTUP_TIMEOUT)
        assistant = await asyncio.to_thread(servers.__enter__)  # `running` wants no event loop in its thread
        try:
            action_url = f"http://127.0.0.1:{ports['action_port']}"
            yield Stack(assistant.url, action_url, url, tmp_path, assistant), server
        finally:
            await asyncio.to_thread(servers.__exit__, None, None, None)


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


async def test_the_database_away_and_back(outage: tuple[Stack, PrivatePostgres]) -> None:
    stack, server = outage
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        known = Chat(http, stack, "outage-a")  # while the database answers: a ticket, the org lists read
        await known.say("电梯坏了三天了物业不管")
        assert "已受理" in await known.answer_form()

        await asyncio.to_thread(server.crash)
        resident = Chat(http, stack, "outage-b")
        await resident.say("地下车库积水 我车子都泡了 物业说排水泵坏了")
        assert "我来帮您登记" in resident.text and "没太明白" not in resident.text
        assert "已经保存了您的留言" in await resident.answer_form()
        await resident.say(f"查一下我的工单 我身份证号{ID_NUMBER}")
        assert "请稍后再试" in resident.text
        await resident.say("转人工")
        assert "已经保存了您的留言和转人工的请求" in resident.text
        # A resident whose conversation is in the store it cannot read: not begun again from nothing (their
        # form would go off track) but refused, so the relay keeps the message and sends it again later.
        async with http.post(
            stack.webhook,
            json={"sender": "web:outage-a", "message": "查一下我的工单"},
            headers=relay_headers(),
        ) as refused:
            assert refused.status == 503 and "unavailable" in (await refused.json())["error"]
        saved = [
            json.loads(line) for line in (stack.data_dir / "pending_requests.jsonl").read_text().splitlines()
        ]
        assert [s["kind"] for s in saved] == ["request", "handoff"]
        assert ID_NUMBER not in saved[1]["text"]  # kept masked

        await asyncio.to_thread(server.start)  # back; nobody says anything
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

        # The conversation held in memory while the database was away is in Rasa's store again.
        await resident.say("谢谢")

    engine = create_engine(stack.db_url)
    async with session_factory(engine)() as session:
        notes = (await session.scalars(select(Notification).where(Notification.kind == "registered"))).all()
        said = (
            await session.scalars(
                text("SELECT data FROM rasa.events WHERE sender_id = 'web:outage-b' AND type_name = 'user'")
            )
        ).all()
    await engine.dispose()
    texts = [json.loads(event)["text"] for event in said]
    assert texts[0] == "地下车库积水 我车子都泡了 物业说排水泵坏了" and texts[-1] == "谢谢"
    assert {FORM_ANSWERS["哪个社区"], FORM_ANSWERS["哪个小区"], FORM_ANSWERS["请核对"]} <= set(texts)
    assert sorted(n.payload["number"] for n in notes) == sorted([request.number, handoff.number])
    assert {n.recipient_id for n in notes} == {request.resident_id}
    for log in ("actions.log", "rasa.log"):
        written = (stack.data_dir / log).read_text(errors="replace")
        assert ID_NUMBER not in written and "request_body" not in written, log
