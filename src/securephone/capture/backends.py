"""Capture backends: a raw ``AF_PACKET`` socket with the BPF filter attached, tcpdump, dumpcap.

:class:`PacketCapture` tries them in that order (``backend="auto"``) and writes a classic pcap
file. The raw socket (packet(7)) needs ``CAP_NET_RAW``; the filter is attached with
``SO_ATTACH_FILTER`` (socket(7)) before the socket is bound, and every frame is checked again
in Python (:func:`securephone.capture.bpf.frame_matches`), so nothing queued before the filter
reaches the file. On the loopback the outgoing copy of each packet is dropped, as libpcap does.
"""

from __future__ import annotations

import ctypes
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import dpkt

from securephone.capture.bpf import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    SNAPLEN,
    Insn,
    PortRange,
    bpf_expression,
    bpf_program,
    frame_matches,
    parse_ports,
)

__all__ = ["Backend", "CaptureSummary", "CaptureUnavailable", "PacketCapture"]

Backend = Literal["auto", "socket", "tcpdump", "dumpcap"]
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
_ETHER_LIKE = {1, 772}  # ARPHRD_ETHER, ARPHRD_LOOPBACK: 14-byte Ethernet header
_RAW_IP = {65534, 776, 778}  # ARPHRD_NONE (tun), ARPHRD_SIT, ARPHRD_IPGRE


class CaptureUnavailable(RuntimeError):
    """No way to capture here; the message says what was tried and what to do."""


def _attach_filter(sock: socket.socket, program: list[Insn]) -> None:
    """SO_ATTACH_FILTER with a ``struct sock_fprog`` (the kernel copies the program)."""
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    """What a finished capture wrote."""

    path: Path
    backend: str
    interface: str
    packets: int
    dropped_by_python: int
    seconds: float


def _interface_linktype(interface: str) -> int:
    """LINKTYPE for an interface from ``/sys/class/net/IF/type`` (ARPHRD_*)."""
    try:
        socket.if_nametoindex(interface)
    except OSError:
        raise CaptureUnavailable(f"no network interface named {interface!r}") from None
    try:
        hatype = int(Path(f"/sys/class/net/{interface}/type").read_text().strip())
    except (OSError, ValueError):
        hatype = 1
    if hatype in _ETHER_LIKE:
        return LINKTYPE_ETHERNET
    if hatype in _RAW_IP:
        return LINKTYPE_RAW
    raise CaptureUnavailable(f"interface {interface!r} has link type {hatype}: not supported")


