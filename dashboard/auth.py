"""Signing in and out, and who is signed in. Every handler starts with `user = await signed_in(request)`:
anonymous visitors are sent to the login page; the rest of the authorization is the domain's
(TicketService checks the responder's scope and raises NotAllowed → 403).

The session (an encrypted, HttpOnly, SameSite=Lax cookie) holds only the account id and its generation; the
account is read again on every request, so a disabled account or a changed password ends its sessions at
once. Signing in starts a new session (no fixation) and a new CSRF token. The login form is rate-limited
per address (`LOGIN_PER_MINUTE`) on top of the account's own lockout (tickets.accounts)."""

from __future__ import annotations

import time
from collections import deque
from urllib.parse import quote

from aiohttp import web
from aiohttp_session import get_session, new_session

from dashboard.clients import client_address
from dashboard.errors import PageError
from dashboard.keys import SERVICE, USER
from dashboard.render import render
from dashboard.user import StaffUser
from tickets.errors import AccountLocked, LoginRefused
from tickets.privacy import clean_text

SESSION_ACCOUNT = "account"
SESSION_GENERATION = "generation"
LOGIN_PER_MINUTE = 10


class LoginLimiter:
    """At most `limit` login attempts per address in any `window` seconds (a sliding window in memory: one
    dashboard process per machine)."""

    def __init__(self, limit: int = LOGIN_PER_MINUTE, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if len(self._seen) > 10_000:  # forget quiet addresses rather than grow without bound
            self._seen = {a: t for a, t in self._seen.items() if t and t[-1] > now - self.window}
        attempts = self._seen.setdefault(address, deque())
        while attempts and attempts[0] <= now - self.window:
            attempts.popleft()
        if len(attempts) >= self.limit:
            return False
        attempts.append(now)
        return True


LIMITER = web.AppKey("login_limiter", LoginLimiter)


async def signed_in(request: web.Request) -> StaffUser:
    """The signed-in user; anonymous (or an ended session): a redirect to the login page that comes back."""
    session = await get_session(request)
    account_id, generation = session.get(SESSION_ACCOUNT), session.get(SESSION_GENERATION)
    login = (
        await request.app[SERVICE].staff_login(account_id)
        if isinstance(account_id, int) and isinstance(generation, int)
        else None
    )
    if login is None or login.generation != generation:
        if not session.new:
            session.pop(SESSION_ACCOUNT, None)
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    user = login
    request[USER] = user
    return user


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another site: //evil, https:...)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:2000]


async def login_page(request: web.Request) -> web.Response:
    return await render(
        request, "login.html", {"next": safe_next(request.query.get("next")), "error": None, "username": ""}
    )


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    username = clean_text(str(form.get("username", "")))[:64]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    if not request.app[LIMITER].allow(client_address(request)):
        raise PageError(429, "登录尝试太频繁了,请等一分钟再试。")
    try:
        account = await request.app[SERVICE].authenticate(username, password)
    except (LoginRefused, AccountLocked) as error:
        context = {"next": target, "error": error.message, "username": username}
        return await render(request, "login.html", context, status=401)
    session = await new_session(request)  # a fresh session: nothing of the anonymous one carries over
    session[SESSION_ACCOUNT] = account.account_id
    session[SESSION_GENERATION] = account.generation
    raise web.HTTPFound(target)


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPFound("/login")


def setup(app: web.Application) -> None:
    app[LIMITER] = LoginLimiter()
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout, name="logout")


__all__ = ["StaffUser", "signed_in"]
