"""How many simultaneous G.711 calls one phone process carries on one core.

A caller phone (this process, pinned to one core) places N calls to an answering phone (a
second process, another core) on 127.0.0.1; both send 20 ms PCMU frames. For each N the table
shows, over the measured window only, the caller's CPU per call-second of media actually sent
(CPU / (packets sent x 20 ms): a starved process that sends less does not look cheaper), CPU per
packet sent or received, packets sent against packets due (calls x window / 20 ms), packets
lost, and how late packets left against their schedule (p50/p99). Every port (SIP and media) is
taken from the configured ranges. Numbers are printed, never asserted.

Knobs: call levels as the first argument (``1,10,50,100``), ``BENCH_SECONDS`` (window),
``BENCH_MEDIA`` (``rtp``, ``srtp`` or both), ``BENCH_BASELINE=<git revision>`` (that revision's
phones measured in the same run, one table per tree).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from common import free_port_in, print_table, source_trees

from securephone.aio.phone import Phone
from securephone.audio.sources import ToneSource
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

PTIME = 0.020
SIP_CALLER, SIP_ANSWER = (23000, 23099), (23100, 23199)  # SIP ports of the two phones


@dataclass
class Row:
    calls: int
    srtp: bool
    connected: int
    seconds: float
    cpu_per_call_second_ms: float
    cpu_per_packet_us: float
    sent: int
    due: int
    received: int
    lost: int
    late_p50_ms: float
    late_p99_ms: float


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _media(srtp: bool, port_min: int) -> dict[str, object]:
    """Plain RTP, or SRTP keyed over loopback UDP (the lab option: benchmarks only)."""
    mode = {"srtp": "mandatory", "allow_sdes_over_plaintext": True} if srtp else {"srtp": "off"}
    return {"port_min": port_min, "port_max": port_min + 3999, "codecs": ["PCMU"], **mode}


async def _run(calls: int, seconds: float, port: int, srtp: bool) -> Row:
    sip_port = free_port_in(*SIP_CALLER, 0)
    config = parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": sip_port, "tcp_port": sip_port},
            "media": _media(srtp, 24000),
            "calls": {"max_calls": calls},
        }
    )
    phone = Phone(config)
    phone.source_factory = lambda call: ToneSource(440.0)
    await phone.start()
    placed = [phone.dial(f"sip:bench@127.0.0.1:{port}") for _ in range(calls)]
    await asyncio.gather(*(c.wait_for(CallState.CONNECTED, timeout=20) for c in placed))
    connected = [c for c in placed if c.state is CallState.CONNECTED]
    await asyncio.sleep(1.0)  # settle
    before = [c.summary()["media"] for c in connected]
    marks = [len(c.channel.clock.lateness) if c.channel else 0 for c in connected]
    cpu0, wall0 = _cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, wall1 = _cpu(), time.perf_counter()
    summaries = [c.summary()["media"] for c in connected]
    lateness = np.concatenate(
        [
            np.asarray(c.channel.clock.lateness[m:])
            for c, m in zip(connected, marks, strict=True)
            if c.channel
        ]
        or [np.zeros(0)]
    )
    for c in connected:
        c.hangup()
    await asyncio.gather(*(c.wait_ended(10) for c in connected), return_exceptions=True)
    await phone.stop()
    sent = sum(s["packets_sent"] for s in summaries) - sum(s["packets_sent"] for s in before)
    received = sum(s["packets_received"] for s in summaries) - sum(
        s["packets_received"] for s in before
    )
    cpu = cpu1 - cpu0
    return Row(
        calls=calls,
        srtp=srtp,
        connected=len(connected),
        seconds=wall1 - wall0,
        cpu_per_call_second_ms=cpu / max(1, sent) / PTIME * 1000,
        cpu_per_packet_us=cpu / max(1, sent + received) * 1e6,
        sent=sent,
        due=round(len(connected) * (wall1 - wall0) / PTIME),
        received=received,
        lost=sum(s["packets_lost"] for s in summaries) - sum(s["packets_lost"] for s in before),
        late_p50_ms=float(np.percentile(lateness, 50) * 1000) if lateness.size else float("nan"),
        late_p99_ms=float(np.percentile(lateness, 99) * 1000) if lateness.size else float("nan"),
    )


def _answer_config(calls: int, srtp: bool) -> Path:
    media = _media(srtp, 28000)
    lines = [f"{k} = {json.dumps(v)}" for k, v in media.items()]
    fd, name = tempfile.mkstemp(suffix=".toml")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"[calls]\nmax_calls = {calls}\n\n[media]\n" + "\n".join(lines) + "\n")
    return Path(name)


def run(levels: list[int], seconds: float) -> list[Row]:
    """One answering process per level and mode; one row each."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rows = []
    modes = os.environ.get("BENCH_MEDIA", "rtp srtp").split()  # e.g. "srtp" for one mode only
    for srtp in [mode == "srtp" for mode in ("rtp", "srtp") if mode in modes]:
        for calls in levels:
            rows.append(_level(calls, seconds, srtp))
    return rows


def _level(calls: int, seconds: float, srtp: bool) -> Row:
    port = free_port_in(*SIP_ANSWER, 0)
    config = _answer_config(calls, srtp)
    answer = subprocess.Popen(
        [sys.executable, "-m", "securephone.cli", "answer", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", "--calls", str(calls), "--play", "tone:300"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(answer.pid, {1 % (os.cpu_count() or 1)})
        time.sleep(1.5)
        row = asyncio.run(_run(calls, seconds, port, srtp))
        answer.wait(timeout=30)
        return row
    finally:
        config.unlink(missing_ok=True)
        if answer.poll() is None:
            answer.kill()
            answer.wait()


def print_rows(rows: list[Row], tree: str = "") -> None:
    print_table(
        "G.711 calls carried by one phone process on one core "
        f"(20 ms frames; SRTP: AEAD_AES_128_GCM; window only){tree}",
        ["media", "calls", "up", "CPU ms/call-s", "CPU us/pkt", "pkts sent", "pkts due",
         "pkts recv", "lost", "late p50 ms", "late p99 ms"],
        [[("SRTP" if r.srtp else "RTP"), r.calls, r.connected, r.cpu_per_call_second_ms,
          r.cpu_per_packet_us, r.sent, r.due, r.received, r.lost, r.late_p50_ms, r.late_p99_ms]
         for r in rows],
    )  # fmt: skip


def tree_rows(src: Path, levels: list[int]) -> list[Row]:
    """The rows of another source tree (both phones run from it), measured in a child process."""
    env = {**os.environ, "PYTHONPATH": str(src), "BENCH_BASELINE": "", "BENCH_CALLS_JSON": "1"}
    out = subprocess.run(
        [sys.executable, __file__, ",".join(map(str, levels))],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [Row(**row) for row in json.loads(out)]


if __name__ == "__main__":
    levels = [
        int(x) for x in (sys.argv[1].split(",") if len(sys.argv) > 1 else ["1", "10", "50", "100"])
    ]
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    if os.environ.get("BENCH_CALLS_JSON"):
        print(json.dumps([asdict(row) for row in run(levels, seconds)]))
    elif os.environ.get("BENCH_BASELINE", "").strip():  # before/after, same run (common.py)
        for name, src in source_trees():
            print_rows(tree_rows(src, levels), f", tree {name}")
    else:
        print_rows(run(levels, seconds))
