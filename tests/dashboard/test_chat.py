"""The residents' web chat (/chat) through aiohttp's test client, over the real application with a fake Rasa
REST channel on a real port (tests/fake_rasa.py, as the Telegram tests use): consent before anything is
kept, the relay and the sender cookie, tampered and foreign cookies, another resident's ticket (IDOR),
CSRF, XSS shown as text, the rate limit, photo checks, 长辈模式, Rasa down → stored and answered later,
the 回访 and forgetting, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from PIL import Image
from sqlalchemy import select

from app.relay import KEPT_NOTICE, STORED_NOTICE
from dashboard.app import ChatConfig, make_app
from dashboard.chat import NEWS, RELAY
from dashboard.chat_relay import COOKIE, Identity
from tests.conftest import Org, count
from tests.dashboard.conftest import SECRET, Client, NewClient, browsers_on, sign_in
from tests.dashboard.test_live import next_event
from tests.fake_rasa import FakeRasa
from tickets import outbox
from tickets.actors import SYSTEM
from tickets.clock import ManualClock
from tickets.errors import DatabaseUnavailable
from tickets.models import InboundMessage, Resident, Status
from tickets.privacy import DATA_DELETION, DATA_KEPT
from tickets.service import NewTicket, TicketService

CSRF_RE = re.compile(r'data-csrf="([^"]+)"')
FORM_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
async def chat_app(
    service: TicketService, clock: ManualClock, rasa: FakeRasa, photo_dir: Path
) -> web.Application:
    config = ChatConfig(
        rasa_url=rasa.url, photo_dir=photo_dir, replay_every=3600, messages_per_minute=5, news_every=0.05
    )
    return make_app(service, secret=SECRET, clock=clock, live_every=0.05, chat_config=config)


@pytest.fixture
async def browsers(chat_app: web.Application) -> AsyncIterator[NewClient]:
    """Browsers on the one server, each with its own cookies."""
    async with browsers_on(chat_app) as new:
        yield new


@pytest.fixture
async def browser(browsers: NewClient) -> Client:
    return await browsers()


async def form_token(client: Client, path: str = "/chat") -> str:
    match = FORM_CSRF_RE.search(await (await client.get(path)).text())
    assert match, path
    return match.group(1)


async def consent(client: Client) -> str:
    """Agree on the first visit; returns the page's CSRF token for the script's requests."""
    response = await client.post("/chat/consent", data={"csrf_token": await form_token(client)})
    page = await response.text()
    match = CSRF_RE.search(page)
    assert match, page[:500]
    return match.group(1)


async def say(client: Client, token: str, text: str) -> tuple[int, dict[str, Any]]:
    response = await client.post("/chat/messages", json={"text": text}, headers={"X-CSRF-Token": token})
    return response.status, await response.json()


def texts(body: dict[str, Any]) -> list[str]:
    return [b["text"] for b in body["bubbles"]]


async def sender_of(rasa: FakeRasa) -> str:
    return rasa.received[-1][0]


async def resident_ticket(service: TicketService, sender: str, text: str = "楼道灯坏了好几天") -> str:
    resident = await service.resident_for(sender)
    await service.remember_resident(resident.id, community="anju")
    ticket = await service.create_ticket(NewTicket(resident.id, "facility_repair", text, phone="13812345678"))
    return ticket.number


# ------------------------------------------------------------------------------------------ consent


async def test_first_visit_shows_the_notice_and_keeps_nothing_before_consent(
    browser: Client, service: TicketService, rasa: FakeRasa
) -> None:
    page = await (await browser.get("/chat")).text()
    assert DATA_KEPT in page and DATA_DELETION in page and "同意" in page and 'lang="zh-CN"' in page
    token = await form_token(browser)
    refused = await browser.post("/chat/messages", json={"text": "你好"}, headers={"X-CSRF-Token": token})
    assert refused.status == 403 and "同意" in (await refused.json())["error"]
    assert rasa.received == []
    assert await count(service, Resident) == 0 and await count(service, InboundMessage) == 0
    assert COOKIE not in {c.key for c in browser.session.cookie_jar}

    await consent(browser)
    assert COOKIE in {c.key for c in browser.session.cookie_jar}
    async with service.sessions() as session:
        resident = (await session.scalars(select(Resident))).one()
    assert resident.channel_id.startswith("web:") and resident.consent_at is not None
    assert "发送" in await (await browser.get("/chat")).text()  # the chat itself now


async def test_messages_are_relayed_with_the_cookie_sender_and_buttons_come_back(
    browser: Client, rasa: FakeRasa, service: TicketService
) -> None:
    token = await consent(browser)
    rasa.script = lambda sender, message: (
        [
            {
                "text": "请问是哪个小区?",
                "buttons": [{"title": "安居苑", "payload": '/inform{"compound":"安居苑"}'}],
            }
        ]
        if message == "楼道灯坏了"
        else [{"text": f"好的:{message}"}]
    )
    status, body = await say(browser, token, "楼道灯坏了")
    assert status == 200 and texts(body) == ["请问是哪个小区?"]
    assert body["bubbles"][0]["buttons"] == [{"title": "安居苑", "payload": '/inform{"compound":"安居苑"}'}]
    status, body = await say(browser, token, body["bubbles"][0]["buttons"][0]["payload"])
    assert texts(body) == ['好的:/inform{"compound":"安居苑"}']
    senders = {sender for sender, _ in rasa.received}
    assert len(senders) == 1 and re.fullmatch(r"web:[A-Za-z0-9_-]{22}", sender := senders.pop())
    # Every call names the sender to the deployment's entry, which keeps one sender on one Rasa replica.
    assert rasa.sender_headers == [sender, sender]
    assert await count(service, InboundMessage) == 2  # stored, and both answered


async def test_two_browsers_are_two_residents(browsers: NewClient, rasa: FakeRasa) -> None:
    first, second = await browsers(), await browsers()
    await say(first, await consent(first), "一")
    await say(second, await consent(second), "二")
    assert rasa.received[0][0] != rasa.received[1][0]


# ------------------------------------------------------------------------------------------ cookies


@pytest.mark.parametrize("how", ["tampered", "foreign", "dashboard session"])
async def test_a_tampered_or_foreign_cookie_is_a_new_anonymous_visitor(
    browsers: NewClient, rasa: FakeRasa, how: str
) -> None:
    owner = await browsers()
    await say(owner, await consent(owner), "我的诉求")
    genuine = next(c.value for c in owner.session.cookie_jar if c.key == COOKIE)
    if how == "tampered":
        value = genuine[:-6] + ("A" if genuine[-6] != "A" else "B") + genuine[-5:]
    elif how == "foreign":  # a well-formed cookie of another server (another secret), same sender shape
        other = Identity(bytes(range(1, 33)))
        response = web.Response()
        other.keep(response, await sender_of(rasa))
        value = response.cookies[COOKIE].value
    else:
        await owner.get("/login")
        value = next(c.value for c in owner.session.cookie_jar if c.key == "minhu_session")
    intruder = await browsers()
    intruder.session.cookie_jar.update_cookies({COOKIE: value})
    page = await intruder.get("/chat")
    assert "开始之前" in await page.text()  # the notice: a new visitor
    token = await form_token(intruder)
    refused = await intruder.post("/chat/messages", json={"text": "x"}, headers={"X-CSRF-Token": token})
    assert refused.status == 403
    assert (await intruder.get("/chat/tickets", allow_redirects=False)).status == 303
    await say(intruder, await consent(intruder), "我是新来的")
    assert rasa.received[-1][0] != rasa.received[0][0]  # never the owner's sender


# ------------------------------------------------------------------------------------------ tickets


async def test_my_tickets_and_another_residents_ticket_refused(
    browsers: NewClient, rasa: FakeRasa, service: TicketService, org: Org
) -> None:
    mine, theirs = await browsers(), await browsers()
    await say(mine, await consent(mine), "你好")
    number = await resident_ticket(service, await sender_of(rasa))
    await say(theirs, await consent(theirs), "你好")
    other = await resident_ticket(service, await sender_of(rasa), "邻居家漏水到我家")

    page = await (await mine.get("/chat/tickets")).text()
    assert number in page and other not in page and "诉求已受理" in page and "楼道灯坏了好几天" in page
    assert "13812345678" not in page
    refused = await mine.get(f"/chat/tickets/{other}")
    assert refused.status == 404 and "邻居家漏水" not in await refused.text()
    token = await form_token(mine, "/chat/tickets")
    rating = {"csrf_token": token, "contacted": "1", "solved": "1", "rating": "satisfied"}
    assert (await mine.post(f"/chat/tickets/{other}/rate", data=rating)).status == 404
    assert (await mine.get(f"/chat/tickets/{number}")).status == 200


async def test_the_feedback_waits_for_the_next_visit_and_unsatisfied_reopens(
    browser: Client, rasa: FakeRasa, service: TicketService, org: Org
) -> None:
    token = await consent(browser)
    await say(browser, token, "你好")
    sender = await sender_of(rasa)
    number = await resident_ticket(service, sender)
    ticket = await service.ticket(number, SYSTEM)
    if ticket.assignee_id is None:
        await service.dispatch(number, org["staff-a"], org["grid-a1"])
        ticket = await service.ticket(number, SYSTEM)
    assignee = ticket.assignee_id or org["grid-a1"]
    await service.accept(number, assignee)
    await service.resolve(number, assignee, "灯已经换好了")

    # The Telegram delivery does not take a web resident's notifications; they wait for the page.
    claimed = await outbox.claim(service.sessions, service.clock.now(), timedelta(minutes=1))
    assert all(c.recipient_type is not outbox.Recipient.RESIDENT for c in claimed)
    body = await (await browser.get("/chat/updates")).json()
    shown = texts(body)
    assert any(f"您的诉求 {number} 已由" in t and "接单" in t for t in shown) and any(
        f"您的诉求 {number} 已由" in t and "办结" in t for t in shown
    )
    assert body["bubbles"][-1]["link"] == f"/chat/tickets#t-{number}"
    assert (await (await browser.get("/chat/updates")).json())["bubbles"] == []  # shown once

    page = await (await browser.get("/chat/tickets")).text()
    assert "回访" in page and "已办结:灯已经换好了" in page
    form_csrf = FORM_CSRF_RE.search(page)
    assert form_csrf
    answers = {"csrf_token": form_csrf.group(1), "contacted": "1", "solved": "0", "rating": "unsatisfied"}
    done = await browser.post(f"/chat/tickets/{number}/rate", data=answers)
    assert "已重新办理" in await done.text()
    assert Status((await service.ticket(number, SYSTEM)).status) is not Status.CLOSED
    assert (await service.ticket(number, SYSTEM)).reopen_count == 1


# ------------------------------------------------------------------------------------------ security


async def test_a_message_under_a_cookie_without_consent_behind_it_is_refused_and_not_kept(
    browser: Client, rasa: FakeRasa, service: TicketService
) -> None:
    token = await consent(browser)
    async with service.sessions() as session:  # the consent withdrawn behind the page's back
        resident = (await session.scalars(select(Resident))).one()
        resident.consent_at = None
        await session.commit()
    status, body = await say(browser, token, "你好")
    assert status == 403 and "同意" in body["error"]
    assert rasa.received == [] and await count(service, InboundMessage) == 0


async def test_the_live_stream_brings_what_waited_then_what_comes_once(
    browser: Client, rasa: FakeRasa, chat_app: web.Application
) -> None:
    assert (await browser.get("/chat/live")).status == 403  # no consent, no stream (and nothing kept)
    token = await consent(browser)
    await say(browser, token, "你好")
    relay = chat_app[RELAY]
    sender = await sender_of(rasa)
    await relay.keep_for_later(sender, [{"text": "您不在时的回复"}])
    stream = await browser.get("/chat/live")
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    _, waited = await next_event(stream, "bubbles")
    await next_event(stream, "ready")
    await relay.keep_for_later(sender, [{"text": "后来的回复"}], "(回复您 10:00 的留言)")
    _, later = await next_event(stream, "bubbles")  # the news poller saw it: pushed, not asked for
    stream.close()
    assert texts(waited) == ["您不在时的回复"] and texts(later) == ["(回复您 10:00 的留言)", "后来的回复"]
    assert (await (await browser.get("/chat/updates")).json())["bubbles"] == []  # each shown once


async def test_open_streams_end_when_the_server_stops(browser: Client, chat_app: web.Application) -> None:
    await consent(browser)
    stream = await browser.get("/chat/live")
    await next_event(stream, "ready")
    chat_app[NEWS].stop()  # on_shutdown: the server does not wait for the open pages
    assert await asyncio.wait_for(stream.content.read(), 5) == b""
    stream.close()


async def test_a_post_without_the_csrf_token_is_refused(browser: Client, rasa: FakeRasa) -> None:
    await consent(browser)
    refused = await browser.post("/chat/messages", json={"text": "你好"})
    assert refused.status == 403 and rasa.received == []
    assert (await browser.post("/chat/consent")).status == 403
    assert (await browser.post("/chat/forget")).status == 403


async def test_script_and_img_onerror_are_shown_as_text(
    browsers: NewClient, rasa: FakeRasa, service: TicketService, org: Org
) -> None:
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    browser = await browsers()
    token = await consent(browser)
    status, body = await say(browser, token, hostile)
    assert status == 200 and texts(body) == [f"收到:{hostile}"]  # data for textContent, never markup
    script = (Path(__file__).parents[2] / "dashboard" / "static" / "chat.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "textContent" in script
    number = await resident_ticket(service, await sender_of(rasa), f"楼道灯坏了 {hostile}")
    staff = await browsers()
    await sign_in(staff, org, "staff-a")
    for page in (
        await (await browser.get(f"/chat/tickets/{number}")).text(),  # the resident's 我的诉求
        await (await staff.get(f"/tickets/{number}")).text(),  # the dashboard's ticket page
    ):
        assert "<script>alert(1)" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_too_many_messages_get_a_polite_429(browser: Client, rasa: FakeRasa) -> None:
    token = await consent(browser)
    for i in range(5):
        assert (await say(browser, token, f"第{i}条"))[0] == 200
    status, body = await say(browser, token, "再来一条")
    assert status == 429 and "请稍等" in body["error"]
    assert len(rasa.received) == 5


async def test_new_residents_from_one_address_are_limited_too(
    browsers: NewClient, service: TicketService
) -> None:
    for _ in range(10):
        await consent(await browsers())
    late = await browsers()
    refused = await late.post("/chat/consent", data={"csrf_token": await form_token(late)})
    assert refused.status == 429 and "请稍等" in await refused.text()
    assert await count(service, Resident) == 10


# ------------------------------------------------------------------------------------------ photos


def files(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.exists() else []


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (640, 480), *, gps: bool = False) -> bytes:
    image = Image.new("RGB", size, (200, 120, 40))
    out = io.BytesIO()
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"  # Make
        exif[0x8825] = {1: "N", 2: (30.0, 35.0, 0.0), 3: "E", 4: (114.0, 17.0, 0.0)}  # GPS
        image.save(out, fmt, exif=exif)
    else:
        image.save(out, fmt)
    return out.getvalue()


async def upload(client: Client, token: str, data: bytes, name: str = "p.jpg") -> tuple[int, dict[str, Any]]:
    form = FormData()
    form.add_field("photo", data, filename=name, content_type="image/jpeg")
    response = await client.post("/chat/photos", data=form, headers={"X-CSRF-Token": token})
    return response.status, await response.json()


async def test_a_photo_is_cleaned_attached_and_shown_to_staff_only(
    browsers: NewClient, rasa: FakeRasa, service: TicketService, org: Org, photo_dir: Path
) -> None:
    browser = await browsers()
    token = await consent(browser)
    status, body = await upload(browser, token, image_bytes(gps=True))
    assert status == 409 and "没有正在办理的诉求" in body["error"]
    assert files(photo_dir) == []

    await say(browser, token, "你好")
    number = await resident_ticket(service, await sender_of(rasa))
    status, body = await upload(browser, token, image_bytes(gps=True))
    assert status == 200 and number in body["bubbles"][0]["text"]
    (stored,) = files(photo_dir)
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", stored.name) and stored.stat().st_mode & 0o077 == 0
    with Image.open(stored) as kept:
        assert dict(kept.getexif()) == {} and "exif" not in kept.info and kept.size == (640, 480)

    url = f"/tickets/{number}/photos/{stored.name}"
    assert (await browser.get(url, allow_redirects=False)).status == 302  # the resident's browser: login
    staff = await browsers()
    await sign_in(staff, org, "staff-a")
    assert stored.name in await (await staff.get(f"/tickets/{number}")).text()
    shown = await staff.get(url)
    assert shown.status == 200 and shown.headers["Content-Type"] == "image/jpeg"
    other = await browsers()
    await sign_in(other, org, "staff-j")  # another community's staff
    assert (await other.get(url)).status == 404
    assert (await staff.get(f"/tickets/{number}/photos/{'0' * 32}.jpg")).status == 404


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"%PDF-1.4 not a photo at all", 415, "这不是照片"),
        (b"\xff\xd8\xff" + b"0" * (10 * 1024 * 1024), 413, "照片太大了"),
        ("bomb", 413, "尺寸太大"),
        (b"", 400, "没有收到照片"),
    ],
    ids=["not an image", "too large", "bomb", "empty"],
)
async def test_uploads_that_are_not_photos_are_refused_clearly(
    browser: Client,
    rasa: FakeRasa,
    service: TicketService,
    org: Org,
    photo_dir: Path,
    data: Any,
    status: int,
    words: str,
) -> None:
    token = await consent(browser)
    await say(browser, token, "你好")
    await resident_ticket(service, await sender_of(rasa))
    if data == "bomb":  # 100 megapixels of one colour: a tiny file that would take gigabytes to open
        out = io.BytesIO()
        Image.new("1", (10_000, 10_000)).save(out, "PNG")
        data = out.getvalue()
        assert len(data) < 100_000
    got, body = await upload(browser, token, data)
    assert (got, words in body["error"]) == (status, True)
    assert files(photo_dir) == []


# ------------------------------------------------------------------------------------------ elder mode


async def test_elder_mode_is_one_tap_and_remembered(browser: Client) -> None:
    page = await (await browser.get("/chat")).text()
    assert 'class="elder"' not in page and "长辈模式" in page
    token = await form_token(browser)
    switched = await browser.post("/chat/elder", data={"csrf_token": token, "on": "1", "next": "/chat"})
    assert switched.status == 200 and '<html lang="zh-CN" class="elder">' in await switched.text()
    assert '<html lang="zh-CN" class="elder">' in await (await browser.get("/chat")).text()  # remembered
    await browser.post("/chat/elder", data={"csrf_token": token, "on": "0", "next": "https://evil.example/"})
    assert 'class="elder"' not in await (await browser.get("/chat")).text()


# ------------------------------------------------------------------------------------------ Rasa down


async def test_rasa_down_stores_the_messages_and_answers_them_in_order_later(
    browser: Client, rasa: FakeRasa, chat_app: web.Application, service: TicketService
) -> None:
    token = await consent(browser)
    rasa.up = False
    status, body = await say(browser, token, "电梯坏了")
    assert status == 200 and body["stored"] and texts(body) == [STORED_NOTICE]
    await say(browser, token, "在3栋")
    assert rasa.received == []

    rasa.up = True
    assert await chat_app[RELAY].replay(None) == 2
    assert [m for _, m in rasa.received] == ["电梯坏了", "在3栋"]
    shown = texts(await (await browser.get("/chat/updates")).json())
    assert shown == [
        "(回复您 09:00 的留言:“电梯坏了”)",
        "收到:电梯坏了",
        "(回复您 09:00 的留言:“在3栋”)",
        "收到:在3栋",
    ]
    assert (await (await browser.get("/chat/updates")).json())["bubbles"] == []


async def test_an_answer_the_database_could_not_record_comes_later_never_as_not_received(
    browser: Client, rasa: FakeRasa, chat_app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasa answered, then the database failed as the relay marked the message answered: the resident is told
    it is kept (not "没有收到", which would make them say it twice), and the replay asks Rasa again with the
    same message id (Rasa answers it from the conversation's record: nlu/channels.py)."""
    token = await consent(browser)
    store = chat_app[RELAY].store
    mark_answered = store.mark_answered

    async def database_away(message_id: int) -> None:
        raise DatabaseUnavailable()

    monkeypatch.setattr(store, "mark_answered", database_away)
    status, body = await say(browser, token, "不急")
    assert status == 200 and body["stored"] and texts(body) == [KEPT_NOTICE]

    monkeypatch.setattr(store, "mark_answered", mark_answered)  # the database is back
    assert await chat_app[RELAY].replay(None) == 1
    assert [m for _, m in rasa.received] == ["不急", "不急"]
    first, again = rasa.message_ids
    assert first is not None and again == first
    shown = texts(await (await browser.get("/chat/updates")).json())
    assert shown == ["(回复您 09:00 的留言:“不急”)", "收到:不急"]
    assert await chat_app[RELAY].replay(None) == 0  # answered once: nothing more to send


