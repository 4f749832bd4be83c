"""The volunteers' web page (/v) through aiohttp's test client over the real application, on SQLite and
PostgreSQL: logging in with a one-time invite code, bad / used codes, tampered cookies, logging out and
staff's unbinding, an inactive responder; offers live over /v/live, the accept race (one wins, the other is
told 已被他人接单), the phone and the resident's photos for the assignee only, note / 退回 / 办结, 在岗,
points, XSS shown as text,
CSRF, another responder's ticket; and the outbox: an offer to a web-only volunteer is held for the page
(never given up by the Telegram delivery) and shown as new exactly once, while one with Telegram too gets
it there and still sees it listed."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from structlog.testing import capture_logs

from dashboard import photos
from dashboard.app import ChatConfig, make_app
from dashboard.volunteer import COOKIE
from tests.conftest import Org
from tests.dashboard.conftest import SECRET, Client, NewClient, browsers_on, csrf_of, sign_in
from tests.dashboard.test_live import next_event
from tickets import outbox
from tickets.channels import ChannelStore
from tickets.clock import ManualClock
from tickets.errors import NotAllowed
from tickets.models import Notification, Responder, Status
from tickets.outbox import Kind, Recipient
from tickets.service import NewTicket, TicketService

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
LEASE = timedelta(minutes=2)


@pytest.fixture
async def browsers(service: TicketService, clock: ManualClock) -> AsyncIterator[NewClient]:
    """Phones on the one server, each with its own cookies."""
    async with browsers_on(make_app(service, secret=SECRET, clock=clock, live_every=0.05)) as new:
        yield new


async def token_of(client: Client, path: str = "/v") -> str:
    match = TOKEN_RE.search(await (await client.get(path)).text())
    assert match, path
    return match.group(1)


async def invite(service: TicketService, code: str) -> str:
    return await ChannelStore(service.sessions, service.clock).create_invite(code)


async def log_in(client: Client, code: str) -> str:
    """Log in with the invite code; the home page it lands on."""
    response = await client.post("/v/login", data={"code": code, "csrf_token": await token_of(client)})
    return await response.text()


async def volunteer(browsers: NewClient, service: TicketService, code: str) -> Client:
    client = await browsers()
    page = await log_in(client, await invite(service, code))
    assert "登录成功" in page and "等您接的工单" in page, page[:800]
    return client


async def post(client: Client, path: str, **data: str) -> tuple[int, str]:
    """A form on the page, with the page's CSRF token; the status and text after the redirect."""
    response = await client.post(path, data={**data, "csrf_token": await token_of(client)})
    return response.status, await response.text()


async def eldercare(service: TicketService, org: Org, text: str = "独居老人需要助餐") -> str:
    """An eldercare ticket in 安居苑 (grid anju-1): offered (抢单) to the anju volunteers."""
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "eldercare", text, phone="13812345678"))
    assert Status(ticket.status) is Status.DISPATCHED
    return ticket.number


async def offered_to(service: TicketService, responder_id: int) -> set[str]:
    return {t.number for t in await service.offers_to(responder_id)}


# ------------------------------------------------------------------------------------------ logging in


