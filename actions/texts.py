"""Wording the replies (plain Simplified Chinese); reading the answers is actions.answers."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from tickets.catalogue import Catalogue
from tickets.privacy import DATA_DELETION, DATA_KEPT

WUHAN = ZoneInfo("Asia/Shanghai")
NUMBER_RE = re.compile(r"MH-\d{8}-\d{4}", re.IGNORECASE)
MIN_DESCRIPTION = 6  # characters (letters and digits) before a request is something we can act on

PRIVACY_NOTICE = (
    "个人信息说明:为办理和回访您的诉求,我们保存您说的诉求内容、地址、联系电话、所在社区和小区,"
    "以及您和助手的全部对话记录。电话加密保存,只给接单的人和社区、街道工作人员看,其他人看到的是打码的号码。"
    + DATA_KEPT
    + DATA_DELETION
)
SAVED_FOR_RETRY_TEXT = (
    "我们已经保存了您的留言。系统暂时有点忙,恢复后会马上为您登记,并把工单号发给您,不用重复提交。"
    "如果情况紧急,请直接拨打社区电话或 12345 热线。"
)

HANDOFF_SAVED_TEXT = (
    "我们已经保存了您的留言和转人工的请求。系统暂时有点忙,恢复后会马上转给社区工作人员,并把工单号发给您。"
    "如果情况紧急,请直接拨打社区电话或 12345 热线。"
)
# Saved without a community in the conversation: it is handed over if we know their home, else it cannot be.
HANDOFF_SAVED_UNPLACED_TEXT = (
    "我们已经保存了您的留言和转人工的请求。系统暂时有点忙,恢复后会马上转给您所在社区的工作人员,并把工单号发给您;"
    "如果您还没有告诉过我们住在哪个社区,请稍后再说一次“转人工”。如果情况紧急,请直接拨打社区电话或 12345 热线。"
)


def when(moment: datetime, now: datetime) -> str:
    """A deadline as residents read it, Wuhan time: 今天 16:30 / 明天 10:00 / 11月30日 09:30."""
    local, today = moment.astimezone(WUHAN), now.astimezone(WUHAN).date()
    days = (local.date() - today).days
    prefix = {0: "今天", 1: "明天", 2: "后天"}.get(days, f"{local.month}月{local.day}日")
    return f"{prefix} {local:%H:%M}"


def category_name(catalogue: Catalogue, code: str | None) -> str:
    category = catalogue.categories.get(code or "")
    return category.name if category else "诉求"


def category_buttons(catalogue: Catalogue) -> list[dict[str, str]]:
    """The service categories as buttons (payloads are intents, so no NLU guess is involved)."""
    return [{"title": c.name, "payload": f"/{c.code}"} for c in catalogue.listed] + [
        {"title": "查询办理进度", "payload": "/check_status"},
        {"title": "转人工", "payload": "/human_handoff"},
    ]
