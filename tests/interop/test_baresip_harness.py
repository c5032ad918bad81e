"""Self-test of the baresip harness and the audio tools.

The audio tools are checked offline first (G.711-coded, delayed, clipped copies must match;
noise and another sentence must not).  Then real baresip 1.0.0 instances on 127.0.0.1 call
each other: plain UDP with speech both ways and DTMF, TLS + SDES-SRTP (RFC 4568) with a manual
answer, and registration plus a call through a real Kamailio.  Each call's decoded recording
must correlate with what the far end sent, and not with what the recorder itself sent.
"""

from __future__ import annotations

import ipaddress
import os
import re
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ..helpers import group_members
from .audio_tools import (
    RATE,
    align,
    assert_audio_matches,
    best_alignment,
    make_signal_wav,
    make_speech_wav,
    read_wav,
    write_wav,
)
from .baresip import (
    Baresip,
    BaresipError,
    PortRange,
    ProxyAccount,
    TlsFiles,
    Transport,
    missing_tools,
    parse_netstrings,
)
from .conftest import KamailioFactory
from .kamailio import TlsConfig

BaresipFactory = Callable[..., Baresip]

LO = "127.0.0.1"
SENTENCE_A = "The quick brown fox jumps over the lazy dog near the river bank."
SENTENCE_B = "Seven silver spoons were hidden under the old wooden kitchen table."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different spoken sentences, 8 kHz mono 16-bit (synthetic signals without espeak)."""
    folder = tmp_path_factory.mktemp("speech")
    return (
        make_speech_wav(folder / "a.wav", SENTENCE_A, fallback_seed=1),
        make_speech_wav(folder / "b.wav", SENTENCE_B, fallback_seed=2),
    )


# --------------------------------------------------------------------------- audio tools


def g711_ulaw(x: npt.NDArray[np.generic]) -> npt.NDArray[np.int16]:
    """µ-law companding with 8-bit quantisation (G.711's curve, continuous form)."""
    v = np.asarray(x, dtype=np.float64) / 32768.0
    mu = 255.0
    y = np.sign(v) * np.log1p(mu * np.abs(v)) / np.log1p(mu)
    q = np.round(y * 127.0) / 127.0
    out = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * 32768.0
    return np.asarray(np.clip(out, -32768, 32767), dtype=np.int16)


def test_g711_delayed_clipped_copy_with_leading_silence_matches(
    speech: tuple[Path, Path],
) -> None:
    sent, _ = read_wav(speech[0])
    loud = np.clip(sent.astype(np.float64) * 4.0, -32768, 32767)  # hard clipping
    received = np.concatenate([np.zeros(3210), g711_ulaw(loud), np.zeros(4000)])
    found = assert_audio_matches(sent, received, min_corr=0.8)
    assert found.lag == 3210
    assert found.correlation > 0.8
    # a quieter, truncated copy (the call ended early) still lines up
    lag, corr = best_alignment(sent, g711_ulaw(sent * 0.1)[: len(sent) // 2])
    assert lag == 0 and corr > 0.9


def test_unrelated_audio_has_low_correlation(speech: tuple[Path, Path]) -> None:
    sent, _ = read_wav(speech[0])
    other, _ = read_wav(speech[1])
    noise = np.random.default_rng(7).normal(0.0, 3000.0, len(sent) + 8000)
    assert best_alignment(sent, noise)[1] < 0.3
    assert best_alignment(sent, other)[1] < 0.3
    assert best_alignment(sent, np.zeros(len(sent)))[1] == 0.0
    with pytest.raises(AssertionError, match="does not match"):
        assert_audio_matches(sent, g711_ulaw(other))
    with pytest.raises(AssertionError, match="silent"):
        assert_audio_matches(sent, np.zeros(16000, dtype=np.int16))


def test_synthetic_signals_differ_per_seed(tmp_path: Path) -> None:
    one, _ = read_wav(make_signal_wav(tmp_path / "1.wav", seed=1, seconds=3.0))
    again, _ = read_wav(make_signal_wav(tmp_path / "1b.wav", seed=1, seconds=3.0))
    two, _ = read_wav(make_signal_wav(tmp_path / "2.wav", seed=2, seconds=3.0))
    assert len(one) == 3 * RATE and np.array_equal(one, again)
    assert best_alignment(one, two)[1] < 0.3
    assert best_alignment(one, g711_ulaw(one))[1] > 0.95


def test_read_wav_converts_stereo_rates_and_unfinished_headers(
    tmp_path: Path, speech: tuple[Path, Path]
) -> None:
    mono, _ = read_wav(speech[0])
    # 16 kHz stereo float: resampled and mixed back to 8 kHz mono
    up = np.interp(np.arange(2 * len(mono)) / 2, np.arange(len(mono)), mono.astype(np.float64))
    path = tmp_path / "stereo16k.wav"
    _write_float_stereo(path, up / 32768.0, 16000)
    converted, rate = read_wav(path)
    assert rate == RATE and abs(len(converted) - len(mono)) <= 1
    assert align(mono, converted).correlation > 0.98
    kept, own_rate = read_wav(path, rate=None)
    assert own_rate == 16000 and len(kept) == len(up)
    # a header whose sizes were never written (recorder still running)
    unfinished = tmp_path / "unfinished.wav"
    write_wav(unfinished, mono[:800])
    data = bytearray(unfinished.read_bytes())
    data[4:8] = (8).to_bytes(4, "little")
    data[40:44] = (0).to_bytes(4, "little")
    unfinished.write_bytes(bytes(data))
    assert np.array_equal(read_wav(unfinished)[0], mono[:800])


def _write_float_stereo(path: Path, mono: npt.NDArray[np.float64], rate: int) -> None:
    frames = np.stack([mono, mono * 0.5], axis=1).astype("<f4").tobytes()
    fmt = (3).to_bytes(2, "little") + (2).to_bytes(2, "little") + rate.to_bytes(4, "little")
    fmt += (rate * 8).to_bytes(4, "little") + (8).to_bytes(2, "little") + (32).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
    body += b"data" + len(frames).to_bytes(4, "little") + frames
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)


def test_make_speech_wav_format(speech: tuple[Path, Path]) -> None:
    with wave.open(str(speech[0])) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        assert 2.0 < wav.getnframes() / RATE < 6.0


# --------------------------------------------------------------------------- harness units


def test_netstring_framing() -> None:
    buffer = bytearray(b'11:{"event":1},3:abc,5:ab')
    assert parse_netstrings(buffer) == [b'{"event":1}', b"abc"]
    assert buffer == bytearray(b"5:ab")
    buffer += b"cde,"
    assert parse_netstrings(buffer) == [b"abcde"] and not buffer
    with pytest.raises(BaresipError):
        parse_netstrings(bytearray(b"x1:a,"))


def test_account_lines_and_dial_uris(tmp_path: Path) -> None:
    direct = Baresip(tmp_path / "d", user="bob", transport="tls", mediaenc="srtp-mand")
    direct.sip_port = 5070
    assert direct.sip_uri == "sip:bob@127.0.0.1:5071;transport=tls"
    assert direct.account_line() == (
        "<sip:bob@127.0.0.1:5071;transport=tls>;regint=0;answermode=auto;"
        "audio_codecs=PCMU,PCMA;mediaenc=srtp-mand"
    )
    proxy = ProxyAccount("alice", "pw", "sip:127.0.0.1:5061;transport=tls", regint=60)
    registered = Baresip(tmp_path / "r", transport="tls", proxy=proxy, answermode="manual")
    assert registered.account_line() == (
        "<sip:alice@127.0.0.1;transport=tls>;auth_user=alice;auth_pass=pw;"
        'outbound="sip:127.0.0.1:5061;transport=tls";regint=60;answermode=manual;'
        "audio_codecs=PCMU,PCMA"
    )
    assert direct._dial_uri("sip:x@127.0.0.1:5;transport=TLS") == "sip:x@127.0.0.1:5"
    assert direct._dial_uri("sip:x@127.0.0.1:5;lr") == "sip:x@127.0.0.1:5;lr"
    with pytest.raises(ValueError, match="transport=tls"):
        direct._dial_uri("sip:x@127.0.0.1:5;transport=udp")
    with pytest.raises(ValueError):
        Baresip(tmp_path / "x", mediaenc="zrtp")
    with pytest.raises(ValueError):
        Baresip(tmp_path / "x", user="a b")


def test_rtp_ranges_are_exclusive() -> None:
    first = PortRange.reserve()
    try:
        others = [PortRange.reserve() for _ in range(5)]
        ranges = [(r.first, r.last) for r in [first, *others]]
        assert len(set(ranges)) == 6
        for r in [first, *others]:
            assert r.first >= 20000 and r.last == r.first + 99 and r.last <= 29999
        for r in others:
            r.release()
    finally:
        first.release()


# --------------------------------------------------------------------------- real calls


def test_process_is_stopped_when_the_test_fails(tmp_path: Path) -> None:
    if missing_tools():
        pytest.skip("baresip not installed")
    phone = Baresip(tmp_path / "crash")
    with pytest.raises(RuntimeError, match="boom"), phone:
        assert phone.pid is not None and phone.running
        pid, wrapper = phone.pid, phone.wrapper_pid or 0
        assert phone.command("reginfo")["ok"] is True
        with pytest.raises(BaresipError, match="no CALL_INCOMING event"):
            phone.wait_event("CALL_INCOMING", timeout=0.2)  # nobody calls it
        raise RuntimeError("boom")
    assert not phone.running and phone.pid is None
    assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
    assert group_members(wrapper) == []


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _loopback(addresses: list[str]) -> bool:
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def test_udp_call_audio_both_ways_and_dtmf(
    baresip_factory: BaresipFactory, speech: tuple[Path, Path]
) -> None:
    alice = baresip_factory(user="alice", audio_source=speech[0])
    bob = baresip_factory(user="bob", audio_source=speech[1], answermode="auto")
    assert alice.sip_port != bob.sip_port and alice.rtp_ports is not None
    alice.dial(bob.sip_uri)
    established = alice.wait_event("CALL_ESTABLISHED")
    assert bob.wait_event("CALL_ESTABLISHED")["direction"] == "incoming"
    assert established["direction"] == "outgoing" and "bob@127.0.0.1" in established["peeruri"]
    assert '"type":"CALL_ESTABLISHED"' in established["_raw"]
    alice.send_dtmf("1#")
    assert bob.wait_event("CALL_DTMF_START")["param"] == "1"
    assert bob.wait_event("CALL_DTMF_START")["param"] == "#"
    bob.wait_heard(3.0)  # let the speech play before hanging up
    alice.wait_heard(3.0)
    alice.hangup()
    assert alice.wait_event("CALL_CLOSED")["param"] == "Connection reset by user"
    assert bob.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"

    heard_by_bob, heard_by_alice = bob.wait_recordings()[0], alice.wait_recordings()[0]
    assert_audio_matches(speech[0], heard_by_bob)
    assert_audio_matches(speech[1], heard_by_alice)
    assert best_alignment(read_wav(speech[1])[0], read_wav(heard_by_bob)[0])[1] < 0.3
    assert best_alignment(read_wav(speech[0])[0], read_wav(heard_by_alice)[0])[1] < 0.3
    # what each side sent (the enc dump) is its own sentence
    assert_audio_matches(speech[0], alice.wait_recordings(kind="enc")[0], min_corr=0.99)
    for phone in (alice, bob):
        assert _loopback(phone.logged_sdp_addresses())
    _assert_media_ports_in_ranges(alice, bob)


def _assert_media_ports_in_ranges(*phones: Baresip) -> None:
    """Every SDP m= port in the SIP traces lies in one of the phones' reserved RTP blocks."""
    ranges = [phone.rtp_ports for phone in phones if phone.rtp_ports is not None]
    ports = {
        int(match)
        for phone in phones
        for match in re.findall(r"^m=audio (\d+) ", phone.log_text(), flags=re.MULTILINE)
    }
    assert ports and len(ranges) == len(phones)
    assert all(any(port in r for r in ranges) for port in ports), (ports, ranges)


def test_tls_srtp_call_with_manual_answer(
    baresip_factory: BaresipFactory, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    files = make_pki(tmp_path)
    common: dict[str, Any] = {"transport": "tls", "mediaenc": "srtp-mand"}
    alice = baresip_factory(user="alice", audio_source=speech[0], tls=files["alice"], **common)
    bob = baresip_factory(
        user="bob", audio_source=speech[1], tls=files["bob"], answermode="manual", **common
    )
    alice.dial(bob.sip_uri)
    assert bob.wait_event("CALL_INCOMING")["param"].startswith("sip:alice@")
    bob.answer()
    for phone in (alice, bob):
        phone.wait_event("CALL_ESTABLISHED")
        assert phone.wait_event("CALL_MENC")["param"].endswith("audio,AES_CM_128_HMAC_SHA1_80")
    bob.wait_heard(3.0)
    alice.wait_heard(3.0)
    bob.hangup()
    alice.wait_event("CALL_CLOSED")
    assert_audio_matches(speech[0], bob.wait_recordings()[0])
    assert_audio_matches(speech[1], alice.wait_recordings()[0])
    for phone in (alice, bob):
        log = phone.log_text()
        assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in log
        # the SIP trace shows the INVITE carried over TLS, with an SDES key (RFC 4568 §9.1)
        assert re.search(r"^TLS 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+", log, flags=re.M)
        assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in log
        assert _loopback(phone.logged_sdp_addresses())
    _assert_media_ports_in_ranges(alice, bob)


@pytest.mark.parametrize(("transport", "mediaenc"), [("udp", None), ("tls", "srtp-mand")])
def test_register_and_call_through_kamailio(
    kamailio_factory: KamailioFactory,  # first: torn down after the phones (they unregister)
    baresip_factory: BaresipFactory,
    speech: tuple[Path, Path],
    tmp_path: Path,
    transport: Transport,
    mediaenc: str | None,
) -> None:
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    files = make_pki(tmp_path)
    server = TlsConfig(tmp_path / "proxy.crt", tmp_path / "proxy.key", tmp_path / "ca.pem")
    kam = kamailio_factory(users=users, tls=server if transport == "tls" else None)
    proxy_uri = kam.uri(transport)
    phones = [
        baresip_factory(
            proxy=ProxyAccount(name, users[name], proxy_uri),
            transport=transport,
            mediaenc=mediaenc,
            audio_source=wav,
            tls=files[name],
        )
        for name, wav in zip(("alice", "bob"), speech, strict=True)
    ]
    alice, bob = phones
    for phone in phones:
        assert phone.wait_registered()["type"] == "REGISTER_OK"
    alice.dial("sip:bob@127.0.0.1")
    alice.wait_event("CALL_ESTABLISHED")
    bob.wait_event("CALL_ESTABLISHED")
    if mediaenc is not None:
        assert bob.wait_event("CALL_MENC")["param"].endswith("AES_CM_128_HMAC_SHA1_80")
    bob.wait_heard(3.0)
    alice.wait_heard(3.0)
    alice.hangup()
    bob.wait_event("CALL_CLOSED")
    assert_audio_matches(speech[0], bob.wait_recordings()[0])
    assert_audio_matches(speech[1], alice.wait_recordings()[0])
    # the INVITE went through the proxy with digest credentials (RFC 3261 §22.3)
    assert "Proxy-Authorization: Digest" in alice.log_text()
    proxied = [sdp for sdp in kam.logged_sdp() if sdp.first in ("INVITE", "200 INVITE")]
    assert len(proxied) >= 2
    assert {a for sdp in proxied for a in sdp.connection_addresses()} == {LO}
    if transport == "tls":
        assert re.search(
            rf"^TLS 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{kam.tls_port}$", alice.log_text(), re.M
        )
        assert all("a=crypto:" in sdp.body for sdp in proxied)


def make_pki(folder: Path) -> dict[str, TlsFiles]:
    """A test CA (``ca.pem``), a proxy leaf (``proxy.crt``/``proxy.key``) and one combined
    key+chain PEM per phone (``alice.pem``, ``bob.pem``), all for localhost / 127.0.0.1."""
    from securephone.pki.certs import create_ca, issue_certificate

    ca = create_ca("baresip harness test CA")
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    proxy = issue_certificate(ca, "localhost", kind="server", dns=["localhost"], ips=[LO])
    (folder / "proxy.crt").write_bytes(proxy.cert_pem + proxy.chain_pem)
    (folder / "proxy.key").write_bytes(proxy.key_pem)
    files = {}
    for name in ("alice", "bob"):
        leaf = issue_certificate(ca, "localhost", kind="server", dns=["localhost"], ips=[LO])
        (folder / f"{name}.pem").write_bytes(leaf.key_pem + leaf.cert_pem + leaf.chain_pem)
        files[name] = TlsFiles(folder / f"{name}.pem", folder / "ca.pem")
    return files
