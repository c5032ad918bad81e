"""Call-setup time between two securephones on loopback: SDES-SRTP vs DTLS-SRTP (vs ZRTP).

For each keying, ROUNDS calls from alice to bob (auto-answer, UDP signalling, SRTP mandatory;
SDES is allowed over plaintext here because this is a lab measurement). The time is from
``dial()`` until alice has received the first SRTP packet that authenticated with the agreed
keys — the moment both directions of the call are encrypted and audible. Printed, never
asserted. (``sipp_setup.py`` measures the signalling alone, INVITE -> 200 OK, with SIPp as
the caller, against securephone and baresip.)

    PYTHONPATH=src python benchmarks/call_setup.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

KEYINGS = ("sdes", "dtls", "zrtp")


def config(data_dir: Path, keying: str, **calls: Any) -> Any:
    return parse_config(
        {
            "data_dir": str(data_dir),
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {
                "port_min": 47000,
                "port_max": 47999,
                "srtp": "mandatory",
                "keying": [keying],
                "allow_sdes_over_plaintext": keying == "sdes",
            },
            "calls": calls,
        }
    )


def first_srtp(call: Call) -> bool:
    srtp = call.channel.stream.srtp if call.channel is not None else None
    return srtp is not None and int(srtp.stats()["unprotected"]) > 0


async def one_call(alice: Phone, target: str) -> float:
    start = time.perf_counter()
    call = alice.dial(target)
    while not first_srtp(call):
        if call.ended or time.perf_counter() - start > 20:
            raise RuntimeError(f"call did not get encrypted media: {call.reason}")
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    call.hangup()
    await call.wait_ended(5)
    return elapsed


async def measure(keying: str, rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        alice = Phone(config(Path(tmp) / "alice", keying))
        bob = Phone(config(Path(tmp) / "bob", keying, auto_answer=True))
        await alice.start()
        await bob.start()
        try:
            host, port = bob.status()["listen"]["udp"].split(":")
            target = f"sip:bob@{host}:{port}"
            await one_call(alice, target)  # warm-up (certificates, caches, imports)
            times = []
            for _ in range(rounds):
                times.append(await one_call(alice, target))
                await asyncio.sleep(0.05)
            assert all(c.state is CallState.TERMINATED for c in alice.calls.values())
            return times
        finally:
            await alice.stop()
            await bob.stop()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    logging.getLogger("securephone").setLevel(logging.ERROR)  # the plaintext-SIP warnings
    print(f"call setup to first authenticated SRTP packet, {rounds} calls each (ms)")
    print(f"{'keying':<8} {'median':>8} {'p90':>8} {'min':>8} {'max':>8}")
    for keying in KEYINGS:
        ms = sorted(t * 1000 for t in asyncio.run(measure(keying, rounds)))
        p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        print(
            f"{keying:<8} {statistics.median(ms):8.1f} {p90:8.1f} {ms[0]:8.1f} {ms[-1]:8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
