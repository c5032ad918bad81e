"""Web interface throughput: requests/s on one kept-alive HTTPS connection, new TLS connections/s.

``securephone run`` (this tree, and the ``BENCH_BASELINE`` revision when set) serves HTTPS on
127.0.0.1, pinned to one core; this process, on the other core, sends ``GET /login`` over one
kept-alive TLS connection for a few seconds, then opens a new TLS connection per request.
Printed, never asserted.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import free_port_in, print_table, source_trees

SECONDS = float(os.environ.get("BENCH_WEB_SECONDS", "3"))
REQUEST = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
CONFIG = """data_dir = "{data}"

[sip]
listen_address = "127.0.0.1"
udp_port = 0
tcp_port = 0

[media]
port_min = 25600
port_max = 25699

[web]
listen_address = "127.0.0.1"
port = {port}
"""


def _client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the phone's own self-signed certificate on loopback
    return ctx


def _read_response(tls: ssl.SSLSocket, buffer: bytearray) -> None:
    """Read one HTTP/1.1 response with a Content-Length body off ``tls``."""
    while b"\r\n\r\n" not in buffer:
        buffer += tls.recv(65536)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += tls.recv(65536)
    buffer[:] = rest[length:]


def _connect(ctx: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def keep_alive_rate(port: int) -> float:
    """Requests per second on one kept-alive HTTPS connection."""
    ctx = _client_context()
    with _connect(ctx, port) as tls:
        buffer = bytearray()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            tls.sendall(REQUEST)
            _read_response(tls, buffer)
            count += 1
        return count / (time.perf_counter() - start)


def new_connection_rate(port: int) -> float:
    """New TLS connections per second, one request on each."""
    ctx = _client_context()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < SECONDS:
        with _connect(ctx, port) as tls:
            tls.sendall(REQUEST.replace(b"keep-alive", b"close"))
            _read_response(tls, bytearray())
        count += 1
    return count / (time.perf_counter() - start)


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the web server did not start")


def measure(src: Path) -> tuple[float, float]:
    port = free_port_in(25700, 25799, socket.SOCK_STREAM)
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    config = tmp / "phone.toml"
    config.write_text(CONFIG.format(data=tmp / "data", port=port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "securephone.cli", "run", "--config", str(config),
         "--log-level", "warning"],
        env={**os.environ, "PYTHONPATH": str(src)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(proc.pid, {1 % (os.cpu_count() or 1)})
        _wait_listening(port, proc)
        return keep_alive_rate(port), new_connection_rate(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rows = [[label, *measure(src)] for label, src in source_trees()]
    print_table(
        f"Web interface over HTTPS on one core (GET /login, {SECONDS:g} s each)",
        ["tree", "kept-alive req/s", "new TLS conn/s"],
        rows,
    )


if __name__ == "__main__":
    main()
