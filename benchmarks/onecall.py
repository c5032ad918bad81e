"""One TLS + SRTP call between securephone and a real baresip: CPU per call-second of each side.

securephone (this process, pinned to core 0) calls baresip (Debian ``baresip-core``, started by
the interop harness, pinned to core 1) over SIP/TLS with SDES-keyed SRTP (AES_CM_128_HMAC_SHA1_80)
and G.711; both send a tone. Over the measured window each side's CPU (user + system, from the
kernel) is divided by the call's duration; the ratio securephone / baresip is printed. Printed,
never asserted; skipped with a line when baresip is not installed. With
``BENCH_BASELINE=<git revision>`` that revision's phone is measured too, each tree in its own
process and against its own baresip, one after the other in the same run.

A second table gives the floor under any 20 ms media clock on this machine: the CPU per second of
a process that only wakes 50 times a second (``time.sleep``; a bare asyncio loop with one timer
every 20 ms), each pinned to core 0 in its own process. On a virtual machine each wake-up costs
the kernel and the hypervisor a fixed amount before any work is done.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, free_port_in, print_table, source_trees

sys.path.insert(0, str(ROOT))

from tests.interop.audio_tools import RATE, write_wav
from tests.interop.baresip import Baresip, missing_tools
from tests.interop.pki_tools import Pki, make_pki
from tests.interop.test_tls_calls import baresip_tls

from securephone.aio.phone import Phone
from securephone.audio.sources import ToneSource
from securephone.pki.certs import issue_certificate, write_secret_file
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
TICK = os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pid_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _phone(pki: Pki) -> Phone:
    cert = pki.dir / "phone-server.pem"
    issued = issue_certificate(pki.ca, "127.0.0.1", kind="server", ips=["127.0.0.1"])
    write_secret_file(cert, issued.combined_pem())
    port = free_port_in(57200, 57299, 0)
    config = parse_config(
        {
            "data_dir": str(pki.dir),
            "sip": {"listen_address": "127.0.0.1", "transports": ["udp", "tcp", "tls"],
                    "udp_port": port, "tcp_port": port, "tls_port": port + 100},
            "tls": {"ca_file": str(pki.sips), "use_system_cas": False, "certificate": str(cert)},
            "media": {"port_min": 57400, "port_max": 57499, "srtp": "mandatory",
                      "srtp_suites": ["AES_CM_128_HMAC_SHA1_80"]},
        }
    )  # fmt: skip
    phone = Phone(config)
    phone.source_factory = lambda call: ToneSource(440.0)
    return phone


async def _measure(phone: Phone, peer: Baresip) -> list[list[object]]:
    await phone.start()
    try:
        call = phone.dial(f"sips:bob@127.0.0.1:{peer.tls_port}")
        await call.wait_for(CallState.CONNECTED, timeout=15)
        if call.state is not CallState.CONNECTED or peer.pid is None:
            raise RuntimeError(f"the call to baresip did not connect ({call.state})")
        await asyncio.sleep(1.0)  # settle
        before = call.summary()["media"]
        ours0, theirs0, wall0 = _self_cpu(), _pid_cpu(peer.pid), time.perf_counter()
        await asyncio.sleep(SECONDS)
        ours1, theirs1, wall1 = _self_cpu(), _pid_cpu(peer.pid), time.perf_counter()
        after = call.summary()["media"]
        call.hangup()
        await call.wait_ended(10)
    finally:
        await phone.stop()
    wall = wall1 - wall0
    ours = (ours1 - ours0) / wall * 1000
    theirs = (theirs1 - theirs0) / wall * 1000
    sent = after["packets_sent"] - before["packets_sent"]
    received = after["packets_received"] - before["packets_received"]
    return [
        ["securephone", ours, sent, received, ours / theirs if theirs else float("nan")],
        ["baresip", theirs, received, sent, 1.0],
    ]


FLOOR_CODE = """
import asyncio, os, resource, time
os.sched_setaffinity(0, {{0}})
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
def sleeper(n):
    for _ in range(n):
        time.sleep(0.02)
async def ticker(n):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    start, count = loop.time(), [0]
    def tick():
        count[0] += 1
        if count[0] == n:
            done.set_result(None)
        else:
            loop.call_at(start + count[0] * 0.02, tick)
    loop.call_at(start, tick)
    await done
n = int({seconds} * 50)
t0, w0 = cpu(), time.perf_counter()
sleeper(n) if {kind!r} == "sleep" else asyncio.run(ticker(n))
print((cpu() - t0) / (time.perf_counter() - w0) * 1000)
"""


def floor_rows() -> list[list[object]]:
    """CPU ms per second of a process that only wakes every 20 ms (sleep; asyncio timer)."""
    rows: list[list[object]] = []
    for kind, label in (
        ("sleep", "time.sleep(0.02) loop"),
        ("asyncio", "asyncio, a timer / 20 ms"),
    ):
        code = FLOOR_CODE.format(seconds=min(SECONDS, 5.0), kind=kind)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        ms = float(out.stdout) if out.returncode == 0 else float("nan")
        rows.append([label, ms, ms / 50 * 1000])
    return rows


def main() -> None:
    missing = missing_tools()
    if missing:
        print(f"one call against baresip: skipped ({', '.join(missing)} not installed)\n")
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory(prefix="bench-onecall-") as tmp:
        pki = make_pki(Path(tmp))
        t = np.arange(int(RATE * 5)) / RATE
        tone = write_wav(Path(tmp) / "tone.wav", 8000 * np.sin(2 * np.pi * 300 * t))
        peer = Baresip(
            Path(tmp) / "baresip", user="bob", transport="tls", tls=baresip_tls(pki),
            mediaenc="srtp-mand", audio_source=tone, loop_source=True, record=False,
            sip_trace=False, time_limit=SECONDS + 60,
        )  # fmt: skip
        with peer:
            if peer.pid is not None and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(peer.pid, {1 % (os.cpu_count() or 1)})
            rows = asyncio.run(_measure(_phone(pki), peer))
    tree = os.environ.get("BENCH_TREE", "")
    print_table(
        f"One TLS + SRTP G.711 call, securephone -> baresip ({SECONDS:g} s; CPU of each side)"
        + (f", tree {tree}" if tree else ""),
        ["side", "CPU ms/call-s", "pkts sent", "pkts recv", "x baresip"],
        rows,
    )
    print_table(
        "The floor: a process that only wakes 50 times a second (no work), core 0",
        ["process", "CPU ms/s", "us per wake-up"],
        floor_rows(),
    )


def compare() -> None:
    """Each source tree's phone against baresip, in a child process with that tree's ``src``."""
    for name, src in source_trees():
        env = {**os.environ, "PYTHONPATH": str(src), "BENCH_BASELINE": "", "BENCH_TREE": name}
        subprocess.run([sys.executable, __file__], env=env, check=True)


if __name__ == "__main__":
    if os.environ.get("BENCH_BASELINE", "").strip():
        compare()
    else:
        main()
