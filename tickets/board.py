"""The staff board, a read of the 社区派单 step for the dashboard: the open tickets of a staff member's
scope (their community; street staff: the street), overdue first then by the running deadline, with
filters that combine, counted, in pages read by keyset (a cursor on the ordering, never a large OFFSET);
and the ticket events after a given event id (the live feed).

The order is (paused?, running deadline, id): a ticket is overdue exactly when it is not paused and its
running deadline (respond_by while awaiting a responder, resolve_by while accepted) is past, so overdue
tickets come first without a separate sort key, and paused ones (no clock running) last."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.orm import aliased

from tickets.catalogue import Role
from tickets.core import ServiceCore
from tickets.errors import NotAllowed, ValidationError
from tickets.models import (
    OPEN_TICKET_SQL,
    Grid,
    Responder,
    Status,
    Ticket,
    TicketEvent,
    UTCDateTime,
)

PAGE_SIZE = 50
FEED_LIMIT = 200

# The running deadline's column by status (paused tickets sort last, by the same column).
DUE = case((Ticket.status == Status.ACCEPTED, Ticket.resolve_by), else_=Ticket.respond_by)
_OPEN: ColumnElement[bool] = OPEN_TICKET_SQL  # type: ignore[assignment]  # literal SQL for the partial index
PAUSED = case((Ticket.paused_at.is_(None), 0), else_=1)


class BadCursor(ValidationError):
    code = "bad_cursor"
    default_message = "翻页参数无效,请回到第一页重新翻页。"


@dataclass(frozen=True)
class BoardFilter:
    """What staff narrow the board to; every field optional, all of them combine (AND)."""

    category: str | None = None
    status: Status | None = None
    grid_id: int | None = None
    assignee_id: int | None = None
    overdue: bool = False
    created_from: date | None = None  # local dates, both included
    created_to: date | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page ends on the board's order; written into the next page's link as an opaque token."""

    paused: int
    due: datetime
    id: int

    def encode(self) -> str:
        raw = json.dumps([self.paused, self.due.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            paused, due, id_ = raw
            cursor = cls(int(paused), datetime.fromisoformat(due), int(id_))
        except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
            raise BadCursor() from None
        if cursor.paused not in (0, 1) or cursor.due.tzinfo is None or not 0 < cursor.id < 2**63:
            raise BadCursor()
        return cursor


@dataclass(frozen=True)
class BoardRow:
    ticket: Ticket
    grid: str | None
    assignee: str | None
    overdue: bool
    deadline: datetime | None  # the running one; None when paused
    working_time_left: timedelta | None  # on the working calendar; negative: how far past


@dataclass(frozen=True)
class BoardPage:
    rows: Sequence[BoardRow]
    total: int  # open tickets matching the filter, all pages
    next_cursor: str | None


@dataclass(frozen=True)
class BoardChoices:
    """What the filters offer: the scope's grids and responders, by name."""

    grids: Sequence[tuple[int, str]]
    responders: Sequence[tuple[int, str]]


class Board(ServiceCore):
    async def board(
        self, staff_id: int, where: BoardFilter, cursor: str | None = None, limit: int = PAGE_SIZE
    ) -> BoardPage:
        """One page of the staff member's open tickets matching `where`, after `cursor` (a token from the
        previous page's `next_cursor`)."""
        after = Cursor.decode(cursor) if cursor else None
        now = self.clock.now()
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区工作人员可以查看工单队列。")
            conditions: list[ColumnElement[bool]] = [
                _OPEN,
                self._scope(staff),
                *self._filters(where, now),
            ]
            total = int(
                await session.scalar(select(func.count()).select_from(Ticket).where(*conditions)) or 0
            )
            assignee = aliased(Responder)
            query = (
                select(Ticket, Grid.name, assignee.name)
                .outerjoin(Grid, Grid.id == Ticket.grid_id)
                .outerjoin(assignee, assignee.id == Ticket.assignee_id)
                .where(*conditions)
            )
            if after is not None:
                query = query.where(_after(after))
            rows = (await session.execute(query.order_by(PAUSED, DUE, Ticket.id).limit(limit + 1))).all()
        more = len(rows) > limit
        rows = rows[:limit]
        page = [self._row(ticket, grid, name, now) for ticket, grid, name in rows]
        next_cursor = None
        if more and page:
            last = page[-1].ticket
            due = last.resolve_by if last.status == Status.ACCEPTED else last.respond_by
            next_cursor = Cursor(int(last.paused_at is not None), due, last.id).encode()
        return BoardPage(page, total, next_cursor)

    async def board_choices(self, staff_id: int) -> BoardChoices:
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区工作人员可以查看工单队列。")
            grids = select(Grid.id, Grid.name).order_by(Grid.id)
            people = select(Responder.id, Responder.name).where(
                Responder.active, Responder.street_id == staff.street_id
            )
            if staff.community_id is not None:
                grids = grids.where(Grid.community_id == staff.community_id)
                people = people.where(Responder.community_id == staff.community_id)
            else:
                from tickets.models import Community

                grids = grids.join(Community, Community.id == Grid.community_id).where(
                    Community.street_id == staff.street_id
                )
            return BoardChoices(
                grids=[(i, n) for i, n in await session.execute(grids)],
                responders=[(i, n) for i, n in await session.execute(people.order_by(Responder.name))],
            )

    async def events_after(
        self, event_id: int, limit: int = FEED_LIMIT
    ) -> Sequence[tuple[TicketEvent, str, int, int]]:
        """Ticket events with an id above `event_id`, oldest first: (event, ticket number, street id,
        community id), so the live feed can send each to the staff whose scope it is in."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(TicketEvent, Ticket.number, Ticket.street_id, Ticket.community_id)
                .join(Ticket, Ticket.id == TicketEvent.ticket_id)
                .where(TicketEvent.id > event_id)
                .order_by(TicketEvent.id)
                .limit(limit)
            )
            return [(e, n, s, c) for e, n, s, c in rows.tuples()]

    async def last_event_id(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.max(TicketEvent.id))) or 0)

    # ------------------------------------------------------------------ the pieces

    @staticmethod
    def _scope(staff: Responder) -> ColumnElement[bool]:
        if staff.community_id is None:
            return Ticket.street_id == staff.street_id
        return Ticket.community_id == staff.community_id

    def _filters(self, where: BoardFilter, now: datetime) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if where.category:
            found.append(Ticket.category == where.category)
        if where.status:
            found.append(Ticket.status == where.status)
        if where.grid_id is not None:
            found.append(Ticket.grid_id == where.grid_id)
        if where.assignee_id is not None:
            found.append(Ticket.assignee_id == where.assignee_id)
        if where.overdue:
            found.append(Ticket.overdue_condition(now))
        tz = self.calendar.tz
        if where.created_from:
            found.append(Ticket.created_at >= datetime.combine(where.created_from, time(0), tz))
        if where.created_to:
            found.append(
                Ticket.created_at < datetime.combine(where.created_to + timedelta(days=1), time(0), tz)
            )
        return found

    def _row(self, ticket: Ticket, grid: str | None, assignee: str | None, now: datetime) -> BoardRow:
        deadline = ticket.deadline()
        left = self.calendar.working_time_between(now, deadline) if deadline else None
        return BoardRow(ticket, grid, assignee, ticket.is_overdue(now), deadline, left)


def _after(cursor: Cursor) -> ColumnElement[bool]:
    due = literal(cursor.due, UTCDateTime())
    later = tuple_(DUE, Ticket.id) > tuple_(due, literal(cursor.id))
    if cursor.paused:
        return and_(PAUSED == 1, later)
    return or_(PAUSED == 1, and_(PAUSED == 0, later))
