"""MediaChannel reads RTP in the shared clock's tick, with each datagram's kernel arrival time.

No per-socket reader for RTP once media flows (the event loop is not woken per packet); a
reader while a media-path keying (ZRTP, DTLS-SRTP) has not agreed keys; arrival times from
``SO_TIMESTAMPNS`` where the platform has it.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import sys

import numpy as np
import pytest

from securephone.aio.media import (
    SO_TIMESTAMPNS,
    MediaChannel,
    arrival_time,
    bind_rtp_pair,
    enable_arrival_times,
)
from securephone.media.keying import KeyingEvent, KeyingMethod
from securephone.media.session import MediaStream
from securephone.sdp.offer_answer import NegotiatedMedia
from tests.helpers import await_until

LINUX = sys.platform == "linux"


def test_arrival_time_converts_the_stamp_to_the_loop_clock() -> None:
    stamp = struct.pack("@qq", 1000, 250_000_000)
    ancillary = [(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp)]
    assert arrival_time(ancillary, offset=990.0, now=20.0) == pytest.approx(10.25)
    assert arrival_time(ancillary, offset=990.0, now=5.0) == 5.0  # never after the read
    assert arrival_time([], offset=990.0, now=20.0) == 20.0  # no stamp: the read's time


@pytest.mark.skipif(not LINUX, reason="SO_TIMESTAMPNS is Linux's")
def test_the_kernel_stamps_each_datagram() -> None:
    rtp, rtcp = bind_rtp_pair("127.0.0.1", 46300, 46320)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert enable_arrival_times(rtp)
        sender.sendto(b"\x80" * 20, rtp.getsockname())
        rtp.setblocking(True)
        rtp.settimeout(5)
        data, ancillary, _, _ = rtp.recvmsg(2048, socket.CMSG_SPACE(16))
        assert data == b"\x80" * 20
        assert [(level, kind) for level, kind, _ in ancillary] == [
            (socket.SOL_SOCKET, SO_TIMESTAMPNS)
        ]
    finally:
        for sock in (rtp, rtcp, sender):
            sock.close()


def _negotiated(peer: tuple[str, int]) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address=peer[0],
        remote_port=peer[1],
        remote_rtcp_port=peer[1] + 1,
        codec="PCMU",
        payload_type=0,
        clock_rate=8000,
        telephone_event_pt=None,
        ptime=20,
        local_direction="sendrecv",
        remote_direction="sendrecv",
        proto="RTP/AVP",
    )


class Peer:
    """A second stream on a plain socket: sends PCMU packets to the channel."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.stream = MediaStream("peer@127.0.0.1", rng=random.Random(3))

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]  # type: ignore[no-any-return]

    def send(self, to: tuple[str, int], count: int) -> None:
        self.stream.configure(_negotiated(to))
        for _ in range(count):
            packet = self.stream.next_packet(np.zeros(160, dtype=np.int16))
            assert packet is not None
            self.sock.sendto(packet, to)


class PendingKeying:
    """A path keying that never agrees keys (records what reaches it)."""

    method = KeyingMethod.ZRTP

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def start(self, now: float) -> None:
        pass

    def receive(self, datagram: bytes, source: tuple[str, int], now: float) -> None:
        self.received.append(datagram)

    def datagrams_to_send(self) -> list[bytes]:
        return []

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def next_event(self) -> KeyingEvent | None:
        return None

    def srtp_authenticated(self) -> None:
        pass

    def summary(self) -> dict[str, object]:
        return {}

    def close(self) -> None:
        pass


async def test_rtp_is_read_in_the_tick_without_a_reader_of_its_own() -> None:
    loop = asyncio.get_running_loop()
    peer = Peer()
    stream = MediaStream("me@127.0.0.1", rng=random.Random(4))
    stream.configure(_negotiated(peer.address))
    channel = MediaChannel(stream, bind_rtp_pair("127.0.0.1", 46400, 46420))
    try:
        channel.set_remote(*peer.address, peer.address[1] + 1)
        channel.start()
        sent_at = loop.time()
        peer.send(channel.local, 5)
        await await_until(lambda: stream.counters.packets_received == 5, timeout=10)
        assert stream.last_heard is not None and stream.last_heard <= loop.time()
        if LINUX:  # the kernel's arrival time, not the time of the tick that read it
            assert stream.last_heard >= sent_at - 0.5
        assert not loop.remove_reader(channel.rtp.fileno())  # no per-socket RTP reader
    finally:
        channel.close()
        peer.sock.close()


async def test_rtp_has_its_own_reader_while_a_path_keying_runs() -> None:
    loop = asyncio.get_running_loop()
    peer = Peer()
    stream = MediaStream("me@127.0.0.1", rng=random.Random(5))
    stream.configure(_negotiated(peer.address))
    keying = PendingKeying()
    stream.set_keying(keying, required=True)
    channel = MediaChannel(stream, bind_rtp_pair("127.0.0.1", 46500, 46520))
    try:
        channel.start()
        peer.sock.sendto(b"\x10" + bytes(27), channel.local)  # a ZRTP-looking datagram
        await await_until(lambda: keying.received, timeout=10)
        assert loop.remove_reader(channel.rtp.fileno())  # it had a reader of its own
    finally:
        channel.close()
        peer.sock.close()


def test_send_lateness_percentiles_are_numpys_linear_ones() -> None:
    """The call summary's lateness figures: numpy's default percentile, computed without it."""
    from securephone.aio.media import SendClock

    rng = random.Random(7)
    for count in (1, 2, 3, 10, 101, 5000):
        clock = SendClock()
        lateness = [rng.expovariate(500) for _ in range(count)]
        for late in lateness:
            clock.record(100.0, 100.0 + late)
        figures = clock.percentiles()
        recorded = [100.0 + late - 100.0 for late in lateness]
        assert figures["p50_ms"] == round(float(np.percentile(recorded, 50)) * 1000, 3)
        assert figures["p99_ms"] == round(float(np.percentile(recorded, 99)) * 1000, 3)
        assert figures["max_ms"] == round(max(recorded) * 1000, 3)
    assert SendClock().percentiles() == {"p50_ms": None, "p99_ms": None, "max_ms": None}
