"""`minhu chat`: talk to the assistant from a terminal, through Rasa's REST channel (buttons become
numbered choices)."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.rasa import relay_headers

QUIT = {"/quit", "/exit", "退出", "再见!"}
TERMINAL = "web:terminal-"


def terminal_sender(user: str | None = None, host: str | None = None) -> str:
    """Who the terminal chat is to the assistant when no --sender is given: one resident per user account
    on this machine, so a restarted chat is still the same resident (with their tickets) and two accounts
    or machines never share one. A hash, not the names: the channel id is stored with the resident."""
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers)
            user = str(os.getuid())
    account = f"{user}@{host or socket.gethostname()}"
    return TERMINAL + hashlib.sha256(account.encode()).hexdigest()[:10]


def identity_note(sender: str) -> str:
    """Said at the start of the chat, so that sharing an identity is never silent."""
    who = sender.partition(":")[2] or sender
    if not sender.startswith(TERMINAL):
        return f"您这次的居民身份是 {who}。"
    return (
        f"您在这台电脑上的居民身份是 {who}:重新打开对话还是您,之前的工单都能查到。"
        "如果几个人共用这台电脑的同一个账号,请每人用自己的身份,例如 minhu run --sender web:王阿姨"
        "(或 minhu chat --sender web:王阿姨),以免看到别人的工单。"
    )


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
    body = {"sender": sender, "message": message}
    async with session.post(f"{url}/webhooks/rest/webhook", json=body, headers=relay_headers(sender)) as r:
        r.raise_for_status()
        return parse_replies(await r.json())


async def chat_loop(
    url: str,
    sender: str,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> None:
    write("民呼社区助手 — 输入您的问题;输入数字选择按钮;输入 /quit 退出。")
    write(identity_note(sender))
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
