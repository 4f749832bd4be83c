"""The dashboard inside `minhu run`: served on settings.dashboard_host:dashboard_port beside the sweeper,
and on the embedded default (SQLite) with no staff account yet, a demo account for the demo org's community
staff whose one-time password is printed (never logged) with the address, so a newcomer can log in at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from app.dashboard_secret import dashboard_secret
from app.health import Health
from app.settings import Settings
from dashboard.app import HANDLER_ARGS, ChatConfig, make_app
from tickets.accounts import generate_password
from tickets.errors import NotFound
from tickets.service import TicketService

DEMO_USERNAME = "demo"
DEMO_RESPONDER = "staff-anju-1"  # 喻红梅, community staff of 安居社区 in tickets/data/demo_org.yml


@dataclass(frozen=True)
class Dashboard:
    url: str
    demo_login: tuple[str, str] | None  # (username, password) made on this start, to print once


async def demo_account(settings: Settings, service: TicketService) -> tuple[str, str] | None:
    """The demo login, made only on the embedded database when there is no staff account at all."""
    if settings.database_url.strip() or await service.has_staff_accounts():
        return None
    try:
        responder_id = await service.responder_id_of(DEMO_RESPONDER)
    except NotFound:  # another org chart than the demo's: `minhu staff add` is the way
        return None
    password = generate_password()
    await service.add_account(DEMO_USERNAME, responder_id, password)
    return DEMO_USERNAME, password


@asynccontextmanager
async def dashboard_server(
    settings: Settings, service: TicketService, *, rasa_url: str | None = None
) -> AsyncIterator[Dashboard]:
    """The dashboard and the residents' web chat (/chat), which relays to Rasa at `rasa_url` (default
    MINHU_RASA_URL) and keeps photos in the data folder."""
    chat = ChatConfig(rasa_url=rasa_url or settings.rasa_url, photo_dir=settings.data_dir / "photos")
    app = make_app(
        service,
        secret=dashboard_secret(settings),
        secure_cookies=settings.dashboard_secure_cookies,
        chat_config=chat,
        trusted_proxies=settings.trusted_proxy_networks,
    )
    # /healthz, /readyz (database, Redis when set, the Rasa the chat relays to), /metrics; requests timed.
    Health(service, redis_url=settings.redis_url or None, rasa_url=chat.rasa_url).install(app)
    runner = web.AppRunner(app, access_log=None, **HANDLER_ARGS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.dashboard_host, settings.dashboard_port)
        try:
            await site.start()
        except OSError as error:
            raise RuntimeError(
                f"工作台端口 {settings.dashboard_host}:{settings.dashboard_port} 无法使用 ({error.strerror}),"
                "请用 MINHU_DASHBOARD_PORT 换一个端口。"
            ) from None
        host, port = runner.addresses[0][:2]
        login = await demo_account(settings, service)
        yield Dashboard(f"http://{host}:{port}/", login)
    finally:
        await runner.cleanup()


def dashboard_line(dashboard: Dashboard) -> str:
    """What `minhu run` prints about the dashboard: its address, and the demo login the first time."""
    line = f"工作台(dashboard):{dashboard.url} 居民网页聊天:{dashboard.url}chat 志愿者:{dashboard.url}v"
    if dashboard.demo_login:
        username, password = dashboard.demo_login
        line += f" 演示账号 {username},初始密码 {password}(只显示这一次)"
    return line
