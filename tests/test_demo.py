"""`make demo` end to end: the SDES and ZRTP calls verify as encrypted, the plain one is caught."""

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
    e2e = json.loads((out / "end-to-end-verify" / "report.json").read_text())
    assert encrypted["exit_code"] == 0 and e2e["exit_code"] == 0 and plain["exit_code"] != 0
    streams = [item["media"] for item in e2e["items"] if "media" in item]
    assert len(streams) == 2 and all(s["keying"] == "zrtp" for s in streams)
    assert all(item["media"]["keying"] is None for item in encrypted["items"] if "media" in item)
    assert (out / "encrypted-verify" / "report.html").stat().st_size > 10_000  # pictures embedded
    assert list((out / "plain-verify").glob("stream-*.png"))
    trace = (out / "alice-sip-trace.txt").read_text()
    assert "a=crypto:" in trace and "inline:<redacted>" in trace


def _results(**changes: object) -> list[dict[str, object]]:
    def brief(keying: str | None, e2e: bool, sas: str | None = None) -> dict[str, object]:
        return {"answered": True, "keying": keying, "end_to_end": e2e, "sas": sas,
                "far_end_sas": sas}  # fmt: skip

    results: list[dict[str, object]] = [
        {"label": "encrypted", "summary": brief("sdes", False), "wire_keying": ["None"]},
        {"label": "end-to-end", "summary": brief("zrtp", True, "k3xw"), "wire_keying": ["zrtp"]},
        {"label": "plain", "summary": brief(None, False), "wire_keying": ["None"]},
    ]
    for key, value in changes.items():
        label, field = key.split("__")
        result = next(r for r in results if r["label"] == label.replace("_", "-"))
        target = result if field == "wire_keying" else result["summary"]
        target[field] = value  # type: ignore[index]
    return results


@pytest.mark.parametrize(
    "changes, codes, failed",
    [
        ({}, [0, 0, 1], None),
        ({}, [1, 0, 1], "SDES call"),
        ({"encrypted__keying": "zrtp"}, [0, 0, 1], "SDES call"),
        ({"end_to_end__keying": "sdes"}, [0, 0, 1], "ZRTP call verified"),
        ({"end_to_end__wire_keying": ["None"]}, [0, 0, 1], "ZRTP call verified"),
        ({"end_to_end__far_end_sas": "k3xa"}, [0, 0, 1], "same SAS"),
        ({"end_to_end__sas": None, "end_to_end__far_end_sas": None}, [0, 0, 1], "same SAS"),
        ({}, [0, 0, 0], "plain call"),
    ],
)
def test_demo_verdicts_fail_on_what_they_check(
    changes: dict[str, object], codes: list[int], failed: str | None
) -> None:
    checks = demo.verdicts(_results(**changes), codes)
    assert [name for name, ok in checks.items() if not ok] == (
        [] if failed is None else [name for name in checks if failed in name]
    )
