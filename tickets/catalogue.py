"""The service catalogue (服务目录): categories, responder roles and their deadlines (categories.yml), and the
life-safety guide (emergencies.yml: the emergency numbers and what to do now, by kind of danger), loaded from
YAML."""

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
    unit: str  # "m" working minutes, "h" working hours or "d" working days

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", str(text))
        if not match or int(match.group(1)) <= 0:
            raise ValueError(f"bad duration {text!r}: use e.g. 30m, 4h or 3d")
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
    # Shown on public interfaces (Open311: the city platform's list of requests). A sensitive category is
    # never public; others (social assistance: a family's means) may be kept off the public list too.
    public: bool = True
    listed: bool = True  # offered to residents as a category to choose (not the emergency one)
    cues: tuple[str, ...] = ()  # words that surely name a problem of this category (tickets/problems.py)


@dataclass(frozen=True)
class EmergencyKind:
    """One kind of danger (or the default for any other): its numbers and the first reply."""

    code: str
    name: str
    numbers: tuple[str, ...]
    reply: str


@dataclass(frozen=True)
class Emergencies:
    """生命安全: the emergency numbers (110 / 119 / 120 / 12356) and what to say first, by kind of danger
    (the kinds of nlu/emergency_net.py); `category` is the catalogue category of the urgent ticket
    offered after the numbers."""

    category: str
    numbers: dict[str, str]  # number -> what it is for
    kinds: dict[str, EmergencyKind]
    default: EmergencyKind

    def kind(self, code: str | None) -> EmergencyKind:
        """The kind the NLU reported; the default (every number) for unknown, multiple or none."""
        return self.kinds.get(code or "", self.default)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Emergencies:
        numbers = {str(k): str(v) for k, v in raw["numbers"].items()}

        def kind(code: str, spec: dict[str, Any]) -> EmergencyKind:
            found = EmergencyKind(
                code, str(spec["name"]), tuple(str(n) for n in spec["numbers"]), spec["reply"]
            )
            unknown = [n for n in found.numbers if n not in numbers]
            if not found.numbers or unknown:
                raise ValueError(
                    f"emergency kind {code}: numbers {unknown or 'missing'} not in the numbers list"
                )
            missing = [n for n in found.numbers if n not in found.reply]
            if missing:
                raise ValueError(f"emergency kind {code}: the reply does not say {missing}")
            return found

        return cls(
            category=str(raw["category"]),
            numbers=numbers,
            kinds={code: kind(code, spec) for code, spec in raw["kinds"].items()},
            default=kind("default", raw["default"]),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> Emergencies:
        path = path or Path(__file__).parent / "data" / "emergencies.yml"
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Catalogue:
    categories: dict[str, Category]
    role_names: dict[Role, str]
    timezone: str
    office_start: time
    office_end: time
    emergencies: Emergencies | None = None  # emergencies.yml beside categories.yml, when there is one

    def get(self, code: str) -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise UnknownCategory(category=code) from None

    @classmethod
    def _from_dict(cls, raw: dict[str, Any], emergencies: Emergencies | None) -> Catalogue:
        start, end = (time.fromisoformat(t) for t in raw["calendar"]["office_hours"])
        if start >= end:
            raise ValueError("office_hours must start before they end")
        categories = {}
        for code, spec in raw["categories"].items():
            mode = DispatchMode(spec.get("dispatch", "direct"))
            sensitive = bool(spec.get("sensitive", False))
            public = bool(spec.get("public", not sensitive))
            if sensitive and public:
                raise ValueError(f"category {code}: a sensitive category cannot be public")
            categories[code] = Category(
                code=code,
                name=spec["name"],
                roles=tuple(Role(r) for r in spec["roles"]),
                respond_within=Duration.parse(spec["respond_within"]),
                resolve_within=Duration.parse(spec["resolve_within"]),
                dispatch=mode,
                offer_to=int(spec.get("offer_to", 1)),
                sensitive=sensitive,
                public=public,
                listed=bool(spec.get("listed", True)),
                cues=tuple(spec.get("cues", ())),
            )
        return cls(
            categories=categories,
            role_names={Role(k): v for k, v in raw["roles"].items()},
            timezone=raw["calendar"]["timezone"],
            office_start=start,
            office_end=end,
            emergencies=emergencies,
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any], emergencies: Emergencies | None = None) -> Catalogue:
        catalogue = cls._from_dict(raw, emergencies)
        if emergencies is not None and emergencies.category not in catalogue.categories:
            raise ValueError(f"emergencies.yml: category {emergencies.category!r} is not in the catalogue")
        return catalogue

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        path = path or Path(__file__).parent / "data" / "categories.yml"
        beside = path.with_name("emergencies.yml")
        emergencies = Emergencies.load(beside) if beside.exists() else None
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), emergencies)

    @property
    def listed(self) -> list[Category]:
        """The categories a resident may choose (buttons, the guide's offers)."""
        return [c for c in self.categories.values() if c.listed]

    @property
    def public(self) -> list[Category]:
        """The categories whose requests public interfaces (Open311) may show and take."""
        return [c for c in self.categories.values() if c.public]
