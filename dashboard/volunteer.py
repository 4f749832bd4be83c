"""The volunteers' and responders' web page (/v), mobile first, for those without Telegram: log in once with
the invite code staff made (`minhu responders invite`), then offers appear live with 接单 / 不接, "我的工单"
with the resident's phone for the assignee (the domain's reveal rule), notes, 退回 with a reason, 办结 with
a note, the 在岗 / 休息 switch and 爱心积分. Every step is the same domain call as on Telegram.

Who the browser is: an invite redeemed here binds a `web` account of the responder (ChannelStore, the same
one-time codes and rules as /join) whose handle is the hash of a random token; the token lives in the
`minhu_volunteer` cookie, encrypted under a key of its own derived from the dashboard secret (as the web
chat's `minhu_chat`). It lasts long (renewed on each visit) and stops working as soon as the binding goes
(退出登录 here, staff's 解除 on the dashboard's 人员 page or `minhu responders unbind CODE --channel web`) or
the responder is made inactive: the next request lands on the login page, which says so.

Offers reach a web-only responder through the outbox: their notifications are held for the page
(tickets.outbox.take_for_responder) and taken once, shown as "新"; the page lists the open offers from the
tickets themselves, so one who also has Telegram gets the offer there and still sees it here. Live updates
come from the dashboard's one poller (dashboard/live.py `stream`), scoped to the responder's area: on each
event the page's script fetches the panel again.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session
from markupsafe import Markup

from dashboard import live, photos
from dashboard.auth import LoginLimiter
from dashboard.clients import client_address
from dashboard.cookies import SealedCookie
from dashboard.csrf import CSRF_FIELD, csrf_token
from dashboard.errors import PageError
from dashboard.keys import SERVICE
from dashboard.render import render
from tickets.actors import Actor
from tickets.catalogue import Role
from tickets.channels import ChannelStore, secret_handle
from tickets.errors import AlreadyTaken, DomainError, TicketNotFound
from tickets.models import Responder, Status, Ticket, Urgency
from tickets.outbox import Channel, Claimed, Kind
from tickets.privacy import clean_text, mask_name, mask_phone, scrub
from tickets.service import TicketService
from tickets.transitions import Action

COOKIE = "minhu_volunteer"
COOKIE_DAYS = 180  # renewed on every visit
ELDER_COOKIE = "minhu_elder"  # the web chat's 长辈模式 cookie: one setting for the phone
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
FLASH = "volunteer_flash"
HOME = "/v"
LOGINS_PER_MINUTE = 10  # per address: invite codes are not to be guessed
DECLINE_REASONS = ("时间冲突,来不及", "不在附近", "不擅长这类事")  # as the Telegram buttons offer
POINT_REASONS = {
    "rated_satisfied": "居民评价满意",
    "rated_basic": "居民评价基本满意",
    "auto_closed": "办结后自动结案",
}

NEED_CODE = "请输入社区工作人员给您的邀请码(8 位字母和数字)。"
TOO_FAST = "尝试次数太多了,请一分钟后再试。"
LOGGED_IN = "登录成功,欢迎您,{name}!新工单会在这个页面上出现。"
LOGGED_OUT = "您已退出登录。再次使用需要向社区工作人员要一个新的邀请码。"
NOT_LOGGED_IN = "请先用邀请码登录。"
LOGIN_ENDED = (
    "您在这部手机上的登录已经失效(社区工作人员解除了登录,或者已经退出)。"
    "如需继续使用,请向社区工作人员要一个新的邀请码。"
)
TAKEN = "工单 {number} 已被他人接单,谢谢您的热心!"
ACCEPTED = "接单成功!工单 {number} 已在“我的工单”里,请尽快联系居民。"
DECLINED = "已不接工单 {number},会转给其他同志。"
NOTED = "备注已添加。"
RETURNED = "工单 {number} 已退回,会重新安排,居民会收到说明。"
RESOLVED = "工单 {number} 已办结,居民会收到回访。谢谢您!"
ON_DUTY = "已切换为“在岗”,新工单会推送给您。"
OFF_DUTY = "已切换为“休息”,暂时不会给您派新工单。"
NO_PHONE = "居民没有留下电话。"
GONE = (Kind.TAKEN, Kind.WITHDRAWN)
CARD_TOKEN = "MINHU-CSRF-TOKEN-OF-THE-PAGE"  # in a pushed card, replaced by each page's own token
KEEP_CARDS = 64  # offer cards kept for the pages still to be told (the newest)
NEWS = {
    Kind.ASSIGNED: "派给您的工单 {number}",
    Kind.TAKEN: TAKEN,
    Kind.WITHDRAWN: "工单 {number} 已撤回或改派,无需再处理,谢谢!",
    Kind.ESCALATED: "工单 {number} 已超期升级,请及时处理。",
    Kind.NEEDS_DISPATCH: "工单 {number} 暂时没有合适的人员可派,请人工派单。",
    Kind.EMERGENCY: "紧急求助 {number}:请马上联系居民、就近协助。",
}


# ---------------------------------------------------------------------------------------------- who


class Identity(SealedCookie):
    """The `minhu_volunteer` cookie: the random token whose hash is the responder's web account."""

    def __init__(self, secret: bytes, *, secure: bool = False) -> None:
        super().__init__(
            secret,
            name=COOKIE,
            purpose=b"minhu volunteer identity",
            pattern=TOKEN_RE,
            days=COOKIE_DAYS,
            secure=secure,
        )

    def token(self, request: web.Request) -> str | None:
        return self.read(request)


