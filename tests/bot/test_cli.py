"""`minhu responders invite CODE` and `minhu bot` on a temporary embedded SQLite database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import FIXTURE_ORG, database, minhu

__all__ = ["database"]  # the fixture, shared with tests/test_cli.py


def test_invite_prints_a_one_time_code_and_keeps_only_its_hash(database: Path) -> None:
    assert minhu("db", "upgrade").exit_code == 0
    assert minhu("org", "load", str(FIXTURE_ORG)).exit_code == 0
    done = minhu("responders", "invite", "vol-a2")
    assert done.exit_code == 0, done.output
    code = done.output.split("(invite code): ")[1].split()[0]
    assert len(code) == 8 and code.isalnum()
    assert f"/join {code}" in done.output and "/v" in done.output  # Telegram, or the volunteer web page
    with sqlite3.connect(database) as conn:
        stored = [row[0] for row in conn.execute("SELECT code_hash FROM invite_codes")]
    assert len(stored) == 1 and code not in stored[0]


def test_invite_for_an_unknown_responder_fails_in_chinese(database: Path) -> None:
    assert minhu("db", "upgrade").exit_code == 0
    done = minhu("responders", "invite", "nobody")
    assert done.exit_code == 1 and "没有找到" in done.output


def test_bot_without_a_token_says_what_to_set(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    assert minhu("db", "upgrade").exit_code == 0
    done = minhu("bot")
    assert done.exit_code == 1 and "TELEGRAM_BOT_TOKEN" in done.output


def test_bot_is_a_receiver_or_a_worker_not_both(database: Path) -> None:
    done = minhu("bot", "--receiver", "--worker")
    assert done.exit_code == 1 and "只能选一个" in done.output


@pytest.mark.parametrize("role", ["--receiver", "--worker"])
def test_receiver_and_worker_without_a_token_say_what_to_set(
    database: Path, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    assert minhu("db", "upgrade").exit_code == 0
    done = minhu("bot", role)
    assert done.exit_code == 1 and "TELEGRAM_BOT_TOKEN" in done.output
