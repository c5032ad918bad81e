"""Shared test helpers: free ports, waiting on a condition with a deadline, far-end processes.

* :func:`free_port` — a port free on 127.0.0.1 for TCP, UDP or both, optionally an even port
  whose odd neighbour is free too (an RTP/RTCP pair, RFC 3550 §11); :func:`port_listening`
  tells when a program has bound its port.
* :func:`wait_until` / :func:`await_until` — poll a predicate until it holds or a deadline
  passes, then fail with a message that says what was awaited. Tests wait on conditions (a port
  bound, a log line, a packet count), never sleep a fixed time and then assert.
* :class:`PeerProcess` — one far-end program (Kamailio, baresip, linphonec) run under
  ``timeout -k KILL LIMIT`` in its own session, so nothing outlives a test: it remembers the
  PIDs of the wrapper and of the program, stops them by PID (never by name), kills whatever is
  left in the wrapper's process group (the program is the wrapper's child: killing only the
  wrapper would leave it running), and collects the program's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Literal, NoReturn, TypeVar

LOOPBACK = "127.0.0.1"

T = TypeVar("T")
PortKind = Literal["tcp", "udp", "both"]
Message = str | Callable[[], str]

_KINDS: dict[str, tuple[socket.SocketKind, ...]] = {
    "tcp": (socket.SOCK_STREAM,),
    "udp": (socket.SOCK_DGRAM,),
    "both": (socket.SOCK_DGRAM, socket.SOCK_STREAM),
}


# --------------------------------------------------------------------------- ports


def port_free(port: int, kind: PortKind = "udp", host: str = LOOPBACK) -> bool:
    """True when ``port`` can be bound on ``host`` for every protocol of ``kind`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for sock_type in _KINDS[kind]:
        with socket.socket(family, sock_type) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_port(kind: PortKind = "udp", *, pair: bool = False, host: str = LOOPBACK) -> int:
    """A port free on ``host`` for ``kind`` (``tcp``, ``udp`` or ``both`` on one number).

    With ``pair`` the port is even and the next (odd) one is free as well: an RTP/RTCP pair, or
    baresip's SIP port P whose TLS listener takes P+1. The kernel picks the candidate (port 0),
    so parallel test runs rarely collide; a clash after this returns is still possible, and the
    harnesses retry when a program reports its port taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        with socket.socket(family, _KINDS[kind][0]) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if pair:
            port &= ~1
        ports = (port, port + 1) if pair else (port,)
        if port > 0 and ports[-1] < 65536 and all(port_free(p, kind, host) for p in ports):
            return port
    raise OSError(f"no free {kind} port{' pair' if pair else ''} on {host}")


def port_listening(port: int, kind: Literal["tcp", "udp"] = "udp") -> bool:
    """True when some socket on this machine is bound to UDP ``port`` or listens on TCP ``port``.

    Read from /proc/net (IPv4 and IPv6) without binding anything, so asking never races with
    the program about to bind the port.
    """
    for table in (f"/proc/net/{kind}", f"/proc/net/{kind}6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state = fields[1], fields[3]
                bound = int(local.rsplit(":", 1)[1], 16) == port
                if bound and (kind == "udp" or state == "0A"):  # 0A = TCP_LISTEN
                    return True
    return False


# --------------------------------------------------------------------------- waiting


def _text(message: Message) -> str:
    return message() if callable(message) else message


def _timed_out(
    message: Message, timeout: float, error: type[Exception], reason: str | None = None
) -> NoReturn:
    why = f"gave up: {reason}" if reason else f"not within {timeout:g} s"
    head, newline, rest = _text(message).partition("\n")
    raise error(f"{head} ({why}){newline}{rest}")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: Message = "condition not met",
    *,
    error: type[Exception] = TimeoutError,
    give_up: Callable[[], str | None] | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` s until it returns something true; return that.

    After ``timeout`` s raise ``error`` (TimeoutError by default) with ``message`` (a string,
    or a callable for text that is only worth building on failure, such as a log tail).
    ``give_up`` may say early that waiting is pointless (a process exited): it returns a reason,
    or None to go on.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        reason = give_up() if give_up is not None else None
        if reason is not None or time.monotonic() >= deadline:
            _timed_out(message, timeout, error, reason)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


