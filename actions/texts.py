"""Parsing residents' answers and wording the replies (plain Simplified Chinese)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from tickets.catalogue import Catalogue
from tickets.privacy import DATA_DELETION, DATA_KEPT

WUHAN = ZoneInfo("Asia/Shanghai")
NUMBER_RE = re.compile(r"MH-\d{8}-\d{4}", re.IGNORECASE)
SKIP = "-"  # a slot the resident chose not to answer (or that is known already)
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

CANCEL_WORDS = ("取消", "不办了", "算了", "不用了", "不要了", "不弄了", "撤销", "不需要了", "取消登记")
SKIP_WORDS = ("跳过", "不留", "不用", "不方便", "没有", "不想说", "不知道", "无")
YES_WORDS = ("确认", "提交", "对", "是", "没问题", "好", "可以", "行", "嗯", "ok", "yes", "没错", "正确")
NO_WORDS = ("没有", "没", "否", "不是", "no", "未")


def fold(text: str | None) -> str:
    """Letters and digits only, lower case: what is compared."""
    return "".join(ch for ch in (text or "").lower() if ch.isalnum())


def is_cancel(text: str | None) -> bool:
    folded = fold(text)
    return bool(folded) and len(folded) <= 8 and any(folded.startswith(w) for w in CANCEL_WORDS)


def is_skip(text: str | None) -> bool:
    folded = fold(text)
    return folded == SKIP or (len(folded) <= 8 and any(w in folded for w in SKIP_WORDS))


def yes_no(text: str | None) -> bool | None:
    """联系过吗 / 解决了吗 answers: True, False, or None when unclear."""
    folded = fold(text)
    if not folded:
        return None
    if any(folded.startswith(w) for w in ("没", "未", "否", "不", "no")) or "没有" in folded:
        return False
    if any(w in folded for w in ("是", "有", "联系过", "解决", "好了", "对", "嗯", "yes", "ok")):
        return True
    return None


def rating_of(text: str | None) -> str | None:
    folded = fold(text)
    if "不满意" in folded or "很差" in folded or "太差" in folded:
        return "unsatisfied"
    if "基本满意" in folded or "还行" in folded or "一般" in folded or "还可以" in folded:
        return "basic"
    if "满意" in folded or "很好" in folded or "非常好" in folded:
        return "satisfied"
    return None


def urgency_of(text: str | None) -> str | None:
    folded = fold(text)
    if not folded:
        return None
    if any(w in folded for w in ("不急", "不着急", "不紧急", "一般", "不赶")):
        return "normal"
    if any(w in folded for w in ("急", "马上", "危险", "漏电", "快", "尽快", "赶紧", "立刻")):
        return "urgent"
    return None


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
