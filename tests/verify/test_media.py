"""Media classification on synthetic streams: plain RTP vs SRTP vs ZRTP, keyed decryption, keys."""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path

import numpy as np
import pylibsrtp
import pytest

from securephone.media.rtcp import ReceiverReport, ReportBlock
from securephone.verify.flows import find_signalling
from securephone.verify.keys import (
    KeyEntry,
    KeyFileError,
    load_key_file,
    parse_keys,
    write_key_file,
)
from securephone.verify.media import (
    MediaClass,
    PacketKind,
    classify_packet,
    find_media,
    parse_rtp_header,
    payload_stats,
    rtcp_is_plain,
)
from securephone.verify.pcap import parse_capture
from securephone.verify.report import Verdict, _stream_verdict, keying_of

from .synth import (
    LO,
    Packet,
    pcap_bytes,
    rtp_packets,
    sip_invite,
    sip_ok,
    speechlike,
    srtp_protect,
    udp_flow,
    zrtp_packet,
)

A, B = (LO, 30000), (LO, 30002)
KEY30 = bytes(range(30))
AUDIO = speechlike(4.0)


def streams_of(packets: list[Packet], keys: list[KeyEntry] | None = None) -> list:  # type: ignore[type-arg]
    cap = parse_capture(pcap_bytes(sorted(packets, key=lambda p: p.time)))
    sig = find_signalling(cap)
    media_dgrams = [d for d in cap.datagrams if d.frame not in sig.sip_datagrams]
    return find_media(media_dgrams, sig.messages, keys or []).streams


# --------------------------------------------------------------------------- demultiplexing


def test_classify_packet_by_first_byte_rfc7983() -> None:
    stun = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, b"t" * 12)
    dtls = bytes([22, 0xFE, 0xFD]) + bytes(10)
    rtp = rtp_packets(AUDIO[:160], ssrc=1)[0]
    rr = bytes(ReceiverReport(ssrc=7, reports=[]))
    assert classify_packet(stun) is PacketKind.STUN
    assert classify_packet(zrtp_packet(1, "Hello")) is PacketKind.ZRTP
    assert classify_packet(dtls) is PacketKind.DTLS
    assert classify_packet(rtp) is PacketKind.RTP
    assert classify_packet(rr) is PacketKind.RTCP
    assert classify_packet(b"\x00\x01") is PacketKind.OTHER


def test_rtp_header_with_csrc_and_extension() -> None:
    # V=2 X=1 CC=2, PT 0; two CSRCs; extension 0xBEDE with one word; 4 payload bytes
    data = bytes([0x92, 0x00]) + struct.pack("!HII", 7, 160, 0xABC) + struct.pack("!II", 1, 2)
    data += struct.pack("!HH", 0xBEDE, 1) + b"\x10\x00\x00\x00" + b"pay!"
    header = parse_rtp_header(data)
    assert header is not None and header.length == 12 + 8 + 8
    assert data[header.length :] == b"pay!" and header.ssrc == 0xABC
    assert parse_rtp_header(data[:22]) is None  # extension cut off
    assert parse_rtp_header(b"\x40" + data[1:]) is None  # version 1


def test_plain_rtcp_vs_srtcp() -> None:
    rr = bytes(ReceiverReport(ssrc=0x1234, reports=[ReportBlock(ssrc=0x99)]))
    policy = pylibsrtp.Policy(
        key=KEY30, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )  # fmt: skip
    srtcp = pylibsrtp.Session(policy=policy).protect_rtcp(rr)
    assert rtcp_is_plain(rr) and rtcp_is_plain(rr + rr)
    assert not rtcp_is_plain(srtcp) and len(srtcp) == len(rr) + 4 + 10  # E|index + tag


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(("payload_type", "codec"), [(0, "PCMU"), (8, "PCMA")])
def test_plain_g711_is_plain_rtp_without_sdp(payload_type: int, codec: str) -> None:
    plain = rtp_packets(AUDIO, ssrc=0x11, payload_type=payload_type)
    (stream,) = streams_of(udp_flow(plain, A, B))
    assert stream.media_class is MediaClass.PLAIN_RTP and stream.codec == codec
    assert not stream.by_sdp and stream.timestamp_step == 160 and stream.lost == 0
    assert stream.stats.random is False and stream.stats.entropy < 7.0


