"""Notifications are rows written in the same transaction as the change they announce (transactional
outbox), so a channel that is down loses nothing; a delivery worker of each channel claims them later,
sends them and marks them delivered (`claim`, `delivered`, `retry`). A resident on a pull channel (the web
chat: nothing can be pushed to a closed page) is not claimed by the push deliveries; their notifications
wait for their next visit (`take_for_resident`), and are given up after `HELD_FOR_VISIT`. So do a responder's
whose only account is on a pull channel (a volunteer on the web page, dashboard/volunteer.py:
`take_for_responder`); a responder who has Telegram too gets theirs there as before."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tickets.db import unit_of_work
from tickets.models import Notification, Offer, OfferState, Resident, ResponderContact, Status, Ticket


class Kind(StrEnum):
    """What a notification says; each channel's delivery renders every kind."""

    # to responders
    OFFERED = "offered"  # 抢单: a ticket they may take (接单 / 不接)
    ASSIGNED = "assigned"  # a ticket given to them (dispatch, reassignment, hand-off)
    TAKEN = "taken"  # their offer went to someone who accepted first
    WITHDRAWN = "withdrawn"  # their offer or assignment was withdrawn (re-dispatch, escalation, cancel)
    RATED = "rated"  # the resident's rating and the points it earned
    ESCALATED = "escalated"  # to staff: a ticket came up to their level, overdue
    NEEDS_DISPATCH = "needs_dispatch"  # to staff: nobody could be found, dispatch by hand
    EMERGENCY = "emergency"  # 紧急求助 near them (grid workers, other community staff): go and help at once
    # to residents
    ASSISTANT = "assistant"  # the assistant's answer to a message stored while it was away (web chat)
    ACCEPTED = "accepted"  # someone took their request
    RETURNED = "returned"  # the responder gave it back; it is being re-dispatched
    RATE = "rate"  # 办结: the three 回访 questions
    MESSAGE = "message"  # a message from the responder working their request
    # their request (or 转人工) saved while the system was away is now a ticket: its number; payload
    # `duplicate` (joined to their open ticket) or `handoff`
    REGISTERED = "registered"


class Recipient(StrEnum):
    RESIDENT = "resident"
    RESPONDER = "responder"


class Channel(StrEnum):
    """The channels residents use (the first part of Resident.channel_id, e.g. web:abc)."""

    TELEGRAM = "telegram"
    WEB = "web"  # the web chat (dashboard/chat.py) and the volunteer page (dashboard/volunteer.py); pull


PULL_CHANNELS = (Channel.WEB,)
# A web resident who does not come back within this time will not see what waited for them: given up.
HELD_FOR_VISIT = timedelta(days=30)


def _resident_held() -> ColumnElement[bool]:
    return and_(
        Notification.recipient_type == Recipient.RESIDENT,
        select(Resident.id)
        .where(
            Resident.id == Notification.recipient_id,
            or_(*(Resident.channel_id.startswith(f"{c}:", autoescape=True) for c in PULL_CHANNELS)),
        )
        .exists(),
    )


def _contact_on(pull: bool) -> ColumnElement[bool]:
    """The notification's responder has an account on a pull channel (pull) or on any other one."""
    channel = ResponderContact.channel
    return (
        select(ResponderContact.id)
        .where(
            ResponderContact.responder_id == Notification.recipient_id,
            channel.in_(PULL_CHANNELS) if pull else channel.not_in(PULL_CHANNELS),
        )
        .exists()
    )


def _responder_held() -> ColumnElement[bool]:
    # Only pull accounts: a push delivery would give it up as unreachable, and the page would never show
    # it as new. With a push account too, the push channel sends it (the page lists the offer anyway).
    return and_(
        Notification.recipient_type == Recipient.RESPONDER, _contact_on(pull=True), ~_contact_on(pull=False)
    )


def held_for_visit() -> ColumnElement[bool]:
    """SQL, on Notification: a notification kept for its recipient's next visit: to a resident of a pull
    channel, or to a responder whose only account is on one."""
    return or_(_resident_held(), _responder_held())


# A responder's offer or assignment message, which a later TAKEN / WITHDRAWN edits in place.
EDITABLE = (Kind.OFFERED, Kind.ASSIGNED)


