"""Dependencies point one way (docs: the Layout table in README): the command line (minhu/) above the edges
(bot/, actions/, dashboard/), the edges above app/ (settings, wiring), app/ above the domain (tickets/)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGES = {"bot", "actions", "dashboard"}
NEVER_IMPORTS = {
    "tickets": {"app", "minhu", *EDGES},
    "app": {"minhu", *EDGES},
    "bot": {"minhu", *EDGES - {"bot"}},
    "actions": {"minhu", *EDGES - {"actions"}},
    "dashboard": {"minhu", *EDGES - {"dashboard"}},
    "nlu": {"tickets", "app", "minhu", *EDGES},  # runs in the Rasa venv
}


def imports_of(package: str) -> dict[str, list[str]]:
    """Top-level package -> where it is imported ("file:line"), for every import in the package's source,
    inside functions too."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_walker_sees_imports_inside_functions_too() -> None:
    imported = imports_of("minhu")
    assert any(place.startswith("minhu/cli.py") for place in imported["bot"])  # `minhu bot` starts it late
    assert "tickets" in imports_of("bot") and "app" in imports_of("actions")


# A package not written yet (dashboard/ before its issue) has nothing to check.
@pytest.mark.parametrize("package", sorted(p for p in NEVER_IMPORTS if (ROOT / p).is_dir()))
def test_package_imports_nothing_above_or_beside_it(package: str) -> None:
    imported = imports_of(package)
    wrong = {name: imported[name] for name in sorted(NEVER_IMPORTS[package] & imported.keys())}
    assert wrong == {}


def test_minhu_sweep_does_not_load_telegram(tmp_path: Path) -> None:
    """`minhu sweep` on a database migrated by `minhu db upgrade`, in a fresh interpreter: it sweeps, and
    python-telegram-bot never gets imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINHU_DATA_DIR": str(tmp_path), "DATABASE_URL": ""}

    def minhu(*args: str) -> str:
        code = (
            "import sys\n"
            "from minhu.cli import app\n"
            "try:\n"
            f"    app({list(args)!r})\n"
            "finally:\n"
            "    print('telegram modules:', sorted(m for m in sys.modules if m.split('.')[0] == 'telegram'))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "created the schema" in minhu("db", "upgrade")
    swept = minhu("sweep").splitlines()
    assert swept == [
        "escalated 0, auto-closed 0, contacts erased 0, conversations deleted 0",
        "telegram modules: []",
    ]


def test_the_dashboard_writes_no_sql() -> None:
    """dashboard/ reaches the data only through TicketService: no SQLAlchemy, no database driver."""
    imported = imports_of("dashboard")
    assert not {"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3"} & imported.keys()
