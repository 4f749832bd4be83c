"""Dashboard fixtures: the real aiohttp application (dashboard.app.make_app) over the test service (SQLite
and PostgreSQL, like every database test) with the injected clock, driven by aiohttp's test client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import asdict

import aiohttp_session
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dashboard.app import make_app
from dashboard.auth import SESSION_USER, StaffUser
from tests.conftest import Org
from tickets.clock import ManualClock
from tickets.service import TicketService

SECRET = bytes(range(32))
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_of(client: TestClient[web.Request, web.Application], path: str) -> str:
    """The CSRF token the page at `path` writes into its forms (the session's)."""
    response = await client.get(path)
    match = TOKEN_RE.search(await response.text())
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def _test_sign_in(request: web.Request) -> web.Response:
    """Test-only: the session of the user in the JSON body (until the accounts' login exists)."""
    session = await aiohttp_session.new_session(request)
    session[SESSION_USER] = await request.json()
    return web.Response(text="ok")


@pytest.fixture
async def client(
    service: TicketService, clock: ManualClock
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = make_app(service, secret=SECRET, clock=clock, live_every=0.05)
    app.router.add_post("/_test/sign-in", _test_sign_in)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def sign_in(client: TestClient[web.Request, web.Application], org: Org, code: str) -> StaffUser:
    responders = {c: i for c, i in org.responders.items()}
    user = StaffUser(
        account_id=responders[code],
        username=code,
        responder_id=responders[code],
        name=code,
        community_id=None,
        street_id=1,
        is_admin=False,
    )
    token = await csrf_of(client, "/login")
    response = await client.post("/_test/sign-in", json=asdict(user), headers={"X-CSRF-Token": token})
    assert response.status == 200, await response.text()
    return user
