"""Steps 3 and 4 of the loop, the responder's work: 党员接单 (`accept`, or `decline` an offer), working it
(`pause` / `resume` the clock while waiting on the resident, `add_note`, `message_resident`, `reveal_phone` to
call the resident, the resident's photos and locations through `attach`), giving it back (`return_ticket`) and 办结 (`resolve`). Whether they
are on duty (`set_on_duty`) decides whether they get new work."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from tickets import outbox, routing
from tickets.actors import Actor
from tickets.catalogue import Role
from tickets.core import reason_given
from tickets.db import unit_of_work
from tickets.dispatch import Dispatching
from tickets.errors import AlreadyTaken, IllegalTransition, NotAllowed, TicketNotFound
from tickets.models import OPEN_TICKET_SQL, Offer, OfferState, Responder, Status, Ticket
from tickets.outbox import Kind, Recipient
from tickets.privacy import clean_text
from tickets.transitions import Action, apply, check


async def pause_clock(
    session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime, reason: str
) -> None:
    """Stop the deadlines while the resident is awaited: the one step behind the assignee's 暂停 and staff's."""
    if ticket.paused_at is not None:
        raise IllegalTransition("计时已经暂停了。")
    check(ticket, Action.PAUSE)
    ticket.paused_at = now
    await apply(session, ticket, Action.PAUSE, actor=actor, now=now, reason=reason)


async def resume_clock(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime) -> None:
    """The clock runs again: the deadlines move on by the time spent waiting (never backwards)."""
    if ticket.paused_at is None:
        raise IllegalTransition("计时没有暂停。")
    check(ticket, Action.RESUME)
    waited = max(timedelta(0), now - ticket.paused_at)
    ticket.respond_by += waited
    ticket.resolve_by += waited
    ticket.paused_at = None
    await apply(
        session, ticket, Action.RESUME, actor=actor, now=now, waited_seconds=int(waited.total_seconds())
    )


class Working(Dispatching):
    async def accept(self, number: str, responder_id: int) -> Ticket:
        """接单. Race-safe: when many accept at once, exactly one wins; the rest get AlreadyTaken."""
        now = self.clock.now()
        try:
            async with unit_of_work(self.sessions) as session:
                ticket = await self._ticket(session, number)
                responder = await self._responder(session, responder_id)
                if not responder.covers(ticket):
                    raise NotAllowed("这张工单不属于您所在的社区。")
                if ticket.status == Status.ACCEPTED and ticket.assignee_id != responder.id:
                    raise AlreadyTaken(number=ticket.number)
                check(ticket, Action.ACCEPT)
                if ticket.assignee_id is not None and ticket.assignee_id != responder.id:
                    raise NotAllowed("这张工单已派给其他同志。")
                if ticket.assignee_id is None:
                    offer_states = set(
                        await session.scalars(
                            select(Offer.state).where(
                                Offer.ticket_id == ticket.id, Offer.responder_id == responder.id
                            )
                        )
                    )
                    if OfferState.OPEN not in offer_states:
                        # Read between a winner's commit and ours: the offer already says lost.
                        if OfferState.LOST in offer_states:
                            raise AlreadyTaken(number=ticket.number)
                        raise NotAllowed("这张工单没有派给您。")
                ticket.assignee_id = responder.id
                if ticket.first_accepted_at is None:
                    ticket.first_accepted_at = now
                    ticket.responded_in_time = now <= ticket.first_respond_by
                actor = Actor.responder(responder.id)
                await apply(session, ticket, Action.ACCEPT, Status.ACCEPTED, actor=actor, now=now)
                await self._withdraw_offers(session, ticket, now, winner=responder.id)
                outbox.notify(
                    session,
                    Kind.ACCEPTED,
                    Recipient.RESIDENT,
                    ticket.resident_id,
                    ticket,
                    now,
                    responder_name=responder.name,
                )
                return ticket
        except StaleDataError:
            raise AlreadyTaken(number=clean_text(number)[:32]) from None

    async def decline(self, number: str, responder_id: int, reason: str) -> Ticket:
        """不接: the ticket goes to the next responder; the decliner is not asked again."""
        reason = reason_given(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._responder(session, responder_id)
            check(ticket, Action.DECLINE)
            offer = await session.scalar(
                select(Offer).where(
                    Offer.ticket_id == ticket.id,
                    Offer.responder_id == responder.id,
                    Offer.state == OfferState.OPEN,
                )
            )
            if ticket.assignee_id != responder.id and offer is None:
                raise NotAllowed("这张工单没有派给您。")
            actor = Actor.responder(responder.id)
            if offer is not None:
                offer.state = OfferState.DECLINED
                await session.flush()
                if await routing.open_offers(session, ticket):  # others may still take it
                    await apply(
                        session,
                        ticket,
                        Action.DECLINE,
                        Status.DISPATCHED,
                        actor=actor,
                        now=now,
                        reason=reason,
                    )
                    return ticket
            ticket.assignee_id = None
            await apply(session, ticket, Action.DECLINE, Status.CREATED, actor=actor, now=now, reason=reason)
            await self._redispatch(session, ticket, now)
            return ticket

    async def return_ticket(self, number: str, responder_id: int, reason: str) -> Ticket:
        """退回: an accepted ticket goes back for someone else; the resident is told why."""
        reason = reason_given(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._own(session, ticket, responder_id)
            check(ticket, Action.RETURN)
            ticket.assignee_id = None
            ticket.paused_at = None
            actor = Actor.responder(responder.id)
            await apply(session, ticket, Action.RETURN, Status.CREATED, actor=actor, now=now, reason=reason)
            outbox.notify(
                session, Kind.RETURNED, Recipient.RESIDENT, ticket.resident_id, ticket, now, reason=reason
            )
            await self._redispatch(session, ticket, now)
            return ticket

    async def pause(self, number: str, responder_id: int, reason: str) -> Ticket:
        """Waiting on the resident (e.g. 约不到时间): the deadlines stop until resumed."""
        reason = reason_given(reason)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._own(session, ticket, responder_id)
            await pause_clock(session, ticket, Actor.responder(responder.id), now, reason)
            return ticket

    async def resume(self, number: str, actor: Actor) -> Ticket:
        """Deadlines move on by the time spent waiting (never backwards)."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            if actor.kind == "responder":
                await self._own(session, ticket, actor.id or 0)
            elif actor.kind == "resident" and actor.id != ticket.resident_id:
                raise TicketNotFound(number=number)
            await resume_clock(session, ticket, actor, now)
            return ticket

    async def add_note(self, number: str, responder_id: int, note: str) -> Ticket:
        """An internal note (备注): the assignee, or staff of the ticket's area."""
        text = self._validate_text(note)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._responder(session, responder_id)
            if ticket.assignee_id != responder.id and not (
                Role(responder.role).is_staff and responder.covers(ticket)
            ):
                raise NotAllowed("只有接单人和本社区工作人员可以添加备注。")
            await apply(session, ticket, Action.NOTE, actor=Actor.responder(responder.id), now=now, note=text)
            return ticket

    async def message_resident(self, number: str, responder_id: int, text: str) -> Ticket:
        """The assignee's message to the resident: kept as a note and sent through the outbox like every
        notification, so it is retried when the channel fails and never claimed as sent when it was not."""
        text = self._validate_text(text)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._responder(session, responder_id)
            if ticket.assignee_id != responder.id:
                raise NotAllowed("只有接单人可以给居民留言。")
            actor = Actor.responder(responder.id)
            await apply(session, ticket, Action.NOTE, actor=actor, now=now, note=text, to_resident=True)
            outbox.notify(
                session, Kind.MESSAGE, Recipient.RESIDENT, ticket.resident_id, ticket, now, text=text
            )
            return ticket

    async def reveal_phone(self, number: str, responder_id: int) -> str | None:
        """The resident's full contact phone, to call them; every reveal is recorded as a `reveal_phone` event
        (who and when, never the number). The rule, written only here: the assignee once they have accepted
        it; staff of the ticket's area (its community, or street staff of its street) while it is open
        (created, dispatched, accepted), because they dispatch and call; nobody once it is resolved, closed or
        cancelled. Another responder of the area is refused; one of another area does not see the ticket.
        None when the resident left no phone (nothing revealed, nothing recorded)."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._responder(session, responder_id)
            if not responder.covers(ticket):
                raise TicketNotFound(number=ticket.number)
            staff = Role(responder.role).is_staff
            assignee = ticket.assignee_id == responder.id
            if not (staff or assignee):
                raise NotAllowed("只有接单人和本社区工作人员可以查看居民电话。")
            check(ticket, Action.REVEAL_PHONE)
            if not staff and ticket.status != Status.ACCEPTED:
                raise NotAllowed("请先接单,接单后才能查看居民电话。")
            if ticket.contact_phone is None:
                return None
            await apply(
                session,
                ticket,
                Action.REVEAL_PHONE,
                actor=Actor.responder(responder.id),
                now=now,
                role="assignee" if assignee else "staff",
            )
            return ticket.contact_phone

    async def attach(self, resident_id: int, kind: str, reference: Mapping[str, Any]) -> Ticket | None:
        """A photo or location the resident sends: kept by reference (e.g. the channel's file id, never the
        file) on their latest open ticket. None when they have no open ticket."""
        now = self.clock.now()
        async with self._work() as session:
            ticket = await session.scalar(
                select(Ticket)
                .where(Ticket.resident_id == resident_id, OPEN_TICKET_SQL)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .limit(1)
            )
            if ticket is None:
                return None
            await apply(
                session,
                ticket,
                Action.ATTACH,
                actor=Actor.resident(resident_id),
                now=now,
                kind=kind,
                **reference,
            )
            return ticket

    async def resolve(self, number: str, responder_id: int, note: str) -> Ticket:
        """办结: the responder reports it done; the resident is asked the three follow-up questions."""
        text = self._validate_text(note)
        now = self.clock.now()
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._own(session, ticket, responder_id)
            check(ticket, Action.RESOLVE)
            ticket.resolved_at = now
            ticket.resolution_note = text
            ticket.paused_at = None
            actor = Actor.responder(responder.id)
            await apply(session, ticket, Action.RESOLVE, Status.RESOLVED, actor=actor, now=now, note=text)
            outbox.notify(
                session,
                Kind.RATE,
                Recipient.RESIDENT,
                ticket.resident_id,
                ticket,
                now,
                responder_name=responder.name,
            )
            return ticket

    async def set_on_duty(self, responder_id: int, on_duty: bool) -> Responder:
        """在岗 / 休息: off-duty responders get no new offers or assignments."""
        async with self._work() as session:
            responder = await self._responder(session, responder_id)
            responder.on_duty = on_duty
            return responder
