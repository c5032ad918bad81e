"""The status page and API carry the self-audit, with what only the running phone knows."""

from __future__ import annotations

from securephone.web import actions
from securephone.web.manager import PhoneManager


def test_status_includes_audit_with_default_web_password(manager: PhoneManager) -> None:
    findings = actions.status(manager)["audit"]
    titles = " ".join(f["title"] for f in findings)
    assert any(f["severity"] == "high" for f in findings)
    assert "admin" in titles.lower() or "default" in titles.lower()
    assert all(set(f) >= {"severity", "title", "fix"} for f in findings)
