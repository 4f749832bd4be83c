"""社区派单: who should answer a ticket. Responders whose role serves the category, in the ticket's grid
first, on duty and under capacity, least loaded first, then round-robin by who was given work longest ago."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.catalogue import Category, Role
from tickets.models import Level, Offer, Responder, ResponderGrid, Status, Ticket

OPEN_WORK = (Status.DISPATCHED, Status.ACCEPTED)


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
    load = (
        select(func.count(Ticket.id))
        .where(Ticket.assignee_id == Responder.id, Ticket.status.in_(OPEN_WORK))
        .correlate(Responder)
        .scalar_subquery()
    )
    query = select(Responder).where(Responder.active, Responder.on_duty, load < Responder.capacity)
    if ticket.level == Level.GRID:
        query = query.where(
            Responder.community_id == ticket.community_id,
            Responder.role.in_([r.value for r in category.roles]),
        )
    elif ticket.level == Level.COMMUNITY:
        query = query.where(
            Responder.community_id == ticket.community_id, Responder.role == Role.COMMUNITY_STAFF
        )
    else:
        query = query.where(Responder.street_id == ticket.street_id, Responder.role == Role.STREET_STAFF)
    if exclude:
        query = query.where(Responder.id.not_in(list(exclude)))
    in_grid = (
        exists()
        .where(ResponderGrid.responder_id == Responder.id, ResponderGrid.grid_id == ticket.grid_id)
        .correlate(Responder)
    )
    order = [Responder.id.in_(list(avoid)) if avoid else None, ~in_grid, load]
    query = query.order_by(
        *[o for o in order if o is not None],
        Responder.last_assigned_at.asc().nulls_first(),
        Responder.id,
    )
    found = (await session.scalars(query.limit(limit * 3))).all()
    # A responder may narrow the categories of their role (e.g. a volunteer who only does 助餐).
    return [r for r in found if r.serves(category.code)][:limit]


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
