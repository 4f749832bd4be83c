"""`minhu bot --receiver`: the one process that takes updates from Telegram and records them (tickets/inbox.py)
for the workers (bot/worker.py). It handles nothing itself.

Telegram is told an update arrived only after its row committed: with long polling, by the next getUpdates'
offset (asked only after the batch's transaction); with a webhook, by the 200 (answered after the insert).
A receiver killed before that has not acknowledged, so Telegram delivers the update again; the inbox's key
(update_id) drops the repeat when it had committed after all. One receiver is active at a time (a
PostgreSQL advisory lock): a second one started by mistake, or by the orchestrator while the first is
still going away, waits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiohttp import web
from telegram import Bot, Update
from telegram.error import TelegramError

from tickets.inbox import Inbox, Received

log = structlog.get_logger("bot.receiver")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
POLL_TIMEOUT = 30  # seconds a getUpdates call waits for updates (long polling)
RECEIVER = "telegram-receiver"  # the advisory lock's name


def received(update_id: int, raw: dict[str, Any], update: Update | None) -> Received:
    chat = update.effective_chat if update is not None else None
    return Received(update_id, chat.id if chat is not None else 0, json.dumps(raw, ensure_ascii=False))


async def poll(
    bot: Bot,
    inbox: Inbox,
    *,
    wait: int = POLL_TIMEOUT,
    limit: int = 100,
) -> None:
    """Long polling until cancelled: each batch recorded in one transaction, then acknowledged by asking
    for the next one."""
    await bot.delete_webhook()
    offset: int | None = None
    while True:
        try:
            updates = await bot.get_updates(
                offset=offset, timeout=wait, limit=limit, allowed_updates=Update.ALL_TYPES
            )
            if not updates:
                continue
            batch = [received(u.update_id, u.to_dict(), u) for u in updates]
            new = await inbox.record(batch)
            log.info("updates recorded", count=len(batch), new=new)
            offset = updates[-1].update_id + 1
        except asyncio.CancelledError:
            raise
        except (TelegramError, Exception) as error:  # Telegram or the database away: the batch comes again
            log.warning("receiving failed", error=type(error).__name__)
            await asyncio.sleep(1.0)


def webhook_app(bot: Bot, inbox: Inbox, secret: str) -> web.Application:
    """POST /telegram: the secret token checked, the update recorded, then 200; 503 when it could not be
    recorded (Telegram tries again)."""

    async def receive(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
            return web.Response(status=403)
        try:
            raw = await request.json()
            update = Update.de_json(raw, bot)
            update_id = int(raw["update_id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400)
        try:
            await inbox.record([received(update_id, raw, update)])
        except Exception as error:
            log.warning("update not recorded", error=type(error).__name__)
            return web.Response(status=503)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/telegram", receive)
    return app


@asynccontextmanager
async def webhook_server(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
