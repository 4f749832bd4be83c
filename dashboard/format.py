"""How times and durations read on the pages (Asia/Shanghai, Chinese units): Jinja filters."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tickets.privacy import scrub

LOCAL = ZoneInfo("Asia/Shanghai")


def local_time(value: datetime | None) -> str:
    return value.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M") if value else ""


def worktime(value: timedelta | None) -> str:
    """Working time left (剩 2 小时 10 分) or past the deadline (超期 1 天 3 小时), on the working calendar
    (a working day is the office day)."""
    if value is None:
        return "已暂停"
    minutes = int(abs(value).total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours} 小时 {minutes} 分" if hours else f"{minutes} 分"
    return f"超期 {text}" if value < timedelta() else f"剩 {text}"


def short(text: str, limit: int = 40) -> str:
    """The resident's words shortened for a list, phones and ID numbers masked."""
    text = scrub(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit] + "…"
