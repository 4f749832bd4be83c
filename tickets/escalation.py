"""Step 6 of the loop, the deadlines' consequences, as the sweeper runs them: `escalate_overdue` (an open
ticket past its running deadline goes up a level, grid → community → street, and is re-dispatched there;
the rule is `Ticket.is_overdue`) and `auto_close` (a resolved ticket the resident did not rate in time is
closed, 自动结案)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import outbox, points, routing
from tickets.actors import SYSTEM, Actor
from tickets.dispatch import Dispatching
from tickets.models import Deadline, Level, Status, Ticket
from tickets.outbox import Kind, Recipient
from tickets.transitions import Action, apply


class Escalating(Dispatching):
    async def escalate_overdue(self, batch: int = 100) -> list[str]:
        """One sweep: every overdue open ticket below street level goes up one level and is re-dispatched
        there. Rows are claimed with SKIP LOCKED, so several sweepers can run at once; all state is in the
        database, so a restarted sweeper simply carries on."""
        escalated: list[str] = []
        while True:
            now = self.clock.now()
            async with self._work() as session:
                overdue = (
                    await session.scalars(
                        select(Ticket)
                        .where(Ticket.level < Level.STREET, Ticket.overdue_condition(now))
                        .order_by(Ticket.id)
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                for ticket in overdue:
                    await self._escalate(session, ticket, now)
                escalated.extend(t.number for t in overdue)
            if len(overdue) < batch:
                return escalated

    async def _escalate(
        self,
        session: AsyncSession,
        ticket: Ticket,
        now: datetime,
        *,
        by: Actor = SYSTEM,
        why: str | None = None,
    ) -> None:
        """Up one level and re-dispatched there: by the sweeper for a passed deadline, or by staff by hand
        (`by`, with their reason `why`)."""
        late_on = ticket.running_deadline()
        assert late_on is not None or by != SYSTEM  # claimed as overdue: a deadline runs
        reason = why if why is not None else f"{late_on.value if late_on else 'deadline'} passed"
        previous = ticket.assignee_id
        await self._withdraw_offers(session, ticket, now)
        ticket.level += 1
        ticket.assignee_id = None
        await apply(
            session,
            ticket,
            Action.ESCALATE,
            Status.CREATED,
            actor=by,
            now=now,
            reason=reason,
            level=ticket.level,
            previous_assignee=previous,
        )
        if previous is not None:
            outbox.notify(
                session, Kind.WITHDRAWN, Recipient.RESPONDER, previous, ticket, now, reason="overdue"
            )
        for staff in await routing.staff_of(session, ticket, ticket.level):
            outbox.notify(
                session,
                Kind.ESCALATED,
                Recipient.RESPONDER,
                staff.id,
                ticket,
                now,
                level=ticket.level,
                # The deadline's name (bot/delivery reads it as a Deadline); by hand: flagged, and the
                # running deadline (or the resolve one for a paused ticket) named for the words.
                reason=(late_on or Deadline.RESOLVE).value,
                **({"by_hand": True} if by != SYSTEM else {}),
            )
        await self._redispatch(session, ticket, now, resolve=True)

    async def auto_close(self, limit: int = 200) -> list[str]:
        """Close tickets the resident did not rate within the policy's days (自动结案)."""
        now = self.clock.now()
        async with self._work() as session:
            due = (
                await session.scalars(
                    select(Ticket)
                    .where(
                        Ticket.status == Status.RESOLVED,
                        Ticket.resolved_at < now - self.policy.auto_close_after,
                    )
                    .order_by(Ticket.resolved_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for ticket in due:
                ticket.closed_at = now
                await apply(session, ticket, Action.AUTO_CLOSE, Status.CLOSED, actor=SYSTEM, now=now)
                # Closed without an answer: an earlier round's rating is not this round's.
                points.award(session, ticket, None, now, "auto_closed")
            return [t.number for t in due]
