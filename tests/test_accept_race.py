"""接单 is race-safe: when many responders accept the same ticket at once, exactly one wins."""

import asyncio
import dataclasses

import pytest
from sqlalchemy import func, select

from tests.conftest import truncate
from tickets.actors import SYSTEM
from tickets.catalogue import Catalogue, Role
from tickets.clock import ManualClock
from tickets.db import create_engine, session_factory, unit_of_work
from tickets.errors import AlreadyTaken
from tickets.models import Offer, Responder, TicketEvent
from tickets.org import CommunitySpec, GridSpec, OrgSpec, ResponderSpec, StreetSpec, load_org
from tickets.service import NewTicket, TicketService

VOLUNTEERS = 12
ROUNDS = 200


def crowd_org() -> OrgSpec:
    volunteers = [
        ResponderSpec(
            code=f"v{i}", name=f"志愿者{i}", role=Role.PARTY_VOLUNTEER, community="c", capacity=1000
        )
        for i in range(VOLUNTEERS)
    ]
    return OrgSpec(
        streets=[
            StreetSpec(
                code="s",
                name="民安街道",
                communities=[
                    CommunitySpec(code="c", name="安居社区", grids=[GridSpec(code="g", name="一网格")])
                ],
                responders=volunteers,
            )
        ]
    )


@pytest.mark.postgres
async def test_exactly_one_of_many_concurrent_accepts_wins(pg_database: str, clock: ManualClock) -> None:
    base = Catalogue.load()
    eldercare = dataclasses.replace(base.get("eldercare"), offer_to=VOLUNTEERS)  # offer to everyone
    catalogue = dataclasses.replace(base, categories={**base.categories, "eldercare": eldercare})
    engine = create_engine(pg_database, pool_size=VOLUNTEERS + 2)
    await truncate(engine)
    try:
        service = TicketService(session_factory(engine), clock=clock, catalogue=catalogue)
        async with unit_of_work(service.sessions) as session:
            await load_org(session, crowd_org(), catalogue)
        resident = (await service.resident_for("test:race")).id
        await service.remember_resident(resident, community="c")
        async with service.sessions() as session:
            ids = list(await session.scalars(select(Responder.id)))

        async def accept(number: str, responder_id: int) -> int | None:
            try:
                await service.accept(number, responder_id)
            except AlreadyTaken:
                return None
            return responder_id

        winners = []
        for round_ in range(ROUNDS):
            ticket = await service.create_ticket(
                NewTicket(resident, "eldercare", f"第{round_}次:请志愿者帮忙送餐")
            )
            outcomes = await asyncio.gather(*(accept(ticket.number, r) for r in ids))
            won = [o for o in outcomes if o is not None]
            assert len(won) == 1, f"round {round_}: {len(won)} winners"
            stored = await service.ticket(ticket.number, SYSTEM)
            assert stored.assignee_id == won[0]
            winners.append(won[0])

        async with service.sessions() as session:
            accepts = await session.scalar(
                select(func.count()).select_from(TicketEvent).where(TicketEvent.action == "accept")
            )
            won_offers = await session.scalar(
                select(func.count()).select_from(Offer).where(Offer.state == "won")
            )
        assert accepts == ROUNDS and won_offers == ROUNDS
        assert len(set(winners)) > 1  # the race really was a race, not always the first caller
    finally:
        await engine.dispose()
