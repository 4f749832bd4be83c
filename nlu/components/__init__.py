"""Custom Rasa 3.6 graph components (run in the Rasa Python 3.10 venv; no app imports)."""
