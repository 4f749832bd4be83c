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

from sqlalchemy import ColumnElement, and_, case, func, literal, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from tickets.catalogue import Role
from tickets.core import ServiceCore
from tickets.errors import NotAllowed, ValidationError
from tickets.models import (
    ACCEPTED_TICKET_SQL,
    AWAITING_TICKET_SQL,
    OPEN_TICKET_SQL,
    PAUSED_TICKET_SQL,
    Grid,
    Responder,
    Status,
    Ticket,
    TicketEvent,
    UTCDateTime,
)

PAGE_SIZE = 50
FEED_LIMIT = 200

_OPEN: ColumnElement[bool] = OPEN_TICKET_SQL  # type: ignore[assignment]  # literal SQL for the partial index
# Awaiting a responder / being worked, clock running, as the board's partial indexes say it (literal, for
# the planner to match them).
AWAITING_SQL: ColumnElement[bool] = AWAITING_TICKET_SQL  # type: ignore[assignment]
ACCEPTED_SQL: ColumnElement[bool] = ACCEPTED_TICKET_SQL  # type: ignore[assignment]
PAUSED_SQL: ColumnElement[bool] = PAUSED_TICKET_SQL  # type: ignore[assignment]


@dataclass(frozen=True)
class _Run:
    """One stretch of the board's order, read off its own index."""

    paused: int
    statuses: frozenset[Status]
    condition: ColumnElement[bool]
    due: ColumnElement[datetime] | InstrumentedAttribute[datetime]


_RUNS = (
    _Run(
        0,
        frozenset({Status.CREATED, Status.DISPATCHED}),
        AWAITING_SQL,
        Ticket.respond_by,
    ),
    _Run(0, frozenset({Status.ACCEPTED}), ACCEPTED_SQL, Ticket.resolve_by),
    _Run(
        1,
        frozenset({Status.CREATED, Status.DISPATCHED, Status.ACCEPTED}),
        and_(_OPEN, PAUSED_SQL),
        case((Ticket.status == Status.ACCEPTED, Ticket.resolve_by), else_=Ticket.respond_by),
    ),
)


def _order(ticket: Ticket) -> tuple[int, datetime, int]:
    """The board's order: (paused?, running deadline's column, id)."""
    due = ticket.resolve_by if ticket.status == Status.ACCEPTED else ticket.respond_by
    return (int(ticket.paused_at is not None), due, ticket.id)


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
        previous page's `next_cursor`).

        Read as three runs, each straight off a partial index in its own order and cut at the page size,
        then merged: awaiting a responder by respond_by, accepted by resolve_by, paused (few) last. So a
        page costs the same at the first page and the thousandth, whatever the backlog."""
        after = Cursor.decode(cursor) if cursor else None
        now = self.clock.now()
        async with self._work() as session:
            staff = await self._responder(session, staff_id)
            if not Role(staff.role).is_staff:
                raise NotAllowed("只有社区工作人员可以查看工单队列。")
            conditions = [self._scope(staff), *self._filters(where)]
            if where.overdue:
                # Ticket.overdue_condition, said run by run (a paused ticket is never overdue; an awaiting
                # one is late on respond_by, an accepted one on resolve_by), so each count reads one index.
                total = 0
                for run in _RUNS[:2]:
                    late = (
                        select(func.count())
                        .select_from(Ticket)
                        .where(run.condition, run.due < now, *conditions)
                    )
                    total += int(await session.scalar(late) or 0)
            else:
                total = int(
                    await session.scalar(select(func.count()).select_from(Ticket).where(_OPEN, *conditions))
                    or 0
                )
            # The grid's and the assignee's names come with the rows (outer joins on primary keys), not in
            # two more round trips.
            grid_name = select(Grid.name).where(Grid.id == Ticket.grid_id).scalar_subquery()
            person_name = select(Responder.name).where(Responder.id == Ticket.assignee_id).scalar_subquery()
            found: list[tuple[Ticket, str | None, str | None]] = []
            for run in _RUNS:
                if where.status is not None and where.status not in run.statuses:
                    continue
                if where.overdue and run.paused:
                    continue  # a paused ticket is never overdue
                query = select(Ticket, grid_name, person_name).where(run.condition, *conditions)
                if where.overdue:
                    query = query.where(run.due < now)
                if after is not None:
                    if after.paused > run.paused:
                        continue
                    if after.paused == run.paused:
                        query = query.where(
                            tuple_(run.due, Ticket.id)
                            > tuple_(literal(after.due, UTCDateTime()), literal(after.id))
                        )
                rows = await session.execute(query.order_by(run.due, Ticket.id).limit(limit + 1))
                found += [(t, g, p) for t, g, p in rows]
            found.sort(key=lambda row: _order(row[0]))
            more = len(found) > limit
            found = found[:limit]
        page = [self._row(t, g, p, now) for t, g, p in found]
        next_cursor = None
        if more and found:
            paused, due, id_ = _order(found[-1][0])
            next_cursor = Cursor(paused, due, id_).encode()
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
            return [(e, n, s, c) for e, n, s, c in rows]

    async def last_event_id(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.max(TicketEvent.id))) or 0)

    # ------------------------------------------------------------------ the pieces

    @staticmethod
    def _scope(staff: Responder) -> ColumnElement[bool]:
        if staff.community_id is None:
            return Ticket.street_id == staff.street_id
        return Ticket.community_id == staff.community_id

    def _filters(self, where: BoardFilter) -> list[ColumnElement[bool]]:
        """Every filter but `overdue`, which `board` applies run by run."""
        found: list[ColumnElement[bool]] = []
        if where.category:
            found.append(Ticket.category == where.category)
        if where.status:
            found.append(Ticket.status == where.status)
        if where.grid_id is not None:
            found.append(Ticket.grid_id == where.grid_id)
        if where.assignee_id is not None:
            found.append(Ticket.assignee_id == where.assignee_id)
        tz = self.calendar.tz
        # created_at wrapped (same value) so PostgreSQL does not walk ix_tickets_unsettled_created for it: it
        # judges "created since" by the whole history (a few %), but most open tickets are recent, and that
        # walk then reads and sorts the scope's whole backlog (1M tickets: 13-18 ms a statement instead of
        # ~5 ms off the board's own indexes).
        created = func.coalesce(Ticket.created_at, Ticket.created_at)
        if where.created_from:
            found.append(created >= datetime.combine(where.created_from, time(0), tz))
        if where.created_to:
            found.append(created < datetime.combine(where.created_to + timedelta(days=1), time(0), tz))
        return found

    def _row(self, ticket: Ticket, grid: str | None, assignee: str | None, now: datetime) -> BoardRow:
        deadline = ticket.deadline()
        left = self.calendar.working_time_between(now, deadline) if deadline else None
        return BoardRow(ticket, grid, assignee, ticket.is_overdue(now), deadline, left)
