"""Reorder and playout buffer for fixed-size audio frames, sans I/O (RFC 3550 §5.1, §6.4.1).

One RTP packet per frame, of any codec: ``samples_per_frame`` is the frame's length in RTP
timestamp units (160 for 20 ms of G.711 or G.722, whose RTP clock is 8000 Hz; 960 for 20 ms of
Opus at 48 kHz, RFC 7587 §4.1). The buffer never decodes: ``media/playout.py`` does.

``put(packet, now)`` files a packet under its *extended* sequence number (16-bit sequence
numbers unwrapped against the highest one received). ``get(now)`` is called once per frame
period by the audio pump and returns the next ``Frame``; the playout clock is that call,
``now`` only feeds the delay statistics. The buffer never reads a clock.

Playout rules:

* Prefetch: after start, an underrun, a new talkspurt or a restart, ``get`` returns silence
  (``payload=None, concealed=False``) until ``depth_frames`` frames are queued, or until
  the first queued frame has waited ``depth_frames`` calls of ``get`` (so a short tail
  still plays), then plays from the lowest queued sequence number.
* Loss: when the frame for the next slot is missing, ``get`` returns a *concealed* frame
  (``payload=None, concealed=True``) and moves on; a packet arriving for a slot already
  played or skipped is counted ``late`` and dropped. If the buffer is empty at that point
  it is an underrun: the slot is concealed but not skipped, and the buffer prefetches again
  (this is also how the end of a talkspurt under silence suppression looks).
* Concealment is done on the decoded PCM level by ``Concealer``: the first concealed frame
  after audio repeats the last decoded frame attenuated by 6 dB, later ones are silence.
* Duplicates (already queued or recently played) are counted and dropped.
* New talkspurt: a packet with the marker bit, or whose timestamp advanced further than
  ``samples_per_frame`` per sequence step since the previous packet (a timestamp jump, the
  silence of a suppressed pause), restarts prefetch when nothing is queued, so the
  talkspurt starts with the full ``depth_frames`` of protection (RFC 3550 §5.1: the marker
  lets the receiver adjust its playout delay). Playout follows sequence numbers, so the
  pause itself is not played out.
* Sequence jumps of more than ``max_frames`` away from the highest sequence number are
  dropped as ``out_of_window`` unless the next packet follows in sequence, which confirms a
  sender restart (the probation idea of RFC 3550 App. A.1); the buffer then restarts.
* SSRC change: the buffer restarts for the new source.
* Overflow: more than ``max_frames`` queued drops the oldest (``overflow_drops``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from securephone.media.codecs.g711 import PCMA, PCMU
from securephone.media.rtp import RtpPacket, seq_diff, ts_diff

__all__ = ["Concealer", "Frame", "JitterBuffer", "JitterBufferStats"]

Pcm = npt.NDArray[np.int16]


class Frame(NamedTuple):
    """One playout slot (immutable; a named tuple: one is made per packet time, cheaply).

    ``payload`` is the RTP payload to decode, or None when there is nothing to play. Then
    ``concealed`` tells a lost frame (True: conceal it) from plain silence (False: not
    started, prefetching). ``sequence_number`` is the 16-bit RTP sequence number of the slot.
    """

    payload: bytes | None
    concealed: bool = False
    payload_type: int | None = None
    sequence_number: int | None = None
    timestamp: int | None = None


@dataclass(slots=True)
class JitterBufferStats:
    """Counters of a ``JitterBuffer``.

    ``delay_total`` sums (get time - arrival time) over played frames; ``flushed`` counts
    frames discarded by a restart (SSRC change or confirmed sequence jump).
    """

    received: int = 0
    played: int = 0
    concealed: int = 0
    late: int = 0
    duplicates: int = 0
    overflow_drops: int = 0
    out_of_window: int = 0
    flushed: int = 0
    underruns: int = 0
    resets: int = 0
    delay_total: float = 0.0

    @property
    def mean_delay(self) -> float | None:
        """Mean time a played frame spent in the buffer, in the caller's clock units."""
        return self.delay_total / self.played if self.played else None


class _State(Enum):
    PREFETCH = "prefetch"
    PLAYING = "playing"


