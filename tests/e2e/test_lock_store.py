"""The conversation lock the Rasa replicas share (nlu/lock_store.py), checked in the Rasa venv against a
private redis-server (tests/e2e/rasa_venv/check_lock_store.py): one holder at a time across two stores, a
long turn keeps it, a killed holder's hold ends with its lease (not Rasa's 60 s), a try waits at most the
lock lifetime, and without Redis a turn fails at once."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import run_in_rasa_venv
from tests.faults.conftest import (
    PrivateRedis,
    redis_server,  # noqa: F401 (the private redis-server fixture)
)


def test_the_replicas_conversation_lock(rasa: Path, redis_server: PrivateRedis) -> None:  # noqa: F811
    done = run_in_rasa_venv(rasa, "check_lock_store.py", {"MINHU_CHECK_REDIS_PORT": str(redis_server.port)})
    assert done.stdout.count(": ok") == 8, done.stdout
