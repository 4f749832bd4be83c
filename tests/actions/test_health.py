"""The action server's /healthz, /readyz and /metrics (actions/health.py), on the real `python -m rasa_sdk`
process as minhu/stack.py starts it: not ready while its database is not migrated, ready once it is; its
requests and actions timed."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiohttp
import pytest

from app.settings import Settings
from minhu.stack import action_server, server_env
from tests.actions.test_guard import call
from tests.e2e.conftest import free_port
from tests.test_health import get, sample
from tests.test_stack import STARTUP_S

pytestmark = pytest.mark.slow


@pytest.mark.filterwarnings("ignore:Your versions of rasa and rasa_sdk")
async def test_the_action_server_answers_health_readiness_and_metrics(
    tmp_path: Path, sqlite_template: Path
) -> None:
    db = tmp_path / "minhu.db"  # not there yet: the action server cannot open its database
    port = free_port()
    settings = Settings(MINHU_DATA_DIR=tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{db}")  # type: ignore[call-arg]
    child = action_server(port, tmp_path, server_env(settings, port))
    url = f"http://127.0.0.1:{port}"
    child.start()
    try:
        await asyncio.to_thread(child.wait_healthy, STARTUP_S)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            assert await get(http, f"{url}/healthz") == (200, '{"alive":true}')
            status, body = await get(http, f"{url}/readyz")
            assert status == 503 and '"database":"CoreUnavailable"' in body
            shutil.copy(sqlite_template, db)  # migrated: the next check opens it
            assert await get(http, f"{url}/readyz") == (200, '{"database":"ok"}')

            async with http.post(f"{url}/webhook", json=call("action_check_status")) as response:
                assert response.status == 200
            async with http.get(f"{url}/no-such-page") as response:
                assert response.status == 404
            status, metrics = await get(http, f"{url}/metrics")
    finally:
        child.stop()
    assert status == 200
    webhook = 'minhu_http_request_duration_seconds_count{method="POST",route="/webhook",status="200"}'
    assert sample(metrics, webhook) == 1
    assert (
        sample(
            metrics, 'minhu_http_request_duration_seconds_count{method="GET",route="/readyz",status="503"}'
        )
        == 1
    )
    assert (
        sample(
            metrics, 'minhu_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}'
        )
        == 1
    )
    assert (
        sample(metrics, 'minhu_action_duration_seconds_count{action="action_check_status",outcome="ok"}') == 1
    )
    assert sample(metrics, "minhu_action_pending_requests") == 0
