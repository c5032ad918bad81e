"""The recorded linphonec ↔ linphonec ZRTP calls (shared/zrtp/data, see ../shared/zrtp/BRIEF.md §10.5).

Every ZRTP packet is parsed (CRC-32C checked by the parser) and re-serialised byte for byte;
the hash chains, Hello/Commit MACs, hvi, contention outcome, algorithm choice, Hello hashes
against the SDP values and the retained-secret IDs against linphone's caches are re-derived
with securephone's code and compared with expected.json and the consoles.

What the data cannot give: s0, the SRTP keys and the SAS of these calls depend on the DH
private values, which neither the captures nor the caches hold (expected.json records none of
them); the KDF itself is checked against a published vector in test_crypto.py, and the SAS
strings linphonec printed are checked to be renderings in our alphabets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from securephone.media.zrtp.algorithms import (
    AlgorithmFamily,
    AlgorithmOffer,
    choose_key_agreement,
    negotiate,
)
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.crypto import (
    chain_mac,
    match_shared_secret,
    sas_b32,
    sas_b256,
    secret_id,
    sha256,
)
from securephone.media.zrtp.messages import Commit, DHPart, DHPart1, DHPart2, Hello, parse_message
from securephone.media.zrtp.packet import ZrtpPacket
from securephone.media.zrtp.session import ZrtpConfig, ZrtpSession

from .recorded import Captured, cache_rows, expected, require_data, zrtp_packets

CALLS = [
    ("x255-b256-2calls", 0),
    ("x255-b256-2calls", 1),
    ("dh3k-b32-verified-mismatch-3calls", 0),
    ("dh3k-b32-verified-mismatch-3calls", 1),
    ("dh3k-b32-verified-mismatch-3calls", 2),
]


def _call(series: str, index: int) -> tuple[dict[str, Any], list[Captured], Path]:
    folder = require_data() / series
    facts = expected()[series]["calls"][index]
    return facts, zrtp_packets(folder / f"call{index + 1}.pcapng"), folder


def _first(packets: list[Captured], port: int, kind: type) -> Any:
    return next(p.message for p in packets if p.port == port and isinstance(p.message, kind))


def _sides(packets: list[Captured]) -> dict[int, dict[str, Any]]:
    sides: dict[int, dict[str, Any]] = {}
    for port in sorted({p.port for p in packets}):
        raw = {type(p.message).__name__: p.packet.message for p in packets if p.port == port}
        sides[port] = {
            "hello": _first(packets, port, Hello),
            "commit": _first(packets, port, Commit),
            "dhpart": _first(packets, port, DHPart),
            "raw": raw,
            "ssrc": next(p.packet.ssrc for p in packets if p.port == port),
        }
    return sides


@pytest.mark.parametrize(("series", "index"), CALLS)
def test_every_packet_parses_and_round_trips(series: str, index: int) -> None:
    facts, packets, _ = _call(series, index)
    assert facts["crc_all_ok"] is True
    seen = [
        [p.port, type(p.message).TYPE.value.decode().strip(), p.packet.sequence] for p in packets
    ]
    assert seen == facts["sequence"]
    for captured in packets:
        assert bytes(captured.message) == captured.packet.message
        assert bytes(captured.packet) == captured.datagram  # CRC re-computed, LSB first


@pytest.mark.parametrize(("series", "index"), CALLS)
def test_sides_hello_hash_algorithms_and_secret_ids(series: str, index: int) -> None:
    facts, packets, _ = _call(series, index)
    for port, side in _sides(packets).items():
        want = facts["sides"][str(port)]
        hello: Hello = side["hello"]
        assert f"{side['ssrc']:08x}" == want["ssrc"]
        assert hello.zid.hex() == want["zid"]
        assert sha256(side["raw"]["Hello"]).hex() == want["hello_sha256"] == want["sdp_zrtp_hash"]
        lists = [hello.hashes, hello.ciphers, hello.auth_tags, hello.key_agreements]
        assert [list(x) for x in [*lists, hello.sas_types]] == want["hello_algorithms"]
        commit: Commit = side["commit"]
        chosen = [commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement]
        assert [*chosen, commit.sas_type] == want["commit"]["algs"]
        assert commit.hvi.hex() == want["commit"]["hvi"]
        dhpart: DHPart = side["dhpart"]
        name = type(dhpart).__name__
        assert len(side["raw"][name]) == want[name]["len"]
        assert dhpart.h1.hex() == want[name]["H1"]
        ids = [dhpart.rs1_id, dhpart.rs2_id, dhpart.auxsecret_id, dhpart.pbxsecret_id]
        assert [i.hex() for i in ids] == [
            want[name][k] for k in ("rs1ID", "rs2ID", "auxID", "pbxID")
        ]


@pytest.mark.parametrize(("series", "index"), CALLS)
def test_hash_chains_and_macs_verify(series: str, index: int) -> None:
    """RFC 6189 §9: H1 → H2 → H3 links, Hello MAC keyed by H2, Commit MAC keyed by H1."""
    _, packets, _ = _call(series, index)
    for side in _sides(packets).values():
        hello, commit, dhpart = side["hello"], side["commit"], side["dhpart"]
        h2 = sha256(dhpart.h1)
        assert h2 == commit.h2 and sha256(h2) == hello.h3
        assert chain_mac(h2, side["raw"]["Hello"][:-8]) == hello.mac
        assert chain_mac(dhpart.h1, side["raw"]["Commit"][:-8]) == commit.mac
        assert chain_mac(dhpart.h1, side["raw"]["Hello"][:-8]) != hello.mac  # wrong key fails


@pytest.mark.parametrize(("series", "index"), CALLS)
def test_contention_hvi_and_algorithm_agreement(series: str, index: int) -> None:
    """Both sides sent Commit; the larger hvi is the initiator; hvi = H(DHPart2 ‖ Hello_r)."""
    facts, packets, _ = _call(series, index)
    sides = _sides(packets)
    (a, side_a), (b, side_b) = sides.items()
    initiator = a if side_a["commit"].hvi > side_b["commit"].hvi else b
    responder = b if initiator == a else a
    assert facts["sides"][str(initiator)]["role"] == "initiator"
    assert facts["sides"][str(responder)]["role"] == "responder"
    assert isinstance(sides[initiator]["dhpart"], DHPart2)
    assert isinstance(sides[responder]["dhpart"], DHPart1)
    hvi = sha256(sides[initiator]["raw"]["DHPart2"] + sides[responder]["raw"]["Hello"])
    assert hvi == sides[initiator]["commit"].hvi
    for mine, theirs in ((side_a, side_b), (side_b, side_a)):
        offer = AlgorithmOffer(
            key_agreements=tuple(k for k in mine["hello"].key_agreements if k != "Mult"),
            sas_types=mine["hello"].sas_types,
        )
        peer = {
            AlgorithmFamily.HASH: theirs["hello"].hashes,
            AlgorithmFamily.AUTH_TAG: theirs["hello"].auth_tags,
            AlgorithmFamily.KEY_AGREEMENT: theirs["hello"].key_agreements,
            AlgorithmFamily.SAS: theirs["hello"].sas_types,
        }
        chosen = negotiate(offer, peer)
        commit = mine["commit"]
        assert chosen.key_agreement == commit.key_agreement
        assert choose_key_agreement(offer.key_agreements, peer[AlgorithmFamily.KEY_AGREEMENT]) == (
            commit.key_agreement
        )
        assert (chosen.hash, chosen.auth_tag, chosen.sas_type) == (
            commit.hash,
            commit.auth_tag,
            commit.sas_type,
        )


@pytest.mark.parametrize(("series", "index"), [c for c in CALLS if c[1] > 0])
def test_retained_secret_ids_follow_the_previous_cache(series: str, index: int) -> None:
    """Call N's DHPart rs1IDs are MACs of the rs1 both caches held after call N−1 (§4.3.1)."""
    facts, _packets, folder = _call(series, index)
    before = {
        "la": cache_rows(folder / f"la_zidcache_after_call{index}.sqlite"),
        "lb": cache_rows(folder / f"lb_zidcache_after_call{index}.sqlite"),
    }
    (rs1_la,) = [row["rs1"] for row in before["la"].values()]
    (rs1_lb,) = [row["rs1"] for row in before["lb"].values()]
    assert rs1_la == rs1_lb and rs1_la is not None
    assert secret_id("S256", rs1_la, b"Initiator").hex() == facts["expected_rs1IDi_from_prev_rs1"]
    assert secret_id("S256", rs1_la, b"Responder").hex() == facts["expected_rs1IDr_from_prev_rs1"]


