"""社区派单: who should answer a ticket. Responders whose role serves the category, in the ticket's grid
first, on duty and under capacity, least loaded first, then round-robin by who was given work longest ago.

The rule itself is `rank` (plain Python over the responders and their loads), used by the one dispatch
decision (`tickets.dispatch.decide`) that both write paths share: the one-ticket path reads the ticket's
`area`, the batched create path one `pool` for many tickets (keeping the loads up to date in memory between
them)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import ColumnElement, Row, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tickets.catalogue import Category, Role
from tickets.models import Level, Offer, OfferState, Responder, ResponderGrid, Status, Ticket

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


def staff_role(level: int) -> Role:
    """The staff answerable at an escalation level: the community's up to COMMUNITY, then the street's."""
    return Role.STREET_STAFF if level >= Level.STREET else Role.COMMUNITY_STAFF


def eligible_roles(category: Category, level: int) -> frozenset[str]:
    if level == Level.GRID:
        return frozenset(r.value for r in category.roles)
    return frozenset({staff_role(level).value})


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
POOL_COLUMNS = (
    Responder.id,
    Responder.role,
    Responder.community_id,
    Responder.on_duty,
    Responder.capacity,
    Responder.categories,
    Responder.last_assigned_at,
)
_POOLED = select(*POOL_COLUMNS, open_load()).where(Responder.active)
_POOL = _POOLED.where(Responder.community_id.in_(bindparam("communities", expanding=True))).order_by(
    Responder.id
)
_STREET_POOL = _POOLED.where(Responder.street_id == bindparam("street")).order_by(Responder.id)

# Given work: round-robin among equally loaded responders starts after whoever was given work last.
_RESPONDERS = cast(Table, Responder.__table__)
GIVEN_WORK = (
    update(_RESPONDERS)
    .where(_RESPONDERS.c.id == bindparam("responder"))
    .values(last_assigned_at=bindparam("at"))
)


Loads = dict[int, int]  # responder id -> open tickets assigned to them


def pooled(rows: Sequence[Row[Any]] | Sequence[Any]) -> tuple[list[Pooled], Loads]:
    """Rows with POOL_COLUMNS by name and the load last, as responders and their loads."""
    responders = [
        Pooled(r.id, str(r.role), r.community_id, bool(r.on_duty), r.capacity, list(r.categories or []),
               r.last_assigned_at)
        for r in rows
    ]  # fmt: skip
    return responders, {r.id: int(r[-1] or 0) for r in rows}


async def pool(
    session: AsyncSession | AsyncConnection, community_ids: Collection[int]
) -> tuple[list[Pooled], Loads]:
    """Every active responder of these communities (staff and off-duty ones included: staff are told
    when nobody can take a ticket) and their loads, by id, in one statement."""
    if not community_ids:
        return [], {}
    return pooled((await session.execute(_POOL, {"communities": sorted(community_ids)})).all())


async def area(session: AsyncSession, ticket: Ticket) -> tuple[list[Pooled], Loads]:
    """Whoever may answer the ticket at its level, with their loads, in one statement: the responders of
    its community (grid and community level), or of its whole street (street level)."""
    if ticket.level >= Level.STREET:
        return pooled((await session.execute(_STREET_POOL, {"street": ticket.street_id})).all())
    return await pool(session, {ticket.community_id})


async def grid_members(session: AsyncSession, grid_id: int | None, among: Collection[int]) -> frozenset[int]:
    """Which of `among` cover the grid (they come first: 小事不出网格)."""
    if grid_id is None or not among:
        return frozenset()
    return frozenset(
        await session.scalars(
            select(ResponderGrid.responder_id).where(
                ResponderGrid.grid_id == grid_id, ResponderGrid.responder_id.in_(sorted(among))
            )
        )
    )


async def open_offers(session: AsyncSession, ticket: Ticket) -> Sequence[Offer]:
    return (
        await session.scalars(
            select(Offer).where(Offer.ticket_id == ticket.id, Offer.state == OfferState.OPEN)
        )
    ).all()


async def staff_of(session: AsyncSession, ticket: Ticket, level: int) -> Sequence[Responder]:
    """Who hears about escalations and tickets nobody could take: the community's or the street's staff."""
    query = select(Responder).where(Responder.active, Responder.role == staff_role(level))
    if level >= Level.STREET:
        query = query.where(Responder.street_id == ticket.street_id)
    else:
        query = query.where(Responder.community_id == ticket.community_id)
    return (await session.scalars(query.order_by(Responder.id))).all()
