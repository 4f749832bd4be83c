"""Logging without personal data, for every process: where an error was raised, never its traceback."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import structlog


def where(error: BaseException) -> str:
    """Where an error was raised (file:line), for logs: tracebacks with their local variables would carry
    residents' messages and phone numbers into the log."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""


def log_to_file(path: Path) -> None:
    """This process's logs (structlog's, the libraries' and Python's warnings) go to `path` instead of the
    terminal, which a terminal chat keeps for the conversation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
