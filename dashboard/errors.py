"""Error pages: every refusal or failure is a Chinese page with the right status, never a traceback. A
domain NotFound → 404, NotAllowed → 403, bad input → 400, too many attempts → 429; anything unexpected is
logged (without the request's data) and answered 500."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from dashboard.csrf import CsrfRefused
from tickets.errors import DomainError, NotAllowed, NotFound, TicketNotFound, TooManyTickets, ValidationError

log = logging.getLogger(__name__)

MESSAGES = {
    400: "请求的内容有误,请检查后再试。",
    403: "您没有权限查看这个页面或进行这个操作。",
    404: "没有找到这个页面。",
    405: "这个页面不接受这种请求。",
    409: "操作没有成功,请刷新页面后再试。",
    413: "提交的内容太长了,请精简后再试。",
    429: "尝试次数太多了,请稍等一分钟再试。",
    500: "系统出了点问题,我们会尽快处理。请稍后再试。",
}
TITLES = {400: "请求有误", 403: "没有权限", 404: "没有找到", 429: "请稍后再试", 500: "系统出错"}


class PageError(Exception):
    """A refusal the dashboard itself makes (bad filter, too many attempts), with its Chinese message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_input(message: str) -> PageError:
    return PageError(400, message)


def domain_status(error: DomainError) -> int:
    """The HTTP status of a refusal by the domain (the pages and the Open311 API alike)."""
    if isinstance(error, TooManyTickets):
        return 429
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, NotAllowed):
        return 403
    if isinstance(error, ValidationError):
        return 400
    return 409


async def error_page(request: web.Request, status: int, message: str) -> web.StreamResponse:
    from dashboard.render import render  # render imports csrf; errors is imported by app first

    title = TITLES.get(status, "出错了")
    try:
        return await render(
            request, "error.html", {"status": status, "title": title, "message": message}, status=status
        )
    except Exception:  # the page itself failed (e.g. no session yet): plain text, still no traceback
        log.exception("error page failed")
        return web.Response(status=status, text=f"{title}: {message}", content_type="text/plain")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PageError as error:
        return await error_page(request, error.status, error.message)
    except TicketNotFound:  # unknown, or outside the viewer's scope: the same words, nothing echoed
        return await error_page(request, 404, "没有找到这张工单,或者您没有权限查看。请检查工单编号。")
    except DomainError as error:
        return await error_page(request, domain_status(error), error.message)
    except CsrfRefused:
        return await error_page(request, 403, "页面已过期或来源无法确认,请刷新页面后再试。")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return await error_page(request, error.status, MESSAGES.get(error.status, MESSAGES[400]))
    except Exception:
        log.exception("dashboard: unexpected error on %s %s", request.method, request.path)
        return await error_page(request, 500, MESSAGES[500])