IDENTITY = web.AppKey("volunteer_identity", Identity)
OFFER_CARDS = web.AppKey("volunteer_offer_cards", dict[tuple[int, bool], "asyncio.Task[str | None]"])
STORE = web.AppKey("volunteer_store", ChannelStore)
LIMITS = web.AppKey("volunteer_logins", LoginLimiter)
PHOTO_DIR = web.AppKey("volunteer_photo_dir", Path)


@dataclass(frozen=True)
class Volunteer:
    """The responder this browser is bound to (a live.Scope: their community, or street staff's street)."""

    responder: Responder
    token: str

    @property
    def id(self) -> int:
        return self.responder.id

    @property
    def street_id(self) -> int:
        return self.responder.street_id

    @property
    def community_id(self) -> int | None:
        return self.responder.community_id


async def volunteer(request: web.Request) -> Volunteer | None:
    """The bound, active responder behind the cookie; None for anyone else (no cookie, a tampered or
    foreign one, an unbound browser, an inactive responder)."""
    token = request.app[IDENTITY].token(request)
    if token is None:
        return None
    responder = await request.app[STORE].responder_by_contact(Channel.WEB, secret_handle(token))
    return Volunteer(responder, token) if responder is not None else None


async def need_volunteer(request: web.Request) -> Volunteer:
    who = await volunteer(request)
    if who is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(HOME)
        raise PageError(403, NOT_LOGGED_IN)
    return who


def elder(request: web.Request) -> bool:
    return request.cookies.get(ELDER_COOKIE) == "1"


async def page(request: web.Request, template: str, context: dict[str, Any], **kwargs: Any) -> web.Response:
    return await render(request, template, {"elder": elder(request), **context}, **kwargs)


async def flash(request: web.Request, text: str, *, ok: bool = True) -> None:
    (await get_session(request))[FLASH] = {"ok": ok, "text": text}


async def back(request: web.Request, text: str, *, ok: bool = True, to: str = HOME) -> NoReturn:
    await flash(request, text, ok=ok)
    raise web.HTTPSeeOther(to)


# ---------------------------------------------------------------------------------------------- views


