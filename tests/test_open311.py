"""The domain under the Open311 API (SQLite and PostgreSQL): the catalogue's public mark, the public text,
API keys kept as hashes, and how a platform's reporters become residents."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
import yaml

from tests.conftest import Org
from tickets.actors import SYSTEM
from tickets.apikeys import ApiClient
from tickets.catalogue import Catalogue
from tickets.errors import TicketNotFound, UnknownCategory, ValidationError
from tickets.models import ApiKey
from tickets.open311 import ExternalRequest, RequestFilter
from tickets.privacy import public_text
from tickets.service import Policy, TicketService

# ------------------------------------------------------------------ the catalogue's public mark


def test_sensitive_and_personal_categories_are_not_public(catalogue: Catalogue) -> None:
    public = {c.code for c in catalogue.public}
    assert {"legal_aid", "neighbor_dispute", "social_assistance", "emergency"}.isdisjoint(public)
    assert {"facility_repair", "environment", "property", "eldercare", "certificate"} <= public


def test_a_sensitive_category_cannot_be_marked_public() -> None:
    from pathlib import Path

    raw: dict[str, Any] = yaml.safe_load(
        (Path(__file__).parent.parent / "tickets" / "data" / "categories.yml").read_text(encoding="utf-8")
    )
    raw["categories"]["legal_aid"]["public"] = True
    with pytest.raises(ValueError, match="legal_aid: a sensitive category cannot be public"):
        Catalogue.from_dict(raw)
    del raw["categories"]["legal_aid"]["public"]
    raw["categories"]["legal_aid"]["sensitive"] = False  # no longer sensitive: public by default
    assert Catalogue.from_dict(raw).get("legal_aid").public


# ------------------------------------------------------------------ the public text


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("我叫王小明,电话13812345678,路灯坏了", ["王小明", "13812345678"], ["路灯坏了"]),
        ("李秀英说电梯坏了三天", ["李秀英"], ["电梯坏了三天"]),
        ("张阿姨家楼下垃圾没人收", ["张阿姨", "张"], ["垃圾没人收"]),
        ("住安居苑3栋2单元501室,水管漏水", ["3栋", "501"], ["水管漏水"]),
        ("身份证110101199003071234办证明", ["110101199003071234"], ["办证明"]),
        ("座机027-87654321找物业", ["87654321"], ["找物业"]),
    ],
)
def test_public_text_masks_names_phones_ids_and_homes(text: str, gone: list[str], kept: list[str]) -> None:
    shown = public_text(text)
    for word in gone:
        assert word not in shown
    for word in kept:
        assert word in shown


# ------------------------------------------------------------------ keys


async def test_keys_are_kept_as_sha256_and_revoked_ones_stop(service: TicketService) -> None:
    client, key = await service.add_api_key("city-12345")
    assert key.startswith("mh_") and len(key) >= 45
    async with service.sessions() as session:
        row = await session.get(ApiKey, client.id)
    assert row is not None and row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(await service.api_keys())
    found = await service.api_client(key)
    assert found is not None and found.name == "city-12345"
    assert await service.api_client(key + "x") is None
    assert await service.api_client("") is None
    with pytest.raises(ValidationError):
        await service.add_api_key("city-12345")
    with pytest.raises(ValidationError):
        await service.add_api_key("有空格 的名字")
    await service.revoke_api_key("city-12345")
    assert await service.api_client(key) is None


# ------------------------------------------------------------------ platforms' reporters


def request(**fields: Any) -> ExternalRequest:
    return ExternalRequest(
        **{"service_code": "facility_repair", "description": "路灯坏了", "address_id": "anjuyuan", **fields}
    )


async def resident_of(service: TicketService, number: str) -> int:
    return (await service.ticket(number, SYSTEM)).resident_id


async def test_one_resident_per_key_and_reporter(service: TicketService, org: Org) -> None:
    client, _ = await service.add_api_key("city")
    other, _ = await service.add_api_key("other")
    a = await service.open311_submit(client, request(email="Wang@Example.com", description="路灯坏了"))
    b = await service.open311_submit(client, request(email="wang@example.com ", description="井盖松了"))
    c = await service.open311_submit(other, request(email="wang@example.com", description="井盖松了"))
    d = await service.open311_submit(client, request(description="护栏断了"))
    e = await service.open311_submit(client, request(description="护栏断了"))
    residents = [await resident_of(service, s.number) for s in (a, b, c, d, e)]
    assert residents[0] == residents[1]  # the same e-mail on the same key
    assert len({residents[0], residents[2], residents[3], residents[4]}) == 4  # another key; no identity


async def test_a_repeat_of_an_open_request_joins_it(service: TicketService, org: Org) -> None:
    """As a resident's repeat does when the app turns duplicate linking on (app.settings)."""
    service = TicketService(
        service.sessions,
        clock=service.clock,
        catalogue=service.catalogue,
        policy=Policy(duplicate_window=timedelta(days=1)),
    )
    client, _ = await service.add_api_key("city")
    first = await service.open311_submit(client, request(account_id="u1", description="安居苑门口路灯坏了"))
    again = await service.open311_submit(client, request(account_id="u1", description="安居苑门口路灯坏了!"))
    assert again.duplicate and again.number == first.number and "合并" in again.notice


async def test_platforms_cannot_file_or_read_what_is_not_public(service: TicketService, org: Org) -> None:
    client = ApiClient(id=1, name="x", created_at=service.clock.now())
    for code in ("legal_aid", "social_assistance", "emergency", "nothing"):
        with pytest.raises(UnknownCategory):
            await service.open311_submit(client, request(service_code=code))
    with pytest.raises(TicketNotFound):
        await service.public_request("MH-20261123-0001")
    assert await service.public_requests(RequestFilter(service_codes=("legal_aid",))) == []
