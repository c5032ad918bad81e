"""DTMF as RTP telephone-events, sans I/O (RFC 4733 §2.3, §2.5, §3).

``TelephoneEvent`` is the 4-octet payload (event, E, R, volume, duration) with ``parse`` and
``__bytes__``. ``dtmf_packets`` yields the packets a sender emits for one key press
(§2.5.1): all share the event's start timestamp, the first carries the marker bit, updates
follow every ``interval_ms`` with a growing duration, and the final packet with the E bit
is sent three times (§2.5.1.4). ``DtmfReceiver`` turns a stream of such packets into one
``DtmfDigit`` per event, keyed on (SSRC, timestamp) so that repeated end packets, updates
arriving after the end, and reordering never report a key twice (§2.5.2).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from securephone.errors import MediaParseError
from securephone.media.rtp import RtpPacket, ts_diff

__all__ = [
    "DTMF_DIGITS",
    "DtmfDigit",
    "DtmfPacket",
    "DtmfReceiver",
    "TelephoneEvent",
    "digit_to_event",
    "dtmf_packets",
    "event_to_digit",
]

DTMF_DIGITS = "0123456789*#ABCD"  # events 0-15 (RFC 4733 §3.2, Table 7)
_PAYLOAD = struct.Struct("!BBH")


def digit_to_event(digit: str) -> int:
    """DTMF character -> event code (RFC 4733 §3.2): 0-9, * = 10, # = 11, A-D = 12-15."""
    index = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


def event_to_digit(event: int) -> str | None:
    """Event code -> DTMF character, or None for codes outside 0-15 (RFC 4733 §3.2)."""
    return DTMF_DIGITS[event] if 0 <= event < len(DTMF_DIGITS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The telephone-event payload (RFC 4733 §2.3).

    ``volume`` is the power level as 0..63 meaning 0 to -63 dBm0; ``duration`` is in RTP
    timestamp units since the event's start timestamp. The R bit is sent as 0 and ignored.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    SIZE = 4

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> TelephoneEvent:
        """Parse the first 4 octets of a telephone-event payload; ``MediaParseError`` if short."""
        if len(data) < cls.SIZE:
            raise MediaParseError(f"telephone-event payload is {len(data)} octets, expected 4")
        event, flags, duration = _PAYLOAD.unpack_from(bytes(data[: cls.SIZE]))
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        """Serialise (RFC 4733 §2.3); ``ValueError`` if a field does not fit."""
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise ValueError("event must be 0..255 and volume 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise ValueError("duration must fit 16 bits")
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


# --- sender (RFC 4733 §2.5.1) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One packet to send for a key press, ``offset_ms`` after the press began."""

    offset_ms: int
    timestamp: int
    marker: bool
    event: TelephoneEvent

    def to_rtp(self, payload_type: int, ssrc: int, sequence_number: int) -> RtpPacket:
        """Wrap as an RTP packet; the caller numbers it in the stream's sequence space."""
        return RtpPacket(
            payload_type=payload_type,
            sequence_number=sequence_number,
            timestamp=self.timestamp,
            ssrc=ssrc,
            payload=bytes(self.event),
            marker=self.marker,
        )


def dtmf_packets(
    digit: str,
    timestamp: int,
    *,
    duration_ms: int = 100,
    interval_ms: int = 50,
    clock_rate: int = 8000,
    volume: int = 10,
    end_repeats: int = 3,
) -> Iterator[DtmfPacket]:
    """The packet sequence for one key press (RFC 4733 §2.5.1.2-§2.5.1.4).

    Every packet carries the start ``timestamp``; the first has the marker bit. Packet k is
    sent at ``k * interval_ms`` and reports the duration up to the end of its interval,
    capped at the key's ``duration_ms``; the packet that reaches the full duration has the
    E bit and is sent ``end_repeats`` times, one interval apart, unchanged. A press of
    100 ms with 50 ms updates is 4 packets: durations 400, 800E, 800E, 800E at 8 kHz.
    """
    event = digit_to_event(digit)
    total = duration_ms * clock_rate // 1000
    step = interval_ms * clock_rate // 1000
    if total <= 0 or step <= 0 or total > 0xFFFF or end_repeats < 1:
        raise ValueError("need 0 < duration <= 65535 timestamp units, interval > 0, repeats >= 1")
    durations = list(range(step, total, step)) + [total] * end_repeats
    for k, duration in enumerate(durations):
        end = k >= len(durations) - end_repeats
        payload = TelephoneEvent(event, end, volume, duration)
        yield DtmfPacket(k * interval_ms, timestamp, k == 0, payload)


# --- receiver (RFC 4733 §2.5.2) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A received key press: reported once, when it ended (or was superseded / flushed).

    ``ended`` is False when no end packet arrived (the next event began, or ``flush``);
    ``duration`` is then the longest duration seen.
    """

    digit: str
    event: int
    timestamp: int
    duration: int
    volume: int
    ended: bool = True


MAX_OPEN_EVENTS = 4  # events heard of, not yet ended or superseded (reordering needs 2)


class DtmfReceiver:
    """Turn telephone-event packets into ``DtmfDigit``s exactly once per event (RFC 4733 §2.5.2).

    An event is identified by (SSRC, RTP timestamp): all its packets — updates and the
    repeated end packets — share the start timestamp. A digit is reported at its first end
    packet; an event whose end packets were all lost is reported when a packet for a newer
    event arrives or at ``flush()``; beyond ``MAX_OPEN_EVENTS`` open at once (packets with ever
    older start times), the one heard of first is reported. Packets of an event already reported are ignored, in
    any order. Events outside 0-15 are not DTMF and are ignored.
    """

    def __init__(self, memory: int = 64) -> None:
        self._done: deque[tuple[int, int]] = deque(maxlen=memory)
        self._open: dict[tuple[int, int], DtmfDigit] = {}

    def receive(self, packet: RtpPacket) -> list[DtmfDigit]:
        """Feed one telephone-event RTP packet; return the digits it completes (0, 1 or more)."""
        payload = TelephoneEvent.parse(packet.payload)
        key = (packet.ssrc, packet.timestamp)
        digit = event_to_digit(payload.event)
        if digit is None or key in self._done:
            return []
        finished = [self._close(old) for old in list(self._open) if _supersedes(key, old)]
        self._open[key] = self._merge(key, digit, payload)
        if payload.end:
            finished.append(self._close(key))
        while len(self._open) > MAX_OPEN_EVENTS:  # ever older start times supersede nothing
            finished.append(self._close(next(iter(self._open))))  # the one heard of first
        return finished

    def flush(self) -> list[DtmfDigit]:
        """Report every event still open (no end packet seen), e.g. when the stream stops."""
        return [self._close(key) for key in list(self._open)]

    def _merge(self, key: tuple[int, int], digit: str, payload: TelephoneEvent) -> DtmfDigit:
        """Fold one packet into the event for ``key`` (the longest duration wins)."""
        seen = self._open.get(key)
        duration = max(payload.duration, seen.duration if seen else 0)
        return DtmfDigit(digit, payload.event, key[1], duration, payload.volume, payload.end)

    def _close(self, key: tuple[int, int]) -> DtmfDigit:
        """Report the event for ``key`` and remember that it is done."""
        self._done.append(key)
        return self._open.pop(key)


def _supersedes(new: tuple[int, int], old: tuple[int, int]) -> bool:
    """A packet for ``new`` ends event ``old``: another source, or a later start timestamp."""
    return new[0] != old[0] or ts_diff(new[1], old[1]) > 0
