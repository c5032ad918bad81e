"""Certificates for the web tests, made with securephone.pki (a small CA and its leaves)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from securephone.pki.certs import Issued, create_ca, create_self_signed, issue_certificate


@dataclass(frozen=True)
class TestPki:
    ca: Issued
    server: Issued  # localhost / 127.0.0.1, serverAuth
    client: Issued  # device certificate, clientAuth
    other: Issued  # a second server certificate (its key matches nothing else)
    expired: Issued
    not_yet_valid: Issued
    self_signed: Issued


@cache
def pki() -> TestPki:
    ca = create_ca("securephone test CA")
    future = datetime.now(UTC) + timedelta(days=30)
    return TestPki(
        ca=ca,
        server=issue_certificate(
            ca, "localhost", kind="server", dns=["localhost"], ips=["127.0.0.1"]
        ),
        client=issue_certificate(ca, "alice device", kind="client"),
        other=issue_certificate(ca, "other", kind="server", dns=["other.test"]),
        expired=issue_certificate(ca, "localhost", kind="server", days=-2),
        not_yet_valid=issue_certificate(ca, "localhost", kind="server", not_before=future, days=30),
        self_signed=create_self_signed("selfie.test"),
    )