@pytest.mark.parametrize(
    ("suite", "tag"),
    [("AES_CM_128_HMAC_SHA1_80", 10), ("AES_CM_128_HMAC_SHA1_32", 4), ("AEAD_AES_128_GCM", 16)],
)
def test_srtp_is_random_with_the_suites_tag_length(suite: str, tag: int) -> None:
    key = KEY30[:28] if "GCM" in suite else KEY30
    srtp = srtp_protect(rtp_packets(AUDIO, ssrc=0x22), suite, key)
    (stream,) = streams_of(udp_flow(srtp, A, B))
    assert stream.media_class is MediaClass.SRTP and stream.tag_length == tag
    assert stream.stats.random is True and stream.stats.entropy > 7.9
    assert abs(stream.stats.chi2_z) < 6
    assert stream.suite_hint is not None and str(tag * 8) in stream.suite_hint


def test_sdp_finds_streams_the_heuristics_would_miss() -> None:
    caller, callee = (LO, 5070), (LO, 5060)
    short = rtp_packets(AUDIO[:800], ssrc=0x33)  # 5 packets: too few for the heuristics
    sip = [Packet(1.0, caller, callee, sip_invite(caller, callee, A[1])),
           Packet(1.1, callee, caller, sip_ok(caller, callee, B[1]))]  # fmt: skip
    assert streams_of(udp_flow(short, A, B)) == []
    (stream,) = streams_of(sip + udp_flow(short, A, B))
    assert (
        stream.by_sdp and stream.sdp_receiver is not None and stream.sdp_receiver.proto == "RTP/AVP"
    )
    assert stream.media_class is MediaClass.UNKNOWN  # 800 payload bytes: too few to judge


def test_random_datagrams_are_not_a_stream() -> None:
    rng = np.random.default_rng(3)
    noise = [bytes([0x80]) + rng.bytes(171) for _ in range(100)]  # V=2 but random headers
    assert streams_of(udp_flow(noise, A, B)) == []


def test_compressed_looking_plaintext_is_not_mistaken_for_srtp() -> None:
    """An Opus-like payload: random body bytes, but one of four TOC bytes in every packet."""
    rng = np.random.default_rng(5)
    packets = rtp_packets(AUDIO, ssrc=0x44, payload_type=8)
    fake = [p[:12] + bytes([0x78 + i % 4]) + rng.bytes(len(p) - 13) for i, p in enumerate(packets)]
    fake = [bytes([p[0], 111]) + p[2:] for p in fake]  # dynamic PT 111, no SDP
    (stream,) = streams_of(udp_flow(fake, A, B))
    assert abs(stream.stats.chi2_z) < 6  # the byte histogram alone would say "random"
    assert stream.stats.first_byte_distinct == 4
    assert stream.media_class is MediaClass.PLAIN_RTP


def test_too_little_data_is_unknown() -> None:
    stats = payload_stats([os.urandom(100)] * 3, None, 0.0)
    assert stats.random is None


def test_zrtp_packets_are_attached_to_their_stream() -> None:
    names = [
        "Hello",
        "HelloACK",
        "Commit",
        "DHPart1",
        "DHPart2",
        "Confirm1",
        "Confirm2",
        "Conf2ACK",
    ]
    zrtp = udp_flow([zrtp_packet(i, n) for i, n in enumerate(names)], B, A, start=999.0)
    srtp = srtp_protect(rtp_packets(AUDIO, ssrc=0x55), "AES_CM_128_HMAC_SHA1_80", KEY30)
    (stream,) = streams_of(zrtp + udp_flow(srtp, A, B))
    assert stream.zrtp.packets == 8 and stream.zrtp.messages == names
    assert stream.zrtp.completed and not stream.zrtp.go_clear
    assert keying_of(stream) == "zrtp"
    verdict, summary = _stream_verdict(stream)
    assert verdict is Verdict.ENCRYPTED and summary.startswith("ZRTP-keyed SRTP (end to end)")
    (alone,) = streams_of(udp_flow(srtp, A, B))  # the same SRTP without the ZRTP exchange
    assert keying_of(alone) is None and _stream_verdict(alone)[1].startswith("SRTP:")


