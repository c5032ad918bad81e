"""The desk-phone "packet capture" function: one capture of the phone's own traffic at a time.

A capture (:class:`securephone.capture.PacketCapture`) records the UDP and TCP packets to or
from the phone's SIP listen ports and its RTP/RTCP port range into one pcap file in the
phone's data directory (``capture/capture.pcap``; the directory 0700, the file 0600). It is
bounded: it stops by itself after its time limit (at most :data:`MAX_SECONDS`) or when the
file reaches :data:`MAX_BYTES`. A finished capture can be downloaded, and verified with
:func:`securephone.verify.report.analyze`; the report files are kept beside it.

:class:`CaptureControl` knows nothing of the web: it raises :class:`CaptureRefused` with an
HTTP-like status and a sentence for the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from securephone import capture
from securephone.capture import Backend, CaptureUnavailable

__all__ = [
    "MAX_BYTES",
    "MAX_SECONDS",
    "CaptureControl",
    "CaptureRefused",
    "CaptureState",
    "Verification",
    "VerifiedItem",
    "interfaces",
    "size_text",
    "unavailable_reason",
]

MAX_SECONDS = 600
MAX_BYTES = 50 * 1024 * 1024
FILE_NAME = "capture.pcap"
REPORT_DIR = "report"
REPORT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".wav": "audio/wav",
    ".png": "image/png",
}
_REPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(html|json|wav|png)")


class CaptureRefused(Exception):
    """The capture cannot do what was asked; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class VerifiedItem(BaseModel):
    """One flow or stream of the verification report."""

    kind: str
    name: str
    verdict: str
    summary: str


class Verification(BaseModel):
    """The verdict of ``securephone verify`` on the last capture."""

    overall: str = Field(description="plaintext, exposed, weak, unknown or encrypted")
    overall_text: str
    encrypted: bool = Field(description="true only when everything captured was encrypted")
    plaintext_sip_messages: int
    items: list[VerifiedItem]
    warnings: list[str]
    report: str = Field(description="file name of the HTML report (…/capture/report/NAME)")


class CaptureState(BaseModel):
    """The packet capture: running or not, what it captured, and why it cannot when it cannot."""

    running: bool
    backend: str | None = Field(description="socket, tcpdump or dumpcap")
    interface: str | None
    ports: list[str] = Field(description="SIP listen ports and the RTP/RTCP port range")
    started_at: float | None = Field(description="Unix time the capture started")
    seconds: float = Field(description="how long it ran (or runs so far)")
    max_seconds: int = Field(description="the time limit of the (last) capture, in seconds")
    max_bytes: int = Field(description="it stops by itself when the file reaches this size")
    packets: int = Field(
        description="packets written (live with the socket backend; tcpdump and dumpcap are "
        "counted when they stop)"
    )
    size: int = Field(description="bytes in the pcap file")
    downloadable: bool = Field(description="a finished capture can be downloaded")
    stopped_reason: str | None = Field(description="why the last capture ended")
    error: str | None = Field(description="why the last capture could not start or failed")
    unavailable: str | None = Field(description="why capturing is not possible here, if so")
    interfaces: list[str]
    verification: Verification | None = None


def size_text(size: int) -> str:
    """``52428800`` → ``50 MB``; small sizes in bytes."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    return f"{size} bytes"


def interfaces() -> list[str]:
    """The names of this host's network interfaces (``lo`` first when present)."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    return sorted(names, key=lambda name: (name != "lo", name))


def unavailable_reason() -> str | None:
    """Why no capture backend can work here, or None when one looks usable (a cheap check).

    A raw ``AF_PACKET`` socket with protocol 0 receives nothing, so opening one only tests the
    privilege; tcpdump and dumpcap are only looked for (they may still lack the privilege).
    """
    if hasattr(socket, "AF_PACKET"):
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
            return None
        except OSError:
            pass
    if shutil.which("tcpdump") or shutil.which("dumpcap"):
        return None
    return (
        "capturing is not possible here: a raw packet socket needs CAP_NET_RAW (run the phone "
        "as root, or `setcap cap_net_raw,cap_net_admin+eip` on its python) and neither tcpdump "
        "nor dumpcap is installed"
    )


