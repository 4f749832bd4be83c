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
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from minhu.settings import PROJECT_ROOT, Settings


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


async def _healthy(url: str, process: subprocess.Popen[bytes], wait_s: float, needle: str | None) -> None:
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: process exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200 and (needle is None or needle in await response.text()):
                        return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} not healthy after {wait_s:.0f}s")


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
    }
    action_cmd = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(action_port)]
    rasa_cmd = [str(venv / "bin" / "rasa"), "run", "--enable-api", "--model", model]
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


@contextlib.asynccontextmanager
async def local_stack(
    settings: Settings,
    *,
    action_port: int = 5055,
    rasa_port: int = 5005,
    log_dir: Path | None = None,
    model: str | None = None,
) -> AsyncIterator[str]:
    """Action server + Rasa as subprocesses; yields Rasa's URL once both answer."""
    processes = await asyncio.to_thread(
        start_stack, settings, action_port, rasa_port, log_dir or settings.data_dir / "logs", model
    )
    try:
        await _healthy(f"http://127.0.0.1:{action_port}/health", processes[0], 60, None)
        await _healthy(f"http://127.0.0.1:{rasa_port}/status", processes[1], 300, "model_file")
        yield f"http://127.0.0.1:{rasa_port}"
    finally:
        await asyncio.to_thread(stop, processes)
