"""The python-telegram-bot Application: built from settings, one handler module per kind of user, every update
processed at most once (its update_id recorded before anything else), polling or webhook (the secret token
checked), and the outbox delivery loop beside it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, cast

import structlog
from telegram import Update
from telegram.constants import ChatType
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    PersistenceInput,
    PicklePersistence,
    TypeHandler,
)
from telegram.request import BaseRequest

from app.health import Health, health_server
from app.logs import where
from app.loops import run_forever
from app.ratelimit import TELEGRAM_RATE, telegram_limit
from app.settings import Settings
from app.wiring import open_engine, open_service, policy_from
from bot import residents, responders, staff
from bot.common import CHANNEL, SORRY, App, Context, Minhu, deps
from bot.delivery import Delivery, deliver_forever
from bot.rasa import RasaClient, Relay
from bot.receiver import RECEIVER, poll, webhook_app, webhook_server
from bot.worker import JournalRequest, Worker
from tickets.channels import ChannelStore
from tickets.db import session_factory
from tickets.inbox import Inbox, scoped_sessions
from tickets.service import TicketService

log = structlog.get_logger("bot")
PRIVATE_ONLY = "为保护个人信息,请私聊民呼助手。"


@dataclasses.dataclass(frozen=True)
class BotConfig:
    token: str
    rasa_url: str = "http://127.0.0.1:5005"
    api_url: str | None = None  # e.g. http://127.0.0.1:8081 for a local (or, in tests, fake) Bot API server
    webhook_url: str | None = None  # the public https URL Telegram posts to
    webhook_secret: str | None = None
    listen: str = "127.0.0.1"
    port: int = 8443
    rasa_timeout: float = 60.0
    notice_after: float = 8.0  # seconds before a resident is told their answer is on its way
    # Where a responder's half-finished card conversation (e.g. 办结 pressed, note not yet written) survives a
    # restart; None keeps it in memory only.
    state_file: Path | None = None
    redis_url: str | None = None  # shared Telegram rate limit of all deliverers (app/ratelimit.py)
    send_rate: float = TELEGRAM_RATE  # messages a second, all deliverers together

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            token=settings.telegram_bot_token,
            rasa_url=settings.rasa_url,
            api_url=settings.telegram_api_url or None,
            webhook_url=settings.telegram_webhook_url or None,
            webhook_secret=settings.telegram_webhook_secret or None,
            listen=settings.telegram_webhook_listen,
            port=settings.telegram_webhook_port,
            state_file=settings.data_dir / "telegram_conversations.pickle",
            redis_url=settings.redis_url or None,
            send_rate=settings.telegram_rate,
        )


class InOrderPerUser(BaseUpdateProcessor):
    """Different users' updates at once (one slow resident must not hold up the others), one user's updates
    one after another, in the order Telegram sent them."""

    def __init__(self, max_concurrent_updates: int = 64) -> None:
        super().__init__(max_concurrent_updates)
        self._queues: dict[int, tuple[asyncio.Lock, list[int]]] = {}  # user: (lock, [updates waiting])

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        user = update.effective_user if isinstance(update, Update) else None
        key = user.id if user is not None else 0
        lock, waiting = self._queues.setdefault(key, (asyncio.Lock(), [0]))
        waiting[0] += 1
        try:
            async with lock:
                await coroutine
        finally:
            waiting[0] -= 1
            if waiting[0] == 0:
                del self._queues[key]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


async def once(update: Update, context: Context) -> None:
    """Group -1, before every handler: a repeated update (same update_id) stops here, and so does anything
    from a group chat (tickets, phones and queues are for one person's eyes)."""
    if not await deps(context).store.first_time(CHANNEL, update.update_id):
        log.info("repeated update ignored", update_id=update.update_id)
        raise ApplicationHandlerStop
    chat = update.effective_chat
    if chat is not None and chat.type != ChatType.PRIVATE:
        if update.callback_query is not None:
            await update.callback_query.answer(PRIVATE_ONLY, show_alert=True)
        raise ApplicationHandlerStop


async def on_error(update: object, context: Context) -> None:
    error = context.error
    log.error("update failed", error=type(error).__name__, at=where(error) if error else "")
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(Exception):
            await update.effective_chat.send_message(SORRY)


def build_application(
    config: BotConfig,
    service: TicketService,
    *,
    rasa: RasaClient | None = None,
    request: BaseRequest | None = None,
) -> App:
    if not config.token:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set")
    builder = Application.builder().token(config.token).rate_limiter(AIORateLimiter())
    if request is not None:  # a worker's journalled requests (bot/worker.py)
        builder = builder.request(request)
    builder = builder.concurrent_updates(InOrderPerUser())
    if config.state_file is not None:
        only_conversations = PersistenceInput(
            bot_data=False, chat_data=False, user_data=True, callback_data=False
        )
        builder = builder.persistence(PicklePersistence(config.state_file, store_data=only_conversations))
    if config.api_url:
        api = config.api_url.rstrip("/")
        builder = builder.base_url(f"{api}/bot").base_file_url(f"{api}/file/bot")
    application = cast(App, builder.build())
    store = ChannelStore(service.sessions, service.clock)
    relay = Relay(
        rasa or RasaClient(config.rasa_url, timeout=config.rasa_timeout),
        store,
        service.calendar.tz,
        notice_after=config.notice_after,
    )
    application.bot_data["minhu"] = Minhu(service, store, relay)
    application.add_handler(TypeHandler(Update, once), group=-1)
    residents.register(application)
    responders.register(application)
    staff.register(application)
    residents.register_fallbacks(application)
    application.add_error_handler(on_error)
    return application


def minhu_of(application: App) -> Minhu:
    return cast(Minhu, application.bot_data["minhu"])


@contextlib.asynccontextmanager
async def running(
    application: App, config: BotConfig, *, webhook: bool = False, deliver: bool = True
) -> AsyncIterator[App]:
    """The application receiving updates (long polling, or a webhook server checking the secret token) and,
    with `deliver`, the outbox delivery loop."""
    updater = application.updater
    assert updater is not None
    async with application:
        if webhook:
            if not (config.webhook_secret and config.webhook_url):
                raise RuntimeError("webhook mode needs TELEGRAM_WEBHOOK_URL and TELEGRAM_WEBHOOK_SECRET")
            await updater.start_webhook(
                listen=config.listen,
                port=config.port,
                url_path="telegram",
                webhook_url=config.webhook_url,
                secret_token=config.webhook_secret,
                allowed_updates=Update.ALL_TYPES,
            )
        else:
            await updater.start_polling(allowed_updates=Update.ALL_TYPES)
        await application.start()
        tasks: list[asyncio.Task[Any]] = []
        if deliver:
            tasks.append(
                asyncio.create_task(
                    deliver_forever(
                        Delivery(
                            minhu_of(application),
                            application.bot,
                            limit=telegram_limit(config.redis_url, config.token, config.send_rate),
                        )
                    )
                )
            )
        try:
            yield application
        finally:
            for task in tasks:
                task.cancel()
            await updater.stop()
            await application.stop()
            await minhu_of(application).relay.rasa.close()


@contextlib.asynccontextmanager
async def telegram_bot(
    settings: Settings, service: TicketService, *, rasa_url: str | None = None, webhook: bool = False
) -> AsyncIterator[None]:
    """The bot beside the rest of the process when TELEGRAM_BOT_TOKEN is set (nothing otherwise)."""
    if not settings.telegram_bot_token:
        yield
        return
    config = BotConfig.from_settings(settings)
    if rasa_url:
        config = dataclasses.replace(config, rasa_url=rasa_url)
    async with running(build_application(config, service), config, webhook=webhook):
        log.info("telegram bot running", mode="webhook" if webhook else "polling", rasa=config.rasa_url)
        yield


async def run_deliverer(settings: Settings, every: float = 1.0) -> None:
    """`minhu deliver`: one more outbox deliverer (docs/deploy.md), beside the bot's own: claims with SKIP
    LOCKED and a lease, Telegram's rate shared through Redis when MINHU_REDIS_URL is set. Receives no
    updates and keeps no conversations (no pickle file); replaying residents' stored messages stays the
    bot's."""
    if not settings.telegram_bot_token:
        raise RuntimeError("请先设置 TELEGRAM_BOT_TOKEN (set TELEGRAM_BOT_TOKEN first)")
    config = dataclasses.replace(BotConfig.from_settings(settings), state_file=None)
    async with open_service(settings) as service:
        application = build_application(config, service)
        limit = telegram_limit(config.redis_url, config.token, config.send_rate)
        delivery = Delivery(minhu_of(application), application.bot, limit=limit)
        health = Health(service, redis_url=settings.redis_url or None)
        try:
            async with application, health_server(health, settings.dashboard_host, settings.health_port):
                log.info("outbox deliverer running", shared_rate=bool(config.redis_url))
                await run_forever(delivery.run_once, every, name="delivery round")
        finally:
            await minhu_of(application).relay.rasa.close()


async def run_bot(settings: Settings, *, webhook: bool = False) -> None:
    """`minhu bot`: the bot on the configured database until interrupted."""
    if not settings.telegram_bot_token:
        raise RuntimeError("请先设置 TELEGRAM_BOT_TOKEN (set TELEGRAM_BOT_TOKEN first)")
    async with open_service(settings) as service, telegram_bot(settings, service, webhook=webhook):
        # MINHU_HEALTH_PORT: /healthz, /readyz (database, Redis when set, Rasa), /metrics; unset: none.
        health = Health(service, redis_url=settings.redis_url or None, rasa_url=settings.rasa_url)
        async with health_server(health, settings.dashboard_host, settings.health_port):
            await asyncio.Event().wait()


async def run_receiver(settings: Settings, *, webhook: bool = False) -> None:
    """`minhu bot --receiver`: records Telegram's updates for the workers (bot/receiver.py); one active at a
    time (the others wait)."""
    if not settings.telegram_bot_token:
        raise RuntimeError("请先设置 TELEGRAM_BOT_TOKEN (set TELEGRAM_BOT_TOKEN first)")
    config = dataclasses.replace(BotConfig.from_settings(settings), state_file=None)
    if webhook and not (config.webhook_secret and config.webhook_url):
        raise RuntimeError("webhook mode needs TELEGRAM_WEBHOOK_URL and TELEGRAM_WEBHOOK_SECRET")
    async with open_engine(settings) as engine:
        service = TicketService(session_factory(engine), policy=policy_from(settings))
        health = Health(service, redis_url=settings.redis_url or None)
        inbox = Inbox(engine, service.clock)
        bot = build_application(config, service).bot
        async with (
            bot,
            health_server(health, settings.dashboard_host, settings.health_port),
            inbox.leader(RECEIVER),
        ):
            if not webhook:
                log.info("telegram receiver running", mode="polling")
                await poll(bot, inbox)
                return
            assert config.webhook_secret and config.webhook_url
            app = webhook_app(bot, inbox, config.webhook_secret)
            async with webhook_server(app, config.listen, config.port):
                # One connection: Telegram sends the next update after the last one's 200, in order.
                await bot.set_webhook(
                    config.webhook_url,
                    secret_token=config.webhook_secret,
                    allowed_updates=Update.ALL_TYPES,
                    max_connections=1,
                )
                log.info("telegram receiver running", mode="webhook")
                await asyncio.Event().wait()


async def run_worker(settings: Settings, *, concurrency: int = 8) -> None:
    """`minhu bot --worker`: handles recorded updates (bot/worker.py), any number of them beside each other."""
    if not settings.telegram_bot_token:
        raise RuntimeError("请先设置 TELEGRAM_BOT_TOKEN (set TELEGRAM_BOT_TOKEN first)")
    config = dataclasses.replace(BotConfig.from_settings(settings), state_file=None)
    async with open_engine(settings) as engine:
        service = TicketService(scoped_sessions(engine), policy=policy_from(settings))
        inbox = Inbox(engine, service.clock)
        request = JournalRequest(inbox, connection_pool_size=concurrency + 8)
        application = build_application(config, service, request=request)
        worker = Worker(application, inbox, concurrency=concurrency)
        health = Health(service, redis_url=settings.redis_url or None, rasa_url=settings.rasa_url)
        try:
            async with (
                application,
                health_server(health, settings.dashboard_host, settings.health_port),
                worker.running(),
            ):
                log.info("telegram worker running", concurrency=concurrency, rasa=config.rasa_url)
                await asyncio.Event().wait()
        finally:
            await minhu_of(application).relay.rasa.close()
