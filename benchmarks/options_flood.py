"""An OPTIONS flood against one phone: answers per second, latency p50/p99, and no growth after.

The phone runs in a child process on 127.0.0.1 (UDP). This process sends OPTIONS at a fixed
rate for a fixed time (default 500/s for 60 s, ``BENCH_FLOOD_RATE`` / ``BENCH_FLOOD_SECONDS``),
each with its own branch and Call-ID, and matches every answer to its request. The table shows
OPTIONS/s answered, answered/sent, latency p50/p99, a probe OPTIONS sent after the flood, and the
phone's RSS and open file descriptors before and after. Numbers are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import asyncio, sys
from securephone.aio.phone import Phone
from securephone.store.config import parse_config

async def main():
    config = parse_config({
        "data_dir": sys.argv[1],
        "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
        "media": {"srtp": "off"},
    })
    phone = Phone(config)
    await phone.start()
    print(phone.status()["listen"]["udp"], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await phone.stop(timeout=0.2)

asyncio.run(main())
"""


def options(port: int, call_id: str) -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(8)
    return (
        f"OPTIONS sip:bench@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
        f"From: <sip:flood@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:bench@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
        f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def call_id_of(data: bytes) -> str:
    for line in data.split(b"\r\n"):
        if line.lower().startswith((b"call-id:", b"i:")):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def usage(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of process ``pid``."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Flood:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sent: dict[str, float] = {}
        self.latency: list[float] = []
        self.refused = 0

    def send(self, call_id: str) -> None:
        self.sent[call_id] = time.perf_counter()
        self.sock.sendto(options(self.port, call_id), self.target)

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            started = self.sent.pop(call_id_of(data), None)
            if started is None:
                continue
            if data.startswith(b"SIP/2.0 200"):
                self.latency.append(time.perf_counter() - started)
            else:
                self.refused += 1

    def run(self, rate: float, seconds: float) -> int:
        start = time.perf_counter()
        count = 0
        while (now := time.perf_counter()) - start < seconds:
            due = int((now - start) * rate)
            while count < due:
                self.send(f"flood-{count}")
                count += 1
            self.drain()
            time.sleep(0.001)
        end = time.perf_counter() + 2.0
        while self.sent and time.perf_counter() < end:
            self.drain()
            time.sleep(0.01)
        return count

    def probe(self, timeout: float = 5.0) -> float | None:
        self.send("probe")
        end = time.perf_counter() + timeout
        before = len(self.latency)
        while time.perf_counter() < end:
            self.drain()
            if len(self.latency) > before:
                return self.latency.pop()
            time.sleep(0.0005)
        return None


def main() -> None:
    rate = float(os.environ.get("BENCH_FLOOD_RATE", "500"))
    seconds = float(os.environ.get("BENCH_FLOOD_SECONDS", "60"))
    with tempfile.TemporaryDirectory() as data:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, data],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        host, port = child.stdout.readline().strip().split(":")
        try:
            flood = Flood((host, int(port)))
            flood.probe()
            before = usage(child.pid)
            sent = flood.run(rate, seconds)
            probe = flood.probe()
            after = usage(child.pid)
        finally:
            child.stdin.close()
            child.wait(10)
    ms = np.array(flood.latency or [0.0]) * 1000
    answered = len(flood.latency)
    row = {
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "answered_200": answered,
        "refused_503": flood.refused,
        "answered_per_s": round(answered / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "probe_after_ms": None if probe is None else round(probe * 1000, 2),
        "rss_kib_before": before[0],
        "rss_kib_after": after[0],
        "fds_before": before[1],
        "fds_after": after[1],
    }
    print(
        json.dumps(row)
        if "--json" in sys.argv
        else "\n".join(f"{k:16} {v}" for k, v in row.items())
    )


if __name__ == "__main__":
    main()