def still_stands(kind: Kind, responder_id: int) -> ColumnElement[bool]:
    """Whether a ticket's offer or assignment notification to the responder still asks something of them
    (a condition on Ticket): the offer is open, or the ticket is still theirs and open. One that was taken
    by someone else or withdrawn meanwhile must never reach them late."""
    if kind is Kind.OFFERED:
        return (
            select(Offer.id)
            .where(
                Offer.ticket_id == Ticket.id,
                Offer.responder_id == responder_id,
                Offer.state == OfferState.OPEN,
            )
            .exists()
        )
    if kind is Kind.ASSIGNED:
        return and_(
            Ticket.assignee_id == responder_id, Ticket.status.in_((Status.DISPATCHED, Status.ACCEPTED))
        )
    return false()


def row(
    kind: Kind,
    recipient_type: Recipient,
    recipient_id: int,
    ticket_id: int | None,
    now: datetime,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """An outbox row's columns: what `notify` adds through the session and the batched create path
    inserts with one multi-row statement."""
    return {
        "created_at": now,
        "kind": kind,
        "recipient_type": recipient_type,
        "recipient_id": recipient_id,
        "ticket_id": ticket_id,
        "payload": payload,
        "next_attempt_at": now,
        "attempts": 0,
    }


def ticket_payload(number: str, category: str, **payload: Any) -> dict[str, Any]:
    """What every ticket's notification carries, so a channel can word it without another read."""
    return {"number": number, "category": category, **payload}


def notify(
    session: AsyncSession,
    kind: Kind,
    recipient_type: Recipient,
    recipient_id: int,
    ticket: Ticket | None,
    now: datetime,
    **payload: Any,
) -> Notification:
    if ticket is not None:
        payload = ticket_payload(ticket.number, ticket.category, **payload)
    note = Notification(
        **row(kind, recipient_type, recipient_id, ticket.id if ticket is not None else None, now, payload)
    )
    session.add(note)
    return note


# ------------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Claimed:
    """A notification a delivery worker holds for the lease (a plain copy: no session behind it)."""

    id: int
    kind: Kind
    recipient_type: Recipient
    recipient_id: int
    ticket_id: int | None
    payload: dict[str, Any]

    @property
    def number(self) -> str:
        return str(self.payload.get("number", ""))


async def claim_due(session: AsyncSession, now: datetime, limit: int = 50) -> Sequence[Notification]:
    """Undelivered notifications whose retry time has come, oldest first. Rows are locked (SKIP LOCKED on
    PostgreSQL) so two delivery workers never send the same one."""
    query = (
        select(Notification)
        .where(
            Notification.delivered_at.is_(None),
            or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now),
            ~held_for_visit(),
        )
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


def _claimed(n: Notification) -> Claimed:
    return Claimed(
        n.id, Kind(n.kind), Recipient(n.recipient_type), n.recipient_id, n.ticket_id, dict(n.payload)
    )


async def _take(
    sessions: async_sessionmaker[AsyncSession],
    conditions: list[ColumnElement[bool]],
    now: datetime,
    ref: str,
    limit: int,
) -> list[Claimed]:
    """A pull channel's delivery (a page that asks): what waits, oldest first, marked delivered (`ref`: where
    it went) in the same transaction as it is taken, so two open pages never both show it."""
    async with unit_of_work(sessions) as session:
        rows = (
            await session.scalars(
                select(Notification)
                .where(Notification.delivered_at.is_(None), *conditions)
                .order_by(Notification.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for note in rows:
            note.delivered_at, note.message_ref = now, ref
        return [_claimed(n) for n in rows]


async def take_for_resident(
    sessions: async_sessionmaker[AsyncSession], resident_id: int, now: datetime, ref: str, limit: int = 50
) -> list[Claimed]:
    """The web chat's delivery: what waits for the resident (see `_take`)."""
    return await _take(sessions, to_residents([resident_id]), now, ref, limit)


def to_residents(resident_ids: Collection[int]) -> list[ColumnElement[bool]]:
    """Notifications to these residents (what the web chat takes for them, and what its live stream looks
    for, with `delivered_at` unset)."""
    return [Notification.recipient_type == Recipient.RESIDENT, Notification.recipient_id.in_(resident_ids)]


async def take_for_responder(
    sessions: async_sessionmaker[AsyncSession], responder_id: int, now: datetime, ref: str, limit: int = 100
) -> list[Claimed]:
    """The volunteer page's delivery: what was held for a web-only responder (see `_take`)."""
    mine = [
        Notification.recipient_type == Recipient.RESPONDER,
        Notification.recipient_id == responder_id,
        _responder_held(),
    ]
    return await _take(sessions, mine, now, ref, limit)


async def give_up_unvisited(session: AsyncSession, now: datetime) -> None:
    """Notifications held for a web resident longer than HELD_FOR_VISIT are given up, the reason kept."""
    await session.execute(
        update(Notification)
        .where(
            Notification.delivered_at.is_(None),
            Notification.created_at < now - HELD_FOR_VISIT,
            held_for_visit(),
        )
        .values(delivered_at=now, last_error="未送达: 居民没有再访问网页")
        .execution_options(synchronize_session=False)
    )


async def claim(
    sessions: async_sessionmaker[AsyncSession], now: datetime, lease: timedelta, limit: int = 50
) -> list[Claimed]:
    """Claim and lease a batch in one transaction: the rows' next attempt moves `lease` ahead, so another
    worker (or this one after a restart) leaves them alone while this one sends them."""
    async with unit_of_work(sessions) as session:
        rows = await claim_due(session, now, limit)
        for note in rows:
            note.next_attempt_at = now + lease
        return [_claimed(n) for n in rows]


async def delivered(
    sessions: async_sessionmaker[AsyncSession],
    note_id: int,
    now: datetime,
    *,
    ref: str | None = None,
    error: str | None = None,
) -> None:
    """Done with it: sent (`ref`, where the channel put it) or given up for good (`error`, why)."""
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(Notification)
            .where(Notification.id == note_id)
            .values(delivered_at=now, message_ref=ref, last_error=error[:500] if error else None)
        )


async def mark_delivered(session: AsyncSession, notification_id: int, now: datetime) -> None:
    await session.execute(
        update(Notification).where(Notification.id == notification_id).values(delivered_at=now)
    )


def retry_later(note: Notification, now: datetime, error: str, *, after: timedelta | None = None) -> None:
    """Exponential backoff (2 s, 4 s, ... capped at 10 min) unless the channel said when (RetryAfter)."""
    note.attempts += 1
    note.last_error = error[:500]
    note.next_attempt_at = now + (after or timedelta(seconds=min(600, 2**note.attempts)))


async def retry(
    sessions: async_sessionmaker[AsyncSession],
    note_id: int,
    now: datetime,
    error: str,
    *,
    after: timedelta | None = None,
) -> None:
    async with unit_of_work(sessions) as session:
        retry_later(await session.get_one(Notification, note_id), now, error, after=after)


async def resend_unreached(session: AsyncSession, responder_id: int, now: datetime) -> int:
    """Make due again the responder's offers and assignments that were given up because they could not be
    reached (no account on the channel yet) and still stand: what they can take reaches them once they can
    be reached. The latest notification per ticket only, so nothing is sent twice; a taken or withdrawn one
    stays given up. How many were made due."""
    latest = (
        select(func.max(Notification.id))
        .where(
            Notification.recipient_type == Recipient.RESPONDER,
            Notification.recipient_id == responder_id,
            Notification.kind.in_(EDITABLE),
        )
        .group_by(Notification.ticket_id)
    )
    notes = await session.scalars(
        select(Notification)
        .join(Ticket, Ticket.id == Notification.ticket_id)
        .where(
            Notification.id.in_(latest),
            Notification.delivered_at.is_not(None),
            Notification.message_ref.is_(None),  # given up: a sent one has where it was put
            or_(*(and_(Notification.kind == kind, still_stands(kind, responder_id)) for kind in EDITABLE)),
        )
    )
    rearmed = 0
    for note in notes:
        note.delivered_at, note.next_attempt_at = None, now
        rearmed += 1
    return rearmed
