"""Open311 GeoReport v2 over HTTP (dashboard/open311.py on the real application, SQLite and PostgreSQL): the
public catalogue, public requests and their filters, sensitive categories hidden, no personal data in any
answer, requests filed with an API key, and every refusal in Open311's error format."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import pytest

from dashboard.open311 import KEY_LIMITER
from tests.conftest import Org
from tests.dashboard.conftest import Client
from tickets.actors import SYSTEM
from tickets.clock import ManualClock
from tickets.create import NewTicket
from tickets.models import Resident
from tickets.service import TicketService

BASE = "/open311/v2"
PERSONAL = "我叫王小明,电话13812345678,身份证110101199003071234,住安居苑3栋2单元501室,楼道路灯坏了一个星期"


async def json_of(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def error_of(response: Any, status: int) -> str:
    """The Open311 error's description, after checking the format and that it is no HTML page."""
    body = await json_of(response, status)
    assert isinstance(body, list) and len(body) == 1 and body[0]["code"] == status, body
    assert "<html" not in body[0]["description"].lower()
    return str(body[0]["description"])


async def a_key(service: TicketService, name: str = "city-12345") -> str:
    return (await service.add_api_key(name))[1]


async def ticket(
    org: Org, category: str, text: str, *, resident: str = "r1", compound: str = "安居苑"
) -> str:
    resident_id = await org.resident(resident)
    made = await org.service.create_ticket(
        NewTicket(
            resident_id, category, text, compound=compound, address="3栋2单元501室", phone="13912345678"
        )
    )
    return made.number


# ------------------------------------------------------------------ services


async def test_services_list_the_public_categories_with_open311_fields(client: Client) -> None:
    services = await json_of(await client.get(f"{BASE}/services.json"), 200)
    codes = [s["service_code"] for s in services]
    assert "facility_repair" in codes and "environment" in codes
    for hidden in ("legal_aid", "social_assistance", "neighbor_dispute", "emergency"):
        assert hidden not in codes
    repair = next(s for s in services if s["service_code"] == "facility_repair")
    assert repair["service_name"] == "公共设施维修"
    assert repair["metadata"] is False and repair["type"] == "realtime"
    assert "路灯" in repair["keywords"].split(",") and repair["group"] and repair["description"]


async def test_services_as_xml(client: Client) -> None:
    response = await client.get(f"{BASE}/services.xml")
    assert response.status == 200 and response.content_type == "text/xml"
    root = ElementTree.fromstring(await response.text())
    assert root.tag == "services"
    assert "facility_repair" in [s.findtext("service_code") for s in root.findall("service")]
    assert root.find("service/metadata").text == "false"  # type: ignore[union-attr]


# ------------------------------------------------------------------ requests: public view


async def test_a_request_by_number_shows_public_fields_only(client: Client, org: Org) -> None:
    number = await ticket(org, "facility_repair", PERSONAL)
    found = await json_of(await client.get(f"{BASE}/requests/{number}.json"), 200)
    assert len(found) == 1
    shown = found[0]
    assert shown["service_request_id"] == number
    assert shown["status"] == "open" and shown["service_code"] == "facility_repair"
    assert shown["service_name"] == "公共设施维修"
    assert shown["requested_datetime"] == "2026-11-23T09:00:00+08:00"
    assert shown["expected_datetime"] is not None  # the promised 办结 time
    assert shown["address"] == "民安街道 · 安居社区 · 安居第一网格" and shown["address_id"] == "anju-1"
    assert "路灯坏了" in shown["description"]


async def test_no_personal_data_in_any_answer(client: Client, org: Org, service: TicketService) -> None:
    """The resident's name, phones (in the text and the contact phone), ID number and home number, and the
    responder's name, appear in no answer: list, one, JSON or XML."""
    number = await ticket(org, "facility_repair", PERSONAL)
    assigned = await service.ticket(number, SYSTEM)
    names = await service.responder_names()
    assignee = names[assigned.assignee_id] if assigned.assignee_id else "刘洋"
    bodies = [
        await (await client.get(f"{BASE}/requests.json")).text(),
        await (await client.get(f"{BASE}/requests.xml")).text(),
        await (await client.get(f"{BASE}/requests/{number}.json")).text(),
        await (await client.get(f"{BASE}/requests/{number}.xml")).text(),
    ]
    assert number in bodies[0] and number in bodies[1]
    for body in bodies:
        for secret in ("王小明", "13812345678", "13912345678", "110101199003071234", "501", assignee):
            assert secret not in body


