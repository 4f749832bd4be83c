"""How long a resident's contact details are kept, and erasing them (个人信息保护法: no longer than the purpose
needs; deleted when the resident asks).

* A ticket's phone and address serve its handling and its 回访. Once the ticket has ended (closed, or cancelled)
  and `Policy.keep_contact_for` has passed, the sweeper erases them (`erase_expired`). What the figures need —
  category, place, times, rating — stays; so does the request's text, whose phones and ID numbers were masked
  when it was registered.
* `forget_resident` erases a resident's stored contact details on their request (a staff member runs
  `minhu residents forget`): the resident's phone, address and name, and the phone and address of every
  ticket of theirs that has ended. An open ticket keeps them until it ends, since the responder needs them to
  do the work; the caller is told which, so the resident can cancel them or wait.

Every erasure is an event on the ticket (`Action.ERASE`, which fields, why), never the erased values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.actors import SYSTEM, Actor
from tickets.core import ServiceCore
from tickets.errors import NotFound
from tickets.models import Resident, Status, Ticket, TicketEvent
from tickets.transitions import Action, apply

CONTACT_FIELDS = ("contact_phone", "address")


@dataclass(frozen=True)
class Forgotten:
    """What `forget_resident` did: the tickets whose contact details were erased, and the open ones that keep
    them until they end."""

    erased: list[str]
    still_open: list[str]


def ended_before(cutoff: datetime) -> ColumnElement[bool]:
    """SQL: the ticket ended (closed, or cancelled) before `cutoff`."""
    cancelled_before = exists(
        select(TicketEvent.id).where(
            TicketEvent.ticket_id == Ticket.id,
            TicketEvent.action == Action.CANCEL,
            TicketEvent.at < cutoff,
        )
    )
    return or_(
        and_(Ticket.status == Status.CLOSED, Ticket.closed_at < cutoff),
        and_(Ticket.status == Status.CANCELLED, cancelled_before),
    )


def _has_contact() -> ColumnElement[bool]:
    return or_(Ticket.contact_phone.is_not(None), Ticket.address.is_not(None))


class Retaining(ServiceCore):
    async def erase_expired(self, batch: int = 200) -> list[str]:
        """One sweep: erase the phone and address of every ticket that ended more than
        `Policy.keep_contact_for` ago. Returns the tickets' numbers. Rows are claimed with SKIP LOCKED, so
        several sweepers can run at once."""
        erased: list[str] = []
        while True:
            now = self.clock.now()
            async with self._work() as session:
                expired = (
                    await session.scalars(
                        select(Ticket)
                        .where(_has_contact(), ended_before(now - self.policy.keep_contact_for))
                        .order_by(Ticket.id)
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                for ticket in expired:
                    await _erase(session, ticket, SYSTEM, now, why="retention")
                erased.extend(t.number for t in expired)
            if len(expired) < batch:
                return erased

    async def forget_resident(self, channel_id: str, actor: Actor) -> Forgotten:
        """Erase what is stored to contact the resident behind `channel_id` (see the module's docstring).
        Raises NotFound for an unknown resident."""
        now = self.clock.now()
        async with self._work() as session:
            resident = await session.scalar(select(Resident).where(Resident.channel_id == channel_id))
            if resident is None:
                raise NotFound("没有找到这位居民。")
            resident.phone = resident.address = resident.display_name = None
            tickets = (
                await session.scalars(
                    select(Ticket)
                    .where(Ticket.resident_id == resident.id)
                    .order_by(Ticket.id)
                    .with_for_update()
                )
            ).all()
            erased, still_open = [], []
            for ticket in tickets:
                if ticket.status not in (Status.CLOSED, Status.CANCELLED):
                    still_open.append(ticket.number)
                elif ticket.contact_phone is not None or ticket.address is not None:
                    await _erase(session, ticket, actor, now, why="resident asked")
                    erased.append(ticket.number)
            return Forgotten(erased, still_open)


async def _erase(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime, *, why: str) -> None:
    fields = [name for name in CONTACT_FIELDS if getattr(ticket, name) is not None]
    ticket.contact_phone = ticket.address = None
    await apply(session, ticket, Action.ERASE, actor=actor, now=now, fields=fields, why=why)
