"""Rate-limited logging of bad input: counts per interval, not one line per packet (issue 13 item 10).

A flood of garbage must not become a flood of log lines. ``LogLimiter.note(now, what, detail)``
logs the first ``burst`` notes of each kind per ``interval`` in full; the rest are only counted,
and the first note after the interval ends writes one line with the count of what was held back.
Sans-I/O: the caller passes ``now``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass
class _Window:
    start: float
    logged: int = 0
    held: int = 0


class LogLimiter:
    """At most ``burst`` lines per kind per ``interval`` seconds, plus one summary line."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        burst: int = 5,
        level: int = logging.INFO,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self.level = level
        self._windows: dict[str, _Window] = {}
        self.total: dict[str, int] = {}

    def note(self, now: float, what: str, detail: str) -> None:
        """One piece of bad input of kind ``what`` (e.g. "malformed SIP"), described by ``detail``."""
        self.total[what] = self.total.get(what, 0) + 1
        window = self._windows.get(what)
        if window is None or now - window.start >= self.interval:
            if window is not None and window.held:
                self._summary(what, window, now)
            window = self._windows[what] = _Window(now)
        if window.logged < self.burst:
            window.logged += 1
            self.logger.log(self.level, "%s: %s", what, detail)
        else:
            window.held += 1

    def _summary(self, what: str, window: _Window, now: float) -> None:
        self.logger.log(
            self.level,
            "%s: %d more not logged in the last %.0f s (%d in all)",
            what,
            window.held,
            now - window.start,
            self.total[what],
        )
