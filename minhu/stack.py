"""The local assistant stack for `minhu run`: the rasa-sdk action server (this venv, 127.0.0.1:5055 by
default) and `rasa run --enable-api --auth-token …` (the token from MINHU_RASA_TOKEN, generated per run when
unset; the Rasa venv from scripts/rasa-env.sh, 127.0.0.1:5005 by default, the model from
scripts/rasa-train.sh, trained only when its inputs changed), as subprocesses with their logs in the data
folder.

What happens on a fault:
* `minhu run` dies, even by `kill -9`: each server runs under minhu/guard.py in a process group of its own;
  the kernel tells the guard its parent died (PR_SET_PDEATHSIG) and the guard stops the whole group.
* A port is taken: nothing is started; PortInUse names the port and the process holding it. A health answer
  from a process outside the child's group is refused too (NotOurServer), so an occupant is never used.
* A server dies while `minhu run` runs: `supervise` restarts it, waiting 1 s, then twice as long after each
  restart that did not last (capped), logging each exit and restart (no personal data).
* Rasa restarts: the conversations are in Rasa's SQL tracker store (endpoints.yml), on SQLite in the data
  folder, or in the app's PostgreSQL database (schema `rasa`) when DATABASE_URL is PostgreSQL; a half-filled
  request carries on where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog
from sqlalchemy import text

from app.logs import where
from app.settings import PROJECT_ROOT, Settings
from app.wiring import open_engine
from minhu.guard import group_members

log = structlog.get_logger("minhu.stack")

GUARD = Path(__file__).resolve().with_name("guard.py")
HAVE_PROC = Path("/proc/net/tcp").exists()  # Linux: who holds a port, which processes are in a group
TRACKER_SCHEMA = "rasa"  # Rasa's `events` table, beside (not among) the app's tables on PostgreSQL
TRACKER_POOL = {"SQL_POOL_SIZE": "2", "SQL_MAX_OVERFLOW": "3"}  # Rasa's defaults: 50 + 100 connections
# The kernel sends the guard its parent-death signal when the *thread* that started it ends (prctl(2)), and
# threads such as asyncio.to_thread's come and go: every server is started from this one thread, which lasts
# as long as the process.
_LAUNCHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minhu-launcher")
# Hostile input (issue 12): the relays (bot/rasa.py, minhu/chat.py) prove to Rasa's REST channel
# (nlu/channels.py) that they may name a `telegram:`/`web:` sender with this secret; Rasa's HTTP API wants
# this token (`?token=`); Sanic refuses a bigger request body (413).
RELAY_SECRET_ENV = "MINHU_RELAY_SECRET"
RASA_TOKEN_ENV = "MINHU_RASA_TOKEN"
REQUEST_MAX_SIZE = 256 * 1024  # bytes: 2,000 characters as \uXXXX escapes are 12 KB
# The action server's cap: Rasa posts it the conversation session's tracker, not one message.
ACTIONS_REQUEST_MAX_SIZE = 16 * 1024 * 1024


class PortInUse(RuntimeError):
    """A port `minhu run` needs is taken by another process."""


class NotOurServer(RuntimeError):
    """The port answered, but not from the process we started."""


def _script(name: str, log_file: Path) -> str:
    """Run a repo script; its last stdout line is a path. Its progress and what it runs print (pip, Rasa's
    training and warnings) go to `log_file`; the terminal, kept for the chat, gets a one-line note when
    something takes long (MINHU_SCRIPT_LOG, scripts/quiet.sh)."""
    done = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / name)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        env={**os.environ, "MINHU_SCRIPT_LOG": str(log_file)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/{name} failed (exit {done.returncode}); see {log_file}")
    return done.stdout.strip().splitlines()[-1]


def _tail(log_file: Path) -> str:
    return log_file.read_text(errors="replace")[-3000:] if log_file.exists() else "(no log)"


# --- who holds a port ----------------------------------------------------------------------------------


def port_holders(port: int) -> list[int]:
    """The pids (that this user may see) with a listening TCP socket on `port`, from /proc (Linux)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    holders = []
    if inodes and HAVE_PROC:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                fds = Path("/proc", entry, "fd")
                if any(os.readlink(fds / fd) in inodes for fd in os.listdir(fds)):
                    holders.append(int(entry))
    return sorted(holders)


