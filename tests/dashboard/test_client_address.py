"""The per-address limits behind a proxy (dashboard/clients.py): X-Forwarded-For names the client only when
the peer is a trusted proxy (MINHU_TRUSTED_PROXIES), and then it is the right-most address that is not a
trusted proxy; from anyone else the header is ignored, so a visitor cannot dodge a limit by writing one. The
real application on a real port: the test client's peer is 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from app.settings import Settings, parse_networks
from dashboard.app import HANDLER_ARGS, ChatConfig, make_app
from dashboard.clients import TRUSTED_PROXIES, Network, client_address
from tests.dashboard.conftest import SECRET, Client, csrf_of
from tests.fake_rasa import FakeRasa
from tickets.clock import ManualClock
from tickets.service import TicketService

LOOPBACK = parse_networks("127.0.0.1")
NewBrowser = Callable[[], Awaitable[Client]]
Serve = Callable[[tuple[Network, ...]], Awaitable[NewBrowser]]


@pytest.fixture
async def serve(
    service: TicketService, clock: ManualClock, rasa: FakeRasa, tmp_path: Path
) -> AsyncIterator[Serve]:
    """The dashboard with the web chat, trusting the given proxies; returns a maker of browsers."""
    servers: list[TestServer] = []
    clients: list[Client] = []

    async def start(trusted: tuple[Network, ...]) -> NewBrowser:
        config = ChatConfig(rasa_url=rasa.url, photo_dir=tmp_path / "photos", replay_every=3600)
        app = make_app(service, secret=SECRET, clock=clock, chat_config=config, trusted_proxies=trusted)
        server = TestServer(app)
        await server.start_server(**HANDLER_ARGS)
        servers.append(server)

        async def browser() -> Client:
            client: Client = TestClient(server)
            await client.start_server()
            clients.append(client)
            return client

        return browser

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        await server.close()


async def consent_status(browser: Client, forwarded_for: str) -> int:
    token = await csrf_of(browser, "/chat")
    response = await browser.post(
        "/chat/consent", data={"csrf_token": token}, headers={"X-Forwarded-For": forwarded_for}
    )
    return response.status


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(serve: Serve) -> None:
    """No trusted proxy (the default): 11 new residents writing 11 different addresses are one address to
    the limit (10 consents a minute), so the 11th waits."""
    new_browser = await serve(())
    statuses = [await consent_status(await new_browser(), f"203.0.113.{i}") for i in range(11)]
    assert statuses == [200] * 10 + [429]


async def test_from_a_trusted_proxy_each_forwarded_client_has_its_own_limit(serve: Serve) -> None:
    new_browser = await serve(LOOPBACK)
    statuses = [await consent_status(await new_browser(), f"203.0.113.{i}") for i in range(11)]
    assert statuses == [200] * 11  # 11 residents behind the entry, each their own address
    # The right-most untrusted address counts: what a client wrote to the left of it changes nothing.
    same = [await consent_status(await new_browser(), f"10.9.8.{i}, 198.51.100.7") for i in range(11)]
    assert same == [200] * 10 + [429]


async def test_login_attempts_are_limited_per_forwarded_client_behind_a_trusted_proxy(serve: Serve) -> None:
    new_browser = await serve(LOOPBACK)
    browser = await new_browser()

    async def attempt(forwarded_for: str) -> int:
        token = await csrf_of(browser, "/login")
        response = await browser.post(
            "/login",
            data={"username": "nobody", "password": "wrong", "csrf_token": token, "next": "/"},
            headers={"X-Forwarded-For": forwarded_for},
            allow_redirects=False,
        )
        return response.status

    assert [await attempt("198.51.100.1") for _ in range(11)] == [401] * 10 + [429]
    assert await attempt("198.51.100.2") == 401  # another client behind the same proxy is not held up


async def test_volunteer_code_attempts_are_limited_per_forwarded_client_behind_a_trusted_proxy(
    serve: Serve,
) -> None:
    """/v/login's limit (10 codes a minute) is per volunteer, not for the whole city behind the entry (it
    counted the peer, the entry itself, before)."""
    new_browser = await serve(LOOPBACK)
    browser = await new_browser()

    async def attempt(forwarded_for: str) -> int:
        token = await csrf_of(browser, "/v")
        response = await browser.post(
            "/v/login",
            data={"code": "ABCD2345", "csrf_token": token},
            headers={"X-Forwarded-For": forwarded_for},
        )
        return response.status

    assert [await attempt("198.51.100.1") for _ in range(11)] == [400] * 10 + [429]
    assert await attempt("198.51.100.2") == 400  # another volunteer behind the same entry is not held up


@pytest.mark.parametrize(
    ("trusted", "header", "client"),
    [
        ("", "203.0.113.9", "127.0.0.1"),  # nobody trusted: the peer
        ("10.0.0.0/8", "203.0.113.9", "127.0.0.1"),  # the peer is not one of the trusted
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1, 10.0.0.0/8", "6.6.6.6, 203.0.113.9, 10.1.2.3", "203.0.113.9"),  # proxies skipped
        ("127.0.0.0/8 10.0.0.0/8", "10.1.2.3", "10.1.2.3"),  # all trusted: the left-most
        ("127.0.0.1", "", "127.0.0.1"),  # no header: the peer
        ("127.0.0.1", "not-an-ip", "not-an-ip"),  # whatever the trusted proxy said
    ],
)
async def test_client_address(trusted: str, header: str, client: str) -> None:
    app = web.Application()
    app[TRUSTED_PROXIES] = parse_networks(trusted)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=client_address(request))

    app.router.add_get("/", echo)
    async with TestClient(TestServer(app)) as http:
        headers = {"X-Forwarded-For": header} if header else {}
        assert await (await http.get("/", headers=headers)).text() == client


def test_the_setting_is_empty_by_default_and_a_typo_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINHU_TRUSTED_PROXIES", raising=False)
    assert Settings(_env_file=None).trusted_proxy_networks == ()  # type: ignore[call-arg]
    monkeypatch.setenv("MINHU_TRUSTED_PROXIES", "172.30.77.0/24, ::1")
    networks = Settings(_env_file=None).trusted_proxy_networks  # type: ignore[call-arg]
    assert [str(n) for n in networks] == ["172.30.77.0/24", "::1/128"]
    monkeypatch.setenv("MINHU_TRUSTED_PROXIES", "172.30.77.0/33")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
