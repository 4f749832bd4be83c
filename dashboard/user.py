"""The signed-in staff member as the dashboard's pages see it (re-exported by dashboard.auth): the domain's
`StaffLogin` (account, the responder it is in the org chart, its scope: community None = the whole street)."""

from __future__ import annotations

from tickets.accounts import StaffLogin

StaffUser = StaffLogin

__all__ = ["StaffUser"]
