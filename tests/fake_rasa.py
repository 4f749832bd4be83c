"""A small fake of Rasa's REST channel (aiohttp on a real port, as the relays reach the real one): echoes, or
answers what a test scripts; it can be taken down (503) or made slow. Shared by the Telegram bot's tests and
the web chat's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeRasa:
    """Rasa's REST channel as far as the bot can tell: echoes, or answers what a test scripts."""

    up: bool = True
    delay: float = 0.0
    received: list[tuple[str, str]] = field(default_factory=list)
    message_ids: list[str | None] = field(default_factory=list)  # the relay's name for each message received
    # The X-Minhu-Sender header of each call, as the deployment's entry hashes it (None: not sent).
    sender_headers: list[str | None] = field(default_factory=list)
    script: Callable[[str, str], list[dict[str, Any]]] | None = None
    url: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._hello)
        app.router.add_post("/webhooks/rest/webhook", self._webhook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _hello(self, request: web.Request) -> web.Response:
        return web.Response(text="Hello from Rasa: 3.6.21", status=200 if self.up else 503)

    async def _webhook(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=503)
        body = await request.json()
        sender, message = body["sender"], body["message"]
        self.sender_headers.append(request.headers.get("X-Minhu-Sender"))
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append((sender, message))
        self.message_ids.append(body.get("message_id"))
        replies = self.script(sender, message) if self.script else [{"text": f"收到:{message}"}]
        return web.json_response([{"recipient_id": sender, **r} for r in replies])
