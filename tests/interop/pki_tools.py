"""Test PKI for the TLS interop tests: a CA, Kamailio's server certificate, alice's device certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securephone.pki.certs import Issued, create_ca, issue_certificate, write_secret_file

from .kamailio import TlsConfig


@dataclass
class Pki:
    dir: Path
    ca: Issued
    server: Path  # cert + key for Kamailio
    server_key: Path
    device: Path  # alice's client cert + key

    @property
    def sips(self) -> Path:
        return self.dir / "sips.pem"


def _write_pair(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    write_secret_file(cert, issued.cert_pem + issued.chain_pem)
    write_secret_file(key, issued.key_pem)
    return cert, key


def make_pki(tmp_path: Path) -> Pki:
    d = tmp_path / "pki"
    d.mkdir()
    ca = create_ca("securephone test CA")
    write_secret_file(d / "sips.pem", ca.cert_pem)
    server = issue_certificate(ca, "localhost", kind="server", dns=["localhost"], ips=["127.0.0.1"])
    cert, key = _write_pair(d, "server", server)
    device = issue_certificate(ca, "alice", kind="client", uris=["sip:alice@127.0.0.1"])
    write_secret_file(d / "device.pem", device.combined_pem())
    return Pki(d, ca, cert, key, d / "device.pem")


def kam_tls(pki: Pki, cert: Path | None = None, key: Path | None = None, **kw: Any) -> TlsConfig:
    return TlsConfig(
        certificate=cert or pki.server, private_key=key or pki.server_key, ca_list=pki.sips, **kw
    )
