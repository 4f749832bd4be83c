"""The monthly report (月调度): built from the metrics, written as CSV and XLSX, and `minhu report`."""

from __future__ import annotations

import asyncio
import csv
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app.settings import get_settings
from minhu.cli import app
from tests.conftest import FIXTURES, MONDAY_9AM, Org
from tests.test_metrics import NOVEMBER, at, november_monday
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.db import create_engine, session_factory, unit_of_work
from tickets.metrics import Period
from tickets.models import Rating
from tickets.org import load_org, parse_org
from tickets.report import MonthlyReport, build_monthly_report, render_table, render_text, write_report
from tickets.service import NewTicket, TicketService

HEADERS = [
    "工单数",
    "已受理",
    "已派单",
    "处理中",
    "已办结待评价",
    "已结案",
    "已撤销",
    "派单数",
    "按时响应",
    "响应率",
    "已解决",
    "解决率",
    "评价数",
    "满意",
    "基本满意",
    "不满意",
    "满意率",
    "综合满意度",
    "平均响应时长(小时)",
    "中位响应时长(小时)",
    "P90响应时长(小时)",
    "平均办结时长(小时)",
    "中位办结时长(小时)",
    "P90办结时长(小时)",
    "超期",
    "重开率",
]
# An empty row: every rate and duration is —.
NO_RATES = {h: "—" for h in HEADERS if h.endswith(("率", "(小时)")) or h == "综合满意度"}


async def monthly(service: TicketService, period: Period = NOVEMBER, **options: int) -> MonthlyReport:
    session: AsyncSession
    async with service.sessions() as session:
        return await build_monthly_report(session, period, now=at(16), catalogue=service.catalogue, **options)


