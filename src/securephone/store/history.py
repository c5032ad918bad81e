"""Call history in SQLite: one row per ended call, newest first, bounded in size.

The database file is created with mode 0600 (it names the people called). Rows are written
from the phone's event loop; each write is a single small transaction.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    remote TEXT NOT NULL,
    account TEXT,
    ended_at REAL NOT NULL,
    answered INTEGER NOT NULL,
    duration REAL NOT NULL,
    reason TEXT NOT NULL,
    sip_status INTEGER,
    transport TEXT,
    tls_version TEXT,
    media_encryption TEXT
)
"""


@dataclass(frozen=True)
class CallRecord:
    """One finished call as the status page and the API show it."""

    id: int
    call_id: str
    direction: str
    remote: str
    account: str | None
    ended_at: float
    answered: bool
    duration: float
    reason: str
    sip_status: int | None
    transport: str | None
    tls_version: str | None
    media_encryption: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


def _record_values(summary: dict[str, Any], ended_at: float) -> tuple[Any, ...]:
    signalling = summary.get("signalling") or {}
    tls = signalling.get("tls") or {}
    media = summary.get("media") or {}
    return (
        str(summary.get("call_id", "")),
        str(summary.get("direction", "")),
        str(summary.get("remote", "")),
        summary.get("account"),
        ended_at,
        1 if summary.get("answered") else 0,
        float(summary.get("duration") or 0.0),
        str(summary.get("reason", "")),
        summary.get("sip_status"),
        signalling.get("transport"),
        tls.get("version"),
        _encryption(media),
    )


def _encryption(media: dict[str, Any]) -> str | None:
    """ "none" for plain RTP, the SRTP suite name (or "srtp") when encrypted, None without media."""
    if not media:
        return None
    encryption = media.get("encryption")
    srtp = media.get("srtp")
    if encryption in (None, "none"):
        return "none"
    if isinstance(srtp, dict) and srtp.get("suite"):
        return str(srtp["suite"])
    return str(encryption)


class CallHistory:
    """The call log: ``record`` a finished call's summary, read the ``recent`` ones."""

    def __init__(self, path: Path | None, max_entries: int = 1000) -> None:
        self.path = path
        self.max_entries = max_entries
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(":memory:" if path is None else str(path))
        self._db.execute(_SCHEMA)
        self._db.commit()

    def record(self, summary: dict[str, Any], ended_at: float | None = None) -> int:
        """Store one call from its ``Call.summary()``; returns the row id."""
        values = _record_values(summary, time.time() if ended_at is None else ended_at)
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO calls (call_id, direction, remote, account, ended_at, answered,"
                " duration, reason, sip_status, transport, tls_version, media_encryption)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            self._db.execute(
                "DELETE FROM calls WHERE id <= (SELECT MAX(id) FROM calls) - ?",
                (self.max_entries,),
            )
        return int(cursor.lastrowid or 0)

    def recent(self, limit: int = 20) -> list[CallRecord]:
        """The newest ``limit`` calls, newest first."""
        rows = self._db.execute(
            "SELECT id, call_id, direction, remote, account, ended_at, answered, duration,"
            " reason, sip_status, transport, tls_version, media_encryption"
            " FROM calls ORDER BY id DESC LIMIT ?",
            (max(0, limit),),
        ).fetchall()
        return [_row(row) for row in rows]

    def clear(self) -> None:
        """Forget every call."""
        with self._db:
            self._db.execute("DELETE FROM calls")

    def close(self) -> None:
        self._db.close()


def _row(row: tuple[Any, ...]) -> CallRecord:
    (rid, call_id, direction, remote, account, ended, answered, duration, reason, status) = row[:10]
    transport, tls_version, encryption = row[10:]
    return CallRecord(
        id=int(rid),
        call_id=call_id,
        direction=direction,
        remote=remote,
        account=account,
        ended_at=float(ended),
        answered=bool(answered),
        duration=float(duration),
        reason=reason,
        sip_status=status,
        transport=transport,
        tls_version=tls_version,
        media_encryption=encryption,
    )
