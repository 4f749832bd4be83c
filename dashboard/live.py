"""Live updates (/live, server-sent events)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Routes come with the live updates."""
