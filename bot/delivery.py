"""Outbox delivery to Telegram.

A batch of due notifications is claimed and leased in one transaction (their next attempt moves LEASE ahead,
so another worker, or this one after a restart, leaves them alone meanwhile); each is then sent and marked
delivered in its own transaction, with the message id kept so a later change edits it in place (an offer
someone else took becomes 已被他人接单). Telegram's 429 (RetryAfter) postpones the rest of the batch by what
Telegram asked; network errors and 5xx back off exponentially (tickets/outbox.retry_later); a recipient who
cannot be reached (blocked the bot, no Telegram account bound) is given up, with the reason kept (a
volunteer's offers that still stand are sent again when they join: outbox.resend_unreached). An offer or
assignment taken or withdrawn before it was sent is not sent, and neither is the news that it is gone to
someone who never saw it.

A notification is sent again only when the process died between Telegram accepting it and the delivered
mark being committed (one HTTP response and one commit wide); every other path sends it once.
"""

from __future__ import annotations

import itertools
import warnings
from datetime import timedelta
from typing import Any, assert_never

import structlog
from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import ExtBot
from telegram.warnings import PTBDeprecationWarning

from app.loops import run_forever
from app.notices import rated_heading, resident_text
from app.ratelimit import TELEGRAM_BURST, TELEGRAM_RATE, LocalBucket, RateLimit
from bot.common import CHANNEL, Minhu, keyboard
from bot.residents import feedback_step
from bot.responders import TAKEN, card_buttons, describe, offer_card
from tickets import outbox
from tickets.actors import SYSTEM
from tickets.models import Deadline, Level, Rating, split_channel_id
from tickets.outbox import EDITABLE, Claimed, Kind, Recipient
from tickets.privacy import mask_name

log = structlog.get_logger("bot.delivery")

LEASE = timedelta(minutes=2)
REPLAY_EVERY = 5  # delivery rounds between replays of residents' stored messages
PRUNE_EVERY = 1800  # rounds (about an hour) between prunings of what channels keep (tickets/channels.py)
# An offer or assignment that ends this way is edited in place (the buttons go), or said anew.
EDITED_KINDS = {Kind.TAKEN: TAKEN, Kind.WITHDRAWN: "工单 {number} 已撤回或改派,无需再处理,谢谢!"}


