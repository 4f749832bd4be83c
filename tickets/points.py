"""爱心积分 (volunteer points): a ledger of entries; a balance is always their sum."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.models import PointsEntry, Rating, Ticket

BASE_POINTS = 10
SATISFIED_BONUS = 5


def points_for(rating: Rating | None) -> int:
    """A closed ticket earns the base points; a 满意 rating earns a bonus; 不满意 earns nothing."""
    if rating is Rating.UNSATISFIED:
        return 0
    return BASE_POINTS + (SATISFIED_BONUS if rating is Rating.SATISFIED else 0)


def award(session: AsyncSession, ticket: Ticket, rating: Rating | None, now: datetime, reason: str) -> int:
    """Pay the assignee for the answer that closed the ticket (None: closed without a rating)."""
    points = points_for(rating)
    if ticket.assignee_id is not None and points:
        session.add(
            PointsEntry(
                responder_id=ticket.assignee_id, ticket_id=ticket.id, points=points, reason=reason, at=now
            )
        )
    return points


async def balance(session: AsyncSession, responder_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PointsEntry.points), 0)).where(PointsEntry.responder_id == responder_id)
    )
    return int(total or 0)


async def history(session: AsyncSession, responder_id: int, limit: int = 20) -> Sequence[PointsEntry]:
    query = (
        select(PointsEntry)
        .where(PointsEntry.responder_id == responder_id)
        .order_by(PointsEntry.at.desc(), PointsEntry.id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def balances(session: AsyncSession, responder_ids: Sequence[int]) -> dict[int, int]:
    """Balance of each of the responders, in one query (0 for those without entries)."""
    if not responder_ids:
        return {}
    query = (
        select(PointsEntry.responder_id, func.sum(PointsEntry.points))
        .where(PointsEntry.responder_id.in_(sorted(set(responder_ids))))
        .group_by(PointsEntry.responder_id)
    )
    found = {rid: int(total or 0) for rid, total in await session.execute(query)}
    return {rid: found.get(rid, 0) for rid in responder_ids}
