"""The Telegram face of Minhu (issue 5): residents, responders and staff on one python-telegram-bot application, and the outbox delivery."""
