"""benchmarks/webchat_speed.py at a tiny size, so the script cannot rot: 3 web residents and the same
conversations on the REST channel (Rasa's, faked here: tests/fake_rasa.py, scripted to ask one form question),
then an offer to 5 open volunteer pages, on SQLite and PostgreSQL. The figures are not checked, only that
every message was answered and every page showed the offer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_SERVER
from tests.fake_rasa import FakeRasa

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "webchat_speed.py"

pytestmark = pytest.mark.slow


def form(sender: str, message: str) -> list[dict[str, Any]]:
    """A request, one question (a cue of the form: the benchmark answers 急不急 with 不急), then the ticket."""
    return [{"text": "已受理,工单号 MH-20261129-0001"}] if message == "不急" else [{"text": "急不急?"}]


async def run(rasa: FakeRasa, db: str, figures: Path, *extra: str) -> tuple[str, int | None]:
    """The script against the fake Rasa: what it printed, its exit code."""
    await rasa.start()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            *("--db", db, "--pg", PG_SERVER, "--rasa-url", rasa.url, "--json", str(figures)),
            *("--residents", "3", "--think", "0", "--warmup-think", "0", "--rounds", "1"),
            *("--pages", "5", "--offers", "1", "--offer-gap", "0.2", "--wait", "20"),
            *extra,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 240)
    finally:
        await rasa.stop()
    return out.decode(), process.returncode


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_webchat_benchmark_runs_at_a_tiny_size(
    db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if db == "postgres":
        request.getfixturevalue("pg_database")  # skipped (or failed in CI) without the server
    figures = tmp_path / "figures.json"
    rasa = FakeRasa(script=form)
    printed, code = asyncio.run(run(rasa, db, figures))
    assert code == 0, printed[-3000:]
    assert "relay overhead" in printed and "offers to 5 open volunteer pages" in printed, printed[-3000:]

    result = json.loads(figures.read_text())
    phases = result["chat"]["phases"]
    assert [p["path"] for p in phases] == ["web", "rest"]
    for phase in phases:  # each resident: the request, the question answered, the ticket
        assert phase["tickets"] == 3 and len(phase["seconds"]) == 6 and not phase["errors"], phase
    server = result["chat"]["server"]
    assert len(server["handler_s"]) == 6  # the web process timed each message, and the Rasa call inside it
    assert len(server["rasa_in_handler_s"]) == 6 and all(
        0 < r < h for r, h in zip(server["rasa_in_handler_s"], server["handler_s"], strict=True)
    )
    (offer,) = result["offers"]["rounds"]
    assert offer["offered"] >= 5 and offer["shown"]["n"] == 5 and offer["lost"] == 0, offer
    # The web chat's messages reached the fake Rasa as a relay sends them: web senders, the sender header.
    assert all(sender.startswith("web:") for sender, _ in rasa.received)
    assert len(rasa.received) == 12 + 12  # the 2 phases, and the warm-up (as many residents, a path each)


def test_the_web_and_rest_side_by_side(tmp_path: Path) -> None:
    """--together: each phase runs the web residents and as many REST ones at the same time."""
    figures = tmp_path / "figures.json"
    rasa = FakeRasa(script=form)
    printed, code = asyncio.run(run(rasa, "sqlite", figures, "--parts", "chat", "--together"))
    assert code == 0, printed[-3000:]
    assert "side by side: the same Rasa queue" in printed, printed[-3000:]
    phases = json.loads(figures.read_text())["chat"]["phases"]
    assert [p["path"] for p in phases] == ["web", "rest"]
    for phase in phases:
        assert phase["tickets"] == 3 and len(phase["seconds"]) == 6 and not phase["errors"], phase
    assert phases[1]["cpu_ms_per_msg"]["web"] == 0.0  # the web process's CPU is the web messages'
    assert len(rasa.received) == 12 + 12
