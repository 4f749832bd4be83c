"""Reading the loop, for every edge: one ticket and its history (for whoever may see it), a resident's or a
responder's tickets, the staff queue and what is overdue in it, whom staff may dispatch to, the 民呼我应
figures, points, and the org chart's names that forms offer as buttons. Read-only: nothing here changes a
ticket, and the edges ask here instead of writing SQL of their own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import metrics, outbox, points
from tickets.actors import Actor
from tickets.catalogue import Role
from tickets.core import ServiceCore
from tickets.errors import NotAllowed, NotFound, TicketNotFound
from tickets.models import (
    OPEN_TICKET_SQL,
    Community,
    Compound,
    Grid,
    Responder,
    Status,
    Ticket,
    TicketEvent,
)
from tickets.outbox import Kind
from tickets.transitions import Action

QUEUE_LIMIT = 50


class Queries(ServiceCore):
    async def ticket(self, number: str, viewer: Actor) -> Ticket:
        """One ticket, if the viewer may see it: a resident only their own, a responder those of their
        area (others' look not found)."""
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            await self._check_viewer(session, ticket, viewer)
            return ticket

    async def _check_viewer(self, session: AsyncSession, ticket: Ticket, viewer: Actor) -> None:
        if viewer.kind == "resident" and ticket.resident_id != viewer.id:
            raise TicketNotFound(number=ticket.number)
        if viewer.kind == "responder":
            responder = await self._responder(session, viewer.id or 0)
            if not responder.covers(ticket):
                raise TicketNotFound(number=ticket.number)

    async def history(self, number: str, viewer: Actor) -> Sequence[TicketEvent]:
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            await self._check_viewer(session, ticket, viewer)
            return (
                await session.scalars(
                    select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.seq)
                )
            ).all()

    async def tickets_of_resident(self, resident_id: int, limit: int = 10) -> Sequence[Ticket]:
        async with self._work() as session:
            return (
                await session.scalars(
                    select(Ticket)
                    .where(Ticket.resident_id == resident_id)
                    .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                    .limit(limit)
                )
            ).all()

    async def photo_of(self, number: str, name: str, responder_id: int) -> str:
        """A photo the resident attached to the ticket (its stored file name), for the ticket's assignee and
        the staff of its area only; anyone else, or a name not attached to this ticket, finds nothing."""
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            responder = await self._responder(session, responder_id)
            staff = Role(responder.role).is_staff and responder.covers(ticket)
            if not (staff or ticket.assignee_id == responder.id):
                raise TicketNotFound(number=ticket.number)
            attached = await session.scalars(
                select(TicketEvent.data).where(
                    TicketEvent.ticket_id == ticket.id, TicketEvent.action == Action.ATTACH
                )
            )
            if not any(data.get("kind") == "photo" and data.get("file") == name for data in attached):
                raise NotFound("没有找到这张照片。")
            return name

    async def tickets_of_responder(self, responder_id: int, *, open_only: bool = True) -> Sequence[Ticket]:
        async with self._work() as session:
            query = select(Ticket).where(Ticket.assignee_id == responder_id)
            if open_only:
                query = query.where(Ticket.status.in_((Status.DISPATCHED, Status.ACCEPTED)))
            return (await session.scalars(query.order_by(Ticket.resolve_by))).all()

    async def offers_to(self, responder_id: int) -> Sequence[Ticket]:
        """Tickets offered to the responder (抢单) that they may still take, nearest deadline first."""
        async with self._work() as session:
            query = select(Ticket).where(outbox.still_stands(Kind.OFFERED, responder_id))
            return (await session.scalars(query.order_by(Ticket.resolve_by, Ticket.id))).all()

    async def notice_stands(self, kind: Kind, ticket_id: int, responder_id: int) -> bool:
        """Whether an offer or assignment notification still asks something of its responder (a delivery
        about to send it asks: a taken or withdrawn one must not arrive late)."""
        async with self._work() as session:
            query = select(Ticket.id).where(Ticket.id == ticket_id, outbox.still_stands(kind, responder_id))
            return await session.scalar(query) is not None

    async def queue(
        self, staff_id: int, limit: int = QUEUE_LIMIT, *, overdue_only: bool = False
    ) -> Sequence[Ticket]:
        """The staff queue: their community's (or street's) open tickets, most urgent deadline first;
        `overdue_only`: those past their running deadline now (`Ticket.is_overdue`: paused ones are not)."""
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区工作人员可以查看工单队列。")
            query = select(Ticket).where(OPEN_TICKET_SQL)
            if staff.community_id is None:
                query = query.where(Ticket.street_id == staff.street_id)
            else:
                query = query.where(Ticket.community_id == staff.community_id)
            if overdue_only:
                query = query.where(Ticket.overdue_condition(self.clock.now()))
            return (await session.scalars(query.order_by(Ticket.resolve_by, Ticket.id).limit(limit))).all()

    async def assignable(self, number: str, staff_id: int) -> Sequence[Responder]:
        """Whom staff may dispatch or reassign the ticket to: active responders of its community (street
        staff: of its street), by name."""
        async with self._work() as session:
            ticket = await self._ticket(session, number)
            await self._staff(session, staff_id, ticket)
            query = select(Responder).where(Responder.active, Responder.street_id == ticket.street_id)
            query = query.where(
                (Responder.community_id == ticket.community_id) | Responder.community_id.is_(None)
            )
            return (await session.scalars(query.order_by(Responder.role, Responder.name))).all()

    async def place_of(self, ticket: Ticket) -> str:
        """Where the ticket is, as responders read it: 社区 · 网格."""
        async with self._work() as session:
            community = await session.get_one(Community, ticket.community_id)
            grid = await session.get(Grid, ticket.grid_id) if ticket.grid_id else None
        return f"{community.name} · {grid.name}" if grid else community.name

    async def community_figures(self, staff_id: int, period: metrics.Period) -> metrics.LoopFigures:
        """民呼我应 figures of the staff member's community (street staff: their street) for the period."""
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区工作人员可以查看统计。")
            where = (
                metrics.Slice(street_id=staff.street_id)
                if staff.community_id is None
                else metrics.Slice(community_id=staff.community_id)
            )
            return await metrics.figures(
                session, period, now=self.clock.now(), where=where, catalogue=self.catalogue
            )

    async def points_of(self, responder_id: int) -> tuple[int, Sequence[Any]]:
        async with self._work() as session:
            await self._responder(session, responder_id)
            return await points.balance(session, responder_id), await points.history(session, responder_id)

    # ------------------------------------------------------------------ the org chart's names

    async def communities(self) -> list[tuple[str, str]]:
        """(code, name) of every community, in the org chart's order: what forms offer as buttons."""
        async with self.sessions() as session:
            rows = await session.execute(select(Community.code, Community.name).order_by(Community.id))
            return [(code, name) for code, name in rows]

    async def community_name(self, community_id: int) -> str:
        async with self.sessions() as session:
            return (await session.get_one(Community, community_id)).name

    async def compounds_of(self, community_name: str) -> list[str]:
        """The 小区 of a community (by its name), in the org chart's order."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Compound.name)
                .join(Grid, Grid.id == Compound.grid_id)
                .join(Community, Community.id == Grid.community_id)
                .where(Community.name == community_name)
                .order_by(Compound.id)
            )
            return list(rows)

    async def tickets_by_status(self) -> dict[Status, int]:
        """How many tickets are in each status, every status named (a process's /metrics; also the
        cheapest proof that the database answers, for /readyz)."""
        async with self.sessions() as session:
            rows = (await session.execute(select(Ticket.status, func.count()).group_by(Ticket.status))).all()
        counts = {status: 0 for status in Status}
        counts.update({Status(status): int(n) for status, n in rows})
        return counts

    async def responder_names(self) -> dict[int, str]:
        """Every responder's name by id (residents are told who took their request, masked)."""
        async with self.sessions() as session:
            return {rid: name for rid, name in await session.execute(select(Responder.id, Responder.name))}