def read_csv(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def sheet_rows(sheet: Worksheet) -> dict[str, dict[str, object]]:
    """{row label: {header: value}}."""
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    headers = [str(h) for h in values[0]]
    return {str(row[0]): dict(zip(headers, row, strict=True)) for row in values[1:]}


async def test_the_monthly_report_files(
    service: TicketService, org: Org, clock: ManualClock, tmp_path: Path
) -> None:
    await november_monday(service, org, clock)  # the six tickets worked out in test_metrics
    files = write_report(await monthly(service, top_responders=2), tmp_path / "out")
    names = sorted(p.name for p in files.all)
    assert names == [
        "minhu-report-2026-11-category.csv",
        "minhu-report-2026-11-community.csv",
        "minhu-report-2026-11-responder.csv",
        "minhu-report-2026-11-street.csv",
        "minhu-report-2026-11.xlsx",
    ]

    # CSV: by community, every community listed, then 合计; rates as percentages, — for no denominator.
    community = read_csv(tmp_path / "out" / "minhu-report-2026-11-community.csv")
    assert list(community[0]) == ["社区", *HEADERS]
    assert [(r["社区"], r["工单数"]) for r in community] == [
        ("安居社区", "4"),
        ("锦江社区", "2"),
        ("合计", "6"),
    ]
    anju, jinjiang, total = community
    assert (anju["响应率"], anju["解决率"], anju["满意率"], anju["综合满意度"]) == (
        "66.7%",  # 2/3
        "66.7%",  # 2/3
        "66.7%",  # 2/3
        "63.3%",  # 1.9/3
    )
    assert (anju["中位响应时长(小时)"], anju["P90响应时长(小时)"], anju["重开率"]) == ("2.0", "4.4", "33.3%")
    assert (jinjiang["满意率"], jinjiang["超期"], jinjiang["重开率"]) == ("—", "1", "0.0%")
    assert (total["响应率"], total["已撤销"], total["超期"], total["中位办结时长(小时)"]) == (
        "60.0%",
        "1",
        "1",
        "3.0",
    )

    # Every catalogue category is listed, the quiet ones with zeros and —.
    category = read_csv(tmp_path / "out" / "minhu-report-2026-11-category.csv")
    assert len(category) == len(service.catalogue.categories) + 1
    quiet = next(r for r in category if r["类别"] == "居家养老")
    assert (quiet["工单数"], quiet["响应率"], quiet["平均响应时长(小时)"]) == ("0", "—", "—")
    # Top 2 responders: 刘洋 (2 tickets), then among the four with 1 ticket 林峰, who resolved his.
    responder = read_csv(tmp_path / "out" / "minhu-report-2026-11-responder.csv")
    assert [r["接单人"] for r in responder] == ["刘洋", "林峰", "合计"]
    # One street: its row is the total.
    street = read_csv(tmp_path / "out" / "minhu-report-2026-11-street.csv")
    assert [(r["街道"], r["工单数"]) for r in street] == [("民安街道", "6")]

    # XLSX: a sheet per section and 说明; bold header; rates are numbers shown as percentages.
    book = load_workbook(tmp_path / "out" / "minhu-report-2026-11.xlsx")
    assert book.sheetnames == ["街道", "社区", "类别", "接单人", "说明"]
    sheet = book["社区"]
    assert [c.value for c in sheet[1]] == ["社区", *HEADERS]
    assert all(c.font.bold for c in sheet[1])
    rows = sheet_rows(sheet)
    assert rows["安居社区"]["工单数"] == 4
    assert rows["安居社区"]["响应率"] == pytest.approx(2 / 3)
    assert rows["安居社区"]["综合满意度"] == pytest.approx(1.9 / 3)
    assert rows["锦江社区"]["满意率"] == "—"
    assert rows["合计"]["P90响应时长(小时)"] == pytest.approx(4.1)
    rate_cell = sheet.cell(row=2, column=HEADERS.index("响应率") + 2)
    assert rate_cell.number_format == "0.0%"
    hours_cell = sheet.cell(row=2, column=HEADERS.index("中位办结时长(小时)") + 2)
    assert hours_cell.number_format == "0.0" and hours_cell.value == pytest.approx(4.5)
    assert sheet.cell(row=4, column=1).value == "合计" and sheet.cell(row=4, column=1).font.bold
    assert book["说明"]["B1"].value == "2026-11"


async def test_the_printed_table(service: TicketService, org: Org, clock: ManualClock) -> None:
    await november_monday(service, org, clock)
    text = render_text(await monthly(service))
    assert "民呼我应 月调度 2026-11 (2026-11-01 至 2026-11-30" in text
    for title in ("【街道】", "【社区】", "【类别】", "【接单人】"):
        assert title in text
    lines = text.splitlines()
    header = lines[lines.index("【社区】") + 1]
    for column in (
        "社区",
        "工单数",
        "响应率",
        "解决率",
        "满意率",
        "综合满意度",
        "中位响应时长",
        "超期",
        "重开率",
    ):
        assert column in header
    anju = next(line for line in lines if line.startswith("安居社区"))
    assert anju.split() == [
        "安居社区",
        "4",
        "66.7%",
        "66.7%",
        "66.7%",
        "63.3%",
        "2.7",
        "2.0",
        "4.5",
        "0",
        "33.3%",
    ]


async def test_a_month_without_tickets_still_reports(
    service: TicketService, org: Org, clock: ManualClock, tmp_path: Path
) -> None:
    await november_monday(service, org, clock)
    report = await monthly(service, Period.month(2026, 10))
    text = render_text(report)
    assert "安居社区" in text and "—" in text
    files = write_report(report, tmp_path)
    community = read_csv(files.csv[1])
    assert [(r["社区"], r["工单数"], r["响应率"]) for r in community] == [
        ("安居社区", "0", "—"),
        ("锦江社区", "0", "—"),
        ("合计", "0", "—"),
    ]
    assert read_csv(files.csv[3]) == [{"接单人": "合计", **dict.fromkeys(HEADERS, "0"), **NO_RATES}]
    assert sheet_rows(load_workbook(files.xlsx)["社区"])["合计"]["满意率"] == "—"


def test_tables_align_chinese_by_display_width() -> None:
    table = render_table(["社区", "工单数"], [["安居社区", "4"], ["合计", "12"]])
    assert table.splitlines() == [
        "社区      工单数",
        "--------  ------",
        "安居社区       4",
        "合计          12",
    ]


# ---------------------------------------------------------------------------------------- minhu report


@pytest.fixture
def cli_db(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite database that `minhu` opens through DATABASE_URL."""
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


async def _three_november_tickets(url: str) -> None:
    """安居: one ticket accepted in 1h and closed 满意, one never accepted; 锦江: one cancelled.
    Created on Monday 2 November, so the CLI's real clock always finds the unaccepted one overdue."""
    engine = create_engine(url)
    try:
        clock = ManualClock(MONDAY_9AM - timedelta(weeks=3))
        service = TicketService(session_factory(engine), clock=clock, catalogue=Catalogue.load())
        async with unit_of_work(service.sessions) as session:
            await load_org(session, parse_org(FIXTURES / "org.yml"), service.catalogue)
        org = Org(service, {})
        anju = await org.resident("a", compound="安居苑")
        jinjiang = await org.resident("j", community="jinjiang")
        done = await service.create_ticket(NewTicket(anju, "facility_repair", "路灯坏了"))
        await service.create_ticket(NewTicket(anju, "facility_repair", "井盖松了"))
        gone = await service.create_ticket(NewTicket(jinjiang, "certificate", "开证明"))
        await service.cancel(gone.number, jinjiang)
        clock.advance(timedelta(hours=1))
        await service.accept(done.number, done.assignee_id or 0)
        await service.resolve(done.number, done.assignee_id or 0, "修好了")
        await service.rate(done.number, anju, contacted=True, solved=True, rating=Rating.SATISFIED)
    finally:
        await engine.dispose()


def test_minhu_report_prints_and_writes(cli_db: str, tmp_path: Path) -> None:
    asyncio.run(_three_november_tickets(cli_db))
    result = CliRunner().invoke(app, ["report", "--month", "2026-11", "--out", str(tmp_path / "monthly")])
    assert result.exit_code == 0, result.output
    assert "民呼我应 月调度 2026-11" in result.output
    anju = next(line for line in result.output.splitlines() if line.startswith("安居社区"))
    # 2 tickets, both due, 1 accepted in time → 50.0%, 1 closed of 2 received → 50.0%, 1 满意 of 1 rated.
    assert anju.split()[:6] == ["安居社区", "2", "50.0%", "50.0%", "100.0%", "100.0%"]
    jinjiang = next(line for line in result.output.splitlines() if line.startswith("锦江社区"))
    assert jinjiang.split()[:3] == ["锦江社区", "1", "—"]  # only a cancelled ticket: no rates
    assert "已写入" in result.output
    written = sorted(p.name for p in (tmp_path / "monthly").iterdir())
    assert written == [
        "minhu-report-2026-11-category.csv",
        "minhu-report-2026-11-community.csv",
        "minhu-report-2026-11-responder.csv",
        "minhu-report-2026-11-street.csv",
        "minhu-report-2026-11.xlsx",
    ]
    for name in written:
        assert str(tmp_path / "monthly" / name) in result.output


def test_minhu_report_of_an_empty_month_writes_into_reports_by_default(cli_db: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--month", "2026-10"])  # no tickets, no org even
    assert result.exit_code == 0, result.output
    assert "合计" in result.output and "—" in result.output
    assert (tmp_path / "reports" / "minhu-report-2026-10.xlsx").is_file()
    total = read_csv(tmp_path / "reports" / "minhu-report-2026-10-community.csv")
    assert [(r["社区"], r["工单数"], r["响应率"]) for r in total] == [("合计", "0", "—")]


@pytest.mark.parametrize("month", ["2026-13", "abc", "2026-11-05", ""])
def test_minhu_report_refuses_a_bad_month(cli_db: str, tmp_path: Path, month: str) -> None:
    result = CliRunner().invoke(app, ["report", "--month", month])
    assert result.exit_code == 1
    assert "YYYY-MM" in result.output
    assert not (tmp_path / "reports").exists()


def test_minhu_report_refuses_an_unmigrated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["report", "--month", "2026-11", "--out", str(tmp_path / "out")])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "minhu db upgrade" in result.output
    assert not (tmp_path / "out").exists()


def test_minhu_report_needs_a_month(cli_db: str) -> None:
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 2  # usage error
    assert "--month" in result.output


@pytest.mark.postgres
def test_minhu_report_on_postgresql(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI reads PostgreSQL in one REPEATABLE READ snapshot (the shared test database may hold
    other tests' tickets, so only the run itself is checked)."""
    monkeypatch.setenv("DATABASE_URL", pg_database)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["report", "--month", "2026-11", "--out", str(tmp_path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "【社区】" in result.output
    assert (tmp_path / "minhu-report-2026-11.xlsx").is_file()