# --------------------------------------------------------------------------- decryption


def test_key_file_decrypts_and_confirms_the_tags() -> None:
    srtp = srtp_protect(rtp_packets(AUDIO, ssrc=0x66), "AES_CM_128_HMAC_SHA1_80", KEY30)
    other = srtp_protect(
        rtp_packets(AUDIO, ssrc=0x77, seq=1), "AES_CM_128_HMAC_SHA1_80", KEY30[::-1]
    )
    keys = [KeyEntry("AES_CM_128_HMAC_SHA1_80", KEY30, ssrc=0x66)]
    streams = streams_of(udp_flow(srtp, A, B) + udp_flow(other, B, A), keys)
    mine, theirs = sorted(streams, key=lambda s: s.ssrc)
    assert mine.decryption is not None and mine.decryption.confirmed
    assert mine.decryption.ok == 200 and mine.decryption.auth_failed == 0
    assert mine.decryption.plain_stats is not None and mine.decryption.plain_stats.random is False
    clear = b"".join(data for _, _, data in mine.decryption.payloads)
    assert clear == b"".join(p[12:] for p in rtp_packets(AUDIO, ssrc=0x66))
    assert theirs.decryption is None  # the key names another SSRC


def test_wrong_key_fails_authentication() -> None:
    srtp = srtp_protect(rtp_packets(AUDIO, ssrc=0x66), "AES_CM_128_HMAC_SHA1_80", KEY30)
    keys = [KeyEntry("AES_CM_128_HMAC_SHA1_80", bytes(30))]  # any SSRC, wrong key
    (stream,) = streams_of(udp_flow(srtp, A, B), keys)
    assert stream.decryption is not None and not stream.decryption.confirmed
    assert stream.decryption.ok == 0 and stream.decryption.auth_failed == 200


def test_sdes_keys_in_plaintext_sdp_decrypt_the_call() -> None:
    caller, callee = (LO, 5070), (LO, 5060)
    crypto = "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(KEY30).decode()
    sip = [
        Packet(
            1.0, caller, callee, sip_invite(caller, callee, A[1], crypto=crypto, proto="RTP/SAVP")
        )
    ]
    srtp = srtp_protect(rtp_packets(AUDIO, ssrc=0x88), "AES_CM_128_HMAC_SHA1_80", KEY30)
    (stream,) = streams_of(sip + udp_flow(srtp, A, B))
    assert stream.media_class is MediaClass.SRTP and len(stream.exposed_keys) == 1
    assert stream.decryption is not None and stream.decryption.confirmed
    assert "plaintext SDP" in stream.decryption.source
    assert stream.sdp_sender is not None and stream.sdp_sender.secure_profile


def test_unsupported_suite_says_so() -> None:
    srtp = srtp_protect(rtp_packets(AUDIO, ssrc=0x66), "AES_CM_128_HMAC_SHA1_80", KEY30)
    keys = [KeyEntry("AES_256_CM_HMAC_SHA1_80", bytes(46))]
    (stream,) = streams_of(udp_flow(srtp, A, B), keys)
    assert stream.decryption is not None and "not supported" in stream.decryption.note


# --------------------------------------------------------------------------- key files


def test_key_file_round_trip_and_mode(tmp_path: Path) -> None:
    entries = [
        KeyEntry(
            "AES_CM_128_HMAC_SHA1_80", KEY30, ssrc=0x1234, direction="outbound", call_id="c@x"
        ),
        KeyEntry("AEAD_AES_256_GCM", bytes(44), direction="inbound"),
    ]
    path = tmp_path / "keys.json"
    write_key_file(path, entries)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_key_file(path)
    assert [(k.suite, k.key, k.ssrc, k.direction) for k in loaded] == [
        (e.suite, e.key, e.ssrc, e.direction) for e in entries
    ]
    assert loaded[0].call_id == "c@x"
    assert isinstance(json.loads(path.read_text()), list)  # the phone's export format
    wrapped = {"format": "securephone-srtp-keys", "keys": [
        {"suite": "AES_CM_128_HMAC_SHA1_32", "key_b64": base64.b64encode(KEY30).decode(),
         "ssrc": "0x10", "direction": "send"}]}  # fmt: skip
    assert (parse_keys(wrapped)[0].ssrc, parse_keys(wrapped)[0].direction) == (16, "outbound")


