"""What every handler module shares: the bot's dependencies, who is asking, guarded handlers (a domain error
becomes its Chinese message and a `refused` log event, anything else a polite apology), and message splitting."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, TypeVar, cast
from zoneinfo import ZoneInfo

import structlog
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackContext, ExtBot

from app.logs import where
from bot.rasa import Relay
from bot.texts import split
from tickets.catalogue import Role
from tickets.channels import ChannelStore
from tickets.errors import DomainError
from tickets.models import Resident, Responder
from tickets.service import TicketService

log = structlog.get_logger("bot")

CHANNEL = "telegram"
Context: TypeAlias = CallbackContext[ExtBot[Any], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
App: TypeAlias = Application[ExtBot[Any], Context, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any]
R = TypeVar("R")

SORRY = "抱歉,系统刚才出了点问题,您的消息没有丢失,请稍后再试。"
NOT_REGISTERED = "这个功能只对已登记的志愿者和工作人员开放。\n如果您是志愿者或社区工作人员,请向社区索取邀请码,然后发送:/join 邀请码"
STAFF_ONLY = "这个功能只对社区工作人员开放。"


@dataclass
class Minhu:
    """The bot's dependencies, kept in application.bot_data."""

    service: TicketService
    store: ChannelStore
    relay: Relay

    @property
    def tz(self) -> ZoneInfo:
        return self.service.calendar.tz


def deps(context: Context) -> Minhu:
    return cast(Minhu, context.bot_data["minhu"])


def sender_of(user_id: int) -> str:
    return f"{CHANNEL}:{user_id}"


async def resident_of(update: Update, context: Context) -> Resident:
    user = update.effective_user
    assert user is not None
    return await deps(context).service.resident_for(sender_of(user.id), user.first_name)


async def responder_of(update: Update, context: Context) -> Responder | None:
    user = update.effective_user
    if user is None:
        return None
    return await deps(context).store.responder_by_contact(CHANNEL, str(user.id))


def is_staff(responder: Responder | None) -> bool:
    return responder is not None and Role(responder.role).is_staff


async def say(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Answer where the update came from: a callback's answer plus a message, or a message."""
    chat = update.effective_chat
    if chat is None:
        return
    parts = split(text)
    for i, part in enumerate(parts):
        await chat.send_message(part, reply_markup=markup if i == len(parts) - 1 else None)


def keyboard(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(title, callback_data=data) for title, data in row] for row in rows]
    )


def guarded(
    handler: Callable[[Update, Context], Coroutine[Any, Any, R]],
) -> Callable[[Update, Context], Coroutine[Any, Any, R | None]]:
    """A domain error is told to the user in its own words and logged as a `refused` event (the handler,
    the error's class and code: no personal data, and no need to read the Chinese text to know what was
    refused and why; the bot's own "not registered" / "staff only" refusals are NotAllowed too); anything
    else is logged as `handler failed` and answered with an apology. Callback queries are always answered,
    so the button stops spinning."""

    @functools.wraps(handler)
    async def run(update: Update, context: Context) -> R | None:
        try:
            return await handler(update, context)
        except DomainError as error:
            log.info("refused", handler=handler.__name__, error=type(error).__name__, code=error.code)
            await _answer(update, error.message)
        except Exception as error:
            log.error("handler failed", handler=handler.__name__, error=type(error).__name__, at=where(error))
            await _answer(update, SORRY)
        return None

    return run


async def _answer(update: Update, text: str) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer(text[:200], show_alert=True)
    else:
        await say(update, text)


def when(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%m月%d日 %H:%M") if moment else "—"
