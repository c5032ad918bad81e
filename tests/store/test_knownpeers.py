"""TOFU pins of SIP-TLS servers: first use records, a changed key alarms or refuses, the file is
0600 and a damaged one is never taken for an empty one."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from securephone.pki.certs import create_ca, issue_certificate
from securephone.store import knownpeers
from securephone.store.knownpeers import KnownPeers, PinMode, PinVerdict


def _der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes]:
    ca = create_ca("pin test CA")
    one = issue_certificate(ca, "localhost", kind="server", dns=["localhost"])
    two = issue_certificate(ca, "localhost", kind="server", dns=["localhost"])
    return _der(one.cert_pem), _der(two.cert_pem)


def test_first_use_pins_and_the_same_key_matches(
    tmp_path: Path, certs: tuple[bytes, bytes]
) -> None:
    pins = KnownPeers(tmp_path / "known_peers.json", PinMode.TOFU)
    first = pins.check("127.0.0.1", 5061, certs[0])
    assert first.verdict is PinVerdict.NEW and not first.refused
    again = pins.check("127.0.0.1", 5061, certs[0])
    assert again.verdict is PinVerdict.MATCH and again.pinned == first.seen
    assert pins.check("127.0.0.1", 5062, certs[1]).verdict is PinVerdict.NEW  # per host:port


@pytest.mark.parametrize(("mode", "refused"), [(PinMode.TOFU, False), (PinMode.STRICT, True)])
def test_a_changed_key_alarms_and_strict_refuses(
    certs: tuple[bytes, bytes], mode: PinMode, refused: bool
) -> None:
    pins = KnownPeers(None, mode)
    old = pins.check("sip.example", 5061, certs[0]).seen
    check = pins.check("sip.example", 5061, certs[1])
    assert check.verdict is PinVerdict.CHANGED and check.refused is refused
    assert check.pinned == old != check.seen
    assert "sip.example:5061" in check.message and old in check.message
    # the pin stays the old key: the alarm repeats until the user accepts the new one
    assert pins.check("sip.example", 5061, certs[1]).verdict is PinVerdict.CHANGED
    pins.trust(check.peer, check.seen)
    assert pins.check("sip.example", 5061, certs[1]).verdict is PinVerdict.MATCH


def test_a_full_table_pins_no_more_and_keeps_every_pin(certs: tuple[bytes, bytes]) -> None:
    """Far ends can name new servers for our requests: past max_pins a new server is connected
    unpinned, and no pin already made is pushed out (a stranger cannot evict a real server's)."""
    pins = KnownPeers(None, PinMode.STRICT, max_pins=3)
    for port in (5061, 5062, 5063):
        assert pins.check("sip.example", port, certs[0]).verdict is PinVerdict.NEW
    for port in range(6000, 6050):
        check = pins.check("stranger.example", port, certs[1])
        assert check.verdict is PinVerdict.UNPINNED and not check.refused
    assert sorted(pins.pins) == [f"sip.example:{p}" for p in (5061, 5062, 5063)]
    assert pins.check("sip.example", 5061, certs[1]).verdict is PinVerdict.CHANGED  # still held
    assert knownpeers.MAX_PINS == KnownPeers().max_pins >= 100


def test_off_records_nothing(certs: tuple[bytes, bytes]) -> None:
    pins = KnownPeers(None, PinMode.OFF)
    assert pins.check("h", 1, certs[0]).verdict is PinVerdict.UNCHECKED
    assert pins.pins == {}


def test_saved_0600_and_loaded_back(tmp_path: Path, certs: tuple[bytes, bytes]) -> None:
    path = tmp_path / knownpeers.KNOWN_PEERS_NAME
    pins = KnownPeers(path, PinMode.TOFU)
    seen = pins.check("::1", 5061, certs[0]).seen
    pins.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["peers"] == {"[::1]:5061": seen}
    loaded = knownpeers.load(path, PinMode.STRICT)
    assert loaded.check("::1", 5061, certs[1]).refused


def test_a_damaged_file_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / knownpeers.KNOWN_PEERS_NAME
    path.write_text('{"peers": ["not", "a", "map"]}')
    with pytest.raises(knownpeers.KnownPeersError, match="damaged"):
        knownpeers.load(path, PinMode.TOFU)
    assert knownpeers.load(tmp_path / "absent.json", PinMode.TOFU).pins == {}
