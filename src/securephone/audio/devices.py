"""Sound devices through PortAudio: a microphone source, a speaker sink, ring tones.

Two clocks meet here. The sound card's clock drives a PortAudio callback stream (a thread of
PortAudio's); the call's media clock (``aio/media.py``, one frame per packet time) pulls
``read_frame()`` and pushes ``write_frame()``. Between them sits a small ``RingBuffer`` of
device-rate samples, ``[audio] buffer_ms`` deep:

* the producer side never blocks: when the buffer is full the *oldest* samples are dropped
  (an overrun, counted);
* the consumer side never waits: when the buffer runs dry the missing samples are silence
  (an underrun, counted).

Neither clock is ever slaved to the other, so a sound card running 0.1 % fast or slow does not
make the call drift: the buffer depth stays within ``[0, capacity]`` and the difference is
absorbed at its edges (dropped or inserted samples). The depth, underruns and overruns are in
``stats()``.

The device runs at its own rate (``[audio] sample_rate``, default: the codec's rate, which
PortAudio's ALSA "plug" layers usually accept); ``StreamResampler`` converts once between the
device rate and the codec rate with ``audio/resample.py``, in fixed chunks with one chunk of
context either side so that chunk edges leave no clicks. The codec rate is not fixed at 8 kHz:
the source and sink ask ``frame_format()`` for ``(rate, samples)`` of the call's stream each
frame.

``sounddevice`` (the ``audio`` extra) and the PortAudio library are imported only when a device
is opened or listed: without them, every other part of the phone works. A missing or busy
device raises one ``DeviceError`` whose message says which device and why.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from securephone.audio.resample import resample
from securephone.audio.sources import FRAME_SAMPLES, SAMPLE_RATE, AudioError
from securephone.sip.callstate import CallState
from securephone.sip.events import CallStateChanged, Event, IncomingCall

__all__ = [
    "RINGBACK_TONE",
    "RING_TONE",
    "Cadence",
    "DeviceError",
    "DeviceInfo",
    "DeviceSink",
    "DeviceSource",
    "DriftCompensator",
    "RingBuffer",
    "Ringer",
    "StreamResampler",
    "TonePlayer",
    "list_devices",
    "parse_device_spec",
]

log = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]
Float = npt.NDArray[np.float64]
FrameFormat = Callable[[], tuple[int, int]]
"""Returns the codec's ``(sample rate, samples per frame)`` for the current frame."""


def narrowband() -> tuple[int, int]:
    """G.711's format: 8 kHz, 160 samples per 20 ms frame (RFC 3551 §4.5.14)."""
    return SAMPLE_RATE, FRAME_SAMPLES


class DeviceError(AudioError):
    """A sound device that cannot be used (missing, busy, no PortAudio); the message says which."""


