from tests.conftest import Org
from tickets.models import Status
from tickets.service import NewTicket, TicketService


async def test_a_request_is_dispatched_to_the_grid_worker(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "facility_repair", "楼下路灯坏了好几天"))
    assert ticket.status == Status.DISPATCHED
    assert ticket.assignee_id == org["grid-a1"]
    assert ticket.number.startswith("MH-20261123-")
