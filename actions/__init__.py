"""Rasa custom actions for 民呼 Minhu: a thin layer over the ticket core (tickets.service).

Run with: SANIC_HOST=127.0.0.1 python -m rasa_sdk --actions actions --port 5055
"""

from actions import guard, health

# rasa-sdk imports this package in each of its worker processes before it builds its app there: its error
# answers (actions/guard.py) and its /healthz, /readyz and /metrics (actions/health.py).
for plugin in (guard, health):
    guard.register_plugin(plugin)
