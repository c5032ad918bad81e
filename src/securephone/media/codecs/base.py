"""The interface every audio codec offers the media layer (RFC 3551 §4.1, §6; RFC 4566 §6).

A codec is described by an ``AudioCodec``: its SDP encoding name, the RTP clock rate (which
timestamps count in) and the audio sampling rate (which PCM frames are in) — equal for G.711
and Opus, different for G.722 (clock 8000, audio 16 kHz, RFC 3551 §4.5.2) — its channel count,
its static payload type (``None`` when the codec must be given a dynamic one, RFC 3551 §3) and
its ``a=fmtp`` parameters. It makes one ``FrameEncoder`` per sending stream and one
``FrameDecoder`` per receiving stream: codecs with memory (G.722's ADPCM, Opus) keep their state
in those objects, so a call holds exactly one of each per direction.

PCM is numpy ``int16``, interleaved when there are several channels. A decoder's ``conceal``
is asked for the audio of a packet that never arrived: codecs with packet-loss concealment
(Opus, optionally using the forward error correction carried in the *next* packet) return it,
others return ``None`` and leave the choice (silence, repeat) to the caller.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
Payload = bytes | bytearray | memoryview

__all__ = [
    "AudioCodec",
    "FrameDecoder",
    "FrameEncoder",
    "Payload",
    "Pcm",
    "frame_samples",
    "timestamp_units",
]


@runtime_checkable
class FrameEncoder(Protocol):
    """Turns PCM frames into RTP payloads for one sending stream, keeping codec state."""

    def encode(self, pcm: npt.ArrayLike) -> bytes:
        """Encode one frame of ``int16`` PCM at the codec's audio rate into one payload."""
        ...


@runtime_checkable
class FrameDecoder(Protocol):
    """Turns RTP payloads back into PCM for one receiving stream, keeping codec state."""

    def decode(self, payload: Payload) -> Pcm:
        """Decode one payload into ``int16`` PCM at the codec's audio rate."""
        ...

    def conceal(self, samples: int, next_payload: Payload | None = None) -> Pcm | None:
        """Audio for one lost packet of ``samples`` samples per channel, or ``None``.

        ``next_payload`` is the packet after the lost one when it is already at hand, for
        codecs that can recover the lost audio from it (Opus in-band FEC, RFC 6716 §2.1.7).
        Call it in order: before decoding ``next_payload`` itself.
        """
        ...


@runtime_checkable
class AudioCodec(Protocol):
    """What the media layer and SDP need to know about one codec configuration."""

    @property
    def name(self) -> str:
        """The encoding name of ``a=rtpmap`` (RFC 4566 §6), e.g. ``PCMU``, ``G722``, ``opus``."""
        ...

    @property
    def payload_type(self) -> int | None:
        """The static RTP payload type (RFC 3551 §6), or ``None`` for a dynamic one."""
        ...

    @property
    def clock_rate(self) -> int:
        """The RTP timestamp clock rate, as written in ``a=rtpmap``."""
        ...

    @property
    def sample_rate(self) -> int:
        """The sampling rate of the PCM the encoder takes and the decoder gives."""
        ...

    @property
    def channels(self) -> int:
        """Audio channels of the PCM (interleaved when more than one)."""
        ...

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` encoding, ``name/clock[/channels]`` (RFC 4566 §6)."""
        ...

    @property
    def fmtp(self) -> str | None:
        """The ``a=fmtp`` parameters this configuration announces, or ``None``."""
        ...

    def timestamp_units(self, milliseconds: int) -> int:
        """RTP timestamp increment for a packet of ``milliseconds`` of audio."""
        ...

    def frame_samples(self, milliseconds: int) -> int:
        """PCM samples per channel in ``milliseconds`` of audio at ``sample_rate``."""
        ...

    def new_encoder(self) -> FrameEncoder:
        """A fresh encoder for one sending stream."""
        ...

    def new_decoder(self) -> FrameDecoder:
        """A fresh decoder for one receiving stream."""
        ...


def timestamp_units(clock_rate: int, milliseconds: int) -> int:
    """RTP timestamp units in ``milliseconds`` at ``clock_rate`` (RFC 3550 §5.1)."""
    return clock_rate * milliseconds // 1000


def frame_samples(sample_rate: int, milliseconds: int) -> int:
    """Samples per channel in ``milliseconds`` at ``sample_rate``."""
    return sample_rate * milliseconds // 1000
