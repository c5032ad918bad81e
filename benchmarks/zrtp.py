"""CPU time of one ZRTP key agreement per algorithm (DH3k vs X255 vs EC25), printed as a table.

Two sessions run a whole exchange in memory (Hello … Conf2ACK, both sides, fake clock, no
sockets); the table shows the process CPU time per completed handshake (both sides together)
and, separately, two key pairs plus one shared-secret computation. Numbers are printed, never
asserted. Run: ``PYTHONPATH=src python benchmarks/zrtp.py [rounds]``.
"""

from __future__ import annotations

import sys
import time

from securephone.media.zrtp import crypto
from securephone.media.zrtp.algorithms import AlgorithmOffer
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.session import State, ZrtpConfig, ZrtpSession

ALGORITHMS = ("DH3k", "X255", "EC25")


def handshake(key_agreement: str) -> None:
    """One full exchange between two in-memory sessions."""
    config = ZrtpConfig(offer=AlgorithmOffer(key_agreements=(key_agreement,)))
    a = ZrtpSession(config, ZrtpCache.new(), 1)
    b = ZrtpSession(config, ZrtpCache.new(), 2)
    a.start(0.0)
    b.start(0.0)
    for _ in range(50):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for datagram in src.datagrams_to_send():
                moved = True
                dst.receive(datagram, None, 0.0)
        if not moved:
            break
    if a.state is not State.SECURE or b.state is not State.SECURE:
        raise RuntimeError(f"{key_agreement} handshake did not complete")


def primitive(key_agreement: str) -> None:
    """Two key pairs and one shared secret (one side's pair, the peer's, one agreement)."""
    mine, theirs = crypto.generate_key_pair(key_agreement), crypto.generate_key_pair(key_agreement)
    mine.agree(theirs.public_value)


def cpu_ms(func: object, name: str, rounds: int) -> float:
    assert callable(func)
    func(name)  # warm-up
    start = time.process_time()
    for _ in range(rounds):
        func(name)
    return (time.process_time() - start) / rounds * 1000


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    print(f"ZRTP key agreement CPU time, mean of {rounds} rounds (ms)")
    print(f"{'algorithm':<10} {'full handshake, both sides':>28} {'2 key pairs + 1 DH':>25}")
    for name in ALGORITHMS:
        full = cpu_ms(handshake, name, rounds)
        prim = cpu_ms(primitive, name, rounds)
        print(f"{name:<10} {full:>28.2f} {prim:>25.2f}")


if __name__ == "__main__":
    main()
