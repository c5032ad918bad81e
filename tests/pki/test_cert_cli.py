"""Tests for the `securephone cert` commands (securephone.pki.cli) through typer's CliRunner."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store
from typer.testing import CliRunner, Result

from securephone.pki.certs import (
    inspect_keys,
    inspect_pem,
    load_ca_bundle,
    load_cert_and_key,
    split_pem,
)
from securephone.pki.cli import app

runner = CliRunner()


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_clean_failure(result: Result, fragment: str) -> None:
    """Exit 1, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    out = tmp_path / "pki"
    result = _run("ca", "--out", str(out), "--cn", "Office CA")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------------------
# ca


def test_ca_writes_three_files_with_modes(ca_dir: Path) -> None:
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.key", "ca.pem", "sips.pem"]
    assert _mode(ca_dir / "ca.key") == 0o600
    assert _mode(ca_dir / "ca.pem") == 0o644
    assert _mode(ca_dir / "sips.pem") == 0o644
    assert (ca_dir / "sips.pem").read_bytes() == (ca_dir / "ca.pem").read_bytes()
    assert b"PRIVATE KEY" not in (ca_dir / "sips.pem").read_bytes()
    [ca_cert] = load_ca_bundle((ca_dir / "sips.pem").read_bytes())
    assert ca_cert.subject.rfc4514_string() == "CN=Office CA"
    certs, _ = load_cert_and_key((ca_dir / "ca.pem").read_bytes(), (ca_dir / "ca.key").read_bytes())
    assert certs == [ca_cert]


def test_ca_prints_fingerprint(tmp_path: Path) -> None:
    result = _run("ca", "--out", str(tmp_path / "x"))
    assert result.exit_code == 0
    info = inspect_pem((tmp_path / "x" / "ca.pem").read_bytes())[0]
    assert f"SHA-256 fingerprint: {info.sha256_fingerprint}" in result.stdout
    assert info.subject == "CN=securephone local CA"
    assert info.not_after - info.not_before == timedelta(days=3650)


def test_ca_refuses_to_overwrite(ca_dir: Path) -> None:
    before = (ca_dir / "ca.key").read_bytes()
    result = _run("ca", "--out", str(ca_dir))
    _assert_clean_failure(result, "use --force")
    assert (ca_dir / "ca.key").read_bytes() == before
    forced = _run("ca", "--out", str(ca_dir), "--force")
    assert forced.exit_code == 0, forced.output
    assert (ca_dir / "ca.key").read_bytes() != before
    assert _mode(ca_dir / "ca.key") == 0o600


def test_ca_rsa(tmp_path: Path) -> None:
    result = _run("ca", "--out", str(tmp_path), "--rsa", "2048", "--days", "30")
    assert result.exit_code == 0, result.output
    info = inspect_pem((tmp_path / "ca.pem").read_bytes())[0]
    assert (info.key_type, (info.not_after - info.not_before).days) == ("RSA 2048", 30)


def test_ca_bad_rsa_size(tmp_path: Path) -> None:
    _assert_clean_failure(_run("ca", "--out", str(tmp_path), "--rsa", "1000"), "RSA key size")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# issue


