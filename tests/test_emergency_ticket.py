"""紧急求助 in the domain: the catalogue's emergency category and its minutes-long deadline on the plain clock,
the dispatch decision (`decide_emergency`: a community staff member, the grid's workers alerted) and the urgent
ticket (`TicketService.emergency`). The numbers and the NLU side: tests/test_emergency.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import MONDAY_9AM, Org, notifications
from tickets.actors import SYSTEM
from tickets.calendar import WorkCalendar
from tickets.catalogue import Catalogue, Duration, Emergencies, Role
from tickets.dispatch import Mode, decide_emergency
from tickets.errors import ValidationError
from tickets.models import Level, Status, Urgency
from tickets.outbox import Kind
from tickets.routing import Pooled
from tickets.service import TicketService

EMERGENCIES_YML = Path(__file__).resolve().parents[1] / "tickets" / "data" / "emergencies.yml"


def test_a_reply_that_forgets_its_number_is_refused() -> None:
    raw = yaml.safe_load(EMERGENCIES_YML.read_text(encoding="utf-8"))
    raw["kinds"]["fire"]["reply"] = "着火了,快跑"
    with pytest.raises(ValueError, match="119"):
        Emergencies.from_dict(raw)
    raw = yaml.safe_load(EMERGENCIES_YML.read_text(encoding="utf-8"))
    raw["kinds"]["fire"]["numbers"] = ["911"]
    with pytest.raises(ValueError, match="911"):
        Emergencies.from_dict(raw)


def test_the_emergency_category_is_unlisted_and_fast() -> None:
    catalogue = Catalogue.load()
    category = catalogue.get("emergency")
    assert not category.listed and "emergency" not in {c.code for c in catalogue.listed}
    assert set(category.roles) == {Role.COMMUNITY_STAFF, Role.GRID_WORKER}
    assert category.respond_within == Duration(15, "m")


def test_minutes_on_the_plain_and_the_working_clock() -> None:
    calendar = WorkCalendar.for_catalogue(Catalogue.load())
    assert calendar.deadline(MONDAY_9AM, Duration(15, "m"), urgent=True) == MONDAY_9AM + timedelta(minutes=15)
    assert calendar.deadline(MONDAY_9AM, Duration(30, "m")) == MONDAY_9AM + timedelta(minutes=30)
    with pytest.raises(ValueError):
        Duration.parse("15s")


# ----------------------------------------------------------------------------- who gets the urgent ticket


def person(id_: int, role: Role, *, on_duty: bool = True) -> Pooled:
    return Pooled(id_, role.value, 1, on_duty, 5, [], None)


STAFF = [person(2, Role.COMMUNITY_STAFF), person(3, Role.COMMUNITY_STAFF, on_duty=False)]
WORKERS = [person(5, Role.GRID_WORKER), person(6, Role.GRID_WORKER)]
VOLUNTEER = [person(9, Role.PARTY_VOLUNTEER)]


def test_an_emergency_goes_to_staff_and_alerts_the_grid() -> None:
    decision = decide_emergency(STAFF + WORKERS + VOLUNTEER, {2: 3}, {6}, [99], Level.GRID)
    assert decision.mode is Mode.EMERGENCY and decision.assignee == 2  # on duty beats less loaded
    assert decision.told == (6,)  # the resident's grid worker; the off-duty staff member is left alone
    assert decision.notes() == [(Kind.ASSIGNED, 2, {"emergency": True}), (Kind.EMERGENCY, 6, {"assignee": 2})]


def test_an_emergency_without_staff_goes_to_a_grid_worker_and_without_anyone_up() -> None:
    decision = decide_emergency(WORKERS + VOLUNTEER, {5: 1}, set(), [99], Level.GRID)
    assert decision.assignee == 6 and decision.told == (5,)  # no grid known: all the grid workers
    nobody = decide_emergency(VOLUNTEER, {}, set(), [99], Level.GRID)
    assert nobody.chosen == () and nobody.notes() == [(Kind.NEEDS_DISPATCH, 99, {"level": Level.GRID})]


async def test_the_urgent_ticket(service: TicketService, org: Org) -> None:
    resident = await org.resident("em", community="anju", compound="安居苑")
    intake = await service.emergency(resident, "家里煤气泄漏了好大的味道 电话13912345678", "gas")
    ticket = intake.ticket
    assert not intake.duplicate
    assert ticket.category == "emergency" and ticket.intent == "emergency"
    assert ticket.urgency == Urgency.URGENT and ticket.status == Status.DISPATCHED
    assert ticket.text.startswith("【燃气泄漏】家里煤气泄漏") and "13912345678" not in ticket.text
    assert ticket.assignee_id == org["staff-a"] and ticket.level == Level.GRID
    assert ticket.respond_by - ticket.created_at == timedelta(minutes=15)
    notes = await notifications(service, ticket.number)
    assert (Kind.ASSIGNED, "responder", org["staff-a"]) in notes
    assert (Kind.EMERGENCY, "responder", org["grid-a1"]) in notes  # the grid of 安居苑
    assert (Kind.EMERGENCY, "responder", org["grid-a2"]) not in notes

    again = await service.emergency(resident, "味道越来越大了", "gas")
    assert again.duplicate and again.ticket.number == ticket.number
    assert len(await service.tickets_of_resident(resident, limit=10)) == 1
    assert (await service.ticket(ticket.number, SYSTEM)).status == Status.DISPATCHED


async def test_an_emergency_needs_the_community(service: TicketService, org: Org) -> None:
    resident = await org.resident("em-new", community=None)
    with pytest.raises(ValidationError):
        await service.emergency(resident, "救命", None)