async def test_an_invite_code_logs_in_once_and_the_cookie_keeps_them(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    code = await invite(service, "vol-a3")
    phone = await browsers()
    page = await log_in(phone, code.lower())  # as typed on a phone
    assert "登录成功,欢迎您,王志强" in page and 'lang="zh-CN"' in page
    assert phone.session.cookie_jar.filter_cookies(phone.make_url("/"))[COOKIE]
    assert "您好,王志强" in await (await phone.get("/v")).text()  # a later visit

    other = await browsers()
    again = await other.post("/v/login", data={"code": code, "csrf_token": await token_of(other)})
    assert again.status == 400 and "邀请码无效、已使用或已过期" in await again.text()
    assert "志愿者登录" in await (await other.get("/v")).text()


async def test_a_wrong_or_empty_code_is_refused(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    phone = await browsers()
    wrong = await phone.post("/v/login", data={"code": "ABCD2345", "csrf_token": await token_of(phone)})
    assert wrong.status == 400 and "邀请码无效" in await wrong.text()
    empty = await phone.post("/v/login", data={"code": " ", "csrf_token": await token_of(phone)})
    assert empty.status == 400 and "请输入社区工作人员给您的邀请码" in await empty.text()
    assert COOKIE not in phone.session.cookie_jar.filter_cookies(phone.make_url("/"))


async def test_a_tampered_or_foreign_cookie_is_nobody(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    phone = await volunteer(browsers, service, "vol-a3")
    value = phone.session.cookie_jar.filter_cookies(phone.make_url("/"))[COOKIE].value
    forged = await browsers()
    flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
    for cookie in (flipped, "x" * 200, "minhu_chat-not-this"):
        forged.session.cookie_jar.update_cookies({COOKIE: cookie})
        page = await (await forged.get("/v")).text()
        assert "志愿者登录" in page and "王志强" not in page
    forged.session.cookie_jar.update_cookies({COOKIE: value})  # the real one still works
    assert "您好,王志强" in await (await forged.get("/v")).text()


async def test_logging_out_unbinding_or_deactivating_ends_the_cookie(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    phone = await volunteer(browsers, service, "vol-a3")
    value = phone.session.cookie_jar.filter_cookies(phone.make_url("/"))[COOKIE].value
    status, page = await post(phone, "/v/logout")
    assert status == 200 and "您已退出登录" in page and "志愿者登录" in page
    copy = await browsers()
    copy.session.cookie_jar.update_cookies({COOKIE: value})  # a copy kept from before: no longer anyone
    assert "志愿者登录" in await (await copy.get("/v")).text()

    phone = await volunteer(browsers, service, "vol-a3")  # a new invite binds again
    assert await ChannelStore(service.sessions, service.clock).unbind("vol-a3", "web") == 1  # staff
    assert "志愿者登录" in await (await phone.get("/v")).text()

    phone = await volunteer(browsers, service, "vol-a3")
    async with service.sessions() as session:
        responder = await session.get_one(Responder, org["vol-a3"])
        responder.active = False
        await session.commit()
    assert "志愿者登录" in await (await phone.get("/v")).text()
    assert (await phone.get("/v/panel")).status == 401


async def unbind(staff: Client, org: Org, code: str, *, csrf: bool = True) -> tuple[int, str]:
    """解除 on the 人员 page for the responder with this code; the status and the page after the redirect."""
    data = {"csrf_token": await csrf_of(staff, "/responders")} if csrf else {}
    response = await staff.post(f"/responders/{org[code]}/web-login/unbind", data=data)
    return response.status, await response.text()


async def test_staff_unbind_a_volunteer_s_browser_and_its_cookie_stops_at_once(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    phone = await volunteer(browsers, service, "vol-a3")
    staff = await browsers()
    login = await sign_in(staff, org, "staff-a")
    roster = await (await staff.get("/responders")).text()
    assert f'action="/responders/{org["vol-a3"]}/web-login/unbind"' in roster  # bound on the web
    assert f'action="/responders/{org["vol-a1"]}/web-login/unbind"' not in roster  # Telegram only

    with capture_logs() as logs:
        status, page = await unbind(staff, org, "vol-a3")
    assert status == 200 and "已解除王志强的网页登录" in page
    assert f'action="/responders/{org["vol-a3"]}/web-login/unbind"' not in page
    audit = [entry for entry in logs if entry["event"] == "web login unbound"]
    assert audit == [
        {
            "event": "web login unbound",
            "log_level": "info",
            "by_account": login.account_id,
            "by_responder": org["staff-a"],
            "responder": org["vol-a3"],
            "removed": True,
        }
    ]

    # The very next request of that phone: the login page, told why, the cookie gone.
    response = await phone.get("/v/points")  # any page: to /v
    page = await response.text()
    assert "志愿者登录" in page and "登录已经失效" in page and "新的邀请码" in page
    assert COOKIE not in phone.session.cookie_jar.filter_cookies(phone.make_url("/"))
    assert "登录已经失效" not in await (await phone.get("/v")).text()  # said once, then a plain login page
    status, page = await unbind(staff, org, "vol-a3")  # again: nothing to unbind, said so
    assert status == 200 and "王志强目前没有网页登录,无需解除" in page
    await volunteer(browsers, service, "vol-a3")  # a new invite binds a browser again


async def test_who_may_unbind_a_browser(browsers: NewClient, service: TicketService, org: Org) -> None:
    phone = await volunteer(browsers, service, "vol-j1")  # 锦江社区
    other = await browsers()
    await sign_in(other, org, "staff-a")  # 安居社区's staff
    status, page = await unbind(other, org, "vol-j1")
    assert status == 404 and "黄海" not in page  # another community's: never confirmed to exist
    token = await csrf_of(other, "/responders")
    response = await other.post("/responders/x1/web-login/unbind", data={"csrf_token": token})
    assert response.status == 404
    status, _ = await unbind(other, org, "vol-j1", csrf=False)
    assert status == 403
    stranger = await browsers()  # signed in nowhere: no session, so no CSRF token either
    response = await stranger.post(f"/responders/{org['vol-j1']}/web-login/unbind", allow_redirects=False)
    assert response.status == 403
    with pytest.raises(NotAllowed):  # the domain's own rule: staff only
        await service.unbind_web_login(org["vol-a1"], org["vol-j1"])
    assert "您好,黄海" in await (await phone.get("/v")).text()  # still bound

    street = await browsers()
    await sign_in(street, org, "street-1")  # the street's staff: every community of the street
    status, page = await unbind(street, org, "vol-j1")
    assert status == 200 and "已解除黄海的网页登录" in page
    assert "登录已经失效" in await (await phone.get("/v")).text()


# ------------------------------------------------------------------------------------------ offers


async def test_an_offer_appears_live_and_the_first_accept_wins(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    first = await volunteer(browsers, service, "vol-a3")
    second = await volunteer(browsers, service, "vol-a1")
    stream = await first.get("/v/live")
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    await next_event(stream, "ready")

    number = await eldercare(service, org)
    # The offer comes on the stream with its card (as the panel shows it, this page's CSRF token in its
    # forms): the page shows it without fetching its panel.
    _, offer = await next_event(stream, "offer")
    stream.close()
    card = offer["html"]
    assert (
        offer["number"] == number and f'id="offer-{number}"' in card and '<span class="new">新</span>' in card
    )
    assert "独居老人需要助餐" in card and "13812345678" not in card  # masked before accepting
    assert f'value="{await token_of(first)}"' in card and "MINHU-CSRF" not in card
    assert number in await offered_to(service, org["vol-a3"]) & await offered_to(service, org["vol-a1"])
    panel = await (await first.get("/v/panel")).text()
    assert number in panel and "接单" in panel and "独居老人需要助餐" in panel
    assert "13812345678" not in panel

    status, page = await post(first, f"/v/tickets/{number}/accept")
    assert status == 200 and f"接单成功!工单 {number}" in page
    status, page = await post(second, f"/v/tickets/{number}/accept")
    assert status == 200 and f"工单 {number} 已被他人接单" in page
    ticket = await service.ticket(number, org.service_actor)
    assert ticket.assignee_id == org["vol-a3"] and Status(ticket.status) is Status.ACCEPTED
    assert number not in await (await second.get("/v/panel")).text()


async def test_a_volunteer_is_told_only_what_can_change_their_page(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    """A new request is not an event for the volunteers' pages, nor a dispatch to others: with a grid's
    volunteers all on the page, each new request would otherwise make every page fetch its panel. A change
    to a ticket offered to them is."""
    offered = await volunteer(browsers, service, "vol-a3")  # anju-1: offered the eldercare requests
    other = await volunteer(browsers, service, "vol-a2")  # anju-2, same community: not offered
    streams = [await offered.get("/v/live"), await other.get("/v/live")]
    for stream in streams:
        await next_event(stream, "ready")
    number = await eldercare(service, org)
    assert (await next_event(streams[0], "offer"))[1]["number"] == number
    await service.accept(number, org["vol-a1"])  # another volunteer takes it
    _, taken = await next_event(streams[0], "ticket")
    assert taken["number"] == number and taken["action"] == "accept"
    _, seen = await next_event(streams[1], "ticket")  # the first event the other page gets
    assert seen["action"] == "accept"  # not the request's create, nor its dispatch
    # The pushed card is escaped as the panel is: what a resident wrote is never markup on the page.
    sneaky = await eldercare(service, org, "<img src=x onerror=alert(1)>老人想预约助浴")
    _, pushed = await next_event(streams[0], "offer")
    assert pushed["number"] == sneaky and "<img src=x" not in pushed["html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pushed["html"]
    for stream in streams:
        stream.close()


async def test_declining_an_offer(browsers: NewClient, service: TicketService, org: Org) -> None:
    phone = await volunteer(browsers, service, "vol-a3")
    number = await eldercare(service, org)
    status, page = await post(phone, f"/v/tickets/{number}/decline", reason="不在附近")
    assert status == 200 and f"已不接工单 {number}" in page
    assert number not in await offered_to(service, org["vol-a3"])


async def test_the_phone_is_for_the_assignee_only(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    winner = await volunteer(browsers, service, "vol-a3")
    loser = await volunteer(browsers, service, "vol-a1")
    number = await eldercare(service, org)
    _, before = await post(winner, f"/v/tickets/{number}/phone")
    assert "13812345678" not in before
    assert "只有接单人和本社区工作人员可以查看居民电话" in before

    await post(winner, f"/v/tickets/{number}/accept")
    page = await (await winner.get(f"/v/tickets/{number}")).text()
    assert "138****5678" in page and "13812345678" not in page and "查看居民电话" in page
    status, page = await post(winner, f"/v/tickets/{number}/phone")
    assert status == 200 and re.search(r'href="tel:(\+86)?13812345678"', page)
    assert [e.action for e in await service.history(number, org.service_actor)].count("reveal_phone") == 1

    # Another responder: the ticket is not theirs to see, nor its phone.
    assert (await loser.get(f"/v/tickets/{number}")).status == 404
    status, page = await post(loser, f"/v/tickets/{number}/phone")
    assert "13812345678" not in page


async def test_the_resident_s_photos_are_for_the_assignee_only(
    service: TicketService, clock: ManualClock, org: Org, tmp_path: Path
) -> None:
    """A photo the resident sent on the web chat: shown on the ticket's page to the volunteer who took it;
    another volunteer (who had the offer too), one who never had it, and a stranger find nothing."""
    photo_dir = tmp_path / "photos"
    config = ChatConfig(rasa_url="http://127.0.0.1:9", photo_dir=photo_dir, replay_every=3600)
    app = make_app(service, secret=SECRET, clock=clock, live_every=0.05, chat_config=config)
    async with browsers_on(app) as browsers:
        winner = await volunteer(browsers, service, "vol-a3")
        loser = await volunteer(browsers, service, "vol-a1")
        outsider = await volunteer(browsers, service, "vol-j1")  # another community
        resident = await org.resident(compound="安居苑")
        ticket = await service.create_ticket(
            NewTicket(resident, "eldercare", "老人想申请助餐", phone="13812345678")
        )
        number = ticket.number
        jpeg = io.BytesIO()
        Image.new("RGB", (64, 48), (30, 160, 90)).save(jpeg, "JPEG")
        stored = await photos.store_photo(jpeg.getvalue(), photo_dir)  # as the chat's upload keeps it
        assert await service.attach(resident, "photo", {"file": stored.name, "size": stored.size})
        url = f"/v/tickets/{number}/photos/{stored.name}"

        offered = await (await winner.get(f"/v/tickets/{number}")).text()
        assert stored.name not in offered  # an offer shows no photo: the assignee sees it

        await post(winner, f"/v/tickets/{number}/accept")
        page = await (await winner.get(f"/v/tickets/{number}")).text()
        assert "居民发来的照片" in page and f'src="{url}"' in page
        shown = await winner.get(url)
        assert shown.status == 200 and shown.headers["Content-Type"] == "image/jpeg"
        assert shown.headers["Cache-Control"] == "private, no-store"
        assert await shown.read() == (photo_dir / stored.name).read_bytes()

        for other in (loser, outsider):  # never confirmed to exist: as any ticket not theirs
            response = await other.get(url)
            assert response.status == 404 and "image" not in response.headers["Content-Type"]
        stranger = await browsers()
        response = await stranger.get(url, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/v"
        assert (await winner.get(f"/v/tickets/{number}/photos/{'0' * 32}.jpg")).status == 404  # not attached
        assert (await winner.get(f"/v/tickets/{number}/photos/..%2Fsecret.jpg")).status == 404

        staff = await browsers()  # staff of the area still see it on the dashboard
        await sign_in(staff, org, "staff-a")
        assert (await staff.get(f"/tickets/{number}/photos/{stored.name}")).status == 200


async def test_note_return_and_resolve(browsers: NewClient, service: TicketService, org: Org) -> None:
    phone = await volunteer(browsers, service, "vol-a3")
    number = await eldercare(service, org)
    await post(phone, f"/v/tickets/{number}/accept")

    status, page = await post(
        phone, f"/v/tickets/{number}/note", text='<script>alert("x")</script><img src=x onerror=alert(1)>'
    )
    assert status == 200 and "备注已添加" in page
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page

    _, page = await post(phone, f"/v/tickets/{number}/return", text="")
    assert "原因" in page  # a reason is needed: nothing done
    assert (await service.ticket(number, org.service_actor)).assignee_id == org["vol-a3"]
    _, page = await post(phone, f"/v/tickets/{number}/resolve", text="已联系助餐点,每天送餐上门")
    assert f"工单 {number} 已办结" in page
    assert Status((await service.ticket(number, org.service_actor)).status) is Status.RESOLVED

    sneaky = await eldercare(service, org, "<img src=x onerror=alert(1)>老人想预约助浴")
    offer = await (await phone.get("/v")).text()
    assert sneaky in offer and "<img src=x" not in offer and "&lt;img src=x onerror=alert(1)&gt;" in offer
    other = sneaky
    await post(phone, f"/v/tickets/{other}/accept")
    _, page = await post(phone, f"/v/tickets/{other}/return", text="这周要出差,来不及")
    assert f"工单 {other} 已退回" in page
    ticket = await service.ticket(other, org.service_actor)
    assert ticket.assignee_id != org["vol-a3"]


async def test_another_responder_s_ticket_is_refused(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    mine = await volunteer(browsers, service, "vol-a3")
    theirs = await volunteer(browsers, service, "vol-j1")  # another community
    number = await eldercare(service, org)
    await post(mine, f"/v/tickets/{number}/accept")
    assert (await theirs.get(f"/v/tickets/{number}")).status == 404
    status, _ = await post(theirs, f"/v/tickets/{number}/resolve", text="我办好了")
    assert status == 404
    assert Status((await service.ticket(number, org.service_actor)).status) is Status.ACCEPTED

    same_area = await volunteer(browsers, service, "vol-a2")
    status, _ = await post(same_area, f"/v/tickets/{number}/resolve", text="我办好了")
    assert status == 404  # not theirs: looks not found, as on Telegram
    assert Status((await service.ticket(number, org.service_actor)).status) is Status.ACCEPTED


async def test_csrf_missing_is_refused(browsers: NewClient, service: TicketService, org: Org) -> None:
    phone = await volunteer(browsers, service, "vol-a3")
    number = await eldercare(service, org)
    refused = await phone.post(f"/v/tickets/{number}/accept", data={})
    assert refused.status == 403
    wrong = await phone.post(f"/v/tickets/{number}/accept", data={"csrf_token": "forged"})
    assert wrong.status == 403
    assert (await service.ticket(number, org.service_actor)).assignee_id is None
    anonymous = await browsers()
    login = await anonymous.post("/v/login", data={"code": await invite(service, "vol-a2")})
    assert login.status == 403


async def test_duty_and_points(browsers: NewClient, service: TicketService, org: Org) -> None:
    phone = await volunteer(browsers, service, "vol-a3")
    _, page = await post(phone, "/v/duty", on="0")
    assert "已切换为“休息”" in page and "当前状态:<strong>休息</strong>" in page
    async with service.sessions() as session:
        assert not (await session.get_one(Responder, org["vol-a3"])).on_duty
    _, page = await post(phone, "/v/duty", on="1")
    assert "当前状态:<strong>在岗</strong>" in page
    page = await (await phone.get("/v/points")).text()
    assert "您的爱心积分:<strong>0</strong> 分" in page


# ------------------------------------------------------------------------------------------ the outbox


async def offer_notes(service: TicketService, number: str) -> dict[int, Notification]:
    async with service.sessions() as session:
        rows = await session.scalars(
            select(Notification).where(
                Notification.kind == Kind.OFFERED, Notification.recipient_type == Recipient.RESPONDER
            )
        )
        return {n.recipient_id: n for n in rows if n.payload.get("number") == number}


async def test_an_offer_reaches_a_web_only_volunteer_exactly_once(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    web_only = await volunteer(browsers, service, "vol-a3")
    both = await volunteer(browsers, service, "vol-a1")  # has Telegram in the test org, and now the web
    number = await eldercare(service, org)

    # The push delivery (Telegram's) claims the one with Telegram, never the web-only one's.
    claimed = await outbox.claim(service.sessions, service.clock.now(), LEASE, limit=100)
    to = {(c.recipient_id, c.kind) for c in claimed if c.number == number}
    assert (org["vol-a1"], Kind.OFFERED) in to and (org["vol-a3"], Kind.OFFERED) not in to
    assert (await offer_notes(service, number))[org["vol-a3"]].delivered_at is None  # waits for the page

    page = await (await web_only.get("/v")).text()  # the next visit: the badge, the offer marked new
    assert "新来 1 张" in page and '<span class="new">新</span>' in page and number in page
    assert "<title>(1) 工单" in page
    held = (await offer_notes(service, number))[org["vol-a3"]]
    assert held.delivered_at is not None and held.message_ref == "web"
    again = await (await web_only.get("/v")).text()  # shown once as new; still listed until taken
    assert "新来" not in again and number in again

    # With Telegram too: delivered there, and listed on the page (not as a web delivery).
    listed = await (await both.get("/v")).text()
    assert number in listed and "新来" not in listed


async def test_a_web_only_volunteer_s_offers_from_before_joining_are_held_not_lost(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    number = await eldercare(service, org)  # vol-a3 has no account anywhere yet
    assert number in await offered_to(service, org["vol-a3"])
    # No account: the push delivery takes it and gives it up as unreachable (bot/delivery.py does so).
    for note in await outbox.claim(service.sessions, service.clock.now(), LEASE, limit=100):
        if note.recipient_id == org["vol-a3"] and note.number == number:
            await outbox.delivered(
                service.sessions, note.id, service.clock.now(), error="未送达: Unreachable"
            )
    phone = await browsers()
    page = await log_in(phone, await invite(service, "vol-a3"))  # joining makes it due: held for the page
    assert "新来 1 张" in page and number in page
    note = (await offer_notes(service, number))[org["vol-a3"]]
    assert note.delivered_at is not None and note.message_ref == "web"


async def test_guessing_codes_is_slowed_and_strangers_get_no_stream(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    phone = await browsers()
    statuses = []
    for _ in range(12):
        response = await phone.post(
            "/v/login", data={"code": "ABCD2345", "csrf_token": await token_of(phone)}
        )
        statuses.append(response.status)
    assert statuses[:10] == [400] * 10 and statuses[10:] == [429, 429]
    assert (await phone.get("/v/live")).status == 401
    assert (await phone.get("/v/panel")).status == 401
    moved = await phone.get("/volunteer", allow_redirects=False)
    assert moved.status == 303 and moved.headers["Location"] == "/v"


async def test_an_offer_taken_before_the_page_showed_it_brings_no_news(
    browsers: NewClient, service: TicketService, org: Org
) -> None:
    web_only = await volunteer(browsers, service, "vol-a3")
    number = await eldercare(service, org)
    await service.accept(number, org["vol-a1"])  # taken while vol-a3's page was closed
    page = await (await web_only.get("/v")).text()
    assert number not in page and "新来" not in page and "已被他人接单" not in page
    assert (await offer_notes(service, number))[org["vol-a3"]].delivered_at is not None  # not left waiting

    seen = await eldercare(service, org, "老人想预约助浴")
    assert seen in await (await web_only.get("/v")).text()  # the page showed it
    await service.accept(seen, org["vol-a1"])
    assert f"工单 {seen} 已被他人接单" in await (await web_only.get("/v")).text()