async def test_sensitive_categories_are_never_listed_nor_returned(client: Client, org: Org) -> None:
    legal = await ticket(org, "legal_aid", "老板拖欠工资三个月了,想咨询怎么办")
    relief = await ticket(org, "social_assistance", "想申请低保,家里困难", resident="r2")
    dispute = await ticket(org, "neighbor_dispute", "楼上每天半夜很吵", resident="r3")
    public = await ticket(org, "environment", "小区门口垃圾没人清理", resident="r4")
    listed = await json_of(await client.get(f"{BASE}/requests.json"), 200)
    assert [r["service_request_id"] for r in listed] == [public]
    for number in (legal, relief, dispute):
        await error_of(await client.get(f"{BASE}/requests/{number}.json"), 404)
        by_id = await json_of(
            await client.get(f"{BASE}/requests.json", params={"service_request_id": number}), 200
        )
        assert by_id == []
    asked = await json_of(
        await client.get(f"{BASE}/requests.json", params={"service_code": "legal_aid"}), 200
    )
    assert asked == []


async def test_filters_combine(client: Client, org: Org, service: TicketService, clock: ManualClock) -> None:
    first = await ticket(org, "facility_repair", "路灯不亮了", resident="r1")
    clock.advance(timedelta(days=2))
    second = await ticket(org, "environment", "垃圾堆在楼下", resident="r2")
    clock.advance(timedelta(days=2))
    third = await ticket(org, "facility_repair", "井盖松了很危险", resident="r3")
    done = await service.ticket(third, SYSTEM)
    assert done.assignee_id is not None
    clock.advance(timedelta(hours=1))
    await service.accept(third, done.assignee_id)
    await service.resolve(third, done.assignee_id, "已更换井盖")

    async def numbers(**params: str) -> list[str]:
        found = await json_of(await client.get(f"{BASE}/requests.json", params=params), 200)
        return [r["service_request_id"] for r in found]

    assert await numbers() == [third, second, first]  # newest first
    assert await numbers(service_code="facility_repair") == [third, first]
    assert await numbers(service_code="facility_repair,environment") == [third, second, first]
    assert await numbers(status="open") == [second, first]
    assert await numbers(status="closed") == [third]
    assert await numbers(status="open", service_code="facility_repair") == [first]
    assert await numbers(start_date="2026-11-25T00:00:00+08:00") == [third, second]
    assert await numbers(end_date="2026-11-24T00:00:00Z") == [first]
    assert await numbers(start_date="2026-11-24T00:00:00+08:00", end_date="2026-11-26T00:00:00+08:00") == [
        second
    ]
    assert await numbers(start_date="2026-11-26T00:00:00Z", end_date="2026-11-24T00:00:00Z") == []
    assert await numbers(start_date="0001-01-01T00:00:00+05:00", end_date="9999-12-31T23:59:59-05:00") == [
        third,
        second,
        first,
    ]
    assert await numbers(page_size="2") == [third, second]
    assert await numbers(page_size="2", page="2") == [first]
    assert await numbers(page_size="2", page="3") == []
    assert await numbers(service_request_id=f"{first},{third}") == [third, first]
    closed = await json_of(await client.get(f"{BASE}/requests/{third}.json"), 200)
    assert closed[0]["status"] == "closed" and closed[0]["expected_datetime"] is None
    assert closed[0]["updated_datetime"] > closed[0]["requested_datetime"]


async def test_a_large_page_size_is_capped(client: Client, org: Org) -> None:
    await ticket(org, "facility_repair", "路灯不亮了")
    found = await json_of(await client.get(f"{BASE}/requests.json", params={"page_size": "100000"}), 200)
    assert len(found) == 1
    # Any size is a valid integer to the API document (schemathesis sent a 19-digit one).
    huge = await client.get(f"{BASE}/requests.json", params={"page_size": "2504593690152794624"})
    assert len(await json_of(huge, 200)) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "yesterday"},
        {"start_date": "2026-11-23"},  # no time, no timezone
        {"end_date": "2026-11-23T09:00:00"},  # no timezone
        {"start_date": "2026-13-01T00:00:00Z"},
        {"status": "pending"},
        {"page": "0"},
        {"page_size": "abc"},
        {"page": "101"},  # older requests: narrow the dates
        {"page": "99999999999999"},
    ],
)
async def test_malformed_filters_are_400(client: Client, params: dict[str, str]) -> None:
    assert await error_of(await client.get(f"{BASE}/requests.json", params=params), 400)


