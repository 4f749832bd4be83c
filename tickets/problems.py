"""Several problems in one message (“楼下垃圾好几天没人收,路灯也坏了”): each becomes its own ticket, because
one ticket is routed to one category's responders and counted once in the 民呼我应 figures.

The message is cut into clauses and each clause is put under the category whose cue words it contains
(categories.yml `cues`). Deliberately cautious: a clause with cues of two categories means the message is not
split at all, and a clause without cues belongs to the problem before it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tickets.catalogue import Catalogue

# Punctuation, spaces and the words residents join two matters with.
_CLAUSE_BREAK = re.compile(r"[,,。;;!!??、\s]+|还有|另外|而且|并且|再就是|再一个|顺便|顺带")


@dataclass(frozen=True)
class Problem:
    category: str
    text: str


def problems(text: str, catalogue: Catalogue) -> list[Problem]:
    """The distinct problems the message names, in the order said, one per category; a single problem (or
    none found, or an unsure message) gives at most one."""
    clauses = [c for c in _CLAUSE_BREAK.split(text or "") if c]
    parts: dict[str, list[str]] = {}
    lead: list[str] = []  # clauses before the first cue: they set the scene for the first problem
    current: str | None = None
    for clause in clauses:
        named = {c.code for c in catalogue.listed if any(cue in clause for cue in c.cues)}
        if len(named) > 1:
            return []
        if named:
            current = named.pop()
            parts.setdefault(current, [*lead] if not parts else [])
        if current is None:
            lead.append(clause)
        else:
            parts[current].append(clause)
    return [Problem(category, ",".join(said)) for category, said in parts.items()]
