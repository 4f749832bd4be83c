"""The responders of a scope as staff see them (人员): on duty or not, open load against capacity, 爱心积分,
and each one's 民呼我应 figures for a period (tickets.metrics by responder: a ticket's figures follow its
CURRENT assignee, as everywhere else). Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import metrics, points, routing
from tickets.catalogue import Catalogue, Role
from tickets.metrics import Dimension, LoopFigures, Period, Slice
from tickets.models import Responder, ResponderContact
from tickets.outbox import Channel

ROLE_LABELS = {
    Role.PARTY_VOLUNTEER: "党员志愿者",
    Role.GRID_WORKER: "网格员",
    Role.COMMUNITY_STAFF: "社区工作人员",
    Role.LEGAL_ADVISER: "法律顾问",
    Role.MEDIATOR: "人民调解员",
    Role.SOCIAL_WORKER: "社工",
    Role.PROPERTY_CONTACT: "物业联系人",
    Role.STREET_STAFF: "街道工作人员",
}


@dataclass(frozen=True)
class ResponderRow:
    responder_id: int
    name: str
    role: Role
    community_id: int | None
    on_duty: bool
    load: int  # open tickets assigned to them (dispatched or accepted)
    capacity: int
    points: int
    figures: LoopFigures  # their tickets created in the period
    web_login: bool = False  # a browser is bound to them on the volunteer page (/v)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, str(self.role))

    @property
    def full(self) -> bool:
        return self.load >= self.capacity


async def roster(
    session: AsyncSession,
    period: Period,
    *,
    now: datetime,
    street_id: int,
    community_id: int | None,
    catalogue: Catalogue | None = None,
) -> list[ResponderRow]:
    """Active responders of the community (community_id None: of the whole street), by role then name."""
    query = select(
        Responder.id,
        Responder.name,
        Responder.role,
        Responder.community_id,
        Responder.on_duty,
        Responder.capacity,
        routing.open_load().label("load"),
    ).where(Responder.active, Responder.street_id == street_id)
    if community_id is not None:
        query = query.where(Responder.community_id == community_id)
    people = (await session.execute(query.order_by(Responder.role, Responder.name, Responder.id))).all()
    balances = await points.balances(session, [p.id for p in people])
    where = Slice(street_id=street_id, community_id=community_id)
    by_responder = await metrics.figures(
        session, period, now=now, where=where, group_by=Dimension.RESPONDER, catalogue=catalogue
    )
    found = {row.key: row for row in by_responder.rows}
    on_web = set(
        await session.scalars(
            select(ResponderContact.responder_id).where(
                ResponderContact.channel == Channel.WEB,
                ResponderContact.responder_id.in_([p.id for p in people]),
            )
        )
    )
    return [
        ResponderRow(
            responder_id=p.id,
            name=p.name,
            role=Role(p.role),
            community_id=p.community_id,
            on_duty=bool(p.on_duty),
            load=int(p.load or 0),
            capacity=p.capacity,
            points=balances.get(p.id, 0),
            figures=found.get(p.id) or LoopFigures.empty(p.id, p.name),
            web_login=p.id in on_web,
        )
        for p in people
    ]
