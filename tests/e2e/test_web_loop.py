"""The whole web loop in headless Chromium at a phone's size, through the REAL Rasa server and action server
(the session's `stack`): a resident opens the web chat, consents and reports a problem in their words,
answers the assistant's questions (tapping its buttons where it offers them), is told the ticket number and
adds a photo; a volunteer (web only) logged in with an invite code sees the offer appear live, accepts it
and sees the photo; a second volunteer, who had the offer open, loses the race and is told 已被他人接单
(and the photo is not theirs to see); the first resolves it with a note; the 回访 reaches the resident's
open chat, they rate it 不满意 on 我的诉求, and the ticket is reopened. Three browser contexts on the real
application (dashboard.app.make_app with the web chat relaying to the stack's Rasa) over the stack's
database; screenshots of each step under test-output/screenshots/, 长辈模式 included, and axe on the
volunteer's and the resident's pages.

The e2e database is shared by the session's tests: the two volunteers' web bindings are cleared and they are
put on duty first. 安居苑 is in 安居第一网格, so a 居家养老 request there is offered first to its party
volunteers, 王志强 (vol-a3) and 张建国 (vol-a1)."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dashboard.app import ChatConfig, make_app
from tests.browser.conftest import VIEWPORTS, Shot, assert_accessible, serve
from tests.e2e.conftest import Stack, form_reply
from tickets.actors import SYSTEM
from tickets.channels import ChannelStore
from tickets.models import Status
from tickets.outbox import Channel
from tickets.service import TicketService

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.parametrize("viewport", ["phone"])]

SECRET = bytes(range(64, 96))
PROBLEM = "我家老人腿脚不便,想申请助餐送餐上门"
NUMBER = re.compile(r"MH-\d{8}-\d{4}")
WINNER, LOSER = "vol-a3", "vol-a1"
TURN_TIMEOUT_MS = 60_000  # one turn of the real assistant on a busy machine
# The chat page's own words while its POST is open (static/chat.js).
ANSWERED = """n => document.querySelectorAll("#log > li").length > n + 1
  && !document.getElementById("status").textContent.startsWith("正在为您处理")"""


@pytest.fixture
async def site(stack: Stack, core: TicketService, tmp_path: Path) -> AsyncIterator[str]:
    config = ChatConfig(rasa_url=stack.rasa_url, photo_dir=tmp_path / "photos", replay_every=3600)
    async with serve(make_app(core, secret=SECRET, live_every=0.1, chat_config=config)) as base:
        yield base


def a_photo() -> bytes:
    """A small JPEG, as a phone's camera would send (64 × 48)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (230, 180, 60)).save(out, "JPEG")
    return out.getvalue()


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


class WebResident:
    """A resident on the chat page: taps the assistant's button when one of its latest answer says what
    they want to answer, else types it and sends; returns what the assistant answered."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.turn = 0  # the first message of the assistant's latest answer

    async def say(self, text: str) -> str:
        messages = self.page.locator("#log > li")
        before = await messages.count()
        for i in range(self.turn, before):
            button = messages.nth(i).get_by_role("button", name=text, exact=True)
            if await button.count():
                await button.click()
                break
        else:
            await self.page.get_by_label("您的消息").fill(text)
            await self.page.get_by_role("button", name="发送").click()
        await self.page.wait_for_function(ANSWERED, arg=before, timeout=TURN_TIMEOUT_MS)
        self.turn = before + 1
        answered = [await messages.nth(i).inner_text() for i in range(self.turn, await messages.count())]
        return "\n".join(answered)

    async def report(self, problem: str) -> str:
        """The problem, then the request form's questions answered (tests/e2e FORM_ANSWERS) to its end."""
        said = await self.say(problem)
        for _ in range(14):
            reply = form_reply(said)
            if reply is None:
                return said
            said = await self.say(reply)
        raise AssertionError(f"the form did not finish: {said!r}")


async def log_in(page: Any, base: str, core: TicketService, code: str) -> None:
    """The volunteer's browser bound with a fresh invite code (any earlier web binding of theirs cleared)."""
    store = ChannelStore(core.sessions, core.clock)
    await store.unbind(code, Channel.WEB)
    await core.set_on_duty(await core.responder_id_of(code), True)
    invite = await store.create_invite(code)
    await page.goto(f"{base}/v")
    await page.get_by_label("邀请码").fill(invite)
    await page.get_by_role("button", name="登录").click()
    await page.get_by_text("登录成功").wait_for()


