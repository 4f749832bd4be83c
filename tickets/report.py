"""The monthly report (月调度): the 民呼我应 figures of one month by street, community, category and top
responders, as a text table for the terminal and as CSV and XLSX files for the office.

Every figure comes from tickets.metrics, where the definitions are; this module only arranges and formats.
Streets, communities and categories are listed even when they had no tickets that month (a quiet
community is information too); responders are the top N by tickets, then the tickets nobody holds.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets.catalogue import Catalogue
from tickets.metrics import TOTAL_LABEL, Breakdown, Dimension, LoopFigures, Period, Slice, figures
from tickets.models import STATUS_LABELS, Community, Status, Street

NONE = "—"  # a rate without a denominator, a duration without tickets
DEFAULT_TOP_RESPONDERS = 10

Kind = Literal["count", "rate", "hours"]


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind
    value: Callable[[LoopFigures], int | float | None]
    printed: bool = False  # shown in the terminal table too (the files always have every column)
    short: str = ""  # the terminal's header, when narrower than the files' one

    @property
    def printed_header(self) -> str:
        return self.short or self.header


def _hours(pick: Callable[[LoopFigures], timedelta | None]) -> Callable[[LoopFigures], float | None]:
    def value(f: LoopFigures) -> float | None:
        elapsed = pick(f)
        return None if elapsed is None else elapsed.total_seconds() / 3600

    return value


def _status(status: Status) -> Column:
    return Column(STATUS_LABELS[status], "count", lambda f: f.counts.by_status[status])


COLUMNS: tuple[Column, ...] = (
    Column("工单数", "count", lambda f: f.total, printed=True),
    *(_status(s) for s in Status),
    Column("派单数", "count", lambda f: f.counts.dispatched),
    Column("按时响应", "count", lambda f: f.counts.responded_in_time),
    Column("响应率", "rate", lambda f: f.response_rate, printed=True),
    Column("已解决", "count", lambda f: f.counts.resolved),
    Column("解决率", "rate", lambda f: f.resolution_rate, printed=True),
    Column("评价数", "count", lambda f: f.counts.rated),
    Column("满意", "count", lambda f: f.counts.satisfied),
    Column("基本满意", "count", lambda f: f.counts.basic),
    Column("不满意", "count", lambda f: f.counts.unsatisfied),
    Column("满意率", "rate", lambda f: f.satisfaction_rate, printed=True),
    Column("综合满意度", "rate", lambda f: f.weighted_satisfaction, printed=True),
    Column("平均响应时长(小时)", "hours", _hours(lambda f: f.time_to_accept.mean), True, "平均响应时长"),
    Column("中位响应时长(小时)", "hours", _hours(lambda f: f.time_to_accept.median), True, "中位响应时长"),
    Column("P90响应时长(小时)", "hours", _hours(lambda f: f.time_to_accept.p90)),
    Column("平均办结时长(小时)", "hours", _hours(lambda f: f.time_to_resolve.mean)),
    Column("中位办结时长(小时)", "hours", _hours(lambda f: f.time_to_resolve.median), True, "中位办结时长"),
    Column("P90办结时长(小时)", "hours", _hours(lambda f: f.time_to_resolve.p90)),
    Column("超期", "count", lambda f: f.overdue_now, printed=True),
    Column("重开率", "rate", lambda f: f.reopen_rate, printed=True),
)


def formatted(value: int | float | None, kind: Kind) -> str:
    """How a figure reads in the table and the CSV: 66.7%, 2.5 (hours), 12, or — when there is none."""
    if value is None:
        return NONE
    if kind == "rate":
        return f"{value:.1%}"
    if kind == "hours":
        return f"{value:.1f}"
    return str(value)


@dataclass(frozen=True)
class Section:
    key: str  # file-name safe: street, community, category, responder
    title: str  # 街道, 社区, 类别, 接单人
    rows: list[LoopFigures]  # the last one is the 合计 row when the section has one

    def table(self, *, printed_only: bool = False) -> tuple[list[str], list[list[str]]]:
        columns = [c for c in COLUMNS if c.printed or not printed_only]
        headers = [self.title, *(c.printed_header if printed_only else c.header for c in columns)]
        body = [[f.label, *(formatted(c.value(f), c.kind) for c in columns)] for f in self.rows]
        return headers, body


@dataclass(frozen=True)
class MonthlyReport:
    period: Period
    timezone: str
    generated_at: datetime  # the "now" that decided what is overdue
    total: LoopFigures
    sections: list[Section]

    @property
    def name(self) -> str:
        return f"minhu-report-{self.period.label or self.period.start.date().isoformat()}"


# ------------------------------------------------------------------------------------------- building


def _with_zero_rows(breakdown: Breakdown, everything: Sequence[tuple[int | str, str]]) -> list[LoopFigures]:
    """The breakdown's rows, in `everything`'s order, with an empty row for each value without tickets;
    rows not in `everything` (e.g. a category since removed from the catalogue) follow."""
    found = {row.key: row for row in breakdown.rows}
    rows = [found.pop(key) if key in found else LoopFigures.empty(key, label) for key, label in everything]
    return rows + list(found.values())


def _top_responders(breakdown: Breakdown, top: int) -> list[LoopFigures]:
    """The `top` responders with most tickets (ties: more resolved first), then the unassigned row."""
    held = [r for r in breakdown.rows if r.key is not None]
    held.sort(key=lambda r: (-r.total, -r.counts.resolved, r.label, str(r.key)))
    unassigned = [r for r in breakdown.rows if r.key is None]
    return held[:top] + unassigned


async def build_monthly_report(
    session: AsyncSession,
    period: Period,
    *,
    now: datetime,
    catalogue: Catalogue | None = None,
    top_responders: int = DEFAULT_TOP_RESPONDERS,
    street_id: int | None = None,
    community_id: int | None = None,
) -> MonthlyReport:
    """月调度 for the period: a section by street, by community, by category and by top responders.
    `street_id` / `community_id` cut it to one street or one community (the dashboard's scope); a
    community's report has no street section (its one row would be the community again)."""
    catalogue = catalogue or Catalogue.load()
    where = Slice(street_id=street_id, community_id=community_id)

    async def by(dimension: Dimension) -> Breakdown:
        return await figures(session, period, now=now, where=where, group_by=dimension, catalogue=catalogue)

    streets = await by(Dimension.STREET)
    communities = await by(Dimension.COMMUNITY)
    categories = await by(Dimension.CATEGORY)
    responders = await by(Dimension.RESPONDER)

    street_query = select(Street).order_by(Street.id)
    community_query = select(Community).order_by(Community.id)
    if street_id is not None:
        street_query = street_query.where(Street.id == street_id)
        community_query = community_query.where(Community.street_id == street_id)
    if community_id is not None:
        community_query = community_query.where(Community.id == community_id)
    all_streets = [(s.id, s.name) for s in await session.scalars(street_query)]
    all_communities = [(c.id, c.name) for c in await session.scalars(community_query)]
    street_rows = _with_zero_rows(streets, all_streets)
    total = communities.total
    # One street: its row is the total. Several: each street, then 合计.
    street_section = Section(
        "street", Dimension.STREET.label, street_rows if len(street_rows) == 1 else [*street_rows, total]
    )
    sections = [
        *([street_section] if community_id is None else []),
        Section(
            "community", Dimension.COMMUNITY.label, [*_with_zero_rows(communities, all_communities), total]
        ),
        Section(
            "category",
            Dimension.CATEGORY.label,
            [*_with_zero_rows(categories, [(c.code, c.name) for c in catalogue.categories.values()]), total],
        ),
        Section(
            "responder", Dimension.RESPONDER.label, [*_top_responders(responders, top_responders), total]
        ),
    ]
    return MonthlyReport(period, catalogue.timezone, now, total, sections)


# ----------------------------------------------------------------------------------------- the table


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int, *, left: bool) -> str:
    gap = " " * (width - _width(text))
    return text + gap if left else gap + text


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned table: first column left, figures right."""
    widths = [max(_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(_pad(c, w, left=i == 0) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def _span(report: MonthlyReport) -> str:
    start = _local(report.period.start, report.timezone)
    last = _local(report.period.end, report.timezone) - timedelta(microseconds=1)
    return f"{start:%Y-%m-%d} 至 {last:%Y-%m-%d}"


def render_text(report: MonthlyReport) -> str:
    """The report as the terminal shows it."""
    generated = _local(report.generated_at, report.timezone)
    parts = [
        f"民呼我应 月调度 {report.period.label} ({_span(report)},{report.timezone};"
        f"超期统计截至 {generated:%Y-%m-%d %H:%M})"
    ]
    for section in report.sections:
        headers, body = section.table(printed_only=True)
        parts.append(f"\n【{section.title}】\n{render_table(headers, body)}")
    parts.append(f"\n时长单位:小时。{NONE} 表示没有可计算的工单。完整列见 CSV / XLSX。")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------- the files


@dataclass(frozen=True)
class ReportFiles:
    csv: list[Path]
    xlsx: Path

    @property
    def all(self) -> list[Path]:
        return [*self.csv, self.xlsx]


def write_csv(report: MonthlyReport, out_dir: Path) -> list[Path]:
    """One CSV per section, UTF-8 with a BOM so Excel reads the Chinese right."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for section in report.sections:
        path = out_dir / f"{report.name}-{section.key}.csv"
        headers, body = section.table()
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(headers)
            writer.writerows(body)
        written.append(path)
    return written


