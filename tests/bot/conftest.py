"""Bot fixtures: the real PTB Application pointed at the fake Bot API server (tests/bot/fake_api.py), on the
test database (SQLite and PostgreSQL, like every database test), with the injected ManualClock; a small
fake Rasa REST channel (aiohttp) that can be taken down; and helpers that send updates as Telegram would."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import Update

from bot.app import BotConfig, build_application, minhu_of
from bot.common import App, Minhu
from bot.delivery import Delivery
from tests.bot.fake_api import Call, FakeBotAPI
from tests.conftest import Org
from tests.fake_rasa import FakeRasa
from tickets.service import TicketService

RESIDENT, VOLUNTEER, OTHER_VOLUNTEER, STAFF, STRANGER = 5001, 1001, 2001, 3001, 9001
VOLUNTEER_2, VOLUNTEER_3 = 1002, 1003


class Telegram:
    """Sends updates to the application as Telegram would, and reads what the bot sent back."""

    def __init__(self, application: App, api: FakeBotAPI) -> None:
        self.application, self.api = application, api
        self.update_ids = itertools.count(100)
        self.message_ids = itertools.count(10_000)

    @property
    def minhu(self) -> Minhu:
        return minhu_of(self.application)

    @staticmethod
    def user(user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"用户{user_id}", "language_code": "zh-hans"}

    def message(self, user_id: int, **content: Any) -> dict[str, Any]:
        return {
            "update_id": next(self.update_ids),
            "message": {
                "message_id": next(self.message_ids),
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private", "first_name": f"用户{user_id}"},
                "from": self.user(user_id),
                **content,
            },
        }

    def text_update(self, user_id: int, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.message(user_id, **content)

    def press_update(self, user_id: int, data: str, message: Call | None = None) -> dict[str, Any]:
        message_id = next(self.message_ids)
        if message is not None:
            message_id = int((message.result or {}).get("message_id") or message.params.get("message_id"))
        return {
            "update_id": next(self.update_ids),
            "callback_query": {
                "id": f"cq{message_id}{user_id}",
                "from": self.user(user_id),
                "chat_instance": f"ci{user_id}",
                "data": data,
                "message": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": user_id, "type": "private"},
                    "from": {"id": 999000, "is_bot": True, "first_name": "民呼助手"},
                    "text": "…",
                },
            },
        }

    async def feed(self, raw: dict[str, Any]) -> None:
        await self.application.process_update(Update.de_json(raw, self.application.bot))

    async def say(self, user_id: int, text: str) -> list[str]:
        """Send a text (or /command); returns the texts the bot sent to that chat meanwhile."""
        before = len(self.api.sent(user_id))
        await self.feed(self.text_update(user_id, text))
        return [c.text for c in self.api.sent(user_id)[before:]]

    async def press(self, user_id: int, data: str, message: Call | None = None) -> list[Call]:
        """Press an inline button (of `message`, when given); returns the calls the bot made meanwhile
        (answers, edits, messages)."""
        before = len(self.api.calls)
        await self.feed(self.press_update(user_id, data, message))
        return self.api.calls[before:]

    def answers(self, calls: list[Call]) -> list[str]:
        return [str(c.params.get("text") or "") for c in calls if c.method == "answerCallbackQuery"]

    async def bind(self, user_id: int, responder_code: str) -> None:
        code = await self.minhu.store.create_invite(responder_code)
        replies = await self.say(user_id, f"/join {code}")
        assert "绑定成功" in replies[-1], replies

    async def deliver(self) -> int:
        return await Delivery(self.minhu, self.application.bot).run_once()


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    fake = FakeBotAPI()
    await fake.start()
    yield fake
    await fake.stop()


def config_for(api: FakeBotAPI, rasa_url: str, **extra: Any) -> BotConfig:
    return BotConfig(token="123456:TEST-TOKEN", api_url=api.url, rasa_url=rasa_url, notice_after=0.3, **extra)


@pytest.fixture
async def tg(service: TicketService, org: Org, api: FakeBotAPI, rasa: FakeRasa) -> AsyncIterator[Telegram]:
    """The bot on the test org: vol-a1 is already bound to Telegram 1001 (tests/fixtures/org.yml)."""
    application = build_application(config_for(api, rasa.url), service)
    async with application:
        yield Telegram(application, api)
    await minhu_of(application).relay.rasa.close()


@pytest.fixture
async def roles(tg: Telegram) -> Telegram:
    """Every role bound: volunteer of this community (1001, vol-a1), of another (2001, vol-j1), staff
    (3001, staff-a); 5001 is a resident and 9001 a stranger."""
    await tg.bind(OTHER_VOLUNTEER, "vol-j1")
    await tg.bind(STAFF, "staff-a")
    tg.api.clear()
    return tg
