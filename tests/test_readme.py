"""The README's Layout table names only what is there (it listed a `dashboard/` that does not exist yet)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH_LIKE = re.compile(r"^[\w.-]+(/[\w.-]*)*$")


def layout_rows() -> list[tuple[list[str], list[str]]]:
    """(names in the first column, names in the second) of each row of the Layout table, in backticks."""
    section = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first, second = line.split("|")[1:3]
            rows.append((re.findall(r"`([^`]+)`", first), re.findall(r"`([^`]+)`", second)))
    return rows


def test_every_folder_and_file_in_the_layout_exists() -> None:
    rows = layout_rows()
    assert len(rows) >= 10
    missing = []
    for folders, mentioned in rows:
        missing += [name for name in folders if not (ROOT / name).exists()]
        paths = [n for n in mentioned if PATH_LIKE.match(n) and ("/" in n or re.search(r"\.[a-z]+$", n))]
        missing += [n for n in paths if not any((ROOT / base / n).exists() for base in ["", *folders])]
    assert not missing, missing