async def card(service: TicketService, ticket: Ticket, viewer: Responder) -> dict[str, Any]:
    """A ticket as a responder sees it (as the Telegram card): a sensitive category shows a summary only
    until the viewer has accepted it (staff see everything); phones in the text are masked for anyone
    else; the contact phone is always masked here (the assignee reveals it with a button)."""
    category = service.catalogue.get(ticket.category)
    status = Status(ticket.status)
    accepted = ticket.assignee_id == viewer.id and status not in (Status.CREATED, Status.DISPATCHED)
    trusted = accepted or Role(viewer.role).is_staff
    hidden = category.sensitive and not trusted
    return {
        "number": ticket.number,
        "category": category.name,
        "urgent": ticket.urgency == Urgency.URGENT,
        "status": status.label,
        "place": await service.place_of(ticket),
        "address": "接单后可见" if hidden else (ticket.address or "未填写"),
        "text": f"({category.name}类诉求,接单后可见详情)"
        if hidden
        else (ticket.text if trusted else scrub(ticket.text)),
        "phone": mask_phone(ticket.contact_phone),
        "respond_by": ticket.respond_by,
        "resolve_by": ticket.resolve_by,
        "mine": accepted and status is Status.ACCEPTED,
        "assigned": ticket.assignee_id == viewer.id and status is Status.DISPATCHED,
    }


def news_text(note: Claimed) -> str | None:
    if note.kind is Kind.RATED:
        return f"居民对工单 {note.number} 的评价已收到,爱心积分 +{note.payload.get('points', 0)}。谢谢您!"
    template = NEWS.get(note.kind)
    return template.format(number=note.number) if template else None


async def panel(request: web.Request, who: Volunteer) -> dict[str, Any]:
    """What the page shows (and the live refresh fetches again): what waited for them (taken once: marked
    delivered), the offers they may take, their tickets, their duty and points."""
    service = request.app[SERVICE]
    waiting = await request.app[STORE].waiting_for_responder(who.id, ref="web")
    fresh = {n.number for n in waiting if n.kind is Kind.OFFERED}
    # An offer or assignment gone before the page ever showed it: no news of its going (as on Telegram).
    unseen = {n.number for n in waiting if n.kind in (Kind.OFFERED, Kind.ASSIGNED)}
    offers = [await card(service, t, who.responder) for t in await service.offers_to(who.id)]
    for offer in offers:
        offer["new"] = offer["number"] in fresh
    mine = [await card(service, t, who.responder) for t in await service.tickets_of_responder(who.id)]
    balance, _ = await service.points_of(who.id)
    responder = await request.app[STORE].responder(who.id)  # on duty as it is now
    return {
        "me": {"name": responder.name, "on_duty": responder.on_duty},
        "offers": offers,
        "fresh": sum(1 for o in offers if o["new"]),
        "mine": mine,
        "news": [
            text for n in waiting if n.number not in unseen or n.kind not in GONE if (text := news_text(n))
        ],
        "points": balance,
        "reasons": DECLINE_REASONS,
    }


# ---------------------------------------------------------------------------------------------- pages


async def home(request: web.Request) -> web.Response:
    who = await volunteer(request)
    session = await get_session(request)
    if who is None:
        flash = session.pop(FLASH, None)
        # A genuine cookie whose binding is gone (staff unbound it, a copy from before 退出登录, an inactive
        # responder): told so, politely. A tampered or foreign one: just the login page.
        if flash is None and request.app[IDENTITY].token(request) is not None:
            flash = {"ok": False, "text": LOGIN_ENDED}
        response = await page(request, "volunteer/login.html", {"error": None, "flash": flash})
        if request.cookies.get(COOKIE):
            request.app[IDENTITY].drop(response)  # a cookie that stands for nobody: gone
        return response
    context = await panel(request, who)
    response = await page(request, "volunteer/home.html", {**context, "flash": session.pop(FLASH, None)})
    request.app[IDENTITY].keep(response, who.token)  # renewed: a volunteer who keeps coming stays logged in
    return response


async def panel_fragment(request: web.Request) -> web.Response:
    """The live part of /v, for the page's script to swap in on each event (server-rendered, escaped)."""
    who = await volunteer(request)
    if who is None:
        raise web.HTTPUnauthorized()
    return await page(request, "volunteer/panel.html", await panel(request, who))


