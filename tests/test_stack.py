"""`minhu run`'s servers as real processes: they die with `minhu run` (even by kill -9), a taken port stops
the start with the port and its holder named, and a server that dies is restarted with back-off.

The action server here is the real one (rasa-sdk, with its Sanic worker processes); Rasa is replaced by a
stand-in HTTP server started the same way, so these tests need no Rasa venv."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest.mock import ANY

import pytest
from alembic import command
from structlog.testing import capture_logs

from app.settings import Settings
from minhu.guard import group_members
from minhu.stack import (
    Child,
    NotOurServer,
    action_server,
    server_env,
    supervise,
)
from tickets.db import alembic_config

REPO = Path(__file__).resolve().parents[1]
STARTUP_S = 120.0  # the action server imports the app; the machine may be busy


def process_state(pid: int) -> str:
    """The State line of /proc/PID/status and what it waits in, for a failure message."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return "gone"
    state = next((line for line in status.splitlines() if line.startswith("State:")), "State: ?")
    return f"{state}, waiting in {wchan or '-'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.2)
    return False


class Occupant:
    """Someone else's HTTP server on a port; counts the requests it gets."""

    def __init__(self, port: int) -> None:
        occupant = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                occupant.requests += 1
                body = b'{"status": "ok", "model_file": "not-ours.tar.gz"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def occupant() -> Iterator[Occupant]:
    taken = Occupant(free_port())
    yield taken
    taken.close()


def stand_in(port: int, log_dir: Path, env: dict[str, str]) -> Child:
    """A stand-in for Rasa: a plain HTTP server, started and watched like Rasa."""
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    return Child("Rasa", "Rasa", command, port, "MINHU_RASA_PORT", "/", log_dir / "rasa.log", env)


