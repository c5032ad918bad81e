"""Call-setup latency INVITE -> 200 OK with SIPp as the caller: securephone and baresip.

SIPp (Debian ``sip-tester``) runs ``benchmarks/sipp_uac_pcmu.xml`` against

- ``securephone answer`` (auto-answer, UDP, ``[media] srtp = "optional"``: the SIPp offer is
  PCMU over plain RTP/AVP, which a phone with SRTP mandatory would refuse), one process per
  source tree (``BENCH_BASELINE`` adds that revision);
- baresip (the interop harness ``tests/interop/baresip.py``, auto-answer, no media
  encryption),

all on 127.0.0.1, in the same run. Two loads, both bounded:

- ``sequential``: ``BENCH_SIPP_SEQ`` calls (default 50), one at a time (``-l 1``);
- ``concurrent``: ``BENCH_SIPP_CALLS`` calls (default 200) started at ``BENCH_SIPP_RATE``
  calls/s (default 20) with at most ``BENCH_SIPP_LIMIT`` (default 20) in progress.

Each call is held ``BENCH_SIPP_HOLD_MS`` (default 50) after the ACK, then ended with BYE. The
scenario logs the wall clock before each INVITE and at its 200 OK in microseconds; the table
shows p50 / p99 of that time, the calls completed and failed, and completed calls per second
over SIPp's run. Three warm-up calls go first (not counted). SIPp's SIP port and media port
come from 57500-57999. Printed, never asserted; skipped with a line when sipp or baresip is
missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, free_port_in, print_table, source_trees

sys.path.insert(0, str(ROOT))

SCENARIO = Path(__file__).resolve().parent / "sipp_uac_pcmu.xml"
SEQUENTIAL = int(os.environ.get("BENCH_SIPP_SEQ", "50"))
CONCURRENT = int(os.environ.get("BENCH_SIPP_CALLS", "200"))
RATE = int(os.environ.get("BENCH_SIPP_RATE", "20"))
LIMIT = int(os.environ.get("BENCH_SIPP_LIMIT", "20"))
HOLD_MS = int(os.environ.get("BENCH_SIPP_HOLD_MS", "50"))
PORTS = (57500, 57999)
ANSWER_CONFIG = """[media]
srtp = "optional"
port_min = {port_min}
port_max = {port_max}
"""


@dataclass(frozen=True)
class Load:
    """One SIPp run: how many calls, how fast, how many at once."""

    name: str
    calls: int
    rate: int
    limit: int


@dataclass(frozen=True)
class Result:
    """INVITE -> 200 OK times (seconds) of the completed calls, failures, SIPp's wall time."""

    setups: list[float]
    failed: int
    wall: float


def loads() -> list[Load]:
    return [
        Load("sequential", SEQUENTIAL, 1000, 1),
        Load(f"{RATE}/s, <= {LIMIT} at once", CONCURRENT, RATE, LIMIT),
    ]


def setup_times(log: Path) -> list[float]:
    """The ``setup S US S US`` lines the scenario logs: seconds from INVITE to 200 OK."""
    times = []
    if not log.exists():
        return times
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "setup":
            s0, u0, s1, u1 = (float(p) for p in parts[1:])
            times.append((s1 - s0) + (u1 - u0) / 1e6)
    return times


def run_sipp(target: tuple[str, int], load: Load, workdir: Path) -> Result:
    """Run SIPp once against ``target``; the setup times of the calls that got their 200 OK."""
    log = workdir / f"sipp-{time.monotonic_ns()}.log"
    sip_port = free_port_in(PORTS[0] + 100, PORTS[0] + 199)
    media_port = free_port_in(PORTS[0] + 400, PORTS[1])
    timeout = 30 + load.calls / max(1, min(load.rate, 100)) + load.calls * HOLD_MS / 1000
    command = [
        "sipp", "-sf", str(SCENARIO), f"{target[0]}:{target[1]}",
        "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1", "-mp", str(media_port),
        "-m", str(load.calls), "-r", str(load.rate), "-l", str(load.limit), "-d", str(HOLD_MS),
        "-trace_logs", "-log_file", str(log), "-nostdin",
        "-timeout", f"{int(timeout)}s", "-timeout_error", "-recv_timeout", "10s",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(
        command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=timeout + 10, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    setups = setup_times(log)
    return Result(setups, load.calls - len(setups), wall)


def _wait_bound(port: int, timeout: float = 20.0) -> None:
    """Wait until something has bound UDP ``port`` on 127.0.0.1 (the phone is listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on UDP {port}")


@contextmanager
def securephone_answer(src: Path, workdir: Path) -> Iterator[tuple[str, int]]:
    """``securephone answer --calls 0`` (until SIGTERM) on a free port of 57500-57999."""
    port = free_port_in(PORTS[0], PORTS[0] + 99)
    config = workdir / f"answer-{port}.toml"
    # media ports 57700-57899 (SIPp: SIP 57600-57699, media 57900-57999)
    config.write_text(ANSWER_CONFIG.format(port_min=PORTS[0] + 200, port_max=PORTS[0] + 399))
    proc = subprocess.Popen(
        [sys.executable, "-m", "securephone.cli", "answer", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", "--calls", "0", "--log-level", "error"],
        env={**os.environ, "PYTHONPATH": str(src)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_bound(port)
        yield ("127.0.0.1", port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def baresip_answer(workdir: Path) -> Iterator[tuple[str, int]]:
    """A baresip from the interop harness, answering automatically, plain RTP."""
    from tests.interop.baresip import Baresip

    peer = Baresip(
        workdir / "baresip", user="bench", transport="udp", record=False, sip_trace=False,
        extra_config={"call_max_calls": str(LIMIT + 4)}, time_limit=600,
    )  # fmt: skip
    with peer:
        yield ("127.0.0.1", peer.sip_port)


def measure(target: tuple[str, int], workdir: Path) -> list[tuple[Load, Result]]:
    run_sipp(target, Load("warm-up", 3, 1000, 1), workdir)
    return [(load, run_sipp(target, load, workdir)) for load in loads()]


def _row(peer: str, load: Load, result: Result) -> list[object]:
    ms = sorted(t * 1000 for t in result.setups)
    p50 = statistics.median(ms) if ms else float("nan")
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")
    rate = len(ms) / result.wall if result.wall else float("nan")
    return [peer, load.name, len(ms), result.failed, p50, p99, rate]


def missing() -> list[str]:
    from tests.interop.baresip import missing_tools

    return (["sipp"] if shutil.which("sipp") is None else []) + missing_tools()


def main() -> None:
    absent = missing()
    if absent:
        print(f"SIPp call setup: skipped ({', '.join(absent)} not installed)\n")
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sipp-") as tmp:
        work = Path(tmp)
        for label, src in source_trees():
            with securephone_answer(src, work) as target:
                rows += [_row(f"securephone {label}", *r) for r in measure(target, work)]
        with baresip_answer(work) as target:
            rows += [_row("baresip", *r) for r in measure(target, work)]
    print_table(
        "Call setup INVITE -> 200 OK, SIPp caller (PCMU over plain RTP/AVP, UDP; "
        f'securephone [media] srtp = "optional"; calls held {HOLD_MS} ms)',
        ["answerer", "load", "calls ok", "failed", "p50 ms", "p99 ms", "calls/s"],
        rows,
    )


if __name__ == "__main__":
    main()
