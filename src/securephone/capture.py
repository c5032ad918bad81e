"""Capture the phone's own traffic to a pcap file (Linux), for ``securephone verify``.

Three ways, tried in this order by ``backend="auto"``:

1. **raw socket** — an ``AF_PACKET`` socket (packet(7)) on the loopback or a named interface,
   with a classic BPF program attached (``SO_ATTACH_FILTER``, socket(7)) that lets through
   only IPv4/IPv6 UDP and TCP packets whose source or destination port is one of the phone's.
   The same test runs again in Python on every frame, so packets queued before the filter
   was attached never reach the file. Needs ``CAP_NET_RAW`` (root, or ``setcap``).
2. **tcpdump**, then 3. **dumpcap**, when installed and allowed to capture.

When none works, :class:`CaptureUnavailable` says why for each. The file is a classic pcap
(written with dpkt): Ethernet framing for Ethernet-like interfaces and the loopback, raw IP
for point-to-point ones. On the loopback each packet is kept once (the kernel shows it going
out and coming in; the outgoing copy is dropped, as libpcap does).

:class:`PacketCapture` is a small object for programs (the web interface's start/stop/
download): ``start(ports)`` returns at once, ``stop()`` returns a :class:`CaptureSummary`,
``path`` is the file. ``app`` is the ``securephone capture`` command.
"""

from __future__ import annotations

import contextlib
import ctypes
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Annotated, Any, Literal

import dpkt
import typer

from securephone.verify.pcap import decode_frame

__all__ = [
    "Backend",
    "CaptureSummary",
    "CaptureUnavailable",
    "PacketCapture",
    "PortRange",
    "app",
    "bpf_expression",
    "bpf_program",
    "frame_matches",
    "parse_ports",
]

Backend = Literal["auto", "socket", "tcpdump", "dumpcap"]
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
SNAPLEN = 262144
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
_ETHER_LIKE = {1, 772}  # ARPHRD_ETHER, ARPHRD_LOOPBACK: 14-byte Ethernet header
_RAW_IP = {65534, 776, 778}  # ARPHRD_NONE (tun), ARPHRD_SIT, ARPHRD_IPGRE
MAX_PORT_RANGES = 24


class CaptureUnavailable(RuntimeError):
    """No way to capture here; the message says what was tried and what to do."""


@dataclass(frozen=True, slots=True)
class PortRange:
    """Ports ``first``..``last`` (inclusive)."""

    first: int
    last: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def parse_ports(specs: Sequence[str | int]) -> list[PortRange]:
    """``["5060", "30000-30999"]`` → port ranges; ValueError with the bad item otherwise."""
    ranges = []
    for spec in specs:
        text = str(spec).strip()
        first, _, last = text.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"not a port or port range: {text!r}") from None
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port range out of order or outside 1-65535: {text!r}")
        ranges.append(PortRange(low, high))
    if not ranges:
        raise ValueError("give at least one port to capture")
    if len(ranges) > MAX_PORT_RANGES:
        raise ValueError(f"at most {MAX_PORT_RANGES} ports or port ranges")
    return ranges


def bpf_expression(ports: Sequence[PortRange]) -> str:
    """The pcap-filter(7) expression for tcpdump/dumpcap: ``(tcp or udp) and (port …)``."""
    terms = [f"port {r.first}" if r.first == r.last else f"portrange {r}" for r in ports]
    return f"(tcp or udp) and ({' or '.join(terms)})"


# --------------------------------------------------------------------------- classic BPF

# Opcodes (linux/filter.h, bpf(4)).
_LDH_ABS, _LDB_ABS, _LDH_IND, _LDXB_MSH = 0x28, 0x30, 0x48, 0xB1
_JEQ, _JGT, _JGE, _JSET = 0x15, 0x25, 0x35, 0x45
_AND_K, _RET_K = 0x54, 0x06

Insn = tuple[int, int, int, int]
_Label = str
_Asm = list[tuple[int, _Label | int, _Label | int, int] | _Label]


def _port_checks(ports: Sequence[PortRange], prefix: str) -> _Asm:
    """A holds a port: jump to "accept" if it is in a range, else fall through."""
    code: _Asm = []
    for n, rng in enumerate(ports):
        skip = f"{prefix}{n}"
        code.append((_JGE, 0, skip, rng.first))
        code.append((_JGT, skip, "accept", rng.last))
        code.append(skip)
    return code


def _transport_ports(link: int, ports: Sequence[PortRange]) -> _Asm:
    """IPv4 at "v4" and IPv6 at "v6", link header of ``link`` bytes; UDP/TCP ports."""
    return [
        "v4",
        (_LDB_ABS, 0, 0, link + 9),  # protocol
        (_JEQ, "v4ok", 0, 6),
        (_JEQ, "v4ok", "reject", 17),
        "v4ok",
        (_LDH_ABS, 0, 0, link + 6),  # flags + fragment offset
        (_JSET, "reject", 0, 0x1FFF),  # a later fragment carries no ports
        (_LDXB_MSH, 0, 0, link),  # X = IPv4 header length
        (_LDH_IND, 0, 0, link),  # source port
        *_port_checks(ports, "s4_"),
        (_LDH_IND, 0, 0, link + 2),  # destination port
        *_port_checks(ports, "d4_"),
        (_RET_K, 0, 0, 0),
        "v6",
        (_LDB_ABS, 0, 0, link + 6),  # next header (no extension headers)
        (_JEQ, "v6ok", 0, 6),
        (_JEQ, "v6ok", "reject", 17),
        "v6ok",
        (_LDH_ABS, 0, 0, link + 40),
        *_port_checks(ports, "s6_"),
        (_LDH_ABS, 0, 0, link + 42),
        *_port_checks(ports, "d6_"),
        "reject",
        (_RET_K, 0, 0, 0),
        "accept",
        (_RET_K, 0, 0, SNAPLEN),
    ]


