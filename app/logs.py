"""Logging without personal data, for every process: where an error was raised, never its traceback."""

from __future__ import annotations

import traceback
from pathlib import Path


def where(error: BaseException) -> str:
    """Where an error was raised (file:line), for logs: tracebacks with their local variables would carry
    residents' messages and phone numbers into the log."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
