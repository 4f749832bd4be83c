"""Every process's /healthz, /readyz and /metrics (app/health.py): on the web app's own server (its requests
timed by route), and on a sweeper process's little server (MINHU_HEALTH_PORT), started as a real process."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from app.health import Health, health_server, note_sweep
from app.relay import RasaClient, RasaUnavailable
from app.settings import Settings
from minhu.dashboard_server import dashboard_server
from tests.conftest import Org
from tests.e2e.conftest import free_port
from tests.fake_rasa import FakeRasa
from tickets.clock import ManualClock
from tickets.service import NewTicket, TicketService

REPO = Path(__file__).resolve().parent.parent


def sample(metrics: str, name: str) -> float | None:
    """The value of one sample line (`name` with its labels, exactly as exposed)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def test_the_web_app_answers_health_readiness_and_metrics(
    service: TicketService, org: Org, clock: ManualClock, rasa: FakeRasa, tmp_path: Path, db_url: str
) -> None:
    resident = await org.resident(compound="安居苑")
    await service.create_ticket(NewTicket(resident, "facility_repair", "路灯不亮"))  # an offer to send
    clock.advance(timedelta(seconds=90))
    settings = Settings(
        DATABASE_URL=db_url, MINHU_DATA_DIR=tmp_path, MINHU_DASHBOARD_PORT=0, MINHU_REDIS_URL=""
    )  # type: ignore[call-arg]
    async with (
        dashboard_server(settings, service, rasa_url=rasa.url) as dashboard,
        aiohttp.ClientSession() as http,
    ):
        assert await get(http, dashboard.url + "healthz") == (200, '{"alive": true}')
        status, body = await get(http, dashboard.url + "readyz")
        assert status == 200 and '"database": "ok"' in body and '"rasa": "ok"' in body
        await get(http, dashboard.url + "login")  # a page, to be timed
        rasa.up = False
        status, body = await get(http, dashboard.url + "readyz")
        assert status == 503 and '"rasa": "RuntimeError"' in body and '"database": "ok"' in body

        status, metrics = await get(http, dashboard.url + "metrics")
    assert status == 200
    assert sample(metrics, 'minhu_tickets{status="dispatched"}') == 1.0
    assert sample(metrics, 'minhu_tickets{status="closed"}') == 0.0
    assert (sample(metrics, "minhu_outbox_backlog") or 0) >= 1
    assert sample(metrics, "minhu_outbox_oldest_age_seconds") == 90.0
    login = 'minhu_http_request_duration_seconds_count{method="GET",route="/login",status="200"}'
    assert sample(metrics, login) == 1.0


# process counters: one backend is enough
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_relay_errors_and_sweeps_are_counted(
    service: TicketService, rasa: FakeRasa, db_url: str
) -> None:
    health = Health(service)
    port = free_port()
    rasa.up = False
    client = RasaClient(rasa.url, timeout=2)
    try:
        for _ in range(2):
            with pytest.raises(RasaUnavailable):
                await client.send("web:x", "你好")
    finally:
        await client.close()
    note_sweep(1_800_000_000.0)
    async with health_server(health, "127.0.0.1", port) as url, aiohttp.ClientSession() as http:
        assert url == f"http://127.0.0.1:{port}"
        _, metrics = await get(http, f"{url}/metrics")
    assert (sample(metrics, 'minhu_relay_errors_total{reason="HTTP 503"}') or 0) >= 2
    assert sample(metrics, "minhu_last_sweep_timestamp_seconds") == 1_800_000_000.0
    async with health_server(health, "127.0.0.1", 0) as none:
        assert none is None  # MINHU_HEALTH_PORT unset: no server (make run as before)


# the process, not the backend, is the point
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_sweeper_process_serves_its_health_on_its_port(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": db_url,
        "MINHU_DATA_DIR": str(tmp_path),
        "MINHU_HEALTH_PORT": str(port),
    }
    sweeper = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minhu.cli",
        "sweep",
        "--every",
        "0.2",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        metrics = ""
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while "minhu_last_sweep_timestamp_seconds" not in metrics:
                if sweeper.returncode is not None:
                    err = await sweeper.stderr.read() if sweeper.stderr else b""
                    raise AssertionError(err.decode()[-2000:])
                assert time.monotonic() < deadline, "no sweep reported within 60 s"
                try:
                    assert (await get(http, f"http://127.0.0.1:{port}/healthz"))[0] == 200
                    _, metrics = await get(http, f"http://127.0.0.1:{port}/metrics")
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
            status, body = await get(http, f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and body == '{"database": "ok"}'
        assert time.time() - (sample(metrics, "minhu_last_sweep_timestamp_seconds") or 0) < 60
        assert sample(metrics, 'minhu_tickets{status="created"}') == 0.0
    finally:
        sweeper.terminate()
        await asyncio.wait_for(sweeper.wait(), 30)
