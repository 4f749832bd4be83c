"""Notifications are rows written in the same transaction as the change they announce (transactional
outbox), so a channel that is down loses nothing; a delivery worker sends them later."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.models import Notification, Ticket


def row(
    kind: str,
    recipient_type: Literal["resident", "responder"],
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


def notify(
    session: AsyncSession,
    kind: str,
    recipient_type: Literal["resident", "responder"],
    recipient_id: int,
    ticket: Ticket | None,
    now: datetime,
    **payload: Any,
) -> Notification:
    if ticket is not None:
        payload.setdefault("number", ticket.number)
        payload.setdefault("category", ticket.category)
    note = Notification(
        **row(kind, recipient_type, recipient_id, ticket.id if ticket is not None else None, now, payload)
    )
    session.add(note)
    return note


async def claim_due(session: AsyncSession, now: datetime, limit: int = 50) -> Sequence[Notification]:
    """Undelivered notifications whose retry time has come, oldest first. Rows are locked (SKIP LOCKED on
    PostgreSQL) so two delivery workers never send the same one."""
    query = (
        select(Notification)
        .where(
            Notification.delivered_at.is_(None),
            or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now),
        )
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


async def mark_delivered(session: AsyncSession, notification_id: int, now: datetime) -> None:
    await session.execute(
        update(Notification).where(Notification.id == notification_id).values(delivered_at=now)
    )


def retry_later(note: Notification, now: datetime, error: str, *, after: timedelta | None = None) -> None:
    """Exponential backoff (2 s, 4 s, ... capped at 10 min) unless the channel said when (RetryAfter)."""
    note.attempts += 1
    note.last_error = error[:500]
    note.next_attempt_at = now + (after or timedelta(seconds=min(600, 2**note.attempts)))