async def login(request: web.Request) -> web.Response:
    if not request.app[LIMITS].allow(client_address(request)):  # behind the entry: the volunteer's address
        raise PageError(429, TOO_FAST)
    form = await request.post()
    code = clean_text(str(form.get("code", ""))).replace(" ", "").upper()
    if not code or len(code) > 32:
        return await page(request, "volunteer/login.html", {"error": NEED_CODE}, status=400)
    token = secrets.token_urlsafe(24)
    try:
        responder = await request.app[STORE].redeem_invite(code, Channel.WEB, secret_handle(token))
    except DomainError as error:
        return await page(request, "volunteer/login.html", {"error": error.message}, status=400)
    await flash(request, LOGGED_IN.format(name=responder.name))
    response = web.HTTPSeeOther(HOME)
    request.app[IDENTITY].keep(response, token)
    raise response


async def logout(request: web.Request) -> web.Response:
    who = await need_volunteer(request)
    await request.app[STORE].sign_out(who.id, Channel.WEB, secret_handle(who.token))
    await flash(request, LOGGED_OUT)
    response = web.HTTPSeeOther(HOME)
    request.app[IDENTITY].drop(response)
    raise response


async def set_elder(request: web.Request) -> web.Response:
    form = await request.post()
    target = str(form.get("next", HOME))
    response = web.HTTPSeeOther(target if re.fullmatch(r"/v(/[A-Za-z0-9/_-]*)?", target) else HOME)
    if form.get("on") == "1":
        response.set_cookie(ELDER_COOKIE, "1", max_age=365 * 86400, path="/", samesite="Lax", httponly=False)
    else:
        response.del_cookie(ELDER_COOKIE, path="/")
    raise response


async def duty(request: web.Request) -> web.Response:
    who = await need_volunteer(request)
    on = (await request.post()).get("on") == "1"
    await request.app[SERVICE].set_on_duty(who.id, on)
    return await back(request, ON_DUTY if on else OFF_DUTY)


async def points(request: web.Request) -> web.Response:
    who = await need_volunteer(request)
    balance, history = await request.app[SERVICE].points_of(who.id)
    lines = [
        {"at": e.at, "points": e.points, "reason": POINT_REASONS.get(e.reason, "办结工单")} for e in history
    ]
    return await page(request, "volunteer/points.html", {"balance": balance, "history": lines})


# ---------------------------------------------------------------------------------------------- tickets


def number_of(request: web.Request) -> str:
    return request.match_info["number"][:32]


async def ticket_page(
    request: web.Request, who: Volunteer, number: str, *, phone: str | None = None, status: int = 200
) -> web.Response:
    """One ticket: theirs, or one offered to them that they may still take; any other looks not found."""
    service = request.app[SERVICE]
    ticket = await service.ticket(number, Actor.responder(who.id))  # their area only
    offered = ticket.number in {t.number for t in await service.offers_to(who.id)}
    if ticket.assignee_id != who.id and not offered:
        raise TicketNotFound(number=ticket.number)
    view = await card(service, ticket, who.responder)
    view["offered"] = offered
    notes, pictures = [], []
    if view["mine"]:
        names = await service.responder_names()
        for event in await service.history(ticket.number, Actor.responder(who.id)):
            data = event.data or {}
            if event.action == Action.NOTE and not data.get("to_resident"):
                actor = Actor.parse(event.actor)
                author = mask_name(names.get(actor.id or 0)) if actor.kind == "responder" else "系统"
                notes.append({"at": event.at, "by": author, "text": data.get("note", "")})
            elif event.action == Action.ATTACH and data.get("kind") == "photo" and data.get("file"):
                pictures.append(str(data["file"]))  # the web chat's (Telegram's are seen on Telegram)
    session = await get_session(request)
    context = {
        "t": view,
        "notes": notes,
        "photos": pictures if PHOTO_DIR in request.app else [],
        "revealed": phone,
        "reasons": DECLINE_REASONS,
        "flash": session.pop(FLASH, None),
    }
    return await page(request, "volunteer/ticket.html", context, status=status)


async def show_ticket(request: web.Request) -> web.Response:
    who = await need_volunteer(request)
    return await ticket_page(request, who, number_of(request))


