"""nlu/rasa_server.py's patches to Rasa 3.6.21's hot path change nothing Rasa accepts, rejects or returns:
checked in the Rasa venv against Rasa's own functions (tests/e2e/rasa_venv/check_server_patches.py).
The conversations in this folder run through the patched server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.e2e.conftest import REPO


def test_server_patches_behave_like_rasa(rasa: Path) -> None:
    python = str(rasa.with_name("python"))
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    done = subprocess.run(
        [python, str(REPO / "tests" / "e2e" / "rasa_venv" / "check_server_patches.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count(" ok") >= 20, done.stdout  # every check ran
