"""nlu/rasa_server.py's patches to Rasa 3.6.21's hot path change nothing Rasa accepts, rejects or returns:
checked in the Rasa venv against Rasa's own functions (tests/e2e/rasa_venv/check_server_patches.py).
The conversations in this folder run through the patched server."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import run_in_rasa_venv


def test_server_patches_behave_like_rasa(rasa: Path) -> None:
    done = run_in_rasa_venv(rasa, "check_server_patches.py", {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.stdout.count(" ok") >= 20, done.stdout  # every check ran