def test_issue_server_default_name_and_content(ca_dir: Path, in_tmp: Path) -> None:
    result = _run(
        "issue", "--ca-dir", str(ca_dir), "--kind", "server", "--cn", "localhost",
        "--dns", "localhost", "--dns", "pbx.example.com", "--ip", "127.0.0.1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = in_tmp / "server.pem"
    assert _mode(out) == 0o600
    labels = [block.label for block in split_pem(out.read_bytes())]
    assert labels == ["CERTIFICATE", "CERTIFICATE", "PRIVATE KEY"]
    certs, _ = load_cert_and_key(out.read_bytes())
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    assert certs[1] == ca_cert
    info = inspect_pem(out.read_bytes())[0]
    assert (info.san_dns, info.san_ips, info.eku) == (
        ["localhost", "pbx.example.com"],
        ["127.0.0.1"],
        ["serverAuth"],
    )
    verifier = PolicyBuilder().store(Store([ca_cert])).build_server_verifier(DNSName("localhost"))
    assert verifier.verify(certs[0], [])[-1] == ca_cert


def test_issue_client_default_device_pem(ca_dir: Path, in_tmp: Path) -> None:
    result = _run(
        "issue", "--ca-dir", str(ca_dir), "--kind", "client", "--cn", "alice",
        "--uri", "sip:alice@example.com", "--rsa", "2048", "--days", "30",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = in_tmp / "device.pem"
    assert _mode(out) == 0o600
    _, key = load_cert_and_key(out.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    info = inspect_pem(out.read_bytes())[0]
    assert (info.san_uris, info.eku) == (["sip:alice@example.com"], ["clientAuth"])
    assert (info.not_after - info.not_before).days == 30


def test_issue_explicit_out_and_refusal(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pbx.pem"
    args = ["issue", "--ca-dir", str(ca_dir), "--kind", "server", "--cn", "pbx", "--out", str(out)]
    assert _run(*args).exit_code == 0
    before = out.read_bytes()
    _assert_clean_failure(_run(*args), "already exists; use --force")
    assert out.read_bytes() == before
    assert _run(*args, "--force").exit_code == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--ip", "1.2.3"], "not an IP address: '1.2.3'"),
        (["--dns", "bad_name!"], "not a valid DNS name"),
        (["--uri", "alice"], "not a URI"),
        (["--days", "0"], "days must not be 0"),
    ],
)
def test_issue_bad_values(ca_dir: Path, tmp_path: Path, extra: list[str], fragment: str) -> None:
    out = tmp_path / "x.pem"
    base = ["issue", "--ca-dir", str(ca_dir), "--kind", "server", "--cn", "x", "--out", str(out)]
    _assert_clean_failure(_run(*base, *extra), fragment)
    assert not out.exists()


def test_issue_without_ca(tmp_path: Path) -> None:
    result = _run("issue", "--ca-dir", str(tmp_path / "nope"), "--kind", "server", "--cn", "x")
    _assert_clean_failure(result, "securephone cert ca --out")


def test_issue_with_broken_ca_key(ca_dir: Path, tmp_path: Path) -> None:
    (ca_dir / "ca.key").write_bytes(b"not a key")
    result = _run(
        "issue", "--ca-dir", str(ca_dir), "--kind", "client", "--cn", "x",
        "--out", str(tmp_path / "d.pem"),
    )  # fmt: skip
    _assert_clean_failure(result, f"{ca_dir / 'ca.key'}: not PEM")


def test_issue_unknown_kind_is_a_usage_error(ca_dir: Path) -> None:
    result = _run("issue", "--ca-dir", str(ca_dir), "--kind", "peer", "--cn", "x")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_self_signed_with_ipv6_addresses(in_tmp: Path) -> None:
    """IPv6 SANs (RFC 5280 §4.2.1.6 iPAddress, 16 bytes), also given in URI brackets."""
    result = _run("self-signed", "--cn", "::1", "--ip", "::1", "--ip", "[2001:db8::5]")
    assert result.exit_code == 0, result.output
    [info] = inspect_pem((in_tmp / "https.pem").read_bytes())
    assert info.san_ips == ["::1", "2001:db8::5"]
    cert = x509.load_pem_x509_certificate((in_tmp / "https.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    first = san.get_values_for_type(x509.IPAddress)[0]
    assert first.packed == b"\0" * 15 + b"\1"


# --------------------------------------------------------------------------------------
# self-signed


def test_self_signed_https_pem(in_tmp: Path) -> None:
    result = _run("self-signed", "--cn", "phone.local", "--dns", "phone.local", "--ip", "10.0.0.5")
    assert result.exit_code == 0, result.output
    out = in_tmp / "https.pem"
    assert _mode(out) == 0o600
    [info] = inspect_pem(out.read_bytes())
    assert info.self_signed and not info.is_ca and info.eku == ["serverAuth"]
    assert (info.san_dns, info.san_ips) == (["phone.local"], ["10.0.0.5"])
    assert f"SHA-256 fingerprint: {info.sha256_fingerprint}" in result.stdout
    assert inspect_keys(out.read_bytes())[0].matches == 0


def test_self_signed_refuses_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "https.pem"
    assert _run("self-signed", "--out", str(out)).exit_code == 0
    _assert_clean_failure(_run("self-signed", "--out", str(out)), "use --force")


# --------------------------------------------------------------------------------------
# show


def _key_body_lines(pem: bytes) -> list[str]:
    block = next(b for b in split_pem(pem) if b.is_private_key)
    return [line for line in block.pem.decode().splitlines()[1:-1] if line]


def test_show_json(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "server.pem"
    _run(
        "issue", "--ca-dir", str(ca_dir), "--kind", "server", "--cn", "localhost",
        "--dns", "localhost", "--ip", "127.0.0.1", "--out", str(out),
    )  # fmt: skip
    result = _run("show", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    leaf, root = report["certificates"]
    assert (leaf["subject"], leaf["issuer"]) == ("CN=localhost", "CN=Office CA")
    assert (leaf["san_dns"], leaf["san_ips"]) == (["localhost"], ["127.0.0.1"])
    assert leaf["sha256_fingerprint"] == inspect_pem(out.read_bytes())[0].sha256_fingerprint
    assert (leaf["key_type"], leaf["key_bits"], leaf["is_ca"]) == ("EC P-256", 256, False)
    assert leaf["warnings"] == []
    assert root["is_ca"] and root["self_signed"]
    assert report["private_keys"] == [
        {"key_type": "EC P-256", "key_bits": 256, "encrypted": False, "matches_certificate": 1}
    ]
    assert report["warnings"] == []
    for line in _key_body_lines(out.read_bytes()):
        assert line not in result.output
    assert "PRIVATE KEY" not in result.output


def test_show_text_table_and_key_line(ca_dir: Path) -> None:
    result = _run("show", str(ca_dir / "ca.pem"))
    assert result.exit_code == 0, result.output
    assert "certificate #1 of 1" in result.stdout
    assert "CN=Office CA" in result.stdout
    assert "CA, self-signed" in result.stdout
    assert "private key: none" in result.stdout


def test_show_never_prints_key_material(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "device.pem"
    _run("issue", "--ca-dir", str(ca_dir), "--kind", "client", "--cn", "bob", "--out", str(out))
    result = _run("show", str(out))
    assert result.exit_code == 0, result.output
    assert "private key: present (EC P-256), matches certificate #1" in result.stdout
    assert "PRIVATE KEY" not in result.output
    for line in _key_body_lines(out.read_bytes()):
        assert line not in result.output


def test_show_warnings_for_expired_and_wildcard(tmp_path: Path) -> None:
    out = tmp_path / "https.pem"
    assert (
        _run("self-signed", "--out", str(out), "--dns", "*.example.com", "--days=-3").exit_code == 0
    )
    result = _run("show", str(out), "--json")
    assert result.exit_code == 0
    warnings = json.loads(result.stdout)["certificates"][0]["warnings"]
    assert any(w.startswith("expired on ") for w in warnings)
    assert any("wildcard name *.example.com" in w for w in warnings)
    text = _run("show", str(out))
    assert text.exit_code == 0
    assert "warning: expired on" in text.stdout


def test_show_flags_world_readable_key_file(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "https.pem"
    _run("self-signed", "--out", str(out))
    out.chmod(0o644)
    report = json.loads(_run("show", str(out), "--json").stdout)
    assert report["warnings"] == [f"{out} holds a private key but has mode 0644; use chmod 600"]
    assert json.loads(_run("show", str(ca_dir / "ca.pem"), "--json").stdout)["warnings"] == []


def test_show_der_file(ca_dir: Path, tmp_path: Path) -> None:
    cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    der = tmp_path / "ca.der"
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    report = json.loads(_run("show", str(der), "--json").stdout)
    assert report["certificates"][0]["subject"] == "CN=Office CA"


def test_show_encrypted_key_is_described(ca_dir: Path, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    path = tmp_path / "enc.pem"
    path.write_bytes((ca_dir / "ca.pem").read_bytes() + encrypted)
    path.chmod(0o600)
    result = _run("show", str(path))
    assert result.exit_code == 0, result.output
    assert "private key: present (encrypted)" in result.stdout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x00\x01 not a certificate", "neither PEM nor DER"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "truncated PEM"),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "certificate #1"),
    ],
)
def test_show_garbage(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    for args in (["show", str(path)], ["show", str(path), "--json"]):
        result = _run(*args)
        _assert_clean_failure(result, fragment)
        assert result.stderr.startswith(f"error: {path}: ")


def test_show_key_only_file(ca_dir: Path) -> None:
    _assert_clean_failure(_run("show", str(ca_dir / "ca.key")), "no certificate found")


def test_show_missing_file(tmp_path: Path) -> None:
    _assert_clean_failure(_run("show", str(tmp_path / "nope.pem")), "No such file or directory")