def describe_process(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        command = "?"
    command = " ".join(command.split())
    return f"pid {pid} ({command[:160]}{'…' if len(command) > 160 else ''})"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket in TIME_WAIT is fine
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_port_free(port: int, what: str, called: str, setting: str) -> None:
    """Raise PortInUse, naming the process that holds the port, unless 127.0.0.1:port is free."""
    if port_is_free(port):
        return
    holders = port_holders(port)
    held_by = (
        "; ".join(describe_process(pid) for pid in holders)
        if holders
        else "一个看不到的进程 (a process this user cannot see)"
    )
    raise PortInUse(
        f"端口 {port} 已被占用,无法启动{what} (port {port} is in use: cannot start {called}).\n"
        f"占用者 (held by): {held_by}\n"
        f"可能是上次没有正常退出的民呼 (perhaps left over from an earlier run): stop it"
        f"{f' (kill {holders[0]})' if holders else ''}, or choose another port with {setting}=…"
    )


# --- one server --------------------------------------------------------------------------------------


@dataclass
class Child:
    """One server run under minhu/guard.py: started, health-checked, stopped and restarted as a unit."""

    name: str  # in logs and messages, e.g. "action server"
    what: str  # in the Chinese message, e.g. "动作服务器"
    command: list[str]
    port: int
    port_setting: str  # the environment variable that chooses the port
    health_path: str
    log_file: Path
    env: dict[str, str]
    needle: str = ""  # the health answer must contain this
    health_token: str = ""  # sent as ?token= with the health check (Rasa's API token); not in messages
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def called(self) -> str:
        """In an English sentence: "Rasa", "the action server"."""
        return self.name if self.name[:1].isupper() else f"the {self.name}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.health_path}"

    def start(self) -> None:
        """Start the server unless its port is taken (PortInUse)."""
        check_port_free(self.port, self.what, self.called, self.port_setting)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.process = _LAUNCHER.submit(
                subprocess.Popen,
                [sys.executable, str(GUARD), *self.command],
                cwd=PROJECT_ROOT,
                env={**self.env, "MINHU_GUARD_PARENT": str(os.getpid())},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group (the guard leads it), away from the terminal
            ).result()
        self.started_at = time.monotonic()

    def exit_code(self) -> int | None:
        """None while running; the exit code once it has exited (or was never started: -1)."""
        return -1 if self.process is None else self.process.poll()

    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    def group(self) -> set[int]:
        """The pids in this server's process group (the guard, the server and the server's children)."""
        if self.process is None:
            return set()
        if not HAVE_PROC:
            return {self.process.pid}
        return set(group_members(self.process.pid))

    def wait_healthy(self, wait_s: float) -> None:
        """Poll the health URL until it answers 200 (with the needle) from this server's process group;
        fail early if the server exited, or if someone else answers."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.health_url}: {self.called} exited with {self.process.returncode}:\n"
                    f"{_tail(self.log_file)}"
                )
            if self.answers(within=2.0):
                self._check_answer_is_ours()
                return
            time.sleep(0.5)
        raise RuntimeError(f"{self.health_url} not healthy after {wait_s:.0f}s:\n{_tail(self.log_file)}")

    def answers(self, within: float) -> bool:
        """True when the health URL answers 200 (with the needle) within `within` seconds."""
        url = f"{self.health_url}?token={self.health_token}" if self.health_token else self.health_url
        try:
            with urllib.request.urlopen(url, timeout=within) as answer:
                return answer.status == 200 and self.needle in answer.read().decode()
        except (OSError, ValueError):
            return False

    def _check_answer_is_ours(self) -> None:
        if not HAVE_PROC:
            return  # who holds a port is read from /proc (Linux); elsewhere the port check before start stays
        holders = port_holders(self.port)
        if set(holders) & self.group():
            return
        others = "; ".join(describe_process(pid) for pid in holders) or "a process this user cannot see"
        raise NotOurServer(
            f"端口 {self.port} 的应答不是来自刚启动的{self.what} (port {self.port} answered, but not from "
            f"{self.called} just started): held by {others}. Stop it, or choose another port with "
            f"{self.port_setting}=…"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the guard (it passes it on and waits for the server), then SIGKILL to whatever of the
        group is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL to the whole group at once: for a server that hangs, which would not stop when asked."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


# --- the assistant: action server + Rasa -------------------------------------------------------------------


def uses_postgresql(settings: Settings) -> bool:
    return settings.db_url.startswith("postgresql")


def tracker_store_env(settings: Settings) -> dict[str, str]:
    """What endpoints.yml's tracker_store reads: Rasa's SQL tracker store on the app's PostgreSQL database
    (schema `rasa`, synchronous driver psycopg2 as Rasa 3.6 needs), or else on SQLite in the data folder."""
    if uses_postgresql(settings):
        return {
            "MINHU_TRACKER_URL": "postgresql+psycopg2://" + settings.db_url.split("://", 1)[1],
            "POSTGRESQL_SCHEMA": TRACKER_SCHEMA,
            **TRACKER_POOL,
        }
    return {
        "MINHU_TRACKER_URL": f"sqlite:///{(settings.data_dir / 'rasa-tracker.db').resolve()}",
        **TRACKER_POOL,
    }


async def prepare_tracker_store(settings: Settings) -> None:
    """Rasa refuses to start without its PostgreSQL schema; it creates its table itself."""
    if not uses_postgresql(settings):
        return
    async with open_engine(settings, require_migrated=False) as engine, engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{TRACKER_SCHEMA}"'))


@dataclass
class Assistant:
    """The action server and Rasa."""

    actions: Child
    rasa: Child
    wait_s: float = 300.0
    children: list[Child] = field(init=False)

    def __post_init__(self) -> None:
        self.children = [self.actions, self.rasa]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa.port}"

    def start(self) -> None:
        """Both ports are checked before anything starts."""
        for child in self.children:
            check_port_free(child.port, child.what, child.called, child.port_setting)
        try:
            for child in self.children:
                child.start()
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self) -> None:
        for child in self.children:
            child.wait_healthy(self.wait_s)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def restart(self, child: Child) -> None:
        """Stop one server and start it again (how the tests restart Rasa)."""
        child.stop()
        child.start()
        child.wait_healthy(self.wait_s)


def assistant(
    settings: Settings,
    *,
    action_port: int | None = None,
    rasa_port: int | None = None,
    log_dir: Path | None = None,
    model: str | None = None,
    wait_s: float = 300.0,
) -> Assistant:
    """The two servers, not started yet; the model defaults to the one scripts/rasa-train.sh trains for
    the current inputs. The ports are checked first (PortInUse), then both scripts run (this may take long
    the first time)."""
    action_port = action_port or settings.action_port
    rasa_port = rasa_port or settings.rasa_port
    log_dir = log_dir or settings.data_dir / "logs"
    check_port_free(action_port, "动作服务器", "the action server", "MINHU_ACTION_PORT")
    check_port_free(rasa_port, "Rasa", "Rasa", "MINHU_RASA_PORT")
    venv = Path(_script("rasa-env.sh", log_dir / "rasa-train.log"))
    model = model or _script("rasa-train.sh", log_dir / "rasa-train.log")
    relay_secret, rasa_token = run_secret(RELAY_SECRET_ENV), run_secret(RASA_TOKEN_ENV)
    env = {**server_env(settings, action_port), RELAY_SECRET_ENV: relay_secret}
    env["SANIC_REQUEST_MAX_SIZE"] = str(REQUEST_MAX_SIZE)
    rasa = rasa_server(venv, model, rasa_port, log_dir / "rasa.log", env, rasa_token)
    # The action server receives Rasa's tracker (the whole conversation session), which may be far larger
    # than any resident's message: its own, looser cap.
    actions_env = env | {"SANIC_REQUEST_MAX_SIZE": str(ACTIONS_REQUEST_MAX_SIZE)}
    return Assistant(action_server(action_port, log_dir, actions_env), rasa, wait_s)


def rasa_server(
    venv: Path, model: str, port: int, log_file: Path, env: dict[str, str], token: str,
    endpoints: str = "endpoints.yml",
) -> Child:  # fmt: skip
    """Rasa (the Rasa venv), its HTTP API behind `token`, its endpoints from the file `endpoints`."""
    # nlu.rasa_server is `rasa` with a fix to its per-message hot path (see that module).
    command = [str(venv / "bin" / "python"), "-m", "nlu.rasa_server", "run", "--enable-api"]
    command += ["--model", model, "--endpoints", endpoints, "--credentials", "credentials.yml"]
    # One argument with "=": a token starting with "-" would otherwise read as an option (argparse).
    command += ["--interface", "127.0.0.1", "--port", str(port), f"--auth-token={token}"]
    return Child(
        "Rasa", "Rasa", command, port, "MINHU_RASA_PORT", "/status", log_file, env,
        needle="model_file", health_token=token,
    )  # fmt: skip


def run_secret(name: str) -> str:
    """The secret in the environment variable `name`; a fresh one (set there, for this process's relays and
    children) when unset."""
    if not os.environ.get(name):
        os.environ[name] = secrets.token_urlsafe(32)
    return os.environ[name]


def server_env(settings: Settings, action_port: int) -> dict[str, str]:
    """The environment of both servers."""
    return {
        **os.environ,
        "SANIC_HOST": "127.0.0.1",
        "MINHU_ACTION_PORT": str(action_port),
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(PROJECT_ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MINHU_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.db_url,
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONWARNINGS": "ignore",
        **tracker_store_env(settings),
    }


def action_server(port: int, log_dir: Path, env: dict[str, str]) -> Child:
    """The rasa-sdk action server (this venv)."""
    command = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)]
    return Child(
        "action server", "动作服务器", command, port, "MINHU_ACTION_PORT", "/health", log_dir / "actions.log",
        env,
    )  # fmt: skip


@contextlib.contextmanager
def running(
    settings: Settings,
    *,
    action_port: int | None = None,
    rasa_port: int | None = None,
    log_dir: Path | None = None,
    model: str | None = None,
    wait_s: float = 300.0,
) -> Iterator[Assistant]:
    """Action server + Rasa, healthy; stopped after. Not supervised: for tests and scripts, which restart a
    server themselves (Assistant.restart). Call it where no event loop runs."""
    stack = assistant(
        settings, action_port=action_port, rasa_port=rasa_port, log_dir=log_dir, model=model, wait_s=wait_s
    )
    if uses_postgresql(settings):
        asyncio.run(prepare_tracker_store(settings))
    stack.start()
    try:
        stack.wait_healthy()
        yield stack
    finally:
        stack.stop()


# --- supervision ---------------------------------------------------------------------------------------


class Supervised(Protocol):
    name: str
    log_file: Path

    def exit_code(self) -> int | None: ...
    def uptime(self) -> float: ...
    def start(self) -> None: ...
    def wait_healthy(self, wait_s: float) -> None: ...
    def answers(self, within: float) -> bool: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...


async def supervise(
    child: Supervised,
    *,
    wait_s: float = 300.0,
    every: float = 1.0,
    first_wait: float = 1.0,
    max_wait: float = 60.0,
    stable_after: float = 120.0,
    check_every: int = 10,
    answer_within: float = 10.0,
    misses_allowed: int = 3,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Keep a started server running until cancelled.

    * When it exits, log it (exit code only: no personal data) and start it again.
    * Every `check_every` rounds of `every` seconds, ask its health URL; a server that is running but has not
      answered within `answer_within` seconds `misses_allowed` times in a row hangs (deadlocked, stopped,
      swapping): log it, kill its whole group and start it again.
    * A restart waits `first_wait` seconds, twice as long after each exit, hang or failed restart in a row
      (up to `max_wait`), back to `first_wait` once the server has run for `stable_after` seconds.
    """
    wait = 0.0
    rounds = misses = 0
    while True:
        code = child.exit_code()
        if code is None:
            if child.uptime() >= stable_after:
                wait = 0.0
            rounds += 1
            if rounds % check_every == 0:
                misses = 0 if await asyncio.to_thread(child.answers, answer_within) else misses + 1
            if misses < misses_allowed:
                await sleep(every)
                continue
            wait = min(max(wait * 2, first_wait), max_wait)
            log.warning(
                f"{child.name} not answering",
                checks_missed=misses,
                restart_in=wait,
                log=str(child.log_file),
            )
            await asyncio.to_thread(child.kill)
        else:
            wait = min(max(wait * 2, first_wait), max_wait)
            log.warning(f"{child.name} exited", exit_code=code, restart_in=wait, log=str(child.log_file))
            await asyncio.to_thread(child.stop)  # whatever is left of its process group
        rounds = misses = 0
        await sleep(wait)
        try:
            child.start()
            await asyncio.to_thread(child.wait_healthy, wait_s)
        except Exception as error:
            log.error(f"{child.name} restart failed", error=type(error).__name__, at=where(error))
            await asyncio.to_thread(child.stop)
            continue
        log.info(f"{child.name} restarted")


@contextlib.asynccontextmanager
async def local_stack(
    settings: Settings,
    *,
    action_port: int | None = None,
    rasa_port: int | None = None,
    log_dir: Path | None = None,
    model: str | None = None,
    wait_s: float = 300.0,
) -> AsyncIterator[str]:
    """Action server + Rasa, supervised (restarted when one dies), for asyncio code; yields Rasa's URL once
    both answer, stops both after."""
    stack = await asyncio.to_thread(
        assistant,
        settings,
        action_port=action_port,
        rasa_port=rasa_port,
        log_dir=log_dir,
        model=model,
        wait_s=wait_s,
    )
    await prepare_tracker_store(settings)
    stack.start()
    try:
        await asyncio.to_thread(stack.wait_healthy)
        watchers = [asyncio.create_task(supervise(child, wait_s=wait_s)) for child in stack.children]
        try:
            yield stack.url
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
    finally:
        await asyncio.to_thread(stack.stop)
