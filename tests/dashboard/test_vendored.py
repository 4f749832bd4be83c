"""Vendored front-end files are exactly what their VENDORED.md records (version, licence, sha256)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[2] / "dashboard" / "static" / "vendor"
ROW = re.compile(r"^\|\s*([\w./-]+)\s*\|\s*([0-9a-f]{64})\s*\|$", re.M)


@pytest.mark.parametrize("folder", sorted(p for p in VENDOR.iterdir() if p.is_dir()), ids=lambda p: p.name)
def test_each_vendored_file_matches_its_recorded_sha256(folder: Path) -> None:
    notes = (folder / "VENDORED.md").read_text(encoding="utf-8")
    recorded = dict(ROW.findall(notes))
    assert recorded, "VENDORED.md records no checksum"
    assert (folder / "LICENSE").is_file()
    version = folder.name.rsplit("-", 1)[1]
    assert version in notes.splitlines()[0]
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_echarts_is_vendored_and_used_by_the_figures_page() -> None:
    (folder,) = VENDOR.glob("echarts-*")
    assert "Apache License" in (folder / "LICENSE").read_text(encoding="utf-8")
    template = (VENDOR.parents[1] / "templates" / "figures.html").read_text(encoding="utf-8")
    figures = (VENDOR.parents[1] / "figures.py").read_text(encoding="utf-8")
    assert f"/static/vendor/{folder.name}/echarts.min.js" in figures
    assert "echarts }}" in template
