"""The signed-in staff member as the dashboard's pages see it (re-exported by dashboard.auth)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StaffUser:
    """A signed-in staff account and the responder it is in the org chart: its scope is that responder's
    community (None: street staff, the whole street)."""

    account_id: int
    username: str
    responder_id: int
    name: str
    community_id: int | None
    street_id: int
    is_admin: bool
