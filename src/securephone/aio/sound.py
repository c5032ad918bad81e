"""Sound devices for a Phone's calls: source/sink factories from ``[audio]``, the ringer.

The glue between ``audio/devices.py`` (PortAudio, no knowledge of calls) and the phone: each
call's microphone and speaker follow the codec's rate from the call's own media stream, and a
device that cannot be opened follows ``[audio] on_device_error``: ``continue`` (the call goes on
in silence, the error is logged once and kept in ``errors``) or ``fail`` (the call is hung up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from securephone.aio.call import Call
from securephone.audio.devices import (
    DeviceError,
    DeviceSink,
    DeviceSource,
    FrameFormat,
    Ringer,
    TonePlayer,
    narrowband,
    parse_device_spec,
)
from securephone.audio.sinks import AudioSink, NullSink
from securephone.audio.sources import AudioSource, SilenceSource
from securephone.store.config import AudioSettings

log = logging.getLogger(__name__)

DEVICE_PREFIX = "device"


def is_device(spec: str | None) -> bool:
    """Whether a ``--play``/``--record`` value names a sound device (``device[:NAME]``)."""
    return spec is not None and (spec == DEVICE_PREFIX or spec.startswith(DEVICE_PREFIX + ":"))


def call_format(call: Call) -> FrameFormat:
    """The call's codec rate and frame size, read from its media stream at every frame."""

    def current() -> tuple[int, int]:
        channel = call.channel
        codec = channel.stream.codec if channel is not None else None
        if channel is None or codec is None:
            return narrowband()
        # the codec's audio rate, not the RTP clock: G.722 is 16 kHz audio on an 8 kHz clock
        return codec.sample_rate, channel.stream.samples

    return current


@dataclass
class CallAudio:
    """Opens the configured devices for each call and remembers what each call has."""

    settings: AudioSettings
    input: str | int | None = None
    output: str | int | None = None
    errors: list[str] = field(default_factory=list)
    sources: dict[str, DeviceSource] = field(default_factory=dict)
    sinks: dict[str, DeviceSink] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: AudioSettings, play: str | None = None, record: str | None = None
    ) -> CallAudio:
        """``play``/``record`` ``device:NAME`` override ``[audio] input``/``output``."""
        audio = cls(settings, settings.input, settings.output)
        if play is not None and is_device(play):
            audio.input = parse_device_spec(play) if play != DEVICE_PREFIX else settings.input
        if record is not None and is_device(record):
            audio.output = parse_device_spec(record) if record != DEVICE_PREFIX else settings.output
        return audio

    def source(self, call: Call) -> AudioSource:
        """The microphone for ``call`` (silence if it cannot be opened)."""
        try:
            mic = DeviceSource(
                self.input,
                device_rate=self.settings.sample_rate,
                buffer_ms=self.settings.buffer_ms,
                frame_format=call_format(call),
                volume=self.settings.input_volume,
            )
        except DeviceError as exc:
            self._failed(call, exc)
            return SilenceSource()
        self.sources[call.key] = mic
        return mic

    def sink(self, call: Call) -> AudioSink:
        """The speaker for ``call`` (frames dropped if it cannot be opened)."""
        try:
            speaker = DeviceSink(
                self.output,
                device_rate=self.settings.sample_rate,
                buffer_ms=self.settings.buffer_ms,
                frame_format=call_format(call),
                volume=self.settings.output_volume,
            )
        except DeviceError as exc:
            self._failed(call, exc)
            return NullSink()
        self.sinks[call.key] = speaker
        return speaker

    def _failed(self, call: Call, exc: DeviceError) -> None:
        message = str(exc)
        if message not in self.errors:
            self.errors.append(message)
        if self.settings.on_device_error == "fail":
            log.error("call %s: %s; ending the call ([audio] on_device_error = fail)", call, exc)
            asyncio.get_running_loop().call_soon(call.hangup)
        else:
            log.error("call %s: %s; the call goes on without that device", call, exc)

    def set_muted(self, call: Call, muted: bool) -> bool:
        """Mute or unmute ``call``'s microphone; False when the call has none."""
        mic = self.sources.get(call.key)
        if mic is None:
            return False
        mic.muted = muted
        return True

    def muted(self, call: Call) -> bool:
        mic = self.sources.get(call.key)
        return mic is not None and mic.muted

    def stats(self, call: Call) -> dict[str, object]:
        """The devices' buffer depth and edge counters for ``call`` (empty without devices)."""
        out: dict[str, object] = {}
        if call.key in self.sources:
            out["input"] = self.sources[call.key].stats()
        if call.key in self.sinks:
            out["output"] = self.sinks[call.key].stats()
        return out


def check_device(kind: str, device: str | int | None) -> None:
    """Open and close ``device`` once, so a bad one is one clear line before any call."""
    factory: Callable[..., DeviceSource | DeviceSink] = (
        DeviceSource if kind == "input" else DeviceSink
    )
    factory(device).close()


def ringer_for(settings: AudioSettings) -> Ringer | None:
    """The ring tone / ringback player on the output device, when ``ring_tone`` is on."""
    if not settings.ring_tone:
        return None
    return Ringer(TonePlayer(settings.output))
