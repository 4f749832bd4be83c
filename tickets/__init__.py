"""Minhu ticket domain: the 群众点单 → 社区派单 → 党员接单 → 办结 → 评价 loop.

Plain code: no Telegram, Rasa or HTTP here."""
