"""The ticket loop as one service: 群众点单 → 社区派单 → 党员接单 → 办结 → 评价, and the sweeper's steps.

`TicketService` is the one entry point every edge uses. Each public method is one unit of work (one session,
one transaction): it checks who is asking, validates its input, changes the ticket through the state machine
(`tickets.transitions`), appends the event and writes the outbox rows for the notifications, all or nothing.
The code lives by step of the loop:

| module | step |
| --- | --- |
| `tickets.core` | what every step shares: dependencies, unit of work, who is asking |
| `tickets.intake` | 群众点单: residents, duplicates and the hourly limit, 转人工 |
| `tickets.create` | 群众点单's hot path: group commit, the batched create-and-dispatch |
| `tickets.dispatch` | 社区派单: the one dispatch decision, re-dispatch, dispatch and reassign by hand |
| `tickets.work` | 党员接单 and the responder's work: accept, decline, return, pause, notes, 办结 |
| `tickets.followup` | 回访 / 评价, reopen (二次派单), the resident's cancel |
| `tickets.escalation` | overdue escalation (grid → community → street) and auto-close |
| `tickets.desk` | staff at the desk: escalate by hand, pause/resume, close, the reveal log |
| `tickets.retention` | how long contact details are kept; erasing them when that ends or the resident asks |
| `tickets.queries` | read-only questions the edges ask |
| `tickets.board` | the dashboard's board: filtered, keyset-paged open tickets; the events feed |
| `tickets.insights` | 民呼我应 figures, hotspots and responders for staff's scope (the dashboard) |
| `tickets.accounts` | staff accounts for the dashboard: add, password, disable, sign in (lockout) |
| `tickets.open311` | the Open311 API's public view of tickets and catalogue, and platforms' requests |
| `tickets.apikeys` | API keys of the platforms on the Open311 API: add, list, revoke, check |
"""

from __future__ import annotations

from tickets.accounts import Accounts
from tickets.apikeys import ApiKeys
from tickets.board import Board
from tickets.core import MAX_REASON, MAX_TEXT, Policy
from tickets.create import NewTicket
from tickets.desk import Desk
from tickets.followup import FollowingUp
from tickets.insights import Insights
from tickets.intake import Intake, Intaking
from tickets.open311 import OpenRequests
from tickets.queries import Queries
from tickets.retention import Retaining
from tickets.work import Working


# OpenRequests (an Intaking) comes first: a subclass goes before its base in the method order.
class TicketService(
    OpenRequests, Intaking, Working, FollowingUp, Desk, Retaining, Queries, Insights, Accounts, Board, ApiKeys
):
    """The ticket loop (see the module's table for where each step lives)."""


__all__ = ["MAX_REASON", "MAX_TEXT", "Intake", "NewTicket", "Policy", "TicketService"]