async def await_until(
    predicate: Callable[[], T | Awaitable[T | None] | None],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: Message = "condition not met",
    *,
    error: type[Exception] = TimeoutError,
    give_up: Callable[[], str | None] | None = None,
) -> T:
    """:func:`wait_until` for asyncio tests: the event loop runs between polls.

    ``predicate`` may be a plain function or a coroutine function.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        reason = give_up() if give_up is not None else None
        if reason is not None or time.monotonic() >= deadline:
            _timed_out(message, timeout, error, reason)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))


# --------------------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    with contextlib.suppress(OSError, ValueError):
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def group_members(pgid: int) -> list[int]:
    """Live PIDs (zombies excluded) whose process group is ``pgid`` (from /proc/PID/stat)."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _exe_name(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    return ""


Stdio = int | IO[bytes]


class PeerProcess:
    """A far-end program under ``timeout -k KILL_AFTER TIME_LIMIT``, stopped by PID.

    ``log_path`` is the program's log: its stdout and stderr go there unless :meth:`start` is
    given other streams (a pseudo-terminal), in which case it names the log the program writes
    itself. ``child_name`` picks the program among the wrapper's children by executable name
    (default: the first child).
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        time_limit: float,
        kill_after: float = 5.0,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        child_name: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.time_limit = time_limit
        self.kill_after = kill_after
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.child_name = child_name
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def wrapper_pid(self) -> int | None:
        """PID of the ``timeout`` wrapper (also the process group id), while started."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the wrapper (and so the program) has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, stdin: Stdio = subprocess.DEVNULL, output: Stdio | None = None) -> None:
        """Start the wrapper in a new session and note the program's PID."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} already started")
        timeout = shutil.which("timeout")
        if timeout is None:
            raise RuntimeError("timeout (coreutils) is not installed")
        if output is None:
            self._log = self.log_path.open("ab")
            output = self._log
        wrapper = [timeout, "-k", f"{self.kill_after:g}", f"{self.time_limit:g}"]
        self._proc = subprocess.Popen(
            [*wrapper, *self.command],
            stdin=stdin,
            stdout=output,
            stderr=subprocess.STDOUT if output is self._log else output,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,
        )
        with contextlib.suppress(TimeoutError):
            self.pid = wait_until(self._find_child, 5.0, 0.01, give_up=self._exited)

    def _find_child(self) -> int | None:
        assert self._proc is not None
        for child in children(self._proc.pid):
            if self.child_name is None or _exe_name(child) == self.child_name:
                return child
        return None

    def _exited(self) -> str | None:
        return None if self.running else f"{self.name} exited"

    def wait_ready(
        self,
        predicate: Callable[[], T | None],
        timeout: float,
        what: Message,
        error: type[Exception] = RuntimeError,
    ) -> T:
        """Wait until ``predicate`` holds; fail at once with the log tail if the program exits."""
        return wait_until(
            predicate,
            timeout,
            0.05,
            lambda: f"{self.name}: {_text(what)}\n{self.log_tail()}",
            error=error,
            give_up=self._exited,
        )

    def stop(
        self,
        graceful: Callable[[], object] | None = None,
        *,
        grace: float = 2.0,
        term_wait: float = 1.0,
        linger: float = 0.0,
    ) -> None:
        """Stop by PID: ``graceful()`` (e.g. a quit command) and ``grace`` s to exit, then
        SIGTERM to the program and ``term_wait`` s, ``linger`` s for its own children to go,
        then SIGKILL to whatever is left in the wrapper's process group. Idempotent."""
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None and graceful is not None:
                with contextlib.suppress(Exception):
                    graceful()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
            if proc is not None and proc.poll() is None:
                self._terminate(proc, term_wait)
            if proc is not None and linger > 0:
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda: not group_members(proc.pid), linger)
        finally:
            if proc is not None:
                _kill_group(proc)
            self._proc = None
            self.pid = None
            if self._log is not None:
                self._log.close()
                self._log = None

    def _terminate(self, proc: subprocess.Popen[bytes], wait: float) -> None:
        """SIGTERM to the program while it is still the wrapper's child, else to the wrapper."""
        with contextlib.suppress(ProcessLookupError):
            if self.pid is not None and self.pid in children(proc.pid):
                os.kill(self.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)

    def log_text(self) -> str:
        """The log so far (empty before the program wrote one)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL everything left in the wrapper's process group (pgid = the wrapper's PID)."""
    if proc.poll() is None or group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not group_members(proc.pid), 5.0)
