"""Verdicts, the exported audio and pictures, the HTML/JSON report and the ``verify`` command."""

from __future__ import annotations

import base64
import json
import re
import struct
import wave
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from securephone.verify.cli import app
from securephone.verify.export import spectral_flatness, wire_audio
from securephone.verify.keys import KeyEntry, write_key_file
from securephone.verify.report import Verdict, analyze, render_html, write_outputs

from ..interop.audio_tools import align, best_alignment, read_wav
from .synth import (
    LO,
    Packet,
    pcap_bytes,
    pcapng_bytes,
    rtp_packets,
    sip_invite,
    sip_ok,
    sip_request,
    speechlike,
    srtp_protect,
    tcp_segments,
    udp_flow,
    write,
)

CALLER, CALLEE = (LO, 5070), (LO, 5060)
A, B = (LO, 30000), (LO, 30002)
KEY = bytes(range(100, 130))
SPEECH_A, SPEECH_B = speechlike(4.0, seed=1), speechlike(4.0, seed=2)
runner = CliRunner()


def plain_call() -> list[Packet]:
    sip = [
        Packet(0.5, CALLER, CALLEE, sip_invite(CALLER, CALLEE, A[1])),
        Packet(0.6, CALLEE, CALLER, sip_ok(CALLER, CALLEE, B[1])),
        Packet(5.0, CALLER, CALLEE, sip_request("BYE", CALLER, CALLEE)),
    ]
    media = udp_flow(rtp_packets(SPEECH_A, ssrc=0xA), A, B, start=1.0)
    media += udp_flow(rtp_packets(SPEECH_B, ssrc=0xB, payload_type=0), B, A, start=1.01)
    return sorted(sip + media, key=lambda p: p.time)


def tls_records(client: bool) -> bytes:
    """A TLS 1.3 hello (client or server, RFC 8446 §4.1.2-3) plus an application data record."""
    body = struct.pack("!H", 0x0303) + bytes(32) + b"\x00"
    if client:
        body += b"\x00\x02\x13\x01\x01\x00" + b"\x00\x07\x00\x2b\x00\x03\x02\x03\x04"
    else:
        body += b"\x13\x01\x00" + b"\x00\x06\x00\x2b\x00\x02\x03\x04"
    hs = bytes([1 if client else 2]) + len(body).to_bytes(3, "big") + body
    record = struct.pack("!BHH", 22, 0x0303, len(hs)) + hs
    return record + struct.pack("!BHH", 23, 0x0303, 64) + bytes(64)


def secure_call() -> list[Packet]:
    tls = tcp_segments(tls_records(True), CALLER, (LO, 5061), start=0.1)
    tls += tcp_segments(tls_records(False), (LO, 5061), CALLER, isn=5000, start=0.2, syn_ack=True)
    media = udp_flow(
        srtp_protect(rtp_packets(SPEECH_A, ssrc=0xA), "AES_CM_128_HMAC_SHA1_80", KEY),
        A,
        B,
        start=1.0,
    )
    media += udp_flow(
        srtp_protect(rtp_packets(SPEECH_B, ssrc=0xB), "AES_CM_128_HMAC_SHA1_80", KEY[::-1]),
        B,
        A,
        start=1.01,
    )
    return sorted(tls + media, key=lambda p: p.time)


def test_plain_call_is_not_encrypted_and_its_audio_comes_back(tmp_path: Path) -> None:
    report = analyze(write(tmp_path / "plain.pcap", pcap_bytes(plain_call())))
    assert report.overall is Verdict.PLAINTEXT and report.exit_code == 1
    assert [i.verdict for i in report.items] == [Verdict.PLAINTEXT] * 3
    assert report.items[0].summary == "plaintext SIP readable: INVITE, BYE"
    assert report.plaintext_sip == 3
    files = write_outputs(report, tmp_path / "out")
    assert (
        files["html"].exists() and json.loads(files["json"].read_text())["overall"] == "plaintext"
    )
    heard, rate = read_wav(tmp_path / "out" / "stream-01.wav")
    assert rate == 8000
    found = align(SPEECH_A, heard)
    assert found.correlation > 0.95 and found.lag == 0  # G.711 round trip of the sent audio
    assert best_alignment(SPEECH_B, heard)[1] < 0.3
    stream = report.items[1].stream
    assert stream is not None
    flatness = spectral_flatness(wire_audio(stream))
    assert flatness is not None and flatness < 0.2


