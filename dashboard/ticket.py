"""工单 (/tickets/{number}): one ticket with its whole history, the resident's words, attachments, deadlines
and notes, and the staff's actions as POST forms (CSRF-checked): dispatch or reassign, escalate, pause and
resume, close, add a note, reveal the phone. Every action is a TicketService method, so the same rules,
events and notifications apply as from Telegram; then post/redirect/get with a flash message. The reveal
log (/reveals) is for admins."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from dashboard.auth import signed_in
from dashboard.errors import PageError, bad_input
from dashboard.keys import SERVICE
from dashboard.render import render
from dashboard.user import StaffUser
from tickets.actors import Actor
from tickets.errors import DomainError, NotFound
from tickets.models import Level, Status
from tickets.privacy import mask_phone
from tickets.service import TicketService
from tickets.transitions import Action

NUMBER_RE = re.compile(r"[A-Za-z0-9-]{1,32}")
FLASH = "flash"


def _number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not NUMBER_RE.fullmatch(number):
        raise PageError(404, "没有找到这张工单,请检查工单编号。")
    return number


def _actor_name(actor: str, names: dict[int, str]) -> str:
    try:
        who = Actor.parse(actor)
    except ValueError:
        return "—"
    if who.kind == "resident":
        return "居民"
    if who.kind == "system":
        return "系统"
    return names.get(who.id or 0, "工作人员")


def _event_view(event: Any, names: dict[int, str]) -> dict[str, Any]:
    try:
        verb = Action(event.action).verb
    except ValueError:
        verb = event.action
    data = event.data or {}
    details = []
    for key, label in (("note", "备注"), ("reason", "原因"), ("comment", "留言")):
        if data.get(key):
            details.append(f"{label}:{data[key]}")
    if data.get("assignee"):
        details.append(f"派给:{names.get(int(data['assignee']), '—')}")
    return {
        "at": event.at,
        "verb": verb,
        "who": _actor_name(event.actor, names),
        "to": Status(event.to_status).label if event.to_status else "",
        "details": details,
        "kind": event.action,
        "data": data,
    }


async def ticket_page(request: web.Request, *, revealed: str | None = None) -> web.Response:
    user = await signed_in(request)
    service = request.app[SERVICE]
    number = _number(request)
    viewer = Actor.responder(user.responder_id)
    ticket = await service.ticket(number, viewer)
    history = await service.history(number, viewer)
    names = await service.responder_names()
    try:
        assignable = await service.assignable(number, user.responder_id)
    except DomainError:
        assignable = []
    session = await get_session(request)
    flash = session.pop(FLASH, None)
    events = [_event_view(e, names) for e in history]
    now = service.clock.now()
    deadline = ticket.deadline()
    category = service.catalogue.categories.get(ticket.category)
    return await render(
        request,
        "ticket.html",
        {
            "ticket": ticket,
            "category": category.name if category else ticket.category,
            "place": await service.place_of(ticket),
            "assignee": names.get(ticket.assignee_id or 0),
            "events": events,
            "notes": [e for e in events if e["kind"] == Action.NOTE],
            "attachments": [e["data"] for e in events if e["kind"] == Action.ATTACH],
            "assignable": assignable,
            "phone": mask_phone(ticket.contact_phone),
            "revealed": revealed,
            "overdue": ticket.is_overdue(now),
            "deadline": deadline,
            "left": service.calendar.working_time_between(now, deadline) if deadline else None,
            "level": Level(ticket.level).label,
            "flash": flash if isinstance(flash, dict) else None,
            "can_escalate": ticket.level < Level.STREET and Status(ticket.status).is_open,
        },
    )


async def show(request: web.Request) -> web.Response:
    return await ticket_page(request)


async def _form(request: web.Request, field: str, *, required: bool = True, limit: int = 4000) -> str:
    value = str((await request.post()).get(field, "")).strip()
    if len(value) > limit:
        raise bad_input(f"内容太长了(最多 {limit} 个字)。")
    if required and not value:
        raise bad_input("请填写原因或内容后再提交。")
    return value


Act = Callable[[TicketService, StaffUser, str, web.Request], Awaitable[str]]


def action(act: Act) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A POST action: run it through the domain, flash what happened (or why not), back to the ticket."""

    async def handler(request: web.Request) -> web.Response:
        user = await signed_in(request)
        number = _number(request)
        service = request.app[SERVICE]
        await service.ticket(number, Actor.responder(user.responder_id))  # out of scope: 404 before anything
        session = await get_session(request)
        try:
            message = await act(service, user, number, request)
            session[FLASH] = {"ok": True, "text": message}
        except NotFound:
            raise
        except DomainError as error:
            session[FLASH] = {"ok": False, "text": error.message}
        except PageError as error:
            session[FLASH] = {"ok": False, "text": error.message}
        raise web.HTTPSeeOther(f"/tickets/{number}")

    return handler


async def _dispatch(service: TicketService, user: StaffUser, number: str, request: web.Request) -> str:
    target = await _form(request, "responder")
    if not target.isdigit() or len(target) > 12:
        raise bad_input("请从列表中选择处理人。")
    reason = await _form(request, "reason", required=False, limit=500)
    ticket = await service.ticket(number, Actor.responder(user.responder_id))
    if Status(ticket.status) is Status.CREATED:
        await service.dispatch(number, user.responder_id, int(target), reason or None)
        return "已派单。"
    await service.reassign(number, user.responder_id, int(target), reason)
    return "已改派。"


async def _escalate(service: TicketService, user: StaffUser, number: str, request: web.Request) -> str:
    await service.escalate_by_hand(number, user.responder_id, await _form(request, "reason", limit=500))
    return "已升级。"


async def _pause(service: TicketService, user: StaffUser, number: str, request: web.Request) -> str:
    await service.pause_by_staff(number, user.responder_id, await _form(request, "reason", limit=500))
    return "已暂停计时。"


async def _resume(service: TicketService, user: StaffUser, number: str, request: web.Request) -> str:
    await service.resume_by_staff(number, user.responder_id)
    return "已恢复计时。"


async def _close(service: TicketService, user: StaffUser, number: str, request: web.Request) -> str:
    await service.close_by_staff(number, user.responder_id, await _form(request, "reason", limit=500))
    return "已结案。"


async def _note(service: TicketService, user: StaffUser, number: str, request: web.Request) -> str:
    await service.add_note(number, user.responder_id, await _form(request, "note"))
    return "备注已添加。"


async def reveal(request: web.Request) -> web.Response:
    """The full phone, shown on this response only (never stored in the session); the domain records the
    reveal (who, when, which ticket)."""
    user = await signed_in(request)
    number = _number(request)
    phone = await request.app[SERVICE].reveal_phone(number, user.responder_id)
    return await ticket_page(request, revealed=phone or "居民没有留电话")


async def reveals(request: web.Request) -> web.Response:
    user = await signed_in(request)
    log = await request.app[SERVICE].reveal_log(user.account_id)
    return await render(request, "reveals.html", {"reveals": log})


def setup(app: web.Application) -> None:
    app.router.add_get("/tickets/{number}", show, name="ticket")
    for name, act in (
        ("dispatch", _dispatch),
        ("escalate", _escalate),
        ("pause", _pause),
        ("resume", _resume),
        ("close", _close),
        ("note", _note),
    ):
        app.router.add_post(f"/tickets/{{number}}/{name}", action(act))
    app.router.add_post("/tickets/{number}/reveal", reveal)
    app.router.add_get("/reveals", reveals, name="reveals")
