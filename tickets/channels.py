"""What chat channels (Telegram today) keep beside the tickets: one-time invite codes that bind a chat account
to a responder, residents' messages stored until the assistant has answered them, the update ids already
processed, and button payloads too long for a channel's button data. Plain persistence, no Telegram."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tickets import outbox
from tickets.clock import Clock
from tickets.db import reading, unit_of_work
from tickets.errors import NotAllowed, ResponderNotFound, ValidationError
from tickets.models import (
    ButtonPayload,
    InboundMessage,
    InviteCode,
    Notification,
    ProcessedUpdate,
    Resident,
    Responder,
    ResponderContact,
)
from tickets.outbox import EDITABLE, Recipient
from tickets.privacy import clean_text

INVITE_VALID = timedelta(days=7)
UPDATE_IDS_KEPT = timedelta(days=7)  # Telegram repeats an update for at most 24 hours
BUTTON_PAYLOADS_KEPT = timedelta(days=2)  # an older assistant button is answered as expired
ANSWERED_MESSAGES_KEPT = timedelta(days=7)
# Unambiguous characters only (no 0/O, 1/I/L): codes are read out over the phone.
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
INVITE_LENGTH = 8
ACCOUNT_BOUND_ELSEWHERE = (
    "您好,这个账号已经绑定了社区为您登记的身份,不能再用发给其他同志的邀请码。"
    "如果需要变更身份,请联系社区工作人员处理。"
)
RESPONDER_BOUND_ELSEWHERE = (
    "您好,这个邀请码对应的同志已经绑定了另一个账号,不能再绑定新的账号。"
    "如果您换了手机或账号,请联系社区工作人员先解除原来的绑定,再使用邀请码。"
)


def secret_handle(token: str) -> str:
    """What a browser's bearer token (the volunteer page's cookie) is stored as: its hash, so the table
    alone cannot be turned into a working cookie."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def remove_binding(
    session: AsyncSession, responder_id: int, channel: str, handle: str | None = None
) -> int:
    """Delete the responder's account on the channel (only if it is `handle`, when given): what stood for
    them there no longer does. How many were removed (0 or 1)."""
    query = delete(ResponderContact).where(
        ResponderContact.responder_id == responder_id, ResponderContact.channel == channel
    )
    if handle is not None:
        query = query.where(ResponderContact.handle == handle)
    result = await session.execute(query)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class NoConsent(NotAllowed):
    """A message from a sender who has not consented (or whose resident is not there): nothing kept."""

    code = "no_consent"


@dataclass(frozen=True)
class Backlog:
    """Outbox delivery: how many notifications wait and since when."""

    pending: int
    oldest: datetime | None

    def lag(self, now: datetime) -> timedelta:
        return max(timedelta(0), now - self.oldest) if self.oldest else timedelta(0)