def test_secure_call_is_encrypted_and_sounds_like_noise(tmp_path: Path) -> None:
    report = analyze(write(tmp_path / "secure.pcap", pcap_bytes(secure_call())))
    assert [i.verdict for i in report.items] == [Verdict.ENCRYPTED] * 3, [
        i.summary for i in report.items
    ]
    assert report.items[0].summary.startswith("TLS 1.3, TLS_AES_128_GCM_SHA256")
    assert report.overall is Verdict.ENCRYPTED and report.exit_code == 0
    assert report.plaintext_sip == 0
    write_outputs(report, tmp_path / "out")
    noise, _ = read_wav(tmp_path / "out" / "stream-01.wav")
    assert len(noise) == len(SPEECH_A)
    assert best_alignment(SPEECH_A, noise)[1] < 0.2
    export = report.items[1].export
    assert export is not None and export.flatness is not None and export.flatness > 0.4
    assert export.decrypted_wav is None


def test_key_file_gives_decrypted_audio(tmp_path: Path) -> None:
    keys = [KeyEntry("AES_CM_128_HMAC_SHA1_80", KEY, ssrc=0xA)]
    report = analyze(write(tmp_path / "secure.pcap", pcap_bytes(secure_call())), keys)
    write_outputs(report, tmp_path / "out")
    assert report.exit_code == 0  # decrypting with the owner's key changes nothing on the wire
    item = report.items[1]
    assert any("200/200 authentication tags verified" in d for d in item.details)
    export = item.export
    assert (
        export is not None and export.decrypted_wav is not None and export.decrypted_png is not None
    )
    decrypted, _ = read_wav(export.decrypted_wav)
    assert align(SPEECH_A, decrypted).correlation > 0.95
    assert export.decrypted_flatness is not None and export.decrypted_flatness < 0.2
    assert report.items[2].export is not None and report.items[2].export.decrypted_wav is None


def test_sdes_over_plaintext_is_exposed(tmp_path: Path) -> None:
    crypto = "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(KEY).decode()
    sip = [
        Packet(
            0.5, CALLER, CALLEE, sip_invite(CALLER, CALLEE, A[1], crypto=crypto, proto="RTP/SAVP")
        )
    ]
    media = udp_flow(
        srtp_protect(rtp_packets(SPEECH_A, ssrc=0xA), "AES_CM_128_HMAC_SHA1_80", KEY),
        A,
        B,
        start=1.0,
    )
    report = analyze(write(tmp_path / "sdes.pcap", pcap_bytes(sip + media)))
    assert [i.verdict for i in report.items] == [Verdict.PLAINTEXT, Verdict.EXPOSED]
    assert "SDES key is in plaintext SDP and was decrypted" in report.items[1].summary
    assert any("a=crypto keys in plaintext" in d for d in report.items[0].details)
    write_outputs(report, tmp_path / "out")
    decrypted, _ = read_wav(tmp_path / "out" / "stream-01-decrypted.wav")
    assert align(SPEECH_A, decrypted).correlation > 0.95


