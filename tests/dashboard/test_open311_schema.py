"""The Open311 API against its own OpenAPI document (dashboard/open311.openapi.json), with schemathesis: the
real application served on a real port of 127.0.0.1 (over the test org on SQLite, with public and sensitive
tickets and a valid API key put into the generated POSTs), every operation called with generated valid and
invalid inputs. No answer may be a 5xx, and every answer must match the document (status codes, content
types, bodies). Modest example counts keep it under a minute; it never skips (CI runs it)."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashboard.app import HANDLER_ARGS, make_app
from dashboard.open311 import KEY_LIMITER, OPENAPI
from tests.conftest import FIXTURES, MONDAY_9AM
from tests.dashboard.conftest import SECRET
from tickets.catalogue import Catalogue
from tickets.clock import ManualClock
from tickets.create import NewTicket
from tickets.db import create_engine, session_factory, unit_of_work
from tickets.models import Responder
from tickets.org import load_org, parse_org
from tickets.service import TicketService

EXAMPLES = 30  # per operation and phase


@dataclass
class Served:
    url: str
    key: str


async def _start(db: Path) -> tuple[web.AppRunner, AsyncEngine, Served]:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    catalogue = Catalogue.load()
    clock = ManualClock(MONDAY_9AM)
    service = TicketService(session_factory(engine), clock=clock, catalogue=catalogue)
    async with unit_of_work(service.sessions) as session:
        await load_org(session, parse_org(FIXTURES / "org.yml"), catalogue)
        assert await session.scalar(select(Responder.id).limit(1))
    resident = await service.resident_for("test:schema")
    await service.remember_resident(resident.id, community="anju")
    for category, text in [
        ("facility_repair", "我叫王小明,电话13812345678,安居苑3栋501室门口路灯坏了"),
        ("environment", "幸福家园垃圾没人收 <script>alert(1)</script>"),
        ("legal_aid", "老板拖欠工资"),
    ]:
        await service.create_ticket(NewTicket(resident.id, category, text, compound="安居苑"))
    key = (await service.add_api_key("schemathesis"))[1]
    app = make_app(service, secret=SECRET, clock=clock)
    app[KEY_LIMITER].limit = 100_000  # the checks, not the rate limit (tested in test_open311)
    runner = web.AppRunner(app, **HANDLER_ARGS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, engine, Served(f"http://127.0.0.1:{port}", key)


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[Served]:
    """The application on a real port, its event loop in a thread of its own (schemathesis calls it with
    blocking HTTP from the test's thread)."""
    db = tmp_path / "minhu.db"
    shutil.copy(sqlite_template, db)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner, engine, found = asyncio.run_coroutine_threadsafe(_start(db), loop).result(60)
    try:
        yield found
    finally:

        async def stop() -> None:
            await runner.cleanup()
            await engine.dispose()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def open311_schema(served: Served) -> Any:
    schema = schemathesis.openapi.from_url(f"{served.url}/open311/v2/openapi.json")
    schema.config.update(base_url=f"{served.url}/open311/v2")
    return schema


# Every operation of the document with generated valid (positive) inputs, and those that take any input
# with invalid (negative) ones too.
OPERATIONS = [
    (path, method, mode)
    for path, item in json.loads(OPENAPI.read_text(encoding="utf-8"))["paths"].items()
    for method, spec in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or spec.get("parameters") or spec.get("requestBody")
]


def test_the_served_document_is_the_file_in_the_repo(served: Served) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{served.url}/open311/v2/openapi.json", timeout=10) as response:
        document = json.load(response)
    assert document == json.loads(OPENAPI.read_text(encoding="utf-8"))
    with urllib.request.urlopen(f"{served.url}/open311/v2/services.json", timeout=10) as response:
        services = [s["service_code"] for s in json.load(response)]
    # The document lists the service codes a POST takes: the catalogue's public ones, kept in step.
    assert document["components"]["schemas"]["NewRequest"]["properties"]["service_code"]["enum"] == services


@pytest.mark.parametrize(
    ("path", "method", "mode"), OPERATIONS, ids=[f"{m.upper()} {p} {g}" for p, m, g in OPERATIONS]
)
def test_open311_answers_match_the_document(
    open311_schema: Any, served: Served, path: str, method: str, mode: GenerationMode
) -> None:
    operation = open311_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case: Any) -> None:
        if method == "post" and isinstance(case.body, dict) and "api_key" in case.body:
            case.body["api_key"] = served.key  # a real key: POSTs get past it to the checks behind it
        # A schema-valid POST may still name a place we do not serve, or repeat one: Open311 answers those
        # 400 in its error format, so "valid data is accepted" cannot hold for it (every other check does).
        excluded = [positive_data_acceptance] if method == "post" else []
        case.call_and_validate(excluded_checks=excluded)

    check()
