"""The shell's SRTP key export file: entries from the core appended to a 0600 JSON list."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from securephone.aio.keyexport import write_key_export
from securephone.media.srtp import KeyExport, SdesNegotiator
from securephone.verify.keys import load_key_file


def exported_entries() -> list[KeyExport]:
    """Real entries from an SRTP context negotiated by SDES (RFC 4568)."""
    offerer, answerer = SdesNegotiator(), SdesNegotiator()
    offer = offerer.offer_lines()
    answer, _ = answerer.answer_lines(offer)
    ours = offerer.accept_answer(answer, offer)
    return ours.context(allow_key_export=True).export_keys()


def test_entries_are_appended_to_a_private_file(tmp_path: Path) -> None:
    entries = exported_entries()
    path = tmp_path / "srtp-keys.json"
    write_key_export(path, entries)
    write_key_export(path, entries[:1])
    assert json.loads(path.read_text()) == [*entries, entries[0]]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["srtp-keys.json"]
    assert [k.suite for k in load_key_file(path)] == [e["suite"] for e in [*entries, entries[0]]]


def test_a_foreign_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="not a key export file"):
        write_key_export(path, [])
    assert json.loads(path.read_text()) == {"not": "a list"}