class PacketCapture:
    """Capture UDP/TCP traffic on given ports to a pcap file; start() returns immediately."""

    def __init__(
        self,
        path: Path | str,
        *,
        interface: str = "lo",
        backend: Backend = "auto",
        max_seconds: float = 3600.0,
    ) -> None:
        self.path = Path(path)
        self.interface = interface
        self.requested: Backend = backend
        self.max_seconds = max_seconds
        self.backend: str | None = None
        self.ports: list[PortRange] = []
        self.packets = 0
        self.dropped_by_python = 0
        self.error: BaseException | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._linktype = LINKTYPE_ETHERNET

    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self.backend is not None and self._started_at > 0

    def __enter__(self) -> PacketCapture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running:
            self.stop()

    def start(self, ports: Sequence[str | int | PortRange]) -> None:
        """Begin capturing; raise CaptureUnavailable when no backend can capture here."""
        if self.running:
            raise RuntimeError("capture already running")
        self.ports = [p if isinstance(p, PortRange) else parse_ports([p])[0] for p in ports]
        if not self.ports:
            raise ValueError("give at least one port to capture")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        reasons: list[str] = []
        for backend in self._order():
            try:
                self._start_backend(backend)
            except CaptureUnavailable as exc:
                reasons.append(f"{backend}: {exc}")
                continue
            self.backend = backend
            self._started_at = time.monotonic()
            return
        raise CaptureUnavailable(
            "cannot capture packets here: " + "; ".join(reasons) + ". Run as root, or give the "
            "capability with `setcap cap_net_raw,cap_net_admin+eip` (on python or dumpcap), "
            "or install tcpdump (apt-get install tcpdump)."
        )

    def _order(self) -> list[str]:
        if self.requested == "auto":
            return ["socket", "tcpdump", "dumpcap"]
        return [self.requested]

    def _start_backend(self, backend: str) -> None:
        if backend == "socket":
            self._start_socket()
        else:
            self._start_program(backend)

    def stop(self) -> CaptureSummary:
        """Stop capturing, flush the file and say what was written."""
        if not self.running:
            raise RuntimeError("capture is not running")
        seconds = time.monotonic() - self._started_at
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._proc is not None:
            self._stop_program()
            self.packets = _count_packets(self.path)
        backend = self.backend or "?"
        self._started_at = 0.0
        self.backend = None
        if self.error is not None:
            raise CaptureUnavailable(f"capture failed: {self.error}") from self.error
        return CaptureSummary(
            self.path, backend, self.interface, self.packets, self.dropped_by_python, seconds
        )

    # ------------------------------------------------------------------ raw socket

    def _start_socket(self) -> None:
        if not hasattr(socket, "AF_PACKET"):
            raise CaptureUnavailable("raw packet sockets exist only on Linux")
        self._linktype = _interface_linktype(self.interface)
        try:
            # protocol 0: nothing is queued until bind(), so no frame slips past the filter
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise CaptureUnavailable(
                "a raw packet socket needs CAP_NET_RAW (not permitted)"
            ) from None
        try:
            _attach_filter(sock, bpf_program(self.ports, self._linktype))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
            sock.bind((self.interface, ETH_P_ALL))  # CPython applies htons() itself
        except OSError as exc:
            sock.close()
            raise CaptureUnavailable(f"cannot set up the raw socket: {exc}") from None
        self._sock = sock
        self._stop.clear()
        handle = self.path.open("wb")
        writer = dpkt.pcap.Writer(handle, snaplen=SNAPLEN, linktype=self._linktype)
        handle.flush()
        self._thread = threading.Thread(
            target=self._socket_loop, args=(sock, writer, handle), name="capture", daemon=True
        )
        self._thread.start()

    def _socket_loop(self, sock: socket.socket, writer: Any, handle: IO[bytes]) -> None:
        deadline = time.monotonic() + self.max_seconds
        last_flush = time.monotonic()
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                ready, _, _ = select.select([sock], [], [], 0.1)
                if ready:
                    self._read_ready(sock, writer)
                if time.monotonic() - last_flush > 0.5:
                    handle.flush()
                    last_flush = time.monotonic()
            self._read_ready(sock, writer)  # what is still queued when asked to stop
        except OSError as exc:
            self.error = exc
        finally:
            handle.flush()
            handle.close()
            sock.close()
            self._sock = None

    def _read_ready(self, sock: socket.socket, writer: Any) -> None:
        """Read every queued frame without blocking."""
        while True:
            try:
                data, ancdata, _, addr = sock.recvmsg(SNAPLEN, 64, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            self._write_frame(writer, data, ancdata, addr)

    def _write_frame(self, writer: Any, data: bytes, ancdata: list[Any], addr: Any) -> None:
        if self.interface == "lo" and addr[2] == PACKET_OUTGOING:
            return  # the loopback shows each packet twice; keep the incoming copy
        if not frame_matches(data, self._linktype, self.ports):
            self.dropped_by_python += 1
            return
        writer.writepkt(data, ts=_timestamp(ancdata))
        self.packets += 1

    # ------------------------------------------------------------------ tcpdump / dumpcap

    def _command(self, program: str) -> list[str]:
        expr = bpf_expression(self.ports)
        seconds = str(max(1, int(self.max_seconds)))
        if program == "tcpdump":
            return [program, "-i", self.interface, "-n", "-U", "-s", "0", "-w", str(self.path),
                    "-G", seconds, "-W", "1", expr]  # fmt: skip
        return [program, "-i", self.interface, "-f", expr, "-w", str(self.path), "-P", "-q",
                "-a", f"duration:{seconds}"]  # fmt: skip

    def _start_program(self, program: str) -> None:
        exe = shutil.which(program)
        if exe is None:
            raise CaptureUnavailable(f"{program} is not installed")
        self.path.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [exe, *self._command(program)[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = (proc.stderr.read() if proc.stderr else b"").decode("utf-8", "replace")
                raise CaptureUnavailable(f"{program} exited: {_last_line(err)}")
            if self.path.exists() and self.path.stat().st_size >= 24:
                time.sleep(0.2)  # the header is written just before capturing begins
                self._proc = proc
                return
            time.sleep(0.05)
        _terminate(proc)
        raise CaptureUnavailable(f"{program} did not start capturing within 10 s")

    def _stop_program(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            time.sleep(0.3)  # let the last packets reach the file
            _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, then SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


def _timestamp(ancdata: list[Any]) -> float:
    """The kernel's receive time (SO_TIMESTAMPNS: struct timespec), else now."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return float(sec + nsec / 1e9)
    return time.time()


def _count_packets(path: Path) -> int:
    """Records in a pcap/pcapng file written by tcpdump or dumpcap."""
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in dpkt.pcap.UniversalReader(handle))
    except (OSError, ValueError, dpkt.UnpackError):
        return 0
