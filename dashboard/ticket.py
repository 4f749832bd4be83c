"""工单 (/tickets/{number}): one ticket, its history and the staff's actions."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Routes come with the ticket page."""
