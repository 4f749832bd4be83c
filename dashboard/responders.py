"""人员 (/responders): the responders of the staff's scope: on duty or not, open tickets against capacity,
爱心积分, and each one's 民呼我应 figures for a month (tickets.roster); and 解除网页登录, which ends the web
login of a responder's browser on the volunteer page (a lost phone, a volunteer who left): a POST form
(CSRF-checked), the domain's scope check (TicketService.unbind_web_login: another community's responder
looks not found), written to the audit log with who did it, then post/redirect/get with a flash message."""

from __future__ import annotations

import re

import structlog
from aiohttp import web
from aiohttp_session import get_session

from dashboard.auth import signed_in
from dashboard.errors import PageError
from dashboard.keys import SERVICE
from dashboard.periods import CHOICES, FORMATS, month_of, now_of, timezone_of
from dashboard.render import render
from tickets import trends
from tickets.trends import Span

audit = structlog.get_logger("dashboard.audit")

FLASH = "responders_flash"
ID_RE = re.compile(r"[0-9]{1,12}")
UNBOUND = "已解除{name}的网页登录,那部手机或电脑上的登录马上失效。需要时请用 minhu responders invite 发一个新的邀请码。"
NOT_BOUND = "{name}目前没有网页登录,无需解除。"


async def page(request: web.Request) -> web.Response:
    user = await signed_in(request)
    period = month_of(request)
    scope, rows = await request.app[SERVICE].responders_view(user.responder_id, period)
    tz = timezone_of(request)
    current = trends.period_containing(now_of(request), Span.MONTH, tz)
    months = trends.periods_ending(current, Span.MONTH, CHOICES, tz)[::-1]
    flash = (await get_session(request)).pop(FLASH, None)
    return await render(
        request,
        "responders.html",
        {
            "scope": scope,
            "rows": rows,
            "period": period,
            "months": months,
            "flash": flash if isinstance(flash, dict) else None,
            **FORMATS,
        },
    )


async def unbind_web_login(request: web.Request) -> web.Response:
    user = await signed_in(request)
    raw = request.match_info["responder"]
    if not ID_RE.fullmatch(raw):
        raise PageError(404, "没有找到这位工作人员或志愿者。")
    name, removed = await request.app[SERVICE].unbind_web_login(user.responder_id, int(raw))
    audit.info(
        "web login unbound",
        by_account=user.account_id,
        by_responder=user.responder_id,
        responder=int(raw),
        removed=removed,
    )
    text = (UNBOUND if removed else NOT_BOUND).format(name=name)
    (await get_session(request))[FLASH] = {"ok": removed, "text": text}
    raise web.HTTPSeeOther("/responders")


def setup(app: web.Application) -> None:
    app.router.add_get("/responders", page, name="responders")
    app.router.add_post("/responders/{responder}/web-login/unbind", unbind_web_login)
