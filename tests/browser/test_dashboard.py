"""The dashboard in a real browser: the real aiohttp app (dashboard.app.make_app) on a real loopback port over
the test service on PostgreSQL (the database the dashboard runs on in production; the session's database is
created once and emptied per test), with the test org, the injected clock and real accounts signed in
through the login form.

Each page is photographed at desk and phone width and checked with axe-core (no serious or critical
violation)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from yarl import URL

from dashboard.app import make_app
from tests.browser.conftest import ROOT, Shot, assert_accessible, serve
from tests.conftest import MONDAY_9AM, Org, write_test_key_file
from tickets.clock import ManualClock
from tickets.models import Status, Ticket
from tickets.service import NewTicket, TicketService

# PostgreSQL only: the browser is the slow part, once is enough (the dashboard's own tests cover SQLite).
pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

SECRET = bytes(range(32, 64))
PASSWORD = "安居苑-蓝天-2026"
PHONE = "13912345678"
# username → (responder code in tests/fixtures/org.yml, admin?)
ACCOUNTS = {
    "zhouli": ("staff-a", False),  # 周丽, community staff of 安居社区
    "linfeng": ("staff-j", False),  # 林峰, community staff of 锦江社区
    "hezhuren": ("street-1", True),  # 何主任, street staff and admin
}
LAMP = "3栋门口的路灯坏了一个多星期,晚上老人下楼看不见路"


@pytest.fixture
async def accounts(org: Org) -> dict[str, int]:
    """The three staff accounts; username → responder id."""
    for username, (code, is_admin) in ACCOUNTS.items():
        await org.service.add_account(username, org[code], PASSWORD, is_admin=is_admin)
    return {username: org[code] for username, (code, _) in ACCOUNTS.items()}


@pytest.fixture
async def dashboard(
    service: TicketService, clock: ManualClock, accounts: dict[str, int]
) -> AsyncIterator[str]:
    """The dashboard's base URL; live updates every 50 ms so the tests do not wait."""
    async with serve(make_app(service, secret=SECRET, clock=clock, live_every=0.05)) as base:
        yield base


async def log_in(page: Any, base: str, username: str, next_path: str = "/") -> None:
    """Through the login form, as staff do; lands on `next_path`."""
    await page.goto(f"{base}/login?next={next_path}")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{base}{next_path}")


async def waiting_lamp_ticket(org: Org) -> Ticket:
    """A resident's request that waits for staff: both grid workers of 安居社区 are off duty."""
    for code in ("grid-a1", "grid-a2"):
        await org.service.set_on_duty(org[code], False)
    resident = await org.resident("r1")
    ticket = await org.service.create_ticket(
        NewTicket(resident, "facility_repair", LAMP, compound="安居苑", address="3栋2单元", phone=PHONE)
    )
    assert ticket.status == Status.CREATED
    return ticket


async def check_page(page: Any, shot: Shot, name: str) -> None:
    await shot(page, name)
    await assert_accessible(page)


# ------------------------------------------------------------------------------------------ the queue


async def test_login_then_a_new_request_appears_in_the_open_queue_and_staff_dispatch_it(
    page: Any, dashboard: str, org: Org, shot: Shot
) -> None:
    await page.goto(dashboard + "/")
    here = URL(page.url)  # anonymous: the login page first, which comes back here
    assert (here.path, here.query.get("next")) == ("/login", "/")
    await check_page(page, shot, "login")
    await log_in(page, dashboard, "zhouli")
    assert await page.get_by_role("heading", name="工单队列", level=1).is_visible()
    await check_page(page, shot, "queue-empty")

    ticket = await waiting_lamp_ticket(org)  # while the page is open: no reload below
    row_link = page.get_by_role("link", name=ticket.number)
    await row_link.wait_for(state="visible", timeout=5_000)
    assert page.url == dashboard + "/"
    await check_page(page, shot, "queue")

    await row_link.click()
    await page.wait_for_url(f"{dashboard}/tickets/{ticket.number}")
    assert await page.get_by_text(LAMP).is_visible()
    await check_page(page, shot, "ticket")

    await page.get_by_label("派单给").select_option(label="刘洋")
    await page.get_by_role("button", name="派单", exact=True).click()
    await page.wait_for_url(f"{dashboard}/tickets/{ticket.number}")
    event = page.locator("ol.history li").filter(has_text="派单").filter(has_text="派给:刘洋")
    await event.wait_for()
    assert "周丽" in await event.inner_text()
    after = await org.service.ticket(ticket.number, org.service_actor)
    assert (after.status, after.assignee_id) == (Status.DISPATCHED, org["grid-a1"])
    await check_page(page, shot, "ticket-dispatched")


# ------------------------------------------------------------------------------------------ every page


