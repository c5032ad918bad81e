"""A real DNS server for the tests: Debian's dnsmasq on 127.0.0.1, on a free port, with the
NAPTR/SRV/A/AAAA records a test gives it. It reads no system file (no resolv.conf, no hosts,
no dnsmasq.conf) and forwards nothing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.resolver

from ..helpers import LOOPBACK, PeerProcess, free_port


def find_dnsmasq() -> str | None:
    return shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
    )


@dataclass
class DnsRecords:
    """Records in dnsmasq's own option syntax."""

    naptr: list[tuple[str, int, int, str, str, str]] = field(default_factory=list)
    srv: list[tuple[str, str, int, int, int]] = field(
        default_factory=list
    )  # name,target,port,prio,w
    hosts: list[tuple[str, str]] = field(default_factory=list)  # name, address (A or AAAA)

    def options(self) -> list[str]:
        opts = [
            f"--naptr-record={name},{order},{pref},{flags},{service},,{replacement}"
            for name, order, pref, flags, service, replacement in self.naptr
        ]
        opts += [f"--srv-host={n},{t},{port},{prio},{w}" for n, t, port, prio, w in self.srv]
        opts += [f"--host-record={name},{address}" for name, address in self.hosts]
        return opts


class Dnsmasq:
    """dnsmasq answering only its own records on 127.0.0.1:port (stopped by PID)."""

    def __init__(self, workdir: Path, records: DnsRecords, ttl: int = 60) -> None:
        self.workdir = workdir
        self.records = records
        self.ttl = ttl
        self.port = 0
        self._peer: PeerProcess | None = None

    def start(self) -> None:
        binary = find_dnsmasq()
        if binary is None:
            raise RuntimeError("dnsmasq is not installed (apt-get install dnsmasq-base)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port("both")
        command = [
            binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--pid-file=",
            "--bind-interfaces",
            f"--listen-address={LOOPBACK}",
            f"--port={self.port}",
            f"--local-ttl={self.ttl}",
            "--log-queries",
            "--log-facility=-",
            *self.records.options(),
        ]
        self._peer = PeerProcess(
            "dnsmasq", command, log_path=self.workdir / "dnsmasq.log", time_limit=600
        )
        self._peer.start()
        self._peer.wait_ready(self._answers, 10.0, "dnsmasq does not answer")

    def resolver(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [LOOPBACK]
        resolver.port = self.port
        resolver.lifetime = 1.0
        return resolver

    def _answers(self) -> bool:
        name = self.records.hosts[0][0] if self.records.hosts else "localhost"
        try:
            self.resolver().resolve(name, "A", search=False)
        except dns.exception.DNSException:
            return False
        return True

    def log_text(self) -> str:
        path = self.workdir / "dnsmasq.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        peer, self._peer = self._peer, None
        if peer is not None:
            peer.stop()