# -- the ring buffer between the two clocks -------------------------------------------------------
class RingBuffer:
    """A bounded FIFO of int16 samples shared by a device thread and the media clock.

    ``write`` drops the oldest samples when full (``overruns``), ``read`` pads with silence when
    empty (``underruns``); both count events and samples. Thread-safe (one lock).

    With ``recentre`` (what the devices use) the buffer goes back to half full after either
    edge: an overrun drops down to half the capacity, and after an underrun (and at the start)
    reads give silence until half the capacity has come in. Without it, two clocks of the same
    speed would keep the depth wherever the start-up left it, at an edge, and every burst of a
    sound server's block delivery would cross that edge again; centred, the buffer has room for
    a burst either way, and one edge event costs half a buffer of audio instead of many small
    slips.
    """

    def __init__(self, capacity: int, *, recentre: bool = False) -> None:
        if capacity < 1:
            raise ValueError("a ring buffer needs room for at least one sample")
        self.capacity = capacity
        self.recentre = recentre
        self.target = capacity // 2 if recentre else capacity  # the depth kept after an overrun
        self._refilling = recentre
        self._data = np.zeros(capacity, dtype=np.int16)
        self._start = 0
        self._size = 0
        self._lock = threading.Lock()
        self.overruns = 0
        self.underruns = 0
        self.dropped_samples = 0
        self.inserted_samples = 0
        self.samples_in = 0  # written since the start (the producer's clock, in samples)
        self.samples_out = 0  # read since the start, silence included (the consumer's clock)

    @property
    def depth(self) -> int:
        """Samples waiting to be read."""
        return self._size

    @property
    def refilling(self) -> bool:
        """Reads give silence until the buffer is half full again (start, after an underrun)."""
        return self._refilling

    def write(self, samples: Pcm) -> None:
        """Append ``samples``; if they do not fit, the oldest ones go (an overrun)."""
        data = np.asarray(samples, dtype=np.int16).reshape(-1)
        with self._lock:
            self.samples_in += data.size
            total = self._size + data.size
            if total > self.capacity:
                drop = total - self.target
                old = min(drop, self._size)
                self._start = (self._start + old) % self.capacity
                self._size -= old
                data = data[drop - old :]
                self.overruns += 1
                self.dropped_samples += drop
            end = (self._start + self._size) % self.capacity
            first = min(data.size, self.capacity - end)
            self._data[end : end + first] = data[:first]
            self._data[: data.size - first] = data[first:]
            self._size += data.size

    def read(self, count: int) -> Pcm:
        """Take ``count`` samples; what is missing at the end is silence (an underrun)."""
        out = np.zeros(count, dtype=np.int16)
        with self._lock:
            self.samples_out += count
            if self._refilling and self._size < self.target:
                self.inserted_samples += count
                return out
            self._refilling = False
            have = min(count, self._size)
            first = min(have, self.capacity - self._start)
            out[:first] = self._data[self._start : self._start + first]
            out[first:have] = self._data[: have - first]
            self._start = (self._start + have) % self.capacity
            self._size -= have
            if have < count:
                self.underruns += 1
                self.inserted_samples += count - have
                self._refilling = self.recentre
        return out

    def stats(self, rate: int) -> dict[str, Any]:
        """Depth (samples and ms at ``rate``), the edge counters and the samples through each side."""
        return {
            "depth": self._size,
            "depth_ms": round(self._size * 1000 / rate, 1),
            "capacity_ms": round(self.capacity * 1000 / rate, 1),
            "underruns": self.underruns,
            "overruns": self.overruns,
            "inserted_samples": self.inserted_samples,
            "dropped_samples": self.dropped_samples,
            "samples_in": self.samples_in,
            "samples_out": self.samples_out,
        }


# -- drift compensation ---------------------------------------------------------------------------
SETTLE_FRAMES = 100  # media frames (about 2 s) before a device ring's drift band is centred
STEP_WINDOW = 50  # media frames (about 1 s) over which a change of level is measured
STEP_MS_PER_S = 10  # a level moving faster than 1 % of time stepped: no clock drifts that fast
QUIET_RMS = 300.0  # a frame this quiet (about -40 dBFS) or near the noise floor is a pause
PAUSE_FACTOR = 4  # samples dropped or repeated in a pause, per one that drift asks for
NOISE_FRAMES = 100  # frames (about 2 s) over which the quietest frame is the noise floor