_SILENCE = Frame(None)  # nothing to play (not started, prefetching)
_Entry = tuple[RtpPacket, float]  # a queued packet and its arrival time


class JitterBuffer:
    """Sans-I/O reorder + playout buffer for fixed-duration frames (see the module docstring)."""

    def __init__(
        self, depth_frames: int = 3, max_frames: int = 50, samples_per_frame: int = 160
    ) -> None:
        if depth_frames < 1 or max_frames < depth_frames:
            raise ValueError("need 1 <= depth_frames <= max_frames")
        if samples_per_frame < 1:
            raise ValueError("samples_per_frame must be positive")
        self.depth_frames = depth_frames
        self.max_frames = max_frames
        self.samples_per_frame = samples_per_frame
        self.stats = JitterBufferStats()
        self._ssrc: int | None = None
        self._entries: dict[int, _Entry] = {}
        self._played: deque[int] = deque(maxlen=max_frames)
        self._state = _State.PREFETCH
        self._next: int | None = None
        self._max_ext: int | None = None
        self._last: tuple[int, int] | None = None
        self._bad_seq: int | None = None
        self._waited = 0

    def __len__(self) -> int:
        """Number of frames queued."""
        return len(self._entries)

    @property
    def ssrc(self) -> int | None:
        """The SSRC of the stream being played, None before the first packet."""
        return self._ssrc

    # --- input --------------------------------------------------------------------------

    def put(self, packet: RtpPacket, now: float) -> None:
        """Queue one received RTP packet (one frame); ``now`` is its arrival time."""
        self.stats.received += 1
        if packet.ssrc != self._ssrc:
            self._restart(packet.ssrc, anchor=None, counted=self._ssrc is not None)
        ext = self._extend(packet.sequence_number)
        if self._is_jump(ext) and not self._confirm_jump(packet.sequence_number, ext):
            return
        if self._is_duplicate_or_late(ext):
            return
        if self._is_talkspurt_start(packet, ext):
            self._talkspurt_starts()
        self._last = (ext, packet.timestamp)
        self._max_ext = ext if self._max_ext is None else max(self._max_ext, ext)
        self._entries[ext] = (packet, now)
        self._trim()

    def _extend(self, seq: int) -> int:
        """Unwrap a 16-bit sequence number against the highest one received."""
        if self._max_ext is None:
            return seq
        return self._max_ext + seq_diff(seq, self._max_ext & 0xFFFF)

    def _is_jump(self, ext: int) -> bool:
        """More than ``max_frames`` away from the highest sequence number received."""
        return self._max_ext is not None and abs(ext - self._max_ext) > self.max_frames

    def _confirm_jump(self, seq: int, ext: int) -> bool:
        """Accept a jump only when confirmed by the next packet in sequence (cf. RFC 3550 A.1)."""
        if seq == self._bad_seq:
            self._restart(self._ssrc, anchor=ext, counted=True)
            return True
        self._bad_seq = (seq + 1) & 0xFFFF
        self.stats.out_of_window += 1
        return False

    def _is_duplicate_or_late(self, ext: int) -> bool:
        """Count and report packets that are queued already or whose slot has passed.

        Every played slot lies before ``_next``, so only a packet for a passed slot can be a
        duplicate of a played one: the history is searched for those alone.
        """
        if ext in self._entries:
            self.stats.duplicates += 1
            return True
        if self._next is not None and ext < self._next:
            if ext in self._played:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return True
        return False

    def _is_talkspurt_start(self, packet: RtpPacket, ext: int) -> bool:
        """Marker bit set, or the timestamp advanced further than the sequence number did."""
        if packet.marker:
            return True
        if self._last is None:
            return False
        last_ext, last_ts = self._last
        return ts_diff(packet.timestamp, last_ts) > (ext - last_ext) * self.samples_per_frame

    def _talkspurt_starts(self) -> None:
        """A talkspurt beginning while nothing is queued gets a fresh prefetch."""
        if not self._entries:
            self._enter_prefetch()

    def _trim(self) -> None:
        """Drop the oldest frames while more than ``max_frames`` are queued."""
        while len(self._entries) > self.max_frames:
            oldest = min(self._entries)
            del self._entries[oldest]
            self.stats.overflow_drops += 1
            if self._next is not None:
                self._next = max(self._next, oldest + 1)

    def _restart(self, ssrc: int | None, anchor: int | None, counted: bool) -> None:
        """Forget the stream (new SSRC or confirmed sequence restart) and prefetch again."""
        self.stats.flushed += len(self._entries)
        self.stats.resets += 1 if counted else 0
        self._ssrc = ssrc
        self._entries.clear()
        self._played.clear()
        self._enter_prefetch()
        self._next = anchor
        self._max_ext = anchor
        self._last = None
        self._bad_seq = None

    def upcoming(self) -> RtpPacket | None:
        """The packet queued for the next playout slot, when it has arrived already.

        After a concealed slot this is the packet that followed the lost one: a codec with
        in-band FEC (Opus, RFC 6716 §2.1.7) rebuilds the lost audio from it.
        """
        entry = self._entries.get(self._next) if self._next is not None else None
        return entry[0] if entry is not None else None

    # --- output -------------------------------------------------------------------------

    def get(self, now: float) -> Frame:
        """The frame for the next 20 ms playout slot; call once per frame period."""
        if self._state is _State.PREFETCH and not self._prefetched():
            return _SILENCE
        return self._play_slot(now)

    def _enter_prefetch(self) -> None:
        self._state = _State.PREFETCH
        self._waited = 0

    def _prefetched(self) -> bool:
        """Switch to playing once ``depth_frames`` frames are queued or the first waited long."""
        self._waited += 1 if self._entries else 0
        if len(self._entries) < self.depth_frames and self._waited < self.depth_frames:
            return False
        self._state = _State.PLAYING
        self._next = min(self._entries)
        return True

    def _play_slot(self, now: float) -> Frame:
        """Pop the frame for the current slot, or conceal it if missing."""
        assert self._next is not None
        ext = self._next
        entry = self._entries.pop(ext, None)
        if entry is None:
            return self._conceal(ext)
        self._next = ext + 1
        packet, arrival = entry
        stats = self.stats
        stats.played += 1
        stats.delay_total += now - arrival
        self._played.append(ext)
        return Frame(
            packet.payload, False, packet.payload_type, packet.sequence_number, packet.timestamp
        )

    def _conceal(self, ext: int) -> Frame:
        """A missing slot: skip it if later frames wait, else it is an underrun.

        On an underrun nothing later has arrived, so the slot is not given up: the buffer
        prefetches again from it (after silence suppression the next talkspurt begins with
        exactly that sequence number).
        """
        self.stats.concealed += 1
        if self._entries:
            self._next = ext + 1
        else:
            self.stats.underruns += 1
            self._enter_prefetch()
        return Frame(None, concealed=True, sequence_number=ext & 0xFFFF)