class ChannelStore:
    """`consented_only`: `receive` keeps a message only from a sender whose resident consented, checked in
    the transaction that stores it (the web chat's: one transaction before the assistant is asked, not a
    lookup and then another)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, consented_only: bool = False
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.consented_only = consented_only

    # ------------------------------------------------------------------ invites

    async def create_invite(self, responder_code: str) -> str:
        """A new one-time code for the responder; the code itself is shown once and never stored."""
        now = self.clock.now()
        code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
        async with unit_of_work(self.sessions) as session:
            responder = await session.scalar(
                select(Responder).where(Responder.code == clean_text(responder_code), Responder.active)
            )
            if responder is None:
                raise ResponderNotFound()
            session.add(
                InviteCode(
                    code_hash=_hash(code),
                    responder_id=responder.id,
                    created_at=now,
                    expires_at=now + INVITE_VALID,
                )
            )
        return code

    async def redeem_invite(self, code: str, channel: str, handle: str) -> Responder:
        """Bind the channel account to the invite's responder; the code cannot be used again.

        Nobody loses access silently: an account already bound to another responder cannot take this one's
        invite (a volunteer holding a staff member's code does not become them), and a responder whose account
        on the channel is another one keeps it until staff remove that binding (`minhu responders unbind`).
        A refused code stays valid for the person it was made for. The same account redeeming an invite for
        the responder it is bound to is fine. Their offers and assignments that could not reach them before
        and still stand are made due again (`outbox.resend_unreached`)."""
        now = self.clock.now()
        cleaned = clean_text(code or "")
        if not cleaned or len(cleaned) > 32:
            raise ValidationError("请在 /join 后面写上社区给您的邀请码,例如:/join ABCD2345")
        async with unit_of_work(self.sessions) as session:
            invite = await session.scalar(
                select(InviteCode).where(InviteCode.code_hash == _hash(cleaned)).with_for_update()
            )
            if invite is None or invite.used_at is not None or invite.expires_at < now:
                raise NotAllowed("邀请码无效、已使用或已过期。请联系社区工作人员重新获取。")
            responder = await session.get(Responder, invite.responder_id)
            if responder is None or not responder.active:
                raise ResponderNotFound()
            mine = await session.scalar(
                select(ResponderContact).where(
                    ResponderContact.channel == channel, ResponderContact.handle == handle
                )
            )
            if mine is not None and mine.responder_id != responder.id:
                raise NotAllowed(ACCOUNT_BOUND_ELSEWHERE)
            theirs = await session.scalar(
                select(ResponderContact).where(
                    ResponderContact.channel == channel, ResponderContact.responder_id == responder.id
                )
            )
            if theirs is not None and theirs.handle != handle:
                raise NotAllowed(RESPONDER_BOUND_ELSEWHERE)
            if theirs is None:
                session.add(ResponderContact(responder_id=responder.id, channel=channel, handle=handle))
                try:
                    await session.flush()
                except IntegrityError:  # bound meanwhile by a concurrent /join
                    raise NotAllowed(RESPONDER_BOUND_ELSEWHERE) from None
            invite.used_at, invite.used_by = now, f"{channel}:{handle}"
            # Offers made before they joined were given up as unreachable: the open ones are sent now.
            await outbox.resend_unreached(session, responder.id, now)
            return responder

    async def unbind(self, responder_code: str, channel: str) -> int:
        """Remove the responder's binding on the channel (a lost phone, a new account), so a new invite can
        bind another account. How many bindings were removed (0 or 1). (Staff on the dashboard:
        TicketService.unbind_web_login, which checks their scope.)"""
        async with unit_of_work(self.sessions) as session:
            responder = await session.scalar(
                select(Responder).where(Responder.code == clean_text(responder_code))
            )
            if responder is None:
                raise ResponderNotFound()
            return await remove_binding(session, responder.id, channel)

    async def sign_out(self, responder_id: int, channel: str, handle: str) -> None:
        """The account leaves by itself (退出登录 on the volunteer page): its binding goes, so its cookie no
        longer stands for the responder, and a new invite can bind another browser."""
        async with unit_of_work(self.sessions) as session:
            await remove_binding(session, responder_id, channel, handle)

    async def waiting_for_responder(self, responder_id: int, ref: str) -> list[outbox.Claimed]:
        """What was held for a web-only responder (outbox.take_for_responder), taken once."""
        return await outbox.take_for_responder(self.sessions, responder_id, self.clock.now(), ref)

    async def responder_by_contact(self, channel: str, handle: str) -> Responder | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(Responder)
                .join(ResponderContact, ResponderContact.responder_id == Responder.id)
                .where(
                    ResponderContact.channel == channel,
                    ResponderContact.handle == handle,
                    Responder.active,
                )
            )

    async def contact_of(self, responder_id: int, channel: str) -> str | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(ResponderContact.handle).where(
                    ResponderContact.responder_id == responder_id, ResponderContact.channel == channel
                )
            )

    async def responder(self, responder_id: int) -> Responder:
        async with self.sessions() as session:
            responder = await session.get(Responder, responder_id)
        if responder is None:
            raise ResponderNotFound()
        return responder

    async def message_ref_of(self, ticket_id: int, responder_id: int) -> str | None:
        """Where the responder's latest offer or assignment of the ticket was delivered."""
        async with self.sessions() as session:
            return await session.scalar(
                select(Notification.message_ref)
                .where(
                    Notification.ticket_id == ticket_id,
                    Notification.recipient_type == Recipient.RESPONDER,
                    Notification.recipient_id == responder_id,
                    Notification.kind.in_(EDITABLE),
                    Notification.message_ref.is_not(None),
                )
                .order_by(Notification.id.desc())
                .limit(1)
            )

    async def consented_resident(self, channel_id: str) -> Resident | None:
        """The resident behind a channel identity if they consented, else None: a read only (nothing is made
        for an unknown one), without the write lock on SQLite. The web chat asks it on every request."""
        async with reading(self.sessions) as session:
            resident: Resident | None = await session.scalar(self._consented(channel_id))
            return resident

    @staticmethod
    def _consented(channel_id: str, what: Any = Resident) -> Select[Any]:
        """`what` of the resident behind the channel identity, if they consented (the row, or a column: the
        id alone skips loading and decrypting the row)."""
        return select(what).where(Resident.channel_id == channel_id, Resident.consent_at.is_not(None))

    async def residents_with_news(self, resident_ids: Collection[int]) -> set[int]:
        """Which of these residents have notifications waiting (what `outbox.take_for_resident` would take):
        one read for all the open chat pages of a process, so that each page need not ask on its own."""
        found: set[int] = set()
        ids = list(resident_ids)
        async with reading(self.sessions) as session:
            for start in range(0, len(ids), 500):
                found.update(
                    await session.scalars(
                        select(Notification.recipient_id)
                        .where(
                            Notification.delivered_at.is_(None),
                            *outbox.to_residents(ids[start : start + 500]),
                        )
                        .distinct()
                    )
                )
        return found

    async def channel_of_resident(self, resident_id: int) -> str:
        async with self.sessions() as session:
            return (await session.get_one(Resident, resident_id)).channel_id

    # ------------------------------------------------------------------ updates and messages

    async def first_time(self, channel: str, update_id: int) -> bool:
        """Record the update; False when it was recorded before (a repeat)."""
        try:
            async with unit_of_work(self.sessions) as session:
                session.add(ProcessedUpdate(channel=channel, update_id=update_id, at=self.clock.now()))
        except IntegrityError:
            return False
        return True

    async def prune(self) -> None:
        """Keep no more than needed: update ids past Telegram's repeat window, button payloads past their
        life, residents' messages once answered (the ticket keeps what the request needs), and what waits
        for a web resident who has not come back (outbox.give_up_unvisited)."""
        now = self.clock.now()
        async with unit_of_work(self.sessions) as session:
            await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.at < now - UPDATE_IDS_KEPT))
            await session.execute(
                delete(ButtonPayload).where(ButtonPayload.created_at < now - BUTTON_PAYLOADS_KEPT)
            )
            await session.execute(
                delete(InboundMessage).where(InboundMessage.answered_at < now - ANSWERED_MESSAGES_KEPT)
            )
            await outbox.give_up_unvisited(session, now)

    async def store_message(self, channel_id: str, text: str) -> InboundMessage:
        async with unit_of_work(self.sessions) as session:
            message = InboundMessage(channel_id=channel_id, text=text, received_at=self.clock.now())
            session.add(message)
            await session.flush()
            return message

    async def receive(self, channel_id: str, text: str) -> tuple[InboundMessage, Sequence[InboundMessage]]:
        """A message stored, and the sender's unanswered ones (oldest first, it last), in one transaction:
        what a relay does with every message (app/relay.py). NoConsent, nothing stored, when the store is
        `consented_only` and the sender's resident has not consented."""
        async with unit_of_work(self.sessions) as session:
            if self.consented_only and await session.scalar(self._consented(channel_id, Resident.id)) is None:
                raise NoConsent()
            message = InboundMessage(channel_id=channel_id, text=text, received_at=self.clock.now())
            session.add(message)
            await session.flush()
            return message, (await session.scalars(self._pending(channel_id))).all()

    async def pending_messages(self, channel_id: str) -> Sequence[InboundMessage]:
        async with self.sessions() as session:
            return (await session.scalars(self._pending(channel_id))).all()

    @staticmethod
    def _pending(channel_id: str) -> Select[InboundMessage]:
        return (
            select(InboundMessage)
            .where(InboundMessage.answered_at.is_(None), InboundMessage.channel_id == channel_id)
            .order_by(InboundMessage.id)
        )

    async def waiting_senders(self, limit: int = 100, *, channel: str | None = None) -> list[str]:
        """Senders with unanswered messages, the longest-waiting first; `channel`: only that channel's
        (telegram:…, web:…), since a channel can answer only its own residents."""
        query = select(InboundMessage.channel_id, func.min(InboundMessage.id).label("first")).where(
            InboundMessage.answered_at.is_(None)
        )
        if channel is not None:
            query = query.where(InboundMessage.channel_id.startswith(f"{channel}:", autoescape=True))
        async with self.sessions() as session:
            rows = await session.execute(
                query.group_by(InboundMessage.channel_id).order_by("first").limit(limit)
            )
            return [row[0] for row in rows]

    async def mark_answered(self, message_id: int) -> None:
        async with unit_of_work(self.sessions) as session:  # one statement: the relay waits for it each time
            await session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == message_id)
                .values(answered_at=self.clock.now())
                .execution_options(synchronize_session=False)
            )

    async def count_attempt(self, message_id: int) -> None:
        async with unit_of_work(self.sessions) as session:
            message = await session.get_one(InboundMessage, message_id)
            message.attempts += 1

    async def hold_for_resident(self, kind: outbox.Kind, resident_id: int, payload: dict[str, Any]) -> None:
        """A notification to a resident that is not about a ticket (the assistant's late answer on the web
        chat): into the outbox like every other, so it waits for them."""
        async with unit_of_work(self.sessions) as session:
            outbox.notify(session, kind, Recipient.RESIDENT, resident_id, None, self.clock.now(), **payload)

    # ------------------------------------------------------------------ buttons

    async def keep_payload(self, payload: str) -> int:
        async with unit_of_work(self.sessions) as session:
            row = ButtonPayload(payload=payload, created_at=self.clock.now())
            session.add(row)
            await session.flush()
            return row.id

    async def payload(self, payload_id: int, max_age: timedelta) -> str | None:
        async with self.sessions() as session:
            row = await session.get(ButtonPayload, payload_id)
        if row is None or row.created_at < self.clock.now() - max_age:
            return None
        return row.payload

    # ------------------------------------------------------------------ outbox status

    async def backlog(self) -> Backlog:
        """What push deliveries still have to send (a web resident's notifications wait for their next
        visit: not a delivery lag)."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(func.count(Notification.id), func.min(Notification.created_at)).where(
                        Notification.delivered_at.is_(None), ~outbox.held_for_visit()
                    )
                )
            ).one()
        return Backlog(int(row[0] or 0), row[1])