class DriftCompensator:
    """Keeps a ring buffer's depth in a band around where it settled, one sample at a time.

    The ring's edges (overrun, underrun) are the last resort: each costs half a buffer of audio
    at once. Before that, the media-clock side of the ring watches its depth, smoothed over
    about a second (an exponential average, so bursts of block delivery cancel out), and
    when the average leaves ``target ± band`` it drops ``per_frame`` samples (too deep: the
    producer's clock is faster) or repeats them (too shallow) per media frame until the
    average is back in the inner half of the band (so it does not dither at the edge); the
    devices use one per 8 kHz of rate, 0.6 % at any rate — far more than any sound card's
    clock error, and inaudible, as in the adaptive playout of real softphones. ``dropped`` and
    ``inserted`` count the samples, ``average`` is the smoothed depth.

    Drift moves the depth slowly (a card 100 ppm off: under a millisecond a second). A sound
    server that takes a larger buffer after an underrun, or a device that changes its block
    pattern, moves it at once to a new steady level: that is a step, not drift, and chasing it
    would stretch or squeeze the audio for seconds. When the depth, net of our own corrections,
    moves more than ``step_limit`` samples within ``window`` frames, the compensator stops
    correcting (``level_steps`` counts these), waits for the level to hold still, settles
    again and centres the band on the new level.

    Where the samples go matters as much as how many: one dropped every 20 ms inside a word
    smears it (the speech tests saw whole 0.4 s pieces stop matching). Given each frame's RMS
    level, the compensator does its work in pauses, as adaptive playout does between
    talkspurts: a correction waits for a quiet frame (at most ``quiet_rms``, or twice the noise
    floor: the quietest frame of the last ``NOISE_FRAMES``), which then takes ``pause_factor``
    times as many samples; only a smoothed depth beyond ``urgent`` (near an edge) is corrected
    in the middle of speech.
    """

    def __init__(
        self,
        target: int,
        band: int,
        *,
        smoothing: float = 0.02,
        per_frame: int = 1,
        settle: int = 0,
        limits: tuple[int, int] | None = None,
        least_band: int | None = None,
        window: int = STEP_WINDOW,
        step_limit: int | None = None,
        urgent: tuple[int, int] | None = None,
        quiet_rms: float = QUIET_RMS,
        pause_factor: int = PAUSE_FACTOR,
    ) -> None:
        if band < 1 or target < band or per_frame < 1:
            raise ValueError(f"a drift band needs 1 <= band <= target, not {band} around {target}")
        self.target, self.band, self.smoothing = target, band, smoothing
        self.per_frame = per_frame  # samples dropped or repeated per frame while out of band
        # Drift is a change of depth, not where the depth sits: the device's block pattern sets
        # a steady level anywhere in the ring. After ``settle`` frames the band is centred on
        # the smoothed depth seen then, and only a depth that moves away from it is corrected
        # (0: the band stays around ``target``). The band stays inside ``limits`` (the depths
        # the smoothed depth may reach without the swing of block transfers touching an
        # edge): near a limit it narrows, down to ``least_band``, then its centre stops short
        # of the level. Without limits it cannot move.
        self.origin, self.full_band, self.settle = target, band, settle
        self.limits = limits if limits is not None else (target - band, target + band)
        self.least_band = min(band, least_band if least_band is not None else band)
        self.step_limit = step_limit  # None: no step detection
        self.urgent = urgent if urgent is not None else self.limits
        self.quiet_rms, self.pause_factor = quiet_rms, pause_factor
        self._levels: deque[float] = deque(maxlen=NOISE_FRAMES)  # recent frames' RMS
        self.waited = 0  # frames whose correction waited for a pause
        self._moved: deque[float] = deque(maxlen=window + 1)  # smoothed depth + net correction
        self._frames = 0
        self._stepping = False
        self.correcting = 0  # the step under way: until the average is back in the inner half
        self.average: float | None = None
        self._level: float | None = None  # the smoothed depth as it would be uncorrected
        self.dropped = 0
        self.inserted = 0
        self.level_steps = 0

    def reset(self) -> None:
        """Forget the smoothed depth (the ring was recentred: a new start)."""
        self.average = self._level = None
        self._moved.clear()
        self._stepping = False
        self.correcting = 0
        self.target, self.band = self.origin, self.full_band
        self._frames = 0

    def _centre(self, level: int) -> None:
        """The band around ``level``, as wide as the limits leave room for (at least
        ``least_band``), its centre moved in from a limit when even that does not fit."""
        floor, ceiling = self.limits
        room = min(level - floor, ceiling - level)
        band = max(self.least_band, min(self.full_band, room))
        if floor + band > ceiling - band:  # a ring too small to move the band: its middle
            self.target, self.band = self.origin, self.full_band
            return
        self.band = band
        self.target = min(max(level, floor + band), ceiling - band)

    def _smooth(self, old: float | None, value: float) -> float:
        return value if old is None else old + self.smoothing * (value - old)

    def _level_stepped(self, depth: int) -> bool:
        """Whether the depth, net of the samples we dropped or repeated, moved faster than
        drift can over the last ``window`` frames (counted once per step)."""
        if self.step_limit is None:
            return False
        level = self._level = self._smooth(self._level, depth + self.dropped - self.inserted)
        moved = self._moved
        moved.append(level)
        stepping = len(moved) == moved.maxlen and abs(level - moved[0]) > self.step_limit
        if stepping and not self._stepping:
            self.level_steps += 1
        self._stepping = stepping
        return stepping

    def _quiet(self, rms: float) -> bool:
        """A pause: the frame is quiet, or no louder than twice the recent noise floor."""
        self._levels.append(rms)
        return rms <= max(self.quiet_rms, 2 * min(self._levels))

    def step(self, depth: int, rms: float | None = None) -> int:
        """Fold in the depth seen now: ``n > 0`` = drop n samples, ``-n`` = repeat n, ``0``.

        ``rms``: the level of the frame the correction would go into (None: unknown, correct
        at once, ``per_frame`` at a time)."""
        step = self._correction(depth)
        quiet = rms is None or self._quiet(rms)
        if step == 0 or rms is None:
            return step
        if quiet:
            return step * self.pause_factor
        low, high = self.urgent
        assert self.average is not None  # set by _correction
        if low <= self.average <= high:
            self.waited += 1
            return 0  # in the middle of speech: wait for a pause
        return step

    def _correction(self, depth: int) -> int:
        """What the depth asks for: ``per_frame`` (or its negative) while out of the band."""
        avg = self.average = self._smooth(self.average, depth)
        if self._level_stepped(depth):
            self._frames = 0  # settle again once the level holds still
            self.correcting = 0
            return 0
        self._frames += 1
        if self._frames == self.settle:
            self._centre(round(avg))
        elif self._frames < self.settle:
            return 0  # after a (re)start or a step, nothing is corrected until it settled
        off = avg - self.target
        if abs(off) > self.band:  # out of the band: correct ...
            self.correcting = self.per_frame if off > 0 else -self.per_frame
        elif abs(off) <= self.band / 2 or off * self.correcting < 0:
            self.correcting = 0  # ... until back in its inner half (no dithering at the edge)
        return self.correcting

    def apply(self, samples: Pcm, step: int) -> Pcm:
        """``samples`` with ``step`` samples dropped (> 0) or ``-step`` repeated (< 0), spread
        evenly (one in the middle when it is one).

        The ring's depth changes by exactly that at once, so the smoothed depth is moved with
        it (else it would lag a quick correction in a pause by a second's worth and overshoot
        to the other side of the band)."""
        count = min(abs(step), samples.size // 2)
        if count == 0:
            return samples
        where = (np.arange(count) * 2 + 1) * samples.size // (2 * count)
        if step > 0:
            self.dropped += count
            if self.average is not None:
                self.average -= count
            return np.delete(samples, where)
        self.inserted += count
        if self.average is not None:
            self.average += count
        return np.insert(samples, where, samples[where])

    def stats(self, rate: int) -> dict[str, Any]:
        """The smoothed depth, the band (ms at ``rate``) and the samples dropped and repeated."""
        ms = 1000 / rate
        return {
            "average_depth_ms": None if self.average is None else round(self.average * ms, 1),
            "band_ms": [
                round((self.target - self.band) * ms, 1),
                round((self.target + self.band) * ms, 1),
            ],
            "drift_settled": self._frames >= self.settle,  # the band is where it will stay
            "drift_correcting": self.correcting != 0,
            "drift_dropped": self.dropped,
            "drift_inserted": self.inserted,
            "level_steps": self.level_steps,
            "drift_waited": self.waited,
        }


# -- streaming sample-rate conversion --------------------------------------------------------------
class StreamResampler:
    """Converts a stream from ``rate_in`` to ``rate_out`` chunk by chunk without edge clicks.

    ``resample`` treats its input as zero outside its ends, so converting 20 ms frames one by
    one would put a click at every frame edge. Here the stream is cut into chunks of
    ``k·down`` input samples (``k·up`` output samples exactly, at least 10 ms) and each chunk is
    converted together with the chunk before and after it; only the middle is kept. The filter
    is shorter than a chunk, so the result equals converting the whole stream at once, one
    chunk later (``latency`` samples of ``rate_out``).
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, not {rate_in} → {rate_out}")
        self.rate_in, self.rate_out = rate_in, rate_out
        g = math.gcd(rate_in, rate_out)
        up, down = rate_out // g, rate_in // g
        k = max(1, -(-rate_in // 100 // down))
        self.chunk_in, self.chunk_out = k * down, k * up
        self._previous = np.zeros(self.chunk_in)
        self._pending = np.zeros(0)
        self._ready = np.zeros(0)

    @property
    def passthrough(self) -> bool:
        return self.rate_in == self.rate_out

    @property
    def latency(self) -> int:
        """Output samples of delay the conversion adds (0 when the rates are equal)."""
        return 0 if self.passthrough else self.chunk_out

    @property
    def available(self) -> int:
        """Output samples converted and not yet taken."""
        return int(self._ready.size)

    def feed(self, samples: npt.NDArray[np.generic]) -> None:
        """Add input samples; whole chunks with their right-hand context are converted."""
        data = np.asarray(samples, dtype=np.float64)
        if self.passthrough:
            self._ready = np.concatenate((self._ready, data))
            return
        self._pending = np.concatenate((self._pending, data))
        c = self.chunk_in
        converted = []
        while self._pending.size >= 2 * c:
            window = np.concatenate((self._previous, self._pending[: 2 * c]))
            out = resample(window, self.rate_in, self.rate_out)
            converted.append(out[self.chunk_out : 2 * self.chunk_out])
            self._previous = self._pending[:c]
            self._pending = self._pending[c:]
        if converted:
            self._ready = np.concatenate((self._ready, *converted))

    def take(self, count: int) -> Float:
        """Up to ``count`` converted samples (fewer when not enough input has come)."""
        out, self._ready = self._ready[:count], self._ready[count:]
        return out

    def input_needed(self, count: int) -> int:
        """Input samples to feed before ``count`` output samples are available."""
        missing = count - self.available
        if missing <= 0:
            return 0
        if self.passthrough:
            return missing
        chunks = -(-missing // self.chunk_out)
        return max(0, (chunks + 1) * self.chunk_in - self._pending.size)


def _rms(samples: Pcm) -> float:
    """The RMS level of int16 samples (0 for none)."""
    if not samples.size:
        return 0.0
    values = samples.astype(np.float64)
    return float(np.sqrt(np.dot(values, values) / values.size))


def _to_int16(x: Float, gain: float) -> Pcm:
    scaled = np.clip(np.rint(x * gain), -32768, 32767)
    out: Pcm = scaled.astype(np.int16)
    return out


# -- PortAudio -----------------------------------------------------------------------------------
class _Stream(Protocol):
    """What we use of a ``sounddevice`` stream (a fake one in unit tests)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


StreamFactory = Callable[..., _Stream]


def _sounddevice() -> Any:
    """The ``sounddevice`` module, or a ``DeviceError`` naming what is missing."""
    try:
        import sounddevice
    except ImportError:
        raise DeviceError(
            "sound devices need the 'sounddevice' package (pip install 'securephone[audio]')"
        ) from None
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise DeviceError(f"sound devices need PortAudio (Debian: libportaudio2): {exc}") from None
    return sounddevice


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device as ``securephone devices`` lists it."""

    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_rate: float
    default_input: bool = False
    default_output: bool = False


def list_devices() -> list[DeviceInfo]:
    """Every input and output device PortAudio sees (``DeviceError`` without PortAudio)."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list sound devices: {exc}") from None
    return [
        DeviceInfo(
            index=i,
            name=str(d["name"]),
            host_api=str(apis[d["hostapi"]]["name"]),
            inputs=int(d["max_input_channels"]),
            outputs=int(d["max_output_channels"]),
            default_rate=float(d["default_samplerate"]),
            default_input=i == default_in,
            default_output=i == default_out,
        )
        for i, d in enumerate(devices)
    ]


