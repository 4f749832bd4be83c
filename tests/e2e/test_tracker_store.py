"""Rasa's tracker store as `minhu run` configures it (endpoints.yml + the environment from minhu/stack.py),
checked in the Rasa venv on the embedded SQLite and on PostgreSQL (tests/e2e/rasa_venv/check_tracker_store.py):
a conversation saved by one store is read back by the next, as after a restart of Rasa."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.settings import Settings
from minhu.stack import prepare_tracker_store, tracker_store_env
from tests.e2e.conftest import run_in_rasa_venv


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_conversation_outlives_the_tracker_store_that_saved_it(
    rasa: Path, database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = "" if database == "sqlite" else str(request.getfixturevalue("pg_database"))
    settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL=url)
    asyncio.run(prepare_tracker_store(settings))
    env = {
        **tracker_store_env(settings),
        "MINHU_ACTION_PORT": "5055",  # read by endpoints.yml; nothing is called
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    }
    done = run_in_rasa_venv(rasa, "check_tracker_store.py", env)
    assert done.stdout.count(": ok") == (7 if database == "postgres" else 5), done.stdout
    if database == "sqlite":
        assert (tmp_path / "rasa-tracker.db").exists()
