"""The org chart loader (街道 → 社区 → 网格 → 小区, and the responders) and the demo org it ships with.

Loading is idempotent and keyed by code; bad input is refused with a clear error and nothing written.
The demo org promises that a demo ticket of any category, in any community, is dispatched at grid level."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from tests.conftest import FIXTURES, count, notifications
from tickets.catalogue import Catalogue, Role
from tickets.db import unit_of_work
from tickets.errors import DomainError
from tickets.models import (
    Base,
    Community,
    Compound,
    Grid,
    Level,
    Responder,
    ResponderContact,
    ResponderGrid,
    Status,
    Street,
)
from tickets.org import LoadReport, load_org, parse_org
from tickets.privacy import normalize_phone
from tickets.service import NewTicket, TicketService

DEMO = Path(__file__).resolve().parent.parent / "tickets" / "data" / "demo_org.yml"
ORG_TABLES: tuple[type[Base], ...] = (
    Street,
    Community,
    Grid,
    Compound,
    Responder,
    ResponderGrid,
    ResponderContact,
)
# Other parts of the project (NLU lookups, jieba dictionary, training examples) use these names.
DEMO_COMMUNITIES = {
    "anju": ("安居社区", {"安居苑", "幸福家园", "百合苑"}),
    "jinjiang": ("锦江社区", {"锦江花园", "金色雅园", "江岸新村"}),
    "danshuichi": ("丹水池社区", {"丹水池还建小区", "后湖春天", "铁路宿舍"}),
}
# What a resident might write for each category (the test fails when a category is added without one).
REQUESTS = {
    "eldercare": "我家老人一个人住,腿脚不方便,想申请每天中午助餐送餐上门",
    "property": "电梯坏了三天了,物业一直说在等配件,老人上下楼很困难",
    "certificate": "伢上学要开居住证明,请问社区能开吗,要带哪些材料",
    "legal_aid": "在工地干了半年,老板拖欠工资两万多不给,想咨询怎么维权",
    "neighbor_dispute": "楼上邻居天天半夜拖椅子跺脚,沟通了几次都没用,想请人来调解",
    "environment": "单元门口的垃圾桶满了好几天没人清运,味道很大",
    "facility_repair": "小区外面那段路的路灯坏了一个多星期,晚上黑漆漆的",
    "social_assistance": "老公去年生病走了,家里没有收入,想问问能不能申请低保",
    "emergency": "【燃气泄漏】家里煤气泄漏了好大的味道",  # reached through the life-safety layer only
}


def demo_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    return raw


def demo_compounds() -> list[tuple[str, str]]:
    """(community code, compound name) of every demo compound."""
    return [
        (c["code"], p["name"])
        for c in demo_raw()["streets"][0]["communities"]
        for g in c["grids"]
        for p in g["compounds"]
    ]


def write(tmp_path: Path, raw: dict[str, Any], name: str = "org.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def load(service: TicketService, path: Path) -> LoadReport:
    async with unit_of_work(service.sessions) as session:
        return await load_org(session, parse_org(path), service.catalogue)


async def row_counts(service: TicketService) -> dict[str, int]:
    return {model.__tablename__: await count(service, model) for model in ORG_TABLES}


async def responders_by_code(service: TicketService) -> dict[str, Responder]:
    async with service.sessions() as session:
        query = select(Responder).options(selectinload(Responder.grids), selectinload(Responder.contacts))
        return {r.code: r for r in await session.scalars(query)}


# ---------------------------------------------------------------- the demo org as written


def test_demo_org_has_the_names_the_rest_of_the_project_uses() -> None:
    spec = parse_org(DEMO)
    assert [(s.code, s.name) for s in spec.streets] == [("minan", "民安街道")]
    (street,) = spec.streets
    found = {c.code: (c.name, {p.name for g in c.grids for p in g.compounds}) for c in street.communities}
    assert found == DEMO_COMMUNITIES


def test_demo_org_is_realistic() -> None:
    (street,) = parse_org(DEMO).streets
    grids = [g for c in street.communities for g in c.grids]
    compounds = [p for g in grids for p in g.compounds]
    responders = street.responders
    assert 8 <= len(grids) <= 12
    for grid in grids:
        assert grid.households is not None and 300 <= grid.households <= 500, grid.code  # 300-500 户
        assert grid.compounds, f"{grid.code} has no compound"
    assert all(p.buildings is not None and 1 <= p.buildings <= 40 for p in compounds)
    for codes in ([g.code for g in grids], [p.code for p in compounds], [r.code for r in responders]):
        assert len(codes) == len(set(codes)), "codes must be unique"

    assert 30 <= len(responders) <= 36
    roles = Counter(r.role for r in responders)
    assert set(roles) == set(Role)
    assert roles.most_common(1)[0][0] is Role.PARTY_VOLUNTEER  # 党员志愿者 are the most numerous
    assert all(3 <= r.capacity <= 8 for r in responders)
    assert 1 <= sum(not r.on_duty for r in responders) <= 2
    assert any(r.categories == ["eldercare"] for r in responders if r.role is Role.PARTY_VOLUNTEER)

    # One grid worker per grid, for exactly that grid.
    grid_workers = sorted(tuple(r.grids) for r in responders if r.role is Role.GRID_WORKER)
    assert grid_workers == sorted((g.code,) for g in grids)
    # Two street staff with no community; everybody else belongs to exactly one community.
    assert [r.community for r in responders if r.role is Role.STREET_STAFF] == [None, None]
    assert all(r.community for r in responders if r.role is not Role.STREET_STAFF)
    for community in street.communities:
        mine = Counter(r.role for r in responders if r.community == community.code)
        assert 1 <= mine[Role.COMMUNITY_STAFF] <= 2, community.code
        assert mine[Role.LEGAL_ADVISER] == 1, community.code  # 一社区一法律顾问

    # Made-up mobiles in the 138/139/150/186 ranges, valid (the loader normalises them), all different.
    phones = [r.phone for r in responders]
    assert all(p is not None and normalize_phone(p)[3:6] in {"138", "139", "150", "186"} for p in phones)
    assert len(set(phones)) == len(phones)


def test_demo_org_can_answer_every_category_in_every_community(catalogue: Catalogue) -> None:
    """For every community and category: an on-duty responder of a role the category names, who serves
    the category (not narrowed away from it) and has capacity. Otherwise a demo ticket would wait."""
    (street,) = parse_org(DEMO).streets
    missing = []
    for community in street.communities:
        for category in catalogue.categories.values():
            if not any(
                r.community == community.code
                and r.on_duty
                and r.capacity > 0
                and r.role in category.roles
                and (not r.categories or category.code in r.categories)
                for r in street.responders
            ):
                missing.append((community.code, category.code))
    assert missing == []


# ---------------------------------------------------------------- loading


async def test_loading_the_demo_org_creates_everything(service: TicketService) -> None:
    report = await load(service, DEMO)

    assert report.created == {
        "streets": 1,
        "communities": 3,
        "grids": 9,
        "compounds": 9,
        "responders": 36,
        "responder_grids": 23,  # the grid links of the new responders count as created, not updated
    }
    assert report.updated == {}
    counts = await row_counts(service)
    assert counts["responders"] == 36
    assert counts["responder_contacts"] == 0
    responders = await responders_by_code(service)
    vol = responders["vol-anju-2"]
    assert (vol.name, vol.role, vol.categories, vol.capacity, vol.on_duty) == (
        "石秀兰",
        Role.PARTY_VOLUNTEER,
        ["eldercare"],
        3,
        True,
    )
    assert vol.phone == "+8613811641045"  # stored as E.164
    assert [g.code for g in vol.grids] == ["anju-2"]
    assert sorted(g.code for g in responders["prop-anju"].grids) == ["anju-2", "anju-3"]
    assert responders["street-1"].community_id is None
    assert not responders["vol-anju-4"].on_duty
    async with service.sessions() as session:
        compound = await session.scalar(select(Compound).where(Compound.name == "后湖春天"))
        assert compound is not None
        grid = await session.get_one(Grid, compound.grid_id)
        community = await session.get_one(Community, grid.community_id)
    assert (grid.name, grid.households, community.name) == ("丹水池第二网格", 460, "丹水池社区")


@pytest.mark.parametrize("path", [DEMO, FIXTURES / "org.yml"], ids=["demo", "fixture"])
async def test_loading_twice_changes_nothing(service: TicketService, path: Path) -> None:
    first = await load(service, path)
    before = await row_counts(service)
    ids = {code: r.id for code, r in (await responders_by_code(service)).items()}

    second = await load(service, path)

    assert first.changed
    assert not second.changed
    assert (second.created, second.updated) == ({}, {})
    assert await row_counts(service) == before
    assert {code: r.id for code, r in (await responders_by_code(service)).items()} == ids


async def test_a_second_file_updates_in_place(service: TicketService, tmp_path: Path) -> None:
    await load(service, DEMO)
    before = await responders_by_code(service)
    grids_before = await count(service, ResponderGrid)

    raw = demo_raw()
    responders = raw["streets"][0]["responders"]
    by_code = {r["code"]: r for r in responders}
    by_code["vol-anju-1"].update(capacity=7, grids=["anju-1", "anju-3"], on_duty=False)
    by_code["prop-anju"]["grids"] = ["anju-2"]  # the property company gave up 百合苑
    responders.append(
        {
            "code": "vol-anju-5",
            "name": "邵明辉",
            "role": "party_volunteer",
            "community": "anju",
            "grids": ["anju-3"],
            "capacity": 4,
            "phone": "13972154803",
        }
    )
    report = await load(service, write(tmp_path, raw))

    assert report.created == {"responders": 1, "responder_grids": 1}
    assert report.updated["responders"] == 1  # vol-anju-1's capacity and on_duty
    assert report.updated["responder_grids"] >= 2  # vol-anju-1's and prop-anju's grids
    assert "streets" not in report.updated and "grids" not in report.updated
    after = await responders_by_code(service)
    assert {code: r.id for code, r in after.items() if code in before} == {
        code: r.id for code, r in before.items()
    }
    vol = after["vol-anju-1"]
    assert (vol.capacity, vol.on_duty) == (7, False)
    assert sorted(g.code for g in vol.grids) == ["anju-1", "anju-3"]
    assert [g.code for g in after["prop-anju"].grids] == ["anju-2"]
    new = after["vol-anju-5"]
    assert (new.name, new.capacity, [g.code for g in new.grids]) == ("邵明辉", 4, ["anju-3"])
    # One grid more for vol-anju-1, one less for prop-anju, one for the newcomer: no stale links.
    assert await count(service, ResponderGrid) == grids_before + 1
    assert await count(service, Responder) == len(before) + 1

    again = await load(service, tmp_path / "org.yml")
    assert not again.changed


# ---------------------------------------------------------------- bad input


def fixture_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((FIXTURES / "org.yml").read_text(encoding="utf-8"))
    return raw


def with_responder(**fields: Any) -> dict[str, Any]:
    """The fixture org with one more responder at the END, so everything before it was already written
    when the loader meets it: the whole load must roll back."""
    raw = copy.deepcopy(fixture_raw())
    responder = {"code": "vol-new", "name": "柯小燕", "role": "party_volunteer", "community": "anju"}
    raw["streets"][0]["responders"].append({**responder, **fields})
    return raw


BAD_INPUT: dict[str, tuple[dict[str, Any] | str, type[Exception], str]] = {
    "unknown role": (with_responder(role="boss"), ValueError, r"responders\.\d+\.role[\s\S]*party_volunteer"),
    "unknown community": (
        with_responder(community="nowhere"),
        ValueError,
        "vol-new: unknown community 'nowhere'",
    ),
    "grid of another community": (
        with_responder(grids=["jinjiang-1"]),
        ValueError,
        "vol-new: grid 'jinjiang-1' is not in community 'anju'",
    ),
    "unknown grid": (with_responder(grids=["anju-9"]), ValueError, "vol-new: grid 'anju-9'"),
    "no community": (
        with_responder(role="grid_worker", community=None),
        ValueError,
        "vol-new: only street_staff may have no community",
    ),
    "bad phone": (with_responder(phone="1380013"), ValueError, "vol-new: 这个电话号码"),
    "unknown category": (
        with_responder(categories=["fortune_telling"]),
        ValueError,
        "vol-new: 没有“fortune_telling”",
    ),
    "capacity out of range": (with_responder(capacity=-1), ValueError, r"capacity"),
    "extra field": (with_responder(title="书记"), ValueError, r"title[\s\S]*Extra inputs are not permitted"),
    "extra street field": (
        {"streets": [{"code": "minan", "name": "民安街道", "district": "江岸区"}]},
        ValueError,
        "district",
    ),
    "no streets": ({"street": []}, ValueError, "streets"),
    "malformed yaml": ("streets:\n  - code: minan\n    name: [民安街道\n", yaml.YAMLError, r"line \d+"),
    "empty file": ("", ValueError, "valid dictionary"),
}


@pytest.mark.parametrize(("content", "error", "says"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
async def test_bad_input_is_refused_and_nothing_is_written(
    service: TicketService,
    tmp_path: Path,
    content: dict[str, Any] | str,
    error: type[Exception],
    says: str,
) -> None:
    if isinstance(content, str):
        path = tmp_path / "org.yml"
        path.write_text(content, encoding="utf-8")
    else:
        path = write(tmp_path, content)

    with pytest.raises(error, match=says):
        await load(service, path)

    assert set((await row_counts(service)).values()) == {0}


async def test_a_bad_second_file_leaves_the_first_load_untouched(
    service: TicketService, tmp_path: Path
) -> None:
    await load(service, DEMO)
    before = await row_counts(service)
    raw = demo_raw()
    raw["streets"][0]["responders"][0]["capacity"] = 2  # a valid change...
    raw["streets"][0]["responders"].append(  # ...and a bad responder after it
        {
            "code": "vol-x",
            "name": "柯小燕",
            "role": "party_volunteer",
            "community": "anju",
            "grids": ["jinjiang-1"],
        }
    )

    with pytest.raises(ValueError, match="vol-x"):
        await load(service, write(tmp_path, raw))

    assert await row_counts(service) == before
    assert (await responders_by_code(service))["staff-anju-1"].capacity == 8


@pytest.mark.parametrize(
    "fields", [{"phone": "1380013"}, {"categories": ["fortune_telling"]}], ids=["phone", "category"]
)
async def test_errors_name_the_responder(
    service: TicketService, tmp_path: Path, fields: dict[str, Any]
) -> None:
    """In a file of 36 responders, "这个电话号码好像不对" alone does not say where to look."""
    with pytest.raises((ValueError, DomainError)) as raised:
        await load(service, write(tmp_path, with_responder(**fields)))
    assert "vol-new" in str(raised.value)


# ---------------------------------------------------------------- the routing promise


@pytest.mark.parametrize(("community", "compound"), demo_compounds())
async def test_a_demo_ticket_of_every_category_is_dispatched_at_grid_level(
    service: TicketService, catalogue: Catalogue, community: str, compound: str
) -> None:
    """Real routing: a resident of each compound asks for every kind of help; each request reaches a
    responder of the right role in the resident's own community straight away (level 0, 网格)."""
    assert set(REQUESTS) == set(catalogue.categories)
    await load(service, DEMO)
    resident = await service.resident_for(f"test:{community}-{compound}")
    await service.remember_resident(resident.id, community=community, compound=compound)
    responders = {r.id: r for r in (await responders_by_code(service)).values()}

    for category, text in REQUESTS.items():
        ticket = await service.create_ticket(NewTicket(resident.id, category, text))

        assert (ticket.status, ticket.level) == (Status.DISPATCHED, Level.GRID), category
        if ticket.assignee_id is not None:
            chosen = [ticket.assignee_id]
        else:
            chosen = [r for kind, _, r in await notifications(service, ticket.number) if kind == "offered"]
        assert chosen, category
        for responder_id in chosen:
            responder = responders[responder_id]
            assert responder.role in catalogue.get(category).roles, (category, responder.code)
            assert responder.community_id == ticket.community_id, (category, responder.code)
            assert responder.on_duty and responder.serves(category), (category, responder.code)
