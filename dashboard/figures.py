"""数据 · 民呼我应 (/figures): the three rates, volumes and times of the staff's scope for a week or a month,
broken down by 社区 / 网格 / 类别 / 人员, with ECharts charts (data as JSON in the page, drawn by
static/figures.js) and a table beside each chart; and the monthly report (`minhu report`, cut to the
staff's scope) as XLSX (/figures/report.xlsx) or CSV (/figures/report.csv).

The CSV is one file per section (?section=community|category|responder|street), not a zip: each file is a
plain table that Excel or WPS opens with a double click (a zip must be unpacked first, and several tables
in one CSV break every spreadsheet import). The page links every section; the XLSX has them all as sheets.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from dashboard.auth import signed_in
from dashboard.errors import bad_input
from dashboard.keys import SERVICE
from dashboard.periods import FORMATS, chosen, hours_number, month_of, param, pct_number, timezone_of
from dashboard.render import render
from tickets import report, trends
from tickets.insights import FiguresView
from tickets.metrics import Dimension, LoopFigures

ECHARTS = "/static/vendor/echarts-6.1.0/echarts.min.js"
TABS = (Dimension.COMMUNITY, Dimension.GRID, Dimension.CATEGORY, Dimension.RESPONDER)
TAB_LABELS = {
    Dimension.COMMUNITY: "社区",
    Dimension.GRID: "网格",
    Dimension.CATEGORY: "类别",
    Dimension.RESPONDER: "人员",
}
HISTORY = 6  # weeks or months in the charts over time


def dimension_of(request: web.Request, default: Dimension) -> Dimension:
    value = param(request, "by", default.value)
    for tab in TABS:
        if tab.value == value:
            return tab
    raise bad_input("分组只能是 社区(community)、网格(grid)、类别(category)或 人员(responder)。")


def _rates(f: LoopFigures) -> dict[str, float | None]:
    return {
        "response_rate": pct_number(f.response_rate),
        "resolution_rate": pct_number(f.resolution_rate),
        "satisfaction_rate": pct_number(f.satisfaction_rate),
    }


def chart_data(view: FiguresView) -> dict[str, Any]:
    """What static/figures.js draws: plain lists, rates in percent, times in hours."""
    series = view.series
    return {
        "series": {
            "labels": [p.period.label for p in series],
            "total": [p.figures.total for p in series],
            "resolved": [p.figures.counts.resolved for p in series],
            **{key: [_rates(p.figures)[key] for p in series] for key in _rates(view.figures)},
        },
        "buckets": {
            "labels": [b.label for b in trends.BUCKETS],
            "first_response": list(view.first_response.counts),
            "resolution": list(view.resolution.counts),
        },
        "breakdown": {
            "dimension": TAB_LABELS.get(view.breakdown.dimension, view.breakdown.dimension.label),
            "labels": [r.label for r in view.breakdown.rows],
            "total": [r.total for r in view.breakdown.rows],
            "resolved": [r.counts.resolved for r in view.breakdown.rows],
            "median_accept_hours": [hours_number(r.time_to_accept.median) for r in view.breakdown.rows],
        },
    }


async def page(request: web.Request) -> web.Response:
    user = await signed_in(request)
    choice = chosen(request)
    default_by = Dimension.COMMUNITY if user.community_id is None else Dimension.GRID
    by = dimension_of(request, default_by)
    view = await request.app[SERVICE].figures_view(
        user.responder_id, choice.period, span=choice.span, group_by=by, history=HISTORY
    )
    # The report is monthly: the chosen month, or the month the chosen week starts in.
    month = trends.period_containing(choice.period.start, trends.Span.MONTH, timezone_of(request))
    return await render(
        request,
        "figures.html",
        {
            "view": view,
            "f": view.figures,
            "choice": choice,
            "by": by,
            "tabs": [(t, TAB_LABELS[t]) for t in TABS],
            "data": chart_data(view),
            "buckets": list(zip(view.first_response.rows(), view.resolution.counts, strict=True)),
            "report_month": month.label,
            "sections": _section_choices(view.scope.is_street),
            "echarts": ECHARTS,
            **FORMATS,
        },
    )


# ---------------------------------------------------------------------------------------- the report


def _section_choices(is_street: bool) -> list[tuple[str, str]]:
    keys = [("street", "街道")] if is_street else []
    return [*keys, ("community", "社区"), ("category", "类别"), ("responder", "接单人")]


async def _scoped_report(request: web.Request) -> report.MonthlyReport:
    user = await signed_in(request)
    period = month_of(request)
    return await request.app[SERVICE].scoped_report(user.responder_id, period)


def _attachment(body: bytes, filename: str, content_type: str) -> web.Response:
    response = web.Response(body=body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _xlsx_bytes(monthly: report.MonthlyReport) -> bytes:
    with tempfile.TemporaryDirectory(prefix="minhu-report-") as folder:
        return report.write_xlsx(monthly, Path(folder)).read_bytes()


def _csv_bytes(monthly: report.MonthlyReport, section: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="minhu-report-") as folder:
        for path in report.write_csv(monthly, Path(folder)):
            if path.stem.endswith(f"-{section}"):
                return path.read_bytes()
    raise AssertionError("write_csv wrote every section")


async def report_xlsx(request: web.Request) -> web.Response:
    """The month's report as `minhu report` writes it (report.write_xlsx), for the staff's scope."""
    monthly = await _scoped_report(request)
    body = await asyncio.to_thread(_xlsx_bytes, monthly)
    return _attachment(
        body,
        f"{monthly.name}.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


async def report_csv(request: web.Request) -> web.Response:
    """One section of the month's report as CSV (report.write_csv: UTF-8 with a BOM for Excel)."""
    monthly = await _scoped_report(request)
    keys = [s.key for s in monthly.sections]
    section = param(request, "section", keys[0])
    if section not in keys:
        raise bad_input("报表分表只能是:" + "、".join(keys) + "。")
    body = await asyncio.to_thread(_csv_bytes, monthly, section)
    response = _attachment(body, f"{monthly.name}-{section}.csv", "text/csv")
    response.charset = "utf-8"
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/figures", page, name="figures")
    app.router.add_get("/figures/report.xlsx", report_xlsx, name="figures-report-xlsx")
    app.router.add_get("/figures/report.csv", report_csv, name="figures-report-csv")
