"""Staff at the desk (the dashboard), the 社区派单 step's hand work beyond dispatch and reassign
(tickets.dispatch): escalate a ticket by hand, pause and resume its clock while the resident is awaited,
close a resolved ticket, and the reveal log an admin reads. Every change goes through the transition table
(`apply`) with staff of the ticket's area as the actor, and notifies as the sweeper's steps do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tickets import points
from tickets.actors import Actor
from tickets.catalogue import Role
from tickets.channels import remove_binding
from tickets.core import reason_given
from tickets.errors import IllegalTransition, NotAllowed, ResponderNotFound
from tickets.escalation import Escalating
from tickets.models import Level, Responder, StaffAccount, Status, Ticket, TicketEvent
from tickets.outbox import Channel
from tickets.transitions import Action, apply, check
from tickets.work import pause_clock, resume_clock


@dataclass(frozen=True)
class Reveal:
    """One look at a resident's phone: who, when, which ticket (never the number itself)."""

    at: datetime
    number: str
    responder_id: int
    responder: str
    role: str


class Desk(Escalating):
    async def escalate_by_hand(self, number: str, staff_id: int, reason: str) -> Ticket:
        """Staff send an open ticket up one level (grid → community → street) before its deadline passes;
        it is re-dispatched there, as the sweeper does for an overdue one."""
        reason = reason_given(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            staff = await self._staff(session, staff_id, ticket)
            check(ticket, Action.ESCALATE)
            if ticket.level >= Level.STREET:
                raise IllegalTransition("工单已经在街道层级,不能再升级了。")
            await self._escalate(session, ticket, now, by=Actor.responder(staff.id), why=reason)
            return ticket

    async def pause_by_staff(self, number: str, staff_id: int, reason: str) -> Ticket:
        """Staff stop the clock of an accepted ticket while the resident is awaited (as its assignee can)."""
        reason = reason_given(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            staff = await self._staff(session, staff_id, ticket)
            await pause_clock(session, ticket, Actor.responder(staff.id), now, reason)
            return ticket

    async def resume_by_staff(self, number: str, staff_id: int) -> Ticket:
        """The clock runs again; the deadlines move on by the time spent waiting."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            staff = await self._staff(session, staff_id, ticket)
            await resume_clock(session, ticket, Actor.responder(staff.id), now)
            return ticket

    async def close_by_staff(self, number: str, staff_id: int, reason: str) -> Ticket:
        """Staff close a resolved ticket without waiting for the resident's rating (as 自动结案 does)."""
        reason = reason_given(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            staff = await self._staff(session, staff_id, ticket)
            check(ticket, Action.CLOSE)
            ticket.closed_at = now
            await apply(
                session,
                ticket,
                Action.CLOSE,
                Status.CLOSED,
                actor=Actor.responder(staff.id),
                now=now,
                reason=reason,
            )
            points.award(session, ticket, None, now, "auto_closed")
            return ticket

    async def unbind_web_login(self, staff_id: int, responder_id: int) -> tuple[str, bool]:
        """Staff end a responder's web login (the volunteer page's browser an invite code bound: a lost phone,
        a volunteer who left): the binding goes, so that browser's cookie stands for nobody from its next
        request on, and a new invite can bind another browser. For staff whose community (or, for street
        staff, street) the responder is in; anyone else's looks not found. The responder's name, and whether
        a login was removed."""
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区或街道工作人员可以解除网页登录。")
            target = await session.get(Responder, responder_id)
            if (
                target is None
                or target.street_id != staff.street_id
                or (staff.community_id is not None and target.community_id != staff.community_id)
            ):
                raise ResponderNotFound()
            removed = await remove_binding(session, target.id, Channel.WEB)
            return target.name, removed > 0

    async def reveal_log(self, account_id: int, limit: int = 200) -> Sequence[Reveal]:
        """Who revealed which ticket's phone when, newest first: for admin accounts only."""
        async with self._work() as session:
            account = await session.get(StaffAccount, account_id)
            if account is None or not account.is_admin or account.disabled_at is not None:
                raise NotAllowed("只有管理员可以查看电话查看记录。")
            rows = await session.execute(
                select(TicketEvent, Ticket.number)
                .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                .where(TicketEvent.action == Action.REVEAL_PHONE)
                .order_by(TicketEvent.id.desc())
                .limit(limit)
            )
            found = [(event, number) for event, number in rows]
            actors = {Actor.parse(e.actor).id for e, _ in found}
            names = {
                i: n
                for i, n in await session.execute(
                    select(Responder.id, Responder.name).where(Responder.id.in_([a for a in actors if a]))
                )
            }
            reveals = []
            for event, number in found:
                rid = Actor.parse(event.actor).id or 0
                role = "工作人员" if event.data.get("role") == "staff" else "接单人"
                reveals.append(Reveal(event.at, number, rid, names.get(rid, "?"), role))
            return reveals
