"""The loop as a city platform (a 12345 system) sees it through Open311 GeoReport v2: the public catalogue
(services), the public view of tickets with the standard filters, and requests the platform files for its
own reporters.

Public means: only categories the catalogue marks public (never a sensitive one: legal aid, neighbour
disputes, social assistance, emergencies — their tickets look not found); the resident's words with phones,
ID numbers, people's names and home numbers masked (`tickets.privacy.public_text`); the place only as the
street, community and grid; never a resident's or a responder's name, phone or home address.

A platform's reporter becomes a Resident named only by a keyed hash: one per (API key, the platform's
account_id, else e-mail, else device id); a request that names none gets a resident of its own. No name or
e-mail is kept; a phone given for call-back is kept on the ticket, encrypted, like any resident's."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select

from tickets import crypto, orgchart
from tickets.apikeys import ApiClient
from tickets.catalogue import Category
from tickets.create import NewTicket
from tickets.errors import TicketNotFound, UnknownCategory, ValidationError
from tickets.intake import Intaking
from tickets.models import Community, Grid, Level, Status, Street, Ticket, TicketEvent
from tickets.privacy import clean_text, public_text, scrub

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100  # a larger page_size is served as this many (the spec lets the server cap it)
MAX_PAGE = 100  # pages beyond: narrow the dates instead (no deep OFFSET scans)
DEFAULT_WINDOW = timedelta(days=90)  # no dates given: the last 90 days, as GeoReport v2 says
MAX_DESCRIPTION = 1000  # characters of a resident's text shown (masked first, then cut)
CHANNEL = "open311"


class PublicStatus(StrEnum):
    """GeoReport's two statuses: open while someone is awaited or at work; closed once resolved (waiting
    only for the resident's rating), closed or cancelled."""

    OPEN = "open"
    CLOSED = "closed"

    @classmethod
    def of(cls, status: Status) -> PublicStatus:
        return cls.OPEN if Status(status).is_open else cls.CLOSED

    @property
    def statuses(self) -> tuple[Status, ...]:
        return tuple(s for s in Status if PublicStatus.of(s) is self)


@dataclass(frozen=True)
class PublicService:
    code: str
    name: str
    description: str
    keywords: tuple[str, ...]
    group: str


@dataclass(frozen=True)
class RequestFilter:
    """GeoReport's filters of GET requests; every field optional, all combine (AND)."""

    numbers: tuple[str, ...] = ()  # service_request_id
    service_codes: tuple[str, ...] = ()
    statuses: tuple[PublicStatus, ...] = ()
    start: datetime | None = None  # requested at or after (aware)
    end: datetime | None = None  # requested at or before (aware)
    page: int = 1
    page_size: int = PAGE_SIZE


@dataclass(frozen=True)
class PublicRequest:
    number: str
    status: PublicStatus
    status_notes: str
    service_code: str
    service_name: str
    description: str
    agency_responsible: str
    requested: datetime
    updated: datetime
    expected: datetime | None  # the promised 办结 time while open
    address: str  # street · community · grid, never a home
    address_id: str | None  # the grid's (else the community's) code in the org chart


@dataclass(frozen=True)
class ExternalRequest:
    """A request a platform files (POST requests), as the edge read it."""

    service_code: str
    description: str
    address_id: str | None = None  # a compound, grid or community code of the org chart
    address_string: str | None = None  # must name a compound or community we know
    phone: str | None = None  # for call-back: kept on the ticket, encrypted
    account_id: str | None = None  # the reporter on the platform: only its hash is kept
    email: str | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class Submitted:
    number: str
    notice: str
    duplicate: bool


def _service(category: Category, role_names: dict[Any, str]) -> PublicService:
    who = "、".join(role_names.get(r, str(r)) for r in category.roles)
    return PublicService(
        code=category.code,
        name=category.name,
        description=f"{category.name}:由{who}办理。",
        keywords=category.cues,
        group="社区服务",
    )