def _own_secrets(rows: dict[bytes, dict[str, bytes | None]]) -> tuple[bytes | None, bytes | None]:
    (row,) = rows.values()
    return row["rs1"], row["rs2"]


@pytest.mark.parametrize(("index", "mismatch"), [(1, False), (2, True)])
def test_shared_secret_matching_reproduces_linphone_verdict(index: int, mismatch: bool) -> None:
    """Call 2 matched rs1 on both sides; call 3 (lb's rs1 overwritten) is a cache mismatch.

    la's cache before call N is its cache after call N−1; lb's tampered rs1 is in its cache
    after call 3 (a mismatch leaves rs1 unchanged, RFC 6189 §4.6.1.1).
    """
    series = "dh3k-b32-verified-mismatch-3calls"
    _, packets, folder = _call(series, index)
    sides = _sides(packets)
    lb_cache = folder / f"lb_zidcache_after_call{index + 1 if mismatch else index}.sqlite"
    own = {
        7300: _own_secrets(cache_rows(folder / f"la_zidcache_after_call{index}.sqlite")),
        7310: _own_secrets(cache_rows(lb_cache)),
    }
    for port, side in sides.items():
        peer = sides[7310 if port == 7300 else 7300]["dhpart"]
        initiator = isinstance(side["dhpart"], DHPart2)
        s1 = match_shared_secret("S256", own[port], (peer.rs1_id, peer.rs2_id), initiator)
        assert (s1 is None) is mismatch
        if not mismatch:
            assert s1 == own[port][0]
    debug = (folder / f"la_debug_call{index + 1}_zrtp_lines.txt").read_text()
    assert ("cache mismatch" in debug) is mismatch