class CaptureControl:
    """At most one capture at a time into ``directory/capture.pcap``; bounded in time and size."""

    def __init__(
        self,
        directory: Path,
        *,
        max_seconds: int = MAX_SECONDS,
        max_bytes: int = MAX_BYTES,
        backend: Backend = "auto",
        poll: float = 0.5,
    ) -> None:
        self.directory = directory
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.backend: Backend = backend
        self.poll = poll
        self.error: str | None = None
        self.stopped_reason: str | None = None
        self.verification: Verification | None = None
        self._capture: capture.PacketCapture | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ports: list[str] = []
        self._interface: str | None = None
        self._backend_used: str | None = None
        self._started_at: float | None = None
        self._started_mono = 0.0
        self._seconds = 0.0
        self._limit = max_seconds
        self._packets = 0
        self._unavailable: tuple[str | None] | None = None

    @property
    def path(self) -> Path:
        return self.directory / FILE_NAME

    @property
    def report_dir(self) -> Path:
        return self.directory / REPORT_DIR

    @property
    def running(self) -> bool:
        return self._capture is not None

    @property
    def started_at(self) -> float | None:
        return self._started_at

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def _unavailable_reason(self) -> str | None:
        if self._unavailable is None:
            self._unavailable = (unavailable_reason(),)
        return self._unavailable[0]

    def state(self) -> CaptureState:
        """What the capture page and ``GET /api/v1/capture`` show."""
        cap = self._capture
        if cap is not None:
            seconds, packets = time.monotonic() - self._started_mono, cap.packets
        else:
            seconds, packets = self._seconds, self._packets
        return CaptureState(
            running=cap is not None,
            backend=self._backend_used,
            interface=self._interface,
            ports=list(self._ports),
            started_at=self._started_at,
            seconds=round(seconds, 3),
            max_seconds=self._limit,
            max_bytes=self.max_bytes,
            packets=packets,
            size=self._size(),
            downloadable=self.downloadable,
            stopped_reason=self.stopped_reason,
            error=self.error,
            unavailable=self._unavailable_reason(),
            interfaces=interfaces(),
            verification=self.verification,
        )

    @property
    def downloadable(self) -> bool:
        return self._capture is None and self._started_at is not None and self.path.is_file()

    # -- start and stop --------------------------------------------------------------------------
    async def start(self, ports: Sequence[str], interface: str, seconds: int | None = None) -> None:
        """Start capturing ``ports`` on ``interface`` (409 when one runs, 503 when impossible)."""
        if interface not in interfaces():
            choices = ", ".join(interfaces()) or "none found"
            raise CaptureRefused(f"interface: no network interface {interface!r} ({choices})", 400)
        limit = self.max_seconds if seconds is None else seconds
        if not 1 <= limit <= self.max_seconds:
            raise CaptureRefused(f"seconds: from 1 to {self.max_seconds}", 400)
        async with self._lock:
            if self._capture is not None:
                since = time.strftime("%H:%M:%S", time.localtime(self._started_at or 0))
                raise CaptureRefused(f"a capture is already running (since {since}): stop it first")
            await self._start(list(ports), interface, limit)

    async def _start(self, ports: list[str], interface: str, limit: int) -> None:
        self._fresh_files()
        cap = capture.PacketCapture(
            self.path, interface=interface, backend=self.backend, max_seconds=limit + 5
        )
        try:
            await asyncio.to_thread(cap.start, ports)
        except CaptureUnavailable as exc:
            self.error = str(exc)
            self.path.unlink(missing_ok=True)
            raise CaptureRefused(self.error, 503) from None
        except (ValueError, OSError) as exc:
            self.error = f"the capture could not start: {exc}"
            self.path.unlink(missing_ok=True)
            raise CaptureRefused(self.error, 400 if isinstance(exc, ValueError) else 503) from None
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)  # tcpdump/dumpcap create the file themselves
        self._capture, self._ports, self._interface = cap, ports, interface
        self._backend_used, self._limit, self._packets = cap.backend, limit, 0
        self._started_at, self._started_mono = time.time(), time.monotonic()
        self.error = self.stopped_reason = None
        self._watch = asyncio.get_running_loop().create_task(self._watchdog(cap))

    def _fresh_files(self) -> None:
        """The directory (0700) with no old capture or report; an empty 0600 file to write."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        shutil.rmtree(self.report_dir, ignore_errors=True)
        self.verification = None
        self.path.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)

    async def stop(self, reason: str = "stopped on request") -> CaptureState:
        """Stop the running capture (409 when none runs); the state with the finished file."""
        async with self._lock:
            cap = self._capture
            if cap is None:
                raise CaptureRefused("no capture is running: start one first")
            await self._finish(cap, reason)
        return self.state()

    async def _finish(self, cap: capture.PacketCapture, reason: str) -> None:
        """Stop ``cap``; it counts as running until its file is complete."""
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        self._seconds = time.monotonic() - self._started_mono
        try:
            summary = await asyncio.to_thread(cap.stop)
        except (CaptureUnavailable, RuntimeError, OSError) as exc:
            self.error = str(exc)
            self._packets = cap.packets
        else:
            self._packets = summary.packets
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)
        self.stopped_reason = reason
        self._capture = None

    def _limit_reached(self, cap: capture.PacketCapture) -> str | None:
        if cap.error is not None:
            return f"the capture failed: {cap.error}"
        if time.monotonic() - self._started_mono >= self._limit:
            return f"stopped by itself after its time limit of {self._limit} s"
        if self._size() >= self.max_bytes:
            return f"stopped by itself at its size limit of {size_text(self.max_bytes)}"
        return None

    async def _watchdog(self, cap: capture.PacketCapture) -> None:
        """Stop the capture at its time or size limit (checked every ``poll`` seconds)."""
        while self._capture is cap:
            await asyncio.sleep(self.poll)
            reason = self._limit_reached(cap)
            if reason is None:
                continue
            async with self._lock:
                if self._capture is cap:
                    await self._finish(cap, reason)
            return

    async def close(self) -> None:
        """Stop a running capture (the phone shuts down); never raises."""
        with contextlib.suppress(CaptureRefused, Exception):
            if self._capture is not None:
                await self.stop("stopped because the phone shut down")

    # -- the finished file -----------------------------------------------------------------------
    def download(self) -> Path:
        """The finished pcap file (409 while capturing, 404 when there is none)."""
        if self._capture is not None:
            raise CaptureRefused("the capture is still running: stop it first")
        if not self.downloadable:
            raise CaptureRefused("no capture yet: start and stop one first", 404)
        return self.path

    def download_name(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._started_at or 0))
        return f"securephone-capture-{stamp}.pcap"

    async def verify(self) -> Verification:
        """Run ``securephone verify`` on the finished capture; report files kept beside it."""
        async with self._lock:
            path = self.download()
            self.verification = await asyncio.to_thread(_verify, path, self.report_dir)
            return self.verification

    def report_file(self, name: str) -> Path:
        """A file of the verification report by its plain name (404 for anything else)."""
        if self.verification is None or not _REPORT_NAME.fullmatch(name):
            raise CaptureRefused(f"no report file {name[:80]!r}", 404)
        path = self.report_dir / name
        if path.is_symlink() or not path.is_file():
            raise CaptureRefused(f"no report file {name[:80]!r}", 404)
        return path


def _verify(path: Path, out_dir: Path) -> Verification:
    """analyze + write_outputs (slow: runs in a worker thread)."""
    from securephone.verify.pcap import CaptureError
    from securephone.verify.report import Verdict, analyze, write_outputs

    shutil.rmtree(out_dir, ignore_errors=True)
    try:
        report = analyze(path)
    except CaptureError as exc:
        raise CaptureRefused(f"verify: {exc}", 422) from None
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = write_outputs(report, out_dir)
    return Verification(
        overall=report.overall.value,
        overall_text=report.overall_text,
        encrypted=report.overall is Verdict.ENCRYPTED,
        plaintext_sip_messages=report.plaintext_sip,
        items=[
            VerifiedItem(kind=i.kind, name=i.name, verdict=i.verdict.value, summary=i.summary)
            for i in report.items
        ],
        warnings=list(report.warnings),
        report=files["html"].name,
    )
