"""A resident of the web chat through the REAL Rasa 3.6 server and action server (the session's `stack`): the
dashboard application with its /chat relaying to Rasa's REST channel as `web:<random id>` (the sender in the
resident's cookie), consent first, the greeting's button pressed back as its payload, the request form
answered, and a ticket number in the answer and on 我的诉求 — for that web resident."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dashboard.app import HANDLER_ARGS, ChatConfig, make_app
from tests.dashboard.conftest import SECRET, Client
from tests.e2e.conftest import Stack, form_reply
from tickets.actors import SYSTEM
from tickets.channels import ChannelStore
from tickets.service import TicketService

pytestmark = pytest.mark.slow
FORM_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGE_CSRF = re.compile(r'data-csrf="([^"]+)"')
NUMBER = re.compile(r"MH-\d{8}-\d{4}")


@pytest.fixture
async def browser(stack: Stack, core: TicketService, tmp_path: Path) -> AsyncIterator[Client]:
    config = ChatConfig(rasa_url=stack.rasa_url, photo_dir=tmp_path / "photos", replay_every=3600)
    app = make_app(core, secret=SECRET, chat_config=config)
    server = TestServer(app)
    await server.start_server(**HANDLER_ARGS)
    async with TestClient(server) as client:
        yield client


async def test_a_web_resident_reports_a_problem_and_gets_a_ticket_number(
    browser: Client, core: TicketService
) -> None:
    form = FORM_CSRF.search(await (await browser.get("/chat")).text())
    assert form
    page = await (await browser.post("/chat/consent", data={"csrf_token": form.group(1)})).text()
    found = PAGE_CSRF.search(page)
    assert found
    token = found.group(1)

    async def say(text: str) -> list[dict[str, Any]]:
        response = await browser.post("/chat/messages", json={"text": text}, headers={"X-CSRF-Token": token})
        assert response.status == 200, await response.text()
        return list((await response.json())["bubbles"])

    bubbles = await say("你好")
    buttons = {b["title"]: b["payload"] for bubble in bubbles for b in bubble["buttons"]}
    assert buttons.get("物业服务") == "/property", bubbles
    await say(buttons["物业服务"])
    bubbles = await say("电梯坏了三天了物业一直不管")
    for _ in range(14):
        said = "\n".join(b["text"] for b in bubbles)
        reply = form_reply(said)
        if reply is None:
            break
        bubbles = await say(reply)
    else:
        raise AssertionError(f"form did not finish: {bubbles!r}")

    number = NUMBER.search(said)
    assert number, said
    mine = await (await browser.get("/chat/tickets")).text()
    assert number.group(0) in mine and "诉求已受理" in mine
    ticket = await core.ticket(number.group(0), SYSTEM)
    channel = await ChannelStore(core.sessions, core.clock).channel_of_resident(ticket.resident_id)
    assert channel.startswith("web:") and ticket.channel == "web"