def bpf_program(ports: Sequence[PortRange], linktype: int = LINKTYPE_ETHERNET) -> list[Insn]:
    """A classic BPF filter: IPv4/IPv6 UDP or TCP with a source or destination port listed.

    ``linktype`` 1 reads the EtherType at offset 12 (Ethernet and loopback frames); 101 (raw
    IP) reads the IP version nibble.
    """
    if linktype == LINKTYPE_ETHERNET:
        head: _Asm = [
            (_LDH_ABS, 0, 0, 12),
            (_JEQ, "v4", 0, 0x0800),
            (_JEQ, "v6", "reject", 0x86DD),
        ]
        link = 14
    else:
        head = [
            (_LDB_ABS, 0, 0, 0),
            (_AND_K, 0, 0, 0xF0),
            (_JEQ, "v4", 0, 0x40),
            (_JEQ, "v6", "reject", 0x60),
        ]
        link = 0
    return _assemble([*head, *_transport_ports(link, ports)])


def _assemble(code: _Asm) -> list[Insn]:
    """Resolve label names to the relative jump offsets classic BPF uses (forward only)."""
    where: dict[str, int] = {}
    count = 0
    for entry in code:
        if isinstance(entry, str):
            where[entry] = count
        else:
            count += 1
    out: list[Insn] = []
    for entry in code:
        if isinstance(entry, str):
            continue
        op, jt, jf, k = entry
        here = len(out) + 1
        out.append((op, _offset(jt, where, here), _offset(jf, where, here), k))
    return out


def _offset(target: _Label | int, where: dict[str, int], here: int) -> int:
    if isinstance(target, int):
        return target
    delta = where[target] - here
    if not 0 <= delta <= 255:
        raise ValueError("BPF program too long for its jumps: use fewer port ranges")
    return delta


def _attach_filter(sock: socket.socket, program: list[Insn]) -> None:
    """SO_ATTACH_FILTER with a ``struct sock_fprog`` (the kernel copies the program)."""
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def frame_matches(frame: bytes, linktype: int, ports: Sequence[PortRange]) -> bool:
    """The BPF program's test in Python (a second line, and the reference for tests)."""
    try:
        ip = decode_frame(linktype, frame)
    except (dpkt.UnpackError, struct.error, ValueError, IndexError):
        return False
    if ip is None or (isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset)):
        return False
    layer = ip.data
    if not isinstance(layer, dpkt.udp.UDP | dpkt.tcp.TCP):
        return False
    return any(layer.sport in r or layer.dport in r for r in ports)


# --------------------------------------------------------------------------- capture


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


# --------------------------------------------------------------------------- CLI

app = typer.Typer(
    help="Capture the phone's traffic to a pcap file.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def capture(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="pcap file to write.", show_default=False)
    ],
    port: Annotated[
        list[str],
        typer.Option(
            "--port", "-p", help="Port or range (5060, 30000-30999); repeat.", show_default=False
        ),
    ],
    interface: Annotated[str, typer.Option("--interface", "-i", help="Network interface.")] = "lo",
    duration: Annotated[
        float | None, typer.Option("--duration", "-d", help="Stop after this many seconds.")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, socket, tcpdump or dumpcap.")] = "auto",
) -> None:
    """Capture UDP and TCP packets to or from PORT on INTERFACE until --duration or Ctrl-C."""
    try:
        ports = parse_ports(port)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if backend not in ("auto", "socket", "tcpdump", "dumpcap"):
        raise _fail(f"unknown backend {backend!r}: use auto, socket, tcpdump or dumpcap")
    if duration is not None and duration <= 0:
        raise _fail("--duration must be positive")
    cap = PacketCapture(out, interface=interface, backend=backend)  # type: ignore[arg-type]
    try:
        cap.start(ports)
    except CaptureUnavailable as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"capturing on {interface} (ports {', '.join(map(str, ports))}) with {cap.backend} "
        f"to {out}; " + (f"{duration:g} s" if duration else "Ctrl-C to stop"),
        err=True,
    )
    _wait(duration)
    summary = cap.stop()
    typer.echo(f"{summary.packets} packets written to {summary.path} ({summary.seconds:.1f} s)")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"securephone: error: {message}", err=True)
    return typer.Exit(2)


def _wait(duration: float | None) -> None:
    """Sleep until ``duration`` passes or SIGINT/SIGTERM arrives."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait(duration)
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


def main() -> None:
    """Entry point for ``python -m securephone.capture``."""
    app()


if __name__ == "__main__":
    main()