def parse_device_spec(text: str) -> str | int | None:
    """``device`` → the configured device (None), ``device:NAME`` → NAME, ``device:3`` → 3."""
    if text == "device":
        return None
    if not text.startswith("device:"):
        raise AudioError(f"a sound device is 'device' or 'device:NAME', not {text!r}")
    name = text.removeprefix("device:")
    if not name:
        raise AudioError("'device:' needs a device name or index after the colon")
    return int(name) if name.isdigit() else name


def _resolve(device: str | int | None, kind: str) -> int | None:
    """The PortAudio index of ``device`` (name substring or index) that has ``kind`` channels."""
    sd = _sounddevice()
    channels = "max_input_channels" if kind == "input" else "max_output_channels"
    if device is None:
        index = sd.default.device[0 if kind == "input" else 1]
        if index is None or index < 0:
            raise DeviceError(f"no default {kind} sound device (none found)")
        return int(index)
    try:
        info = sd.query_devices(device)
    except sd.PortAudioError as exc:
        raise DeviceError(f"no {kind} sound device {device!r}: {exc}") from None
    except ValueError as exc:
        raise DeviceError(f"no {kind} sound device {device!r}: {exc}") from None
    if int(info[channels]) < 1:
        raise DeviceError(f"sound device {info['name']!r} has no {kind} channels")
    return int(info["index"])


