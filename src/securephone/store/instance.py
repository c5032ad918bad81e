"""The phone's RFC 5626 instance id: one UUID URN per installation, kept in the data directory.

RFC 5626 §4.1: ``+sip.instance`` must stay the same across restarts (RFC 4122 UUID, §4.1 of
RFC 5626 recommends a URN), so the registrar can tell a restarted phone from a second device.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from securephone.store.files import atomic_write

INSTANCE_FILE = "instance-id"


def instance_urn(data_path: Path) -> str:
    """``urn:uuid:…`` read from ``data_path/instance-id``; made (and saved) on first use."""
    path = data_path / INSTANCE_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        return f"urn:uuid:{uuid.UUID(text.removeprefix('urn:uuid:'))}"
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    urn = f"urn:uuid:{uuid.uuid4()}"
    data_path.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (urn + "\n").encode("ascii"))
    return urn
