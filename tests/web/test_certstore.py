"""Certificate import: every bad upload is refused with a clear message and the old file stays;
good ones are rewritten from the parsed objects, atomically, mode 0600; keys never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from securephone.web.certstore import (
    MAX_UPLOAD,
    CertImportError,
    describe,
    install,
    prepare,
)

from .certs import pki


def test_https_one_pem_imported_and_described(tmp_path: Path) -> None:
    p = pki()
    upload = b"junk before\n" + p.server.combined_pem() + b"junk after\n"
    prepared = prepare("https", upload, "https.pem")
    path = install(prepared, tmp_path)
    assert path == tmp_path / "https.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = path.read_bytes()
    assert b"junk" not in written  # rewritten from parsed objects
    assert written.startswith(p.server.cert_pem)
    view = describe("https", tmp_path).to_dict()
    assert view["present"] and not view["generated"]
    leaf = view["certificates"][0]
    assert leaf["subject"] == "CN=localhost"
    assert leaf["san_dns"] == ["localhost"] and leaf["san_ips"] == ["127.0.0.1"]
    assert leaf["key_type"] == "EC P-256"
    assert len(leaf["sha256_fingerprint"]) == 95
    assert view["key"] == {"type": "EC P-256", "bits": 256, "matches_certificate": 0}
    assert "PRIVATE KEY" not in repr(view)


def test_https_two_files(tmp_path: Path) -> None:
    p = pki()
    prepared = prepare("https", p.server.cert_pem, "cert.crt", p.server.key_pem, "key.key")
    install(prepared, tmp_path)
    assert b"PRIVATE KEY" in (tmp_path / "https.pem").read_bytes()


def test_sips_bundle_and_device(tmp_path: Path) -> None:
    p = pki()
    install(prepare("sips", p.ca.cert_pem, "sips.pem"), tmp_path)
    assert describe("sips", tmp_path).certificates[0]["is_ca"]
    install(prepare("device", p.client.combined_pem(), "device.pem"), tmp_path)
    assert describe("device", tmp_path).certificates[0]["eku"] == ["clientAuth"]


def _bad(slot: str, data: bytes, name: str = "x.pem", key: bytes | None = None) -> str:
    with pytest.raises(CertImportError) as info:
        prepare(slot, data, name, key, "k.pem" if key is not None else None)
    return str(info.value)


def test_each_bad_upload_has_its_own_message() -> None:
    p = pki()
    assert "not PEM" in _bad("https", b"hello, I am a text file")
    assert "empty" in _bad("https", b"   \n")
    assert "too large" in _bad("https", b"A" * (MAX_UPLOAD + 1))
    assert "does not match" in _bad("https", p.server.cert_pem + p.other.key_pem)
    assert "no private key" in _bad("https", p.server.cert_pem)
    assert "expired on" in _bad("https", p.expired.combined_pem())
    assert "not yet valid" in _bad("https", p.not_yet_valid.combined_pem())
    assert "private key does not belong in a CA bundle" in _bad("sips", p.ca.combined_pem())
    assert "not a CA certificate" in _bad("sips", p.server.cert_pem)
    assert "is a CA certificate" in _bad("https", p.ca.combined_pem())
    assert "not serverAuth" in _bad("https", p.client.combined_pem())
    assert "not clientAuth" in _bad("device", p.server.combined_pem())
    assert "truncated PEM" in _bad("https", p.server.cert_pem[:-30])
    assert "certificates only" in _bad("sips", p.ca.cert_pem, key=p.ca.key_pem)
    assert "2 private keys" in _bad("https", p.server.combined_pem() + p.other.key_pem)
    assert "unknown certificate slot" in _bad("ssh", p.ca.cert_pem)


@pytest.mark.parametrize(
    "name",
    [
        "../https.pem",
        "/etc/passwd",
        "https.pem.exe",
        ".hidden.pem",
        "a b.pem",
        "",
        "x" * 120 + ".pem",
        "évil.pem",
    ],
)
def test_odd_file_names_refused(name: str) -> None:
    message = _bad("https", pki().server.combined_pem(), name)
    assert "file name" in message


def test_old_file_kept_when_an_import_is_refused(tmp_path: Path) -> None:
    p = pki()
    install(prepare("https", p.server.combined_pem(), "https.pem"), tmp_path)
    before = (tmp_path / "https.pem").read_bytes()
    _bad("https", p.expired.combined_pem())
    assert (tmp_path / "https.pem").read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["https.pem"]  # no temporary file left


def test_self_signed_leaf_may_be_pinned_in_sips() -> None:
    prepared = prepare("sips", pki().self_signed.cert_pem, "pbx.crt")
    assert prepared.infos[0].self_signed


def test_describe_absent_and_unreadable(tmp_path: Path) -> None:
    assert not describe("device", tmp_path).present
    (tmp_path / "sips.pem").write_text("garbage")
    view = describe("sips", tmp_path)
    assert view.present and view.error and "not a certificate" in view.error
