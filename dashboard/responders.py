"""人员 (/responders): the responders of the staff's scope: on duty or not, open tickets against capacity,
爱心积分, and each one's 民呼我应 figures for a month (tickets.roster)."""

from __future__ import annotations

from aiohttp import web

from dashboard.auth import signed_in
from dashboard.keys import SERVICE
from dashboard.periods import CHOICES, FORMATS, month_of, now_of, timezone_of
from dashboard.render import render
from tickets import trends
from tickets.trends import Span


async def page(request: web.Request) -> web.Response:
    user = await signed_in(request)
    period = month_of(request)
    scope, rows = await request.app[SERVICE].responders_view(user.responder_id, period)
    tz = timezone_of(request)
    current = trends.period_containing(now_of(request), Span.MONTH, tz)
    months = trends.periods_ending(current, Span.MONTH, CHOICES, tz)[::-1]
    return await render(
        request,
        "responders.html",
        {"scope": scope, "rows": rows, "period": period, "months": months, **FORMATS},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/responders", page, name="responders")
