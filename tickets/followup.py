"""Step 5 of the loop, 回访 / 评价, and what a resident may do with their own request after 点单: `rate`
(满意 / 基本满意 closes it; 不满意 or not solved reopens it and re-dispatches it, 二次派单, away from who had
it) and `cancel` (before anybody has accepted it)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tickets import outbox, points
from tickets.actors import Actor
from tickets.core import MAX_REASON
from tickets.dispatch import Dispatching
from tickets.errors import IllegalTransition, ValidationError
from tickets.models import Rating, Status, Ticket
from tickets.outbox import Kind, Recipient
from tickets.privacy import clean_text
from tickets.transitions import Action, apply, check


class FollowingUp(Dispatching):
    async def rate(
        self,
        number: str,
        resident_id: int,
        *,
        contacted: bool,
        solved: bool,
        rating: Rating | str,
        comment: str | None = None,
    ) -> Ticket:
        """The resident's answer to 回访. 不满意 or not solved reopens and re-dispatches (二次派单)."""
        try:
            rating = Rating.parse(rating)
        except ValueError:
            raise ValidationError("请选择:满意、基本满意或不满意。") from None
        comment_text = clean_text(comment or "")[:1000] or None
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._own_request(session, number, resident_id)
            check(ticket, Action.RATE)
            ticket.contacted, ticket.solved, ticket.rating = contacted, solved, rating
            ticket.rating_comment, ticket.rated_at = comment_text, now
            actor = Actor.resident(resident_id)
            reopen = rating is Rating.UNSATISFIED or not solved
            if not reopen:
                ticket.closed_at = now
            await apply(
                session,
                ticket,
                Action.RATE,
                Status.RESOLVED if reopen else Status.CLOSED,
                actor=actor,
                now=now,
                rating=rating.value,
                contacted=contacted,
                solved=solved,
            )
            if reopen:
                previous = ticket.assignee_id
                await self._reopen(session, ticket, now, actor, avoid=[previous] if previous else [])
                return ticket
            earned = points.award(session, ticket, rating, now, f"rated_{rating.value}")
            if ticket.assignee_id is not None:
                outbox.notify(
                    session,
                    Kind.RATED,
                    Recipient.RESPONDER,
                    ticket.assignee_id,
                    ticket,
                    now,
                    rating=rating.value,
                    points=earned,
                )
            return ticket

    async def _reopen(
        self, session: AsyncSession, ticket: Ticket, now: datetime, actor: Actor, *, avoid: Collection[int]
    ) -> None:
        ticket.reopen_count += 1
        ticket.assignee_id = None
        ticket.resolved_at = None
        ticket.closed_at = None
        await apply(session, ticket, Action.REOPEN, Status.CREATED, actor=actor, now=now)
        await self._redispatch(session, ticket, now, resolve=True, avoid=avoid)

    async def cancel(self, number: str, resident_id: int, reason: str | None = None) -> Ticket:
        """The resident withdraws the request; only before anybody has accepted it."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._own_request(session, number, resident_id)
            if ticket.status == Status.ACCEPTED:
                raise IllegalTransition("工作人员已经接单在处理了,不能撤销。如不再需要,请直接告诉接单人。")
            check(ticket, Action.CANCEL)
            await self._withdraw_offers(session, ticket, now)
            if ticket.assignee_id is not None:
                outbox.notify(session, Kind.WITHDRAWN, Recipient.RESPONDER, ticket.assignee_id, ticket, now)
            await apply(
                session,
                ticket,
                Action.CANCEL,
                Status.CANCELLED,
                actor=Actor.resident(resident_id),
                now=now,
                reason=clean_text(reason or "")[:MAX_REASON] or None,
            )
            return ticket
