"""Decode what the jitter buffer plays out, at the codec's own rate, and fill the gaps.

One ``Playout`` per receiving stream holds the stream's ``FrameDecoder`` (codecs/base.py), so
codecs with memory (G.722's ADPCM, Opus) keep their state across frames. A frame the buffer
gives up on (lost or late) is concealed, best first:

1. by the codec: Opus recovers the lost frame from the in-band FEC (LBRR) data of the next
   packet when that packet is already queued (RFC 6716 §2.1.7, RFC 7587 §3.1), else runs its
   packet-loss concealment (RFC 6716 §4.4);
2. for codecs without concealment (G.711, G.722): the last decoded frame once more, attenuated
   (``attenuation``, -6 dB by default), then silence.

Codec concealment runs for at most ``MAX_CONCEALED`` frames in a row; a longer gap (an
underrun, silence suppression, a peer that holds us) is silence. Frames are as long as the
decoder made them; silence and repeated frames are as long as the last decoded frame
(``frame_samples`` before the first one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from securephone.media.codecs.base import FrameDecoder, Pcm
from securephone.media.jitterbuffer import Frame

__all__ = ["MAX_CONCEALED", "Playout", "PlayoutStats"]

MAX_CONCEALED = 5  # frames of codec concealment in a row (100 ms at 20 ms)


@dataclass(slots=True)
class PlayoutStats:
    """What the decoder side did: decoded frames, codec PLC, FEC recoveries, repeats, errors."""

    decoded: int = 0
    fec_recovered: int = 0  # lost frames rebuilt from the next packet's FEC data
    plc: int = 0  # lost frames made up by the codec's concealment
    repeated: int = 0  # lost frames filled with the attenuated last frame
    decode_errors: int = 0  # payloads the decoder refused (treated as lost)


class Playout:
    """Turns jitter-buffer ``Frame``s into PCM with one codec decoder (see the module doc)."""

    def __init__(self, decoder: FrameDecoder, frame_samples: int, attenuation: float = 0.5) -> None:
        if frame_samples < 1:
            raise ValueError("frame_samples must be positive")
        self.decoder = decoder
        self.frame_samples = frame_samples
        self.attenuation = attenuation
        self.stats = PlayoutStats()
        self._last: Pcm | None = None
        self._length = frame_samples
        self._lost_run = 0

    def to_pcm(self, frame: Frame, upcoming: bytes | None = None) -> Pcm:
        """PCM for one playout slot; ``upcoming`` is the next queued payload (for FEC)."""
        if frame.payload is not None:
            pcm = self._decode(frame.payload)
            if pcm is not None:
                return pcm
            return self._conceal(None)
        if frame.concealed:
            return self._conceal(upcoming)
        self._last, self._lost_run = None, 0
        return self._silence()

    def _decode(self, payload: bytes) -> Pcm | None:
        try:
            pcm = self.decoder.decode(payload)
        except ValueError:  # malformed payload (OpusError is a ValueError)
            self.stats.decode_errors += 1
            return None
        self.stats.decoded += 1
        self._last, self._lost_run = pcm, 0
        self._length = max(1, pcm.size)
        return pcm

    def _conceal(self, upcoming: bytes | None) -> Pcm:
        self._lost_run += 1
        if self._lost_run <= MAX_CONCEALED:
            try:
                pcm = self.decoder.conceal(self._length, upcoming or None)
            except ValueError:
                pcm = None
            if pcm is not None:
                if upcoming:
                    self.stats.fec_recovered += 1
                else:
                    self.stats.plc += 1
                return pcm
        last, self._last = self._last, None
        if last is not None:
            self.stats.repeated += 1
            repeated: Pcm = (last * self.attenuation).astype(np.int16)
            return repeated
        return self._silence()

    def _silence(self) -> Pcm:
        return np.zeros(self._length, dtype=np.int16)