async def test_unknown_ids_paths_and_methods_answer_in_open311_format(client: Client) -> None:
    await error_of(await client.get(f"{BASE}/requests/MH-20261123-9999.json"), 404)
    await error_of(await client.get(f"{BASE}/nothing.json"), 404)
    await error_of(await client.put(f"{BASE}/requests.json"), 405)
    xml = await client.get(f"{BASE}/requests/MH-20261123-9999.xml")
    assert xml.status == 404 and ElementTree.fromstring(await xml.text()).findtext("error/code") == "404"


async def test_injection_strings_are_inert(client: Client, org: Org) -> None:
    number = await ticket(
        org, "facility_repair", "<script>alert(1)</script> 路灯坏了 '; DROP TABLE tickets; --"
    )
    for params in (
        {"service_code": "' OR '1'='1"},
        {"service_request_id": "MH' OR '1'='1"},
        {"status": "open' OR 1=1 --"},
    ):
        response = await client.get(f"{BASE}/requests.json", params=params)
        assert response.status in (200, 400)
        if response.status == 200:
            assert await response.json() == []
    await error_of(await client.get(f"{BASE}/requests/%27%20OR%201=1%20--.json"), 404)
    xml = await (await client.get(f"{BASE}/requests/{number}.xml")).text()
    assert "<script>" not in xml and "&lt;script&gt;" in xml  # text, escaped
    shown = await json_of(await client.get(f"{BASE}/requests/{number}.json"), 200)
    assert "DROP TABLE" in shown[0]["description"]  # stored and shown as words; the table is still there


# ------------------------------------------------------------------ requests: filed by a platform


async def test_a_platform_files_a_real_ticket(client: Client, org: Org, service: TicketService) -> None:
    key = await a_key(service)
    response = await client.post(
        f"{BASE}/requests.json",
        data={
            "api_key": key,
            "service_code": "facility_repair",
            "description": "幸福家园5号楼门口路灯不亮,电话13812345678",
            "address_id": "xingfu",
            "phone": "13812345678",
            "first_name": "小明",
            "last_name": "王",
            "email": "wang@example.com",
        },
    )
    created = await json_of(response, 201)
    number = created[0]["service_request_id"]
    assert "已受理" in created[0]["service_notice"] and number in created[0]["service_notice"]
    assert "set-cookie" not in {h.lower() for h in response.headers}  # no session for the API

    made = await service.ticket(number, SYSTEM)
    assert made.category == "facility_repair" and made.grid_id is not None
    assert made.contact_phone == "+8613812345678" and made.channel == "open311"
    async with service.sessions() as session:
        resident = await session.get(Resident, made.resident_id)
    assert resident is not None
    assert resident.display_name is None and resident.phone is None and resident.address is None
    assert "wang" not in resident.channel_id and resident.channel_id.startswith("open311:")
    shown = await json_of(await client.get(f"{BASE}/requests/{number}.json"), 200)
    assert shown[0]["address"].endswith("安居第二网格") and "13812345678" not in str(shown)


async def test_json_bodies_and_the_same_reporter(client: Client, org: Org, service: TicketService) -> None:
    key = await a_key(service)
    body = {
        "api_key": key,
        "service_code": "environment",
        "address_string": "锦江花园南门",
        "account_id": "u-1",
    }
    one = await json_of(
        await client.post(f"{BASE}/requests.json", json={**body, "description": "垃圾桶满了没人收"}), 201
    )
    two = await json_of(
        await client.post(f"{BASE}/requests.json", json={**body, "description": "南门的垃圾桶满了好几天"}),
        201,
    )
    first = await service.ticket(one[0]["service_request_id"], SYSTEM)
    second = await service.ticket(two[0]["service_request_id"], SYSTEM)
    assert first.resident_id == second.resident_id  # one resident per (key, account_id)
    assert (await json_of(await client.get(f"{BASE}/requests/{first.number}.json"), 200))[0][
        "address"
    ].endswith("锦江第一网格")


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"service_code": "nothing"}, 400),
        ({"service_code": "legal_aid"}, 400),  # sensitive: not taken from platforms
        ({"address_id": None}, 400),  # no location
        ({"address_id": "nowhere"}, 400),
        ({"address_id": None, "address_string": "火星基地"}, 400),
        ({"description": ""}, 400),
        ({"description": "路" * 5000}, 400),
        ({"phone": "12345"}, 400),
        ({"lat": "abc"}, 400),
        ({"service_code": None}, 400),
    ],
)
async def test_bad_requests_are_400(
    client: Client, org: Org, service: TicketService, fields: dict[str, str | None], status: int
) -> None:
    key = await a_key(service)
    data = {
        "api_key": key,
        "service_code": "facility_repair",
        "description": "路灯坏了",
        "address_id": "anjuyuan",
    }
    data = {k: v for k, v in {**data, **fields}.items() if v is not None}
    await error_of(await client.post(f"{BASE}/requests.json", data=data), status)