DEVICE_LATENCY = 0.1
"""Seconds of audio PortAudio keeps queued at the device. Its "high" default for ALSA's pulse
plugin was short enough that a callback delayed by a loaded CPU underran the output, and the
plugin then restarts its stream: ~2 s without a callback (docs/sound-devices.md)."""


def _open(kind: str, device: str | int | None, rate: int, blocksize: int, callback: Any) -> _Stream:
    """Open and start a mono int16 callback stream, or raise one clear ``DeviceError``."""
    sd = _sounddevice()
    index = _resolve(device, kind)
    cls = sd.InputStream if kind == "input" else sd.OutputStream
    try:
        stream: _Stream = cls(
            device=index,
            samplerate=rate,
            channels=1,
            dtype="int16",
            blocksize=blocksize,
            callback=callback,
            latency=DEVICE_LATENCY,
        )
        stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        label = device if device is not None else "default"
        raise DeviceError(
            f"cannot open {kind} sound device {label!r} at {rate} Hz: {exc}"
        ) from None
    return stream


def port_audio_stream(
    kind: str,
    device: str | int | None,
    rate: int,
    blocksize: int,
    callback: Any,
) -> _Stream:
    """The real ``StreamFactory``: a started PortAudio stream."""
    return _open(kind, device, rate, blocksize, callback)