def retry_after(error: RetryAfter) -> timedelta:
    """What Telegram asked to wait (an int of seconds in PTB 22 unless PTB_TIMEDELTA opts in to timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = error.retry_after
    return wait if isinstance(wait, timedelta) else timedelta(seconds=wait)


class Unreachable(Exception):
    """The recipient has no Telegram chat we can write to."""


class Stale(Exception):
    """Nothing to say any more: an offer or assignment taken or withdrawn before it could be sent, or the
    news that one is gone to someone who never saw it."""


Rendered = tuple[str, InlineKeyboardMarkup | None]


class Delivery:
    def __init__(self, minhu: Minhu, bot: ExtBot[Any], limit: RateLimit | None = None) -> None:
        self.minhu, self.bot = minhu, bot
        # Telegram's per-bot limit, for all deliverers together when shared (app/ratelimit.py).
        self.limit = limit or LocalBucket(TELEGRAM_RATE, TELEGRAM_BURST)
        self.sessions = minhu.service.sessions

    @property
    def now(self) -> Any:
        return self.minhu.service.clock.now()

    async def run_once(self, limit: int = 50) -> int:
        """Deliver what is due; returns how many were sent."""
        claimed = await outbox.claim(self.sessions, self.now, LEASE, limit)
        sent = 0
        for i, note in enumerate(claimed):
            try:
                await self.limit.acquire()
                ref = await self.send(note)
            except RetryAfter as error:
                after = retry_after(error)
                log.warning("telegram rate limit", retry_after=after.total_seconds())
                for later in claimed[i:]:
                    await outbox.retry(self.sessions, later.id, self.now, "429 RetryAfter", after=after)
                break
            except Stale as error:
                log.info("notification no longer needed", id=note.id, kind=note.kind)
                await outbox.delivered(self.sessions, note.id, self.now, error=f"不再发送: {error}")
            except (Forbidden, BadRequest, Unreachable) as error:
                log.warning("notification given up", id=note.id, kind=note.kind, error=type(error).__name__)
                await outbox.delivered(
                    self.sessions, note.id, self.now, error=f"未送达: {type(error).__name__}: {error}"
                )
            except TelegramError as error:
                log.warning("notification failed", id=note.id, error=type(error).__name__)
                await outbox.retry(self.sessions, note.id, self.now, f"{type(error).__name__}: {error}")
            else:
                await outbox.delivered(self.sessions, note.id, self.now, ref=ref)
                sent += 1
        return sent

    # ------------------------------------------------------------------------------ rendering

    async def _chat(self, note: Claimed) -> int:
        if note.recipient_type is Recipient.RESIDENT:
            channel, handle = split_channel_id(await self.minhu.store.channel_of_resident(note.recipient_id))
            if channel != CHANNEL:
                raise Unreachable(channel)
            return int(handle)
        contact = await self.minhu.store.contact_of(note.recipient_id, CHANNEL)
        if contact is None or not contact.lstrip("-").isdigit():
            raise Unreachable("no telegram contact")
        return int(contact)

    async def send(self, note: Claimed) -> str:
        """Send (or edit in place) one notification; returns "chat:message id"."""
        chat = await self._chat(note)
        stands = self.minhu.service.notice_stands
        if note.kind in EDITABLE and not await stands(note.kind, note.ticket_id or 0, note.recipient_id):
            raise Stale("工单已被他人接单或已撤回")
        if note.kind in EDITED_KINDS and note.ticket_id is not None:
            text = EDITED_KINDS[note.kind].format(number=note.number)
            ref = await self.minhu.store.message_ref_of(note.ticket_id, note.recipient_id)
            if ref is None:
                raise Stale("对方没有收到过这张工单,无需告知")
            ref_chat, message_id = (int(part) for part in ref.split(":"))
            try:
                await self.bot.edit_message_text(text, chat_id=ref_chat, message_id=message_id)
                return ref
            except BadRequest as error:
                if "not modified" in str(error).lower():  # the button press already said so
                    return ref
                # too old to edit, or deleted: say it in a new message
            message = await self.bot.send_message(chat, text)
            return f"{chat}:{message.message_id}"
        text, markup = await self.render(note)
        message = await self.bot.send_message(chat, text, reply_markup=markup)
        return f"{chat}:{message.message_id}"

    async def render(self, note: Claimed) -> Rendered:
        number, payload = note.number, note.payload
        card = keyboard([[("查看工单", f"card:{number}")]])
        match note.kind:
            case Kind.RATE:
                text, markup = feedback_step(number, "")
                return f"{rated_heading(number, payload)}\n{text}", markup
            case Kind.ACCEPTED | Kind.RETURNED | Kind.MESSAGE | Kind.REGISTERED:
                return resident_text(note.kind, number, payload) or "", None
            case Kind.ASSISTANT:  # the web chat's; Telegram's relay answers its residents itself
                texts = [
                    str(r.get("text") or "") for r in payload.get("replies") or [] if isinstance(r, dict)
                ]
                return "\n".join(t for t in texts if t) or "助手已回复您之前的留言。", None
            case Kind.RATED:
                rating = Rating.parse(str(payload.get("rating")))
                points = payload.get("points", 0)
                return f"居民对工单 {number} 的评价:{rating.label},爱心积分 +{points}。谢谢您!", None
            case Kind.ESCALATED:
                level = Level(int(payload.get("level", Level.COMMUNITY))).label
                if payload.get("by_hand"):
                    return f"⚠️ 工单 {number} 已由工作人员升级到{level},请及时处理。", card
                late = Deadline(payload.get("reason", Deadline.RESPOND)).label
                return f"⚠️ 工单 {number} {late}超期,已升级到{level},请及时处理。", card
            case Kind.NEEDS_DISPATCH:
                return f"工单 {number} 暂时没有合适的人员可派,请人工派单。", card
            case Kind.EMERGENCY:
                return await self._emergency_alert(note)
            case Kind.OFFERED | Kind.ASSIGNED:
                return await self._work_card(note)
            case Kind.TAKEN | Kind.WITHDRAWN:  # without a ticket to edit: said as a new message
                return EDITED_KINDS[note.kind].format(number=number), None
        assert_never(note.kind)

    async def _work_card(self, note: Claimed) -> Rendered:
        service, number = self.minhu.service, note.number
        ticket = await service.ticket(number, SYSTEM)
        responder = await self.minhu.store.responder(note.recipient_id)
        if note.kind is Kind.OFFERED:
            return await offer_card(self.minhu, ticket, responder)
        heading = f"📌 派给您的工单 {number}"
        if note.payload.get("emergency"):
            heading = f"🆘 紧急求助 {number}:居民已被告知拨打急救电话,请马上联系居民、赶到现场。"
        return describe(self.minhu, ticket, responder, heading=heading), card_buttons(ticket, responder)

    async def _emergency_alert(self, note: Claimed) -> Rendered:
        """To the grid workers and the other staff of a 紧急求助: what and where, and who has it."""
        ticket = await self.minhu.service.ticket(note.number, SYSTEM)
        responder = await self.minhu.store.responder(note.recipient_id)
        assignee = note.payload.get("assignee")
        who = (
            mask_name((await self.minhu.store.responder(int(assignee))).name) if assignee else "社区工作人员"
        )
        heading = f"🆘 紧急求助 {note.number}:居民已被告知拨打急救电话,已派给{who}。请就近协助。"
        return describe(self.minhu, ticket, responder, heading=heading), None


async def deliver_forever(delivery: Delivery, every: float = 2.0) -> None:
    """The delivery loop beside the bot: the outbox, and residents' stored messages when Rasa is back; a
    failed round does not stop it (app.loops.run_forever)."""
    rounds = itertools.count()

    async def one_round() -> None:
        n = next(rounds)
        await delivery.run_once()
        if n % REPLAY_EVERY == 0:
            await delivery.minhu.relay.replay(delivery.bot)
        if n % PRUNE_EVERY == 0:
            await delivery.minhu.store.prune()

    await run_forever(one_round, every, name="delivery round")
