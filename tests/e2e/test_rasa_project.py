"""The Rasa project itself, checked by Rasa's own tools in the Rasa venv: `rasa data validate
--fail-on-warnings` on the domain and all training data, and the test stories (tests/stories/) with
`rasa test core` on the trained model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, _script

pytestmark = pytest.mark.slow


def run_rasa(rasa: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(REPO),
        "PYTHONWARNINGS": "ignore",
    }
    return subprocess.run(
        [str(rasa), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_rasa_data_validate_has_no_warnings(rasa: Path) -> None:
    done = run_rasa(rasa, "data", "validate", "--domain", "domain.yml", "--data", "nlu", "--fail-on-warnings")
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_rasa_test_core_passes_every_story(rasa: Path, tmp_path: Path) -> None:
    model = os.environ.get("MINHU_E2E_MODEL") or _script("rasa-train.sh")  # override: debugging only
    done = run_rasa(
        rasa,
        "test",
        "core",
        "--model",
        model,
        "--stories",
        "tests/stories",
        "--out",
        str(tmp_path),
        "--fail-on-prediction-errors",
    )
    failed = tmp_path / "failed_test_stories.yml"
    report = failed.read_text(encoding="utf-8") if failed.exists() else ""
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{report}"
    assert "story:" not in report, report
