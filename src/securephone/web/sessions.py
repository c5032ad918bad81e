"""Web sessions in memory: random 256-bit ids, a CSRF token each, an idle timeout.

The cookie handling and the login checks that use them are in :mod:`securephone.web.auth`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MAX_SESSIONS", "Session", "SessionStore"]

log = logging.getLogger("securephone.web")

MAX_SESSIONS = 200


@dataclass
class Session:
    """One logged-in browser."""

    id: str
    user: str
    csrf: str
    must_change: bool
    last_seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)


class SessionStore:
    """Sessions in memory with an idle timeout."""

    def __init__(
        self, idle_seconds: Callable[[], float], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._idle = idle_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, user: str, must_change: bool) -> Session:
        """A fresh session (a new id at every login: no session fixation)."""
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            self._sessions.pop(oldest.id, None)
        session = Session(
            secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), must_change, self._clock()
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (and mark it used), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = self._clock()
        if session is None:
            return None
        if now - session.last_seen > self._idle():
            self._sessions.pop(session_id, None)
            log.info("web session of %s ended after the idle timeout", session.user)
            return None
        session.last_seen = now
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def drop_user(self, user: str, keep: str | None = None) -> None:
        """End every session of ``user`` except ``keep`` (after a password change)."""
        for sid in [s.id for s in self._sessions.values() if s.user == user and s.id != keep]:
            self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now, idle = self._clock(), self._idle()
        for sid in [s.id for s in self._sessions.values() if now - s.last_seen > idle]:
            self._sessions.pop(sid, None)
