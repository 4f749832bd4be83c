"""社区派单: who should answer a ticket. Responders whose role serves the category, in the ticket's grid
first, on duty and under capacity, least loaded first, then round-robin by who was given work longest ago.

The rule itself is `rank` (plain Python over the responders and their loads), so the one-ticket path
(`candidates`, re-dispatch after a decline or an escalation) and the batched create path
(`TicketService.create_tickets`, which reads one `pool` for many tickets and keeps the loads up to date in
memory between them) cannot drift apart."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tickets.catalogue import Category, Role
from tickets.models import Level, Offer, Responder, ResponderGrid, Status, Ticket

OPEN_WORK = (Status.DISPATCHED, Status.ACCEPTED)


class Routable(Protocol):
    """What ranking reads of a responder (a `Responder` row or a `Pooled` one)."""

    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def on_duty(self) -> bool: ...
    @property
    def last_assigned_at(self) -> datetime | None: ...
    def serves(self, category: str) -> bool: ...


R = TypeVar("R", bound=Routable)


def open_load() -> ColumnElement[int]:
    """A responder's load: open tickets assigned to them (offers do not count)."""
    return (
        select(func.count(Ticket.id))
        .where(Ticket.assignee_id == Responder.id, Ticket.status.in_(OPEN_WORK))
        .correlate(Responder)
        .scalar_subquery()
    )


def eligible_roles(category: Category, level: int) -> frozenset[str]:
    if level == Level.GRID:
        return frozenset(r.value for r in category.roles)
    return frozenset({(Role.COMMUNITY_STAFF if level == Level.COMMUNITY else Role.STREET_STAFF).value})


def rank(
    responders: Iterable[R],
    loads: dict[int, int],
    category: Category,
    level: int,
    *,
    in_grid: Collection[int] = (),
    exclude: Collection[int] = (),
    avoid: Collection[int] = (),
    limit: int = 10,
) -> list[R]:
    """The best `limit` of `responders` (already those of the ticket's community, or street for level
    STREET, and active) for a ticket: role serves the category at this level, on duty, under capacity, not
    excluded; ordered by avoided last, in the ticket's grid first, least loaded, longest since last given
    work (never first), id."""
    roles = eligible_roles(category, level)
    fit = [
        r
        for r in responders
        if r.role in roles
        and r.on_duty
        and loads.get(r.id, 0) < r.capacity
        and r.id not in exclude
        and r.serves(category.code)
    ]
    fit.sort(
        key=lambda r: (
            r.id in avoid,
            r.id not in in_grid,
            loads.get(r.id, 0),
            r.last_assigned_at is not None,
            r.last_assigned_at or datetime.min,
            r.id,
        )
    )
    return fit[:limit]


async def candidates(
    session: AsyncSession,
    ticket: Ticket,
    category: Category,
    *,
    exclude: Collection[int] = (),
    avoid: Collection[int] = (),
    limit: int = 10,
) -> Sequence[Responder]:
    """Eligible responders for the ticket's current level, best first.
    `exclude` never gets it (declined or returned it); `avoid` only when nobody else can (二次派单)."""
    roles = eligible_roles(category, ticket.level)
    query = select(Responder, open_load()).where(
        Responder.active, Responder.on_duty, Responder.role.in_(sorted(roles))
    )
    if ticket.level >= Level.STREET:
        query = query.where(Responder.street_id == ticket.street_id)
    else:
        query = query.where(Responder.community_id == ticket.community_id)
    rows = (await session.execute(query)).all()
    in_grid: set[int] = set()
    if ticket.grid_id is not None and rows:
        in_grid = set(
            await session.scalars(
                select(ResponderGrid.responder_id).where(
                    ResponderGrid.grid_id == ticket.grid_id,
                    ResponderGrid.responder_id.in_([r.id for r, _ in rows]),
                )
            )
        )
    loads = {r.id: load for r, load in rows}
    return rank(
        (r for r, _ in rows),
        loads,
        category,
        ticket.level,
        in_grid=in_grid,
        exclude=exclude,
        avoid=avoid,
        limit=limit,
    )


@dataclass(slots=True)
class Pooled:
    """A responder as the batched create path reads it (no ORM object); `last_assigned_at` is kept up to
    date in memory while a batch dispatches."""

    id: int
    role: str
    community_id: int | None
    on_duty: bool
    capacity: int
    categories: list[str]
    last_assigned_at: datetime | None

    def serves(self, category: str) -> bool:
        return not self.categories or category in self.categories


# Built once: the create path runs it for every batch, and building the statement costs more CPU than
# sending it.
_POOL = (
    select(
        Responder.id,
        Responder.role,
        Responder.community_id,
        Responder.on_duty,
        Responder.capacity,
        Responder.categories,
        Responder.last_assigned_at,
        open_load(),
    )
    .where(Responder.active, Responder.community_id.in_(bindparam("communities", expanding=True)))
    .order_by(Responder.id)
)


async def pool(
    session: AsyncSession | AsyncConnection, community_ids: Collection[int]
) -> tuple[list[Pooled], dict[int, int]]:
    """Every active responder of these communities (staff and off-duty ones included: staff are told
    when nobody can take a ticket) and their loads, by id, in one statement."""
    if not community_ids:
        return [], {}
    rows = (await session.execute(_POOL, {"communities": sorted(community_ids)})).all()
    pooled = [Pooled(r[0], str(r[1]), r[2], bool(r[3]), r[4], list(r[5] or []), r[6]) for r in rows]
    return pooled, {r[0]: int(r[7] or 0) for r in rows}


async def open_offers(session: AsyncSession, ticket: Ticket) -> Sequence[Offer]:
    return (
        await session.scalars(select(Offer).where(Offer.ticket_id == ticket.id, Offer.state == "open"))
    ).all()


async def staff_of(session: AsyncSession, ticket: Ticket, level: int) -> Sequence[Responder]:
    """Who hears about escalations and tickets nobody could take: the community's or the street's staff."""
    query = select(Responder).where(Responder.active)
    if level >= Level.STREET:
        query = query.where(Responder.street_id == ticket.street_id, Responder.role == Role.STREET_STAFF)
    else:
        query = query.where(
            Responder.community_id == ticket.community_id, Responder.role == Role.COMMUNITY_STAFF
        )
    return (await session.scalars(query.order_by(Responder.id))).all()
