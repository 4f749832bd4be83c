"""Rasa custom actions for 民呼 Minhu: a thin layer over the ticket core (tickets.service).

Run with: SANIC_HOST=127.0.0.1 python -m rasa_sdk --actions actions --port 5055
"""

from actions.guard import register_plugin

# rasa-sdk imports this package in each of its worker processes before it builds its app there.
register_plugin()
