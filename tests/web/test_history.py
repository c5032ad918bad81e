"""Call history in SQLite: rows from Call.summary(), newest first, bounded, file mode 0600."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from securephone.store.history import CallHistory


def summary(n: int, *, tls: bool = False, srtp: str | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"encryption": "none", "srtp": None}
    if srtp:
        media = {"encryption": "srtp", "srtp": {"suite": srtp}}
    return {
        "call_id": f"call-{n}",
        "direction": "outgoing",
        "remote": f"sip:bob{n}@127.0.0.1",
        "account": "alice",
        "answered": True,
        "duration": 1.5 * n,
        "reason": "hung up",
        "sip_status": 200,
        "signalling": {
            "transport": "tls" if tls else "udp",
            "tls": {"version": "TLSv1.3"} if tls else None,
        },
        "media": media,
    }


def test_record_and_read_back_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    history = CallHistory(path)
    history.record(summary(1), ended_at=100.0)
    history.record(summary(2, tls=True, srtp="AEAD_AES_128_GCM"), ended_at=200.0)
    history.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = CallHistory(path)
    rows = reopened.recent()
    assert [r.call_id for r in rows] == ["call-2", "call-1"]
    assert rows[0].transport == "tls" and rows[0].tls_version == "TLSv1.3"
    assert rows[0].media_encryption == "AEAD_AES_128_GCM"
    assert rows[1].transport == "udp" and rows[1].tls_version is None
    assert rows[1].media_encryption == "none"
    assert rows[1].duration == 1.5 and rows[1].answered and rows[1].sip_status == 200
    reopened.close()


def test_call_without_media_and_bound_on_size() -> None:
    history = CallHistory(None, max_entries=3)
    data = summary(0)
    data["media"] = None
    data["answered"] = False
    history.record(data)
    assert history.recent()[0].media_encryption is None
    for n in range(1, 6):
        history.record(summary(n))
    rows = history.recent(10)
    assert [r.call_id for r in rows] == ["call-5", "call-4", "call-3"]
    assert history.recent(1)[0].call_id == "call-5"
    history.clear()
    assert history.recent() == []
