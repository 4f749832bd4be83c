"""The dashboard application: sessions, CSRF, error pages, templates, static files, and every page module's
routes. `make_app` is what `minhu run` and the tests start."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from dashboard import (
    auth,
    chat,
    figures,
    hotspots,
    live,
    open311,
    queue,
    render,
    responders,
    ticket,
    volunteer,
)
from dashboard.chat_relay import ChatConfig
from dashboard.clients import TRUSTED_PROXIES, Network
from dashboard.csrf import csrf_middleware
from dashboard.errors import error_middleware
from dashboard.keys import CLOCK, LIVE_EVERY, SERVICE
from tickets.clock import Clock, SystemClock
from tickets.service import TicketService

STATIC = Path(__file__).parent / "static"
SESSION_HOURS = 12
COOKIE_NAME = "minhu_session"
# The server's limits (web.AppRunner): a long query string gets the dashboard's own 400 page, not the HTTP
# parser's bare refusal.
HANDLER_ARGS: dict[str, Any] = {"max_line_size": 32 * 1024, "max_field_size": 16 * 1024}
# How often the live updates' one poller asks for new ticket events (dashboard/live.py): the most an event
# waits before the open pages are told. 0.25 s keeps an offer to 500 open volunteer pages within ~0.4 s of
# its commit at load 12 on 2 cores (1 s: up to 1.3 s), for ~1 % of a core more than 1 s while idle
# (benchmarks/webchat_speed.py, benchmarks/README.md).
LIVE_POLL_S = 0.25


def make_app(
    service: TicketService,
    *,
    secret: bytes,
    clock: Clock | None = None,
    live_every: float = LIVE_POLL_S,
    secure_cookies: bool = False,
    chat_config: ChatConfig | None = None,
    trusted_proxies: Sequence[Network] = (),
) -> web.Application:
    """The dashboard over `service`. `secret`: 32 bytes that encrypt and sign the session cookie;
    `secure_cookies`: send the cookie over HTTPS only (set it when a TLS proxy is in front); `chat_config`:
    serve the residents' web chat (/chat) too, relaying to the assistant it names; `trusted_proxies`: the
    proxies whose X-Forwarded-For names the client for the per-address limits (dashboard/clients.py)."""
    if len(secret) != 32:
        raise ValueError("the dashboard secret must be 32 bytes")
    # The error pages wrap everything, the session is loaded before the CSRF check reads its token.
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024)
    app[SERVICE] = service
    app[CLOCK] = clock or SystemClock()
    app[LIVE_EVERY] = live_every
    app[TRUSTED_PROXIES] = tuple(trusted_proxies)
    storage = EncryptedCookieStorage(
        secret,
        cookie_name=COOKIE_NAME,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies,
    )
    aiohttp_session.setup(app, storage)
    app.middlewares.append(csrf_middleware)
    render.setup(app)
    app.router.add_static("/static/", STATIC, name="static")
    for module in (auth, queue, ticket, live, figures, hotspots, responders):
        module.setup(app)
    photo_dir = chat_config.photo_dir if chat_config is not None else None  # the web chat's photos
    volunteer.setup(app, secret=secret, secure_cookies=secure_cookies, photo_dir=photo_dir)  # /v: no Telegram
    open311.setup(app)  # Open311 GeoReport v2 for city platforms (its own errors, no session or CSRF)
    if chat_config is not None:
        chat.setup(app, chat_config, secret=secret, secure_cookies=secure_cookies)
    return app


__all__ = ["CLOCK", "HANDLER_ARGS", "LIVE_EVERY", "SERVICE", "ChatConfig", "make_app"]
