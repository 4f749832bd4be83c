"""The residents' web chat (/chat), mobile first, for people without Telegram: the same assistant through
the server (the browser never talks to Rasa), "我的诉求" with a readable timeline and the 回访, photos,
长辈模式 (large text, high contrast), and deleting one's data.

It lives in the dashboard package because it is the same web edge on the same application and address
(ARCHITECTURE.md: "dashboard/ (web)"): it shares the session that carries the CSRF token, the CSRF
middleware, the error pages and the templates; a package of its own would have to import dashboard/ (an
edge importing an edge) or copy them. The relay it shares with Telegram is below the edges (app/relay.py).

Nothing is kept before the resident consents: the first visit shows what is stored and why (the notice
texts of tickets.privacy, as Telegram's /start) and the 同意 button; only then is the resident made and the
identity cookie set (dashboard/chat_relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp_session import get_session
from aiohttp_sse import sse_response

from app.loops import run_forever
from app.relay import RasaClient
from dashboard import photos
from dashboard.chat_relay import (
    COOKIE,
    MAX_MESSAGE,
    Answer,
    ChatConfig,
    Identity,
    Limits,
    News,
    WebRelay,
    new_sender,
    waiting_bubbles,
)
from dashboard.errors import PageError
from dashboard.keys import SERVICE
from dashboard.render import render
from tickets.actors import Actor
from tickets.channels import ChannelStore, NoConsent
from tickets.db import retry_if_dropped
from tickets.errors import DatabaseUnavailable, DomainError
from tickets.models import Rating, Resident, Status, Ticket, TicketEvent
from tickets.privacy import (
    CONSENT_QUESTION,
    INTRODUCTION,
    KEEP_CHAT_DAYS,
    clean_text,
    mask_name,
    what_we_keep,
)
from tickets.service import TicketService
from tickets.transitions import Action

log = structlog.get_logger("dashboard.chat")

RELAY = web.AppKey("chat_relay", WebRelay)
IDENTITY = web.AppKey("chat_identity", Identity)
CONFIG = web.AppKey("chat_config", ChatConfig)
MESSAGE_LIMITS = web.AppKey("chat_message_limits", Limits)
PHOTO_LIMITS = web.AppKey("chat_photo_limits", Limits)
CONSENT_LIMITS = web.AppKey("chat_consent_limits", Limits)
REPLAY_TASK = web.AppKey("chat_replay", asyncio.Task[None])
NEWS = web.AppKey("chat_news", News)
NEWS_TASK = web.AppKey("chat_news_poll", asyncio.Task[None])
NEWS_RECHECK = 15.0  # seconds: a quiet stream checks this often that its page is still there
NEWS_MAX_BACKOFF = (
    30.0  # seconds: the news poller after failures (the database away), not run_forever's 10 min
)
ELDER_COOKIE = "minhu_elder"
FLASH = "chat_flash"
PRUNE_EVERY = 720  # replay rounds (about an hour) between prunings of what the channels keep

NOTICE = (
    INTRODUCTION,
    what_we_keep(
        "这台手机或电脑上的一个随机编号(保存在浏览器里,不含您的姓名和电话)",
        "照片(去掉拍摄地点等信息后保存,只给办理人员看)",
    ),
    CONSENT_QUESTION,
)
NEED_CONSENT = "请先阅读说明并点“同意”,再开始聊天。"
TOO_FAST = "您发得太快了,请稍等一分钟再发。我们会认真看每一条消息。"
EMPTY = "请写一写您遇到的问题,内容不能为空。"
TOO_LONG = f"消息太长了(最多 {MAX_MESSAGE} 个字),请分几次发。"
SORRY = "抱歉,系统刚才出了点问题,请稍后再试。"
NO_OPEN_TICKET = "您目前没有正在办理的诉求。请先用文字说说遇到的问题,登记后再发照片,我会附在诉求上。"
RATED_OK = "谢谢您的评价({rating})!工单 {number} 已结案。"
REOPENED = "很抱歉没有让您满意。工单 {number} 已重新办理,社区会另外安排人员尽快联系您。"
UPDATES_LATER = "系统暂时忙不过来,新消息稍后会自动显示,请稍等。"
YES_NO = {"1": True, "0": False}


# ---------------------------------------------------------------------------------------------- who


async def consented(request: web.Request) -> tuple[str, Resident] | None:
    """The resident behind the identity cookie, if they consented; None for a new (or unrecognised)
    visitor. Nothing is created for a visitor without a valid cookie."""
    sender = request.app[IDENTITY].sender(request)
    if sender is None:
        return None
    store = request.app[RELAY].store
    # The first statement of a turn: the one that finds a pooled connection dead after a database restart.
    # A read (no write lock on SQLite): nothing is made for a cookie whose resident is not there.
    resident = await retry_if_dropped(lambda: store.consented_resident(sender))
    return (sender, resident) if resident is not None else None


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def elder(request: web.Request) -> bool:
    return request.cookies.get(ELDER_COOKIE) == "1"


async def page(request: web.Request, template: str, context: dict[str, Any], **kwargs: Any) -> web.Response:
    return await render(request, template, {"elder": elder(request), **context}, **kwargs)


# ---------------------------------------------------------------------------------------------- pages


async def chat_page(request: web.Request) -> web.Response:
    who = await consented(request)
    identity = request.app[IDENTITY]
    if who is None:
        response = await page(request, "chat/consent.html", {"notice": NOTICE})
        if request.cookies.get(COOKIE):
            identity.drop(response)  # a cookie we cannot read: gone, the visitor starts afresh
        return response
    sender, _ = who
    response = await page(request, "chat/chat.html", {})
    identity.keep(response, sender)  # renewed: a resident who keeps coming back stays the same one
    return response


async def consent(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    sender = request.app[IDENTITY].sender(request)
    if sender is None and not request.app[CONSENT_LIMITS].allow(request, None):
        raise PageError(429, TOO_FAST)  # each consent makes a resident: not thousands from one address
    sender = sender or new_sender()
    resident = await service.resident_for(sender)
    await service.remember_resident(resident.id, consent=True)
    response = web.HTTPSeeOther("/chat")
    request.app[IDENTITY].keep(response, sender)
    raise response


async def set_elder(request: web.Request) -> web.Response:
    """长辈模式 on or off, remembered in a cookie of its own for a year (no personal data in it)."""
    form = await request.post()
    target = str(form.get("next", "/chat"))
    target = target if target.startswith("/chat") and "//" not in target else "/chat"
    response = web.HTTPSeeOther(target)
    if form.get("on") == "1":
        response.set_cookie(ELDER_COOKIE, "1", max_age=365 * 86400, path="/", samesite="Lax", httponly=False)
    else:
        response.del_cookie(ELDER_COOKIE, path="/")
    raise response


async def forget(request: web.Request) -> web.Response:
    """删除我的信息: what is stored to contact them is erased (TicketService.forget_resident); tickets still
    open keep it until they end, and the resident is told which. With nothing open the identity cookie goes
    too: this browser no longer knows them."""
    who = await consented(request)
    if who is None:
        raise PageError(403, NEED_CONSENT)
    sender, resident = who
    done = await request.app[SERVICE].forget_resident(sender, Actor.resident(resident.id))
    response = await page(request, "chat/forgotten.html", {"done": done, "chat_days": KEEP_CHAT_DAYS})
    if not done.still_open:
        request.app[IDENTITY].drop(response)
    return response


# ---------------------------------------------------------------------------------------------- chat


Handler = Callable[[web.Request], Awaitable[web.Response]]


def polite_when_the_database_is_down(message: str | None = None) -> Callable[[Handler], Handler]:
    """The page's script calls (JSON): when the database is down or restarting even on a fresh connection
    (DatabaseUnavailable, after retry_if_dropped's second try), a polite 503 JSON word, not the error page.
    `message`: the word (DatabaseUnavailable's own, about a message not received, when None)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def polite(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except DatabaseUnavailable as error:
                log.warning(
                    "web chat: database unavailable", path=request.path, error=type(error.__cause__).__name__
                )
                return json_error(503, message or error.message)

        return polite

    return wrap


@polite_when_the_database_is_down()
async def post_message(request: web.Request) -> web.Response:
    # The consent is checked by the transaction that stores the message (the relay's store is
    # consented_only: NoConsent, nothing kept), not looked up first: one transaction before Rasa, not two.
    sender = request.app[IDENTITY].sender(request)
    if sender is None:
        return json_error(403, NEED_CONSENT)
    if not request.app[MESSAGE_LIMITS].allow(request, sender):
        return json_error(429, TOO_FAST)
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, EMPTY)
    raw = body.get("text") if isinstance(body, dict) else None
    text = clean_text(raw if isinstance(raw, str) else "")
    if not text:
        return json_error(400, EMPTY)
    if len(text) > MAX_MESSAGE:
        return json_error(400, TOO_LONG)
    relay = request.app[RELAY]
    answer = Answer()
    try:
        await relay.submit(answer, sender, text)
    except NoConsent:
        return json_error(403, NEED_CONSENT)
    transport = request.transport
    if transport is None or transport.is_closing():  # the page went away meanwhile: kept for its return
        with contextlib.suppress(Exception):
            await relay.keep_for_later(sender, answer.bubbles)
    return web.json_response({"bubbles": answer.bubbles, "stored": answer.stored})


@polite_when_the_database_is_down(UPDATES_LATER)
async def updates(request: web.Request) -> web.Response:
    """What waited for the resident (late answers, news of their tickets); the page asks while its live
    stream (/chat/live) is down, and without EventSource every few seconds."""
    who = await consented(request)
    if who is None:
        return json_error(403, NEED_CONSENT)
    bubbles = await waiting_bubbles(request.app[SERVICE], who[1].id)
    return web.json_response({"bubbles": bubbles}, headers={"Cache-Control": "no-store"})


async def live_updates(request: web.Request) -> web.StreamResponse:
    """What waits for the resident, pushed while the page is open (server-sent events, `bubbles`): first
    what waited already, then what comes (late answers, news of their tickets) when the one poller of
    `News` sees it. The page asks /chat/updates only while this stream is down."""
    who = await consented(request)
    if who is None:
        return json_error(403, NEED_CONSENT)
    service, resident_id = request.app[SERVICE], who[1].id

    async def send_waiting() -> None:
        try:
            bubbles = await retry_if_dropped(lambda: waiting_bubbles(service, resident_id))
        except DatabaseUnavailable:
            return  # still waiting in the outbox: the poller wakes this stream again when it sees it
        if bubbles:
            await response.send(json.dumps({"bubbles": bubbles}, ensure_ascii=False), event="bubbles")

    news = request.app[NEWS]
    with news.listening(resident_id) as woken:  # before the first take: nothing falls between
        async with sse_response(request) as response:
            # The page went away mid-send (a reload, a link): nothing to report, the stream just ends.
            with contextlib.suppress(ConnectionResetError):
                woken.clear()
                await send_waiting()
                await response.send("{}", event="ready")
                while response.is_connected():
                    with contextlib.suppress(TimeoutError):  # now and then: is the page still there?
                        await asyncio.wait_for(woken.wait(), NEWS_RECHECK)
                    if news.closing:
                        break
                    if woken.is_set():
                        woken.clear()
                        await send_waiting()
    return response


async def upload_photo(request: web.Request) -> web.Response:
    who = await consented(request)
    if who is None:
        return json_error(403, NEED_CONSENT)
    sender, resident = who
    if not request.app[PHOTO_LIMITS].allow(request, sender):
        return json_error(429, TOO_FAST)
    directory = request.app[CONFIG].photo_dir
    try:
        stored = await photos.store_photo(await photos.read_upload(request), directory)
    except photos.PhotoRefused as refused:
        return json_error(refused.status, refused.message)
    reference = {"file": stored.name, "size": stored.size, "width": stored.width, "height": stored.height}
    ticket = await request.app[SERVICE].attach(resident.id, "photo", reference)
    if ticket is None:
        photos.remove_photo(directory, stored.name)
        return json_error(409, NO_OPEN_TICKET)
    text = f"收到,照片已附在您的诉求 {ticket.number} 上,办理人员可以看到。"
    return web.json_response({"bubbles": [{"text": text, "buttons": []}], "ticket": ticket.number})


# ---------------------------------------------------------------------------------------------- 我的诉求


def _timeline(events: list[TicketEvent], names: dict[int, str]) -> list[dict[str, Any]]:
    """The ticket's history as the resident reads it: what happened and when, who in masked form; internal
    notes, declines and phone reveals are the staff's, not shown."""
    lines = []
    for event in events:
        data = event.data or {}
        try:
            action = Action(event.action)
            who = Actor.parse(event.actor)
        except ValueError:
            continue
        responder = mask_name(names.get(who.id or 0)) if who.kind == "responder" else ""
        text = _event_text(action, data, responder)
        if text:
            lines.append({"at": event.at, "text": text})
    return lines


def _event_text(action: Action, data: dict[str, Any], responder: str) -> str | None:
    match action:
        case Action.CREATE:
            return "诉求已受理"
        case Action.DISPATCH | Action.REASSIGN:
            return "已派给工作人员或志愿者"
        case Action.ACCEPT:
            return f"{responder or '工作人员'}已接单"
        case Action.RETURN:
            return f"退回重新安排(原因:{data.get('reason', '')})"
        case Action.ESCALATE:
            return "已提交上一级处理"
        case Action.PAUSE:
            return "暂停计时,等待和您约定时间"
        case Action.RESUME:
            return "恢复办理"
        case Action.NOTE:
            return f"办理人员给您留言:{data.get('note', '')}" if data.get("to_resident") else None
        case Action.ATTACH:
            return "您补充了照片" if data.get("kind") == "photo" else "您补充了位置"
        case Action.RESOLVE:
            return f"已办结:{data.get('note', '')}"
        case Action.RATE:
            rating = data.get("rating")
            return f"您的评价:{Rating(rating).label}" if rating in set(Rating) else "您已评价"
        case Action.REOPEN:
            return "重新办理"
        case Action.AUTO_CLOSE | Action.CLOSE:
            return "已结案"
        case Action.CANCEL:
            return "已撤销"
        case Action.LINK_DUPLICATE:
            return "您补充的内容已合并到这张工单"
        case Action.ERASE:
            return "已删除您的电话和地址"
    return None


async def _ticket_view(service: TicketService, ticket: Ticket, resident: Resident) -> dict[str, Any]:
    events = list(await service.history(ticket.number, Actor.resident(resident.id)))
    category = service.catalogue.categories.get(ticket.category)
    return {
        "number": ticket.number,
        "category": category.name if category else ticket.category,
        "status": ticket.progress_label,
        "text": ticket.text,
        "created_at": ticket.created_at,
        "open": Status(ticket.status).is_open,
        "rate": Status(ticket.status) is Status.RESOLVED and ticket.rated_at is None,
        "timeline": _timeline(events, await service.responder_names()),
    }


async def my_tickets(request: web.Request) -> web.Response:
    who = await consented(request)
    if who is None:
        raise web.HTTPSeeOther("/chat")
    service = request.app[SERVICE]
    tickets = [await _ticket_view(service, t, who[1]) for t in await service.tickets_of_resident(who[1].id)]
    flash = (await get_session(request)).pop(FLASH, None)
    return await page(
        request,
        "chat/tickets.html",
        {"tickets": tickets, "flash": flash, "ratings": list(Rating), "one": False},
    )


async def one_ticket(request: web.Request) -> web.Response:
    """One of the resident's tickets; another resident's number finds nothing (TicketNotFound → 404)."""
    who = await consented(request)
    if who is None:
        raise web.HTTPSeeOther("/chat")
    service = request.app[SERVICE]
    ticket = await service.ticket(request.match_info["number"][:32], Actor.resident(who[1].id))
    view = await _ticket_view(service, ticket, who[1])
    flash = (await get_session(request)).pop(FLASH, None)
    return await page(
        request,
        "chat/tickets.html",
        {"tickets": [view], "flash": flash, "ratings": list(Rating), "one": True},
    )


async def rate(request: web.Request) -> web.Response:
    """回访: the three answers (as on Telegram); 不满意 or not solved reopens the ticket (TicketService.rate)."""
    who = await consented(request)
    if who is None:
        raise PageError(403, NEED_CONSENT)
    number = request.match_info["number"][:32]
    form = await request.post()
    contacted, solved = YES_NO.get(str(form.get("contacted"))), YES_NO.get(str(form.get("solved")))
    try:
        rating = Rating.parse(str(form.get("rating", "")))
    except ValueError:
        rating = None
    session = await get_session(request)
    if contacted is None or solved is None or rating is None:
        session[FLASH] = {"ok": False, "text": "请回答全部三个问题后再提交。"}
        raise web.HTTPSeeOther(f"/chat/tickets/{number}")
    try:
        ticket = await request.app[SERVICE].rate(
            number, who[1].id, contacted=contacted, solved=solved, rating=rating
        )
    except DomainError as error:
        if error.code == "ticket_not_found":
            raise
        session[FLASH] = {"ok": False, "text": error.message}
        raise web.HTTPSeeOther(f"/chat/tickets/{number}") from None
    closed = Status(ticket.status) is Status.CLOSED
    text = RATED_OK.format(rating=rating.label, number=number) if closed else REOPENED.format(number=number)
    session[FLASH] = {"ok": True, "text": text}
    raise web.HTTPSeeOther(f"/chat/tickets/{number}")


# ---------------------------------------------------------------------------------------------- setup


async def _replay_forever(app: web.Application) -> None:
    """Messages stored while Rasa was away are answered in order when it is back; the answers wait in the
    outbox for the resident's page. Now and then, what the channels keep is pruned."""
    relay, rounds = app[RELAY], itertools.count()

    async def one_round() -> None:
        await relay.replay(None)
        if next(rounds) % PRUNE_EVERY == 0:
            await relay.store.prune()

    await run_forever(one_round, app[CONFIG].replay_every, name="web chat replay")


async def _start(app: web.Application) -> None:
    app[REPLAY_TASK] = asyncio.create_task(_replay_forever(app))
    app[NEWS_TASK] = asyncio.create_task(
        run_forever(
            app[NEWS].poll, app[CONFIG].news_every, name="web chat news", max_backoff=NEWS_MAX_BACKOFF
        )
    )


async def _end_streams(app: web.Application) -> None:
    app[NEWS].stop()  # open pages' streams end before the server waits for its handlers


async def _stop(app: web.Application) -> None:
    for key in (REPLAY_TASK, NEWS_TASK):
        task = app.get(key)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await app[RELAY].rasa.close()


def setup(app: web.Application, config: ChatConfig, *, secret: bytes, secure_cookies: bool = False) -> None:
    service = app[SERVICE]
    store = ChannelStore(service.sessions, service.clock, consented_only=True)  # nothing kept without consent
    app[CONFIG] = config
    app[RELAY] = WebRelay(RasaClient(config.rasa_url, timeout=config.rasa_timeout), store, service)
    app[IDENTITY] = Identity(secret, secure=secure_cookies)
    app[NEWS] = News(store)
    app[MESSAGE_LIMITS] = Limits(config.messages_per_minute, config.posts_per_minute_per_address)
    app[PHOTO_LIMITS] = Limits(config.photos_per_minute, config.posts_per_minute_per_address)
    app[CONSENT_LIMITS] = Limits(config.consents_per_minute, config.consents_per_minute)
    app.on_startup.append(_start)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_stop)
    app.router.add_get("/chat", chat_page, name="chat")
    app.router.add_post("/chat/consent", consent)
    app.router.add_post("/chat/elder", set_elder)
    app.router.add_post("/chat/forget", forget)
    app.router.add_post("/chat/messages", post_message)
    app.router.add_get("/chat/updates", updates)
    app.router.add_get("/chat/live", live_updates)
    app.router.add_post("/chat/photos", upload_photo)
    app.router.add_get("/chat/tickets", my_tickets, name="chat_tickets")
    app.router.add_get("/chat/tickets/{number}", one_ticket)
    app.router.add_post("/chat/tickets/{number}/rate", rate)
    app.router.add_routes([photos.photo_route(config.photo_dir)])