async def test_resident_to_volunteer_and_back_on_phones_through_rasa(
    browser: Any, site: str, core: TicketService, shot: Shot
) -> None:
    resident, winner, loser = await phone(browser), await phone(browser), await phone(browser)
    try:
        await the_loop(resident, winner, loser, site, core, shot)
    except BaseException:
        for name, page in (("resident", resident), ("winner", winner), ("loser", loser)):
            await shot(page, f"{name}-failed")
        raise
    finally:
        for page in (resident, winner, loser):
            await page.context.close()


async def the_loop(
    resident: Any, winner: Any, loser: Any, site: str, core: TicketService, shot: Shot
) -> None:
    # Two volunteers of 安居社区 on their phones, logged in with invite codes, the page open.
    await winner.goto(f"{site}/v")
    await assert_accessible(winner)  # the login page
    await shot(winner, "volunteer-login")
    await log_in(winner, site, core, WINNER)
    await log_in(loser, site, core, LOSER)
    await shot(winner, "volunteer-waiting")

    # The resident: the notice and consent, then the problem in their words and the assistant's questions.
    await resident.goto(f"{site}/chat")
    await assert_accessible(resident)
    await shot(resident, "resident-notice")
    await resident.get_by_role("button", name="同意,开始聊天").click()
    said = await WebResident(resident).report(PROBLEM)
    assert "已受理" in said and "已推送给附近的党员志愿者" in said, said
    found = NUMBER.search(said)
    assert found, said
    number = found.group(0)
    ticket = await core.ticket(number, SYSTEM)
    assert (ticket.category, ticket.channel) == ("eldercare", "web")
    await shot(resident, "resident-registered")
    await assert_accessible(resident)
    await resident.get_by_label("📷 拍照或选照片(附在最近的诉求上)").set_input_files(
        {"name": "lunch.jpg", "mimeType": "image/jpeg", "buffer": a_photo()}
    )
    await resident.get_by_text(f"照片已附在您的诉求 {number} 上").wait_for()

    # Live: the offer appears on both volunteers' pages without a reload.
    await winner.locator(f"#offer-{number}").wait_for()
    await loser.locator(f"#offer-{number}").wait_for()
    # The title counts the offers waiting (other tests' tickets may be offered to the same volunteer).
    waiting = int(await winner.locator(".badge").first.get_attribute("data-count") or 0)
    assert waiting >= 1 and f"({waiting})" in await winner.title()
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

    # The winner: the resident's photo (theirs only), the phone (recorded), then 办结 with a note.
    photo = winner.get_by_role("img", name="居民发来的照片 1")
    await photo.wait_for()
    assert await photo.evaluate("img => img.complete && img.naturalWidth") == 64
    source = await photo.get_attribute("src")
    assert (await winner.context.request.get(f"{site}{source}")).status == 200
    assert (await loser.context.request.get(f"{site}{source}")).status == 404
    await winner.get_by_role("button", name="查看居民电话").click()
    await winner.locator('a[href^="tel:"]').wait_for()
    await shot(winner, "volunteer-ticket")
    await assert_accessible(winner)
    await winner.get_by_label("办理结果(居民会收到回访)").fill("已联系社区老年食堂,明天起每天中午送餐上门")
    await winner.get_by_role("button", name="办结", exact=True).click()
    await winner.get_by_text(f"工单 {number} 已办结").wait_for()

    # The resident: the 回访 reaches the open chat; on 我的诉求, 不满意 reopens the ticket.
    await resident.locator("#log > li").filter(has_text=number).get_by_role("link", name="去看看").click()
    form = resident.locator(f"#t-{number} form.rate")
    await form.wait_for()
    await shot(resident, "resident-follow-up")
    await assert_accessible(resident)
    await form.get_by_role("group", name="1. 工作人员联系过您吗?").get_by_label("是").check()
    await form.get_by_role("group", name="2. 您的问题解决了吗?").get_by_label("否").check()
    await form.get_by_label("不满意").check()
    await form.get_by_role("button", name="提交评价").click()
    await resident.get_by_text(f"工单 {number} 已重新办理").wait_for()
    await assert_accessible(resident)  # the flash message's green
    reopened = await core.ticket(number, SYSTEM)
    assert Status(reopened.status) not in (Status.RESOLVED, Status.CLOSED) and reopened.reopen_count == 1

    # 长辈模式: one tap, remembered; the pages are accessible in it too.
    await assert_accessible(winner)
    await winner.get_by_role("button", name="长辈模式(大字)").click()
    await winner.get_by_role("button", name="关闭长辈模式").wait_for()
    assert await winner.evaluate("document.documentElement.classList.contains('elder')")
    await assert_accessible(winner)
    await shot(winner, "volunteer-elder")
    await resident.get_by_role("button", name="长辈模式(大字)").click()
    await resident.get_by_role("button", name="关闭长辈模式").wait_for()
    await assert_accessible(resident)
    await shot(resident, "resident-elder")
