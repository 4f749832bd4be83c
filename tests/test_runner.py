"""`minhu run` with the terminal chat keeps the terminal for the chat (issue 13): its start-up logs (the demo
org, the holiday calendar running out, the servers' restarts) go to data/logs/minhu.log, not between the
resident's lines. The assistant's servers are stood in for; the sweeper and the database are real."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import structlog
from alembic import command

from app.settings import Settings
from minhu import runner
from minhu.chat import chat_loop, terminal_sender
from tickets.calendar import WorkCalendar
from tickets.db import alembic_config


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
    settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL="", MINHU_DATA_KEY="")
    command.upgrade(alembic_config(settings.db_url), "head")
    monkeypatch.setattr(WorkCalendar, "covered_until", lambda self: date(2000, 12, 31))  # warns

    @asynccontextmanager
    async def stack(*args: Any, **kwargs: Any) -> AsyncIterator[str]:
        yield "http://127.0.0.1:9"

    said: list[str] = []

    async def chat(url: str, sender: str) -> None:
        said.append(sender)
        await chat_loop(url, sender, read=lambda _: "/quit")

    monkeypatch.setattr(runner, "local_stack", stack)
    monkeypatch.setattr(runner, "chat_loop", chat)

    asyncio.run(runner.run(settings, sweep_every=3600))

    terminal = capsys.readouterr()
    assert said == [terminal_sender()]
    lines = terminal.out.splitlines()
    assert lines[0].startswith("民呼已启动") and lines[1].startswith("民呼社区助手")
    assert lines[-1] == "再见!" and len(lines) == 4, lines
    assert terminal.err == ""
    log = (tmp_path / "logs" / "minhu.log").read_text()
    assert "demo org loaded" in log and "official holiday data" in log and "minhu running" in log
