"""Fault injection without docker (docs/deploy.md, "Faults"): Minhu's processes as local subprocesses on
loopback ports, on a private PostgreSQL cluster (tests/pgcluster.py: initdb/pg_ctl, never the machine's
shared server) and a private redis-server on a free port, so a test can kill, crash and restart them.
Each test checks afterwards in the database that nothing was lost or done twice, and prints what the
residents saw (pytest -s shows it; the figures are in docs/deploy.md)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from alembic import command

from minhu.stack import Child, port_is_free
from tests.conftest import FIXTURES
from tests.e2e.conftest import free_port, rasa  # noqa: F401 (the Rasa venv fixture, for the replicas)
from tests.pgcluster import PrivatePostgres, private_postgres, unavailable
from tickets.catalogue import Catalogue
from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
from tickets.org import load_org, parse_org
from tickets.service import TicketService


async def restart(child: Child, wait_s: float = 120.0) -> None:
    """Start a killed server again once the kernel has let go of its port, and wait until it answers."""
    for _ in range(100):
        if port_is_free(child.port):
            break
        await asyncio.sleep(0.1)
    child.start()
    await asyncio.to_thread(child.wait_healthy, wait_s)


def pause(child: Child) -> None:
    """SIGSTOP to the server's process group: it holds every request it has, answering nothing (the kernel
    still accepts connections), until `resume`."""
    assert child.process is not None
    os.killpg(child.process.pid, signal.SIGSTOP)


def resume(child: Child) -> None:
    assert child.process is not None
    os.killpg(child.process.pid, signal.SIGCONT)


def required(problem: str | None) -> None:
    """Skip locally when a fault cannot be set up here; in CI, fail."""
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"fault tests need it in CI: {problem}", pytrace=False)
    pytest.skip(problem)


class PrivateRedis:
    """redis-server on a free loopback port, no persistence: stopped (SIGTERM) and started again on the
    same port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False
            )
            if done.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    required(None if shutil.which("redis-server") else "redis-server is not installed")
    folder = Path(tempfile.mkdtemp(prefix="minhu-redis-"))
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server with the `minhu` database migrated and the test org loaded."""
    required(unavailable())
    with private_postgres() as server:
        server.create_database("minhu")
        url = server.url("minhu")
        command.upgrade(alembic_config(url), "head")

        async def load() -> None:
            engine = create_engine(url)
            async with unit_of_work(session_factory(engine)) as session:
                await load_org(session, parse_org(FIXTURES / "org.yml"), Catalogue.load())
            await engine.dispose()

        asyncio.run(load())
        yield server


@pytest.fixture
async def core(cluster: PrivatePostgres) -> AsyncIterator[TicketService]:
    """The ticket core on the private cluster, for setting up and checking."""
    engine = create_engine(cluster.url("minhu"))
    yield TicketService(session_factory(engine), catalogue=Catalogue.load())
    await engine.dispose()
