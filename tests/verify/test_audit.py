"""``securephone audit``: every finding with its severity and fix, and the exit code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from securephone.audit import Finding, Severity, app, audit_config, exit_code_for
from securephone.pki.certs import create_ca, issue_certificate
from securephone.store.config import Config, parse_config

runner = CliRunner()


def hardened(tmp_path: Path, **media: Any) -> Config:
    return parse_config(
        {
            "data_dir": str(tmp_path),
            "sip": {"transports": ["tls"]},
            "media": {
                "srtp": "mandatory",
                "srtp_suites": ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"],
                "keying": ["zrtp", "sdes"],
                **media,
            },
            "accounts": [
                {"name": "a", "user": "alice", "domain": "example.com", "transport": "tls"}
            ],
        }
    )


def titles(findings: list[Finding], severity: Severity | None = None) -> list[str]:
    return [f.title for f in findings if severity is None or f.severity is severity]


def test_hardened_config_has_no_findings(tmp_path: Path) -> None:
    findings = audit_config(hardened(tmp_path), default_web_password=False, web_scheme="https")
    assert titles(findings) == ["no problems found"] and exit_code_for(findings) == 0


def test_default_config_findings(tmp_path: Path) -> None:
    findings = audit_config(parse_config({"data_dir": str(tmp_path)}))
    assert titles(findings, Severity.HIGH) == []  # SRTP mandatory, TLS verified, TLS 1.2 floor
    medium = titles(findings, Severity.MEDIUM)
    assert any("accepts plaintext SIP on UDP, TCP" in t for t in medium)
    assert "32-bit SRTP authentication tags are offered (AES_CM_128_HMAC_SHA1_32)" in medium
    assert {"web password not checked", "web server scheme not checked"} <= set(
        titles(findings, Severity.INFO)
    )
    assert findings[0].severity is Severity.MEDIUM and findings[-1].severity is Severity.INFO
    assert exit_code_for(findings) == 0


def test_missing_srtp_keys_read_as_off(tmp_path: Path) -> None:
    """A config (or stand-in) without the SRTP keys is judged with the documented defaults."""
    config = hardened(tmp_path)
    object.__setattr__(config, "media", SimpleNamespace(address=None))
    findings = audit_config(config, default_web_password=False, web_scheme="https")
    assert [(f.severity, f.key) for f in findings] == [(Severity.HIGH, "media.srtp")]


def test_account_srtp_override(tmp_path: Path) -> None:
    config = hardened(tmp_path)
    config.accounts[0].srtp = "off"
    findings = audit_config(config, default_web_password=False, web_scheme="https")
    assert [f.title for f in findings] == [
        "account a: SRTP is off: call audio travels as plain RTP, readable by anyone on the path"
    ]
    assert findings[0].fix == 'set srtp = "mandatory" in account a, or remove it'


def test_each_weakness_is_found_with_its_fix(tmp_path: Path) -> None:
    config = hardened(tmp_path, srtp="optional", allow_sdes_over_plaintext=True,
                      srtp_suites=["AES_CM_128_HMAC_SHA1_32"], srtp_key_export="/tmp/k.json")  # fmt: skip
    config.tls.verify_server = False
    config.tls.min_version = "TLSv1.1"
    config.tls.ciphers = "HIGH:!aNULL:RC4-SHA"
    config.tls.keylog_file = "/tmp/keys.log"
    config.sip.trace_file = "/tmp/trace.txt"
    config.accounts[0].transport = "udp"
    findings = audit_config(config, default_web_password=lambda: True, web_scheme="http")
    by_key = {f.key: f for f in findings}
    expected = {
        "web.users": Severity.HIGH, "web": Severity.HIGH, "tls.verify_server": Severity.HIGH,
        "tls.min_version": Severity.HIGH, "tls.ciphers": Severity.HIGH,
        "accounts[].transport": Severity.HIGH, "media.srtp": Severity.MEDIUM,
        "media.allow_sdes_over_plaintext": Severity.HIGH, "media.srtp_suites": Severity.MEDIUM,
        "tls.keylog_file": Severity.HIGH, "media.srtp_key_export": Severity.HIGH,
        "sip.trace_file": Severity.MEDIUM,
    }  # fmt: skip
    assert {k: by_key[k].severity for k in expected} == expected
    assert "RC4" in by_key["tls.ciphers"].title and "aNULL" not in by_key["tls.ciphers"].title
    assert "RFC 8996" in by_key["tls.min_version"].title
    assert 'min_version = "TLSv1.2"' in by_key["tls.min_version"].fix
    assert all(f.fix for f in findings)


def test_key_export_flag_from_the_caller(tmp_path: Path) -> None:
    findings = audit_config(
        hardened(tmp_path), key_export=True, default_web_password=False, web_scheme="https"
    )
    assert titles(findings) == [
        "SRTP keys are exported (ZRTP-agreed keys too: it undoes their end-to-end protection): "
        "whoever reads the file decrypts the calls"
    ]
    sdes_only = audit_config(
        hardened(tmp_path, keying=["sdes"]), key_export=True, default_web_password=False,
        web_scheme="https",
    )  # fmt: skip
    assert "SRTP keys are exported: whoever reads the file decrypts the calls" in titles(sdes_only)


def test_keying_by_sdes_alone_is_flagged(tmp_path: Path) -> None:
    """SDES alone: keys readable by every SIP server on the path; ZRTP in the list clears it."""
    config = hardened(tmp_path, keying=["sdes"])
    config.accounts[0].keying = ["sdes"]  # type: ignore[list-item]
    findings = audit_config(config, default_web_password=False, web_scheme="https")
    flagged = {f.key: f for f in findings if "only by SDES" in f.title}
    assert set(flagged) == {"media.keying", "accounts[].keying"}
    assert all(f.severity is Severity.MEDIUM and '"zrtp"' in f.fix for f in flagged.values())
    assert "account a: " in flagged["accounts[].keying"].title
    for keying in (["zrtp", "sdes"], ["zrtp"], ["dtls", "sdes", "zrtp"]):
        clean = audit_config(hardened(tmp_path, keying=keying), default_web_password=False,
                             web_scheme="https")  # fmt: skip
        assert not any("SDES" in f.title for f in clean), keying


def test_sdes_before_an_end_to_end_method_is_said(tmp_path: Path) -> None:
    """With SDES first, an offer over TLS uses SDES: ZRTP after it does not make calls end to
    end, and the audit says so (low: the default keeps SDES first for desk phones)."""
    for keying in (["sdes", "zrtp"], ["sdes", "dtls", "zrtp"]):
        config = hardened(tmp_path, keying=keying)
        findings = audit_config(config, default_web_password=False, web_scheme="https")
        [finding] = [f for f in findings if "SDES" in f.title]
        assert finding.severity is Severity.LOW and finding.key == "media.keying"
        assert "hop by hop" in finding.title and finding.fix.startswith('put "zrtp"')
    config = hardened(tmp_path, keying=["zrtp"])
    config.accounts[0].keying = ["sdes", "zrtp"]  # type: ignore[list-item]
    findings = audit_config(config, default_web_password=False, web_scheme="https")
    assert [f.key for f in findings if "SDES" in f.title] == ["accounts[].keying"]
    default = audit_config(parse_config({"data_dir": str(tmp_path)}))
    assert any(f.severity is Severity.LOW and "SDES comes first" in f.title for f in default)


def _weak_rsa_cert(days_valid: int, start: datetime) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old device")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(start).not_valid_after(start + timedelta(days=days_valid))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def test_certificates_the_config_points_to(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = create_ca("audit test CA")
    (tmp_path / "sips.pem").write_bytes(ca.cert_pem)  # fine
    (tmp_path / "device.pem").write_bytes(_weak_rsa_cert(30, now - timedelta(days=60)))
    (tmp_path / "https.pem").write_bytes(b"this is not a certificate")
    config = hardened(tmp_path)
    config.tls.certificate = "device.pem"
    findings = audit_config(config, default_web_password=False, web_scheme="https")
    high = titles(findings, Severity.HIGH)
    assert any(
        "device certificate CN=old device (device.pem): weak key: RSA 1024" in t for t in high
    )
    assert any("device.pem): expired on" in t for t in high)
    assert any(
        "web certificate (https.pem)" in t and "not a usable certificate file" in t for t in high
    )
    assert not any("sips.pem" in t for t in titles(findings))


def test_missing_and_expiring_certificates(tmp_path: Path) -> None:
    ca = create_ca("audit test CA")
    soon = issue_certificate(ca, "phone", kind="client", days=10)
    (tmp_path / "device.pem").write_bytes(soon.cert_pem + soon.key_pem)
    config = hardened(tmp_path)
    config.tls.certificate = "device.pem"
    config.tls.ca_file = str(tmp_path / "missing-ca.pem")
    findings = audit_config(config, default_web_password=False, web_scheme="https")
    assert any("missing-ca.pem does not exist" in t for t in titles(findings, Severity.HIGH))
    assert any("expires within 30 days" in t for t in titles(findings, Severity.MEDIUM))


# --------------------------------------------------------------------------- the command


def _write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data))
    return path


def test_cli_json_and_exit_codes(tmp_path: Path) -> None:
    data = {"data_dir": str(tmp_path), "tls": {"verify_server": False}, "media": {"srtp": "off"}}
    path = _write_config(tmp_path / "c.toml", data)
    result = runner.invoke(app, ["--config", str(path), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1
    keys = {f["key"]: f["severity"] for f in data["findings"]}
    assert keys["tls.verify_server"] == "high" and keys["media.srtp"] == "high"
    table = runner.invoke(app, ["--config", str(path)])
    assert table.exit_code == 1 and "TLS server certificates are not verified" in table.stdout


def test_cli_bad_config_exit_2(tmp_path: Path) -> None:
    path = _write_config(tmp_path / "c.toml", {"tls": {"min_version": "SSLv2"}})
    result = runner.invoke(app, ["--config", str(path)])
    assert result.exit_code == 2 and "tls.min_version" in result.stderr
    missing = runner.invoke(app, ["--config", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1.1"])
def test_old_tls_floors_are_high(tmp_path: Path, version: str) -> None:
    config = hardened(tmp_path)
    config.tls.min_version = version  # type: ignore[assignment]
    findings = audit_config(config, default_web_password=False, web_scheme="https")
    assert [f.key for f in findings if f.severity is Severity.HIGH] == ["tls.min_version"]


def test_dtls_over_plaintext_signalling_is_flagged(tmp_path: Path) -> None:
    config = parse_config(
        {
            "data_dir": str(tmp_path),
            "sip": {"transports": ["udp", "tls"]},
            "media": {"srtp": "mandatory", "keying": ["dtls", "zrtp"]},
            "accounts": [
                {"name": "safe", "user": "a", "domain": "example.com", "transport": "tls"},
                {"name": "open", "user": "b", "domain": "example.com", "transport": "udp"},
                {"name": "z", "user": "c", "domain": "example.com", "transport": "tcp",
                 "keying": ["zrtp"]},
            ],
        }
    )  # fmt: skip
    findings = audit_config(config)
    dtls = [f for f in findings if "DTLS-SRTP" in f.title]
    assert [f.severity for f in dtls] == [Severity.MEDIUM, Severity.LOW]
    assert "account open:" in dtls[0].title and "(udp)" in dtls[0].title
    assert "direct calls over UDP" in dtls[1].title
    assert not any("account safe" in f.title or "account z:" in f.title for f in dtls)
    assert not [
        f for f in audit_config(hardened(tmp_path, keying=["dtls"])) if "DTLS-SRTP" in f.title
    ]
