"""SIP over TLS against a real Kamailio: one-way and mutual authentication, RFC 5922 names, and every
failure explained with zero plaintext SIP on the wire."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.phone import Phone
from securephone.pki.certs import (
    create_ca,
    inspect_pem,
    issue_certificate,
    write_secret_file,
)
from securephone.sip.registration import RegState
from securephone.store.config import parse_config

from .capture import LoopbackCapture, plaintext_sip, tls_records
from .conftest import KamailioFactory
from .kamailio import Kamailio
from .pki_tools import Pki, _write_pair, kam_tls

USERS = {"alice": "alice-tls-pw"}
STATES = (RegState.REGISTERED, RegState.FAILED)


def phone(pki: Pki, kam: Kamailio, host: str = "127.0.0.1", **tls: Any) -> Phone:
    port = kam.address("tls")[1]
    settings = {"ca_file": str(pki.sips), "use_system_cas": False, **tls}
    return Phone(
        parse_config(
            {
                "data_dir": str(pki.dir),
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
                "tls": settings,
                "accounts": [
                    {
                        "name": "alice", "user": "alice", "domain": "127.0.0.1",
                        "password": USERS["alice"], "registrar": f"sips:{host}:{port}",
                        "transport": "tls", "expires": 120, "retry_base": 300,
                    }
                ],
            }
        )
    )  # fmt: skip


async def register(p: Phone) -> dict[str, Any]:
    await p.start()
    try:
        await p.wait_registration("alice", STATES, 15)
        return dict(p.status()["accounts"][0])
    finally:
        await p.stop()


def fingerprint(pem: bytes) -> str:
    return inspect_pem(pem)[0].sha256_fingerprint


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_one_way_tls_registers_and_shows_the_server_certificate(
    kamailio_factory: KamailioFactory, pki: Pki, host: str, tmp_path: Path
) -> None:
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki))
    bpf = f"tcp port {kam.address('tls')[1]} or port {kam.port}"
    with LoopbackCapture(tmp_path / "tls.pcap", bpf) as capture:
        account = await register(phone(pki, kam, host))
    assert account["registration"] == "registered", account["reason"]
    tls = account["tls"] if account["tls"] else {}
    assert tls.get("version") in ("TLSv1.3", "TLSv1.2")
    assert "CN=localhost" in tls["peer_subject"] and "CN=securephone test CA" in tls["peer_issuer"]
    server_pem = pki.server.read_bytes()
    assert tls["peer_sha256"] == fingerprint(server_pem)
    segments = capture.segments()
    assert plaintext_sip(segments) == []
    assert len(tls_records(segments)) >= 4  # handshake and application data, all TLS
    assert "HARNESS-TLS REGISTER" in kam.log_text()


async def test_mutual_tls_with_device_certificate(
    kamailio_factory: KamailioFactory, pki: Pki
) -> None:
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki, require_client_cert=True))
    account = await register(phone(pki, kam, certificate=str(pki.device)))
    assert account["registration"] == "registered", account["reason"]
    assert "verified=1" in kam.log_text() and "cn=alice" in kam.log_text()


async def test_mutual_tls_without_client_certificate_fails_clearly(
    kamailio_factory: KamailioFactory, pki: Pki, tmp_path: Path
) -> None:
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki, require_client_cert=True))
    bpf = f"tcp port {kam.address('tls')[1]} or port {kam.port}"
    with LoopbackCapture(tmp_path / "mtls.pcap", bpf) as capture:
        account = await register(phone(pki, kam))
    assert account["registration"] == "failed"
    assert "client certificate" in account["reason"]
    assert plaintext_sip(capture.segments()) == []
    assert kam.contacts("alice") == []


def _other_ca_bundle(tmp_path: Path) -> Path:
    other = create_ca("someone else's CA")
    path = tmp_path / "other-sips.pem"
    write_secret_file(path, other.cert_pem)
    return path


@pytest.mark.parametrize("case", ["unknown-ca", "wrong-name", "expired"])
async def test_rejected_server_certificates(
    kamailio_factory: KamailioFactory, pki: Pki, tmp_path: Path, case: str
) -> None:
    tls = {}
    kam_cfg = kam_tls(pki)
    expected = ""
    if case == "unknown-ca":
        tls = {"ca_file": str(_other_ca_bundle(tmp_path))}
        expected = "unknown CA"
    elif case == "wrong-name":
        wrong = issue_certificate(pki.ca, "other.example", kind="server", dns=["other.example"])
        cert, key = _write_pair(pki.dir, "wrong", wrong)
        kam_cfg = kam_tls(pki, cert, key)
        expected = "does not name the address 127.0.0.1"
    else:
        old = issue_certificate(
            pki.ca, "localhost", kind="server", dns=["localhost"], ips=["127.0.0.1"], days=-1
        )
        cert, key = _write_pair(pki.dir, "expired", old)
        kam_cfg = kam_tls(pki, cert, key)
        expected = "expired"
    kam = kamailio_factory(users=USERS, tls=kam_cfg)
    bpf = f"tcp port {kam.address('tls')[1]} or port {kam.port}"
    with LoopbackCapture(tmp_path / f"{case}.pcap", bpf) as capture:
        account = await register(phone(pki, kam, **tls))
    assert account["registration"] == "failed"
    assert expected in account["reason"], account["reason"]
    assert plaintext_sip(capture.segments()) == []
    assert kam.contacts("alice") == []


def _can_offer_tls10() -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return False
    return True


@pytest.mark.skipif(not _can_offer_tls10(), reason="the local OpenSSL cannot offer TLS 1.0")
async def test_old_tls_server_refused_with_default_floor(
    kamailio_factory: KamailioFactory, pki: Pki, tmp_path: Path
) -> None:
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki, min_tls="TLSv1"))
    bpf = f"tcp port {kam.address('tls')[1]} or port {kam.port}"
    with LoopbackCapture(tmp_path / "old.pcap", bpf) as capture:
        account = await register(phone(pki, kam))
    assert account["registration"] == "failed"
    assert "protocol version" in account["reason"], account["reason"]
    assert plaintext_sip(capture.segments()) == []
    # Lowered on purpose, the same server is reachable (and the log warned about it).
    account = await register(phone(pki, kam, min_version="TLSv1"))
    assert account["registration"] == "registered", account["reason"]
