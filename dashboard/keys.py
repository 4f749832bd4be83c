"""The application's keys (re-exported by dashboard.app): page modules read the service and the clock
through them."""

from __future__ import annotations

from aiohttp import web

from dashboard.user import StaffUser
from tickets.clock import Clock
from tickets.service import TicketService

SERVICE = web.AppKey("service", TicketService)
CLOCK = web.AppKey("clock", Clock)
LIVE_EVERY = web.AppKey("live_every", float)
USER = web.RequestKey("user", StaffUser)  # set by dashboard.auth.signed_in