async def accept(request: web.Request) -> web.Response:
    who = await need_volunteer(request)
    number = number_of(request)
    try:
        ticket = await request.app[SERVICE].accept(number, who.id)
    except AlreadyTaken:
        return await back(request, TAKEN.format(number=number), ok=False)
    except DomainError as error:
        return await back(request, error.message, ok=False)
    return await back(request, ACCEPTED.format(number=ticket.number), to=f"{HOME}/tickets/{ticket.number}")


async def decline(request: web.Request) -> web.Response:
    who = await need_volunteer(request)
    number = number_of(request)
    reason = str((await request.post()).get("reason", ""))
    try:
        await request.app[SERVICE].decline(number, who.id, reason)
    except DomainError as error:
        return await back(request, error.message, ok=False)
    return await back(request, DECLINED.format(number=number))


async def reveal(request: web.Request) -> web.Response:
    """查看居民电话: the domain's rule (the assignee once accepted) and its record of every reveal; the number
    is shown on this response only (never kept in a cookie or a redirect)."""
    who = await need_volunteer(request)
    number = number_of(request)
    try:
        phone = await request.app[SERVICE].reveal_phone(number, who.id)
    except TicketNotFound:
        raise
    except DomainError as error:
        return await back(request, error.message, ok=False, to=f"{HOME}/tickets/{number}")
    return await ticket_page(request, who, number, phone=phone or NO_PHONE)


class Step(StrEnum):
    NOTE = "note"
    RETURN = "return"
    RESOLVE = "resolve"


async def _work(request: web.Request, step: Step) -> web.Response:
    """备注, 退回 (a reason) and 办结 (a note): the text from the form, the same domain calls as Telegram."""
    who = await need_volunteer(request)
    number = number_of(request)
    text = str((await request.post()).get("text", ""))
    service = request.app[SERVICE]
    here = f"{HOME}/tickets/{number}"
    try:
        match step:
            case Step.NOTE:
                await service.add_note(number, who.id, text)
                return await back(request, NOTED, to=here)
            case Step.RETURN:
                await service.return_ticket(number, who.id, text)
                return await back(request, RETURNED.format(number=number))
            case Step.RESOLVE:
                await service.resolve(number, who.id, text)
                return await back(request, RESOLVED.format(number=number))
    except TicketNotFound:
        raise
    except DomainError as error:
        return await back(request, error.message, ok=False, to=here)


async def add_note(request: web.Request) -> web.Response:
    return await _work(request, Step.NOTE)


async def return_ticket(request: web.Request) -> web.Response:
    return await _work(request, Step.RETURN)


async def resolve(request: web.Request) -> web.Response:
    return await _work(request, Step.RESOLVE)


async def photo(request: web.Request) -> web.StreamResponse:
    """A photo the resident attached, for the ticket's assignee (the domain's rule, TicketService.photo_of);
    another volunteer finds nothing (404), as for any ticket not theirs."""
    who = await need_volunteer(request)
    return await photos.send_photo(request, request.app[PHOTO_DIR], who.id)


async def _offer_card(request: web.Request, who: Volunteer, number: str) -> str | None:
    """An offer's card as the panel shows it (with CARD_TOKEN for the CSRF token), or None when it is no
    longer open (taken or withdrawn meanwhile: the plain event makes the page fetch its panel)."""
    service = request.app[SERVICE]
    try:
        ticket = await service.ticket(number, Actor.responder(who.id))
    except DomainError:
        return None
    if Status(ticket.status) is not Status.DISPATCHED:
        return None
    view = {**await card(service, ticket, who.responder), "new": True}

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, CARD_TOKEN)

    context = {"t": view, "reasons": DECLINE_REASONS, "csrf_field": csrf_field}
    return aiohttp_jinja2.render_string("volunteer/offer.html", request, context)


