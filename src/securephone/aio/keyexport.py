"""Writing the SRTP key export file (``[media] srtp_key_export``; debugging only).

The core produces the entries (:meth:`securephone.media.srtp.SrtpContext.export_keys`, which
refuses unless the call's context allows it); this shell module appends them to the JSON list
the verifier reads (:mod:`securephone.verify.keys`), through the one atomic writer, mode 0600.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from securephone.media.srtp import KeyExport
from securephone.store.files import atomic_write

__all__ = ["write_key_export"]


def write_key_export(path: Path, entries: Sequence[KeyExport]) -> None:
    """Append entries to a JSON key export file (a list), written atomically with mode 0600.

    ValueError when ``path`` holds something else than a key export list (it is left as is).
    """
    existing: list[KeyExport] = []
    if path.exists():
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, list):
            raise ValueError(f"{path} is not a key export file (expected a JSON list)")
        existing = loaded
    text = json.dumps([*existing, *entries], indent=2) + "\n"
    atomic_write(path, text.encode("utf-8"), 0o600)
