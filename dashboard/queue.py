"""工单队列 (/): the open tickets of the signed-in staff's scope, overdue first then by deadline, with filters
that combine and stay in the URL (a GET form) and keyset pages (TicketService.board). New and changed
tickets come in live (dashboard/static/queue.js over /live)."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from urllib.parse import urlencode

from aiohttp import web

from dashboard.auth import signed_in
from dashboard.errors import PageError, bad_input
from dashboard.keys import SERVICE
from dashboard.render import render
from tickets.board import BoardFilter
from tickets.models import Status

MAX_QUERY = 2000
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
ID_RE = re.compile(r"\d{1,12}")
FILTER_KEYS = ("category", "status", "grid", "responder", "overdue", "from", "to")
OPEN_STATUSES = [s for s in Status if s.is_open]


def _date(value: str, what: str) -> date | None:
    if not value:
        return None
    if DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise bad_input(f"{what}的日期格式不对,请写成 2026-11-23 这样的年-月-日。")


def _id(value: str, what: str) -> int | None:
    if not value:
        return None
    if not ID_RE.fullmatch(value):
        raise bad_input(f"{what}的选择无效,请从列表中选择。")
    return int(value)


def parse_filter(request: web.Request, categories: dict[str, str]) -> tuple[BoardFilter, dict[str, str]]:
    """The board's filter from the query string, and the filter's values as given (for the form and the
    links); a value that cannot be right is a 400 saying which."""
    if len(request.query_string) > MAX_QUERY:
        raise bad_input("查询条件太长了,请减少筛选条件后再试。")
    unknown = sorted(set(request.query) - {*FILTER_KEYS, "cursor"})
    if unknown:
        raise bad_input(f"不认识的查询条件:{unknown[0][:20]}。翻页请用页面下方的“下一页”。")
    given = {key: request.query.get(key, "").strip() for key in FILTER_KEYS}
    category = given["category"] or None
    if category is not None and category not in categories:
        raise bad_input("没有这个类别,请从列表中选择。")
    status = None
    if given["status"]:
        try:
            status = Status(given["status"])
        except ValueError:
            raise bad_input("没有这个状态,请从列表中选择。") from None
        if not status.is_open:
            raise bad_input("工单队列只列出未办结的工单,请从列表中选择状态。")
    if given["overdue"] not in ("", "1"):
        raise bad_input("“只看超期”的取值无效。")
    created_from, created_to = _date(given["from"], "开始"), _date(given["to"], "结束")
    if created_from and created_to and created_from > created_to:
        raise bad_input("开始日期晚于结束日期,请检查。")
    where = BoardFilter(
        category=category,
        status=status,
        grid_id=_id(given["grid"], "网格"),
        assignee_id=_id(given["responder"], "处理人"),
        overdue=given["overdue"] == "1",
        created_from=created_from,
        created_to=created_to,
    )
    return where, {k: v for k, v in given.items() if v}


async def queue_page(request: web.Request) -> web.Response:
    user = await signed_in(request)
    service = request.app[SERVICE]
    categories = {code: c.name for code, c in service.catalogue.categories.items()}
    where, given = parse_filter(request, categories)
    cursor = request.query.get("cursor") or None
    if cursor is not None and len(cursor) > 200:
        raise bad_input("翻页参数无效,请回到第一页重新翻页。")
    # The page and the filters' choices are independent reads: on two pooled connections at once, so the
    # page waits for the slower of them, not their sum.
    page, choices = await asyncio.gather(
        service.board(user.responder_id, where, cursor), service.board_choices(user.responder_id)
    )
    if cursor and not page.rows:
        raise PageError(404, "没有这一页了(后面没有更多工单),请回到第一页。")
    return await render(
        request,
        "queue.html",
        {
            "page": page,
            "given": given,
            "categories": categories,
            "statuses": OPEN_STATUSES,
            "choices": choices,
            "next_link": f"/?{urlencode({**given, 'cursor': page.next_cursor})}"
            if page.next_cursor
            else None,
            "first_link": f"/?{urlencode(given)}" if cursor else None,
            "now": service.clock.now(),
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/", queue_page, name="queue")
