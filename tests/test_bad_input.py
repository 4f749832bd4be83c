"""Bad input gets a specific domain error with a plain Chinese message, and nothing is written."""

import pytest

from tests.conftest import Org, count
from tickets.errors import (
    DomainError,
    EmptyText,
    NotAllowed,
    ResponderNotFound,
    TextTooLong,
    TicketNotFound,
    UnknownCategory,
    ValidationError,
)
from tickets.models import Notification, Ticket, TicketCounter, TicketEvent
from tickets.service import NewTicket, TicketService


async def nothing_written(service: TicketService) -> None:
    for model in (Ticket, TicketEvent, Notification, TicketCounter):
        assert await count(service, model) == 0, model.__tablename__


@pytest.mark.parametrize(
    ("text", "error"),
    [("", EmptyText), ("   \n\t ", EmptyText), ("\x00\x07\u200b", EmptyText), ("修" * 4001, TextTooLong)],
)
async def test_unusable_text(service: TicketService, org: Org, text: str, error: type[DomainError]) -> None:
    resident = await org.resident()
    with pytest.raises(error) as raised:
        await service.create_ticket(NewTicket(resident, "property", text))
    assert raised.value.message  # every error carries a message for the person
    await nothing_written(service)


@pytest.mark.parametrize(
    ("request_", "error", "says"),
    [
        ({"category": "fortune_telling"}, UnknownCategory, "fortune_telling"),
        ({"community": "不存在社区"}, ValidationError, "没有找到"),
        ({"phone": "12345"}, ValidationError, "电话号码"),
        ({"confidence": 1.5}, ValidationError, "confidence"),
        ({"resident_id": 999_999}, NotAllowed, "打个招呼"),
    ],
)
async def test_invalid_requests(
    service: TicketService, org: Org, request_: dict[str, object], error: type[DomainError], says: str
) -> None:
    values: dict[str, object] = {
        "resident_id": await org.resident(),
        "category": "property",
        "text": "电梯坏了",
    }
    values.update(request_)
    with pytest.raises(error, match=says):
        await service.create_ticket(NewTicket(**values))  # type: ignore[arg-type]
    await nothing_written(service)


async def test_a_resident_with_no_known_community_is_asked_for_it(service: TicketService, org: Org) -> None:
    resident = await org.resident("newcomer", community=None)
    with pytest.raises(ValidationError, match="哪个社区"):
        await service.create_ticket(NewTicket(resident, "property", "电梯坏了"))
    await nothing_written(service)


@pytest.mark.parametrize(
    "text",
    [
        "電梯壞了三天了物業不管",
        "lift broken again 🙏🙏 电梯又坏了",
        "'; DROP TABLE tickets; -- 电梯坏了",
        "楼上漏水\x1b[31m到我家\x00了",
        "修" * 4000,
    ],
)
async def test_odd_but_valid_text_is_kept_verbatim_minus_control_characters(
    service: TicketService, org: Org, text: str
) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "property", text))
    stored = await service.ticket(ticket.number, org.service_actor)
    assert stored.text == text.replace("\x1b", "").replace("\x00", "")
    assert await count(service, Ticket) == 1


async def test_unknown_ticket_and_responder(service: TicketService, org: Org) -> None:
    with pytest.raises(TicketNotFound, match="MH-20991231-0001"):
        await service.accept("MH-20991231-0001", org["grid-a1"])
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "property", "电梯坏了"))
    with pytest.raises(ResponderNotFound):
        await service.accept(ticket.number, 424242)


async def test_phone_is_stored_normalised(service: TicketService, org: Org) -> None:
    resident = await org.resident(compound="安居苑")
    ticket = await service.create_ticket(NewTicket(resident, "property", "电梯坏了", phone="138 1234 5678"))
    assert ticket.contact_phone == "+8613812345678"
