"""Web interface throughput: requests/s on one kept-alive HTTPS connection, new TLS connections/s.

``securephone run`` (this tree, and the ``BENCH_BASELINE`` revision when set) serves HTTPS on
127.0.0.1, pinned to one core; this process, on the other core, sends ``GET /login`` over one
kept-alive TLS connection for a few seconds, then opens a new TLS connection per request: first
one client at a time (each waits for the last, so this is the round trip, not the server's
capacity), then ``BENCH_WEB_CLIENTS`` (4) OpenSSL ``s_time -new`` clients at once — full
handshakes, no session resumption, each reading the whole page. The server's CPU over that
window (``/proc/PID/stat``) divided by the connections completed gives its CPU per connection.
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
CLIENTS = int(os.environ.get("BENCH_WEB_CLIENTS", "4"))
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def concurrent_connection_rate(port: int, server_pid: int) -> tuple[float, float]:
    """New TLS connections/s with CLIENTS OpenSSL clients at once, and server CPU ms per one.

    ``openssl s_time -new`` makes a full handshake per connection and reads the response to
    ``GET /login``; its "N connections in T real seconds" lines are summed.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        return float("nan"), float("nan")
    command = [openssl, "s_time", "-connect", f"127.0.0.1:{port}", "-new",
               "-time", str(max(1, round(SECONDS))), "-www", "/login"]  # fmt: skip
    cpu_before, start = _cpu_seconds(server_pid), time.perf_counter()
    clients = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(CLIENTS)
    ]
    outputs = [client.communicate(timeout=SECONDS + 60)[0] for client in clients]
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds(server_pid) - cpu_before
    done = 0
    for text in outputs:
        line = next((x for x in text.splitlines() if "real seconds" in x), "")
        done += int(line.split()[0]) if line[:1].isdigit() else 0
    if done == 0:
        return 0.0, float("nan")
    return done / elapsed, cpu * 1000 / done


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the web server did not start")


def measure(src: Path) -> tuple[float, float, float, float]:
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
        return (
            keep_alive_rate(port),
            new_connection_rate(port),
            *concurrent_connection_rate(port, proc.pid),
        )
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
        [
            "tree",
            "kept-alive req/s",
            "new TLS conn/s, 1 client",
            f"new TLS conn/s, {CLIENTS} clients",
            "server CPU ms/conn",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
