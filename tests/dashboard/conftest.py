"""Dashboard fixtures: the real aiohttp application (dashboard.app.make_app) over the test service (SQLite
and PostgreSQL, like every database test) with the injected clock, driven by aiohttp's test client; and
signing in as a staff member of the test org through the real login form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dashboard.app import HANDLER_ARGS, SERVICE, make_app
from tests.conftest import Org
from tickets.accounts import StaffLogin
from tickets.clock import ManualClock
from tickets.service import TicketService

Client = TestClient[web.Request, web.Application]
NewClient = Callable[[], Awaitable[Client]]


@asynccontextmanager
async def browsers_on(app: web.Application) -> AsyncIterator[NewClient]:
    """Browsers (or phones) on one real server of `app`, each with its own cookies."""
    server = TestServer(app)
    await server.start_server(**HANDLER_ARGS)  # the limits minhu run serves with (TestServer() drops them)
    opened: list[Client] = []

    async def new() -> Client:
        client: Client = TestClient(server)
        await client.start_server()
        opened.append(client)
        return client

    try:
        yield new
    finally:
        for client in reversed(opened):
            await client.close()
        await server.close()


SECRET = bytes(range(32))
PASSWORD = "test password 1"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_of(client: Client, path: str) -> str:
    """The CSRF token the page at `path` writes into its forms (the session's)."""
    response = await client.get(path)
    match = TOKEN_RE.search(await response.text())
    assert match, f"no CSRF field on {path} ({response.status})"
    return match.group(1)


@pytest.fixture
async def client(service: TicketService, clock: ManualClock) -> AsyncIterator[Client]:
    app = make_app(service, secret=SECRET, clock=clock, live_every=0.05)
    server = TestServer(app)
    await server.start_server(**HANDLER_ARGS)  # the limits minhu run serves with (TestServer() drops them)
    async with TestClient(server) as test_client:
        yield test_client


async def account(
    client: Client, org: Org, code: str, *, admin: bool = False, username: str | None = None
) -> StaffLogin:
    """The staff member's account (made on first use); username: their code in the org chart unless given."""
    service = client.app[SERVICE]
    username = username or code
    for login in await service.staff_accounts():
        if login.username == username:
            return login
    return await service.add_account(username, org[code], PASSWORD, is_admin=admin)


async def sign_in(
    client: Client, org: Org, code: str, *, admin: bool = False, username: str | None = None
) -> StaffLogin:
    """Sign in through the login form as the staff member with code `code` (e.g. staff-a)."""
    login = await account(client, org, code, admin=admin, username=username)
    token = await csrf_of(client, "/login")
    response = await client.post(
        "/login",
        data={"username": login.username, "password": PASSWORD, "csrf_token": token, "next": "/"},
        allow_redirects=False,
    )
    assert response.status == 302, await response.text()
    return login
