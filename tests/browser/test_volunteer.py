"""The whole web loop in a real browser at a phone's size: a resident on the web chat consents and reports a
problem and is told its number; a volunteer (web only) logged in with an invite code sees the offer appear
live and accepts it; a second volunteer, who had the offer open, loses the race and is told 已被他人接单;
the first resolves it with a note; the resident finds the 回访 on 我的诉求, rates it 不满意, and the ticket
is reopened. Three browser contexts on the real application (dashboard.app.make_app with the web chat and
a fake Rasa REST channel); screenshots of each step, 长辈模式 included, and axe on the volunteer page.

The assistant is the fake (tests/fake_rasa.py): Rasa's own dialogue runs in tests/e2e. The ticket the
assistant would make is made through TicketService for the resident's web sender, with its number announced
through the outbox (as a request registered later is), so the chat page shows it as the assistant would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.app import ChatConfig, make_app
from tests.browser.conftest import VIEWPORTS, Shot, assert_accessible, serve
from tests.conftest import Org
from tests.fake_rasa import FakeRasa
from tickets.channels import ChannelStore
from tickets.clock import ManualClock
from tickets.models import Status
from tickets.service import NewTicket, TicketService

# PostgreSQL only, as the dashboard's browser tests (the HTTP tests cover SQLite); at a phone's width.
pytestmark = [
    pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True),
    pytest.mark.parametrize("viewport", ["phone"]),
]

SECRET = bytes(range(64, 96))
PROBLEM = "我家老人腿脚不便,想申请助餐送餐上门"


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    fake = FakeRasa(script=lambda sender, text: [{"text": "好的,您的诉求我记下了,正在为您登记。"}])
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def site(
    service: TicketService, clock: ManualClock, rasa: FakeRasa, tmp_path: Path
) -> AsyncIterator[str]:
    config = ChatConfig(rasa_url=rasa.url, photo_dir=tmp_path / "photos", replay_every=3600)
    app = make_app(service, secret=SECRET, clock=clock, live_every=0.05, chat_config=config)
    async with serve(app) as base:
        yield base


async def phone(browser: Any) -> Any:
    """A new phone: a browser context of its own (its own cookies), in Chinese."""
    context = await browser.new_context(
        viewport=VIEWPORTS["phone"],
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(15_000)
    return await context.new_page()


async def log_in(page: Any, base: str, service: TicketService, code: str) -> None:
    invite = await ChannelStore(service.sessions, service.clock).create_invite(code)
    await page.goto(f"{base}/v")
    await page.get_by_label("邀请码").fill(invite)
    await page.get_by_role("button", name="登录").click()
    await page.get_by_text("登录成功").wait_for()


async def test_resident_to_volunteer_and_back_on_phones(
    browser: Any, site: str, service: TicketService, org: Org, rasa: FakeRasa, shot: Shot
) -> None:
    resident, winner, loser = await phone(browser), await phone(browser), await phone(browser)

    # The resident: the notice and consent, then the problem in their words.
    await resident.goto(f"{site}/chat")
    await resident.get_by_role("button", name="同意,开始聊天").click()
    await resident.get_by_label("您的消息").fill(PROBLEM)
    await resident.get_by_role("button", name="发送").click()
    await resident.get_by_text("正在为您登记").wait_for()
    sender = rasa.received[-1][0]
    person = await service.resident_for(sender)
    await service.remember_resident(person.id, community="anju", compound="安居苑")

    # Two volunteers of 安居社区 on their phones, logged in with invite codes, the page open.
    await winner.goto(f"{site}/v")
    await assert_accessible(winner)  # the login page
    await shot(winner, "volunteer-login")
    await log_in(winner, site, service, "vol-a3")
    await log_in(loser, site, service, "vol-a1")
    await shot(winner, "volunteer-waiting")

    ticket = await service.create_ticket(
        NewTicket(
            person.id, "eldercare", PROBLEM, address="安居苑3栋2单元", phone="13812345678", announce=True
        )
    )
    number = ticket.number
    await resident.get_by_text(f"工单号 {number}").wait_for()  # the chat's updates
    await shot(resident, "resident-registered")

    # Live: the offer appears on both volunteers' pages without a reload.
    await winner.locator(f"#offer-{number}").wait_for()
    await loser.locator(f"#offer-{number}").wait_for()
    assert "(1)" in await winner.title()
    await winner.locator(f"#offer-{number} .new").wait_for()  # marked 新, and stays so
    await winner.wait_for_timeout(300)  # the ticket's later events refresh the panel again
    assert await winner.locator(f"#offer-{number} .new").count() == 1
    await shot(winner, "volunteer-offer")
    await loser.goto(f"{site}/v/tickets/{number}")  # reading the details, the 接单 button in view

    await winner.locator(f"#offer-{number}").get_by_role("button", name="接单").click()
    await winner.get_by_text(f"接单成功!工单 {number}").wait_for()
    await loser.get_by_role("button", name="接单").click()
    await loser.get_by_text(f"工单 {number} 已被他人接单").wait_for()
    await shot(loser, "volunteer-lost-the-race")
    assert await loser.locator(f"#offer-{number}").count() == 0

    # The winner: the phone (recorded), then 办结 with a note.
    await winner.get_by_role("button", name="查看居民电话").click()
    await winner.locator('a[href^="tel:"]').wait_for()
    await shot(winner, "volunteer-ticket")
    await assert_accessible(winner)
    await winner.get_by_label("办理结果(居民会收到回访)").fill("已联系社区老年食堂,明天起每天中午送餐上门")
    await winner.get_by_role("button", name="办结", exact=True).click()
    await winner.get_by_text(f"工单 {number} 已办结").wait_for()

    # The resident: the 回访 on 我的诉求; 不满意 reopens it.
    await resident.get_by_role("link", name="我的诉求").click()
    form = resident.locator(f"#t-{number} form.rate")
    await form.wait_for()
    await shot(resident, "resident-follow-up")
    await form.get_by_role("group", name="1. 工作人员联系过您吗?").get_by_label("是").check()
    await form.get_by_role("group", name="2. 您的问题解决了吗?").get_by_label("否").check()
    await form.get_by_label("不满意").check()
    await form.get_by_role("button", name="提交评价").click()
    await resident.get_by_text(f"工单 {number} 已重新办理").wait_for()
    reopened = await service.ticket(number, org.service_actor)
    assert Status(reopened.status) not in (Status.RESOLVED, Status.CLOSED) and reopened.reopen_count == 1

    # 长辈模式: one tap, remembered; the volunteer page is accessible in both modes.
    await assert_accessible(winner)
    await winner.get_by_role("button", name="长辈模式(大字)").click()
    await winner.get_by_role("button", name="关闭长辈模式").wait_for()
    assert await winner.evaluate("document.documentElement.classList.contains('elder')")
    await assert_accessible(winner)
    await shot(winner, "volunteer-elder")
    await resident.get_by_role("button", name="长辈模式(大字)").click()
    await resident.get_by_role("button", name="关闭长辈模式").wait_for()
    await shot(resident, "resident-elder")
    for page in (resident, winner, loser):
        await page.context.close()
