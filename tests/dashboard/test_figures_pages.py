"""数据 / 热点 / 人员 pages through aiohttp's test client, on tickets made in the test (test_metrics' six
hand-worked tickets): each staff member sees their own scope's figures, the downloads are the monthly
report's rows, malformed parameters are 400 pages and injection strings stay inert."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook

from tests.conftest import Org
from tests.dashboard.conftest import sign_in
from tests.test_metrics import NOVEMBER, november_monday
from tests.test_report import HEADERS
from tickets.clock import ManualClock
from tickets.report import COLUMNS as REPORT_COLUMNS
from tickets.report import TOTAL_LABEL, formatted
from tickets.service import NewTicket, TicketService

Client = TestClient[web.Request, web.Application]
DATA_RE = re.compile(r'<script type="application/json" id="figures-data">(.*?)</script>', re.S)


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text[:500]
    return text


def chart_data(html: str) -> dict[str, object]:
    match = DATA_RE.search(html)
    assert match, "no figures-data block"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def kpi(html: str, name: str) -> str:
    match = re.search(rf'id="kpi-{name}">([^<]*)<', html)
    assert match, name
    return match.group(1)


async def test_community_staff_see_their_communitys_figures(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    await sign_in(client, org, "staff-a")
    html = await page(client, "/figures")  # this month (November 2026, the clock's) by default
    assert "安居社区" in html
    # 安居: T1 T2 T3 T5 → 4 tickets; response 2/3, resolution 2/3, satisfaction 2/3.
    assert (
        kpi(html, "total"),
        kpi(html, "response"),
        kpi(html, "resolution"),
        kpi(html, "satisfaction"),
    ) == (
        "4",
        "66.7%",
        "66.7%",
        "66.7%",
    )
    for chart in ("chart-volume", "chart-rates", "chart-times", "chart-breakdown"):
        assert f'id="{chart}"' in html
    assert "/static/vendor/echarts-6.1.0/echarts.min.js" in html and "/static/figures.js" in html
    data = chart_data(html)
    series = data["series"]
    assert isinstance(series, dict)
    assert series["labels"][-1] == "2026-11" and series["total"][-1] == 4 and len(series["labels"]) == 6
    assert series["response_rate"][-1] == 66.7 and series["response_rate"][0] is None  # no tickets: no rate
    buckets = data["buckets"]
    assert isinstance(buckets, dict)
    assert buckets["first_response"] == [0, 2, 1, 0, 0, 0]  # 1h, 2h | 5h
    # The text alternative of each chart says the same.
    assert "2026-11 4 件" in unescape(html)

    by_grid = await page(client, "/figures?by=grid&span=month&month=2026-11")
    breakdown = chart_data(by_grid)["breakdown"]
    assert isinstance(breakdown, dict)
    assert (breakdown["labels"], breakdown["total"]) == (["安居第一网格"], [4])
    by_responder = chart_data(await page(client, "/figures?by=responder"))["breakdown"]
    assert isinstance(by_responder, dict)
    assert dict(zip(by_responder["labels"], by_responder["total"], strict=True)) == {
        "刘洋": 2,
        "陈静": 1,
        "周丽": 1,
    }


async def test_another_communitys_staff_do_not_see_these_numbers(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    await sign_in(client, org, "staff-j")
    html = await page(client, "/figures?by=grid")
    assert kpi(html, "total") == "2"
    assert "安居" not in html and "刘洋" not in html
    assert "安居" not in await page(client, "/figures?by=responder")
    assert "刘洋" not in await page(client, "/responders")
    # Even asked for the other community's tab, only their own rows come back.
    assert chart_data(await page(client, "/figures?by=community"))["breakdown"] == {
        "dimension": "社区",
        "labels": ["锦江社区"],
        "total": [2],
        "resolved": [1],
        "median_accept_hours": [0.5],
    }


async def test_street_staff_see_the_whole_street(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    await sign_in(client, org, "street-1")
    html = await page(client, "/figures?by=community")
    assert kpi(html, "total") == "6" and kpi(html, "response") == "60.0%"
    breakdown = chart_data(html)["breakdown"]
    assert isinstance(breakdown, dict)
    assert breakdown["labels"] == ["安居社区", "锦江社区"] and breakdown["total"] == [4, 2]
    weekly = chart_data(await page(client, "/figures?span=week&week=2026-W48"))["series"]
    assert isinstance(weekly, dict)
    assert weekly["labels"][-2:] == ["2026-W47", "2026-W48"] and weekly["total"][-2:] == [0, 6]


async def test_anonymous_visitors_get_the_login_page_not_figures(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    # (Accounts exist only for staff; a responder who is not staff is refused by the domain: test_insights.)
    await november_monday(service, org, clock)
    for path in ("/figures", "/hotspots", "/responders", "/figures/report.xlsx", "/figures/report.csv"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"].startswith("/login?next=")
        assert "66.7%" not in await response.text()


@pytest.mark.parametrize(
    "query",
    [
        "month=2026-13",
        "month=11-2026",
        "span=year",
        "span=week&week=2026-W60",
        "span=week&week=abc",
        "by=street",
        "by=<script>alert(1)</script>",
        "month=<script>alert(1)</script>",
        "month={{7*7}}",
        "month=1'%20OR%201=1--",
        "month=" + "9" * 100,
        "month=1900-01",  # a real month, but its chart would reach back before 1900
        "span=week&week=1999-W52",
    ],
)
async def test_malformed_parameters_are_a_400_page(
    client: Client, service: TicketService, org: Org, clock: ManualClock, query: str
) -> None:
    await november_monday(service, org, clock)
    await sign_in(client, org, "staff-a")
    for path in ("/figures", "/responders", "/figures/report.xlsx"):
        response = await client.get(f"{path}?{query}")
        if path != "/figures" and query.startswith(("span", "by")):
            assert response.status == 200  # these pages do not read span / by
            continue
        html = await response.text()
        assert response.status == 400, (path, query, html[:300])
        assert "请求有误" in html and "Traceback" not in html
        assert (
            "<script>alert(1)" not in html
            and "49" not in re.sub(r"<[^>]+>", "", html).split("请求有误", 1)[1]
        )
    hotspots = await client.get(f"/hotspots?{query}")
    assert hotspots.status == (400 if query == "span=year" else 200)  # it reads only span
    assert "<script>alert(1)" not in await hotspots.text()


async def test_the_xlsx_download_is_the_monthly_reports_rows(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    await sign_in(client, org, "staff-a")
    response = await client.get("/figures/report.xlsx?month=2026-11")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="minhu-report-2026-11.xlsx"'
    book = load_workbook(io.BytesIO(await response.read()))
    expected = await service.scoped_report(org["staff-a"], NOVEMBER)
    assert book.sheetnames == [s.title for s in expected.sections] + ["说明"]
    for section in expected.sections:
        rows = [list(r) for r in book[section.title].iter_rows(values_only=True)]
        assert rows[0] == [section.title, *HEADERS]
        assert [r[0] for r in rows[1:]] == [f.label for f in section.rows]
        for row, figures in zip(rows[1:], section.rows, strict=True):
            values = [c.value(figures) for c in REPORT_COLUMNS]
            assert row[1:] == [("—" if v is None else pytest.approx(v)) for v in values]
    community = {r[0]: r for r in book["社区"].iter_rows(values_only=True)}
    assert set(community) == {"社区", "安居社区", TOTAL_LABEL}  # nothing of 锦江
    assert community["安居社区"][1] == 4


async def test_the_csv_download_one_section_at_a_time(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    await sign_in(client, org, "street-1")
    expected = await service.scoped_report(org["street-1"], NOVEMBER)
    html = await page(client, "/figures")
    for section in expected.sections:
        assert f"/figures/report.csv?month=2026-11&amp;section={section.key}" in html
        response = await client.get(f"/figures/report.csv?month=2026-11&section={section.key}")
        assert response.status == 200
        body = await response.read()
        assert body.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        headers, table = section.table()
        assert rows == [headers, *table]
    first = await client.get("/figures/report.csv?month=2026-11")  # no section: the first one (街道)
    assert first.headers["Content-Disposition"] == 'attachment; filename="minhu-report-2026-11-street.csv"'
    assert (await client.get("/figures/report.csv?section=everything")).status == 400
    assert formatted(0.6, "rate") in (
        await (await client.get("/figures/report.csv?section=community")).text()
    )


async def test_the_hotspots_page_links_each_group_to_its_tickets(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    texts = ["3栋的电梯又坏了,老人上不了楼", "3号楼电梯停运两天了,请尽快修", "我们三栋电梯一直停着"]
    numbers = []
    for i, text in enumerate(texts):
        resident = await org.resident(f"lift{i}", compound="安居苑")
        numbers.append((await service.create_ticket(NewTicket(resident, "property", text))).number)
    stranger = await org.resident("script", compound="安居苑")
    await service.create_ticket(NewTicket(stranger, "environment", "<script>alert(1)</script> {{7*7}} 垃圾"))
    await sign_in(client, org, "staff-a")
    html = await page(client, "/hotspots")
    assert "安居第一网格 3栋:3 位居民反映同一物业服务与纠纷问题(电梯" in html
    for number in numbers:
        assert f'href="/tickets/{number}"' in html
    assert "2026-W48" in html and "物业服务与纠纷" in html
    assert "<script>alert(1)" not in html
    month = await page(client, "/hotspots?span=month")
    assert "2026-11" in month and "2026-10" in month
    await sign_in(client, org, "staff-j")
    assert "电梯" not in await page(client, "/hotspots")


async def test_the_responders_page(
    client: Client, service: TicketService, org: Org, clock: ManualClock
) -> None:
    await november_monday(service, org, clock)
    await sign_in(client, org, "staff-a")
    html = await page(client, "/responders?month=2026-11")
    row = re.search(r"<th scope=\"row\">刘洋</th>(.*?)</tr>", html, re.S)
    assert row, html
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
    # 网格员, on duty, nothing open of 5, 25 points, 2 tickets: 1/2 in time, both resolved, both rated well.
    assert cells[:9] == ["网格员", "在岗", "0 / 5", "25", "2", "50.0%", "100.0%", "100.0%", "3.0 小时"]
    assert "黄海" not in html  # 锦江's volunteer
    october = await page(client, "/responders?month=2026-10")
    october_row = re.search(r"<th scope=\"row\">刘洋</th>(.*?)</tr>", october, re.S)
    assert october_row
    # Load and points are today's; October's figures are empty (no rate, not 0 %).
    october_cells = re.findall(r"<td[^>]*>([^<]*)</td>", october_row.group(1))
    assert october_cells[:6] == ["网格员", "在岗", "0 / 5", "25", "0", "—"]
