"""The media path of one call without sockets: CPU per packet time, in one process.

One SRTP-keyed G.711 stream pair (the unit tests' ``keyed_pair``): each packet time a tone
frame is encoded, packed and protected by one side, unprotected, parsed, checked, counted and
buffered by the other, and one frame is played out (decoded). No sockets, no event loop:
only the Python and libsrtp work per packet, so the figure does not move with the machine's
other load the way the call benchmark's do. A second figure adds the shell: two
``MediaChannel``s on loopback sockets (ports 57480-57483), each ``tick()`` run by hand (no event
loop) -- read, keying and silence checks, send, play out, the lateness record, the syscalls.
Best of ``BENCH_MEDIAPATH_ROUNDS`` (5) rounds of 20,000 packet times. With ``BENCH_BASELINE=<git revision>`` that revision is measured too
(each tree in its own process). Printed, never asserted.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time

from common import ROOT, print_table, source_trees

sys.path.insert(0, str(ROOT))

from tests.media.test_session import ALICE, SUITE, keyed_pair, negotiated

from securephone.aio.media import MediaChannel, enable_arrival_times
from securephone.audio.sources import ToneSource
from securephone.media.session import MediaStream
from securephone.media.srtp import SrtpContext, generate_key

PACKETS = 20_000


def one_round() -> float:
    """µs per packet time: send (tone, encode, pack, protect), receive, play out."""
    sender, receiver = keyed_pair()
    source = ToneSource(440.0)
    now = 0.0
    start = time.perf_counter()
    for _ in range(PACKETS):
        now += 0.02
        packet = sender.next_packet(source.read_frame())  # type: ignore[arg-type]
        assert packet is not None
        receiver.receive(packet, ALICE, now)
        receiver.playout(now)
    return (time.perf_counter() - start) / PACKETS * 1e6


class _Clock:
    """What a channel's tick reads of its event loop: the time."""

    def time(self) -> float:
        return time.monotonic()


def _channels() -> list[MediaChannel]:
    """Two SRTP channels sending to each other on 127.0.0.1, started by hand (no event loop)."""
    ports = (57480, 57482)
    streams = [MediaStream(name, rng=random.Random(n)) for n, name in enumerate("ab")]
    keys = generate_key(SUITE), generate_key(SUITE)
    channels = []
    for n, stream in enumerate(streams):
        peer = ports[1 - n]
        stream.configure(negotiated(("127.0.0.1", peer), proto="RTP/SAVP"))
        stream.set_srtp(SrtpContext(SUITE, keys[n], keys[1 - n]), True)
        sockets = []
        for port in (ports[n], ports[n] + 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", port))
            sock.setblocking(False)
            sockets.append(sock)
        channel = MediaChannel(stream, (sockets[0], sockets[1]))
        channel._loop = _Clock()  # type: ignore[assignment]
        channel._stamped = enable_arrival_times(channel.rtp)
        channel._start = time.monotonic()
        channel.set_remote("127.0.0.1", peer, peer + 1)
        channel.source = ToneSource(440.0)
        channels.append(channel)
    return channels


def tick_round() -> float:
    """µs per channel tick, both channels ticking in turn over loopback."""
    channels = _channels()
    try:
        start = time.perf_counter()
        for _ in range(PACKETS):
            channels[0].tick()
            channels[1].tick()
        return (time.perf_counter() - start) / PACKETS / 2 * 1e6
    finally:
        for channel in channels:
            channel.rtp.close()
            channel.rtcp.close()


def main() -> None:
    rounds = int(os.environ.get("BENCH_MEDIAPATH_ROUNDS", "5"))
    best = min(one_round() for _ in range(rounds))
    ticks = min(tick_round() for _ in range(rounds))
    tree = os.environ.get("BENCH_TREE", "now")
    print_table(
        f"Media path of one SRTP G.711 call (best of {rounds} x {PACKETS} packet times)",
        ["tree", "us per packet time, no sockets", "us per MediaChannel tick, loopback"],
        [[tree, best, ticks]],
    )


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    if os.environ.get("BENCH_BASELINE", "").strip():
        for name, src in source_trees():
            env = {**os.environ, "PYTHONPATH": str(src), "BENCH_BASELINE": "", "BENCH_TREE": name}
            subprocess.run([sys.executable, __file__], env=env, check=True)
    else:
        main()
