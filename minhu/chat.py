"""`minhu chat` and `minhu serve`: talk to the assistant from a terminal, through Rasa's REST channel.

`serve` starts the local stack first: the rasa-sdk action server (this venv, 127.0.0.1:5055) and
`rasa run --enable-api` (the Rasa venv from scripts/rasa-env.sh, 127.0.0.1:5005, the model from
scripts/rasa-train.sh), waits until both are healthy, keeps the deadline sweeper running, then chats.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from minhu.settings import PROJECT_ROOT, Settings

QUIT = {"/quit", "/exit", "退出", "再见!"}


@dataclass
class Reply:
    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (title, payload)


def parse_replies(raw: list[dict[str, Any]]) -> list[Reply]:
    return [
        Reply(
            str(item.get("text") or ""),
            [(str(b.get("title")), str(b.get("payload"))) for b in item.get("buttons") or []],
        )
        for item in raw
    ]


def render(replies: list[Reply]) -> tuple[str, list[str]]:
    """The bot's messages as terminal text; buttons become numbered choices. Returns the text and the
    payloads in choice order."""
    lines: list[str] = []
    payloads: list[str] = []
    for reply in replies:
        if reply.text:
            lines.extend(
                f"助手: {line}" if i == 0 else f"      {line}"
                for i, line in enumerate(reply.text.splitlines())
            )
        for title, payload in reply.buttons:
            payloads.append(payload)
            lines.append(f"      [{len(payloads)}] {title}")
    return "\n".join(lines), payloads


def resolve_choice(line: str, payloads: list[str]) -> str:
    """A number picks a button; anything else is sent as typed."""
    text = line.strip()
    if text.isdigit() and 1 <= int(text) <= len(payloads):
        return payloads[int(text) - 1]
    return text


async def send(session: aiohttp.ClientSession, url: str, sender: str, message: str) -> list[Reply]:
    async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": message}) as r:
        r.raise_for_status()
        return parse_replies(await r.json())


async def chat_loop(
    url: str,
    sender: str,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> None:
    write("民呼社区助手 — 输入您的问题;输入数字选择按钮;输入 /quit 退出。")
    payloads: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while True:
            try:
                line = await asyncio.to_thread(read, "您: ")
            except (EOFError, KeyboardInterrupt):
                break
            if line.strip() in QUIT:
                break
            message = resolve_choice(line, payloads)
            if not message:
                continue
            try:
                replies = await send(session, url, sender, message)
            except (aiohttp.ClientError, TimeoutError) as error:
                write(f"(连接助手失败: {error};请确认 Rasa 正在运行:{url})")
                continue
            text, payloads = render(replies)
            write(text or "助手: (没有回复)")
    write("再见!")


# ------------------------------------------------------------------------------------ local stack


def _script(name: str) -> str:
    done = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / name)], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/{name} failed:\n{done.stderr[-2000:]}")
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


async def serve(settings: Settings, *, sender: str, sweep_every: float = 60.0, chat: bool = True) -> None:
    from minhu.runner import load_demo_org_if_empty, sweep_forever
    from minhu.wiring import open_service

    async with open_service(settings) as service:
        with contextlib.suppress(FileNotFoundError):
            await load_demo_org_if_empty(service)
        sweeper = asyncio.create_task(sweep_forever(service, sweep_every))
        try:
            async with local_stack(settings) as url:
                print(f"Rasa: {url}  动作服务器: http://127.0.0.1:5055  日志: {settings.data_dir / 'logs'}")
                if chat:
                    await chat_loop(url, sender)
                else:
                    await asyncio.Event().wait()
        finally:
            sweeper.cancel()
