"""The bot beside `minhu run`: nothing without a token; with one, polling starts and stops cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.settings import Settings
from bot.app import telegram_bot
from tests.bot.conftest import RESIDENT, FakeRasa, Telegram
from tests.bot.fake_api import FakeBotAPI
from tickets.service import TicketService


async def test_no_token_no_bot(service: TicketService, api: FakeBotAPI) -> None:
    async with telegram_bot(Settings(TELEGRAM_BOT_TOKEN=""), service):
        pass
    assert api.calls == []


async def test_with_a_token_the_bot_polls_and_answers(
    service: TicketService, api: FakeBotAPI, rasa: FakeRasa, tg: Telegram, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = Settings(TELEGRAM_BOT_TOKEN="123456:RUN", TELEGRAM_API_URL=api.url, MINHU_DATA_DIR=data)
    api.updates.append(tg.text_update(RESIDENT, "在吗"))
    async with telegram_bot(settings, service, rasa_url=rasa.url):
        for _ in range(200):
            if api.texts(RESIDENT):
                break
            await asyncio.sleep(0.02)
    assert api.texts(RESIDENT) == ["收到:在吗"]
    assert {"getMe", "getUpdates"} <= {c.method for c in api.calls}
    assert (data / "telegram_conversations.pickle").exists()
