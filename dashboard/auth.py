"""Who is signed in. Every handler starts with `user = await signed_in(request)`: anonymous visitors are sent
to the login page, and the rest of the authorization is the domain's (TicketService checks the responder's
scope and raises NotAllowed)."""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import quote

from aiohttp import web
from aiohttp_session import get_session, new_session

from dashboard.keys import USER
from dashboard.render import render
from dashboard.user import StaffUser

SESSION_USER = "user"


async def signed_in(request: web.Request) -> StaffUser:
    """The signed-in user; anonymous: a redirect to the login page that comes back here."""
    session = await get_session(request)
    user = StaffUser.from_session(session.get(SESSION_USER))
    if user is None:
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    request[USER] = user
    return user


async def sign_in(request: web.Request, user: StaffUser) -> None:
    """Start a new session for `user` (a fresh one: no session fixation)."""
    session = await new_session(request)
    session[SESSION_USER] = asdict(user)


async def login_page(request: web.Request) -> web.Response:
    return await render(request, "login.html", {"next": "/", "error": None, "username": ""})


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPFound("/login")


def setup(app: web.Application) -> None:
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/logout", logout, name="logout")


__all__ = ["StaffUser", "sign_in", "signed_in"]