class Concealer:
    """Decode ``Frame``s to PCM, concealing lost frames on the PCM level.

    The first concealed frame after audio repeats the last decoded frame attenuated
    (``attenuation`` 0.5 = -6 dB); further concealed frames, silent frames and frames with a
    payload type missing from ``decoders`` are silence. Defaults decode PCMU (0) and PCMA (8).
    """

    def __init__(
        self,
        decoders: Mapping[int, Callable[[bytes], Pcm]] | None = None,
        samples_per_frame: int = 160,
        attenuation: float = 0.5,
    ) -> None:
        default = {PCMU.payload_type: PCMU.decode, PCMA.payload_type: PCMA.decode}
        self._decoders: Mapping[int, Callable[[bytes], Pcm]] = (
            default if decoders is None else decoders
        )
        self._silence: Pcm = np.zeros(samples_per_frame, dtype=np.int16)
        self._attenuation = attenuation
        self._last: Pcm | None = None

    def to_pcm(self, frame: Frame) -> Pcm:
        """16-bit PCM for one frame (decoded, repeated-attenuated, or silence)."""
        decode = self._decoders.get(frame.payload_type) if frame.payload_type is not None else None
        if frame.payload is not None and decode is not None:
            self._last = decode(frame.payload)
            return self._last
        last, self._last = self._last, None
        if frame.concealed and last is not None:
            return (last * self._attenuation).astype(np.int16)
        return self._silence.copy()
