"""The call panel's text from a call summary and the device statistics (pure functions)."""

from __future__ import annotations

import numpy as np

from securephone.audio.devices import DeviceSink, DeviceSource
from securephone.tui.app import MutableSource
from securephone.tui.view import call_lines

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
