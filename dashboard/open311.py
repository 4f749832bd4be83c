"""Open311 GeoReport v2 on the dashboard's application, for a city platform (a 12345 system): the public
catalogue (GET services), public tickets with the standard filters (GET requests, GET requests/{id}), and
requests a platform files with its API key (POST requests). JSON, and XML for the same resources.

A thin edge over TicketService (tickets.open311, tickets.apikeys): it reads parameters, checks the key and
its rate, and writes the answers. The API is its own world on the shared application: no cookie session,
no CSRF token (a key in the request, not an ambient cookie, is what authorizes a POST, so there is nothing
for another site to forge), and errors in Open311's format, `[{"code": 400, "description": "…"}]`, with
the same HTTP status, never an HTML page or a traceback. `open311_middleware`, placed outermost, serves
every /open311/ path itself for that reason.

The OpenAPI document of these endpoints is `open311.openapi.json` beside this module, served at
/open311/v2/openapi.json."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from aiohttp import web
from aiohttp.typedefs import Handler

from dashboard.auth import LoginLimiter
from dashboard.errors import domain_status
from dashboard.keys import CLOCK, SERVICE
from tickets.errors import DomainError
from tickets.open311 import ExternalRequest, PublicRequest, PublicService, PublicStatus, RequestFilter

log = logging.getLogger(__name__)

PREFIX = "/open311/"
BASE = "/open311/v2"
OPENAPI = Path(__file__).with_name("open311.openapi.json")
POSTS_PER_MINUTE = 60  # per API key
MAX_PARAM = 4096  # characters of any one parameter (the description's 4000 and some room)
MAX_DATE = 64
MAX_LIST = 1000  # characters of a comma-separated filter (service_code, service_request_id)

MESSAGES = {
    400: "请求参数有误。",
    403: "API 密钥无效或已停用。",
    404: "没有找到。",
    405: "这个地址不接受这种请求方法。",
    409: "操作没有成功,请稍后再试。",
    413: "请求内容太长了。",
    429: "请求太频繁了,请稍等一分钟再试。",
    500: "系统出了点问题,请稍后再试。",
}

KEY_LIMITER = web.AppKey("open311_key_limiter", LoginLimiter)  # the sliding window the login uses


class Open311Error(Exception):
    def __init__(self, status: int, description: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description or MESSAGES.get(status, MESSAGES[400])


# ------------------------------------------------------------------ answers (JSON or XML)


def _format(request: web.Request) -> str:
    return "xml" if request.path.endswith(".xml") else "json"


def _xml(root: str, item: str, rows: list[dict[str, Any]]) -> str:
    top = ElementTree.Element(root)
    for row in rows:
        element = ElementTree.SubElement(top, item)
        for key, value in row.items():
            child = ElementTree.SubElement(element, key)
            if value is not None:
                child.text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return '<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(top, encoding="unicode")


def answer(
    request: web.Request, rows: list[dict[str, Any]], *, root: str, item: str, status: int = 200
) -> web.Response:
    if _format(request) == "xml":
        return web.Response(
            status=status, text=_xml(root, item, rows), content_type="text/xml", charset="utf-8"
        )
    return web.Response(
        status=status, text=json.dumps(rows, ensure_ascii=False), content_type="application/json"
    )


def error_answer(request: web.Request, status: int, description: str) -> web.Response:
    return answer(
        request, [{"code": status, "description": description}], root="errors", item="error", status=status
    )


def _time(value: datetime | None, request: web.Request) -> str | None:
    if value is None:
        return None
    return value.astimezone(request.app[SERVICE].calendar.tz).isoformat(timespec="seconds")


def service_row(service: PublicService) -> dict[str, Any]:
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description,
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join(service.keywords),
        "group": service.group,
    }


def request_row(found: PublicRequest, request: web.Request) -> dict[str, Any]:
    return {
        "service_request_id": found.number,
        "status": found.status.value,
        "status_notes": found.status_notes,
        "service_name": found.service_name,
        "service_code": found.service_code,
        "description": found.description,
        "agency_responsible": found.agency_responsible,
        "service_notice": None,
        "requested_datetime": _time(found.requested, request),
        "updated_datetime": _time(found.updated, request),
        "expected_datetime": _time(found.expected, request),
        "address": found.address,
        "address_id": found.address_id,
    }


# ------------------------------------------------------------------ reading parameters


def _param(values: Mapping[str, Any], name: str, limit: int = MAX_PARAM) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise Open311Error(400, f"参数 {name} 的格式不对。")
    text = str(value)
    if len(text) > limit:
        raise Open311Error(400, f"参数 {name} 太长了(最多 {limit} 个字符)。")
    return text


def _list(values: Mapping[str, Any], name: str) -> tuple[str, ...]:
    text = _param(values, name, MAX_LIST) or ""
    return tuple(part.strip() for part in text.split(",") if part.strip())[:100]


def _date(values: Mapping[str, Any], name: str) -> datetime | None:
    """A W3C datetime (ISO 8601 with its timezone: 2026-11-23T09:00:00+08:00 or …Z)."""
    text = _param(values, name, MAX_DATE)
    if text is None:
        return None
    text = text.upper()  # RFC 3339 allows 2026-11-23t09:00:00z
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        found = None
    if found is None or found.tzinfo is None or "T" not in text:
        raise Open311Error(400, f"{name} 应为带时区的 W3C 日期时间,例如 2026-11-23T09:00:00+08:00。")
    try:
        return found.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before the first instant Python can hold in UTC
        return datetime.min.replace(tzinfo=UTC) if found.year == 1 else datetime.max.replace(tzinfo=UTC)


def _int(values: Mapping[str, Any], name: str, default: int) -> int:
    text = _param(values, name, 40)  # any size is a valid integer: page_size beyond 100 is served as 100
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise Open311Error(400, f"{name} 应为正整数。")
    return int(text)


def _coordinate(values: Mapping[str, Any], name: str, bound: float) -> None:
    text = _param(values, name, 32)
    if not text:
        return
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > bound:
        raise Open311Error(400, f"{name} 不是有效的经纬度。")


def request_filter(query: Mapping[str, str]) -> RequestFilter:
    try:
        statuses = tuple(PublicStatus(s) for s in _list(query, "status"))
    except ValueError:
        raise Open311Error(400, "status 只能是 open 或 closed(可用逗号分隔)。") from None
    return RequestFilter(
        numbers=_list(query, "service_request_id"),
        service_codes=_list(query, "service_code"),
        statuses=statuses,
        start=_date(query, "start_date"),
        end=_date(query, "end_date"),
        page=_int(query, "page", 1),
        page_size=_int(query, "page_size", 50),
    )


async def _body(request: web.Request) -> Mapping[str, Any]:
    """The POST's parameters: form-encoded as GeoReport says, or a JSON object."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise Open311Error(400, "请求体不是有效的 JSON。") from None
        if not isinstance(body, dict):
            raise Open311Error(400, "请求体应为 JSON 对象。")
        return body
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    if not request.can_read_body:
        return {}
    raise Open311Error(400, "请用 application/x-www-form-urlencoded 或 JSON 提交。")


