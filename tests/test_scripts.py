"""scripts/rasa-train.sh with MINHU_SCRIPT_LOG (as `make run` and `minhu run` call it): Rasa's training
output and warnings go to the log file, the terminal gets one line while it trains, nothing when the model is
up to date, and the log's last lines when training fails. Run on a copy of the scripts with a stand-in `rasa`
(a real training takes minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE_RASA = """#!/usr/bin/env bash
# A stand-in for `rasa train`: Rasa's noise on both streams, then the model (or a failure).
echo "DeprecationWarning: pkg_resources is deprecated as an API"
echo "Epochs: 100%|##########| 40/40 t_loss=2.41" >&2
[[ -n "${FAIL:-}" ]] && { echo "rasa: training failed: bad domain" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case "$1" in --out) out=$2; shift ;; --fixed-model-name) name=$2; shift ;; esac
  shift
done
echo model > "$out/$name.tar.gz"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the scripts and the training inputs, with a Rasa venv whose `rasa` is the stand-in."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("rasa-train.sh", "quiet.sh"):
        shutil.copy2(ROOT / "scripts" / name, repo / "scripts" / name)
    for name in ("config.yml", "domain.yml"):
        shutil.copy2(ROOT / name, repo / name)
    (repo / "nlu" / "components").mkdir(parents=True)
    shutil.copy2(ROOT / "nlu" / "rasa-constraints.txt", repo / "nlu")
    (repo / "nlu" / "greet.yml").write_text("version: '3.1'\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "rasa").write_text(FAKE_RASA)
    env_script = repo / "scripts" / "rasa-env.sh"
    env_script.write_text(f"#!/usr/bin/env bash\necho {venv}\n")
    for script in (venv / "bin" / "rasa", env_script):
        script.chmod(0o755)
    return repo


def train(project: Path, log: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project / "scripts" / "rasa-train.sh")],
        env={**os.environ, "MINHU_CACHE": str(project.parent / "cache"), "MINHU_SCRIPT_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_training_output_goes_to_the_log_and_the_terminal_gets_one_line(project: Path) -> None:
    log = project / "data" / "logs" / "rasa-train.log"
    first = train(project, log)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines() == [f"正在训练模型…(几分钟到十几分钟,进度见 {log})"]
    model = first.stdout.splitlines()[-1]
    assert Path(model).is_file() and first.stdout.strip() == model
    assert "DeprecationWarning" in log.read_text() and "Epochs" in log.read_text()

    again = train(project, log)  # up to date: nothing on the terminal
    assert again.returncode == 0 and again.stderr == "" and again.stdout.strip() == model


def test_a_failed_training_shows_the_end_of_the_log(project: Path) -> None:
    log = project / "data" / "logs" / "rasa-train.log"
    failed = train(project, log, FAIL="1")
    assert failed.returncode == 1
    assert "出错了 (failed): rasa train failed" in failed.stderr
    assert "rasa: training failed: bad domain" in failed.stderr  # the log's last lines
