"""Builds the ticket service from settings: the composition root every process uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.datakeys import keyring_from
from app.settings import Settings
from tickets import crypto
from tickets.db import create_engine, ensure_migrated, session_factory
from tickets.service import Policy, TicketService


def configure_data_keys(settings: Settings) -> crypto.Keyring:
    """Hand the domain the keys that encrypt phones at rest (tickets.crypto): every process does this once,
    before it reads or writes a phone (open_engine does it; `minhu db upgrade` too, for the migrations)."""
    keyring = keyring_from(settings)
    crypto.configure(keyring)
    return keyring


@asynccontextmanager
async def open_engine(settings: Settings, *, require_migrated: bool = True) -> AsyncIterator[AsyncEngine]:
    """The database engine, with the data keys configured."""
    configure_data_keys(settings)
    engine = create_engine(settings.db_url)
    try:
        if require_migrated:
            await ensure_migrated(engine)
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[TicketService]:
    """The ticket service on a migrated database; refuses an unmigrated one (DatabaseNotMigrated)."""
    async with open_engine(settings) as engine:
        yield TicketService(session_factory(engine), policy=policy_from(settings))


def policy_from(settings: Settings) -> Policy:
    return Policy(
        auto_close_after=timedelta(days=settings.auto_close_days),
        keep_contact_for=timedelta(days=settings.keep_contact_days),
        max_tickets_per_hour=settings.max_tickets_per_hour or None,
        duplicate_window=(
            timedelta(hours=settings.duplicate_window_hours) if settings.duplicate_window_hours else None
        ),
    )