@pytest.mark.parametrize(("series", "index"), CALLS)
def test_printed_sas_is_the_same_on_both_sides_and_in_our_alphabet(series: str, index: int) -> None:
    facts, packets, folder = _call(series, index)
    printed = set()
    for who in ("la", "lb"):
        text = (folder / f"{who}_console_call{index + 1}.txt").read_text()
        printed |= set(re.findall(r"auth token is (\S+)\.", text))
    assert printed == set(facts["linphonec_sas"])
    (sas,) = printed
    sas_type = _sides(packets)[7300]["commit"].sas_type
    if sas_type == "B256":
        even, odd = sas.split(":")
        hits = [v for v in range(1 << 16) if sas_b256(v << 16) == sas]
        assert len(hits) == 1, (even, odd)
    else:
        hits = [v for v in range(1 << 20) if sas_b32(v << 12) == sas]
        assert len(hits) == 1


@pytest.mark.parametrize(
    ("series", "index", "key_agreement"), [(CALLS[0][0], 0, "X255"), (CALLS[2][0], 0, "DH3k")]
)
def test_our_session_answers_linphones_hello_and_commits_what_it_would(
    series: str, index: int, key_agreement: str
) -> None:
    """Linphone's recorded Hello (checked against its SDP hash) and HelloACK drive our session
    to HelloACK and then a Commit naming the key agreement linphone itself committed."""
    facts, packets, _ = _call(series, index)
    hello = next(p for p in packets if p.port == 7300 and isinstance(p.message, Hello))
    ack = next(p for p in packets if p.port == 7300 and type(p.message).__name__ == "HelloAck")
    session = ZrtpSession(ZrtpConfig(), ZrtpCache.new(), 0x1234)
    session.set_peer_hello_hash("1.10 " + facts["sides"]["7300"]["sdp_zrtp_hash"])
    session.start(0.0)
    session.receive(hello.datagram, ("127.0.0.1", 7300), 0.01)
    session.receive(ack.datagram, ("127.0.0.1", 7300), 0.02)
    sent = [parse_message(ZrtpPacket.parse(d).message) for d in session.datagrams_to_send()]
    assert [type(m).__name__ for m in sent] == ["Hello", "HelloAck", "Commit"]
    commit = sent[-1]
    assert isinstance(commit, Commit)
    assert (commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement) == (
        "S256",
        "AES1",
        "HS80",
        key_agreement,
    )
    assert commit.key_agreement == facts["sides"]["7300"]["commit"]["algs"][3]
    assert session.peer_zid == hello.message.zid  # type: ignore[attr-defined]
