"""Residents talk to the assistant (Rasa's REST channel, sender `telegram:<user id>`) through the shared
ordered relay (app/relay.py: every message stored before it is relayed, replayed in order when Rasa is
back, a slow answer waited for and never asked twice); this module says how the answers reach Telegram.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import NetworkError
from telegram.ext import ExtBot

from app.relay import (
    RELAY_HEADER,
    RELAY_SECRET_ENV,
    STORED_NOTICE,
    WAIT_NOTICE,
    RasaClient,
    RasaUnavailable,
    late_heading,
    relay_headers,
)
from app.relay import Relay as OrderedRelay
from bot.texts import split
from tickets.channels import BUTTON_PAYLOADS_KEPT
from tickets.models import InboundMessage, split_channel_id

log = structlog.get_logger("bot.rasa")

BUTTON_DATA_LIMIT = 64  # bytes, Telegram's limit on callback_data
REPLY_ATTEMPTS = 3
CUSTOM_NOTICE = "这部分内容暂时无法在 Telegram 上显示。如需帮助,请说“转人工”。"
__all__ = [
    "RELAY_HEADER",
    "RELAY_SECRET_ENV",
    "STORED_NOTICE",
    "WAIT_NOTICE",
    "RasaClient",
    "RasaUnavailable",
    "Relay",
    "relay_headers",
]


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


class Relay(OrderedRelay[ExtBot[Any]]):
    channel = "telegram"

    async def notice(self, target: ExtBot[Any], sender: str, text: str) -> None:
        await send(target, chat_of(sender), text)

    async def answer(
        self,
        target: ExtBot[Any],
        sender: str,
        message: InboundMessage,
        replies: list[dict[str, Any]],
        *,
        late: bool,
    ) -> None:
        if late:
            await send(target, chat_of(sender), late_heading(message, self.tz))
        await self.deliver(target, chat_of(sender), replies)

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
