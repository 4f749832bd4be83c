"""A local fake Telegram Bot API server (aiohttp, 127.0.0.1, random port) for the real PTB Application.

It answers the methods the bot calls as Telegram would (the shapes PTB parses), records every call (method and
parameters) for assertions, serves updates to getUpdates, and can be told to answer 429 (with retry_after) or
500 for the next N calls of the sending methods.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {
    "id": 999000,
    "is_bot": True,
    "first_name": "民呼助手",
    "username": "minhu_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
SENDING = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendPhoto"})


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None  # what the fake answered (a sent message carries its message_id)
    at: float = field(default_factory=time.monotonic)  # when it arrived (rate limits)

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or "")

    @property
    def buttons(self) -> list[tuple[str, str]]:
        markup = self.params.get("reply_markup") or {}
        return [
            (b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row
        ]


@dataclass
class Failure:
    status: int
    retry_after: int | None = None


@dataclass
class FakeBotAPI:
    calls: list[Call] = field(default_factory=list)
    updates: deque[dict[str, Any]] = field(default_factory=deque)
    failures: deque[Failure] = field(default_factory=deque)
    webhook: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    page: int = 100  # getUpdates hands out at most this many at a time (and at most its `limit`)
    updates_delay: float = 0.0  # seconds each getUpdates takes to answer
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _texts: dict[tuple[int, int], Any] = field(default_factory=dict)  # what each message says now
    hung: asyncio.Event = field(default_factory=asyncio.Event)  # set when a call hangs (status 0)
    delay: float = 0.0  # seconds each sending call takes before Telegram accepts it
    _release: asyncio.Event = field(default_factory=asyncio.Event)  # lets hung calls go at stop()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._release.set()
        await self._runner.cleanup()

    def fail_next(self, count: int, status: int = 429, retry_after: int | None = None) -> None:
        """The next `count` sending calls (sendMessage, edits, sendPhoto) fail with this status; status 0
        never answers (a hung connection)."""
        self.failures.extend(Failure(status, retry_after) for _ in range(count))

    # ------------------------------------------------------------------ assertions

    def sent(self, chat_id: int | None = None, method: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if (c.method in SENDING if method is None else c.method == method)
            and (chat_id is None or c.chat_id == chat_id)
        ]

    def texts(self, chat_id: int) -> list[str]:
        return [c.text for c in self.sent(chat_id)]

    def delivered(self, chat_id: int | None = None) -> list[Call]:
        """Messages Telegram accepted (answered ok)."""
        return [c for c in self.sent(chat_id, "sendMessage") if c.result is not None]

    def clear(self) -> None:
        self.calls.clear()

    # ------------------------------------------------------------------ the API

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params)
        self.calls.append(call)
        if method == "editMessageText" and self._texts.get(self._key(params)) == params.get("text"):
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: message is not modified"},
                status=400,
            )
        if method in SENDING and self.failures:
            failure = self.failures.popleft()
            if failure.status == 0:
                self.hung.set()
                await self._release.wait()
            body: dict[str, Any] = {"ok": False, "error_code": failure.status}
            if failure.status == 429:
                body["description"] = f"Too Many Requests: retry after {failure.retry_after}"
                body["parameters"] = {"retry_after": failure.retry_after or 1}
            else:
                body["description"] = "Internal Server Error"
            return web.json_response(body, status=failure.status)
        if method in SENDING and self.delay:
            await asyncio.sleep(self.delay)
        call.result = await self._result(method, params)
        if method in ("sendMessage", "editMessageText") and isinstance(call.result, dict):
            self._texts[(call.result["chat"]["id"], call.result["message_id"])] = call.result.get("text")
        return web.json_response({"ok": True, "result": call.result})

    @staticmethod
    def _key(params: dict[str, Any]) -> tuple[int, int]:
        return int(params.get("chat_id") or 0), int(params.get("message_id") or 0)

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        raw = await request.post()
        params: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                params[key] = json.loads(str(value))
            except ValueError:
                params[key] = str(value)
        return params

    def _message(self, params: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": message_id or next(self._ids),
            "date": int(time.time()),
            "chat": {"id": int(params.get("chat_id", 0)), "type": "private"},
            "from": BOT_USER,
        }
        if "text" in params:
            message["text"] = str(params["text"])
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in ("sendMessage", "sendPhoto"):
            return self._message(params)
        if method in ("editMessageText", "editMessageReplyMarkup"):
            return self._message(params, int(params.get("message_id", 0)))
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            while self.updates and self.updates[0]["update_id"] < offset:
                self.updates.popleft()
            if not self.updates:
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.updates_delay)
            limit = min(int(params.get("limit") or 100), self.page)
            return [u for u in self.updates if u["update_id"] >= offset][:limit]
        if method == "setWebhook":
            self.webhook = params
            return True
        if method == "deleteWebhook":
            self.webhook = {}
            return True
        return True
