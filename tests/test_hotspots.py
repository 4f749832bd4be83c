"""热点: top categories by grid against the previous week, and similar open requests of different residents
grouped (jieba keywords, rapidfuzz similarity), through the real service with the test org."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.conftest import MONDAY_9AM, Org
from tickets import hotspots
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.errors import NotAllowed
from tickets.hotspots import Request
from tickets.models import Status
from tickets.service import NewTicket, TicketService
from tickets.trends import Span

LIFT = ["3栋的电梯又坏了,老人上不了楼", "3号楼电梯停运两天了,请尽快修", "我们三栋电梯一直停着,没人管"]


def test_keywords_leave_out_stopwords_and_numbers() -> None:
    words = hotspots.keywords("3号楼电梯停运两天了,物业也不管,请尽快处理,电话13800000001")
    assert "电梯" in words and "停运" in words
    assert not {"物业", "尽快", "处理"} & set(words)
    assert not any(ch.isdigit() for w in words for ch in w)  # no flat or phone number in a label


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3栋电梯坏了", "3栋"),
        ("12号楼漏水", "12栋"),
        ("三栋门口", "3栋"),
        ("十二幢", "12栋"),
        ("二十栋", "20栋"),
        ("电梯坏了", None),
    ],
)
def test_building_numbers_read_alike(text: str, expected: str | None) -> None:
    assert hotspots.building(text) == expected


def test_similar_requests_of_different_residents_form_one_group(catalogue: Catalogue) -> None:
    requests = [
        Request("T1", 1, 7, "property", LIFT[0]),
        Request("T2", 2, 7, "property", LIFT[1]),
        Request("T3", 3, 7, "property", LIFT[2]),
        Request("T4", 3, 7, "property", "电梯坏了好几天"),  # the third resident again
        Request("T5", 4, 7, "property", "物业费太贵了"),
        Request("T6", 5, 7, "property", "楼顶漏水,家里墙都湿了"),
        Request("T7", 6, 8, "property", "电梯停运了"),  # another grid: not the same lift
        Request("T8", 7, 7, "environment", "电梯里有人抽烟"),  # another category
    ]
    groups = hotspots.group_similar(
        requests, grid_names={7: "安居第一网格", 8: "安居第二网格"}, catalogue=catalogue
    )
    assert len(groups) == 1
    (lift,) = groups
    assert lift.numbers == ["T1", "T2", "T3", "T4"]
    assert lift.residents == 3  # four requests, three residents
    assert lift.keywords[0] == "电梯"
    assert lift.building == "3栋"
    assert lift.label.startswith("安居第一网格 3栋:3 位居民反映同一物业服务与纠纷问题(电梯")


def test_one_resident_writing_twice_is_no_hotspot(catalogue: Catalogue) -> None:
    requests = [Request("T1", 1, 7, "property", LIFT[0]), Request("T2", 1, 7, "property", LIFT[1])]
    assert hotspots.group_similar(requests, grid_names={}, catalogue=catalogue) == []


def test_grouping_a_month_of_a_streets_open_requests_stays_fast(catalogue: Catalogue) -> None:
    """3000 open requests over 20 grids × 8 categories: every group found, in well under the page's budget."""
    topics = [
        "电梯停运 {b}栋",
        "楼顶漏水 {b}栋",
        "路灯不亮 {b}号楼",
        "垃圾没人清理 {b}栋",
        "楼上噪音扰民 {b}栋",
        "下水道堵塞",
    ]
    categories = list(catalogue.categories)
    requests = [
        Request(
            f"T{i}",
            i,
            i % 20,
            categories[i % len(categories)],
            topics[i % 6].format(b=i % 5) + f"第{i}次反映",
        )
        for i in range(3000)
    ]
    hotspots.keywords("预热")  # jieba loads its dictionary once per process (about a second)
    started = time.perf_counter()
    groups = hotspots.group_similar(requests, grid_names={}, catalogue=catalogue)
    elapsed = time.perf_counter() - started
    assert groups and all(g.residents >= 2 for g in groups)
    assert sum(len(g.numbers) for g in groups) <= 3000
    assert elapsed < 10, f"grouping 3000 requests took {elapsed:.1f}s"


async def test_the_hotspots_of_a_community(service: TicketService, org: Org, clock: ManualClock) -> None:
    residents = [await org.resident(f"r{i}", compound="安居苑") for i in range(4)]
    other = await org.resident("x", compound="幸福家园")
    jinjiang = await org.resident("j", community="jinjiang", compound="锦江花园")
    # Last week (week 47): one lift request, two environment ones in 安居第一网格.
    clock.set(MONDAY_9AM - timedelta(days=5))
    noisy = await service.create_ticket(NewTicket(residents[0], "property", "电梯有异响"))
    await service.create_ticket(NewTicket(residents[0], "environment", "楼下垃圾没人收"))
    await service.create_ticket(NewTicket(residents[1], "environment", "绿化带被人占了种菜"))
    # This week: three residents about the 3栋 lift, one of them twice; other matters elsewhere.
    clock.set(MONDAY_9AM)
    lift = [await service.create_ticket(NewTicket(residents[i], "property", LIFT[i])) for i in range(3)]
    lift.append(await service.create_ticket(NewTicket(residents[2], "property", "电梯坏了好几天")))
    await service.create_ticket(NewTicket(residents[3], "environment", "楼道堆满杂物"))
    await service.create_ticket(NewTicket(other, "property", "电梯停运了"))
    await service.create_ticket(NewTicket(jinjiang, "property", "电梯停运,三栋"))
    await service.create_ticket(
        NewTicket(await org.resident("j2", community="jinjiang", compound="锦江花园"), "property", "电梯停了")
    )
    # One lift request is cancelled: only open requests are grouped.
    await service.cancel(lift[3].number, residents[2], "重复了")
    clock.advance(timedelta(hours=1))

    view = await service.hotspots_view(org["staff-a"], span=Span.WEEK)
    assert (view.current.label, view.before.label, view.scope.name) == ("2026-W48", "2026-W47", "安居社区")
    first, second = view.grids  # 安居第一网格 (5 this week) before 安居第二网格 (1)
    assert (first.grid, first.total, first.previous_total) == ("安居第一网格", 5, 3)
    assert [(c.label, c.count, c.previous, c.change) for c in first.top] == [
        ("物业服务与纠纷", 4, 1, 3),  # the cancelled one counts: a resident asked
        ("环境卫生", 1, 2, -1),
    ]
    assert first.top[0].change_rate == pytest.approx(3.0)
    assert (second.grid, second.total, second.previous_total) == ("安居第二网格", 1, 0)
    assert second.top[0].change_rate is None  # nothing before: no rate

    # Last week's open lift request joins this week's three; the cancelled one does not. 锦江's lift is not
    # 安居's business; 幸福家园's one request is alone.
    (group,) = view.groups
    assert group.numbers == [noisy.number, *(t.number for t in lift[:3])]
    assert (group.residents, group.building, group.grid) == (3, "3栋", "安居第一网格")

    street = await service.hotspots_view(org["street-1"], span=Span.WEEK)
    assert {g.grid for g in street.grids} == {"安居第一网格", "安居第二网格", "锦江第一网格"}
    assert [len(g.numbers) for g in street.groups] == [4, 2]  # 锦江's two residents too

    monthly = await service.hotspots_view(org["staff-a"], span=Span.MONTH)
    assert monthly.current.label == "2026-11" and monthly.grids[0].total == 8  # both weeks are November

    with pytest.raises(NotAllowed):
        await service.hotspots_view(org["vol-a1"])
    assert all(t.status == Status.DISPATCHED for t in lift[:3])
