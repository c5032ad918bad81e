"""The last log lines kept in memory for the system page and ``GET /api/v1/log``."""

from __future__ import annotations

import logging
from collections import deque

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
WATCHED_LOGGERS = ("securephone", "uvicorn.error")


class RingBufferHandler(logging.Handler):
    """A logging handler that keeps the newest ``capacity`` formatted records."""

    def __init__(self, capacity: int = 500, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a logging handler must never raise
            self.handleError(record)

    def tail(self, count: int = 200) -> list[str]:
        """The newest ``count`` lines, oldest first."""
        if count <= 0:
            return []
        return list(self.lines)[-count:]

    def attach(self) -> None:
        """Listen to the phone's and the web server's loggers (at the levels they are set to)."""
        for name in WATCHED_LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.handlers:
                logger.addHandler(self)

    def detach(self) -> None:
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(self)
