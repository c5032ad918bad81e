"""RTP sockets and the audio pump: the asyncio side of one call's media.

Each call keeps its own send grid: packet n is due at ``start + n * ptime``, so the schedule
never drifts however late one tick runs. The ticks of every call on the loop come from one
shared :class:`~securephone.aio.mediaclock.MediaClock` (one timer, not one per call). Reads
are small (≤ 2 KiB) and batched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable

import numpy as np

from securephone.aio.mediaclock import MediaClock
from securephone.audio.adapt import fit_sink, fit_source
from securephone.audio.sinks import AudioSink, NullSink
from securephone.audio.sources import AudioSource, SilenceSource
from securephone.media.codecs.dtmf import DtmfDigit
from securephone.media.keying import KeyingEvent
from securephone.media.session import MediaStream

log = logging.getLogger(__name__)

RTP_READ_SIZE = 2048
READ_BATCH = 32


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
    """Bind an even RTP port and the next odd RTCP port (RFC 3550 §11) from the range."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for port in _candidates(port_min, port_max):
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
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
    """Records how late each packet went out against its scheduled time (for jitter figures)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.lateness: list[float] = []
        self.limit = limit

    def record(self, scheduled: float, actual: float) -> None:
        if len(self.lateness) < self.limit:
            self.lateness.append(actual - scheduled)

    def percentiles(self) -> dict[str, float | None]:
        if not self.lateness:
            return {"p50_ms": None, "p99_ms": None, "max_ms": None}
        values = np.asarray(self.lateness) * 1000
        return {
            "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3),
            "max_ms": round(float(values.max()), 3),
        }


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
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.clock = SendClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start = 0.0
        self._tick = 0
        self._media_clock: MediaClock | None = None
        self._source_done = False
        self._format: tuple[int, int] | None = None  # (rate, frame) the source and sink were set to
        self.closed = False

    @property
    def local_port(self) -> int:
        return int(self.local[1])

    def set_remote(self, address: str, port: int, rtcp_port: int) -> None:
        """Where RTP and RTCP go (from the negotiated SDP)."""
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
        loop.add_reader(self.rtp.fileno(), self._readable, self.rtp)
        loop.add_reader(self.rtcp.fileno(), self._readable, self.rtcp)
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

    def _ptime(self) -> float:
        return self.stream.ptime / 1000

    def tick(self) -> float | None:
        """One packet time's work, run by the shared media clock; when the next one is due."""
        loop = self._loop
        if loop is None or self.closed:
            return None
        scheduled = self._start + self._tick * self._ptime()
        now = loop.time()
        self._drive_keying(now)
        self._fit_audio()
        self._send_frame(scheduled, now)
        self.sink.write_frame(self.stream.playout(now))
        if self.stream.rtcp_due(now):
            self._send_rtcp(now)
        self._check_silence(now)
        self._tick += 1
        return self._start + self._tick * self._ptime()

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
        if packet is None or self.remote is None:
            return
        try:
            self.rtp.sendto(packet, self.remote)
        except OSError as exc:
            log.debug("RTP send to %s failed: %s", self.remote, exc)
        self.clock.record(scheduled, now)

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

    def _readable(self, sock: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        for _ in range(READ_BATCH):
            try:
                data, source = sock.recvfrom(RTP_READ_SIZE)
            except OSError:  # nothing more to read (or an ICMP error reported on the socket)
                break
            for digit in self.stream.receive(data, source[:2], loop.time()):
                if self.on_digit is not None:
                    self.on_digit(digit)
        latched = self.stream.latched
        if latched is not None and latched != self.remote:
            log.info("media from %s: sending there from now on (symmetric RTP)", latched)
            self.remote = latched
            if self.stream.negotiated is not None and self.stream.negotiated.rtcp_mux:
                self.remote_rtcp = latched
        self._drive_keying(loop.time())

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
            self._loop.remove_reader(self.rtp.fileno())
            self._loop.remove_reader(self.rtcp.fileno())
        self.rtp.close()
        self.rtcp.close()
        self.source.close()
        self.sink.close()
