"""The whole stack in a real browser: a resident's request typed to the REAL Rasa server (REST channel) and
registered by the REAL action server appears in the open queue page of the dashboard (served on a real port
over the stack's database) without a reload; staff open the ticket and see its history.

The resident lives in 锦江社区: the e2e database is shared by the session's tests, most of which file in
安居社区, and the queue shows the 50 most urgent tickets."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from dashboard.app import make_app
from tests.browser.conftest import Shot, assert_accessible, serve
from tests.e2e.conftest import Chat, Stack
from tickets.service import TicketService

NUMBER = re.compile(r"MH-\d{8}-\d{4}")
PASSWORD = "锦江花园-路灯-2026"
REQUEST = "锦江花园10栋楼下的路灯坏了好几天了,晚上黑漆漆的"


@pytest.fixture
async def dashboard(core: TicketService) -> AsyncIterator[str]:
    async with serve(make_app(core, secret=bytes(32), live_every=0.1)) as base:
        yield base


@pytest.mark.browser
@pytest.mark.parametrize("viewport", ["desk"], indirect=True)
async def test_a_request_through_rasa_appears_in_the_open_queue(
    page: Any,
    dashboard: str,
    core: TicketService,
    stack: Stack,
    http: aiohttp.ClientSession,
    shot: Shot,
) -> None:
    username = f"linfeng-{uuid.uuid4().hex[:6]}"  # the e2e database outlives this test
    await core.add_account(username, await core.responder_id_of("staff-j"), PASSWORD)
    await page.goto(f"{dashboard}/login?next=/")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{dashboard}/")

    chat = Chat(http, stack, f"dash-{uuid.uuid4().hex[:8]}")
    await chat.say(REQUEST)
    said = await chat.answer_form({"哪个社区": "锦江社区", "哪个小区": "锦江花园", "几栋": "10栋1单元302"})
    assert "已受理" in said, said
    match = NUMBER.search(said)
    assert match, said
    number = match.group(0)

    link = page.get_by_role("link", name=number)
    await link.wait_for(state="visible", timeout=10_000)  # pushed by the server: no reload
    assert page.url == f"{dashboard}/"
    await shot(page, "queue-live")
    await assert_accessible(page)

    await link.click()
    await page.wait_for_url(f"{dashboard}/tickets/{number}")
    await page.get_by_text("路灯坏了").first.wait_for()
    assert "受理" in await page.locator("ol.history").inner_text()
