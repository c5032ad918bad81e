"""The media path of one call without sockets: CPU per packet time, in one process.

One SRTP-keyed G.711 stream pair (the unit tests' ``keyed_pair``): each packet time a tone
frame is encoded, packed and protected by one side, unprotected, parsed, checked, counted and
buffered by the other, and one frame is played out (decoded). No sockets, no event loop:
only the Python and libsrtp work per packet, so the figure does not move with the machine's
other load the way the call benchmark's do. Best of ``BENCH_MEDIAPATH_ROUNDS`` (5) rounds of
20,000 packet times. With ``BENCH_BASELINE=<git revision>`` that revision is measured too
(each tree in its own process). Printed, never asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common import ROOT, print_table, source_trees

sys.path.insert(0, str(ROOT))

from tests.media.test_session import ALICE, keyed_pair

from securephone.audio.sources import ToneSource

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


def main() -> None:
    rounds = int(os.environ.get("BENCH_MEDIAPATH_ROUNDS", "5"))
    best = min(one_round() for _ in range(rounds))
    tree = os.environ.get("BENCH_TREE", "now")
    print_table(
        "Media path of one SRTP G.711 call, no sockets (best of "
        f"{rounds} x {PACKETS} packet times)",
        ["tree", "us per packet time (send + receive + playout)"],
        [[tree, best]],
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
