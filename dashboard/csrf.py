"""CSRF: a random token kept in the (encrypted) session, written into every form by `csrf_field()` and
checked on every state-changing request, from the form field or the X-CSRF-Token header. Missing or wrong:
403, nothing done."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import get_session

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_KEY = "csrf"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def csrf_token(request: web.Request) -> str:
    """The session's token, made on first use."""
    session = await get_session(request)
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


class CsrfRefused(web.HTTPForbidden):
    """A state-changing request without the session's token (a forged form, or a page left open across a
    new sign-in)."""


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in UNSAFE:
        session = await get_session(request)
        expected = session.get(SESSION_KEY)
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            given = (await request.post()).get(CSRF_FIELD)  # type: ignore[assignment]
        if not (
            isinstance(expected, str)
            and isinstance(given, str)
            and hmac.compare_digest(expected.encode(), given.encode())
        ):
            raise CsrfRefused()
    return await handler(request)
