"""How many simultaneous G.711 calls one phone process carries on one core.

A caller phone (this process, pinned to one core) places N calls to an answering phone (a
second process, another core) on 127.0.0.1; both send 20 ms PCMU frames. For each N the table
shows, over the measured window only, the caller's CPU per call-second of media actually sent
(CPU / (packets sent x 20 ms): a starved process that sends less does not look cheaper), CPU per
packet sent or received, packets sent against packets due (calls x window / 20 ms), packets
lost, and how late packets left against their schedule (p50/p99). Every port (SIP and media) is
taken from the configured ranges. Numbers are printed, never asserted.

Then the capacity: the largest number of simultaneous SRTP calls that one core carries with every
call up, every due packet sent (at least 99.5 %), no packet lost and a send lateness p99 of at
most 10 ms, found by doubling from 100 calls until a level fails, then bisecting down to
``BENCH_CAPACITY_STEP`` calls (each level its own answering process and window).

Knobs: call levels as the first argument (``1,10,50,100``), ``BENCH_SECONDS`` (window),
``BENCH_MEDIA`` (``rtp``, ``srtp`` or both), ``BENCH_BASELINE=<git revision>`` (that revision's
phones measured in the same run, one table per tree); for the capacity search
``BENCH_CAPACITY`` (``0``: skip it), ``BENCH_CAPACITY_SECONDS`` (window of each level, 5),
``BENCH_CAPACITY_MAX`` (800) and ``BENCH_CAPACITY_STEP`` (25).
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
from typing import Any

import numpy as np
from common import free_port_in, print_table, source_trees

from securephone.aio.phone import Phone
from securephone.audio.sources import ToneSource
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

PTIME = 0.020
SIP_CALLER, SIP_ANSWER = (57000, 57099), (57100, 57199)  # SIP ports of the two phones
MEDIA_CALLER, MEDIA_ANSWER = 24000, 28000  # media ranges: 4000 and 2000 ports (2 per call)
LATE_P99_MS = 10.0  # the capacity criterion's send lateness bound


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


def _media(srtp: bool, port_min: int, ports: int) -> dict[str, object]:
    """Plain RTP, or SRTP keyed over loopback UDP (the lab option: benchmarks only)."""
    mode = {"srtp": "mandatory", "allow_sdes_over_plaintext": True} if srtp else {"srtp": "off"}
    return {"port_min": port_min, "port_max": port_min + ports, "codecs": ["PCMU"], **mode}


async def _run(calls: int, seconds: float, port: int, srtp: bool) -> Row:
    sip_port = free_port_in(*SIP_CALLER, 0)
    config = parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": sip_port, "tcp_port": sip_port},
            "media": _media(srtp, MEDIA_CALLER, 3999),
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
    media = _media(srtp, MEDIA_ANSWER, 1999)
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


def meets_goal(row: Row) -> bool:
    """Every call up, the schedule kept (99.5 % of due packets sent), no loss, p99 <= 10 ms."""
    return (
        row.connected == row.calls
        and row.sent >= 0.995 * row.due
        and row.lost == 0
        and row.late_p99_ms <= LATE_P99_MS
    )


def capacity(seconds: float, most: int, step: int) -> tuple[int, list[Row]]:
    """The largest SRTP call count meeting :func:`meets_goal` (0 if none does), and every level
    tried: doubling from 100 until one fails (or ``most``), then bisecting to ``step``."""
    tried: list[Row] = []

    def passes(calls: int) -> bool:
        row = _level(calls, seconds, srtp=True)
        tried.append(row)
        return meets_goal(row)

    good, bad = 0, most + 1
    level = 100
    while level <= most:
        if not passes(level):
            bad = level
            break
        good, level = level, level * 2
    if good and bad > most and good < most:  # every doubling passed: try the ceiling itself
        if passes(most):
            return most, tried
        bad = most
    while bad - good > step:
        middle = (good + bad) // 2
        if passes(middle):
            good = middle
        else:
            bad = middle
    return good, tried


def print_capacity(found: int, tried: list[Row], tree: str = "") -> None:
    print_table(
        f"Capacity: SRTP G.711 calls on one core with all packets sent, no loss and send "
        f"lateness p99 <= {LATE_P99_MS:g} ms: {found}{tree}",
        ["calls", "up", "CPU ms/call-s", "pkts sent", "pkts due", "lost", "late p99 ms", "meets"],
        [[r.calls, r.connected, r.cpu_per_call_second_ms, r.sent, r.due, r.lost, r.late_p99_ms,
          "yes" if meets_goal(r) else "no"] for r in tried],
    )  # fmt: skip


def capacity_settings() -> tuple[float, int, int] | None:
    """(window, ceiling, resolution) of the capacity search, or None when it is switched off."""
    if os.environ.get("BENCH_CAPACITY", "1").strip() == "0":
        return None
    return (
        float(os.environ.get("BENCH_CAPACITY_SECONDS", "5")),
        int(os.environ.get("BENCH_CAPACITY_MAX", "800")),
        int(os.environ.get("BENCH_CAPACITY_STEP", "25")),
    )


def measure(levels: list[int], seconds: float) -> dict[str, Any]:
    """The table's rows and, unless switched off, the capacity search (JSON-ready)."""
    result: dict[str, Any] = {"rows": [asdict(row) for row in run(levels, seconds)]}
    settings = capacity_settings()
    if settings is not None:
        found, tried = capacity(*settings)
        result["capacity"] = found
        result["tried"] = [asdict(row) for row in tried]
    return result


def print_result(result: dict[str, Any], tree: str = "") -> None:
    print_rows([Row(**row) for row in result["rows"]], tree)
    if "capacity" in result:
        print_capacity(result["capacity"], [Row(**row) for row in result["tried"]], tree)


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


def tree_result(src: Path, levels: list[int]) -> dict[str, Any]:
    """The rows and capacity of a source tree (both phones run from it), in a child process."""
    env = {**os.environ, "PYTHONPATH": str(src), "BENCH_BASELINE": "", "BENCH_CALLS_JSON": "1"}
    out = subprocess.run(
        [sys.executable, __file__, ",".join(map(str, levels))],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


if __name__ == "__main__":
    levels = [
        int(x) for x in (sys.argv[1].split(",") if len(sys.argv) > 1 else ["1", "10", "50", "100"])
    ]
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    if os.environ.get("BENCH_CALLS_JSON"):
        print(json.dumps(measure(levels, seconds)))
    elif os.environ.get("BENCH_BASELINE", "").strip():  # before/after, same run (common.py)
        for name, src in source_trees():
            print_result(tree_result(src, levels), f", tree {name}")
    else:
        print_result(measure(levels, seconds))
