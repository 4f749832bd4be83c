"""The web chat when PostgreSQL restarts between a resident's turns (the compose run of docs/deploy.md: the
confirmation turn answered 500 for all 5 residents). A private server (tests/pgcluster.py), crashed and
started again while the web app's pool still holds the connections of the turn before: the next turn, and
the page's poll for updates, are answered as usual (the statement that finds its connection dead is tried
once more on a fresh one), and while the server stays down the resident gets a polite word (JSON, 503), not
the error page."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from alembic import command

from dashboard.app import HANDLER_ARGS, ChatConfig, make_app
from tests.dashboard.conftest import SECRET, Client, csrf_of
from tests.fake_rasa import FakeRasa
from tests.pgcluster import PrivatePostgres, private_postgres, unavailable
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.db import alembic_config, create_engine, session_factory
from tickets.service import TicketService

CSRF_RE = re.compile(r'data-csrf="([^"]+)"')


@pytest.fixture
async def server() -> AsyncIterator[PrivatePostgres]:
    if problem := unavailable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"needs a private PostgreSQL server in CI: {problem}", pytrace=False)
        pytest.skip(problem)
    with private_postgres() as pg:
        pg.create_database("minhu")
        await asyncio.to_thread(command.upgrade, alembic_config(pg.url("minhu")), "head")
        yield pg


@pytest.fixture
async def browser(server: PrivatePostgres, clock: ManualClock, tmp_path: Path) -> AsyncIterator[Client]:
    rasa = FakeRasa()
    await rasa.start()
    engine = create_engine(server.url("minhu"))
    service = TicketService(session_factory(engine), clock=clock, catalogue=Catalogue.load())
    config = ChatConfig(rasa_url=rasa.url, photo_dir=tmp_path / "photos", replay_every=3600)
    http = TestServer(make_app(service, secret=SECRET, clock=clock, chat_config=config))
    await http.start_server(**HANDLER_ARGS)
    client: Client = TestClient(http)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await http.close()
        await engine.dispose()
        await rasa.stop()


async def say(browser: Client, token: str, text: str) -> tuple[int, Any]:
    response = await browser.post("/chat/messages", json={"text": text}, headers={"X-CSRF-Token": token})
    body = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, body


async def consent(browser: Client) -> str:
    """Consent on the chat page; the page's CSRF token."""
    page = await browser.post("/chat/consent", data={"csrf_token": await csrf_of(browser, "/chat")})
    match = CSRF_RE.search(await page.text())
    assert match
    return match.group(1)


async def poll(browser: Client) -> tuple[int, Any]:
    response = await browser.get("/chat/updates")
    body = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, body


async def test_a_turn_after_a_database_restart_is_answered(server: PrivatePostgres, browser: Client) -> None:
    token = await consent(browser)
    assert (await say(browser, token, "楼道灯坏了"))[0] == 200  # the pool now holds live connections

    await asyncio.to_thread(server.crash)
    await asyncio.to_thread(server.start)
    status, body = await say(browser, token, "确认")  # within the pool's no-ping window (5 s)
    assert status == 200, body
    assert [b["text"] for b in body["bubbles"]] == ["收到:确认"]


async def test_while_the_database_is_down_the_resident_gets_a_polite_answer(
    server: PrivatePostgres, browser: Client
) -> None:
    token = await consent(browser)
    assert (await say(browser, token, "楼道灯坏了"))[0] == 200

    await asyncio.to_thread(server.crash)
    try:
        status, body = await say(browser, token, "确认")
    finally:
        await asyncio.to_thread(server.start)
    assert status == 503, body
    assert "请稍后再发" in body["error"]


async def test_the_poll_after_a_database_restart_is_answered(
    server: PrivatePostgres, browser: Client
) -> None:
    token = await consent(browser)
    assert (await say(browser, token, "楼道灯坏了"))[0] == 200
    assert await poll(browser) == (200, {"bubbles": []})  # the pool now holds live connections

    await asyncio.to_thread(server.crash)
    await asyncio.to_thread(server.start)
    assert await poll(browser) == (200, {"bubbles": []})  # within the pool's no-ping window (5 s)
    status, body = await say(browser, token, "确认")  # and the chat goes on
    assert status == 200, body


async def test_while_the_database_is_down_the_poll_gets_a_polite_503(
    server: PrivatePostgres, browser: Client
) -> None:
    token = await consent(browser)
    assert (await say(browser, token, "楼道灯坏了"))[0] == 200
    assert (await poll(browser))[0] == 200

    await asyncio.to_thread(server.crash)
    try:
        status, body = await poll(browser)
    finally:
        await asyncio.to_thread(server.start)
    assert status == 503, body
    assert body == {"error": "系统暂时忙不过来,新消息稍后会自动显示,请稍等。"}
    assert (await poll(browser))[0] == 200  # back with the server
