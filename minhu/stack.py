"""The local assistant stack for `minhu run`: the rasa-sdk action server (this venv, 127.0.0.1:5055) and
`rasa run --enable-api` (the Rasa venv from scripts/rasa-env.sh, 127.0.0.1:5005, the model from
scripts/rasa-train.sh, trained only when its inputs changed), as subprocesses with their logs in the
data folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from app.settings import PROJECT_ROOT, Settings


def _script(name: str) -> str:
    """Run a repo script with its progress (stderr) on the terminal; its last stdout line is a path."""
    done = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / name)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/{name} failed (exit {done.returncode}); see the messages above")
    return done.stdout.strip().splitlines()[-1]


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], wait_s: float, log: Path, needle: str = ""
) -> None:
    """Poll url until it answers 200 (with needle in the body); fail early if the process died."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200 and needle in response.read().decode():
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} not healthy after {wait_s:.0f}s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def start_stack(
    settings: Settings, action_port: int, rasa_port: int, log_dir: Path, model: str | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start the action server and Rasa (their output goes to log_dir); the model defaults to the one
    scripts/rasa-train.sh trains for the current inputs."""
    venv = Path(_script("rasa-env.sh"))
    model = model or _script("rasa-train.sh")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
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
    }
    action_cmd = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(action_port)]
    # nlu.rasa_server is `rasa` with a fix to its per-message hot path (see that module).
    rasa_cmd = [
        str(venv / "bin" / "python"),
        "-m",
        "nlu.rasa_server",
        "run",
        "--enable-api",
        "--model",
        model,
    ]
    rasa_cmd += ["--endpoints", "endpoints.yml", "--credentials", "credentials.yml"]
    rasa_cmd += ["--interface", "127.0.0.1", "--port", str(rasa_port)]
    processes = []
    for cmd, log in ((action_cmd, "actions.log"), (rasa_cmd, "rasa.log")):
        with (log_dir / log).open("ab") as out:
            processes.append(
                subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            )
    return processes


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def running(
    settings: Settings,
    *,
    action_port: int = 5055,
    rasa_port: int = 5005,
    log_dir: Path | None = None,
    model: str | None = None,
    wait_s: float = 300,
) -> Iterator[str]:
    """Action server + Rasa as subprocesses; yields Rasa's URL once both answer, stops both after."""
    log_dir = log_dir or settings.data_dir / "logs"
    processes = start_stack(settings, action_port, rasa_port, log_dir, model)
    try:
        wait_healthy(f"http://127.0.0.1:{action_port}/health", processes[0], wait_s, log_dir / "actions.log")
        rasa_status = f"http://127.0.0.1:{rasa_port}/status"
        wait_healthy(rasa_status, processes[1], wait_s, log_dir / "rasa.log", needle="model_file")
        yield f"http://127.0.0.1:{rasa_port}"
    finally:
        stop(processes)


@contextlib.asynccontextmanager
async def local_stack(settings: Settings, **options: Any) -> AsyncIterator[str]:
    """`running` for asyncio code: starting and stopping happen off the event loop."""
    stack = running(settings, **options)
    url = await asyncio.to_thread(stack.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(stack.__exit__, None, None, None)
