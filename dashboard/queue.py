"""工单队列 (/): the open tickets of the signed-in staff's scope."""

from __future__ import annotations

from aiohttp import web

from dashboard.auth import signed_in
from dashboard.keys import SERVICE
from dashboard.render import render


async def queue_page(request: web.Request) -> web.Response:
    user = await signed_in(request)
    tickets = await request.app[SERVICE].queue(user.responder_id)
    return await render(request, "queue.html", {"tickets": tickets})


def setup(app: web.Application) -> None:
    app.router.add_get("/", queue_page, name="queue")