async def test_every_page_at_desk_and_phone_width_passes_axe(
    page: Any, dashboard: str, org: Org, clock: ManualClock, shot: Shot
) -> None:
    """The street's admin (who sees every page, /reveals too) over some history: each page answers 200,
    is photographed and has no serious or critical accessibility violation."""
    await closed_tickets(org, clock, 2)
    ticket = await waiting_lamp_ticket(org)
    await log_in(page, dashboard, "hezhuren")
    problems = []  # every page is visited, so one run names every page that fails
    for name, path in [
        ("queue", "/"),
        ("ticket", f"/tickets/{ticket.number}"),
        ("figures", "/figures"),
        ("figures-week", "/figures?span=week"),
        ("hotspots", "/hotspots"),
        ("responders", "/responders"),
        ("reveals", "/reveals"),
    ]:
        response = await page.goto(dashboard + path)
        if response is None or response.status != 200:
            problems.append(f"{path}: HTTP {response and response.status}")
            continue
        await page.wait_for_load_state("networkidle")
        if name.startswith("figures"):
            await page.locator('[data-ready="1"]').first.wait_for()
        await shot(page, name)
        try:
            await assert_accessible(page)
        except AssertionError as failure:
            problems.append(str(failure))
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------ the phone


@pytest.mark.parametrize("viewport", ["desk"], indirect=True)
async def test_the_phone_reveal_is_logged_and_the_admin_reads_the_log(
    page: Any, browser: Any, dashboard: str, org: Org, shot: Shot
) -> None:
    ticket = await waiting_lamp_ticket(org)
    await log_in(page, dashboard, "zhouli", f"/tickets/{ticket.number}")
    content = await page.content()
    assert PHONE not in content  # masked until asked for
    await page.get_by_role("button", name="显示电话").click()
    await page.get_by_text(PHONE).first.wait_for()
    await shot(page, "revealed")

    admin = await (await browser.new_context(locale="zh-CN")).new_page()
    try:
        await log_in(admin, dashboard, "hezhuren", "/reveals")
        log = admin.get_by_role("table")
        await log.get_by_text(ticket.number).wait_for()
        row = log.get_by_role("row").filter(has_text=ticket.number)
        assert "周丽" in await row.inner_text()
        assert PHONE not in await admin.content()  # the log says who and when, never the number
        await check_page(admin, shot, "reveals")
    finally:
        await admin.context.close()


async def test_staff_of_another_community_cannot_open_the_ticket(
    page: Any, dashboard: str, org: Org, shot: Shot
) -> None:
    ticket = await waiting_lamp_ticket(org)
    await log_in(page, dashboard, "linfeng")
    assert not await page.get_by_role("link", name=ticket.number).count()  # not in 锦江's queue
    response = await page.goto(f"{dashboard}/tickets/{ticket.number}")
    assert response is not None and response.status in (403, 404)  # the domain: others' look not found
    content = await page.content()
    assert LAMP not in content and "3栋2单元" not in content and PHONE[-4:] not in content
    await check_page(page, shot, "refused")


# ------------------------------------------------------------------------------------------ figures


async def closed_tickets(org: Org, clock: ManualClock, count: int) -> list[Ticket]:
    """`count` requests of November 2026, dispatched, accepted and resolved by 刘洋."""
    done = []
    for i in range(count):
        resident = await org.resident(f"f{i}")
        ticket = await org.service.create_ticket(
            NewTicket(resident, "facility_repair", f"{i + 1}号楼路灯不亮了,晚上很黑", compound="安居苑")
        )
        if ticket.assignee_id != org["grid-a1"]:
            await org.service.reassign(ticket.number, org["staff-a"], org["grid-a1"], "熟悉情况")
        await org.service.accept(ticket.number, org["grid-a1"])
        clock.advance(timedelta(hours=2))
        done.append(await org.service.resolve(ticket.number, org["grid-a1"], "已经换好灯泡"))
    return done


async def test_the_figures_page_draws_its_charts_with_data(
    page: Any, dashboard: str, org: Org, clock: ManualClock, shot: Shot
) -> None:
    await closed_tickets(org, clock, 3)
    await waiting_lamp_ticket(org)
    await log_in(page, dashboard, "zhouli", "/figures")
    charts = page.locator('[data-ready="1"]')
    await charts.first.wait_for()
    assert await charts.count() >= 2
    for i in range(await charts.count()):
        chart = charts.nth(i)
        box = await chart.locator("canvas").first.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
        series = await chart.evaluate(
            "el => (echarts.getInstanceByDom(el).getOption().series || []).map(s => s.data || [])"
        )
        assert any(len(data) > 0 for data in series), f"chart {i} has no data"
    await check_page(page, shot, "figures")


