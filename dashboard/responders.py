"""人员 (/responders): placeholder until the figures helper's page replaces this module's body."""

from __future__ import annotations

from aiohttp import web

from dashboard.auth import signed_in
from dashboard.render import render


async def page(request: web.Request) -> web.Response:
    await signed_in(request)
    return await render(request, "placeholder.html", {"title": "人员"})


def setup(app: web.Application) -> None:
    app.router.add_get("/responders", page, name="responders")