class OpenRequests(Intaking):
    def public_services(self) -> list[PublicService]:
        """The categories a platform may see and file: public and offered to residents."""
        return [_service(c, self.catalogue.role_names) for c in self.catalogue.public if c.listed]

    async def public_requests(self, where: RequestFilter) -> list[PublicRequest]:
        """One page of public tickets matching `where`, newest first."""
        page_size = max(1, min(where.page_size, MAX_PAGE_SIZE))
        if not 1 <= where.page <= MAX_PAGE:
            raise ValidationError(
                f"page 应在 1 到 {MAX_PAGE} 之间;更早的诉求请用 start_date 和 end_date 缩小范围。"
            )
        start, end = where.start, where.end
        if start is None and end is None:
            start = self.clock.now() - DEFAULT_WINDOW
        codes = {c.code for c in self.catalogue.public}
        if where.service_codes:
            codes &= set(where.service_codes)
        query = self._public_query().where(Ticket.category.in_(sorted(codes)))
        if where.numbers:
            query = query.where(Ticket.number.in_([clean_text(n).upper()[:32] for n in where.numbers]))
        if where.statuses:
            query = query.where(Ticket.status.in_([s for p in where.statuses for s in p.statuses]))
        if start is not None:
            query = query.where(Ticket.created_at >= start)
        if end is not None:
            query = query.where(Ticket.created_at <= end)
        query = query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
        query = query.offset((where.page - 1) * page_size).limit(page_size)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return await asyncio.to_thread(lambda: [self._public(*row) for row in rows])

    async def public_request(self, number: str) -> PublicRequest:
        """One public ticket; a sensitive category's looks not found, as an unknown number does."""
        wanted = clean_text(number).upper()[:32]
        codes = sorted(c.code for c in self.catalogue.public)
        query = self._public_query().where(Ticket.number == wanted, Ticket.category.in_(codes))
        async with self.sessions() as session:
            row = (await session.execute(query)).first()
        if row is None:
            raise TicketNotFound(number=scrub(wanted))
        return await asyncio.to_thread(self._public, *row)

    async def open311_submit(self, client: ApiClient, request: ExternalRequest) -> Submitted:
        """A real ticket for a platform's reporter, through the residents' way in (`intake`: a repeat of
        the reporter's open request joins it; the hourly limit applies)."""
        category = self.catalogue.categories.get(request.service_code)
        if category is None or not category.public or not category.listed:
            raise UnknownCategory(category=clean_text(request.service_code)[:32])
        self._validate_text(request.description)
        community, grid = await self._place(request.address_id, request.address_string)
        resident = await self.resident_for(_reporter(client, request))
        found = await self.intake(
            NewTicket(
                resident_id=resident.id,
                category=category.code,
                text=request.description,
                community=community.code,
                grid=grid.code if grid else None,
                address=clean_text(request.address_string or "")[:200] or None,
                phone=request.phone or None,
                intent=CHANNEL,
            )
        )
        ticket = found.ticket
        if found.duplicate:
            notice = f"与同一反映人尚未办结的相同诉求合并,工单号 {ticket.number}。"
        else:
            due = ticket.respond_by.astimezone(self.calendar.tz).strftime("%Y-%m-%d %H:%M")
            notice = f"已受理,工单号 {ticket.number},{community.name}将在 {due} 前响应。"
        return Submitted(ticket.number, notice, found.duplicate)

    # ------------------------------------------------------------------ the pieces

    @staticmethod
    def _public_query() -> Any:
        updated = select(func.max(TicketEvent.at)).where(TicketEvent.ticket_id == Ticket.id).scalar_subquery()
        return (
            select(Ticket, Street.name, Community.name, Community.code, Grid.name, Grid.code, updated)
            .join(Community, Community.id == Ticket.community_id)
            .join(Street, Street.id == Ticket.street_id)
            .outerjoin(Grid, Grid.id == Ticket.grid_id)
        )

    def _public(
        self,
        ticket: Ticket,
        street: str,
        community: str,
        community_code: str,
        grid: str | None,
        grid_code: str | None,
        updated: datetime | None,
    ) -> PublicRequest:
        category = self.catalogue.categories.get(ticket.category)
        status = PublicStatus.of(ticket.status)
        shown = scrub(ticket.text)[:MAX_DESCRIPTION]  # masked before cutting: a cut never splits a phone
        return PublicRequest(
            number=ticket.number,
            status=status,
            status_notes=ticket.progress_label,
            service_code=ticket.category,
            service_name=category.name if category else ticket.category,
            description=public_text(shown),
            agency_responsible=street if ticket.level >= Level.STREET else f"{street}{community}",
            requested=ticket.created_at,
            updated=updated or ticket.created_at,
            expected=ticket.resolve_by if status is PublicStatus.OPEN else None,
            address=" · ".join(filter(None, [street, community, grid])),
            address_id=grid_code or community_code,
        )

    async def _place(
        self, address_id: str | None, address_string: str | None
    ) -> tuple[orgchart.Place, orgchart.Place | None]:
        """The community and grid a platform's location names: an address_id (a compound, grid or
        community code), else the first compound or community named in address_string."""
        async with self.sessions() as session:
            chart = await self._org(session, await orgchart.current_version(session))
        key = clean_text(address_id or "")[:64]
        if key:
            if key in chart.compound_grid or key in chart.grid_keys:
                grid = (
                    chart.grids[chart.compound_grid[key]]
                    if key in chart.compound_grid
                    else chart.grid_keys[key]
                )
                return chart.communities[grid.parent], grid
            if key in chart.community_keys:
                return chart.community_keys[key], None
            raise ValidationError("address_id 不是我们登记的小区、网格或社区编码。")
        text = clean_text(address_string or "")
        if text:
            for name in sorted(chart.compound_grid, key=len, reverse=True):  # the longest name that fits
                if name in text:
                    grid = chart.grids[chart.compound_grid[name]]
                    return chart.communities[grid.parent], grid
            for name in sorted(chart.community_keys, key=len, reverse=True):
                if name in text:
                    return chart.community_keys[name], None
            raise ValidationError("address_string 里没有我们服务的小区或社区名称,请写明小区或社区。")
        raise ValidationError("请提供 address_id(小区、网格或社区编码)或写明小区名称的 address_string。")


def _reporter(client: ApiClient, request: ExternalRequest) -> str:
    """The channel id of the platform's reporter: a keyed hash (HMAC under the data key, so the stored
    value cannot be checked against a guessed e-mail without the key) of who they are on the platform, or
    a resident of their own when the request does not say. No name or e-mail is kept. After a data key
    rotation a reporter's next request starts a new resident (only duplicate linking notices)."""
    identities = (("account", request.account_id), ("email", request.email), ("device", request.device_id))
    who = next(
        (f"{kind}:{value.strip().lower()}" for kind, value in identities if value and value.strip()), None
    )
    if who is None:
        return f"{CHANNEL}:{client.id}:once-{uuid.uuid4().hex}"
    message = f"open311 reporter\x00{client.id}\x00{who}".encode("utf-8", "surrogatepass")
    digest = hmac.new(crypto.keyring().current.secret, message, hashlib.sha256).hexdigest()[:40]
    return f"{CHANNEL}:{client.id}:{digest}"