def sheets(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every sheet's rows as values, without the 说明 sheet's 生成时间 (the moment each was made)."""
    book = load_workbook(path, read_only=True)
    return {
        sheet.title: [row for row in sheet.iter_rows(values_only=True) if row[0] != "生成时间"]
        for sheet in book.worksheets
    }


async def minhu_report(db_url: str, month: str, out: Path) -> Path:
    """`minhu report --month <month> --out <out>` run as a command on the test database; its XLSX file."""
    write_test_key_file(out)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from minhu.cli import main; sys.argv[0] = 'minhu'; main()",
        "report",
        "--month",
        month,
        "--out",
        str(out),
        env={**os.environ, "DATABASE_URL": db_url, "MINHU_DATA_DIR": str(out), "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return out / f"minhu-report-{month}.xlsx"


@pytest.mark.parametrize("viewport", ["desk"], indirect=True)
async def test_the_xlsx_download_is_the_monthly_report(
    page: Any, dashboard: str, org: Org, clock: ManualClock, db_url: str, tmp_path: Path
) -> None:
    await closed_tickets(org, clock, 3)  # all resolved: nothing in the report depends on "now"
    await log_in(page, dashboard, "hezhuren", "/figures")  # the street's staff: the whole report
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="XLSX").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    downloaded = tmp_path / "downloaded.xlsx"
    await download.save_as(downloaded)

    expected = sheets(await minhu_report(db_url, "2026-11", tmp_path / "cli"))
    got = sheets(downloaded)
    assert got == expected
    assert any(row[0] == "公共设施维修" and row[1] == 3 for row in got["类别"])


# ------------------------------------------------------------------------------------------ README pictures

SCENE = [  # (category, compound, text) of the residents' requests in the pictures
    ("facility_repair", "安居苑", "3栋门口的路灯坏了一个多星期,晚上老人下楼看不见路"),
    ("environment", "安居苑", "小区垃圾站三天没有清运,气味很大"),
    ("property", "幸福家园", "电梯坏了三天了物业一直不来修"),
    ("eldercare", "幸福家园", "家里老人独居,想预约上门助餐"),
    ("neighbor_dispute", "安居苑", "楼上每天深夜装修,噪音很大,沟通过没有效果"),
    ("certificate", "幸福家园", "孩子入学要开居住证明,需要带哪些材料"),
]


async def scene(org: Org, clock: ManualClock) -> None:
    """Three months of resolved and rated requests, then this Monday's open ones (one long overdue)."""
    service = org.service
    ratings = ["satisfied", "satisfied", "basic", "satisfied"]  # 不满意 would reopen it
    for month, day in ((9, 8), (10, 13), (11, 3)):
        for i, (category, compound, text) in enumerate(SCENE * 2):
            clock.set(MONDAY_9AM.replace(month=month, day=day + i % 5, hour=9 + i % 6))
            resident = await org.resident(f"m{month}-{i}")
            ticket = await service.create_ticket(NewTicket(resident, category, text, compound=compound))
            worker = ticket.assignee_id
            if worker is None:  # an offer (抢单) or nobody: staff send it to the grid's worker
                worker = org["grid-a1"] if compound == "安居苑" else org["grid-a2"]
                if ticket.status == Status.CREATED:
                    await service.dispatch(ticket.number, org["staff-a"], worker, "人工派单")
                else:
                    await service.reassign(ticket.number, org["staff-a"], worker, "熟悉情况")
            clock.advance(timedelta(minutes=20 + 40 * (i % 4)))
            await service.accept(ticket.number, worker)
            clock.advance(timedelta(hours=3 + 9 * (i % 5)))
            await service.resolve(ticket.number, worker, "已经处理好了")
            if i % 3:
                await service.rate(
                    ticket.number, resident, contacted=True, solved=True, rating=ratings[i % 4]
                )
    clock.set(MONDAY_9AM - timedelta(days=6))
    late = await org.resident("late")
    await service.create_ticket(NewTicket(late, "facility_repair", "井盖松动,踩上去会晃", compound="安居苑"))
    for i, (category, compound, text) in enumerate(SCENE):
        clock.set(MONDAY_9AM + timedelta(minutes=25 * i))
        resident = await org.resident(f"now-{i}")
        await service.create_ticket(NewTicket(resident, category, text, compound=compound, phone=PHONE))
    clock.set(MONDAY_9AM + timedelta(hours=3))


async def test_the_readme_pictures_of_the_queue_and_the_figures(
    page: Any, dashboard: str, org: Org, clock: ManualClock, shot: Shot
) -> None:
    """The pictures docs/screenshots/ holds (copied from test-output/screenshots/ by hand when pages change):
    the queue and the figures page of 安居社区's staff over three months of requests."""
    await scene(org, clock)
    await log_in(page, dashboard, "zhouli")
    assert await page.locator("#queue tbody tr").count() >= len(SCENE)
    await check_page(page, shot, "queue")
    await page.goto(dashboard + "/figures?span=month&month=2026-11")
    charts = page.locator('[data-ready="1"]')
    await charts.first.wait_for()
    await page.wait_for_timeout(1000)  # ECharts' entry animation
    await check_page(page, shot, "figures")
