"""What a resident is told when something happens to their request (the outbox's resident kinds), in the same
words on every channel: Telegram (bot/delivery.py) and the web chat (dashboard/chat.py) add only their own
buttons."""

from __future__ import annotations

from typing import Any

from tickets.outbox import Kind
from tickets.privacy import mask_name

RATE_QUESTIONS = "请花半分钟回答三个问题"


def rated_heading(number: str, payload: dict[str, Any]) -> str:
    """办结: the start of the 回访."""
    return f"您的诉求 {number} 已由{mask_name(payload.get('responder_name'))}办结。{RATE_QUESTIONS}:"


def resident_text(kind: Kind, number: str, payload: dict[str, Any]) -> str | None:
    """The words of a resident's notification; None for a kind that is not a resident's, or that a channel
    words itself (RATE: with its buttons; ASSISTANT: the assistant's own replies)."""
    match kind:
        case Kind.ACCEPTED:
            return f"您的诉求 {number} 已由{mask_name(payload.get('responder_name'))}接单,很快会和您联系。"
        case Kind.RETURNED:
            reason = payload.get("reason", "")
            return f"您的诉求 {number} 被退回重新安排(原因:{reason}),社区会尽快另派人员。"
        case Kind.MESSAGE:
            return f"关于您的诉求 {number},办理人员给您留言:\n{payload.get('text', '')}"
        case Kind.REGISTERED:
            if payload.get("duplicate"):
                return f"您之前提交的诉求和工单 {number} 说的是同一件事,已经补充到这张工单里,我们会尽快处理。"
            if payload.get("handoff"):
                return f"您之前的转人工请求已登记,工单号 {number},社区工作人员会尽快联系您。"
            return f"您之前提交的诉求已登记,工单号 {number},我们会尽快安排。"
    return None
