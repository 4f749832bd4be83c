"""一次性告知: the certificate list and common consultations, answered in one message, without a ticket.

A resident's words are matched against each entry's name and aliases (rapidfuzz, so "底保" and "单身证明"
still find their entries)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz, process

MATCH_THRESHOLD = 80


@dataclass(frozen=True)
class Entry:
    kind: str  # certificate_issued, certificate_abolished, consultation
    name: str
    aliases: tuple[str, ...]
    answer: str  # the full answer, one message
    category: str | None = None  # a consultation's ticket category, when the resident wants help


def _issued(raw: dict[str, Any], office: dict[str, str]) -> Entry:
    lines = [
        f"【{raw['name']}】社区可以开具。",
        "需要带:" + "、".join(raw["materials"]) + "。",
        f"在哪里办:{office['where']}({office['hours']})。",
        f"多久办好:{raw['time']}。",
        f"网上办理:{raw['online']}。",
    ]
    if raw.get("note"):
        lines.append(f"提醒:{raw['note']}。")
    return Entry("certificate_issued", raw["name"], tuple(raw["aliases"]), "\n".join(lines), "certificate")


def _abolished(raw: dict[str, Any]) -> Entry:
    where = "不用再开这个证明" if raw["instead"] == "不再需要" else f"请到:{raw['instead']}"
    text = f"【{raw['name']}】社区已经不再开具,{where}。\n{raw['detail']}"
    return Entry("certificate_abolished", raw["name"], tuple(raw["aliases"]), text, "certificate")


class Guide:
    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self._keys: list[tuple[str, Entry]] = [(k, e) for e in entries for k in (e.name, *e.aliases)]

    @classmethod
    def load(cls, path: Path | None = None) -> Guide:
        raw = yaml.safe_load(
            (path or Path(__file__).parent / "data" / "guide.yml").read_text(encoding="utf-8")
        )
        office = raw["office"]
        entries = [_issued(c, office) for c in raw["certificates"]["issued"]]
        entries += [_abolished(c) for c in raw["certificates"]["abolished"]]
        entries += [
            Entry("consultation", c["name"], tuple(c["aliases"]), c["answer"].strip(), c["category"])
            for c in raw["consultations"]
        ]
        return cls(entries)

    def lookup(self, text: str) -> Entry | None:
        """The entry the text asks about, or None. A name or alias inside the text wins outright; otherwise
        the closest alias by partial similarity, if close enough."""
        text = (text or "").strip()
        if not text:
            return None
        contained = [(len(key), entry) for key, entry in self._keys if key in text]
        if contained:
            return max(contained, key=lambda pair: pair[0])[1]
        best = process.extractOne(text, [k for k, _ in self._keys], scorer=fuzz.partial_ratio)
        if best is None or best[1] < MATCH_THRESHOLD or len(text) < 2:
            return None
        return self._keys[best[2]][1]

    def certificate_names(self) -> list[str]:
        return [e.name for e in self.entries if e.kind == "certificate_issued"]
