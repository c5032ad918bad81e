"""One audio stream of a call, sans-I/O: RTP out and in, jitter buffer, DTMF, RTCP (RFC 3550, RFC 4733).

The shell calls ``next_packet(pcm)`` and ``playout(now)`` once per packet time from one media clock,
``receive(data, source, now)`` for every datagram with the (host, port) it came from, and
``rtcp_packet(now, wallclock)`` when ``rtcp_due(now)``.

Who may send us media: plain RTP and RTCP (and so RFC 4733 digits) only from the negotiated
remote address; a packet from elsewhere is counted (``foreign_source``) and dropped
(``foreign_dropped``) — a stranger cannot inject audio or digits. SRTP packets that authenticate
are genuine whatever their source. With ``symmetric_rtp`` (NAT, RFC 4961) the stream latches onto
the source of accepted media (``latched``: where the shell should send from then on), but plain
RTP only then, and SRTP only after a packet authenticated. With SRTP mandatory, unauthenticated or
plain packets are dropped whatever their source.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import secrets
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from securephone.errors import MediaParseError
from securephone.media import rtcp
from securephone.media.codecs.base import AudioCodec, FrameEncoder
from securephone.media.codecs.catalog import bandwidth_label, negotiated_codec
from securephone.media.codecs.dtmf import DtmfDigit, DtmfPacket, DtmfReceiver, dtmf_packets
from securephone.media.demux import PacketKind, classify
from securephone.media.jitterbuffer import Frame, JitterBuffer
from securephone.media.keying import KeyingEvent, KeysAgreed, PathKeying
from securephone.media.playout import Playout
from securephone.media.rtp import RtpPacket, RtpReceiverStats, is_rtcp, pack_audio
from securephone.media.srtp import SrtpContext
from securephone.sdp.offer_answer import NegotiatedMedia

log = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]
Address = tuple[str, int]
MAX_DIGITS_KEPT = 256  # received DTMF digits a call keeps (the newest); all are counted
RTCP_BANDWIDTH = 64000 / 8 * 0.05  # 5 % of a 64 kbit/s stream, in octets per second


@dataclass
class StreamCounters:
    """What the stream did; everything a user sees of the media."""

    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    malformed: int = 0
    unknown_payload: int = 0
    dtmf_sent: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    foreign_source: int = 0  # packets from an address other than the negotiated remote
    foreign_dropped: int = 0  # of those, dropped (plain media from a stranger)
    not_media: int = 0  # STUN messages on the media port (RFC 7983 first byte 0..3): dropped
    remote_fraction_lost: float | None = None
    remote_jitter_ms: float | None = None
    round_trip_ms: float | None = None


class MediaStream:
    """RTP for one negotiated audio stream (one SSRC out, one source in)."""

    def __init__(
        self, cname: str, *, jitter_depth: int = 3, rng: random.Random | None = None
    ) -> None:
        self.ssrc = secrets.randbits(32)
        self.cname = cname
        self.rng = rng or random.Random()
        self.counters = StreamCounters()
        self.negotiated: NegotiatedMedia | None = None
        self.codec: AudioCodec | None = None
        self.samples = 160  # PCM samples per frame at the codec's sampling rate
        self.sample_rate = 8000  # the codec's audio rate: what sources give and sinks take
        self.timestamp_step = 160  # RTP timestamp units per frame (the codec's RTP clock)
        self.ptime = 20  # ms of audio per packet we send (the media clock's tick)
        self._encoder: FrameEncoder | None = None
        self._playout: Playout | None = None
        self._seq = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._buffer = JitterBuffer(depth_frames=jitter_depth)
        self._stats: RtpReceiverStats | None = None
        self._dtmf_in = DtmfReceiver()
        self._dtmf_slots: deque[int] = deque(maxlen=64)  # sequence numbers that carried events
        self._dtmf_queue: deque[str] = deque()
        self._dtmf_plan: list[DtmfPacket] = []
        self._dtmf_elapsed = 0
        self._dtmf_gap = 0
        self._sent_since_report = False
        self._next_rtcp: float | None = None
        self._last_sr: tuple[int, float] | None = None  # middle 32 bits of its NTP time, arrival
        self._avg_rtcp = 100.0
        # the newest received digits (a peer sending events for hours must not grow the call)
        self.digits: deque[DtmfDigit] = deque(maxlen=MAX_DIGITS_KEPT)
        self.digits_received = 0  # every digit received, kept or not
        self.srtp: SrtpContext | None = None
        self.require_srtp = False  # mandatory mode: nothing goes out or comes in without SRTP
        self.symmetric_rtp = (
            False  # latch onto where accepted media comes from (NAT); off by default
        )
        self.latched: Address | None = None  # the address media now comes from, when latched
        self.keying: PathKeying | None = None  # ZRTP or DTLS-SRTP on this port, when negotiated
        self._keying_events: list[KeyingEvent] = []  # taken from the keying, not yet polled
        self.keying_dropped = 0  # ZRTP/DTLS datagrams that arrived with no such keying
        self._key_export = False
        self._peer_authenticated = False
        self.plain_dropped = 0
        self.dropped_before_keys = 0
        self.last_source: Address | None = None  # where the last accepted packet came from
        self.last_heard: float | None = None  # when the peer's media (or keying) last reached us

    # -- configuration -------------------------------------------------------------------------
    def configure(self, negotiated: NegotiatedMedia) -> None:
        """(Re)configure after an offer/answer exchange.

        Frames are ``codec.frame_samples(ptime)`` PCM samples at the codec's audio rate and
        advance the RTP timestamp by ``codec.timestamp_units(ptime)`` (320 samples but 160
        units for 20 ms of G.722, RFC 3551 §4.5.2). A re-INVITE that keeps the codec and its
        parameters (a new payload type number, hold, resume) keeps the encoder and decoder
        state of both directions; another codec gets fresh ones.
        """
        codec = negotiated_codec(
            negotiated.codec, negotiated.local_fmtp, negotiated.fmtp, negotiated.ptime
        )
        ptime = getattr(codec, "ptime", negotiated.ptime)
        self.negotiated = negotiated
        self.ptime = ptime
        self.samples = codec.frame_samples(ptime)
        self.sample_rate = codec.sample_rate
        self.timestamp_step = codec.timestamp_units(ptime)
        self._buffer.samples_per_frame = self.timestamp_step
        if codec != self.codec or self._encoder is None or self._playout is None:
            self.codec = codec
            self._encoder = codec.new_encoder()
            self._playout = Playout(codec.new_decoder(), self.samples)

    @property
    def codec_label(self) -> str | None:
        """The codec and its audio bandwidth for people, e.g. ``G722 (wideband, 16 kHz)``."""
        return bandwidth_label(self.codec) if self.codec is not None else None

    def set_srtp(self, context: SrtpContext | None, required: bool) -> None:
        """Key the stream (a new context after every offer/answer that carried keys)."""
        self.srtp, self.require_srtp = context, required

    def set_keying(
        self, keying: PathKeying, *, required: bool, allow_key_export: bool = False
    ) -> None:
        """Key the stream in the media path (ZRTP, DTLS-SRTP); the same keying again is kept.

        Until it agrees keys there is no SRTP context, so with ``required`` no RTP goes out and
        none is accepted.
        """
        if keying is self.keying:
            self.require_srtp = required
            return
        if self.keying is not None:
            self.keying.close()
        self.keying, self.srtp, self.require_srtp = keying, None, required
        self._key_export, self._peer_authenticated = allow_key_export, False

    def poll_keying(self, now: float) -> list[KeyingEvent]:
        """Run the path keying's timer when due and take its events; agreed keys key the stream."""
        keying = self.keying
        if keying is None:
            return []
        due = keying.get_timer()
        if due is not None and now >= due:
            keying.handle_timer(now)
        self._take_keying_events(keying)
        events, self._keying_events = self._keying_events, []
        return events

    def _take_keying_events(self, keying: PathKeying) -> None:
        """Install agreed keys at once: the peer's first SRTP packet may be the very next datagram
        of the same read (linphone sends SRTP right behind its Conf2ACK, RFC 6189 §4.6)."""
        while (event := keying.next_event()) is not None:
            if isinstance(event, KeysAgreed):
                self.srtp = SrtpContext(
                    event.suite,
                    event.local_key,
                    event.remote_key,
                    allow_key_export=self._key_export,
                )
            self._keying_events.append(event)

    def keying_datagrams(self) -> list[bytes]:
        """What the path keying wants sent to the peer's media address."""
        return self.keying.datagrams_to_send() if self.keying is not None else []

    @property
    def sending(self) -> bool:
        if self.require_srtp and self.srtp is None:
            return False  # never a plain packet when SRTP is mandatory
        return self.negotiated is not None and self.negotiated.can_send

    # -- sending -------------------------------------------------------------------------------
    def send_dtmf(self, digits: str) -> None:
        """Queue digits to send as RFC 4733 events (ValueError for anything but 0-9 * # A-D)."""
        for digit in digits.upper():
            if digit not in "0123456789*#ABCD":
                raise ValueError(f"not a DTMF digit: {digit!r}")
            self._dtmf_queue.append(digit)

    def next_packet(self, pcm: Pcm) -> bytes | None:
        """The RTP packet for this packet time, or None (on hold, or between DTMF packets).

        The media clock advances by one frame per call whatever is sent (RFC 3550 §5.1).
        """
        timestamp = self._timestamp
        self._timestamp = (self._timestamp + self.timestamp_step) & 0xFFFFFFFF
        if not self.sending or self._encoder is None:
            return None
        if self._dtmf_plan or self._dtmf_queue or self._dtmf_gap:  # a key press under way
            dtmf = self._dtmf_step(timestamp)
            if dtmf is not None:
                return self._emit(dtmf) if dtmf.payload else None
        payload = self._encoder.encode(pcm)
        counters = self.counters
        first = counters.packets_sent == 0  # the first packet starts a talkspurt (RFC 3551 §4.1)
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        counters.packets_sent += 1
        counters.bytes_sent += len(payload)
        self._sent_since_report = True
        srtp = self.srtp
        if srtp is not None:  # header and payload straight into libsrtp's buffer
            return srtp.protect_audio(self.codec_pt, first, seq, timestamp, self.ssrc, payload)
        return pack_audio(self.codec_pt, first, seq, timestamp, self.ssrc, payload)

    @property
    def codec_pt(self) -> int:
        assert self.negotiated is not None
        return self.negotiated.payload_type

    def _emit(self, packet: RtpPacket) -> bytes:
        packet.sequence_number = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        self.counters.packets_sent += 1
        self.counters.bytes_sent += len(packet.payload)
        self._sent_since_report = True
        return self.srtp.protect(bytes(packet)) if self.srtp is not None else bytes(packet)

    def _dtmf_step(self, timestamp: int) -> RtpPacket | None:
        """During a key press: the due telephone-event packet, or an empty packet to send nothing."""
        assert self.negotiated is not None
        pt = self.negotiated.telephone_event_pt
        if pt is None:
            self._dtmf_queue.clear()
            return None
        if not self._dtmf_plan:
            if self._dtmf_gap > 0:
                self._dtmf_gap -= 1
                return None
            if not self._dtmf_queue:
                return None
            digit = self._dtmf_queue.popleft()
            clock = self.negotiated.clock_rate  # events share the stream's timestamps
            self._dtmf_plan = list(
                dtmf_packets(digit, timestamp, duration_ms=120, clock_rate=clock)
            )
            self._dtmf_elapsed = 0
            self.counters.dtmf_sent += 1
        return self._dtmf_due(pt)

    def _dtmf_due(self, pt: int) -> RtpPacket:
        ms = self._dtmf_elapsed
        assert self.negotiated is not None
        self._dtmf_elapsed += self.timestamp_step * 1000 // self.negotiated.clock_rate
        if self._dtmf_plan[0].offset_ms > ms:
            return RtpPacket(pt, 0, 0, self.ssrc, b"")  # nothing due in this packet time
        step = self._dtmf_plan.pop(0)
        if not self._dtmf_plan:
            self._dtmf_gap = 4  # 80 ms of audio between key presses
        return step.to_rtp(pt, self.ssrc, 0)

    # -- receiving -----------------------------------------------------------------------------
    def receive(self, data: bytes, source: Address, now: float) -> list[DtmfDigit]:
        """One datagram from the RTP (or muxed RTCP) port and the (host, port) it came from.

        Returns the DTMF digits it completed (RFC 4733 §2.5.2).
        """
        kind = classify(data)
        if kind in (PacketKind.ZRTP, PacketKind.DTLS):
            if self.keying is None:
                self.keying_dropped += 1
            elif self._from_peer(source):
                self.keying.receive(data, source, now)
                self.last_heard = now
                self._take_keying_events(self.keying)
            elif self.symmetric_rtp:  # the peer may be behind a NAT: its keying judges it
                self.counters.foreign_source += 1
                self.keying.receive(data, source, now)
                self._take_keying_events(self.keying)
            else:  # like plain RTP: only the negotiated address may take part in the handshake
                self.counters.foreign_source += 1
                self.counters.foreign_dropped += 1
            return []
        if kind is PacketKind.STUN:  # e.g. linphone's connectivity checks on the RTP port
            self.counters.not_media += 1
            return []
        if is_rtcp(data):
            self.receive_rtcp(data, source, now)
            return []
        clear = self._unprotect(data, rtcp=False)
        if clear is None:
            return []
        if self.keying is not None and self.srtp is not None and not self._peer_authenticated:
            self._peer_authenticated = True
            self.keying.srtp_authenticated()
        try:
            packet = RtpPacket.parse(clear)
        except MediaParseError:
            self.counters.malformed += 1
            return []
        if self.negotiated is None or not self._accept_source(source, rtcp=False):
            return []
        return self._receive_packet(packet, self.negotiated, now)

    def _negotiated_source(self, source: Address, rtcp: bool = False) -> bool:
        """From the address and port the SDP gave for RTP (or for RTCP when not muxed)."""
        media = self.negotiated
        if media is None:
            return False
        port = media.remote_rtcp_port if rtcp and not media.rtcp_mux else media.remote_port
        return source[1] == port and _same_host(source[0], media.remote_address)

    def _from_peer(self, source: Address) -> bool:
        """From the negotiated RTP address, or from where accepted media last came (not counted
        as foreign either way: the path keying judges its own packets)."""
        if self._negotiated_source(source):
            return True
        return self.last_source is not None and (source[0], source[1]) == self.last_source

    def _accept_source(self, source: Address, rtcp: bool) -> bool:
        """May a packet from ``source`` be used? Records it; counts and drops a stranger's."""
        if self.negotiated is None:
            return False
        if not self._negotiated_source(source, rtcp):
            self.counters.foreign_source += 1
            if self.srtp is None and not self.symmetric_rtp:
                self.counters.foreign_dropped += 1
                return False  # plain media only from the negotiated address
            if self.symmetric_rtp and not rtcp:
                self.latched = (source[0], source[1])  # authenticated, or latching allowed
        elif self.latched is not None and not rtcp:
            # accepted media from the negotiated address again: back to it (a stranger's packet
            # that latched plain RTP elsewhere must not keep the media there for the whole call)
            self.latched = (source[0], source[1])
        self.last_source = (source[0], source[1])
        return True

    def silent(self, now: float, since: float, timeout: float) -> bool:
        """True when the peer, who should be sending, sent nothing we accepted for ``timeout`` s
        (counted from ``since`` when it never did). A peer that holds us is not expected to send."""
        media = self.negotiated
        if timeout <= 0 or media is None or not media.can_receive:
            return False
        last = self.last_heard if self.last_heard is not None else since
        return now - max(last, since) >= timeout

    def _unprotect(self, data: bytes, rtcp: bool) -> bytes | None:
        """SRTP/SRTCP check and decrypt; a failing packet is dropped (and counted by the context)."""
        if self.srtp is not None:
            return self.srtp.unprotect_rtcp(data) if rtcp else self.srtp.unprotect(data)
        if self.require_srtp:
            if self.keying is not None:
                self.dropped_before_keys += 1  # (S)RTP before the media-path keying finished
            else:
                self.plain_dropped += 1
            return None
        return data

    def _receive_packet(
        self, packet: RtpPacket, media: NegotiatedMedia, now: float
    ) -> list[DtmfDigit]:
        self.counters.packets_received += 1
        self.counters.bytes_received += len(packet.payload)
        self.last_heard = now
        if self._stats is None or self._stats.ssrc != packet.ssrc:
            self._stats = RtpReceiverStats(media.clock_rate, packet.ssrc)
        self._stats.update(packet, now)
        if packet.payload_type == media.telephone_event_pt:
            self._dtmf_slots.append(packet.sequence_number)
            return self._dtmf(packet)
        if packet.payload_type != media.receive_payload_type:
            self.counters.unknown_payload += 1
            return []
        self._buffer.put(packet, now)
        return []

    def _dtmf(self, packet: RtpPacket) -> list[DtmfDigit]:
        try:
            digits = self._dtmf_in.receive(packet)
        except MediaParseError:
            self.counters.malformed += 1
            return []
        self.digits.extend(digits)
        self.digits_received += len(digits)
        return digits

    def playout(self, now: float) -> Pcm:
        """The decoded (or concealed) frame for this packet time, at the codec's audio rate."""
        frame = self._buffer.get(now)
        if self._playout is None:
            return np.zeros(self.samples, dtype=np.int16)
        if frame.concealed and frame.sequence_number in self._dtmf_slots:
            frame = Frame(None)  # the sender sent an RFC 4733 event there, not audio: silence
        upcoming = self._buffer.upcoming() if frame.concealed else None
        payload = upcoming.payload if upcoming is not None else None
        return self._playout.to_pcm(frame, payload)

    # -- RTCP (RFC 3550 §6) --------------------------------------------------------------------
    def rtcp_due(self, now: float) -> bool:
        if self._next_rtcp is None:
            self._next_rtcp = now + self._interval(initial=True)
        return now >= self._next_rtcp

    def _interval(self, initial: bool) -> float:
        senders = 2 if self._sent_since_report else 1
        return rtcp.rtcp_interval(
            2,
            senders,
            RTCP_BANDWIDTH,
            self._sent_since_report,
            self._avg_rtcp,
            initial,
            self.rng.random,
        )

    def rtcp_packet(self, now: float, wallclock: float, bye: bool = False) -> bytes:
        """A compound SR or RR + SDES CNAME (+ BYE) packet; schedules the next one."""
        blocks = self._report_blocks(now)
        first: rtcp.SenderReport | rtcp.ReceiverReport
        if self._sent_since_report:
            first = rtcp.SenderReport(
                self.ssrc,
                rtcp.ntp_from_unix(wallclock),
                self._timestamp,
                self.counters.packets_sent & 0xFFFFFFFF,
                self.counters.bytes_sent & 0xFFFFFFFF,
                blocks,
            )
        else:
            first = rtcp.ReceiverReport(self.ssrc, blocks)
        packets: list[rtcp.RtcpPacket] = [
            first,
            rtcp.SourceDescription([rtcp.SdesChunk.with_cname(self.ssrc, self.cname)]),
        ]
        if bye:
            packets.append(rtcp.Bye([self.ssrc]))
        data = rtcp.serialize_compound(packets)
        if self.srtp is not None:
            data = self.srtp.protect_rtcp(data)
        self._avg_rtcp = rtcp.update_avg_rtcp_size(self._avg_rtcp, len(data) + 28)
        self._next_rtcp = now + self._interval(initial=False)
        self._sent_since_report = False
        self.counters.rtcp_sent += 1
        return data

    def _report_blocks(self, now: float) -> list[rtcp.ReportBlock]:
        if self._stats is None or not self._stats.valid:
            return []
        lsr, dlsr = 0, 0
        if self._last_sr is not None:
            lsr = self._last_sr[0]
            dlsr = rtcp.ntp_short_from_seconds(now - self._last_sr[1])
        return [rtcp.report_block_from_stats(self._stats, lsr, dlsr)]

    def receive_rtcp(self, data: bytes, source: Address, now: float) -> None:
        """Read the peer's reports (RFC 3550 §6.4): its view of our stream and the round-trip time."""
        clear = self._unprotect(data, rtcp=True)
        if clear is None:
            return
        try:
            packets = rtcp.parse_compound(clear)
        except MediaParseError:
            self.counters.malformed += 1
            return
        if not self._accept_source(source, rtcp=True):
            return
        self.counters.rtcp_received += 1
        self.last_heard = now
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport):
                self._last_sr = (rtcp.ntp_middle32(packet.ntp_timestamp), now)
            if isinstance(packet, rtcp.SenderReport | rtcp.ReceiverReport):
                self._read_blocks(packet.reports, now)

    def _read_blocks(self, blocks: list[rtcp.ReportBlock], now: float) -> None:
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue
            self.counters.remote_fraction_lost = block.fraction_lost / 256
            if self.negotiated is not None:
                self.counters.remote_jitter_ms = block.jitter * 1000 / self.negotiated.clock_rate

    # -- figures -------------------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        """Counters for summaries: sent/received, loss, jitter, buffer figures."""
        c = self.counters
        received = self._stats
        jitter_ms = None
        lost = 0
        if received is not None and self.negotiated is not None:
            jitter_ms = round(received.jitter * 1000 / self.negotiated.clock_rate, 3)
            lost = max(0, received.lost)
        buffer = self._buffer.stats
        return {
            "packets_sent": c.packets_sent,
            "bytes_sent": c.bytes_sent,
            "packets_received": c.packets_received,
            "bytes_received": c.bytes_received,
            "packets_lost": lost,
            "jitter_ms": jitter_ms,
            "late": buffer.late,
            "concealed": buffer.concealed,
            "duplicates": buffer.duplicates,
            "codec": self.codec_label,
            **self._playout_stats(),
            "malformed": c.malformed,
            "dtmf_sent": c.dtmf_sent,
            "dtmf_received": "".join(d.digit for d in self.digits),
            "dtmf_received_count": self.digits_received,
            "rtcp_sent": c.rtcp_sent,
            "rtcp_received": c.rtcp_received,
            "remote_fraction_lost": c.remote_fraction_lost,
            "remote_jitter_ms": c.remote_jitter_ms,
            "foreign_source": c.foreign_source,
            "foreign_dropped": c.foreign_dropped,
            "not_media": c.not_media,
            "last_source": _format_address(self.last_source),
            **self._srtp_stats(),
        }

    def _playout_stats(self) -> dict[str, int]:
        figures = self._playout.stats if self._playout is not None else None
        if figures is None:
            return {"fec_recovered": 0, "plc": 0, "decode_errors": 0}
        return {
            "fec_recovered": figures.fec_recovered,
            "plc": figures.plc,
            "decode_errors": figures.decode_errors,
        }

    def _srtp_stats(self) -> dict[str, object]:
        srtp = self.srtp
        keying = self.keying.summary() if self.keying is not None else None
        if srtp is None:
            return {
                "encryption": "none",
                "srtp": None,
                "plain_dropped": self.plain_dropped,
                "dropped_before_keys": self.dropped_before_keys,
                "path_keying": keying,
            }
        figures = srtp.stats()
        return {
            "encryption": "srtp",
            "srtp": {
                "suite": figures["suite"],
                "packets_protected": figures["protected"],
                "packets_unprotected": figures["unprotected"],
                "auth_failures": figures["auth_failures"],
                "rtcp_auth_failures": figures["rtcp_auth_failures"],
                "replay_failures": figures["replay_failures"],
            },
            "plain_dropped": self.plain_dropped,
            "dropped_before_keys": self.dropped_before_keys,
            "path_keying": keying,
        }


def _same_host(a: str, b: str) -> bool:
    """True when two address literals name the same IP (``::1`` and ``0::1`` do); else equal text."""
    if a == b:  # the usual case, every packet: no address parsing
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _format_address(address: Address | None) -> str | None:
    """``host:port``, with brackets around an IPv6 host (RFC 3986 §3.2.2)."""
    if address is None:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
