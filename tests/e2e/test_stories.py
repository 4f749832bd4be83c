"""The dialogue's test stories (tests/stories/*.yml) with `rasa test core` on the trained model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, _script, _unavailable

pytestmark = pytest.mark.slow


def test_rasa_test_core_passes_every_story(tmp_path: Path) -> None:
    if (
        not os.environ.get("MINHU_PYTHON310")
        and subprocess.run(["which", "python3.10"], capture_output=True).returncode
    ):
        _unavailable("python3.10 is not installed (needed for the Rasa venv)")
    venv = Path(_script("rasa-env.sh"))
    model = os.environ.get("MINHU_E2E_MODEL") or _script("rasa-train.sh")  # override: debugging only
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(REPO),
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        [
            str(venv / "bin" / "rasa"),
            "test",
            "core",
            "--model",
            model,
            "--stories",
            "tests/stories",
            "--out",
            str(tmp_path),
            "--fail-on-prediction-errors",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    failed = tmp_path / "failed_test_stories.yml"
    report = failed.read_text(encoding="utf-8") if failed.exists() else ""
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{report}"
    assert "story:" not in report, report
