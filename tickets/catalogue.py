"""The service catalogue (服务目录): categories, responder roles and their deadlines, loaded from YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from tickets.errors import UnknownCategory


class Role(StrEnum):
    PARTY_VOLUNTEER = "party_volunteer"
    GRID_WORKER = "grid_worker"
    COMMUNITY_STAFF = "community_staff"
    LEGAL_ADVISER = "legal_adviser"
    MEDIATOR = "mediator"
    SOCIAL_WORKER = "social_worker"
    PROPERTY_CONTACT = "property_contact"
    STREET_STAFF = "street_staff"

    @property
    def is_staff(self) -> bool:
        """Staff dispatch, reassign and see the queue; everybody else only answers tickets."""
        return self in (Role.COMMUNITY_STAFF, Role.STREET_STAFF)


class DispatchMode(StrEnum):
    DIRECT = "direct"
    GRAB = "grab"  # 抢单


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # "h" working hours or "d" working days

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = re.fullmatch(r"\s*(\d+)\s*([hd])\s*", str(text))
        if not match or int(match.group(1)) <= 0:
            raise ValueError(f"bad duration {text!r}: use e.g. 4h or 3d")
        return cls(int(match.group(1)), match.group(2))


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    roles: tuple[Role, ...]
    respond_within: Duration
    resolve_within: Duration
    dispatch: DispatchMode = DispatchMode.DIRECT
    offer_to: int = 1
    sensitive: bool = False


@dataclass(frozen=True)
class Catalogue:
    categories: dict[str, Category]
    role_names: dict[Role, str]
    timezone: str
    office_start: time
    office_end: time

    def get(self, code: str) -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise UnknownCategory(category=code) from None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Catalogue:
        start, end = (time.fromisoformat(t) for t in raw["calendar"]["office_hours"])
        if start >= end:
            raise ValueError("office_hours must start before they end")
        categories = {}
        for code, spec in raw["categories"].items():
            mode = DispatchMode(spec.get("dispatch", "direct"))
            categories[code] = Category(
                code=code,
                name=spec["name"],
                roles=tuple(Role(r) for r in spec["roles"]),
                respond_within=Duration.parse(spec["respond_within"]),
                resolve_within=Duration.parse(spec["resolve_within"]),
                dispatch=mode,
                offer_to=int(spec.get("offer_to", 1)),
                sensitive=bool(spec.get("sensitive", False)),
            )
        return cls(
            categories=categories,
            role_names={Role(k): v for k, v in raw["roles"].items()},
            timezone=raw["calendar"]["timezone"],
            office_start=start,
            office_end=end,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        path = path or Path(__file__).parent / "data" / "categories.yml"
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))
