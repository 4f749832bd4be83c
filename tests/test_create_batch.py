"""The create path in batches: create_tickets, and create_ticket's group commit (concurrent calls of one
process share a transaction). A batch must give every request what it would have got alone: its own
error, or a ticket with a unique number routed as if the tickets had been created one by one."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import FIXTURES, Org, actions, count, notifications
from tickets import orgchart
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.db import unit_of_work
from tickets.errors import EmptyText, NotAllowed, ValidationError
from tickets.models import (
    Community,
    Notification,
    Offer,
    OrgVersion,
    Responder,
    Status,
    Ticket,
    TicketCounter,
    TicketEvent,
)
from tickets.org import load_org, parse_org
from tickets.service import NewTicket, TicketService


class Statements:
    """Statements that insert tickets (PostgreSQL: the one WITH statement of a batch), i.e. create
    transactions that wrote tickets."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.inserts = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._on)

    def _on(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "INSERT INTO TICKETS" in statement.upper():
            self.inserts += 1


async def outcome(service: TicketService, number: str) -> tuple[str, int | None, list[int]]:
    """status, assignee and who was offered it, as a resident-independent fingerprint of routing."""
    async with service.sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        offered = list(
            await session.scalars(
                select(Offer.responder_id).where(Offer.ticket_id == ticket.id).order_by(Offer.id)
            )
        )
        return str(ticket.status), ticket.assignee_id, offered


async def wipe_tickets(service: TicketService) -> None:
    async with unit_of_work(service.sessions) as session:
        for model in (Offer, Notification, TicketEvent, Ticket, TicketCounter):
            await session.execute(delete(model))
        await session.execute(update(Responder).values(last_assigned_at=None))
    service.forget_reserved_numbers()  # PostgreSQL: the blocks came from the counters just emptied


async def test_one_bad_request_fails_alone_and_the_rest_are_created_in_order(
    service: TicketService, org: Org
) -> None:
    a, b = await org.resident("a", compound="安居苑"), await org.resident("b", community="jinjiang")
    results = await service.create_tickets(
        [
            NewTicket(a, "facility_repair", "楼道灯坏了"),
            NewTicket(a, "facility_repair", "   "),  # empty text: fails before any database work
            NewTicket(99999, "environment", "垃圾没人收"),  # no such resident
            NewTicket(a, "environment", "垃圾没人收", community="不存在的社区"),
            NewTicket(b, "eldercare", "想申请助餐"),
        ]
    )

    assert [type(r).__name__ for r in results] == [
        "Ticket",
        EmptyText.__name__,
        NotAllowed.__name__,
        ValidationError.__name__,
        "Ticket",
    ]
    first, last = results[0], results[4]
    assert isinstance(first, Ticket) and isinstance(last, Ticket)
    assert (first.number, last.number) == ("MH-20261123-0001", "MH-20261123-0002")
    assert await count(service, Ticket) == 2
    # Routed as the one-ticket path routes: repair in anju-1 goes to its grid worker; jinjiang's
    # eldercare is offered to its only volunteer.
    assert (first.status, first.assignee_id) == (Status.DISPATCHED, org["grid-a1"])
    assert await outcome(service, last.number) == ("dispatched", None, [org["vol-j1"]])
    for ticket in (first, last):
        assert await actions(service, ticket.number) == [
            ("create", None, "created"),
            ("dispatch", "created", "dispatched"),
        ]
    assert await notifications(service, first.number) == [("assigned", "responder", org["grid-a1"])]
    # The returned object is the row as stored.
    stored = await service.ticket(first.number, org.service_actor)
    assert (stored.id, stored.version, stored.first_dispatched_at) == (
        first.id,
        first.version,
        first.first_dispatched_at,
    )


async def test_a_batch_routes_exactly_as_one_by_one(service: TicketService, org: Org) -> None:
    """Loads, capacities and round-robin carry over from one ticket of a batch to the next."""
    async with unit_of_work(service.sessions) as session:  # capacity makes the load matter
        await session.execute(update(Responder).where(Responder.code == "grid-a1").values(capacity=2))
    residents = [
        await org.resident("a1", compound="安居苑"),
        await org.resident("a2", compound="幸福家园"),
        await org.resident("j", community="jinjiang"),
    ]
    categories = ["facility_repair", "eldercare", "environment", "neighbor_dispute", "legal_aid"]
    requests = [NewTicket(residents[i % 3], categories[i % len(categories)], f"诉求 {i}") for i in range(15)]
    requests.append(NewTicket(residents[2], "legal_aid", "锦江没有法律顾问"))  # nobody: waits for staff

    batch = await service.create_tickets(requests)
    assert all(isinstance(t, Ticket) for t in batch)
    batched = [await outcome(service, t.number) for t in batch if isinstance(t, Ticket)]
    batched_notes = await notifications(service)

    await wipe_tickets(service)
    alone = [await service.create_ticket(r) for r in requests]
    assert [t.number for t in alone] == [t.number for t in batch if isinstance(t, Ticket)]
    assert [await outcome(service, t.number) for t in alone] == batched
    assert await notifications(service) == batched_notes
    assert batched[-1] == ("created", None, [])
    assert batched_notes[-1] == ("needs_dispatch", "responder", org["staff-j"])


async def test_concurrent_creates_share_transactions_and_get_unique_numbers(
    service: TicketService, org: Org, engine: AsyncEngine
) -> None:
    resident = await org.resident(compound="安居苑")
    statements = Statements(engine)
    tickets = await asyncio.gather(
        *(service.create_ticket(NewTicket(resident, "facility_repair", f"路灯 {i}")) for i in range(8))
    )

    assert sorted(t.number for t in tickets) == [f"MH-20261123-{n:04d}" for n in range(1, 9)]
    assert all(t.status == Status.DISPATCHED for t in tickets)
    # All eight are submitted before the transaction the first one started gets going: one INSERT.
    assert statements.inserts == 1
    assert await count(service, TicketEvent) == 16


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_lone_create_is_two_statements_on_postgresql(
    service: TicketService, org: Org, engine: AsyncEngine
) -> None:
    """Issue 16: a process of one worker pays a whole batch for each ticket, so a one-ticket batch is
    cheap: the resident with the responders of their community and their loads, then every write, one
    statement each (no BEGIN and COMMIT around them)."""
    resident = await org.resident(compound="安居苑")
    await service.create_ticket(NewTicket(resident, "facility_repair", "路灯"))  # reserves a block of numbers
    sent: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    ticket = await service.create_ticket(NewTicket(resident, "eldercare", "想申请助餐", announce=True))

    assert len(sent) == 2, sent
    assert ticket.number == "MH-20261123-0002" and ticket.status == Status.DISPATCHED
    assert [a for a, _, _ in await actions(service, ticket.number)] == ["create", "dispatch"]
    async with service.sessions() as session:
        kinds = (
            await session.scalars(
                select(Notification.kind).where(Notification.ticket_id == ticket.id).order_by(Notification.id)
            )
        ).all()
    assert kinds[-1] == "registered" and len(kinds) >= 2  # the responders' notes, then the resident's


async def test_a_request_filed_in_another_community_is_dispatched_there(
    service: TicketService, org: Org
) -> None:
    """A batch reads its residents' home communities' responders with the residents; a request filed in
    another community gets that community's responders, read after, as one by one."""
    resident = await org.resident("a", compound="安居苑")
    requests = [
        NewTicket(resident, "facility_repair", "楼道灯坏了"),
        NewTicket(resident, "facility_repair", "锦江那边的路灯坏了", community="jinjiang"),
    ]
    batch = await service.create_tickets(requests)
    home, elsewhere = (t for t in batch if isinstance(t, Ticket))
    batched = [await outcome(service, t.number) for t in (home, elsewhere)]
    assert home.community_id != elsewhere.community_id
    assert elsewhere.status == Status.DISPATCHED
    async with service.sessions() as session:
        communities = set(
            await session.scalars(
                select(Responder.community_id).where(Responder.id.in_([batched[1][1] or 0, *batched[1][2]]))
            )
        )
    assert communities == {elsewhere.community_id}

    await wipe_tickets(service)
    alone = [await service.create_ticket(r) for r in requests]
    assert [await outcome(service, t.number) for t in alone] == batched


async def test_invalid_request_among_concurrent_ones_fails_alone(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    results = await asyncio.gather(
        service.create_ticket(NewTicket(resident, "facility_repair", "路灯")),
        service.create_ticket(NewTicket(resident, "environment", "垃圾", community="火星社区")),
        service.create_ticket(NewTicket(resident, "eldercare", "助餐")),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValidationError)
    assert [t.number for t in results if isinstance(t, Ticket)] == ["MH-20261123-0001", "MH-20261123-0002"]


async def test_a_database_error_in_a_batch_reaches_only_its_request(
    service: TicketService, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's transaction fails as a whole; the requests are retried one by one."""
    resident = await org.resident(compound="安居苑")
    original = service._create_batch

    async def failing(items: Any) -> Any:
        if any(item.text == "坏的" for item in items):
            raise OperationalError("INSERT", {}, Exception("simulated"))
        return await original(items)

    monkeypatch.setattr(service, "_create_batch", failing)
    results = await service.create_tickets(
        [NewTicket(resident, "facility_repair", t) for t in ("好的一", "坏的", "好的二")]
    )

    assert isinstance(results[1], OperationalError)
    assert [t.number for t in results if isinstance(t, Ticket)] == ["MH-20261123-0001", "MH-20261123-0002"]
    assert await count(service, Ticket) == 2


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite does not enforce VARCHAR lengths
async def test_a_real_constraint_violation_fails_only_its_request(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    lengths = [0, 30, 70, 10, 90]
    results = await asyncio.gather(
        *(
            service.create_ticket(NewTicket(resident, "facility_repair", f"路灯 {n}", intent="x" * n or None))
            for n in lengths
        ),
        return_exceptions=True,
    )
    # intent is VARCHAR(64): the requests with 70 and 90 characters fail, each alone.
    assert [isinstance(r, Ticket) for r in results] == [True, True, False, True, False]
    assert await count(service, Ticket) == 3


async def test_a_caller_cancelled_before_its_batch_starts_gets_no_ticket(
    service: TicketService, org: Org
) -> None:
    resident = await org.resident(compound="安居苑")
    first = asyncio.create_task(service.create_ticket(NewTicket(resident, "facility_repair", "路灯")))
    second = asyncio.create_task(service.create_ticket(NewTicket(resident, "environment", "垃圾")))
    await asyncio.sleep(0)  # both submitted, the batch not started yet
    second.cancel()
    ticket = await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert ticket.number == "MH-20261123-0001"
    assert await count(service, Ticket) == 1


async def test_the_cached_org_chart_follows_load_org(
    service: TicketService, org: Org, catalogue: Catalogue
) -> None:
    resident = await org.resident(compound="安居苑")
    await service.create_ticket(NewTicket(resident, "facility_repair", "路灯"))  # chart cached now
    with pytest.raises(ValidationError):
        await service.create_ticket(NewTicket(resident, "environment", "垃圾", community="新城社区"))

    spec = parse_org(FIXTURES / "org.yml")
    street = spec.streets[0]
    street.communities[1].name = "新城社区"  # jinjiang renamed
    street.communities[1].grids[0].compounds[0].name = "新城花园"
    async with unit_of_work(service.sessions) as session:
        before = await session.scalar(select(OrgVersion.version))
        await load_org(session, spec, catalogue)
    async with service.sessions() as session:
        assert await session.scalar(select(OrgVersion.version)) != before

    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "井盖", compound="新城花园"))
    assert ticket.grid_id is not None
    assert await outcome(service, ticket.number) == ("dispatched", org["grid-j1"], [])


async def test_a_hand_edit_of_the_org_is_seen_after_the_cache_expires(
    service: TicketService, org: Org, clock: ManualClock
) -> None:
    resident = await org.resident(compound="安居苑")
    await service.create_ticket(NewTicket(resident, "facility_repair", "路灯"))
    async with unit_of_work(service.sessions) as session:  # SQL by hand: the org token stays
        await session.execute(text("UPDATE communities SET name = '新城社区' WHERE code = 'jinjiang'"))
    request = NewTicket(resident, "environment", "垃圾", community="新城")
    with pytest.raises(ValidationError):
        await service.create_ticket(request)
    clock.advance(orgchart.MAX_AGE + timedelta(seconds=1))
    ticket = await service.create_ticket(request)
    async with service.sessions() as session:
        jinjiang = await session.scalar(select(Community.id).where(Community.code == "jinjiang"))
    assert ticket.community_id == jinjiang


async def test_a_failure_of_the_batch_machinery_reaches_its_callers_and_the_next_batch_works(
    service: TicketService, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    resident = await org.resident(compound="安居苑")
    run = service._coalescer.run

    async def broken(items: Any) -> Any:
        return []  # a bug: no outcome for the requests

    monkeypatch.setattr(service._coalescer, "run", broken)
    results = await asyncio.gather(
        *(service.create_ticket(NewTicket(resident, "facility_repair", f"路灯 {i}")) for i in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RuntimeError) for r in results)  # failed, not left waiting
    monkeypatch.setattr(service._coalescer, "run", run)
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "路灯"))
    assert ticket.number == "MH-20261123-0001"
