"""Residents talk to the assistant (Rasa's REST channel, sender `telegram:<user id>`).

Every message is stored before it is relayed and marked answered once Rasa has answered it, so when Rasa is
down nothing is lost: the resident is told it will be handled, and stored messages are replayed in order
when Rasa is back. A slow answer is waited for (the resident is told to wait), never sent twice. One
resident's messages go one at a time, in order; different residents do not wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import structlog
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import NetworkError
from telegram.ext import ExtBot

from bot.texts import split
from tickets.channels import BUTTON_PAYLOADS_KEPT, ChannelStore
from tickets.models import InboundMessage, split_channel_id

log = structlog.get_logger("bot.rasa")

BUTTON_DATA_LIMIT = 64  # bytes, Telegram's limit on callback_data
STORED_NOTICE = "助手暂时联系不上,您的消息已经保存,恢复后会按顺序处理并回复您,不用重复发送。"
WAIT_NOTICE = "收到,正在为您处理,请稍候……"
REPLY_ATTEMPTS = 3
CUSTOM_NOTICE = "这部分内容暂时无法在 Telegram 上显示。如需帮助,请说“转人工”。"
# Rasa's REST channel (nlu/channels.py) keeps a `telegram:`/`web:` sender only from a relay sending this
# header with the secret `minhu run` generates (minhu/stack.py); others are answered as `rest:<sender>`.
RELAY_HEADER = "X-Minhu-Relay"
RELAY_SECRET_ENV = "MINHU_RELAY_SECRET"


def relay_headers() -> dict[str, str]:
    """The header that proves to Rasa's REST channel that this is a relay (none if no secret is set)."""
    secret = os.environ.get(RELAY_SECRET_ENV, "")
    return {RELAY_HEADER: secret} if secret else {}


class RasaUnavailable(Exception):
    """Rasa did not answer (down, refused, failed or too slow)."""


class RasaClient:
    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, sender: str, message: str) -> list[dict[str, Any]]:
        try:
            async with self.http.post(
                f"{self.url}/webhooks/rest/webhook",
                json={"sender": sender, "message": message},
                headers=relay_headers(),
            ) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"HTTP {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RasaUnavailable(type(error).__name__) from error
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    async def reachable(self) -> bool:
        try:
            async with self.http.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


async def send(
    bot: ExtBot[Any], chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message:
    """A reply to a resident whose message is already marked answered, so it must not be dropped: Telegram's
    429 is waited out (the rate limiter retries), a 5xx is tried again; a timeout is not (it may have
    arrived)."""
    attempt = 1
    while True:
        try:
            return await bot.send_message(chat_id, text, reply_markup=markup, rate_limit_args=REPLY_ATTEMPTS)
        except NetworkError as error:
            if type(error) is not NetworkError or attempt == REPLY_ATTEMPTS:
                raise
        await asyncio.sleep(0.5 * 2**attempt)
        attempt += 1


def chat_of(sender: str) -> int:
    """The Telegram chat of a "telegram:<id>" sender."""
    return int(split_channel_id(sender)[1])


class Relay:
    def __init__(
        self, rasa: RasaClient, store: ChannelStore, tz: ZoneInfo, *, notice_after: float = 8.0
    ) -> None:
        self.rasa, self.store, self.tz = rasa, store, tz
        self.notice_after = notice_after
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def submit(self, bot: ExtBot[Any], sender: str, text: str) -> None:
        """A resident's message (or button payload): stored, then relayed after any older stored ones."""
        async with self._locks[sender]:
            fresh = await self.store.store_message(sender, text)
            await self._drain(bot, sender, fresh.id)

    async def replay(self, bot: ExtBot[Any]) -> int:
        """Relay stored messages, oldest sender first; stops at the first sign Rasa is still away.
        Returns how many were answered."""
        answered = 0
        for sender in await self.store.waiting_senders():
            async with self._locks[sender]:
                done = await self._drain(bot, sender, None)
            answered += done
            if done == 0:
                break
        return answered

    async def _drain(self, bot: ExtBot[Any], sender: str, fresh_id: int | None) -> int:
        answered = 0
        for message in await self.store.pending_messages(sender):
            is_fresh = message.id == fresh_id
            try:
                replies = await self._ask(bot, sender, message, is_fresh)
            except RasaUnavailable as error:
                log.warning("rasa unavailable", reason=str(error), message_id=message.id)
                await self.store.count_attempt(message.id)
                if fresh_id is not None:
                    await send(bot, chat_of(sender), STORED_NOTICE)
                return answered
            await self.store.mark_answered(message.id)  # before replying: never answered twice
            answered += 1
            if not is_fresh:
                when = message.received_at.astimezone(self.tz).strftime("%H:%M")
                await send(bot, chat_of(sender), f"(回复您 {when} 的留言:“{message.text[:30]}”)")
            await self.deliver(bot, chat_of(sender), replies)
        return answered

    async def _ask(
        self, bot: ExtBot[Any], sender: str, message: InboundMessage, is_fresh: bool
    ) -> list[dict[str, Any]]:
        task = asyncio.create_task(self.rasa.send(sender, message.text))
        done, _ = await asyncio.wait({task}, timeout=self.notice_after)
        if not done and is_fresh:
            with contextlib.suppress(Exception):
                await send(bot, chat_of(sender), WAIT_NOTICE)
        return await task

    async def deliver(self, bot: ExtBot[Any], chat_id: int, replies: list[dict[str, Any]]) -> None:
        """Rasa's replies as Telegram messages: text (split at the limit), buttons as an inline keyboard,
        images as photos; a custom payload cannot be shown here, and the resident is told so."""
        for reply in replies:
            text = str(reply.get("text") or "").strip()
            buttons = [b for b in reply.get("buttons") or [] if isinstance(b, dict)]
            markup = await self.keyboard(buttons) if buttons else None
            if text or markup:
                parts = split(text or "请选择:")
                for i, part in enumerate(parts):
                    await send(bot, chat_id, part, markup=markup if i == len(parts) - 1 else None)
            if reply.get("image"):
                await bot.send_photo(chat_id, str(reply["image"]))
            if reply.get("custom") is not None:
                log.info("custom payload not shown", kind=type(reply["custom"]).__name__)
                await send(bot, chat_id, CUSTOM_NOTICE)

    async def keyboard(self, buttons: list[dict[str, Any]]) -> InlineKeyboardMarkup:
        rows = []
        for button in buttons:
            title = str(button.get("title") or button.get("payload") or "")[:60]
            rows.append([InlineKeyboardButton(title, callback_data=await self.button_data(button))])
        return InlineKeyboardMarkup(rows)

    async def button_data(self, button: dict[str, Any]) -> str:
        payload = str(button.get("payload") or button.get("title") or "")
        data = f"r:{payload}"
        if len(data.encode()) <= BUTTON_DATA_LIMIT:
            return data
        return f"rb:{await self.store.keep_payload(payload)}"

    async def payload_of(self, data: str) -> str | None:
        """The Rasa payload a button press stands for; None for unknown or expired buttons."""
        if data.startswith("r:"):
            return data[2:] or None
        if data.startswith("rb:") and data[3:].isdigit():
            return await self.store.payload(int(data[3:]), BUTTON_PAYLOADS_KEPT)
        return None
