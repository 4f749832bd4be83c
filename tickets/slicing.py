"""民呼我应 accounting (the loop's last step, what staff read): WHICH tickets a figure counts — the period
they were created in, the slice of the org and catalogue they belong to, and the dimension a breakdown
splits them by. The definitions of the figures themselves are tickets.metrics' (its docstring has the
Period and Slice rules too); this module only names the sets, for metrics, trends and the roll-up alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement

from tickets.errors import ValidationError
from tickets.models import Ticket

SHANGHAI = "Asia/Shanghai"


# ---------------------------------------------------------------------------------------------- period


@dataclass(frozen=True)
class Period:
    """Tickets created in [start, end)."""

    start: datetime
    end: datetime
    label: str = field(default="", compare=False)  # "2026-11" for a month

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Period needs timezone-aware datetimes")
        if self.start >= self.end:
            raise ValueError("Period must start before it ends")

    @classmethod
    def month(cls, year: int, month: int, timezone: str = SHANGHAI) -> Period:
        """The calendar month in `timezone` (Asia/Shanghai unless told)."""
        if not 1 <= month <= 12 or not 1900 <= year <= 9998:
            raise ValidationError(f"没有这个月份:{year}-{month:02d}。")
        tz = ZoneInfo(timezone)
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls(start.astimezone(UTC), end.astimezone(UTC), f"{year:04d}-{month:02d}")

    @classmethod
    def parse_month(cls, text: str, timezone: str = SHANGHAI) -> Period:
        """'2026-11' → November 2026; anything else is a ValidationError with a readable message."""
        match = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", text or "")
        if not match or not 1 <= int(match.group(2)) <= 12 or not 1900 <= int(match.group(1)) <= 9998:
            raise ValidationError(
                f"月份“{(text or '')[:20]}”无效,请写成 YYYY-MM,例如 2026-11 (month must be YYYY-MM)."
            )
        return cls.month(int(match.group(1)), int(match.group(2)), timezone)


# ---------------------------------------------------------------------------------------------- slice


class Dimension(StrEnum):
    """What a breakdown groups by."""

    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"
    CATEGORY = "category"
    RESPONDER = "responder"

    @property
    def label(self) -> str:
        return {
            "street": "街道",
            "community": "社区",
            "grid": "网格",
            "category": "类别",
            "responder": "接单人",
        }[self.value]

    @property
    def none_label(self) -> str:
        """The row label of tickets without a value on this dimension."""
        return {"grid": "未划分网格", "responder": "未指派"}.get(self.value, "未知")


@dataclass(frozen=True)
class Slice:
    """A filter on the period's tickets: every given field must match."""

    street_id: int | None = None
    community_id: int | None = None
    grid_id: int | None = None
    category: str | None = None
    assignee_id: int | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                found.append(getattr(Ticket, f.name) == value)
        return found
