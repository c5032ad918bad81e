"""A minimal linphonec (linphone-cli 5.1) harness for the verify tests: direct UDP calls, ZRTP or none.

Facts this relies on (see /work/shared/INTEROP.md): without a terminal linphonec needs
``--pipe``, which makes it listen for commands on the Unix socket ``/tmp/linphonec-<uid>``;
its core only starts when ``$HOME/.local/share/linphone/`` exists; it does not exit on
``quit`` or SIGTERM. So each instance runs under its own unused uid (``setpriv``, needs root)
with its own HOME, inside ``timeout -k`` in a new session (:class:`tests.helpers.PeerProcess`), and is stopped by
killing that session's process group (its pgid is the wrapper's PID, which we started).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
from pathlib import Path

from ..helpers import PeerProcess, free_port, wait_until

LO = "127.0.0.1"
CODECS = [("PCMU", 8000, 1, 1), ("PCMA", 8000, 1, 0), ("opus", 48000, 2, 0), ("speex", 16000, 1, 0),
          ("speex", 8000, 1, 0), ("G729", 8000, 1, 0)]  # fmt: skip


class LinphoneError(RuntimeError):
    """linphonec could not be started or commanded."""


def missing_tools() -> list[str]:
    """What this harness needs that is not here (linphonec, setpriv, timeout, root)."""
    missing = [t for t in ("linphonec", "setpriv", "timeout") if shutil.which(t) is None]
    return missing + ([] if os.geteuid() == 0 else ["root (for setpriv)"])


def _free_uid() -> int:
    for _ in range(100):
        uid = random.randrange(41000, 59000)
        if not Path(f"/tmp/linphonec-{uid}").exists():
            return uid
    raise LinphoneError("no free uid for linphonec's command socket")


class Linphonec:
    """One linphonec on 127.0.0.1 with a SIP port, an RTP port and a WAV to play."""

    def __init__(
        self, workdir: Path, name: str, rtp_port: int, audio: Path, *, encryption: str = "zrtp",
        auto_answer: bool = False, time_limit: float = 120.0,
    ) -> None:  # fmt: skip
        self.workdir = workdir
        self.name = name
        self.rtp_port = rtp_port
        self.sip_port = free_port("udp")
        self.uid = _free_uid()
        self.encryption = encryption
        self.auto_answer = auto_answer
        self.time_limit = time_limit
        self.home = workdir / "home"
        self.audio = workdir / "play.wav"
        shutil.copyfile(audio, self.audio)
        self._peer: PeerProcess | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self.name}@{LO}:{self.sip_port}"

    @property
    def socket_path(self) -> Path:
        return Path(f"/tmp/linphonec-{self.uid}")

    def _config(self) -> str:
        lines = ["[sip]", f"sip_port={self.sip_port}", "sip_tcp_port=-1", "sip_tls_port=-1",
                 f"bind_address={LO}", "use_ipv6=0", "ipv6_migration_done=1", "guess_hostname=0",
                 f"contact={self.uri}", f"media_encryption={self.encryption}",
                 f"media_encryption_mandatory={int(self.encryption != 'none')}", "default_proxy=-1",
                 "[rtp]", f"bind_address={LO}", f"audio_rtp_port={self.rtp_port}",
                 "[sound]", "echocancellation=0"]  # fmt: skip
        for n, (mime, rate, channels, enabled) in enumerate(CODECS):
            lines += [f"[audio_codec_{n}]", f"mime={mime}", f"rate={rate}",
                      f"channels={channels}", f"enabled={enabled}"]  # fmt: skip
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        (self.home / ".local/share/linphone").mkdir(parents=True, exist_ok=True)
        rc = self.workdir / "linphonerc"
        rc.write_text(self._config())
        for path in [self.workdir, *self.workdir.rglob("*")]:
            os.chown(path, self.uid, self.uid)
        command = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                   "env", f"HOME={self.home}", "linphonec", "--pipe", "-c", str(rc), "-d", "6",
                   "-l", str(self.workdir / "debug.log"), *(["-a"] if self.auto_answer else [])]  # fmt: skip
        self._peer = PeerProcess(
            f"linphonec {self.name}", command, log_path=self.workdir / "out.txt",
            time_limit=self.time_limit, kill_after=3,
        )  # fmt: skip
        self._peer.start()
        try:  # its command socket, then its SIP socket (the core runs)
            self._peer.wait_ready(self.socket_path.exists, 15, "no command socket", LinphoneError)
            listening = f"on [sip:{LO}:{self.sip_port};"
            self._peer.wait_ready(
                lambda: listening in self.log(), 15, "no SIP socket", LinphoneError
            )
        except LinphoneError:
            self.stop()
            raise
        self.command("soundcard use files")
        self.command(f"play {self.audio}")

    def command(self, text: str, wait: float = 0.5) -> str:
        """Send one command on the pipe socket and return what it printed (commands ~0.4 s apart)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(text.encode())
            sock.settimeout(wait)
            reply = b""
            with contextlib.suppress(TimeoutError, OSError):
                while chunk := sock.recv(4096):
                    reply += chunk
        return reply.decode("utf-8", "replace")

    def output(self) -> str:
        return (self.workdir / "out.txt").read_text(errors="replace")

    def log(self) -> str:
        path = self.workdir / "debug.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        wait_until(
            lambda: text in self.output() or text in self.log(),
            timeout,
            0.1,
            f"{self.name}: no {text!r}",
            error=LinphoneError,
        )

    def stop(self) -> None:
        """Kill the wrapper's process group by PID (linphonec --pipe ignores quit and SIGTERM)."""
        peer, self._peer = self._peer, None
        if peer is not None:
            peer.stop(term_wait=0.0)
        self.socket_path.unlink(missing_ok=True)
