"""Pages from Jinja2 templates (`dashboard/templates/`, autoescaped): every page extends `base.html`, which
carries the nav and the signed-in user's name. `csrf_field()` in a template writes the hidden token every
POST form needs (dashboard.csrf)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from dashboard.csrf import CSRF_FIELD, csrf_token
from dashboard.format import local_time, short, worktime
from dashboard.keys import USER
from tickets.privacy import scrub

TEMPLATES = Path(__file__).parent / "templates"


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        context_processors=[aiohttp_jinja2.request_processor],
    )
    env.trim_blocks = True
    env.filters.update(local_time=local_time, worktime=worktime, short=short, masked=scrub)
    env.lstrip_blocks = True


async def render(
    request: web.Request, template_name: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """The page; `user` (set by `dashboard.auth.signed_in`) and `csrf_field()` are in every template."""
    token = await csrf_token(request)

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, escape(token))

    page = {"user": request.get(USER), "csrf_field": csrf_field, "csrf_token": token, **context}
    response = aiohttp_jinja2.render_template(template_name, request, page, status=status)
    # Pages show personal data: never kept by a shared browser's cache or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response
