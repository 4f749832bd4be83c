"""The org chart as the ticket service reads it on every request: communities, grids, compounds and which
responders cover which grid. It changes only through `tickets.org.load_org`, which writes a new token to
`org_version`; the service reads that token with the residents of each batch of requests (no extra
statement) and reloads its copy when the token moved, and at the latest after `MAX_AGE` (a backstop for
hand edits in SQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ScalarSelect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tickets.errors import ValidationError
from tickets.models import Community, Compound, Grid, OrgVersion, ResponderGrid
from tickets.privacy import clean_text

MAX_AGE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Place:
    """A community or a grid (`parent` = the community's street, the grid's community)."""

    id: int
    code: str
    name: str
    parent: int


@dataclass
class OrgChart:
    version: str | None
    loaded_at: datetime
    communities: dict[int, Place] = field(default_factory=dict)
    grids: dict[int, Place] = field(default_factory=dict)
    community_keys: dict[str, Place] = field(default_factory=dict)  # code or name
    grid_keys: dict[str, Place] = field(default_factory=dict)  # code or name
    compound_grid: dict[str, int] = field(default_factory=dict)  # compound code or name -> grid id
    grid_responders: dict[int, frozenset[int]] = field(default_factory=dict)

    def stale(self, version: str | None, now: datetime) -> bool:
        return version != self.version or abs(now - self.loaded_at) > MAX_AGE

    def locate(
        self, community: str | None, compound: str | None, grid: str | None, *, home: int | None = None
    ) -> tuple[Place, Place | None]:
        """Community (by code or name) and, when the compound or grid says so, the grid."""
        compound, grid = clean_text(compound or "")[:100], clean_text(grid or "")[:64]
        grid_row = None
        if grid:
            grid_row = self.grid_keys.get(grid)
        elif compound and compound in self.compound_grid:
            grid_row = self.grids.get(self.compound_grid[compound])
        if community:
            name = clean_text(community)
            found = (
                self.community_keys.get(name)
                or self.community_keys.get(f"{name}社区")
                or self._fail(f"没有找到“{name[:20]}”这个社区,请从列表中选择您所在的社区。")
            )
        elif grid_row is not None:
            found = self.communities[grid_row.parent]
        elif home is not None and home in self.communities:
            found = self.communities[home]
        else:
            raise ValidationError("请告诉我们您住在哪个社区,方便安排就近的工作人员。")
        if grid_row is not None and grid_row.parent != found.id:
            grid_row = None  # a compound of another community: trust the community the resident chose
        return found, grid_row

    @staticmethod
    def _fail(message: str) -> Place:
        raise ValidationError(message)


def version_column() -> ScalarSelect[str]:
    """The current token, to read alongside another query."""
    return select(OrgVersion.version).where(OrgVersion.id == 1).scalar_subquery()


async def current_version(session: AsyncSession) -> str | None:
    return await session.scalar(select(version_column()))


async def load(session: AsyncSession | AsyncConnection, version: str | None, now: datetime) -> OrgChart:
    chart = OrgChart(version, now)
    for c in (
        await session.execute(select(Community.id, Community.code, Community.name, Community.street_id))
    ).all():
        place = Place(c[0], c[1], c[2], c[3])
        chart.communities[place.id] = place
    for g in (await session.execute(select(Grid.id, Grid.code, Grid.name, Grid.community_id))).all():
        place = Place(g[0], g[1], g[2], g[3])
        chart.grids[place.id] = place
    # Codes win over names, and of equal names the oldest row (as a lookup by name would mostly return).
    for places, keys in ((chart.communities, chart.community_keys), (chart.grids, chart.grid_keys)):
        for place in sorted(places.values(), key=lambda p: p.id, reverse=True):
            keys[place.name] = place
        for place in places.values():
            keys[place.code] = place
    compounds = (
        await session.execute(select(Compound.id, Compound.code, Compound.name, Compound.grid_id))
    ).all()
    for _id, _code, name, grid_id in sorted(compounds, reverse=True):
        chart.compound_grid[name] = grid_id
    for _id, code, _name, grid_id in compounds:
        chart.compound_grid[code] = grid_id
    members: dict[int, set[int]] = {}
    for responder_id, grid_id in (
        await session.execute(select(ResponderGrid.responder_id, ResponderGrid.grid_id))
    ).all():
        members.setdefault(grid_id, set()).add(responder_id)
    chart.grid_responders = {g: frozenset(r) for g, r in members.items()}
    return chart


async def bump_version(session: AsyncSession) -> str:
    """A new token: every cached copy of the org chart is stale from this transaction's commit on."""
    token = uuid.uuid4().hex
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(OrgVersion)
        .values(id=1, version=token)
        .on_conflict_do_update(index_elements=["id"], set_={"version": token})
    )
    return token
