"""RTP sockets and the audio pump: the asyncio side of one call's media.

Each call keeps its own send grid: packet n is due at ``start + n * ptime``, so the schedule
never drifts however late one tick runs. The ticks of every call on the loop come from one
shared :class:`~securephone.aio.mediaclock.MediaClock` (one timer, not one per call).

Reads are batched into the same tick: each packet time a call first drains its RTP socket
(≤ 32 datagrams of ≤ 2 KiB), then plays out and sends, so the event loop is not woken once per
received packet. Each datagram keeps its real arrival time from the kernel (``SO_TIMESTAMPNS``,
where the platform has it) for the jitter and delay figures. While a media-path keying (ZRTP,
DTLS-SRTP) has not agreed keys yet, and always for a non-muxed RTCP socket, the socket has its
own reader instead, so handshakes and reports are handled as soon as they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import random
import socket
import struct
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np

from securephone.aio.mediaclock import MediaClock
from securephone.aio.netaddr import dual_stack_options, family_of, for_socket, is_dual_stack, unmap
from securephone.audio.adapt import fit_sink, fit_source
from securephone.audio.sinks import AudioSink, NullSink
from securephone.audio.sources import AudioSource, SilenceSource
from securephone.media.codecs.dtmf import DtmfDigit
from securephone.media.keying import KeyingEvent
from securephone.media.session import MediaStream

log = logging.getLogger(__name__)

RTP_READ_SIZE = 2048
READ_BATCH = 32
# Linux's SO_TIMESTAMPNS (asm-generic value; alpha, parisc and sparc number it otherwise).
_GENERIC_LINUX = sys.platform == "linux" and not platform.machine().startswith(
    ("alpha", "parisc", "sparc")
)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if _GENERIC_LINUX else 0)
_ANCILLARY_SIZE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_TIMESPEC = struct.Struct("@qq")
_SOL_SOCKET = socket.SOL_SOCKET


def enable_arrival_times(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram's arrival (Linux ``SO_TIMESTAMPNS``); False if not."""
    if not SO_TIMESTAMPNS or not _ANCILLARY_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def arrival_time(ancillary: list[tuple[int, int, bytes]], offset: float, now: float) -> float:
    """A datagram's arrival on the loop's clock, from its ``SO_TIMESTAMPNS`` stamp (wall clock
    minus ``offset`` = wall clock - loop clock); ``now`` when there is none. Never after ``now``."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = cast(tuple[int, int], _TIMESPEC.unpack_from(data))
            return min(now, seconds + nanoseconds * 1e-9 - offset)
    return now


class PortRangeExhausted(OSError):
    """No free RTP/RTCP port pair in the configured range."""


_cursor: dict[tuple[int, int], int] = {}


def _candidates(port_min: int, port_max: int) -> list[int]:
    """Even ports of the range, starting after the last one handed out (first time: at random).

    Walking the range instead of drawing at random means a port is not reused until the whole
    range has been: packets still in flight for an ended call cannot land in the next one.
    """
    ports = list(range(port_min + (port_min % 2), port_max, 2))
    if not ports:
        return []
    start = _cursor.get((port_min, port_max), random.randrange(len(ports)))
    return ports[start:] + ports[:start]


def bind_rtp_pair(
    address: str, port_min: int, port_max: int
) -> tuple[socket.socket, socket.socket]:
    """Bind an even RTP port and the next odd RTCP port (RFC 3550 §11) from the range.

    ``::`` binds both sockets dual stack (IPv4 peers reach them too).
    """
    family = family_of(address)
    for port in _candidates(port_min, port_max):
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            dual_stack_options(rtp, address)
            dual_stack_options(rtcp, address)
            rtp.bind((address, port))
            rtcp.bind((address, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setblocking(False)
        rtcp.setblocking(False)
        ports = range(port_min + (port_min % 2), port_max, 2)
        _cursor[(port_min, port_max)] = (ports.index(port) + 1) % len(ports)
        return rtp, rtcp
    raise PortRangeExhausted(f"no free RTP port pair in {port_min}-{port_max} on {address}")


class SendClock:
    """Records how late each packet went out against its scheduled time (for jitter figures).

    The figures are kept as packed doubles (8 bytes each, not a float object per packet)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.lateness: array[float] = array("d")
        self.limit = limit

    def record(self, scheduled: float, actual: float) -> None:
        if len(self.lateness) < self.limit:
            self.lateness.append(actual - scheduled)

    def percentiles(self) -> dict[str, float | None]:
        if not self.lateness:
            return {"p50_ms": None, "p99_ms": None, "max_ms": None}
        values = sorted(self.lateness)
        return {
            "p50_ms": round(percentile(values, 50) * 1000, 3),
            "p99_ms": round(percentile(values, 99) * 1000, 3),
            "max_ms": round(values[-1] * 1000, 3),
        }


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of sorted values, interpolated linearly between the two nearest
    ranks (numpy's default method); without numpy's quantile code, which loads numpy.ma."""
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class MediaChannel:
    """The sockets, the stream and the pump of one call."""

    def __init__(
        self,
        stream: MediaStream,
        sockets: tuple[socket.socket, socket.socket],
        *,
        on_digit: Callable[[DtmfDigit], None] | None = None,
        on_source_end: Callable[[], None] | None = None,
        on_keying: Callable[[KeyingEvent], None] | None = None,
        on_silence: Callable[[float], None] | None = None,
        silence_timeout: float = 0.0,
    ) -> None:
        self.stream = stream
        self.rtp, self.rtcp = sockets
        self.source: AudioSource = SilenceSource()
        self.sink: AudioSink = NullSink()
        self.on_digit = on_digit
        self.on_source_end = on_source_end
        self.on_keying = on_keying
        self.on_silence = on_silence  # called once when the peer stops sending media
        self.silence_timeout = silence_timeout  # seconds; 0 = never
        self._media_since = 0.0  # when the current offer/answer took effect
        self._silence_reported = False
        self.local: tuple[str, int] = self.rtp.getsockname()[:2]
        self._dual = is_dual_stack(self.local[0])  # IPv4 peers appear as ::ffff:a.b.c.d
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.clock = SendClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start = 0.0
        self._tick = 0
        self._media_clock: MediaClock | None = None
        self._rtp_reader = False  # the RTP socket has its own reader (keying under way)
        self._stamped = False  # datagrams carry kernel arrival times
        self._source_done = False
        self._format: tuple[int, int] | None = None  # (rate, frame) the source and sink were set to
        self.closed = False

    @property
    def local_port(self) -> int:
        return int(self.local[1])

    def set_remote(self, address: str, port: int, rtcp_port: int) -> None:
        """Where RTP and RTCP go (from the negotiated SDP)."""
        address = for_socket(address, self.rtp.family)
        self.remote = (address, port)
        self.remote_rtcp = (address, rtcp_port)
        if self._loop is not None:  # a re-INVITE (resume, new address): silence counts anew
            self._media_since = self._loop.time()

    def start(self) -> None:
        """Start reading and the paced sending; idempotent."""
        if self._loop is not None or self.closed:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stamped = enable_arrival_times(self.rtp) and enable_arrival_times(self.rtcp)
        loop.add_reader(self.rtcp.fileno(), self._readable, self.rtcp)
        self._update_rtp_reader()
        self._start = self._media_since = loop.time()
        if self.stream.keying is not None:
            self.stream.keying.start(self._start)
            self._drive_keying(self._start)
        self._media_clock = MediaClock.for_loop(loop)
        self._start = self._media_clock.add(self, self._start)  # the grid: a shared-clock slot

    def poll_keying(self) -> None:
        """Run the keying's pending work now (e.g. after the user confirmed the SAS)."""
        if self._loop is not None:
            self._drive_keying(self._loop.time())

    def _drive_keying(self, now: float) -> None:
        """Timers, datagrams and events of the media-path keying (ZRTP, DTLS-SRTP)."""
        if self.stream.keying is None:
            return
        events = self.stream.poll_keying(now)
        for datagram in self.stream.keying_datagrams():
            if self.remote is not None:
                self._sendto(self.rtp, datagram, self.remote)
        for event in events:
            if self.on_keying is not None:
                self.on_keying(event)

    def tick(self) -> float | None:
        """One packet time's work, run by the shared media clock; when the next one is due."""
        loop = self._loop
        if loop is None or self.closed:
            return None
        stream = self.stream
        ptime = stream.ptime / 1000
        scheduled = self._start + self._tick * ptime
        now = loop.time()
        if not self._rtp_reader:
            self._read(self.rtp, now)
        if stream.keying is not None:
            self._update_rtp_reader()
            self._drive_keying(now)
        if self._format is None or self._format != (stream.sample_rate, stream.samples):
            self._fit_audio()
        self._send_frame(scheduled, now)
        self.sink.write_frame(stream.playout(now))
        if stream.rtcp_due(now):
            self._send_rtcp(now)
        if not self._silence_reported and self.on_silence is not None:
            self._check_silence(now)
        self._tick += 1
        return self._start + self._tick * ptime

    def _fit_audio(self) -> None:
        """Give the source and sink the codec's rate and frame size when they change (the first
        tick, or a re-INVITE that changed the codec): each converts once, at most."""
        wanted = (self.stream.sample_rate, self.stream.samples)
        if wanted == self._format:
            return
        self._format = wanted
        self.source = fit_source(self.source, *wanted)
        self.sink = fit_sink(self.sink, *wanted)

    def _check_silence(self, now: float) -> None:
        if self._silence_reported or self.on_silence is None:
            return
        if self.stream.silent(now, self._media_since, self.silence_timeout):
            self._silence_reported = True
            self.on_silence(self.silence_timeout)

    def _send_frame(self, scheduled: float, now: float) -> None:
        frame = None if self._source_done else self.source.read_frame()
        if frame is None:
            frame = np.zeros(self.stream.samples, dtype=np.int16)
            if not self._source_done:
                self._source_done = True
                if self.on_source_end is not None:
                    self.on_source_end()
        packet = self.stream.next_packet(frame)
        remote = self.remote
        if packet is None or remote is None:
            return
        try:
            self.rtp.sendto(packet, remote)
        except OSError as exc:
            log.debug("RTP send to %s failed: %s", remote, exc)
        clock = self.clock
        if len(clock.lateness) < clock.limit:
            clock.lateness.append(now - scheduled)

    def _send_rtcp(self, now: float, bye: bool = False) -> None:
        """RTCP to the peer's RTCP port, or from the RTP socket to its RTP port when multiplexed
        (RFC 5761 §4: the RTP and RTCP of a muxed session share one 5-tuple)."""
        data = self.stream.rtcp_packet(now, time.time(), bye=bye)
        if self.remote_rtcp is None:
            return
        media = self.stream.negotiated
        sock = self.rtp if media is not None and media.rtcp_mux else self.rtcp
        try:
            sock.sendto(data, self.remote_rtcp)
        except OSError as exc:
            log.debug("RTCP send failed: %s", exc)

    def _keying_under_way(self) -> bool:
        return self.stream.keying is not None and self.stream.srtp is None

    def _update_rtp_reader(self) -> None:
        """Own reader for the RTP socket while a path keying runs; else reads in the tick."""
        loop = self._loop
        want = self._keying_under_way()
        if loop is None or want == self._rtp_reader:
            return
        if want:
            loop.add_reader(self.rtp.fileno(), self._readable, self.rtp)
        else:
            loop.remove_reader(self.rtp.fileno())
        self._rtp_reader = want

    def _readable(self, sock: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        self._read(sock, now)
        self._drive_keying(now)

    def _read(self, sock: socket.socket, now: float) -> None:
        """Every waiting datagram (up to READ_BATCH) into the stream, then symmetric latching."""
        receive, on_digit, stamped = self.stream.receive, self.on_digit, self._stamped
        offset = time.time() - now if stamped else 0.0
        for _ in range(READ_BATCH):
            try:
                if stamped:
                    data, ancillary, _flags, source = sock.recvmsg(RTP_READ_SIZE, _ANCILLARY_SIZE)
                    if len(ancillary) == 1:  # the usual: one stamp, read here without a call
                        level, kind, stamp = ancillary[0]
                        if level == _SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= 16:
                            seconds, nanoseconds = _TIMESPEC.unpack_from(stamp)
                            arrival = min(now, seconds + nanoseconds * 1e-9 - offset)
                        else:
                            arrival = now
                    else:
                        arrival = arrival_time(ancillary, offset, now)
                else:
                    data, source = sock.recvfrom(RTP_READ_SIZE)
                    arrival = now
            except OSError:  # nothing more to read (or an ICMP error reported on the socket)
                break
            host = unmap(source[0]) if self._dual else source[0]
            digits = receive(data, (host, source[1]), arrival)
            if digits and on_digit is not None:
                for digit in digits:
                    on_digit(digit)
        latched = self.stream.latched
        if latched is not None and self._dual:
            latched = (for_socket(latched[0], self.rtp.family), latched[1])
        if latched is not None and latched != self.remote:
            log.info("media from %s: sending there from now on (symmetric RTP)", latched)
            self.remote = latched
            if self.stream.negotiated is not None and self.stream.negotiated.rtcp_mux:
                self.remote_rtcp = latched

    def _sendto(self, sock: socket.socket, data: bytes, address: tuple[str, int]) -> None:
        try:
            sock.sendto(data, address)
        except OSError as exc:
            log.debug("send to %s failed: %s", address, exc)

    def close(self) -> None:
        """Say BYE in RTCP, stop the pump, close sockets, source and sink."""
        if self.closed:
            return
        self.closed = True
        if self.stream.keying is not None:
            self.stream.keying.close()
            if self._loop is not None:
                self._drive_keying(self._loop.time())
        if self._loop is not None:
            if self.remote_rtcp is not None:
                self._send_rtcp(self._loop.time(), bye=True)
            if self._media_clock is not None:
                self._media_clock.remove(self)
            if self._rtp_reader:
                self._loop.remove_reader(self.rtp.fileno())
            self._loop.remove_reader(self.rtcp.fileno())
        self.rtp.close()
        self.rtcp.close()
        self.source.close()
        self.sink.close()