def test_the_phones_own_key_export_is_read(tmp_path: Path) -> None:
    from securephone.aio.keyexport import write_key_export

    path = tmp_path / "export.json"
    key = base64.b64encode(KEY30).decode()
    write_key_export(
        path,
        [
            {
                "suite": "AES_CM_128_HMAC_SHA1_80",
                "key_b64": key,
                "direction": "outbound",
                "ssrc": None,
            }
        ],
    )
    write_key_export(
        path,
        [
            {
                "suite": "AEAD_AES_128_GCM",
                "key_b64": base64.b64encode(bytes(28)).decode(),
                "direction": "inbound",
                "ssrc": 7,
            }
        ],
    )
    loaded = load_key_file(path)
    assert [(k.suite, k.direction, k.ssrc) for k in loaded] == [
        ("AES_CM_128_HMAC_SHA1_80", "outbound", None),
        ("AEAD_AES_128_GCM", "inbound", 7),
    ]
    assert loaded[0].key == KEY30


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "other", "keys": []}, "expected 'securephone-srtp-keys'"),
        ({"keys": []}, "the key list is empty"),
        ("text", "expected a list of keys"),
        ([{"suite": "ROT13", "key_b64": "AA=="}], "unknown suite 'ROT13'"),
        (
            [{"suite": "AES_CM_128_HMAC_SHA1_80"}],
            "key_b64 (base64 of master key || salt) is missing",
        ),
        ([{"suite": "AES_CM_128_HMAC_SHA1_80", "key_b64": "!!"}], "not valid base64"),
        (
            [{"suite": "AES_CM_128_HMAC_SHA1_80", "key_b64": "QUFBQQ=="}],
            "needs 30 bytes of key || salt, got 4",
        ),
        (
            [
                {
                    "suite": "AEAD_AES_128_GCM",
                    "key_b64": base64.b64encode(bytes(28)).decode(),
                    "ssrc": -1,
                }
            ],
            "ssrc must be",
        ),
        (
            [
                {
                    "suite": "AEAD_AES_128_GCM",
                    "key_b64": base64.b64encode(bytes(28)).decode(),
                    "direction": "up",
                }
            ],
            "direction must be",
        ),
    ],
)
def test_bad_key_files_are_clear_and_never_show_keys(data: object, message: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        parse_keys(data)
    assert message in str(caught.value)
    assert "QUFBQQ" not in str(caught.value)


def test_key_file_not_json(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("{not json")
    with pytest.raises(KeyFileError, match="not JSON"):
        load_key_file(path)
    with pytest.raises(KeyFileError, match="no such file"):
        load_key_file(tmp_path / "missing.json")
    path.write_text(json.dumps({"keys": [{"suite": "AES_CM_128_HMAC_SHA1_80", "key_b64": "AAAA"}]}))
    with pytest.raises(KeyFileError, match=r"k\.json: key #1"):
        load_key_file(path)


def test_many_keys_without_ssrc_the_right_one_is_found() -> None:
    """The phone's export has ``ssrc: null`` and grows call after call: every key is tried."""
    srtp = srtp_protect(rtp_packets(AUDIO, ssrc=0x99), "AES_CM_128_HMAC_SHA1_80", KEY30)
    wrong = [KeyEntry("AES_CM_128_HMAC_SHA1_80", bytes([n]) * 30) for n in range(1, 21)]
    (found,) = streams_of(
        udp_flow(srtp, A, B), [*wrong, KeyEntry("AES_CM_128_HMAC_SHA1_80", KEY30)]
    )
    assert found.decryption is not None and found.decryption.confirmed
    assert found.decryption.tried == 21 and found.decryption.ok == 200
    (missed,) = streams_of(udp_flow(srtp, A, B), wrong)
    assert missed.decryption is not None and missed.decryption.ok == 0
    assert missed.decryption.tried == 20 and missed.decryption.auth_failed == 200
