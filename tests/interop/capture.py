"""Capture the test's own loopback traffic with tshark and look inside it (dpkt)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dpkt
import pytest

from ..helpers import wait_until

SIP_START = re.compile(rb"^(?:[A-Z]+ (?:sips?|tel):[^ ]+ SIP/2\.0|SIP/2\.0 \d{3} )", re.M)


@dataclass(frozen=True)
class Segment:
    """One UDP datagram or TCP payload seen on the loopback."""

    time: float
    proto: str
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


class LoopbackCapture:
    """``tshark -i lo`` with a BPF filter, started and stopped by PID around a block of a test.

    Entering waits until tshark says it is capturing; leaving waits until the file has stopped
    growing (the last packets written), then stops tshark.
    """

    def __init__(self, path: Path, bpf: str, time_limit: float = 300) -> None:
        if shutil.which("tshark") is None:
            pytest.skip("tshark not installed (apt-get install tshark)")
        self.path = path
        self.bpf = bpf
        self.time_limit = time_limit
        self.log_path = path.with_name(path.name + ".tshark.txt")
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LoopbackCapture:
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                ["tshark", "-i", "lo", "-f", self.bpf, "-w", str(self.path), "-F", "pcap", "-q",
                 "-a", f"duration:{int(self.time_limit)}"],
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        try:
            wait_until(
                lambda: "Capturing on" in self.log_text() and self.path.exists(),
                15,
                message="tshark did not start capturing",
                error=RuntimeError,
                give_up=lambda: None if self.running else "tshark exited",
            )
        except RuntimeError as exc:
            self.stop()
            why = self.log_text().strip()
            if "permission" in why.lower() or "not permitted" in why.lower():
                pytest.skip(
                    f"capturing on the loopback is not permitted here: {why.splitlines()[-1]}"
                )
            raise RuntimeError(f"{exc}: {why}") from None
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """What tshark printed on stderr (``Capturing on 'Loopback: lo'``, errors)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.wait_settled()
        finally:
            self.stop()

    def wait_settled(self, quiet: float = 0.6, timeout: float = 10.0) -> None:
        """Wait until the file has not grown for ``quiet`` s: tshark wrote what it captured."""
        last = [-1, time.monotonic()]

        def settled() -> bool:
            size = self.path.stat().st_size if self.path.exists() else 0
            now = time.monotonic()
            if size != last[0]:
                last[:] = [size, now]
            return now - last[1] >= quiet

        wait_until(settled, timeout, 0.05, message=f"{self.path} keeps growing")

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def segments(self) -> list[Segment]:
        return list(read_segments(self.path))


def read_segments(path: Path) -> Iterator[Segment]:
    """Every UDP/TCP payload in a pcap of the loopback (Ethernet or Linux cooked framing; IPv4
    and IPv6)."""
    with path.open("rb") as handle:
        for stamp, frame in dpkt.pcap.Reader(handle):
            ip = _ip(frame)
            if ip is None:
                continue
            layer = ip.data
            if isinstance(layer, dpkt.udp.UDP | dpkt.tcp.TCP) and layer.data:
                proto = "udp" if isinstance(layer, dpkt.udp.UDP) else "tcp"
                family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
                src = (socket.inet_ntop(family, ip.src), layer.sport)
                dst = (socket.inet_ntop(family, ip.dst), layer.dport)
                yield Segment(float(stamp), proto, src, dst, bytes(layer.data))


def _ip(frame: bytes) -> dpkt.ip.IP | dpkt.ip6.IP6 | None:
    for parse in (dpkt.ethernet.Ethernet, dpkt.sll.SLL):
        try:
            packet = parse(frame)
        except (dpkt.UnpackError, ValueError):
            continue
        if isinstance(packet.data, dpkt.ip.IP | dpkt.ip6.IP6):
            return packet.data
    return None


def plaintext_sip(segments: list[Segment]) -> list[bytes]:
    """Start lines of every plaintext SIP message found in the payloads."""
    lines = []
    for segment in segments:
        for match in SIP_START.finditer(segment.payload):
            lines.append(match.group(0))
    return lines


def tls_records(segments: list[Segment]) -> list[Segment]:
    """TCP payloads that begin with a TLS record header (handshake 0x16 or application data 0x17)."""
    return [
        s
        for s in segments
        if s.proto == "tcp"
        and len(s.payload) >= 5
        and s.payload[0] in (0x16, 0x17)
        and s.payload[1] == 3
    ]