# ------------------------------------------------------------------ handlers


async def services(request: web.Request) -> web.Response:
    rows = [service_row(s) for s in request.app[SERVICE].public_services()]
    return answer(request, rows, root="services", item="service")


async def requests_list(request: web.Request) -> web.Response:
    found = await request.app[SERVICE].public_requests(request_filter(request.query))
    return answer(request, [request_row(r, request) for r in found], root="service_requests", item="request")


async def request_one(request: web.Request) -> web.Response:
    found = await request.app[SERVICE].public_request(request.match_info["id"])
    return answer(request, [request_row(found, request)], root="service_requests", item="request")


async def request_create(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await _body(request)
    key = _param(body, "api_key", 256) or _param(request.query, "api_key", 256) or ""
    client = await service.api_client(key)
    if client is None:
        raise Open311Error(403)
    now = request.app[CLOCK].now().timestamp()
    if not request.app[KEY_LIMITER].allow(str(client.id), now):
        raise Open311Error(
            429, f"每个 API 密钥每分钟最多提交 {request.app[KEY_LIMITER].limit} 条诉求,请稍后再试。"
        )
    service_code = _param(body, "service_code", 64)
    if not service_code:
        raise Open311Error(400, "缺少 service_code。")
    _coordinate(body, "lat", 90)
    _coordinate(body, "long", 180)
    submitted = await service.open311_submit(
        client,
        ExternalRequest(
            service_code=service_code,
            description=_param(body, "description") or "",
            address_id=_param(body, "address_id", 64),
            address_string=_param(body, "address_string", 200),
            phone=_param(body, "phone", 32),
            account_id=_param(body, "account_id", 128),
            email=_param(body, "email", 254),
            device_id=_param(body, "device_id", 128),
        ),
    )
    row = {"service_request_id": submitted.number, "service_notice": submitted.notice}
    return answer(request, [row], root="service_requests", item="request", status=201)


async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=OPENAPI.read_text(encoding="utf-8"), content_type="application/json")


# ------------------------------------------------------------------ errors and wiring


@web.middleware
async def open311_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every /open311/ path is answered here, by its route's own handler (or the router's
    404/405), without the dashboard's session, CSRF check and HTML error pages (see the module's
    docstring); errors in Open311's format."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        return await request.match_info.handler(request)
    except Open311Error as error:
        return error_answer(request, error.status, error.description)
    except DomainError as error:
        return error_answer(request, domain_status(error), error.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_answer(request, error.status, MESSAGES.get(error.status, MESSAGES[400]))
    except Exception:
        log.exception("open311: unexpected error on %s %s", request.method, request.path)
        return error_answer(request, 500, MESSAGES[500])


def setup(app: web.Application) -> None:
    app.middlewares.insert(0, open311_middleware)
    app[KEY_LIMITER] = LoginLimiter(limit=POSTS_PER_MINUTE, window=60.0)
    fmt = "{fmt:json|xml}"
    app.router.add_get(f"{BASE}/services.{fmt}", services)
    app.router.add_get(f"{BASE}/requests.{fmt}", requests_list)
    app.router.add_post(f"{BASE}/requests.{fmt}", request_create)
    app.router.add_get(f"{BASE}/requests/{{id:[^/]+?}}.{fmt}", request_one)
    app.router.add_get(f"{BASE}/openapi.json", openapi)