class _DeviceEnd:
    """What a microphone source and a speaker sink share: the ring, the rates, mute and volume."""

    kind = "input"

    def __init__(
        self,
        device: str | int | None = None,
        *,
        device_rate: int | None = None,
        buffer_ms: int = 60,
        frame_format: FrameFormat = narrowband,
        volume: float = 1.0,
        stream_factory: StreamFactory = port_audio_stream,
    ) -> None:
        self.device = device
        self.frame_format = frame_format
        codec_rate, _ = frame_format()
        self.fixed_rate = device_rate is not None  # [audio] sample_rate set: never reopened
        self.buffer_ms = buffer_ms
        self.volume = volume
        self.muted = False
        self.closed = False
        self._factory = stream_factory
        self._stream: _Stream | None = None
        self._open_at(device_rate or codec_rate)

    def _open_at(self, rate: int) -> None:
        """A new ring (and counters) and the PortAudio stream at ``rate`` (may raise)."""
        self.device_rate = rate
        self.ring = RingBuffer(max(4, rate * self.buffer_ms // 1000), recentre=True)
        # the band: as wide as the ring allows once a frame and a device block (the swing of
        # the depth between two transfers, about 25 ms either way) fit above it
        swing = rate * 25 // 1000
        capacity = self.ring.capacity
        least = max(1, capacity // 8)
        band = min(max(least, self.ring.target - swing), self.ring.target)
        self.drift = DriftCompensator(
            self.ring.target,
            band,
            per_frame=max(1, rate // 8000),
            settle=SETTLE_FRAMES,
            limits=(
                min(swing, self.ring.target - band),
                max(capacity - swing, self.ring.target + band),
            ),
            least_band=least,
            step_limit=rate * STEP_MS_PER_S // 1000,
            urgent=(swing // 2, capacity - swing // 2),
        )
        self._last_rms: float | None = None  # the microphone's last frame, for the next step
        self.callbacks = 0  # PortAudio callbacks run
        self.device_xruns = 0  # callbacks whose status flagged an overflow or underflow
        self._last_callback: float | None = None
        self._first_callback: float | None = None
        self._frames_after_first = 0  # device frames through callbacks after the first one
        self.max_callback_gap_ms = 0.0  # the longest wait between two callbacks
        self.stalls = 0  # callback gaps longer than the whole ring (the ring cannot cover them)
        self.stalled_ms = 0.0  # their total length
        self._resampler: StreamResampler | None = None
        block = rate // 100  # 10 ms device blocks
        self._stream = self._factory(self.kind, self.device, rate, block, self._callback)

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """The codec's rate and frame size from now on (``FormatAware``: the media channel says
        so on its first tick and at a codec change, so the device end converts once).

        The device was opened before the codec was known (to report a bad device before the
        call); without ``[audio] sample_rate`` it is reopened at the codec's rate, so a 16 or
        48 kHz codec gets 16 or 48 kHz audio. If that rate fails, the old rate (converted) stays.
        """
        fmt = (sample_rate, frame_samples)
        self.frame_format = lambda: fmt
        if self.fixed_rate or self.closed or sample_rate == self.device_rate:
            return
        old = self.device_rate
        self._stop_stream()
        for rate in (sample_rate, old):
            try:
                self._open_at(rate)
                return
            except DeviceError as exc:
                log.warning("sound device %r at %d Hz: %s", self.device, rate, exc)
        self._stream = None  # neither rate opened: silence, as with a missing device

    def _observe(self, frames: int, status: Any) -> None:
        """PortAudio's thread: count the callback, its status flags, the gap since the last,
        and the frames the device clock moved."""
        now = time.monotonic()
        if self._last_callback is None:
            self._first_callback = now
        else:
            self._frames_after_first += frames
            gap = (now - self._last_callback) * 1000
            self.max_callback_gap_ms = max(self.max_callback_gap_ms, gap)
            if gap > self.ring.capacity * 1000 / self.device_rate:
                self.stalls += 1
                self.stalled_ms += gap
        self._last_callback = now
        self.callbacks += 1
        if status:
            self.device_xruns += 1

    def _compensate(self, samples: Pcm) -> Pcm:
        """Samples on their way into the ring from the media clock (the speaker): one dropped
        or repeated when the depth left the band."""
        if self.ring.refilling:
            self.drift.reset()
            return samples
        step = self.drift.step(self.ring.depth + samples.size // 2, _rms(samples))  # halfway
        return self.drift.apply(samples, step)

    def _converter(self, rate_in: int, rate_out: int) -> StreamResampler:
        r = self._resampler
        if r is None or (r.rate_in, r.rate_out) != (rate_in, rate_out):
            r = self._resampler = StreamResampler(rate_in, rate_out)
        return r

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Device, rates, mute, volume and the ring buffer's depth and edge counters."""
        codec_rate, _ = self.frame_format()
        return {
            "device": self.device,
            "device_rate": self.device_rate,
            "codec_rate": codec_rate,
            "muted": self.muted,
            "volume": self.volume,
            **self.ring.stats(self.device_rate),
            **self.drift.stats(self.device_rate),
            "callbacks": self.callbacks,
            "device_xruns": self.device_xruns,
            "max_callback_gap_ms": round(self.max_callback_gap_ms, 1),
            "stalls": self.stalls,
            "stalled_ms": round(self.stalled_ms, 1),
            "device_behind_samples": self.device_behind(),
        }

    def device_behind(self) -> int:
        """Samples the wall clock moved since the first callback minus those the device
        moved: what the sound server filled in (a stalled speaker: silence played) or threw
        away (a stalled microphone) while PortAudio did not call back. About 0 while the
        device keeps time (within a block or two), constant across a stall it recovered from
        by catching up, grown by a stall it did not."""
        first = self._first_callback
        if first is None:
            return 0
        return round((time.monotonic() - first) * self.device_rate) - self._frames_after_first

    def close(self) -> None:
        """Stop and close the PortAudio stream (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._stop_stream()

    def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()


class DeviceSource(_DeviceEnd):
    """A microphone as an ``AudioSource``: one codec-rate frame per media-clock tick."""

    kind = "input"

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        """PortAudio's thread: captured samples into the ring (oldest dropped when full)."""
        self._observe(frames, status)
        self.ring.write(np.asarray(data, dtype=np.int16).reshape(-1))

    def _take(self, count: int) -> Pcm:
        """``count`` device samples from the ring, one more or one fewer read when the depth
        left the band (that one dropped or repeated, so ``count`` come out)."""
        if self.ring.refilling:
            self.drift.reset()
            return self.ring.read(count)
        # the depth halfway through; the level of the frame before (this one is not read yet)
        step = self.drift.step(self.ring.depth - count // 2, self._last_rms)
        out = self.drift.apply(self.ring.read(count + step), step)
        self._last_rms = _rms(out)
        return out

    def read_frame(self) -> Pcm | None:
        """The next frame at the codec's rate; silence while muted; ``None`` once closed."""
        if self.closed:
            return None
        rate, samples = self.frame_format()
        conv = self._converter(self.device_rate, rate)
        need = conv.input_needed(samples)
        if need:
            conv.feed(self._take(need))
        frame = conv.take(samples)
        if self.muted:
            return np.zeros(samples, dtype=np.int16)
        return _to_int16(frame, self.volume)


class DeviceSink(_DeviceEnd):
    """A speaker as an ``AudioSink``: frames from the media clock, played by the device clock."""

    kind = "output"

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        """PortAudio's thread: fill the device's block from the ring (silence when dry)."""
        self._observe(frames, status)
        data[:] = self.ring.read(frames).reshape(-1, 1)

    def write_frame(self, pcm: Pcm) -> None:
        """Queue one decoded frame; muted, it is replaced by silence (the clocks stay aligned)."""
        if self.closed:
            return
        rate, _ = self.frame_format()
        conv = self._converter(rate, self.device_rate)
        frame = np.asarray(pcm, dtype=np.float64)
        conv.feed(np.zeros_like(frame) if self.muted else frame)
        out = _to_int16(conv.take(conv.available), self.volume)
        self.ring.write(self._compensate(out) if out.size else out)


# -- ring tones ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cadence:
    """A tone pattern: frequencies played together, ``on`` seconds of tone, ``off`` of silence."""

    name: str
    frequencies: tuple[float, ...]
    on: float
    off: float
    level: float = 0.25

    def samples(self, start: int, count: int, rate: int) -> Pcm:
        """Samples ``start .. start+count`` of the pattern at ``rate`` (continuous phase)."""
        n = np.arange(start, start + count, dtype=np.float64)
        t = n / rate
        tone = sum((np.sin(2 * np.pi * f * t) for f in self.frequencies), np.zeros(count))
        tone *= self.level / len(self.frequencies)
        period = self.on + self.off
        tone[np.mod(t, period) >= self.on] = 0.0
        out: Pcm = np.rint(tone * 32767).astype(np.int16)
        return out


RING_TONE = Cadence("ring", (440.0, 480.0), on=1.0, off=2.0)
"""Played on our output device while a call rings here."""
RINGBACK_TONE = Cadence("ringback", (425.0,), on=1.0, off=4.0)
"""Played while the far end rings (ETSI ES 201 970 ringing tone: 425 Hz, 1 s on, 4 s off)."""


class TonePlayer:
    """Plays a ``Cadence`` on an output device until stopped (the device is open only meanwhile)."""

    def __init__(
        self,
        device: str | int | None = None,
        *,
        rate: int = 16000,
        stream_factory: StreamFactory = port_audio_stream,
    ) -> None:
        self.device = device
        self.rate = rate
        self._factory = stream_factory
        self._stream: _Stream | None = None
        self._position = 0
        self.playing: Cadence | None = None

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        cadence = self.playing
        if cadence is None:
            data[:] = 0
            return
        data[:] = cadence.samples(self._position, frames, self.rate).reshape(-1, 1)
        self._position += frames

    def play(self, cadence: Cadence) -> None:
        """Start ``cadence`` from its beginning (opens the device: may raise ``DeviceError``)."""
        if self.playing == cadence:
            return
        self._position = 0
        self.playing = cadence
        if self._stream is None:
            try:
                self._stream = self._factory(
                    "output", self.device, self.rate, self.rate // 100, self._callback
                )
            except DeviceError:
                self.playing = None
                raise

    def stop(self) -> None:
        """Silence and release the device."""
        self.playing = None
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()


class Ringer:
    """Listens to the phone's events: ring tone while a call rings here, ringback while ours rings.

    Give ``on_event`` to ``Phone.add_listener``. A device error is logged once per tone and the
    calls go on without it.
    """

    def __init__(self, player: TonePlayer) -> None:
        self.player = player
        self.incoming: set[str] = set()
        self.outgoing: set[str] = set()
        self.error: str | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, IncomingCall):
            self.incoming.add(event.call_id)
        elif isinstance(event, CallStateChanged):
            self.incoming.discard(event.call_id)
            self.outgoing.discard(event.call_id)
            if event.new is CallState.INCOMING:
                self.incoming.add(event.call_id)
            elif event.new is CallState.RINGING:
                self.outgoing.add(event.call_id)
        else:
            return
        self._update()

    @property
    def wanted(self) -> Cadence | None:
        """The tone that should be playing now."""
        if self.incoming:
            return RING_TONE
        return RINGBACK_TONE if self.outgoing else None

    def _update(self) -> None:
        wanted = self.wanted
        if wanted is None:
            self.player.stop()
            return
        try:
            self.player.play(wanted)
        except DeviceError as exc:
            if self.error != str(exc):
                log.error("cannot play the %s tone: %s", wanted.name, exc)
            self.error = str(exc)

    def close(self) -> None:
        self.incoming.clear()
        self.outgoing.clear()
        self.player.stop()


def describe(devices: Sequence[DeviceInfo]) -> list[str]:
    """One line per device for ``securephone devices``."""
    lines = []
    for d in devices:
        marks = []
        if d.inputs:
            marks.append(f"{d.inputs} in" + (" (default)" if d.default_input else ""))
        if d.outputs:
            marks.append(f"{d.outputs} out" + (" (default)" if d.default_output else ""))
        lines.append(
            f"{d.index:3d}  {d.name}  [{d.host_api}]  {', '.join(marks)}  {d.default_rate:g} Hz"
        )
    return lines
