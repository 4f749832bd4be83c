"""The figures pages (数据 / 热点 / 人员) reach the domain through TicketService's query methods
(tickets.insights), not by calling the query modules themselves (no SQL at all: tests/test_layering)."""

from __future__ import annotations

from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
PAGES = ("figures.py", "hotspots.py", "responders.py", "periods.py")


@pytest.mark.parametrize("name", PAGES)
def test_the_figures_pages_call_the_service_not_the_query_modules(name: str) -> None:
    source = (DASHBOARD / name).read_text(encoding="utf-8")
    # Domain reads go through request.app[SERVICE]; the query functions themselves are not called here.
    for call in ("metrics.figures(", "trends.series(", "trends.distribution(", "hotspots.group_similar(",
                 "roster.roster(", "build_monthly_report("):  # fmt: skip
        assert call not in source