PERCENT = "0.0%"
HOURS = "0.0"
DEFINITIONS = (
    ("统计范围", "当月(北京时间)受理的工单;已撤销工单只计入工单数与状态,不计入各项比率"),
    ("响应率", "按时接单的工单 ÷ 已派单的工单"),
    ("解决率", "当前已办结或已结案的工单 ÷ 已派单的工单"),
    ("满意率", "(满意 + 基本满意) ÷ 已评价的工单(以最近一次评价为准)"),
    ("综合满意度", "(满意 + 0.9 × 基本满意) ÷ 已评价的工单"),
    ("响应时长", "首次接单时间 − 首次派单时间(自然时长,小时)"),
    ("办结时长", "办结时间 − 受理时间(自然时长,小时;重开后以最近一次办结为准)"),
    ("中位数 / P90", "线性插值(与 PostgreSQL percentile_cont 相同)"),
    ("超期", "报表生成时仍未办结、未暂停且已过响应或办结期限的工单"),
    ("重开率", "被重新办理过的工单 ÷ 办结过至少一次的工单"),
    ("接单人", "工单当前的接单人(改派、升级后随工单转移)"),
    (NONE, "分母为 0,无法计算"),
)


def write_xlsx(report: MonthlyReport, out_dir: Path) -> Path:
    """One sheet per section (header bold, rates as percentages, hours to one decimal), and 说明."""
    out_dir.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    first = book.active
    if first is not None:
        book.remove(first)
    bold = Font(bold=True)
    for section in report.sections:
        sheet = book.create_sheet(section.title)
        sheet.append([section.title, *(c.header for c in COLUMNS)])
        for figures_row in section.rows:
            values = [c.value(figures_row) for c in COLUMNS]
            sheet.append([figures_row.label, *(NONE if v is None else v for v in values)])
        for cell in sheet[1]:
            cell.font = bold
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for row in sheet.iter_rows(min_row=2):
            if row[0].value == TOTAL_LABEL:
                for cell in row:
                    cell.font = bold
            for column, cell in zip(COLUMNS, row[1:], strict=True):
                if cell.value == NONE:
                    cell.alignment = Alignment(horizontal="right")
                elif column.kind == "rate":
                    cell.number_format = PERCENT
                elif column.kind == "hours":
                    cell.number_format = HOURS
        sheet.column_dimensions["A"].width = 18
        for i in range(2, len(COLUMNS) + 2):
            sheet.column_dimensions[get_column_letter(i)].width = 11
        sheet.freeze_panes = "B2"

    notes = book.create_sheet("说明")
    generated = _local(report.generated_at, report.timezone)
    notes.append(["民呼我应 月调度", report.period.label])
    notes.append(["统计期间", f"{_span(report)}({report.timezone})"])
    notes.append(["生成时间", f"{generated:%Y-%m-%d %H:%M}"])
    notes.append([])
    for term, meaning in DEFINITIONS:
        notes.append([term, meaning])
    for cell in notes["A"]:
        cell.font = bold
    notes.column_dimensions["A"].width = 16
    notes.column_dimensions["B"].width = 80

    path = out_dir / f"{report.name}.xlsx"
    book.save(path)
    return path


def write_report(report: MonthlyReport, out_dir: Path) -> ReportFiles:
    return ReportFiles(csv=write_csv(report, out_dir), xlsx=write_xlsx(report, out_dir))
