"""The residents' web chat pages in a real browser at a phone's size, each checked with axe-core in normal and
in 长辈模式: the notice, the chat, and 我的诉求 with its 回访 form and the green message a rating leaves (the
colour axe once found at 4.47:1, under AA). The assistant is the fake (tests/fake_rasa.py): Rasa's own
dialogue in a browser is tests/e2e/test_web_loop.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.app import ChatConfig, make_app
from tests.browser.conftest import Shot, assert_accessible, serve
from tests.conftest import Org
from tests.fake_rasa import FakeRasa
from tickets.clock import ManualClock
from tickets.models import Status
from tickets.service import NewTicket, TicketService

# PostgreSQL only, as the dashboard's browser tests (the HTTP tests cover SQLite); at a phone's width.
pytestmark = [
    pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True),
    pytest.mark.parametrize("viewport", ["phone"]),
]

SECRET = bytes(range(96, 128))


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    fake = FakeRasa(script=lambda sender, text: [{"text": "您好,请说说您遇到的问题。"}])
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def site(
    service: TicketService, clock: ManualClock, rasa: FakeRasa, tmp_path: Path
) -> AsyncIterator[str]:
    config = ChatConfig(rasa_url=rasa.url, photo_dir=tmp_path / "photos", replay_every=3600)
    async with serve(make_app(service, secret=SECRET, clock=clock, chat_config=config)) as base:
        yield base


async def resolved_ticket(service: TicketService, org: Org, resident_id: int, text: str) -> str:
    ticket = await service.create_ticket(NewTicket(resident_id, "eldercare", text, compound="安居苑"))
    await service.accept(ticket.number, org["vol-a3"])
    await service.resolve(ticket.number, org["vol-a3"], "已上门帮忙")
    return ticket.number


async def rate(page: Any, number: str, rating: str) -> None:
    form = page.locator(f"#t-{number} form.rate")
    await form.get_by_role("group", name="1. 工作人员联系过您吗?").get_by_label("是").check()
    await form.get_by_role("group", name="2. 您的问题解决了吗?").get_by_label("是").check()
    await form.get_by_label(rating, exact=True).check()
    await form.get_by_role("button", name="提交评价").click()


async def test_the_chat_pages_pass_axe_in_normal_and_elder_mode(
    page: Any, site: str, service: TicketService, org: Org, rasa: FakeRasa, shot: Shot
) -> None:
    await page.goto(f"{site}/chat")
    await assert_accessible(page)  # the notice and 同意
    await page.get_by_role("button", name="同意,开始聊天").click()
    await page.get_by_label("您的消息").fill("你好")
    await page.get_by_role("button", name="发送").click()
    await page.get_by_text("请说说您遇到的问题").wait_for()
    await assert_accessible(page)
    resident = await service.resident_for(rasa.received[-1][0])
    first = await resolved_ticket(service, org, resident.id, "想请志愿者每周上门帮老人打扫卫生")
    second = await resolved_ticket(service, org, resident.id, "想申请助餐,老人中午一个人在家")

    await page.get_by_role("link", name="我的诉求").click()
    await page.locator(f"#t-{first} form.rate").wait_for()
    await assert_accessible(page)  # the 回访 forms
    await rate(page, first, "满意")
    flash = page.locator("p.flash")
    await flash.filter(has_text=f"工单 {first} 已结案").wait_for()
    await shot(page, "rated")
    await assert_accessible(page)  # the green message on its pale green

    await page.get_by_role("button", name="长辈模式(大字)").click()
    await page.get_by_role("button", name="关闭长辈模式").wait_for()
    await page.get_by_role("link", name="← 全部诉求").click()
    await page.locator(f"#t-{second} form.rate").wait_for()
    await assert_accessible(page)
    await rate(page, second, "基本满意")
    await flash.filter(has_text=f"工单 {second} 已结案").wait_for()
    await shot(page, "rated-elder")
    await assert_accessible(page)  # the same message in 长辈模式
    for number in (first, second):
        assert (await service.ticket(number, org.service_actor)).status == Status.CLOSED
