"""Run a real baresip 1.0.0 (Debian ``baresip-core``) headless on 127.0.0.1 as a far-end phone.

The harness writes a private config directory (``config``, ``accounts``) and runs
``timeout -k 5 LIMIT baresip -f DIR -n 127.0.0.1 -s`` in its own process group, stdout and
stderr going to ``baresip.log``.  It remembers the PIDs of the ``timeout`` wrapper and of
baresip and stops them by PID (``/quit``, then SIGTERM, then SIGKILL of the wrapper's group),
so nothing is left behind even when a test fails.  All sockets are on 127.0.0.1 and every
port is allocated free, so instances run in parallel (pytest-xdist):

* SIP: UDP and TCP on ``sip_port`` P, TLS on P+1 (baresip 1.0.0 always listens on P+1 for
  TLS, certificate or not);
* ``ctrl_tcp`` (commands and events, netstring-framed JSON) and ``cons`` (key presses, used
  for DTMF: 1.0.0 has no DTMF command) each on their own TCP port;
* RTP/RTCP inside a 100-port block of 21000-29999 (securephone keeps 20000-20999) reserved with a lock file in the temp dir
  (below the kernel's ephemeral range, so ports other tests bind to 0 never land there).

What 1.0.0 does that a test must know:

* ``dial`` appends the account's own URI parameters (``;transport=udp``) to the dialled URI;
  :meth:`Baresip.dial` therefore removes a matching ``;transport=`` from the URI it is given.
* The ``menu`` module hangs the call up when the ``aufile`` source reaches its end
  (``AUDIO_ERROR "end of file"``): the source WAV is copied, converted to 8 kHz mono 16-bit
  and padded with silence (or looped) to ``min_source_seconds``.
* ``sndfile`` writes ``dump-<YYYY-MM-DD-hh-mm-ss>-dec.wav`` (what was heard, decoded) and
  ``-enc.wav`` (what was sent) per call into ``snd_path``; the WAV header is finalised when
  the call ends (two calls started in the same second share a name).
* 1.0.0 does not verify the TLS server certificate (no ``sip_verify_server``).
* ctrl_tcp only reports events that happen while a client is connected: the account is
  therefore created with ``/uanew`` after the harness connected (``accounts`` stays empty,
  the line is kept in ``config/account-line``), so ``REGISTER_OK`` is never missed.
* ``CALL_RTCP`` events arrive at call start too, so "audio flowed" is best checked with
  :meth:`Baresip.wait_heard` (the decoded dump has grown to N seconds).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import random
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import numpy as np

from ..helpers import PeerProcess, free_port, port_free, wait_until
from .audio_tools import RATE, read_wav, write_wav

LOOPBACK = "127.0.0.1"
BARESIP = "/usr/bin/baresip"
MODULE_DIR = Path("/usr/lib/baresip/modules")
CODEC_MODULES = {"G722": "g722.so", "opus": "opus.so"}  # loaded when audio_codecs names them
REQUIRED_MODULES = ("g711.so", "aufile.so", "sndfile.so", "ctrl_tcp.so", "menu.so", "cons.so")
RTP_BLOCK = 100
RTP_FIRST, RTP_LAST = 21000, 29999  # above securephone's default 20000-20999

Transport = Literal["udp", "tcp", "tls"]
TRANSPORTS: frozenset[str] = frozenset({"udp", "tcp", "tls"})
MEDIAENC: frozenset[str] = frozenset({"srtp", "srtp-mand", "srtp-mandf", "dtls_srtp"})
ANSWERMODES: frozenset[str] = frozenset({"auto", "manual", "early"})
DTMF_DIGITS = frozenset("0123456789*#")
_NAME_RE = re.compile(r"[A-Za-z0-9._~+-]{1,64}")
_SAFE_VALUE_RE = re.compile(r"[^\r\n\"<>;]*")
_URI_RE = re.compile(r"sips?:[^\s\"<>]+")
_PASSWORD_RE = re.compile(r"[^\s;\"<>]+")
_BIND_ERRORS = ("Address already in use", "failed to listen")


class BaresipError(RuntimeError):
    """baresip could not be configured, started, commanded or stopped, or an event is late."""


@dataclass(frozen=True)
class ProxyAccount:
    """Register through a proxy/registrar (RFC 3261 §10) instead of a direct account.

    ``outbound`` is the proxy URI with its transport, e.g. ``sip:127.0.0.1:5061;transport=tls``;
    the AOR is ``sip:USER@DOMAIN;transport=T`` (T = the instance's transport).
    """

    user: str
    password: str
    outbound: str
    domain: str = LOOPBACK
    auth_user: str | None = None
    regint: int = 600


@dataclass(frozen=True)
class TlsFiles:
    """``sip_certificate`` (private key + certificate chain in one PEM; baresip uses it as
    TLS server certificate and as its client certificate) and ``sip_cafile``."""

    certificate: Path
    cafile: Path | None = None


# --------------------------------------------------------------------------- helpers


def missing_tools() -> list[str]:
    """What the harness needs that is not installed (binary, ``timeout``, modules)."""
    missing = [name for name in (BARESIP, "timeout") if shutil.which(name) is None]
    missing += [
        f"{MODULE_DIR}/{mod}" for mod in REQUIRED_MODULES if not (MODULE_DIR / mod).exists()
    ]
    return missing


class PortRange:
    """A block of UDP ports reserved across processes with an ``flock``-ed file."""

    def __init__(self, first: int, last: int, lock: IO[bytes]) -> None:
        self.first = first
        self.last = last
        self._lock: IO[bytes] | None = lock

    @classmethod
    def reserve(cls, size: int = RTP_BLOCK) -> PortRange:
        """Pick a random free block of ``size`` ports in 21000-29999 and lock it."""
        starts = list(range(RTP_FIRST, RTP_LAST + 1 - size + 1, size))
        random.shuffle(starts)
        for first in starts:
            lock = open(Path(tempfile.gettempdir()) / f"securephone-rtp-{first}.lock", "ab")  # noqa: SIM115
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            if all(port_free(p, "udp") for p in range(first, first + size)):
                return cls(first, first + size - 1, lock)
            lock.close()
        raise BaresipError(f"no free block of {size} UDP ports in {RTP_FIRST}-{RTP_LAST}")

    def release(self) -> None:
        """Give the block back (closing the file drops the lock)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last


def _wav_byte_rate(path: Path) -> int:
    """Bytes per second from a WAV header (written when the dump opens, before its sizes):
    the rate and channel count follow the codec (16 kHz G.722, 48 kHz stereo Opus)."""
    with path.open("rb") as wav:
        header = wav.read(32)
    rate = int.from_bytes(header[28:32], "little") if len(header) == 32 else 0
    return rate or 2 * RATE


def _netstring(payload: bytes) -> bytes:
    """Frame ``payload`` as a netstring (``LEN:payload,``), as ctrl_tcp expects."""
    return str(len(payload)).encode() + b":" + payload + b","


def parse_netstrings(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete netstring at the start of ``buffer``."""
    found: list[bytes] = []
    while True:
        colon = buffer.find(b":")
        if colon < 0:
            if len(buffer) > 10:
                raise BaresipError(f"bad netstring prefix {bytes(buffer[:20])!r}")
            return found
        length_text = bytes(buffer[:colon])
        if not length_text.isdigit():
            raise BaresipError(f"bad netstring length {length_text!r}")
        length = int(length_text)
        end = colon + 1 + length
        if len(buffer) < end + 1:
            return found
        if buffer[end : end + 1] != b",":
            raise BaresipError("netstring without its trailing comma")
        found.append(bytes(buffer[colon + 1 : end]))
        del buffer[: end + 1]


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{kind} {value!r} has characters the harness does not allow")
    return value


# --------------------------------------------------------------------------- the harness


class Baresip:
    """One baresip instance on 127.0.0.1 (context manager, or start()/stop()).

    ``proxy`` None gives a direct account ``<sip:USER@127.0.0.1:P;transport=T>;regint=0``;
    with a :class:`ProxyAccount` it registers through ``outbound``.  ``audio_source`` is a WAV
    (any rate/width; converted to 8 kHz mono 16-bit and padded with silence, or looped when
    ``loop_source``, to ``min_source_seconds``); None sends silence.  ``record`` loads
    ``sndfile`` to dump each call's audio into :attr:`record_dir`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        user: str = "baresip",
        transport: Transport = "udp",
        proxy: ProxyAccount | None = None,
        mediaenc: str | None = None,
        answermode: str = "auto",
        audio_codecs: Sequence[str] = ("PCMU", "PCMA"),
        audio_source: Path | None = None,
        loop_source: bool = False,
        min_source_seconds: float = 60.0,
        record: bool = True,
        tls: TlsFiles | None = None,
        sip_trace: bool = True,
        extra_config: Mapping[str, str] | None = None,
        extra_account_params: Mapping[str, str] | None = None,
        time_limit: float = 300.0,
        sample_rate: int = RATE,
        ipv6: bool = False,
    ) -> None:
        """``ipv6``: SIP and RTP on ``::1`` (``-6 -n ::1``); the control sockets stay on 127.0.0.1."""
        if transport not in TRANSPORTS:
            raise ValueError(f"transport {transport!r}: use udp, tcp or tls")
        if mediaenc is not None and mediaenc not in MEDIAENC:
            raise ValueError(f"mediaenc {mediaenc!r}: use one of {sorted(MEDIAENC)} or None")
        if answermode not in ANSWERMODES:
            raise ValueError(f"answermode {answermode!r}: use one of {sorted(ANSWERMODES)}")
        self.workdir = Path(workdir)
        self.user = _check("user", proxy.user if proxy else user, _NAME_RE)
        self.transport: Transport = transport
        self.proxy = proxy
        self.mediaenc = mediaenc
        self.answermode = answermode
        self.audio_codecs = tuple(_check("codec", c, _NAME_RE) for c in audio_codecs)
        self.audio_source = audio_source
        self.loop_source = loop_source
        self.min_source_seconds = min_source_seconds
        self.record = record
        self.tls = tls
        self.sip_trace = sip_trace
        self.extra_config = dict(extra_config or {})
        self.extra_account_params = dict(extra_account_params or {})
        self.time_limit = time_limit
        self.sample_rate = sample_rate  # audio device rate (8 kHz; 16/48 kHz for HD codecs)
        self.ipv6 = ipv6
        self.host = "::1" if ipv6 else LOOPBACK
        self.uri_host = "[::1]" if ipv6 else LOOPBACK
        self.config_dir = self.workdir / "config"
        self.record_dir = self.workdir / "recordings"
        self.log_path = self.workdir / "baresip.log"
        self.source_path = self.workdir / "source.wav"
        self.sip_port = 0
        self.ctrl_port = 0
        self.cons_port = 0
        self.rtp_ports: PortRange | None = None
        self.events: list[dict[str, Any]] = []
        self._peer: PeerProcess | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self._cursors: dict[str, int] = {}
        self._tokens = itertools.count(1)
        self._reader_error: BaseException | None = None
        self._send_lock = threading.Lock()
        self.bad_messages: list[bytes] = []

    # ------------------------------------------------------------------ addresses

    @property
    def tls_port(self) -> int:
        """baresip's TLS listener: always the SIP port + 1."""
        return self.sip_port + 1

    @property
    def listen_port(self) -> int:
        """The port this instance receives its transport's requests on."""
        return self.tls_port if self.transport == "tls" else self.sip_port

    @property
    def sip_uri(self) -> str:
        """Direct URI that reaches this instance, e.g. ``sip:bob@127.0.0.1:P;transport=udp``."""
        return f"sip:{self.user}@{self.uri_host}:{self.listen_port};transport={self.transport}"

    @property
    def aor(self) -> str:
        """The account's address of record as written in ``accounts`` (without ``<>``)."""
        if self.proxy is not None:
            return f"sip:{self.user}@{self.proxy.domain};transport={self.transport}"
        return f"sip:{self.user}@{self.uri_host}:{self.listen_port};transport={self.transport}"

    @property
    def wrapper_pid(self) -> int | None:
        """PID of the ``timeout`` wrapper (also the process group id), while started."""
        return None if self._peer is None else self._peer.wrapper_pid

    @property
    def pid(self) -> int | None:
        """PID of baresip (the wrapper's child), while started."""
        return None if self._peer is None else self._peer.pid

    @property
    def running(self) -> bool:
        """True while the ``timeout`` wrapper (and so baresip) has not exited."""
        return self._peer is not None and self._peer.running

    # ------------------------------------------------------------------ config

    def account_line(self) -> str:
        """The single line of ``accounts`` (baresip 1.0.0 syntax)."""
        params: dict[str, str] = {}
        if self.proxy is not None:
            proxy = self.proxy
            params["auth_user"] = _check("auth_user", proxy.auth_user or proxy.user, _NAME_RE)
            params["auth_pass"] = _check("password", proxy.password, _PASSWORD_RE)
            params["outbound"] = '"' + _check("outbound", proxy.outbound, _URI_RE) + '"'
            params["regint"] = str(int(proxy.regint))
        else:
            params["regint"] = "0"
        params["answermode"] = self.answermode
        params["audio_codecs"] = ",".join(self.audio_codecs)
        if self.mediaenc is not None:
            params["mediaenc"] = self.mediaenc
        for key, value in self.extra_account_params.items():
            params[_check("account parameter", key, _NAME_RE)] = _check(
                "account value", value, _SAFE_VALUE_RE
            )
        rest = "".join(f";{key}={value}" for key, value in params.items())
        return f"<{self.aor}>{rest}"

    def config_items(self) -> dict[str, str | list[str]]:
        """Every ``config`` key; ``module`` lines as a list (order matters)."""
        modules = ["g711.so", "aufile.so", "cons.so"]
        modules += [CODEC_MODULES[c] for c in self.audio_codecs if c in CODEC_MODULES]
        if self.record:
            modules.append("sndfile.so")
        if self.mediaenc in ("srtp", "srtp-mand", "srtp-mandf"):
            modules.append("srtp.so")
        if self.mediaenc == "dtls_srtp":
            modules.append("dtls_srtp.so")
        assert self.rtp_ports is not None
        items: dict[str, str | list[str]] = {
            "poll_method": "epoll",
            "sip_listen": f"{self.uri_host}:{self.sip_port}",
            "call_local_timeout": "120",
            "call_max_calls": "4",
            "audio_player": "aufile,/dev/null",
            "audio_source": f"aufile,{self.source_path}",
            "audio_alert": "aufile,/dev/null",
            "ausrc_srate": str(self.sample_rate),
            "auplay_srate": str(self.sample_rate),
            "ausrc_channels": "1",
            "auplay_channels": "1",
            "audio_level": "no",
            "ausrc_format": "s16",
            "auplay_format": "s16",
            "auenc_format": "s16",
            "audec_format": "s16",
            "audio_buffer": "20-160",
            "rtp_tos": "184",
            "rtp_ports": f"{self.rtp_ports.first}-{self.rtp_ports.last}",
            "rtcp_mux": "no",
            "jitter_buffer_delay": "5-10",
            "net_interface": self.host,
            "module_path": str(MODULE_DIR),
            "module": modules,
            "module_tmp": ["uuid.so", "account.so"],
            "module_app": ["menu.so", "ctrl_tcp.so"],
            "ctrl_tcp_listen": f"{LOOPBACK}:{self.ctrl_port}",
            "cons_listen": f"{LOOPBACK}:{self.cons_port}",
            "statmode_default": "off",
        }
        if self.tls is not None:
            items["sip_certificate"] = str(self.tls.certificate)
            if self.tls.cafile is not None:
                items["sip_cafile"] = str(self.tls.cafile)
        if self.record:
            items["snd_path"] = str(self.record_dir)
        for key, value in self.extra_config.items():
            checked = _check("value", value, _SAFE_VALUE_RE)
            current = items.get(_check("config key", key, _NAME_RE))
            if isinstance(current, list):
                current.append(checked)  # module / module_tmp / module_app: load one more
            else:
                items[key] = checked
        return items

    def write_config(self) -> None:
        """Write ``config``, ``accounts`` and the padded source WAV into the work dir."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        lines = ["# generated by tests/interop/baresip.py"]
        for key, value in self.config_items().items():
            for one in value if isinstance(value, list) else [value]:
                lines.append(f"{key}\t{one}")
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        # The account is created with /uanew once ctrl_tcp is connected (see start()), so
        # that its REGISTER_OK/REGISTER_FAIL events are not sent before anyone listens.
        (self.config_dir / "accounts").write_text("")
        (self.config_dir / "account-line").write_text(self.account_line() + "\n")
        (self.config_dir / "contacts").write_text("")
        self._write_source()

    def _write_source(self) -> None:
        rate = self.sample_rate
        target = round(self.min_source_seconds * rate)
        if self.audio_source is None:
            samples = np.zeros(target, dtype=np.int16)
        else:
            samples, _ = read_wav(self.audio_source, rate)
            if self.loop_source and len(samples):
                samples = np.tile(samples, -(-target // len(samples)))
        padded = np.zeros(max(target, len(samples)), dtype=np.int16)
        padded[: len(samples)] = samples
        write_wav(self.source_path, padded, rate)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Baresip:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, ready_timeout: float = 10.0) -> None:
        """Allocate ports, write the config, start baresip and connect to ctrl_tcp.

        Retries with new ports when a port was taken in the meantime.
        """
        if self._peer is not None:
            raise BaresipError("baresip already started")
        missing = missing_tools()
        if missing:
            raise BaresipError(f"not installed: {', '.join(missing)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self._cond:
            self.events.clear()
            self._cursors.clear()
            self._responses.clear()
        for attempt in range(4):
            offset = len(self.log_text())
            try:
                self._allocate_ports()
                self.write_config()
                self._launch()
                self._connect(ready_timeout)
                self._create_account()
                return
            except BaresipError:
                new_log = self.log_text()[offset:]
                self.stop()
                if attempt == 3 or not any(err in new_log for err in _BIND_ERRORS):
                    raise
            except BaseException:
                self.stop()
                raise

    def _allocate_ports(self) -> None:
        self.sip_port = free_port("both", pair=True, host=self.host)  # TLS on sip_port + 1
        self.ctrl_port = free_port("tcp")
        self.cons_port = free_port("both")
        while self.cons_port == self.ctrl_port or self.cons_port in (
            self.sip_port,
            self.tls_port,
        ):
            self.cons_port = free_port("both")
        if self.rtp_ports is None:
            self.rtp_ports = PortRange.reserve()

    def command_line(self) -> list[str]:
        """The baresip command (without the ``timeout`` wrapper)."""
        family = ["-6"] if self.ipv6 else []
        trace = ["-s"] * self.sip_trace
        return [BARESIP, "-f", str(self.config_dir), *family, "-n", self.host, *trace]

    def _launch(self) -> None:
        self._peer = PeerProcess(
            "baresip",
            self.command_line(),
            log_path=self.log_path,
            time_limit=self.time_limit,
            cwd=self.workdir,
        )
        self._peer.start()

    def _connect(self, timeout: float) -> None:
        """Connect to ctrl_tcp once it listens and baresip says it is ready."""
        assert self._peer is not None
        deadline = time.monotonic() + timeout
        sock = self._peer.wait_ready(
            self._try_connect, timeout, f"ctrl_tcp not reachable on {self.ctrl_port}", BaresipError
        )
        try:
            left = max(0.0, deadline - time.monotonic())
            self._peer.wait_ready(
                lambda: "baresip is ready." in self.log_text(), left, "not ready", BaresipError
            )
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(target=self._read_loop, name="baresip-ctrl", daemon=True)
        self._reader.start()

    def _try_connect(self) -> socket.socket | None:
        try:
            return socket.create_connection((LOOPBACK, self.ctrl_port), timeout=1.0)
        except OSError:
            return None

    def _create_account(self) -> None:
        reply = self.command("uanew", self.account_line())
        if "Creating UA" not in str(reply.get("data", "")) or f"{self.user}@" not in str(
            reply.get("data", "")
        ):
            raise BaresipError(f"uanew did not create the account: {reply!r}")

    def stop(self) -> None:
        """Quit baresip; SIGTERM then SIGKILL by PID if needed; reap the process group."""
        peer, self._peer = self._peer, None
        try:
            if peer is not None:
                peer.stop(self._quit if self._sock is not None else None)
        finally:
            self._close_control()
            if self.rtp_ports is not None:
                self.rtp_ports.release()
                self.rtp_ports = None

    def _quit(self) -> None:
        self.command("quit", timeout=1.0, check=False)

    def _close_control(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
            self._reader = None

    # ------------------------------------------------------------------ ctrl_tcp

    def _read_loop(self) -> None:
        sock = self._sock
        buffer = bytearray()
        try:
            while sock is not None:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                for payload in parse_netstrings(buffer):
                    self._dispatch(payload)
        except (OSError, BaresipError) as exc:
            self._reader_error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _dispatch(self, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace")
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.bad_messages.append(payload)
            return
        with self._cond:
            if message.get("event"):
                message["_raw"] = text
                self.events.append(message)
            elif message.get("response") and "token" in message:
                self._responses[str(message["token"])] = message
            self._cond.notify_all()

    def command(
        self, name: str, params: str | None = None, *, timeout: float = 10.0, check: bool = True
    ) -> dict[str, Any]:
        """Send a ctrl_tcp command (``{"command", "params", "token"}``) and return its reply.

        The reply is ``{"response": true, "ok": bool, "data": str, "token": str}``; with
        ``check`` a reply with ``ok`` false raises :class:`BaresipError`.
        """
        sock = self._sock
        if sock is None:
            raise BaresipError("baresip is not running (no ctrl_tcp connection)")
        token = f"t{next(self._tokens)}"
        request: dict[str, str] = {"command": name, "token": token}
        if params is not None:
            request["params"] = params
        with self._send_lock:
            sock.sendall(_netstring(json.dumps(request).encode()))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._reader is None or not self._reader.is_alive():
                    raise BaresipError(f"no reply to {name!r} within {timeout} s")
                self._cond.wait(left)
            reply = self._responses.pop(token)
        if check and not reply.get("ok"):
            raise BaresipError(f"{name} {params or ''} failed: {reply.get('data', '')!r}")
        return reply

    def dial(self, uri: str) -> dict[str, Any]:
        """Call ``uri`` (``/dial``).  A ``;transport=`` equal to this account's transport is
        removed (baresip appends its own); a different one is refused."""
        return self.command("dial", self._dial_uri(uri))

    def _dial_uri(self, uri: str) -> str:
        uri = uri.strip()
        if uri.startswith("<") or any(ch in uri for ch in '\r\n" '):
            raise ValueError(f"dial takes a bare SIP URI, not {uri!r}")
        match = re.search(r";transport=([A-Za-z]+)", uri, flags=re.IGNORECASE)
        if match is None:
            return uri
        if match.group(1).lower() != self.transport:
            raise ValueError(
                f"{uri!r}: baresip 1.0.0 appends ;transport={self.transport} from its account; "
                "use an instance with the transport you want"
            )
        return uri[: match.start()] + uri[match.end() :]

    def hangup(self) -> dict[str, Any]:
        """Hang up the current call (``/hangup``)."""
        return self.command("hangup")

    def answer(self) -> dict[str, Any]:
        """Answer the ringing call (``/accept``; for ``answermode="manual"``)."""
        return self.command("accept")

    def send_dtmf(self, digits: str, interval: float = 0.25) -> None:
        """Send DTMF in the current call (RFC 4733 telephone-events).

        1.0.0 has no DTMF command: the digits go to the ``cons`` console as key presses,
        which ``menu`` turns into ``call_send_digit``; one key per ``interval`` seconds.
        Only during a call: without one, ``menu`` would treat the keys as a number to dial.
        """
        bad = set(digits) - DTMF_DIGITS
        if bad or not digits:
            raise ValueError(f"DTMF digits must be 0-9, * or #: {digits!r}")
        if self._sock is None:
            raise BaresipError("baresip is not running")
        with socket.create_connection((LOOPBACK, self.cons_port), timeout=5.0) as sock:
            for digit in digits:
                sock.sendall(digit.encode())
                time.sleep(interval)

    # ------------------------------------------------------------------ events

    def wait_event(
        self,
        event_type: str,
        timeout: float = 10.0,
        *,
        since: int | None = None,
        param: str | None = None,
    ) -> dict[str, Any]:
        """Wait for the next event of ``event_type`` (e.g. ``CALL_ESTABLISHED``) and return it.

        Successive calls for one type return successive events (a per-type cursor) unless
        ``since`` (an index into :attr:`events`) is given; ``param`` also filters on the
        event's ``param``.  The event dict holds baresip's JSON fields plus ``_raw``, the JSON
        text as received.  Raises :class:`BaresipError` on timeout or if baresip died.
        """
        start = self._cursors.get(event_type, 0) if since is None else since
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(start, len(self.events)):
                    event = self.events[index]
                    if event.get("type") == event_type and (
                        param is None or event.get("param") == param
                    ):
                        if since is None:
                            self._cursors[event_type] = index + 1
                        return event
                left = deadline - time.monotonic()
                dead = self._reader is None or not self._reader.is_alive()
                if left <= 0 or dead:
                    seen = [str(e.get("type")) for e in self.events]
                    why = f"control connection closed: {self._reader_error}" if dead else ""
                    why = why or f"{timeout} s passed"
                    raise BaresipError(
                        f"no {event_type} event ({why}); events so far: {seen}\n{self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.5))

    def event_types(self) -> list[str]:
        """The ``type`` of every event so far, in order."""
        with self._cond:
            return [str(e.get("type")) for e in self.events]

    def wait_registered(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for ``REGISTER_OK``; a ``REGISTER_FAIL`` first raises with its reason."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                for event in self.events:
                    if event.get("type") == "REGISTER_OK":
                        return event
                    if event.get("type") == "REGISTER_FAIL":
                        raise BaresipError(f"registration failed: {event.get('param')!r}")
            if time.monotonic() > deadline:
                raise BaresipError(f"not registered within {timeout} s:\n{self.log_tail()}")
            with self._cond:
                self._cond.wait(0.2)

    # ------------------------------------------------------------------ files

    def wait_heard(self, seconds: float, timeout: float = 15.0) -> Path:
        """Wait until the newest ``dec`` dump holds ``seconds`` of received audio; return it.

        Use it to let a call carry enough audio before hanging up, instead of sleeping.
        """

        def heard() -> float:
            found = self.recordings("dec")
            return (found[-1].stat().st_size - 44) / _wav_byte_rate(found[-1]) if found else 0.0

        wait_until(
            lambda: bool(self.recordings("dec")) and heard() >= seconds,
            timeout,
            message=lambda: (
                f"heard {max(heard(), 0.0):.2f} s of audio, wanted {seconds} s "
                f"(recordings: {self.recordings('dec')}):\n{self.log_tail()}"
            ),
            error=BaresipError,
            give_up=lambda: None if self.running else "baresip is not running",
        )
        return self.recordings("dec")[-1]

    def recordings(self, kind: Literal["dec", "enc"] = "dec") -> list[Path]:
        """The ``sndfile`` dumps: ``dec`` = audio received (decoded), ``enc`` = audio sent.

        Sorted oldest first.  A dump's WAV header is finalised only when its call ends (see
        :meth:`wait_recordings`); :func:`audio_tools.read_wav` reads unfinished ones too.
        """
        if not self.record_dir.exists():
            return []
        found = self.record_dir.glob(f"dump-*-{kind}.wav")
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    def wait_recordings(
        self, count: int = 1, timeout: float = 10.0, kind: Literal["dec", "enc"] = "dec"
    ) -> list[Path]:
        """Wait until ``count`` dumps of ``kind`` exist with finalised WAV headers."""

        def finished() -> list[Path]:
            found = self.recordings(kind)
            ok = len(found) >= count and all(_wav_finalised(p) for p in found)
            return found if ok else []

        return wait_until(
            finished,
            timeout,
            message=lambda: f"finished {kind} recordings, wanted {count}: {self.recordings(kind)}",
            error=BaresipError,
        )

    def log_text(self) -> str:
        """Everything baresip printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def logged_sdp_addresses(self) -> list[str]:
        """Addresses of every SDP ``c=``/``o=`` line in the SIP trace (needs ``sip_trace``).

        The trace (``-s``) shows messages after TLS decryption, both directions.
        """
        found: list[str] = []
        for line in self.log_text().splitlines():
            if line.startswith(("c=IN IP4 ", "c=IN IP6 ")):
                found.append(line.split()[2].split("/")[0])
            elif line.startswith("o=") and len(line.split()) >= 6:
                found.append(line.split()[5])
        return found


def _wav_finalised(path: Path) -> bool:
    """True when the RIFF size field matches the file size (libsndfile closed the file)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
        size = path.stat().st_size
    except OSError:
        return False
    return len(head) == 8 and int.from_bytes(head[4:8], "little") == size - 8
