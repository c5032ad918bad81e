"""The call panel's text from a call summary and the device statistics (pure functions)."""

from __future__ import annotations

import numpy as np

from securephone.aio.call import CACHE_MISMATCH_ALARM
from securephone.audio.devices import DeviceSink, DeviceSource
from securephone.tui.app import MutableSource
from securephone.tui.view import ALARM, SAS_KEYS, call_lines, security_lines, summary_lines

from ..audio.test_devices import Factory


def test_call_panel_shows_each_device_ring_with_its_drift_figures() -> None:
    factory = Factory()
    source = DeviceSource(buffer_ms=60, stream_factory=factory)
    sink = DeviceSink(buffer_ms=60, stream_factory=factory)
    factory.streams[0].tick(np.full(240, 5, dtype=np.int16))
    source.drift.dropped, sink.drift.inserted = 7, 3
    summary = {"direction": "outgoing", "remote": "sip:bob@127.0.0.1", "state": "connected"}
    lines = [text for text, _ in call_lines(summary, False, "", {
        "input": source.stats(), "output": sink.stats()
    })]  # fmt: skip
    assert (
        "input device buffer: 30.0 ms of 60.0 ms, underruns 0, overruns 0, "
        "drift: 7 samples dropped, 0 repeated"
    ) in lines
    assert "output device buffer: 0.0 ms of 60.0 ms, underruns 0, overruns 0, " in "".join(lines)
    assert any(line.endswith("drift: 0 samples dropped, 3 repeated") for line in lines)


def test_softphone_mute_wrapper_passes_the_codec_format_to_the_device() -> None:
    """The softphone wraps each microphone for mute: a 48 kHz codec still reaches the device,
    which reopens at 48 kHz (one conversion, none at all here)."""
    factory = Factory()
    mic = DeviceSource(buffer_ms=60, stream_factory=factory)
    MutableSource(mic).set_format(48000, 960)
    assert mic.device_rate == 48000 and factory.streams[-1].rate == 48000
    assert factory.streams[0].closed  # the 8 kHz stream it was opened with
    assert mic.stats()["codec_rate"] == 48000


def test_a_finished_call_for_the_command_line_says_hop_by_hop_and_every_alarm() -> None:
    """SDES keys over TLS are hop by hop; each of the call's alarms is its own red line."""
    summary = {
        "direction": "incoming", "remote": "sips:alice@example.org", "answered": True,
        "duration": 12.34, "reason": "the far end hung up",
        "signalling": {"transport": "tls", "peer": "tls:192.0.2.1:5061", "tls": {
            "version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "verified": True,
            "peer_subject": "CN=proxy.example.org"}},
        "media": {"codec": "PCMU (narrowband, 8 kHz)", "packets_sent": 600, "packets_received": 598,
                  "packets_lost": 2, "jitter_ms": 1.5, "srtp": {"suite": "AEAD_AES_128_GCM"}},
        "security": {"keying": "sdes", "end_to_end": False,
                     "alarms": ["a re-INVITE tried to drop SRTP: refused with 488"]},
    }  # fmt: skip
    lines = summary_lines(summary)
    assert lines[0] == (
        "incoming call with sips:alice@example.org: answered, 12.3 s, the far end hung up",
        "bold",
    )
    texts = [text for text, _ in lines]
    assert "  media keying: sdes, hop by hop (the signalling path can see the keys)" in texts
    assert "  media: SRTP AEAD_AES_128_GCM" in texts
    assert "    peer certificate: CN=proxy.example.org" in texts
    assert lines[-2] == ("  ALARM: a re-INVITE tried to drop SRTP: refused with 488", ALARM)
    assert lines[-1][0] == (
        "  audio: PCMU (narrowband, 8 kHz), packets sent 600, received 598, lost 2, jitter 1.5 ms"
    )
    assert not any("SAS" in text for text in texts)  # no ZRTP on this call


def test_the_softphone_shows_a_cache_mismatch_once_with_its_sas() -> None:
    path = {"method": "zrtp", "sas": "k3xw", "cache_mismatch": True, "sas_verified": None}
    summary = {"security": {"keying": "zrtp", "end_to_end": True, "path": path,
                            "alarms": [CACHE_MISMATCH_ALARM]}}  # fmt: skip
    texts = [text for text, _ in security_lines(summary)]
    assert sum("cache mismatch" in text for text in texts) == 1
    assert "ZRTP SAS: k3xw   (read it aloud; compare with the far end)" in texts
    assert f"SAS not compared yet: {SAS_KEYS}" in texts
