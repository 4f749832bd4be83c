"""End to end: the REAL Rasa 3.6 server (trained model, REST channel) and the REAL rasa-sdk action server,
both on loopback ports, on one temporary SQLite database.

The Rasa venv (Python 3.10) comes from scripts/rasa-env.sh and the model from scripts/rasa-train.sh (both
cached). Locally a machine without Python 3.10 skips these tests; with CI=true it fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from alembic import command
from sqlalchemy import select

from app.settings import Settings
from bot.rasa import relay_headers
from minhu.stack import Assistant, running
from tests.browser.conftest import browser, chromium, page, shot, shot_prefix, viewport  # noqa: F401
from tests.conftest import write_test_key_file
from tickets.catalogue import Catalogue
from tickets.db import alembic_config, create_engine, session_factory, unit_of_work
from tickets.models import Responder, Ticket
from tickets.org import load_org, parse_org
from tickets.service import TicketService

REPO = Path(__file__).resolve().parents[2]


def run_in_rasa_venv(
    rasa: Path, script: str, env: dict[str, str] | None = None, *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run tests/e2e/rasa_venv/`script` with the Rasa venv's Python from the repository's root (telemetry
    off, the repository importable, `env` added to this process's environment); fails with its output when
    it exits non-zero."""
    done = subprocess.run(
        [str(rasa.with_name("python")), str(REPO / "tests" / "e2e" / "rasa_venv" / script)],
        cwd=REPO,
        env={
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "PYTHONPATH": str(REPO),
            "PYTHONWARNINGS": "ignore",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


ORG = REPO / "tests" / "fixtures" / "org.yml"
STARTUP_TIMEOUT = float(os.environ.get("MINHU_E2E_STARTUP_TIMEOUT", "240"))

pytestmark = pytest.mark.slow

# What a resident answers to each question of the request form (a cue in the bot's reply -> the answer).
FORM_ANSWERS = {
    "请核对": "确认",  # first: the read-back also mentions the phone
    "具体说说": "已经好几天了,一直没人来处理,影响我们正常生活",
    "哪个社区": "安居社区",
    "哪个小区": "安居苑",
    "几栋": "3栋2单元501",
    "联系电话": "13912345678",
    "急不急": "不急",
}


# What the bot says when the request form is over: registered, a duplicate, cancelled, stored for later.
FORM_OVER = ("已受理", "已经反映过", "已取消", "已经保存了您的留言", "稍等")


def form_reply(said: str, answers: dict[str, str] | None = None) -> str | None:
    """What a resident answers to the bot's words `said` in the request form (FORM_ANSWERS, `answers` over
    them); None when the form is over. A reply with no known question fails the test."""
    if any(cue in said for cue in FORM_OVER):
        return None
    for cue, reply in {**FORM_ANSWERS, **(answers or {})}.items():
        if cue in said:
            return reply
    raise AssertionError(f"unexpected bot reply: {said!r}")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"end-to-end tests need Rasa in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _script(*args: str) -> str:
    """Run a repo script; its last stdout line is the path it reports."""
    done = subprocess.run(
        [str(REPO / "scripts" / args[0]), *args[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        _unavailable(f"{args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def rasa() -> Path:
    """The `rasa` command of the Rasa venv (created if needed)."""
    if shutil.which("python3.10") is None and not os.environ.get("MINHU_PYTHON310"):
        _unavailable("python3.10 is not installed (needed for the Rasa venv)")
    return Path(_script("rasa-env.sh")) / "bin" / "rasa"


@dataclass
class Stack:
    rasa_url: str
    action_url: str
    db_url: str
    data_dir: Path
    assistant: Assistant  # to stop and start a server mid-test

    @property
    def webhook(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    @property
    def token(self) -> str:
        """Rasa's API token (`running` sets it for the run)."""
        return os.environ.get("MINHU_RASA_TOKEN", "")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("python3.10") is None and not os.environ.get("MINHU_PYTHON310"):
        _unavailable("python3.10 is not installed (needed for the Rasa venv)")
    venv = Path(_script("rasa-env.sh"))
    model = os.environ.get("MINHU_E2E_MODEL") or _script("rasa-train.sh")  # override: debugging only
    rasa = venv / "bin" / "rasa"
    if not rasa.exists():
        _unavailable(f"no rasa in {venv}")

    data_dir = tmp_path_factory.mktemp("e2e")
    write_test_key_file(data_dir)  # the action server stores phones under the key the tests read with
    db_file = data_dir / "minhu.db"
    db_url = f"sqlite+aiosqlite:///{db_file}"
    command.upgrade(alembic_config(db_url), "head")

    async def load() -> None:
        engine = create_engine(db_url)
        async with unit_of_work(session_factory(engine)) as session:
            await load_org(session, parse_org(ORG), Catalogue.load())
        await engine.dispose()

    asyncio.run(load())

    settings = Settings(MINHU_DATA_DIR=data_dir, DATABASE_URL=db_url)
    ports = {"action_port": free_port(), "rasa_port": free_port()}
    try:
        with running(settings, **ports, log_dir=data_dir, model=model, wait_s=STARTUP_TIMEOUT) as assistant:
            action_url = f"http://127.0.0.1:{ports['action_port']}"
            yield Stack(assistant.url, action_url, db_url, data_dir, assistant)
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def core(stack: Stack) -> AsyncIterator[TicketService]:
    """The ticket core on the stack's database, for setting up and checking what the chat did."""
    engine = create_engine(stack.db_url)
    yield TicketService(session_factory(engine))
    await engine.dispose()


class Chat:
    """One resident talking to the bot through Rasa's REST channel, as the terminal chat does: a relay (the
    relay secret `running` set) naming the sender `web:<sender>`."""

    def __init__(self, http: aiohttp.ClientSession, stack: Stack, sender: str) -> None:
        self.http, self.stack, self.sender = http, stack, sender
        self.replies: list[dict[str, Any]] = []

    async def say(self, text: str, message_id: str | None = None) -> list[dict[str, Any]]:
        body = {"sender": f"web:{self.sender}", "message": text}
        if message_id is not None:  # as app/relay.py names a stored message
            body["message_id"] = message_id
        async with self.http.post(
            self.stack.webhook,
            json=body,
            headers=relay_headers(),
        ) as response:
            assert response.status == 200, await response.text()
            self.replies = list(await response.json())
        return self.replies

    @property
    def text(self) -> str:
        return "\n".join(str(r.get("text") or "") for r in self.replies)

    @property
    def buttons(self) -> list[str]:
        return [b["title"] for r in self.replies for b in r.get("buttons") or []]

    async def answer_form(
        self, answers: dict[str, str] | None = None, max_turns: int = 14, until: str | None = None
    ) -> str:
        """Answer the request form's questions until the request is registered (or the form ends, or the
        bot says `until`)."""
        for _ in range(max_turns):
            said = self.text
            if until is not None and until in said:
                return said
            reply = form_reply(said, answers)
            if reply is None:
                return said
            await self.say(reply)
        raise AssertionError(f"form did not finish for {self.sender}: {self.text!r}")


async def resolve(core: TicketService, ticket: Ticket, note: str) -> Ticket:
    """Accept and resolve a chat's ticket so that 回访 can start: by its assignee, or by staff-a dispatching it
    by hand when every grid worker is at capacity (the e2e database is shared by the session's tests)."""
    worker = ticket.assignee_id
    if worker is None:
        async with core.sessions() as session:
            staff = await session.scalar(select(Responder.id).where(Responder.code == "staff-a"))
        assert staff is not None
        worker = staff
        await core.dispatch(ticket.number, staff, worker, "人工派单")
    await core.accept(ticket.number, worker)
    return await core.resolve(ticket.number, worker, note)
