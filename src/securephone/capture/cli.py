"""``securephone capture``: capture the phone's traffic to a pcap file from the command line."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

__all__ = ["app", "main"]

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
            "--port",
            "-p",
            help="Port or range (5060, 30000-30999); udp: or tcp: before it keeps only that "
            "transport (udp:5060, tcp:5061); repeat.",
            show_default=False,
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
        from securephone.capture.bpf import parse_ports  # dpkt: only when capturing

        ports = parse_ports(port)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if backend not in ("auto", "socket", "tcpdump", "dumpcap"):
        raise _fail(f"unknown backend {backend!r}: use auto, socket, tcpdump or dumpcap")
    if duration is not None and duration <= 0:
        raise _fail("--duration must be positive")
    from securephone.capture.backends import CaptureUnavailable, PacketCapture

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
