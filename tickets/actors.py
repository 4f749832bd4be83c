"""Who is asking. Every operation names its actor so the ticket history says who did what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

KINDS = ("resident", "responder", "system")


@dataclass(frozen=True)
class Actor:
    kind: Literal["resident", "responder", "system"]
    id: int | None = None

    def __str__(self) -> str:
        return self.kind if self.id is None else f"{self.kind}:{self.id}"

    @classmethod
    def resident(cls, resident_id: int) -> Actor:
        return cls("resident", resident_id)

    @classmethod
    def responder(cls, responder_id: int) -> Actor:
        return cls("responder", responder_id)

    @classmethod
    def parse(cls, text: str) -> Actor:
        """The actor an event recorded ("responder:7", "system"); ValueError for anything else."""
        kind, _, number = text.partition(":")
        if kind not in KINDS or (kind == "system") != (number == ""):
            raise ValueError(f"not an actor: {text[:40]!r}")
        return cls(cast(Literal["resident", "responder", "system"], kind), int(number) if number else None)


SYSTEM = Actor("system")
