"""Org chart import: 街道 → 社区 → 网格 → 小区, and the responders, from YAML. Idempotent: every row is
keyed by its code, so loading the same file twice changes nothing and a second file updates in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tickets import orgchart
from tickets.catalogue import Catalogue, Role
from tickets.errors import DomainError
from tickets.models import Base, Community, Compound, Grid, Responder, ResponderContact, Street
from tickets.privacy import normalize_phone


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompoundSpec(_Spec):
    code: str
    name: str
    buildings: int | None = None


class GridSpec(_Spec):
    code: str
    name: str
    households: int | None = None
    compounds: list[CompoundSpec] = []


class CommunitySpec(_Spec):
    code: str
    name: str
    grids: list[GridSpec] = []


class ResponderSpec(_Spec):
    code: str
    name: str
    role: Role
    community: str | None = None  # None: street-level
    grids: list[str] = []
    categories: list[str] = []
    capacity: int = Field(default=5, ge=0, le=1000)
    on_duty: bool = True
    phone: str | None = None
    contacts: dict[str, str] = {}


class StreetSpec(_Spec):
    code: str
    name: str
    communities: list[CommunitySpec] = []
    responders: list[ResponderSpec] = []


class OrgSpec(_Spec):
    streets: list[StreetSpec]


@dataclass
class LoadReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, created: bool) -> None:
        bucket = self.created if created else self.updated
        bucket[kind] = bucket.get(kind, 0) + 1

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


M = TypeVar("M", bound=Base)


def parse_org(path: Path) -> OrgSpec:
    raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    return OrgSpec.model_validate(raw)


async def _upsert(
    session: AsyncSession, model: type[M], code: str, values: dict[str, Any], report: LoadReport
) -> M:
    row: M | None = (await session.scalars(select(model).filter_by(code=code))).one_or_none()
    if row is None:
        row = model(code=code, **values)
        session.add(row)
        await session.flush()
        report.count(model.__tablename__, created=True)
        return row
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    if changed:
        report.count(model.__tablename__, created=False)
    return row


async def load_org(session: AsyncSession, spec: OrgSpec, catalogue: Catalogue) -> LoadReport:
    report = LoadReport()
    for street_spec in spec.streets:
        street = await _upsert(session, Street, street_spec.code, {"name": street_spec.name}, report)
        communities: dict[str, Community] = {}
        grids: dict[str, Grid] = {}
        for c in street_spec.communities:
            community = await _upsert(
                session, Community, c.code, {"name": c.name, "street_id": street.id}, report
            )
            communities[c.code] = community
            for g in c.grids:
                grid = await _upsert(
                    session,
                    Grid,
                    g.code,
                    {"name": g.name, "community_id": community.id, "households": g.households},
                    report,
                )
                grids[g.code] = grid
                for p in g.compounds:
                    await _upsert(
                        session,
                        Compound,
                        p.code,
                        {"name": p.name, "grid_id": grid.id, "buildings": p.buildings},
                        report,
                    )
        for r in street_spec.responders:
            await _load_responder(session, r, street, communities, grids, catalogue, report)
    await session.flush()
    await orgchart.bump_version(session)
    return report


async def _load_responder(
    session: AsyncSession,
    spec: ResponderSpec,
    street: Street,
    communities: dict[str, Community],
    grids: dict[str, Grid],
    catalogue: Catalogue,
    report: LoadReport,
) -> None:
    if spec.community is not None and spec.community not in communities:
        raise ValueError(f"responder {spec.code}: unknown community {spec.community!r}")
    if spec.community is None and spec.role is not Role.STREET_STAFF:
        raise ValueError(f"responder {spec.code}: only street_staff may have no community")
    try:
        phone = normalize_phone(spec.phone) if spec.phone else None
        for category in spec.categories:
            catalogue.get(category)
    except DomainError as error:  # name the responder: an org file has dozens
        raise ValueError(f"responder {spec.code}: {error.message}") from None
    community = communities[spec.community] if spec.community else None
    their_grids = []
    for code in spec.grids:
        grid = grids.get(code)
        if grid is None or community is None or grid.community_id != community.id:
            raise ValueError(f"responder {spec.code}: grid {code!r} is not in community {spec.community!r}")
        their_grids.append(grid)
    created_before = report.created.get(Responder.__tablename__, 0)
    responder = await _upsert(
        session,
        Responder,
        spec.code,
        {
            "name": spec.name,
            "role": spec.role,
            "street_id": street.id,
            "community_id": community.id if community else None,
            "categories": sorted(spec.categories),
            "capacity": spec.capacity,
            "on_duty": spec.on_duty,
            "phone": phone,
            "active": True,
        },
        report,
    )
    new = report.created.get(Responder.__tablename__, 0) > created_before
    await session.refresh(responder, ["grids", "contacts"])
    if {g.id for g in responder.grids} != {g.id for g in their_grids}:
        responder.grids = their_grids
        report.count("responder_grids", created=new)
    # The file sets the accounts of the channels it names; an account bound with /join on a channel the file
    # does not name is kept (reloading the org chart must not log staff out).
    have = {c.channel: c for c in responder.contacts}
    changed = False
    for channel, handle in sorted(spec.contacts.items()):
        contact = have.get(channel)
        if contact is None:
            responder.contacts.append(ResponderContact(channel=channel, handle=handle))
        elif contact.handle != handle:
            contact.handle = handle  # in place: one account per responder and channel
        else:
            continue
        changed = True
    if changed:
        report.count("responder_contacts", created=new)
