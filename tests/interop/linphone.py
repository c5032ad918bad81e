"""Run a real linphonec (Debian ``linphone-cli`` 5.1) headless on 127.0.0.1 as a far-end phone.

The harness writes a private ``linphonerc`` and HOME (with the ``.local/share/linphone/``
folder liblinphone needs before it opens a SIP socket) into a work directory and runs
``timeout -k 5 LIMIT linphonec -c RC -d 6 -l debug.log [-a]`` in its own session and process
group.  It remembers the PIDs of the ``timeout`` wrapper and of linphonec and stops them by
PID (``quit``, then SIGTERM, then SIGKILL of the wrapper's process group), so nothing is left
behind even when a test fails.

linphonec is driven through a **pseudo-terminal**, not ``--pipe``: with a terminal on stdin
its readline loop keeps the core running between commands, and it has no shared command
socket (``--pipe`` listens on ``/tmp/linphonec-<uid>``, one per user id, so two instances of
one user would collide under pytest-xdist).  A reader thread copies everything linphonec
prints to ``linphonec.out`` and keeps it for :meth:`Linphonec.wait_output`; commands are
typed one at a time and each waits for the next ``linphonec>`` prompt.

Sockets: SIP over UDP on a free port of 127.0.0.1 (``sip_uri`` reaches it directly), TLS only
as a client (linphonec does not accept incoming TLS: register through a proxy such as
Kamailio, which sends calls back over linphonec's own connection); RTP/RTCP inside a
100-port block of 20000-29999 locked across processes (:class:`baresip.PortRange`).

Audio goes through files (``soundcard use files``): ``play`` sets the WAV sent in calls,
``record`` the WAV that receives what linphonec hears (one file per call: call
:meth:`Linphonec.record_to` before each call).  ``-d 6`` makes liblinphone log everything,
including ``Negotiated media encryption is LinphoneMediaEncryptionSRTP`` for SDES calls
(linphonec itself prints nothing about SDES) and every SIP message sent and received.

What linphonec 5.1.65 (Debian 12) does that a test must know:

* On a terminal it exits on ``quit`` (in ``--pipe`` mode it does not).
* Calls do not follow the registration proxy unless the account has a route: without
  ``reg_route`` it sends ``call sip:alice@127.0.0.1`` straight to UDP 127.0.0.1:5060 with the
  SDES keys in clear.  :class:`LinphoneAccount` therefore always sets ``reg_route``.
* ``-l FILE`` truncates the debug log at start; a SIP port already taken is only reported
  there (``udp bind() failed``) and linphonec carries on without it (the harness retries).
* SDES: no AEAD_AES_*_GCM in Debian's build ("Unsupported crypto suite"); for
  AES_CM_128_HMAC_SHA1_32 it protects SRTCP with a 32-bit tag too (mediastreamer2 uses the
  RTP policy for RTCP), where RFC 4568 §6.2.2 keeps 80 bits, so RFC-conformant peers fail to
  authenticate its SRTCP with that suite.  It rewrites ``linphonerc`` on exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import sqlite3
import struct
import termios
import threading
import time
from codecs import getincrementaldecoder
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import numpy as np

from ..helpers import PeerProcess, free_port, port_free, wait_until
from .audio_tools import RATE, read_wav, write_wav
from .baresip import PortRange

LOOPBACK = "127.0.0.1"
LINPHONEC = "/usr/bin/linphonec"
PROMPT = "linphonec> "
MediaEncryption = Literal["none", "srtp", "zrtp", "dtls"]
ENCRYPTIONS: frozenset[str] = frozenset({"none", "srtp", "zrtp", "dtls"})
SRTP_SUITES: frozenset[str] = frozenset(
    {
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AES_192_CM_HMAC_SHA1_80",
        "AES_192_CM_HMAC_SHA1_32",
        "AES_256_CM_HMAC_SHA1_80",
        "AES_256_CM_HMAC_SHA1_32",
        "AEAD_AES_128_GCM",
        "AEAD_AES_256_GCM",
    }
)
# (mime, rate, channels): every codec linphone-cli 5.1 knows for audio; only the chosen ones
# are enabled, so the call rate (and the recording) is 8 kHz G.711.
KNOWN_CODECS = (
    ("PCMU", 8000, 1),
    ("PCMA", 8000, 1),
    ("opus", 48000, 2),
    ("speex", 16000, 1),
    ("speex", 8000, 1),
    ("speex", 32000, 1),
    ("G722", 8000, 1),
    ("GSM", 8000, 1),
    ("G729", 8000, 1),
    ("iLBC", 8000, 1),
    ("L16", 44100, 2),
    ("L16", 44100, 1),
)
NEGOTIATED_RE = re.compile(r"Negotiated media encryption is (LinphoneMediaEncryption\w+)")
_REGISTRATION_RE = re.compile(r"moving from state \[\w+\] to \[(LinphoneRegistration\w+)\]")
_NAME_RE = re.compile(r"[A-Za-z0-9._~+-]{1,64}")
_URI_RE = re.compile(r"sips?:[^\s\"<>]+")
_SECRET_RE = re.compile(r"[^\s\"\r\n]{1,128}")
_PATH_RE = re.compile(r"[^\s\"\r\n]+")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_VALUE_RE = re.compile(r"[A-Za-z0-9_, .:;=/+-]{0,256}")
SAS_RE = re.compile(r"Call (\d+) is fully encrypted and auth token is (\S+)\.")
_BIND_ERRORS = ("Address already in use", "Could not bind", "cannot bind")


class LinphoneError(RuntimeError):
    """linphonec could not be configured, started, commanded or stopped, or an event is late."""


@dataclass(frozen=True)
class LinphoneAccount:
    """Register ``sip:USER@DOMAIN`` through ``proxy`` (``[proxy_0]`` / ``[auth_info_0]``).

    ``proxy`` is a URI with its transport, e.g. ``sip:localhost:5061;transport=tls`` (use the
    host name the server certificate names: linphonec's TLS library ignores IP SANs).
    """

    user: str
    password: str
    proxy: str
    domain: str = LOOPBACK
    expires: int = 300


@dataclass(frozen=True)
class LinphoneTls:
    """TLS client settings: ``root_ca`` (trusted CA PEM), server checks, client certificate."""

    root_ca: Path
    verify_server_certs: bool = True
    verify_server_cn: bool = True
    client_cert_chain: Path | None = None
    client_cert_key: Path | None = None


@dataclass(frozen=True)
class ZidCacheEntry:
    """One peer in linphonec's ZRTP cache (bzrtp ``zidCache.c``: tables ``ziduri`` and ``zrtp``).

    bzrtp keys entries by (local URI, peer URI, peer ZID); ``pvs`` is its "previously verified"
    flag. ``rs1``/``rs2`` are retained secrets: test data only, never logged by the tests.
    """

    peer_zid: bytes
    self_uri: str
    peer_uri: str
    rs1: bytes | None
    rs2: bytes | None
    verified: bool


def missing_tools() -> list[str]:
    """What the harness needs that is not installed."""
    return [name for name in (LINPHONEC, "timeout") if shutil.which(name) is None]


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{kind} {value!r} has characters the harness does not allow")
    return value


def clean_output(text: str) -> str:
    """Terminal output without carriage returns and escape sequences."""
    return _ANSI_RE.sub("", text)


class Linphonec:
    """One linphonec on 127.0.0.1 (context manager, or start()/stop()).

    ``media_encryption`` is linphone's ``[sip] media_encryption`` (``srtp`` = SDES);
    ``mandatory`` refuses calls without it.  ``srtp_suites`` orders the SDES crypto suites it
    offers and accepts (``srtp_crypto_suites``).  ``account`` registers through a proxy;
    ``tls`` holds the trust settings for TLS connections.  ``audio_source`` is the WAV it
    plays in calls (converted to 8 kHz mono 16-bit, padded with ``trailing_silence``
    seconds); None plays silence.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        user: str = "linphone",
        account: LinphoneAccount | None = None,
        tls: LinphoneTls | None = None,
        media_encryption: MediaEncryption = "srtp",
        mandatory: bool = True,
        srtp_suites: Sequence[str] | None = None,
        audio_source: Path | None = None,
        trailing_silence: float = 1.0,
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        auto_answer: bool = True,
        time_limit: float = 120.0,
        sip_extra: Mapping[str, str] | None = None,
        sample_rate: int = RATE,
        adaptive_jitter: bool = True,
    ) -> None:
        if media_encryption not in ENCRYPTIONS:
            raise ValueError(f"media_encryption {media_encryption!r}: use {sorted(ENCRYPTIONS)}")
        unknown = set(srtp_suites or ()) - SRTP_SUITES
        if unknown:
            raise ValueError(f"unknown SRTP suites {sorted(unknown)}")
        known = {mime for mime, _, _ in KNOWN_CODECS}
        if not codecs or set(codecs) - known:
            raise ValueError(f"codecs {list(codecs)}: choose from {sorted(known)}")
        self.workdir = Path(workdir)
        self.user = _check("user", account.user if account else user, _NAME_RE)
        self.account = account
        self.tls = tls
        self.media_encryption: MediaEncryption = media_encryption
        self.mandatory = mandatory
        self.srtp_suites = tuple(srtp_suites or ())
        self.audio_source = audio_source
        self.trailing_silence = trailing_silence
        self.codecs = tuple(codecs)
        self.auto_answer = auto_answer
        self.time_limit = time_limit
        self.sip_extra = {
            _check("key", key, _KEY_RE): _check("value", value, _VALUE_RE)
            for key, value in (sip_extra or {}).items()
        }
        self.sample_rate = sample_rate  # of the WAV it plays (48 kHz keeps a 6 kHz test tone)
        self.adaptive_jitter = adaptive_jitter  # off: no frames added or dropped mid-call
        self.home = self.workdir / "home"
        self.config_path = self.workdir / "linphonerc"
        self.log_path = self.workdir / "debug.log"
        self.output_path = self.workdir / "linphonec.out"
        self.play_path = self.workdir / "play.wav"
        self.sip_port = 0
        self.rtp_ports: PortRange | None = None
        self.record_path: Path | None = None
        self._peer: PeerProcess | None = None
        self._master: int | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._output = ""
        self._out_file: IO[bytes] | None = None
        self._stopping = threading.Event()
        self._recordings = 0

    # ------------------------------------------------------------------ addresses

    @property
    def sip_uri(self) -> str:
        """Direct URI over UDP, e.g. ``sip:linphone@127.0.0.1:P``."""
        return f"sip:{self.user}@{LOOPBACK}:{self.sip_port}"

    @property
    def wrapper_pid(self) -> int | None:
        """PID of the ``timeout`` wrapper (also the process group id), while started."""
        return None if self._peer is None else self._peer.wrapper_pid

    @property
    def pid(self) -> int | None:
        """PID of linphonec (the wrapper's child), while started."""
        return None if self._peer is None else self._peer.pid

    @property
    def running(self) -> bool:
        """True while the ``timeout`` wrapper (and so linphonec) has not exited."""
        return self._peer is not None and self._peer.running

    # ------------------------------------------------------------------ config

    def config_sections(self) -> dict[str, dict[str, str]]:
        """Every ``linphonerc`` section and key the harness writes."""
        assert self.rtp_ports is not None
        first, last = self.rtp_ports.first, self.rtp_ports.last
        sip: dict[str, str] = {
            "sip_port": str(self.sip_port),
            "sip_tcp_port": "0",
            # -1: a random local port, which outgoing TLS connections need (0 disables TLS).
            "sip_tls_port": "-1" if self.tls is not None else "0",
            "bind_address": LOOPBACK,
            "use_ipv6": "0",
            "ipv6_migration_done": "1",
            "guess_hostname": "0",
            "contact": f"sip:{self.user}@{LOOPBACK}",
            "media_encryption": self.media_encryption,
            "media_encryption_mandatory": str(int(self.mandatory)),
            "default_proxy": "0" if self.account is not None else "-1",
            "register_only_when_network_is_up": "0",
            "ping_with_options": "0",
            "inc_timeout": "60",
            "in_call_timeout": "0",
        }
        if self.srtp_suites:
            sip["srtp_crypto_suites"] = ",".join(self.srtp_suites)
        if self.tls is not None:
            sip.update(self._tls_keys(self.tls))
        sip.update(self.sip_extra)
        sections: dict[str, dict[str, str]] = {
            "sip": sip,
            "rtp": {
                "bind_address": LOOPBACK,
                "audio_rtp_port": f"{first}-{first + 39}",
                "video_rtp_port": f"{first + 40}-{first + 69}",
                "text_rtp_port": f"{first + 70}-{last}",
                "rtcp_mux": "0",
                "audio_jitt_comp": "60",
                "audio_adaptive_jitt_comp_enabled": str(int(self.adaptive_jitter)),
            },
            "net": {"firewall_policy": "0", "mtu": "1300"},
            "sound": {"echocancellation": "0", "agc": "0", "noisegate": "0"},
            "video": {"capture": "0", "display": "0", "automatically_initiate": "0"},
            "misc": {"max_calls": "4", "enable_basic_to_client_group_chat_room_migration": "0"},
        }
        for n, (mime, rate, channels) in enumerate(KNOWN_CODECS):
            sections[f"audio_codec_{n}"] = {
                "mime": mime,
                "rate": str(rate),
                "channels": str(channels),
                "enabled": str(int(mime in self.codecs)),
            }
        if self.account is not None:
            sections.update(self._account_sections(self.account))
        return sections

    @staticmethod
    def _tls_keys(tls: LinphoneTls) -> dict[str, str]:
        keys = {
            "root_ca": _check("root_ca", str(tls.root_ca), _PATH_RE),
            "verify_server_certs": str(int(tls.verify_server_certs)),
            "verify_server_cn": str(int(tls.verify_server_cn)),
        }
        if tls.client_cert_chain is not None and tls.client_cert_key is not None:
            keys["client_cert_chain"] = _check("chain", str(tls.client_cert_chain), _PATH_RE)
            keys["client_cert_key"] = _check("key", str(tls.client_cert_key), _PATH_RE)
        return keys

    @staticmethod
    def _account_sections(account: LinphoneAccount) -> dict[str, dict[str, str]]:
        user = _check("user", account.user, _NAME_RE)
        domain = _check("domain", account.domain, _NAME_RE)
        return {
            "proxy_0": {
                "reg_proxy": f"<{_check('proxy', account.proxy, _URI_RE)}>",
                # Without a route linphonec sends calls straight to the request URI's host
                # (sip:alice@127.0.0.1 -> UDP 127.0.0.1:5060), SDES keys in clear.
                "reg_route": f"<{account.proxy};lr>",
                "reg_identity": f"<sip:{user}@{domain}>",
                "reg_expires": str(int(account.expires)),
                "reg_sendregister": "1",
                "publish": "0",
                "dial_escape_plus": "0",
                "avpf": "0",
                "quality_reporting_enabled": "0",
                "push_notification_allowed": "0",
            },
            "auth_info_0": {
                "username": user,
                "userid": user,
                "passwd": _check("password", account.password, _SECRET_RE),
                "domain": domain,
            },
        }

    def config_text(self) -> str:
        """The ``linphonerc`` for the current ports and settings."""
        lines = ["# generated by tests/interop/linphone.py"]
        for name, keys in self.config_sections().items():
            lines.append(f"[{name}]")
            lines += [f"{key}={value}" for key, value in keys.items()]
            lines.append("")
        return "\n".join(lines)

    def write_config(self) -> None:
        """Write ``linphonerc``, the private HOME and the WAV to play."""
        (self.home / ".local/share/linphone").mkdir(parents=True, exist_ok=True)
        (self.home / ".config").mkdir(parents=True, exist_ok=True)
        (self.home / ".cache").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        rate = self.sample_rate
        if self.audio_source is None:
            samples = np.zeros(rate, dtype=np.int16)
        else:
            samples, _ = read_wav(self.audio_source, rate)
        pad = np.zeros(round(self.trailing_silence * rate), dtype=np.int16)
        write_wav(self.play_path, np.concatenate([samples, pad]), rate)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Linphonec:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, ready_timeout: float = 15.0) -> None:
        """Allocate ports, write the config, start linphonec and switch it to file audio.

        Retries with new ports when the SIP port was taken in the meantime.
        """
        if self._peer is not None:
            raise LinphoneError("linphonec already started")
        missing = missing_tools()
        if missing:
            raise LinphoneError(f"not installed: {', '.join(missing)}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(4):
            try:
                self.sip_port = free_port("udp")
                if self.rtp_ports is None:
                    self.rtp_ports = PortRange.reserve()
                self.write_config()
                self._launch()
                self._wait_ready(ready_timeout)
                self.command("soundcard use files")
                self.command(f"play {_check('play file', str(self.play_path), _PATH_RE)}")
                return
            except LinphoneError as exc:
                # linphonec truncates its debug log at start: it is this attempt's.
                new_log = self.log_text() + str(exc)
                self.stop()
                if attempt == 3 or not any(err in new_log for err in _BIND_ERRORS):
                    raise
            except BaseException:
                self.stop()
                raise

    def command_line(self) -> list[str]:
        """The linphonec command (without the ``timeout`` wrapper)."""
        return [
            LINPHONEC,
            "-c",
            str(self.config_path),
            "-d",
            "6",
            "-l",
            str(self.log_path),
            *(["-a"] if self.auto_answer else []),
        ]

    def _environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("XDG_", "DISPLAY", "WAYLAND", "PULSE", "DBUS"))
        }
        env.update(
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.home / ".local/share"),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            TERM="dumb",
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
        )
        return env

    def _launch(self) -> None:
        master, slave = os.openpty()
        # A wide terminal, so readline never scrolls a long command line sideways.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 1000, 0, 0))
        self._master = master
        self._stopping.clear()
        with self._cond:
            self._output = ""
        self._out_file = self.output_path.open("ab")
        self._peer = PeerProcess(
            "linphonec",
            self.command_line(),
            log_path=self.log_path,
            time_limit=self.time_limit,
            cwd=self.workdir,
            env=self._environment(),
        )
        try:
            self._peer.start(stdin=slave, output=slave)
        finally:
            os.close(slave)
        self._reader = threading.Thread(target=self._read_loop, name="linphonec-pty", daemon=True)
        self._reader.start()

    def _wait_ready(self, timeout: float) -> None:
        """Wait for the first prompt and for the SIP/UDP socket to be bound.

        A port taken in the meantime only shows in the debug log (``udp bind() failed``):
        linphonec carries on without that listener.
        """
        self.wait_output(PROMPT, timeout)
        self.wait_log(rf"listening point \[\w+\] on \[sip:127\.0\.0\.1:{self.sip_port};", timeout)
        if f"bind() failed for {LOOPBACK} port {self.sip_port}" in self.log_text():
            raise LinphoneError(f"UDP {self.sip_port}: Address already in use")
        assert self._peer is not None
        self._peer.wait_ready(
            lambda: not port_free(self.sip_port, "udp"),
            timeout,
            f"linphonec did not bind UDP {self.sip_port}",
            LinphoneError,
        )

    def stop(self) -> None:
        """Quit linphonec; SIGTERM then SIGKILL by PID; reap its process group."""
        peer, self._peer = self._peer, None
        try:
            if peer is not None:
                peer.stop(lambda: self._type("quit"))
        finally:
            self._close_pty()
            if self.rtp_ports is not None:
                self.rtp_ports.release()
                self.rtp_ports = None

    def _close_pty(self) -> None:
        """Stop the reader thread, then close the terminal (never the other way round: a
        closed descriptor number can be reused at once by another thread's open())."""
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
            self._reader = None
        master, self._master = self._master, None
        if master is not None:
            with contextlib.suppress(OSError):
                os.close(master)
        if self._out_file is not None:
            self._out_file.close()
            self._out_file = None

    # ------------------------------------------------------------------ the terminal

    def _read_loop(self) -> None:
        master = self._master
        decoder = getincrementaldecoder("utf-8")("replace")
        while master is not None and not self._stopping.is_set():
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break  # EIO: every process holding the terminal has exited
            if not chunk:
                break
            if self._out_file is not None:
                self._out_file.write(chunk)
                self._out_file.flush()
            with self._cond:
                self._output += clean_output(decoder.decode(chunk))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _type(self, line: str) -> None:
        if self._master is None or "\n" in line or "\r" in line:
            raise LinphoneError(f"cannot type {line!r}")
        os.write(self._master, line.encode() + b"\n")

    def command(self, line: str, timeout: float = 5.0) -> str:
        """Type one command and return what linphonec printed until its next prompt."""
        start = len(self.output())
        self._type(line)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self._output[start:]
                echo = text.find(line)
                after = text.find(PROMPT, echo + len(line)) if echo >= 0 else -1
                if after >= 0:
                    return text[echo + len(line) : after].strip("\n")
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    raise LinphoneError(f"no prompt after {line!r}:\n{text[-2000:]}")
                self._cond.wait(min(left, 0.2))

    def output(self) -> str:
        """Everything linphonec printed so far (escape sequences removed)."""
        with self._cond:
            return self._output

    def wait_output(self, pattern: str, timeout: float = 10.0, *, since: int = 0) -> re.Match[str]:
        """Wait until the output after offset ``since`` matches the regex ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = regex.search(self._output, since)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    why = "linphonec exited" if not self.running else f"{timeout} s passed"
                    raise LinphoneError(
                        f"no {pattern!r} in linphonec's output ({why}):\n"
                        f"{self._output[since:][-2000:]}\n--- debug log:\n{self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.2))

    # ------------------------------------------------------------------ calls

    def record_to(self, path: Path | None = None) -> Path:
        """Record what the next call hears into ``path`` (default ``heard-N.wav``)."""
        if path is None:
            self._recordings += 1
            path = self.workdir / f"heard-{self._recordings}.wav"
        self.command(f"record {_check('record file', str(path), _PATH_RE)}")
        self.record_path = path
        return path

    def call(self, uri: str) -> str:
        """Dial ``uri``; return linphonec's answer to the command."""
        return self.command(f"call {_check('uri', uri, _URI_RE)}")

    def terminate(self) -> str:
        """Hang up the current call."""
        return self.command("terminate")

    def wait_connected(self, timeout: float = 10.0, *, since: int = 0) -> int:
        """Wait for ``Call N with ... connected.``; return N."""
        found = self.wait_output(r"Call (\d+) with \S+ connected\.", timeout, since=since)
        return int(found.group(1))

    def wait_ended(self, timeout: float = 10.0, *, since: int = 0) -> str:
        """Wait for ``Call N with ... ended (REASON).``; return the reason."""
        found = self.wait_output(r"Call \d+ with \S+ ended \(([^)]*)\)\.", timeout, since=since)
        return found.group(1)

    def wait_registered(self, timeout: float = 10.0) -> str:
        """Poll ``status register`` until it says ``registered, identity=...``; return that."""

        def registered() -> str | None:
            reply = self.command("status register")
            return reply.strip() if "registered, identity=" in reply else None

        return wait_until(
            registered,
            timeout,
            0.3,
            lambda: f"not registered\n{self.log_tail()}",
            error=LinphoneError,
        )

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the debug log matches the regex ``pattern``; return the match."""
        regex = re.compile(pattern)
        return wait_until(
            lambda: regex.search(self.log_text()),
            timeout,
            0.1,
            lambda: f"no {pattern!r} in the debug log\n{self.log_tail()}",
            error=LinphoneError,
            give_up=lambda: None if self.running else "linphonec is not running",
        )

    def registration_states(self) -> list[str]:
        """Every account registration state the debug log shows, in order
        (``LinphoneRegistrationProgress``, ``...Ok``, ``...Failed``, ...)."""
        return _REGISTRATION_RE.findall(self.log_text())

    def negotiated_encryptions(self) -> list[str]:
        """Every ``Negotiated media encryption is X`` in the debug log, in order."""
        return NEGOTIATED_RE.findall(self.log_text())

    def wait_negotiated(self, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Wait until the debug log names ``count`` negotiated media encryptions."""

        def enough() -> list[str]:
            found = self.negotiated_encryptions()
            return found if len(found) >= count else []

        return wait_until(
            enough,
            timeout,
            0.1,
            lambda: f"{len(self.negotiated_encryptions())} negotiations logged, wanted {count}",
            error=LinphoneError,
        )

    # ------------------------------------------------------------------ files

    def log_text(self) -> str:
        """liblinphone's debug log so far (``-d 6 -l FILE``)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the debug log, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def logged_sdp_addresses(self) -> list[str]:
        """Addresses of every SDP ``c=``/``o=`` line in the debug log (both directions)."""
        found: list[str] = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith(("c=IN IP4 ", "c=IN IP6 ")):
                found.append(line.split()[2].split("/")[0])
            elif line.startswith("o=") and len(line.split()) >= 6:
                found.append(line.split()[5])
        return found

    # ------------------------------------------------------------------ ZRTP

    @property
    def zid_cache_path(self) -> Path:
        """linphonec's ZRTP cache (sqlite): ``$HOME/.linphone-zidcache``."""
        return self.home / ".linphone-zidcache"

    def wait_sas(self, timeout: float = 10.0, *, since: int = 0) -> str:
        """Wait for ``Call N is fully encrypted and auth token is XXXX.``; return the SAS."""
        return self.wait_output(SAS_RE.pattern, timeout, since=since).group(2)

    def set_zrtp_verified(self, verified: bool = True) -> str:
        """Mark the current call's SAS as compared (``zrtp-set-verified``) or not."""
        return self.command("zrtp-set-verified" if verified else "zrtp-set-unverified")

    def zid_cache(self) -> tuple[bytes | None, list[ZidCacheEntry]]:
        """linphonec's own ZID (first ``self`` row) and every peer entry of its cache."""
        if not self.zid_cache_path.exists():
            return None, []
        uri = f"file:{self.zid_cache_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            own = db.execute("SELECT zid FROM ziduri WHERE peeruri = 'self'").fetchone()
            rows = db.execute(
                "SELECT u.zid, u.selfuri, u.peeruri, z.rs1, z.rs2, z.pvs "
                "FROM ziduri u JOIN zrtp z ON z.zuid = u.zuid WHERE u.peeruri != 'self'"
            ).fetchall()
        entries = [
            ZidCacheEntry(bytes(zid), selfuri, peeruri, rs1, rs2, bool(pvs) and pvs[0] == 1)
            for zid, selfuri, peeruri, rs1, rs2, pvs in rows
        ]
        return (bytes(own[0]) if own else None), entries
