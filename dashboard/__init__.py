"""The staff dashboard (issue 14): an aiohttp web application over the domain (`tickets.service`), one edge
beside `bot/` and `actions/`. No SQL here: every read and change goes through `TicketService`."""