async def test_malformed_bodies_are_400(client: Client, service: TicketService) -> None:
    key = await a_key(service)
    url = f"{BASE}/requests.json?api_key={key}"
    headers = {"Content-Type": "application/json"}
    await error_of(await client.post(url, data=b"{not json", headers=headers), 400)
    await error_of(await client.post(url, data=b"[1, 2]", headers=headers), 400)
    await error_of(await client.post(url, json={"service_code": ["facility_repair"]}), 400)
    await error_of(await client.post(url, data=b"x", headers={"Content-Type": "text/plain"}), 400)
    assert await error_of(await client.post(url, data={"description": "路" * 70_000}), 413)


async def test_a_bad_missing_or_revoked_key_is_403(client: Client, org: Org, service: TicketService) -> None:
    data = {"service_code": "facility_repair", "description": "路灯坏了", "address_id": "anjuyuan"}
    await error_of(await client.post(f"{BASE}/requests.json", data=data), 403)
    await error_of(await client.post(f"{BASE}/requests.json", data={**data, "api_key": "mh_wrong"}), 403)
    key = await a_key(service)
    await json_of(await client.post(f"{BASE}/requests.json", data={**data, "api_key": key}), 201)
    await service.revoke_api_key("city-12345")
    await error_of(await client.post(f"{BASE}/requests.json", data={**data, "api_key": key}), 403)


async def test_posts_are_rate_limited_per_key(
    client: Client, org: Org, service: TicketService, clock: ManualClock
) -> None:
    client.app[KEY_LIMITER].limit = 3  # 60 a minute in production
    key, other = await a_key(service), await a_key(service, "other-platform")
    data = {"service_code": "facility_repair", "address_id": "anjuyuan"}

    async def post(api_key: str, n: int) -> Any:
        body = {**data, "api_key": api_key, "description": f"第{n}盏路灯坏了", "account_id": f"u{n}"}
        return await client.post(f"{BASE}/requests.json", data=body)

    for n in range(3):
        await json_of(await post(key, n), 201)
    assert "每分钟最多" in await error_of(await post(key, 3), 429)
    await json_of(await post(other, 4), 201)  # another key has its own allowance
    clock.advance(timedelta(seconds=61))
    await json_of(await post(key, 5), 201)


async def test_a_platform_may_post_for_xml(client: Client, org: Org, service: TicketService) -> None:
    key = await a_key(service)
    data = {"api_key": key, "service_code": "environment", "description": "垃圾没人收", "address_id": "anju"}
    response = await client.post(f"{BASE}/requests.xml", data=data)
    assert response.status == 201 and response.content_type == "text/xml"
    number = ElementTree.fromstring(await response.text()).findtext("request/service_request_id")
    assert number and (await service.ticket(number, SYSTEM)).category == "environment"
    refused = await client.post(f"{BASE}/requests.xml", data={**data, "api_key": "wrong"})
    assert refused.status == 403
    assert ElementTree.fromstring(await refused.text()).findtext("error/code") == "403"


async def test_an_unexpected_failure_is_a_500_in_open311_format(
    client: Client, service: TicketService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> list[object]:
        raise RuntimeError("secret detail 13812345678")

    monkeypatch.setattr(service, "public_services", broken)  # a fault in the domain, injected
    response = await client.get(f"{BASE}/services.json")
    text = await response.text()
    assert await error_of(response, 500) and "secret detail" not in text and "Traceback" not in text