def test_html_embeds_pictures_and_escapes_wire_text(tmp_path: Path) -> None:
    evil = sip_request("MESSAGE", CALLER, CALLEE).replace(
        b"sip:bob@", b"sip:<script>alert(1)</script>@"
    )
    packets = [*plain_call(), Packet(6.0, CALLER, CALLEE, evil)]
    report = analyze(write(tmp_path / "x.pcap", pcap_bytes(packets)))
    write_outputs(report, tmp_path / "out")
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2 and all(
        base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images
    )
    assert 'src="stream-01.wav"' in page and "NOT ENCRYPTED" in page
    with wave.open(str(tmp_path / "out" / "stream-02.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)


def test_nothing_to_verify_is_inconclusive(tmp_path: Path) -> None:
    other = [Packet(1.0 + i, (LO, 53), (LO, 4444), b"\x12\x34" + bytes(20)) for i in range(3)]
    report = analyze(write(tmp_path / "dns.pcap", pcap_bytes(other)))
    assert report.items == [] and report.overall is Verdict.UNKNOWN and report.exit_code == 1
    assert report.overall_text.startswith("INCONCLUSIVE")


def test_spectral_flatness_separates_tone_from_noise() -> None:
    t = np.arange(8000) / 8000
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    noise = np.random.default_rng(1).integers(-20000, 20000, 8000).astype(np.int16)
    flat_tone, flat_noise = spectral_flatness(tone), spectral_flatness(noise)
    assert flat_tone is not None and flat_noise is not None
    assert flat_tone < 0.05 < 0.45 < flat_noise
    assert spectral_flatness(np.zeros(8000, dtype=np.int16)) is None


# --------------------------------------------------------------------------- the command


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    plain = write(tmp_path / "plain.pcapng", pcapng_bytes(plain_call()))
    result = runner.invoke(app, [str(plain), "--json", "--out", str(tmp_path / "o1")])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["overall"] == "plaintext" and data["capture"]["format"] == "pcapng"
    assert data["items"][1]["media"]["codec"] == "PCMU"
    assert Path(data["items"][1]["files"]["wav"]).exists()
    secure = write(tmp_path / "secure.pcap", pcap_bytes(secure_call()))
    keys = tmp_path / "keys.json"
    write_key_file(keys, [KeyEntry("AES_CM_128_HMAC_SHA1_80", KEY, ssrc=0xA)])
    result = runner.invoke(app, [str(secure), "--keys", str(keys)])
    assert result.exit_code == 0, result.output
    assert "overall: ENCRYPTED" in result.stdout and "200/200 authentication" in result.stdout
    assert (tmp_path / "secure-verify" / "report.html").exists()  # default --out


def test_cli_bad_inputs_exit_2_with_one_clear_line(tmp_path: Path) -> None:
    cases = {
        "text.pcap": (b"hello, this is not a capture", "not a pcap or pcapng capture"),
        "empty.pcap": (pcap_bytes([]), "empty capture"),
        "cut.pcap": (pcap_bytes(plain_call())[:20], "truncated pcap"),
    }
    for name, (data, message) in cases.items():
        result = runner.invoke(app, [str(write(tmp_path / name, data))])
        assert result.exit_code == 2 and message in result.stderr, (name, result.output)
        assert result.stderr.strip().count("\n") == 0
    result = runner.invoke(app, [str(tmp_path / "missing.pcap")])
    assert result.exit_code == 2 and "no such file" in result.stderr
    bad_keys = write(tmp_path / "k.json", b"[]")
    good = write(tmp_path / "plain.pcap", pcap_bytes(plain_call()))
    result = runner.invoke(app, [str(good), "--keys", str(bad_keys)])
    assert result.exit_code == 2 and "key file" in result.stderr and "empty" in result.stderr


def test_truncated_capture_is_analysed_with_a_warning(tmp_path: Path) -> None:
    data = pcap_bytes(plain_call())
    result = runner.invoke(app, [str(write(tmp_path / "t.pcap", data[:-7])), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["capture"]["truncated"] and "truncated" in report["warnings"][0]


def test_terminal_output_keeps_brackets_of_ipv6_endpoints(tmp_path: Path) -> None:
    v6a, v6b = ("::1", 5070), ("::1", 5060)
    packets = [Packet(1.0, v6a, v6b, sip_request("OPTIONS", v6a, v6b, 1))]
    result = runner.invoke(app, [str(write(tmp_path / "v6.pcap", pcap_bytes(packets)))])
    assert result.exit_code == 1
    assert "SIP/UDP [::1]:5070 ⇄ [::1]:5060: PLAINTEXT" in result.stdout
