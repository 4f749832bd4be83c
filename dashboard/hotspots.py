"""热点 (/hotspots): this week's (or month's) top categories by grid against the previous one, and the
groups of similar open requests from different residents (tickets.hotspots), each linking to its tickets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from dashboard.auth import signed_in
from dashboard.keys import SERVICE
from dashboard.periods import FORMATS, span_of
from dashboard.render import render
from tickets.insights import SIMILAR_WITHIN
from tickets.trends import Span


async def page(request: web.Request) -> web.Response:
    user = await signed_in(request)
    span = span_of(request, Span.WEEK)
    view = await request.app[SERVICE].hotspots_view(user.responder_id, span=span)
    return await render(
        request,
        "hotspots.html",
        {"view": view, "span": span, "within_days": SIMILAR_WITHIN.days, **FORMATS},
    )


async def _warm_up(app: web.Application) -> AsyncIterator[None]:
    # In the background: the app starts at once, jieba's dictionary (about a second) loads meanwhile.
    task = asyncio.create_task(app[SERVICE].prepare_hotspots())
    yield
    if not task.done():
        task.cancel()


def setup(app: web.Application) -> None:
    app.router.add_get("/hotspots", page, name="hotspots")
    app.cleanup_ctx.append(_warm_up)
