"""The device layer without a sound card: ring buffer edges, drift, streaming resampling,
mute/volume and the ringer, with a fake PortAudio stream driven by a fake device clock."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from securephone.audio.devices import (
    RING_TONE,
    RINGBACK_TONE,
    DeviceError,
    DeviceSink,
    DeviceSource,
    DriftCompensator,
    RingBuffer,
    Ringer,
    StreamResampler,
    TonePlayer,
    parse_device_spec,
)
from securephone.audio.resample import resample
from securephone.audio.sources import AudioError
from securephone.sip.callstate import CallState
from securephone.sip.events import CallStateChanged


class FakeStream:
    """Stands for a PortAudio callback stream; the test calls ``tick`` as the device clock."""

    def __init__(self, kind: str, device: Any, rate: int, block: int, callback: Any) -> None:
        self.kind, self.device, self.rate, self.block = kind, device, rate, block
        self.callback = callback
        self.started = self.closed = False
        self.played: list[np.ndarray] = []

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def tick(self, data: np.ndarray | None = None) -> None:
        """One device block: captured ``data`` in (input), or a block played out (output)."""
        if self.kind == "input":
            assert data is not None
            self.callback(data.reshape(-1, 1), data.size, None, None)
        else:
            out = np.zeros((self.block, 1), dtype=np.int16)
            self.callback(out, self.block, None, None)
            self.played.append(out.reshape(-1).copy())


class Factory:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def __call__(self, *args: Any) -> FakeStream:
        stream = FakeStream(*args)
        stream.start()
        self.streams.append(stream)
        return stream


def tone(freq: float, rate: int, n: int, start: int = 0, level: float = 8000) -> np.ndarray:
    t = np.arange(start, start + n) / rate
    return np.rint(level * np.sin(2 * np.pi * freq * t)).astype(np.int16)


# -- ring buffer ---------------------------------------------------------------------------------
def test_ring_buffer_keeps_order_across_the_wrap() -> None:
    ring = RingBuffer(10)
    ring.write(np.arange(7, dtype=np.int16))
    assert list(ring.read(5)) == [0, 1, 2, 3, 4]
    ring.write(np.arange(7, 13, dtype=np.int16))  # wraps
    assert ring.depth == 8
    assert list(ring.read(8)) == [5, 6, 7, 8, 9, 10, 11, 12]
    assert ring.underruns == ring.overruns == 0


def test_ring_buffer_drops_oldest_when_full_and_pads_silence_when_dry() -> None:
    ring = RingBuffer(4)
    ring.write(np.array([1, 2, 3], dtype=np.int16))
    ring.write(np.array([4, 5, 6], dtype=np.int16))
    assert ring.overruns == 1 and ring.dropped_samples == 2
    assert list(ring.read(6)) == [3, 4, 5, 6, 0, 0]
    assert ring.underruns == 1 and ring.inserted_samples == 2
    stats = ring.stats(8000)
    assert stats["depth"] == 0 and stats["underruns"] == 1 and stats["overruns"] == 1


def test_recentred_ring_goes_back_to_half_full_after_either_edge() -> None:
    ring = RingBuffer(8, recentre=True)
    ring.write(np.arange(1, 4, dtype=np.int16))
    assert list(ring.read(2)) == [0, 0]  # at the start: silence until half full (4)
    assert ring.underruns == 0 and ring.inserted_samples == 2
    ring.write(np.arange(4, 7, dtype=np.int16))
    assert list(ring.read(2)) == [1, 2]  # now it plays
    ring.write(np.arange(7, 12, dtype=np.int16))  # 4 + 5 > 8: keep the newest 4
    assert ring.overruns == 1 and ring.dropped_samples == 5 and ring.depth == 4
    assert list(ring.read(6)) == [8, 9, 10, 11, 0, 0]  # dry: an underrun ...
    ring.write(np.array([20, 21, 22], dtype=np.int16))
    assert list(ring.read(2)) == [0, 0]  # ... then silence until half full again
    ring.write(np.array([23], dtype=np.int16))
    assert list(ring.read(4)) == [20, 21, 22, 23]
    assert ring.underruns == 1
    # every sample accounted for
    assert ring.samples_in + ring.inserted_samples == (
        ring.samples_out + ring.dropped_samples + ring.depth
    )


def in_band(stats: dict[str, Any], slack_ms: float = 5.0) -> bool:
    """The smoothed depth is in its band, give or take half a 10 ms device block (the depth
    moves a block at a time, so the average crosses the edge before a correction brings it back)."""
    low, high = stats["band_ms"]
    average = stats["average_depth_ms"]
    return average is not None and low - slack_ms <= average <= high + slack_ms


@pytest.mark.parametrize("device_ppm", [+2000, -2000])
def test_clock_drift_is_absorbed_one_sample_at_a_time(device_ppm: int) -> None:
    """A microphone 0.2 % fast or slow for 60 s of fake time: the compensator drops or repeats
    single samples, so the smoothed depth stays in its band and the ring never reaches an edge;
    every sample is accounted for."""
    factory = Factory()
    source = DeviceSource(buffer_ms=60, stream_factory=factory)
    stream = factory.streams[0]
    device_rate = 8000 * (1 + device_ppm / 1e6)
    produced, consumed = 0.0, 0
    for frame in range(3000):  # 60 s of 20 ms media ticks
        due = (frame + 1) * 160 * device_rate / 8000
        while produced + 80 <= due:
            stream.tick(np.full(80, 100, dtype=np.int16))
            produced += 80
        out = source.read_frame()
        assert out is not None and out.size == 160
        consumed += out.size
        if frame >= 50:  # after the first second (the start fills the ring to its middle)
            assert in_band(source.stats()), source.stats()
    stats = source.stats()
    assert stats["overruns"] == 0 and stats["underruns"] == 0, stats
    assert stats["level_steps"] == 0  # drift, even 0.2 %, is not taken for a step
    # captured + silence at the start + repeated = read + dropped + still queued
    assert produced + stats["inserted_samples"] + stats["drift_inserted"] == (
        consumed + stats["drift_dropped"] + stats["depth"]
    )
    drift = produced - consumed  # ≈ ±960 samples (0.2 % of 60 s)
    if device_ppm > 0:
        assert stats["drift_dropped"] >= drift - source.ring.capacity
        assert stats["drift_inserted"] == 0
    else:
        assert stats["drift_inserted"] >= -drift - source.ring.capacity
        assert stats["drift_dropped"] == 0


@pytest.mark.parametrize("device_ppm", [+2000, -2000])
def test_speaker_drift_is_absorbed_one_sample_at_a_time(device_ppm: int) -> None:
    """A speaker 0.2 % fast or slow against the media clock's frames, 60 s: no edge event, the
    smoothed depth stays in its band, the correction is in the drift counters."""
    factory = Factory()
    sink = DeviceSink(buffer_ms=60, stream_factory=factory)
    stream = factory.streams[0]
    device_rate = 8000 * (1 + device_ppm / 1e6)
    played = 0
    for frame in range(3000):
        sink.write_frame(np.full(160, 100, dtype=np.int16))
        due = (frame + 1) * 160 * device_rate / 8000
        while played + 80 <= due:
            stream.tick()
            played += 80
        if frame >= 50:
            assert in_band(sink.stats()), sink.stats()
    stats = sink.stats()
    assert stats["overruns"] == 0 and stats["underruns"] == 0 and stats["level_steps"] == 0
    if device_ppm > 0:  # the device eats faster: samples repeated
        assert stats["drift_inserted"] > 0 and stats["drift_dropped"] == 0
    else:
        assert stats["drift_dropped"] > 0 and stats["drift_inserted"] == 0


def test_drift_compensator_keeps_the_frame_length() -> None:
    comp = DriftCompensator(target=100, band=20)
    frame = np.arange(10, dtype=np.int16)
    assert comp.step(100) == 0 and comp.step(200) == 0  # one deep reading is smoothed away
    comp.reset()
    assert comp.step(130) == 1  # a fresh start takes the depth as it is
    comp.reset()
    assert comp.step(60) == -1
    assert list(comp.apply(frame, 1)) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert list(comp.apply(frame, -1)) == [0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9]
    assert comp.dropped == 1 and comp.inserted == 1
    six = DriftCompensator(target=100, band=20, per_frame=3)
    assert six.step(200) == 3 and six.step(0) == 3  # still above on average
    assert list(six.apply(np.arange(12, dtype=np.int16), 3)) == [0, 1, 3, 4, 5, 7, 8, 9, 11]
    assert list(six.apply(np.arange(6, dtype=np.int16), -3)) == [0, 1, 1, 2, 3, 3, 4, 5, 5]
    assert list(six.apply(np.arange(4, dtype=np.int16), 3)) == [0, 2]  # at most half a frame
    assert six.dropped == 5 and six.inserted == 3
    with pytest.raises(ValueError):
        DriftCompensator(target=10, band=0)


# -- streaming resampler -------------------------------------------------------------------------
@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 8000), (8000, 48000), (44100, 16000)])
def test_stream_resampler_equals_whole_signal_conversion(rate_in: int, rate_out: int) -> None:
    signal = tone(440, rate_in, rate_in // 2).astype(np.float64)
    whole = resample(signal, rate_in, rate_out)
    conv = StreamResampler(rate_in, rate_out)
    pieces = []
    step = rate_in // 50
    for i in range(0, signal.size, step):
        conv.feed(signal[i : i + step])
        pieces.append(conv.take(conv.available))
    streamed = np.concatenate(pieces)
    # sample n of the stream is sample n of the whole conversion (it only comes out a chunk
    # later): no clicks at the chunk edges
    n = min(streamed.size, whole.size) - conv.chunk_out
    assert n > rate_out // 4
    assert np.max(np.abs(streamed[:n] - whole[:n])) < 1.0


def test_stream_resampler_input_needed_is_enough() -> None:
    conv = StreamResampler(48000, 8000)
    need = conv.input_needed(160)
    conv.feed(np.zeros(need))
    assert conv.available >= 160


# -- source and sink with a fake device ----------------------------------------------------------
def test_source_converts_device_rate_to_codec_rate_and_mutes() -> None:
    factory = Factory()
    source = DeviceSource("mic", device_rate=48000, stream_factory=factory)
    stream = factory.streams[0]
    assert (stream.kind, stream.device, stream.rate) == ("input", "mic", 48000)
    frames = []
    position = 0
    for _ in range(50):
        for _ in range(2):
            stream.tick(tone(1000, 48000, 480, position))
            position += 480
        frame = source.read_frame()
        assert frame is not None and frame.size == 160
        frames.append(frame)
    pcm = np.concatenate(frames[10:]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm))
    peak_hz = np.argmax(spectrum) * 8000 / pcm.size
    assert abs(peak_hz - 1000) < 10
    assert 7000 < np.max(np.abs(pcm)) < 9000  # the level survives the conversion
    source.muted = True
    stream.tick(tone(1000, 48000, 960, position))
    muted = source.read_frame()
    assert muted is not None and not muted.any()
    source.close()
    assert stream.closed and source.read_frame() is None


def test_source_follows_the_codec_rate_from_the_stream() -> None:
    """The codec rate comes from the call (frame_format), not from the device layer."""
    fmt = {"value": (8000, 160)}
    factory = Factory()
    source = DeviceSource(
        device_rate=48000, frame_format=lambda: fmt["value"], stream_factory=factory
    )
    factory.streams[0].tick(np.zeros(4800, dtype=np.int16))
    frame = source.read_frame()
    assert frame is not None and frame.size == 160
    fmt["value"] = (16000, 320)
    frame = source.read_frame()
    assert frame is not None and frame.size == 320


def test_sink_plays_frames_at_the_device_rate_with_volume_and_mute() -> None:
    factory = Factory()
    sink = DeviceSink("spk", device_rate=16000, volume=0.5, stream_factory=factory)
    stream = factory.streams[0]
    for i in range(25):
        sink.write_frame(tone(500, 8000, 160, i * 160))
        stream.tick()
        stream.tick()
    played = np.concatenate(stream.played[6:]).astype(np.float64)
    assert stream.rate == 16000 and stream.block == 160
    spectrum = np.abs(np.fft.rfft(played))
    assert abs(np.argmax(spectrum) * 16000 / played.size - 500) < 20
    assert 3500 < np.max(np.abs(played)) < 4500  # volume 0.5 of 8000
    sink.muted = True
    for i in range(5):
        sink.write_frame(tone(500, 8000, 160, i * 160))
    for _ in range(20):
        stream.tick()
    assert not np.concatenate(stream.played[-6:]).any()
    assert sink.stats()["underruns"] > 0  # the device read more than was written


# -- device specs and errors ----------------------------------------------------------------------
def test_device_spec_parsing() -> None:
    assert parse_device_spec("device") is None
    assert parse_device_spec("device:USB Headset") == "USB Headset"
    assert parse_device_spec("device:3") == 3
    with pytest.raises(AudioError):
        parse_device_spec("device:")
    with pytest.raises(AudioError):
        parse_device_spec("speaker")


def test_a_failing_device_is_one_device_error() -> None:
    def broken(kind: str, device: Any, *rest: Any) -> FakeStream:
        raise DeviceError(f"cannot open {kind} sound device {device!r}: busy")

    with pytest.raises(DeviceError, match="busy"):
        DeviceSource("mic", stream_factory=broken)


# -- ring tones ----------------------------------------------------------------------------------
def test_cadence_is_tone_then_silence() -> None:
    rate = 8000
    on = RINGBACK_TONE.samples(0, rate, rate)
    off = RINGBACK_TONE.samples(rate, rate, rate)
    assert np.max(np.abs(on)) > 5000 and not off.any()


def test_ringer_follows_call_events() -> None:
    factory = Factory()
    player = TonePlayer(rate=8000, stream_factory=factory)
    ringer = Ringer(player)

    def change(key: str, old: CallState, new: CallState) -> CallStateChanged:
        return CallStateChanged(key, old, new, "", None)

    ringer.on_event(change("out", CallState.CALLING, CallState.RINGING))
    assert player.playing is RINGBACK_TONE and factory.streams
    factory.streams[0].tick()
    assert factory.streams[0].played[0].any()
    ringer.on_event(change("in", CallState.INCOMING, CallState.INCOMING))
    assert player.playing is RING_TONE  # a call ringing here wins
    ringer.on_event(change("in", CallState.INCOMING, CallState.ANSWERING))
    assert player.playing is RINGBACK_TONE
    ringer.on_event(change("out", CallState.RINGING, CallState.CONNECTED))
    assert player.playing is None and factory.streams[0].closed


def test_ringer_survives_a_missing_device() -> None:
    def broken(*args: Any) -> FakeStream:
        raise DeviceError("no output sound device 'x'")

    ringer = Ringer(TonePlayer("x", stream_factory=broken))
    ringer.on_event(CallStateChanged("c", CallState.CALLING, CallState.RINGING, "", None))
    assert ringer.error == "no output sound device 'x'"
    assert ringer.player.playing is None


def test_audio_config_section() -> None:
    from securephone.store.config import ConfigError, parse_config

    cfg = parse_config({"audio": {"input": "USB Headset", "output": 3, "buffer_ms": 40}})
    assert cfg.audio.input == "USB Headset" and cfg.audio.output == 3
    assert cfg.audio.on_device_error == "continue" and cfg.audio.ring_tone is True
    with pytest.raises(ConfigError, match=r"audio\.on_device_error"):
        parse_config({"audio": {"on_device_error": "ignore"}})
    with pytest.raises(ConfigError, match=r"audio\.buffer_ms"):
        parse_config({"audio": {"buffer_ms": 0}})


def test_drift_band_centres_on_the_settled_depth_and_corrects_only_a_change() -> None:
    """A steady level high in the ring (a device's block pattern) is not drift: after ``settle``
    frames the band is centred on it, narrowed so that it stays inside the limits (the depths
    whose block swing stays clear of the edges), and only a depth that moves away from it is
    corrected. A 120 ms ring at 8 kHz: limits 25-95 ms, band ±35 ms, at least ±15 ms."""
    drift = DriftCompensator(480, 280, settle=100, limits=(200, 760), least_band=120)
    steps = [drift.step(720) for _ in range(300)]  # 90 ms, steady
    assert (drift.target, drift.band) == (640, 120)  # 65-95 ms: as high as the limits allow
    assert all(s == 0 for s in steps[100:])  # inside the settled band: nothing dropped
    steps = [drift.step(1000) for _ in range(300)]  # now it really drifts upward
    assert steps[-1] > 0  # dropping samples
    drift.reset()  # the ring was recentred: back to its middle, settle again
    assert (drift.target, drift.band) == (480, 280) and drift.average is None
    for _ in range(100):
        drift.step(500)  # settled near the middle: the full band
    assert (drift.target, drift.band) == (500, 260)
    high = DriftCompensator(480, 280, settle=100, limits=(200, 760), least_band=120)
    assert [high.step(780) for _ in range(300)][-1] > 0  # past the limit: brought back in
    plain = DriftCompensator(480, 280)  # settle 0: the band stays where it was put
    assert [plain.step(800) for _ in range(300)][-1] > 0  # 100 ms: out of 60 ± 35 ms
    small = DriftCompensator(240, 60, settle=100, limits=(200, 280), least_band=60)
    for _ in range(100):
        small.step(270)  # a 60 ms ring: no room to move the band
    assert (small.target, small.band) == (240, 60)


def test_a_step_of_level_is_not_chased_the_band_follows_it() -> None:
    """The sound server takes 35 ms more into its own buffer at once (as PulseAudio does after
    an underrun): the depth steps from 60 to 25 ms of a 120 ms ring. Nothing is dropped or
    repeated for it; once the level holds still the band is centred on it. Drift afterwards is
    corrected again."""
    drift = DriftCompensator(480, 280, settle=100, limits=(200, 760), least_band=120, step_limit=80)
    before = [drift.step(480) for _ in range(300)]
    assert drift.target == 480 and not any(before)
    after = [drift.step(240) for _ in range(400)]  # 30 ms: the edge of 480 ± 280 (25-95 ms)
    assert not any(after), "a step of level was chased"
    assert drift.level_steps == 1
    assert (drift.target, drift.band) == (320, 120)  # 25-55 ms: the band's lowest place
    assert drift.dropped == drift.inserted == 0
    # then a real drift, 0.4 samples a frame shallower (0.25 %: far faster than a card's,
    # far slower than a step): corrected by repeating samples, not taken for another step
    depth, steps, frame = 240.0, [], np.zeros(160, dtype=np.int16)
    for _ in range(1000):
        depth -= 0.4
        step = drift.step(round(depth))
        drift.apply(frame, step)  # counts what it repeats, as the device ends do
        depth -= step  # a repeated sample is one more in the ring
        steps.append(step)
    assert min(steps) < 0 and drift.inserted > 0 and drift.level_steps == 1
    plain = DriftCompensator(480, 280, settle=100, limits=(200, 760))  # no step_limit: chased
    for _ in range(300):
        plain.step(480)
    assert any(plain.step(100) for _ in range(400))


def test_corrections_wait_for_a_pause_unless_an_edge_is_near() -> None:
    """Given each frame's level, samples are dropped or repeated only in quiet frames (four at
    a time there), never inside a loud one — unless the smoothed depth is beyond ``urgent``."""
    # smoothing 1: the average is the depth just seen
    drift = DriftCompensator(480, 280, urgent=(100, 860), smoothing=1.0)
    loud, quiet = np.full(160, 3000, dtype=np.int16), np.zeros(160, dtype=np.int16)
    assert [drift.step(480, 5.0) for _ in range(5)] == [0] * 5  # in band, a quiet start
    assert drift.step(800, 3000.0) == 0 and drift.waited == 1  # 100 ms, out of band: waits
    assert drift.step(800, 3000.0) == 0 and drift.waited == 2
    step = drift.step(800, 5.0)  # a pause: four samples at once
    assert step == 4 and drift.apply(quiet, step).size == 156 and drift.dropped == 4
    assert drift.apply(loud, drift.step(800, 3000.0)).size == 160  # loud again: untouched
    urgent = DriftCompensator(480, 280, urgent=(100, 860), smoothing=1.0)
    urgent.step(480, 5.0)
    assert urgent.step(900, 3000.0) == 1  # near the edge: corrected in the middle of a word
    noisy = DriftCompensator(480, 280, urgent=(100, 860))
    steps = [noisy.step(800, 1000.0) for _ in range(3)]  # steady noise is its own floor
    assert steps == [4, 4, 4]


def test_speaker_drift_is_corrected_in_the_pauses_of_speech() -> None:
    """A speaker 0.2 % slow for 60 s of words (400 ms loud) and pauses (100 ms quiet): no edge
    event, the depth in its band, and every loud frame reaches the ring whole."""
    factory = Factory()
    sink = DeviceSink(buffer_ms=60, stream_factory=factory)
    stream = factory.streams[0]
    device_rate = 8000 * (1 - 2000 / 1e6)
    played, written_loud = 0, 0
    for frame in range(3000):
        talking = frame % 25 < 20
        pcm = np.full(160, 3000 if talking else 0, dtype=np.int16)
        before = sink.ring.samples_in
        sink.write_frame(pcm)
        if talking:
            written_loud += 1
            assert sink.ring.samples_in - before == 160, "a loud frame was cut or stretched"
        due = (frame + 1) * 160 * device_rate / 8000
        while played + 80 <= due:
            stream.tick()
            played += 80
        if frame >= 150:
            assert in_band(sink.stats(), slack_ms=7.5), sink.stats()
    stats = sink.stats()
    assert stats["overruns"] == 0 and stats["underruns"] == 0, stats
    assert stats["drift_dropped"] > 0 and stats["drift_waited"] > 0, stats