async def test_each_channel_replays_only_its_own_residents_messages(
    rasa: FakeRasa, chat_app: web.Application
) -> None:
    store = chat_app[RELAY].store
    await store.store_message("telegram:5001", "电梯坏了")  # the Telegram bot's to answer, not the page's
    await store.store_message("web:AAAAAAAAAAAAAAAAAAAAAA", "路灯不亮")
    assert await chat_app[RELAY].replay(None) == 1
    assert rasa.received == [("web:AAAAAAAAAAAAAAAAAAAAAA", "路灯不亮")]
    assert await store.waiting_senders(channel="telegram") == ["telegram:5001"]
    await chat_app[RELAY].rasa.close()  # no server ran this app: its cleanup would have


async def test_what_waits_for_a_web_resident_is_given_up_after_30_days_and_is_no_delivery_lag(
    browser: Client, rasa: FakeRasa, service: TicketService, clock: ManualClock, chat_app: web.Application
) -> None:
    token = await consent(browser)
    rasa.up = False
    await say(browser, token, "电梯坏了")
    rasa.up = True
    await chat_app[RELAY].replay(None)  # the answer waits in the outbox for the page
    store = chat_app[RELAY].store
    assert (await store.backlog()).pending == 0  # not a lag of any push delivery
    clock.advance(timedelta(days=31))
    await store.prune()
    assert (await (await browser.get("/chat/updates")).json())["bubbles"] == []


# ------------------------------------------------------------------------------------------ forgetting


async def test_forgetting_erases_contact_details_and_the_identity(
    browser: Client, rasa: FakeRasa, service: TicketService
) -> None:
    token = await consent(browser)
    await say(browser, token, "你好")
    resident = await service.resident_for(await sender_of(rasa))
    await service.remember_resident(resident.id, phone="13812345678", address="3栋2单元")
    done = await browser.post("/chat/forget", data={"csrf_token": await form_token(browser)})
    page = await done.text()
    assert "已删除您的信息" in page and COOKIE not in {c.key for c in browser.session.cookie_jar}
    async with service.sessions() as session:
        again = await session.get(Resident, resident.id)
    assert again is not None and again.phone is None and again.address is None
    assert "开始之前" in await (await browser.get("/chat")).text()