async def offer_card(request: web.Request, who: Volunteer, update: live.Update) -> str | None:
    """The card of the offer `update` made, rendered once for every page it goes to (a ticket offered to
    the volunteers of a grid reaches all their open pages at the same moment: one render, not one panel
    fetch each). The card is the same for every volunteer it is offered to; staff see more."""
    cards = request.app[OFFER_CARDS]
    key = (update.id, Role(who.responder.role).is_staff)
    task = cards.get(key)
    if task is None:
        task = cards[key] = asyncio.create_task(_offer_card(request, who, update.number))
        while len(cards) > KEEP_CARDS:
            cards.pop(next(iter(cards)))
    return await asyncio.shield(task)  # a page that goes away does not cancel the others' card


def unconcerned(update: live.Update, responder_id: int) -> bool:
    """What cannot change a (non-staff) volunteer's panel: a new request (nothing offered or assigned yet:
    its dispatch comes as an event of its own), and a dispatch to others (a first dispatch, or one after a
    return, whose withdrawal came with the return). Not sending them spares the server a panel fetch from
    every open page of the community for each new request."""
    if update.action == Action.CREATE:
        return True
    return update.action == Action.DISPATCH and responder_id not in update.concerns


async def live_updates(request: web.Request) -> web.StreamResponse:
    """Server-sent events of the tickets of the volunteer's area, from the dashboard's one poller. An offer
    to this volunteer comes as an `offer` event carrying its card (the page shows it without asking for its
    panel); every other change as the plain `ticket` event."""
    who = await volunteer(request)
    if who is None:
        raise web.HTTPUnauthorized()
    store, handle = request.app[STORE], secret_handle(who.token)
    token = await csrf_token(request)  # the page's, already in its session

    async def still_allowed() -> bool:
        return await store.responder_by_contact(Channel.WEB, handle) is not None

    staff = Role(who.responder.role).is_staff

    async def tell(update: live.Update) -> tuple[str, str] | None:
        if who.id in update.offered and (html := await offer_card(request, who, update)) is not None:
            data = {"number": update.number, "html": html.replace(CARD_TOKEN, token)}
            return "offer", json.dumps(data, ensure_ascii=False)
        if not staff and unconcerned(update, who.id):
            return None
        return await live.tell_ticket(update)

    return await live.stream(request, who, still_allowed, tell)


# ---------------------------------------------------------------------------------------------- setup


async def to_home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(HOME)


def setup(
    app: web.Application, *, secret: bytes, secure_cookies: bool = False, photo_dir: Path | None = None
) -> None:
    """`photo_dir`: where the web chat keeps residents' photos (None: no web chat, no photos here)."""
    service = app[SERVICE]
    app[STORE] = ChannelStore(service.sessions, service.clock)
    app[IDENTITY] = Identity(secret, secure=secure_cookies)
    app[LIMITS] = LoginLimiter(LOGINS_PER_MINUTE)
    app[OFFER_CARDS] = {}
    app.router.add_get(HOME, home, name="volunteer")
    app.router.add_get("/volunteer", to_home)
    app.router.add_post(f"{HOME}/login", login)
    app.router.add_post(f"{HOME}/logout", logout)
    app.router.add_post(f"{HOME}/elder", set_elder)
    app.router.add_post(f"{HOME}/duty", duty)
    app.router.add_get(f"{HOME}/points", points)
    app.router.add_get(f"{HOME}/panel", panel_fragment)
    app.router.add_get(f"{HOME}/live", live_updates)
    app.router.add_get(f"{HOME}/tickets/{{number}}", show_ticket)
    app.router.add_post(f"{HOME}/tickets/{{number}}/accept", accept)
    app.router.add_post(f"{HOME}/tickets/{{number}}/decline", decline)
    app.router.add_post(f"{HOME}/tickets/{{number}}/phone", reveal)
    app.router.add_post(f"{HOME}/tickets/{{number}}/note", add_note)
    app.router.add_post(f"{HOME}/tickets/{{number}}/return", return_ticket)
    app.router.add_post(f"{HOME}/tickets/{{number}}/resolve", resolve)
    if photo_dir is not None:
        app[PHOTO_DIR] = photo_dir
        app.router.add_get(f"{HOME}/tickets/{{number}}/photos/{{name}}", photo)