# What runs as `minhu run` in the kill -9 test: the real action server and the stand-in, started by the
# same code as the assistant, then waiting to be killed.
PARENT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from app.settings import Settings
    from minhu.stack import Assistant, action_server, server_env
    from tests.test_stack import stand_in

    data, action_port, rasa_port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    env = server_env(Settings(MINHU_DATA_DIR=data), action_port)
    stack = Assistant(action_server(action_port, data, env), stand_in(rasa_port, data, env), wait_s=120)
    stack.start()
    stack.wait_healthy()
    groups = {child.name: sorted(child.group()) for child in stack.children}
    print(json.dumps({"groups": groups, "leaders": [c.process.pid for c in stack.children]}), flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_the_servers_die_with_minhu_run_even_on_kill_9(tmp_path: Path) -> None:
    action_port, rasa_port = free_port(), free_port()
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path), str(action_port), str(rasa_port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    leaders: list[int] = []
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, (
            f"the stand-in `minhu run` did not start: {(tmp_path / 'actions.log').read_text()[-2000:]}"
        )
        started = json.loads(line)
        leaders = started["leaders"]
        # The action server is a Sanic main process with worker processes: all in its group.
        assert len(started["groups"]["action server"]) >= 3
        assert answers(f"http://127.0.0.1:{action_port}/health")

        parent.send_signal(signal.SIGKILL)
        parent.wait()

        def all_gone() -> bool:
            return not any(group_members(leader) for leader in leaders)

        # The guard gives the server ORPHAN_GRACE_S to stop, then kills what is left and reaps it: seconds, but
        # more on a loaded machine (a CI run once saw the action server's guard still there after 10 s).
        def what_is_left() -> str:
            left = {leader: (group_members(leader), process_state(leader)) for leader in leaders}
            return f"{left}\n{(tmp_path / 'actions.log').read_text()[-1500:]}"

        assert wait_until(all_gone, 30), what_is_left()
        assert not answers(f"http://127.0.0.1:{action_port}/health")
        assert not answers(f"http://127.0.0.1:{rasa_port}/")
    finally:
        parent.kill()
        parent.wait()
        for leader in leaders:  # clean up after a failure
            with contextlib.suppress(OSError):
                os.killpg(leader, signal.SIGKILL)


def test_a_process_that_has_exited_is_no_longer_a_member_of_its_group() -> None:
    # An orphan that has exited stays a zombie until init reaps it, which on some machines takes seconds:
    # it holds no port and no memory, so it does not keep a server "running".
    process = subprocess.Popen(["sleep", "0.2"], start_new_session=True)
    assert group_members(process.pid) == [process.pid]
    assert wait_until(lambda: not group_members(process.pid), 5)
    assert process.poll() is not None  # only now reaped, by this test


def test_minhu_run_on_a_taken_port_names_it_and_exits_non_zero(tmp_path: Path, occupant: Occupant) -> None:
    rasa_port = occupant.server.server_address[1]
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{tmp_path / 'minhu.db'}"), "head")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "TELEGRAM_BOT_TOKEN"} and not key.startswith("MINHU_")
    }
    env |= {
        "PYTHONPATH": str(REPO),
        "MINHU_DATA_DIR": str(tmp_path),
        "MINHU_RASA_PORT": str(rasa_port),
        "MINHU_ACTION_PORT": str(free_port()),
        "MINHU_DASHBOARD_PORT": "0",  # any free port: the dashboard starts first and must not collide
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "minhu.cli", "run", "--no-chat"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"端口 {rasa_port} 已被占用" in done.stderr
    assert f"port {rasa_port} is in use" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr  # the holder: this test
    assert "MINHU_RASA_PORT" in done.stderr
    assert "Rasa: http" not in done.stdout
    assert occupant.requests == 0  # never talked to
    assert not (tmp_path / "logs" / "actions.log").exists()  # nothing was started
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_a_health_answer_from_another_process_is_refused(tmp_path: Path) -> None:
    port = free_port()
    # Our "server" never binds: whatever answers on the port is someone else.
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = Child("Rasa", "Rasa", sleeper, port, "MINHU_RASA_PORT", "/status", tmp_path / "r.log", {})
    child.start()
    taken = Occupant(port)  # binds after our port check: the race a check alone cannot close
    try:
        with pytest.raises(
            NotOurServer, match=rf"port {port} answered, but not from Rasa just started"
        ) as refused:
            child.wait_healthy(10)
        assert f"pid {os.getpid()}" in str(refused.value)
    finally:
        taken.close()
        child.stop()
    assert wait_until(lambda: not child.group(), 5)


@pytest.mark.slow
async def test_a_killed_action_server_is_restarted(tmp_path: Path) -> None:
    port = free_port()
    child = action_server(port, tmp_path, server_env(Settings(MINHU_DATA_DIR=tmp_path), port))
    health = f"http://127.0.0.1:{port}/health"
    child.start()
    try:
        await asyncio.to_thread(child.wait_healthy, STARTUP_S)
        assert child.process is not None
        guard = child.process.pid
        server = server_process(child)  # the rasa-sdk main process
        # Its worker processes answer an unreadable call with a bare status (actions.guard's plugin).
        assert await asyncio.to_thread(post_unreadable_call, port) == (
            500,
            {"error": "Internal Server Error"},
        )
        with capture_logs() as logs:
            watcher = asyncio.create_task(supervise(child, wait_s=STARTUP_S, every=0.2, first_wait=0.5))
            os.kill(server, signal.SIGKILL)
            assert await asyncio.to_thread(wait_until, lambda: not answers(health), 10)
            assert await asyncio.to_thread(wait_until, lambda: answers(health), STARTUP_S)
            assert await asyncio.to_thread(wait_until, lambda: len(logs) >= 2, 10)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        assert child.process.pid != guard
        assert logs == [
            {
                "event": "action server exited",
                "log_level": "warning",
                "exit_code": 128 + signal.SIGKILL,  # the guard passes the server's end on
                "restart_in": 0.5,
                "log": str(tmp_path / "actions.log"),
            },
            {"event": "action server restarted", "log_level": "info"},
        ]
    finally:
        child.stop()
    assert wait_until(lambda: not child.group(), 5) and not answers(health)


def post_unreadable_call(port: int) -> tuple[int, object]:
    call = {"next_action": "action_check_status", "version": "3.6.21", "domain": {}, "tracker": "13912345678"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook",
        data=json.dumps(call).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    return 200, None


def server_process(child: Child) -> int:
    """The server's own process: the guard's child in the server's process group."""
    assert child.process is not None
    [server] = [pid for pid in child.group() if _ppid(pid) == child.process.pid]
    return server


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Stop(Exception):
    """Ends supervise from its sleep once the test has seen enough."""


class FlakyServer:
    """A server that is down, fails its first restarts, then runs."""

    name = "action server"
    log_file = Path("actions.log")

    def __init__(self, failed_restarts: int) -> None:
        self.failed_restarts = failed_restarts
        self.running = False
        self.starts = 0

    def exit_code(self) -> int | None:
        return None if self.running else 137

    def uptime(self) -> float:
        return 1000.0

    def start(self) -> None:
        self.starts += 1

    def wait_healthy(self, wait_s: float) -> None:
        if self.starts <= self.failed_restarts:
            raise RuntimeError("exited with 1: 13912345678 said …")  # a log tail could carry anything
        self.running = True

    def answers(self, within: float) -> bool:
        return self.running

    def stop(self) -> None:
        self.running = False

    def kill(self) -> None:
        self.running = False


async def test_restarts_back_off_while_they_fail_and_are_logged_without_the_log_tail() -> None:
    server = FlakyServer(failed_restarts=4)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 7:
            server.running = False  # it dies again after running long: back to the first wait
        if len(waits) == 9:
            raise Stop

    with capture_logs() as logs, pytest.raises(Stop):
        await supervise(server, every=1, first_wait=1, max_wait=8, stable_after=60, sleep=sleep)

    assert waits == [1, 2, 4, 8, 8, 1, 1, 1, 1]  # 5 restarts (4 fail), 2 checks, then a fresh start at 1 s
    exited = {"event": "action server exited", "log_level": "warning", "exit_code": 137, "log": "actions.log"}
    failed = {
        "event": "action server restart failed",
        "log_level": "error",
        "error": "RuntimeError",
        "at": ANY,
    }
    assert logs == [
        {**exited, "restart_in": 1},
        failed,
        {**exited, "restart_in": 2},
        failed,
        {**exited, "restart_in": 4},
        failed,
        {**exited, "restart_in": 8},
        failed,
        {**exited, "restart_in": 8},
        {"event": "action server restarted", "log_level": "info"},
        {**exited, "restart_in": 1},
        {"event": "action server restarted", "log_level": "info"},
    ]
    assert "13912345678" not in repr(logs)


class HangingServer(FlakyServer):
    """A server that runs but stops answering for a while (a deadlock, SIGSTOP, swapping)."""

    def __init__(self, silent_checks: int) -> None:
        super().__init__(failed_restarts=0)
        self.running = True
        self.silent_checks = silent_checks
        self.kills = 0

    def answers(self, within: float) -> bool:
        if self.silent_checks:
            self.silent_checks -= 1
            return False
        return True

    def kill(self) -> None:
        self.kills += 1
        super().kill()


async def run_rounds(server: FlakyServer, rounds: int) -> list[float]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == rounds:
            raise Stop

    with pytest.raises(Stop):
        await supervise(server, every=1, check_every=2, misses_allowed=3, first_wait=5, sleep=sleep)
    return waits


async def test_a_server_that_misses_a_health_check_or_two_is_left_alone() -> None:
    server = HangingServer(silent_checks=2)
    with capture_logs() as logs:
        await run_rounds(server, 20)  # 10 checks: two missed, then answered
    assert (server.kills, server.starts, logs) == (0, 0, [])


async def test_a_server_that_stops_answering_is_killed_and_started_again() -> None:
    server = HangingServer(silent_checks=3)
    with capture_logs() as logs:
        waits = await run_rounds(server, 12)
    # checks every 2 rounds: missed at rounds 2, 4 and 6, then the restart wait, then it runs again
    assert waits == [1, 1, 1, 1, 1, 5, 1, 1, 1, 1, 1, 1]
    assert (server.kills, server.starts) == (1, 1)
    assert logs == [
        {
            "event": "action server not answering",
            "log_level": "warning",
            "checks_missed": 3,
            "restart_in": 5,
            "log": "actions.log",
        },
        {"event": "action server restarted", "log_level": "info"},
    ]


@pytest.mark.slow
async def test_a_hung_server_is_detected_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    child = stand_in(port, tmp_path, dict(os.environ))
    url = f"http://127.0.0.1:{port}/"
    child.start()
    try:
        await asyncio.to_thread(child.wait_healthy, STARTUP_S)
        assert child.process is not None
        guard = child.process.pid
        server = server_process(child)
        with capture_logs() as logs:
            watcher = asyncio.create_task(
                supervise(child, every=0.2, check_every=2, answer_within=1, misses_allowed=3, first_wait=0.5)
            )
            os.kill(server, signal.SIGSTOP)  # alive, holding its port, answering nobody
            assert await asyncio.to_thread(wait_until, lambda: child.process.pid != guard, 30)
            assert await asyncio.to_thread(wait_until, lambda: answers(url), STARTUP_S)
            assert await asyncio.to_thread(wait_until, lambda: len(logs) >= 2, 10)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        assert [log["event"] for log in logs] == ["Rasa not answering", "Rasa restarted"]
        assert _gone(server)
    finally:
        child.stop()
    assert wait_until(lambda: not child.group(), 5)


def _gone(pid: int) -> bool:
    """Exited: reaped, or a zombie waiting for init."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
