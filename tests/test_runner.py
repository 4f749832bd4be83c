"""`minhu run` with the terminal chat keeps the terminal for the chat (issue 13): its start-up logs (the demo
org, the holiday calendar running out, the servers' restarts) go to data/logs/minhu.log, not between the
resident's lines. The assistant's servers are stood in for; the sweeper and the database are real."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from alembic import command

from app.settings import Settings
from minhu import runner
from minhu.chat import chat_loop, terminal_sender
from tickets.calendar import WorkCalendar
from tickets.db import alembic_config

DASHBOARD_LINE = re.compile(
    r"工作台\(dashboard\):(http://\S+/) 居民网页聊天:\1chat 志愿者:\1v 演示账号 (\S+),初始密码 (\S+?)\(只显示这一次\)"
)
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def log_in(address: str, username: str, password: str) -> int:
    """Sign in to the dashboard at `address` as a browser would; the queue page's status."""
    async with aiohttp.ClientSession(base_url=address, cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        form = await (await browser.get("/login")).text()
        token = TOKEN.search(form).group(1)  # type: ignore[union-attr]
        data = {"username": username, "password": password, "csrf_token": token, "next": "/"}
        async with browser.post("/login", data=data) as response:
            page = await response.text()
            return response.status if "<h1>工单队列</h1>" in page else -response.status


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level
    logging.captureWarnings(False)
    structlog.reset_defaults()


def test_the_terminal_gets_the_chat_and_the_log_gets_the_rest(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL="", MINHU_DATA_KEY="", MINHU_DASHBOARD_PORT=0)
    command.upgrade(alembic_config(settings.db_url), "head")
    monkeypatch.setattr(WorkCalendar, "covered_until", lambda self: date(2000, 12, 31))  # warns

    @asynccontextmanager
    async def stack(*args: Any, **kwargs: Any) -> AsyncIterator[str]:
        yield "http://127.0.0.1:9"

    said: list[str] = []
    printed: list[str] = []
    signed_in: list[int] = []

    async def chat(url: str, sender: str) -> None:
        """While the chat runs, the dashboard printed with the demo login answers, and that login works."""
        said.append(sender)
        printed.extend(capsys.readouterr().out.splitlines())
        address, username, password = DASHBOARD_LINE.fullmatch(printed[-1]).groups()  # type: ignore[union-attr]
        signed_in.append(await log_in(address, username, password))
        await chat_loop(url, sender, read=lambda _: "/quit")

    monkeypatch.setattr(runner, "local_stack", stack)
    monkeypatch.setattr(runner, "chat_loop", chat)

    asyncio.run(runner.run(settings, sweep_every=3600))

    terminal = capsys.readouterr()
    assert said == [terminal_sender()]
    lines = printed + terminal.out.splitlines()
    assert lines[0].startswith("民呼已启动") and lines[1].startswith("工作台(dashboard):http://127.0.0.1:")
    assert lines[2].startswith("民呼社区助手")
    assert lines[-1] == "再见!" and len(lines) == 5, lines
    assert terminal.err == ""
    assert signed_in == [200]
    log = (tmp_path / "logs" / "minhu.log").read_text()
    assert "demo org loaded" in log and "official holiday data" in log and "minhu running" in log
    password = DASHBOARD_LINE.fullmatch(lines[1]).group(3)  # type: ignore[union-attr]
    assert password not in log
