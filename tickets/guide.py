"""一次性告知: the certificate list and common consultations, answered in one message, without a ticket.

A resident's words are matched against each entry's name and aliases (rapidfuzz, so "底保" and "单身证明"
still find their entries)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz, process

MATCH_THRESHOLD = 80


class EntryKind(StrEnum):
    ISSUED = "certificate_issued"  # the community still issues it
    ABOLISHED = "certificate_abolished"  # no longer issued by the community: where to go instead
    CONSULTATION = "consultation"


@dataclass(frozen=True)
class Entry:
    kind: EntryKind
    name: str
    aliases: tuple[str, ...]
    answer: str  # the full answer, one message
    category: str | None = None  # the ticket category, when the resident wants help

    @property
    def offers_help(self) -> bool:
        """Whether the community can do it for the resident. An abolished certificate cannot be issued by
        the community, so offering to have it issued would contradict the answer."""
        return self.kind is not EntryKind.ABOLISHED


def _issued(raw: dict[str, Any], office: dict[str, str]) -> Entry:
    # Whether it is still needed comes first: "most no longer need it" after "we issue it" reads as a
    # contradiction.
    lines = [f"【{raw['name']}】" + (f"先提醒您:{raw['note']}。" if raw.get("note") else "")]
    lines += [
        ("确实需要的话," if raw.get("note") else "") + "社区可以开具。",
        "需要带:" + "、".join(raw["materials"]) + "。",
        f"在哪里办:{office['where']}({office['hours']})。",
        f"多久办好:{raw['time']}。",
        f"网上办理:{raw['online']}。",
    ]
    return Entry(EntryKind.ISSUED, raw["name"], tuple(raw["aliases"]), "\n".join(lines), "certificate")


def _abolished(raw: dict[str, Any]) -> Entry:
    where = "不用再开这个证明" if raw["instead"] == "不再需要" else f"请到:{raw['instead']}"
    text = f"【{raw['name']}】社区已经不再开具,{where}。\n{raw['detail']}"
    return Entry(EntryKind.ABOLISHED, raw["name"], tuple(raw["aliases"]), text, "certificate")


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
            Entry(EntryKind.CONSULTATION, c["name"], tuple(c["aliases"]), c["answer"].strip(), c["category"])
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
        return [e.name for e in self.entries if e.kind is EntryKind.ISSUED]
