"""`make demo` end to end: the encrypted call verifies as encrypted, the plain one is caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from securephone import demo


@pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)"
)
def test_demo_passes_and_writes_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out)]) == 0
    encrypted = json.loads((out / "encrypted-verify" / "report.json").read_text())
    plain = json.loads((out / "plain-verify" / "report.json").read_text())
    assert encrypted["exit_code"] == 0 and plain["exit_code"] != 0
    assert (out / "encrypted-verify" / "report.html").stat().st_size > 10_000  # pictures embedded
    assert list((out / "plain-verify").glob("stream-*.png"))
    trace = (out / "alice-sip-trace.txt").read_text()
    assert "a=crypto:" in trace and "inline:<redacted>" in trace
