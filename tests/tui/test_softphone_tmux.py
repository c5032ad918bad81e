"""The softphone in a real terminal: ``securephone phone`` under tmux, keys sent with send-keys,
the screen read with capture-pane: a ZRTP call placed to a real Phone and hung up, and a
DTLS-SRTP call placed to a real baresip and hung up. The text of the main screens is saved next
to the test's files (``screen-*.txt``, ``baresip-screen-*.txt``)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from securephone.aio.phone import Phone
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until
from ..interop.conftest import BaresipFactory, baresip_factory

__all__ = ["baresip_factory"]  # the fixture, for the baresip test

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
ROOT = Path(__file__).resolve().parents[2]


class Tmux:
    """One tmux server of our own (its own socket), one session running the softphone."""

    def __init__(self, tmp_path: Path, prefix: str = "") -> None:
        self.socket = f"securephone-test-{os.getpid()}-{tmp_path.name}"
        self.dumps = tmp_path
        self.prefix = prefix

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        """COLUMNS/LINES from the test run would override the terminal's real size."""
        exports = [f"{k}={v}" for k, v in env.items()]
        self.tmux(
            "new-session",
            "-d",
            "-s",
            "phone",
            "-x",
            "150",
            "-y",
            "50",
            "env",
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            *exports,
            *command,
        )

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "phone")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "phone", *keys)

    def alive(self) -> bool:
        return "phone" in self.tmux("list-sessions", "-F", "#{session_name}")

    def save(self, name: str) -> None:
        (self.dumps / f"{self.prefix}screen-{name}.txt").write_text(self.screen())

    def stop(self) -> None:
        self.tmux("kill-server")


async def test_softphone_in_tmux_calls_a_phone_and_hangs_up(tmp_path: Path) -> None:
    bob = Phone(
        parse_config(
            {
                "data_dir": str(tmp_path / "bob"),
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
                "media": {"port_min": 46000, "port_max": 46499},
                "calls": {"auto_answer": True},
            }
        )
    )
    config = tmp_path / "phone.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "me"}"\n'
        '[sip]\nudp_port = 0\ntransports = ["udp"]\n'
        "[media]\nport_min = 46500\nport_max = 46999\n"
        "[audio]\nring_tone = false\n"
    )
    term = Tmux(tmp_path)
    await bob.start()
    try:
        env = {"PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path), "TERM": "xterm-256color"}
        term.start([sys.executable, "-m", "securephone.cli", "phone", "--config", str(config)], env)
        await await_until(lambda: "Quit" in term.screen(), 30, message=term.screen)
        term.save("start")
        target = f"sip:bob@{bob.status()['listen']['udp']}"
        await dial(term, target)
        await await_until(lambda: "ZRTP SAS:" in term.screen(), 20, message=term.screen)
        term.save("call")
        screen = term.screen()
        theirs = next(c for c in bob.calls.values() if not c.ended)
        assert theirs.state is CallState.CONNECTED
        # the two ends finish the ZRTP exchange a message apart: bob's SAS may come a moment later
        await await_until(lambda: (theirs.security["path"] or {}).get("sas"), 10)
        assert f"ZRTP SAS: {theirs.security['path']['sas']}" in screen
        assert "state: connected" in screen and "media keying: zrtp, end to end" in screen
        assert "e End call" in screen  # the footer shows the keys
        term.keys("e")
        await theirs.wait_ended(timeout=10)
        await await_until(lambda: "no call selected" in term.screen(), 30, message=term.screen)
        await await_until(lambda: target in term.screen(), 30, message=term.screen)  # recent calls
        term.save("after")
        term.keys("q")
        await await_until(lambda: not term.alive(), 15, message="the softphone did not quit")
    finally:
        term.stop()
        await bob.stop()


async def test_softphone_in_tmux_calls_baresip_and_hangs_up(
    tmp_path: Path, baresip_factory: BaresipFactory
) -> None:
    """A call to a real baresip (auto answer, DTLS-SRTP) dialled and hung up from the keyboard."""
    peer = baresip_factory(mediaenc="dtls_srtp", record=False)
    config = tmp_path / "phone.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "me"}"\n'
        '[sip]\nudp_port = 0\ntransports = ["udp"]\n'
        '[media]\nport_min = 47000\nport_max = 47499\nkeying = ["dtls"]\n'
        "[audio]\nring_tone = false\n"
    )
    term = Tmux(tmp_path, prefix="baresip-")
    try:
        env = {"PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path), "TERM": "xterm-256color"}
        term.start([sys.executable, "-m", "securephone.cli", "phone", "--config", str(config)], env)
        await await_until(lambda: "Quit" in term.screen(), 30, message=term.screen)
        term.save("start")
        target = peer.sip_uri
        await dial(term, target)
        try:
            await asyncio.to_thread(peer.wait_event, "CALL_ESTABLISHED", 20)
        finally:
            term.save("dialled")  # what the softphone showed, also when baresip saw no call
        await await_until(lambda: "media: SRTP" in term.screen(), 20, message=term.screen)
        term.save("call")
        screen = term.screen()
        assert "state: connected" in screen and "media keying: dtls-srtp" in screen
        assert "ALARM" not in screen
        term.keys("e")
        await asyncio.to_thread(peer.wait_event, "CALL_CLOSED", 15)
        await await_until(lambda: "no call selected" in term.screen(), 30, message=term.screen)
        await await_until(lambda: recent_row(term.screen()), 30, message=term.screen)
        term.save("after")
        term.keys("q")
        await await_until(lambda: not term.alive(), 15, message="the softphone did not quit")
    finally:
        term.stop()


async def dial(term: Tmux, target: str) -> None:
    """``d``, the URI, Enter — as a person types it, without waiting for the dial box: the
    keys behind ``d`` must land in the box (``d`` moves the focus as it arrives)."""
    term.keys("d")
    term.keys("-l", target)
    await await_until(lambda: target in term.screen(), 10, message="the URI in the dial box")
    term.keys("Enter")


def recent_row(screen: str) -> str | None:
    """The first row of the recent calls list, if it names the baresip peer."""
    lines = screen.splitlines()
    head = next((i for i, line in enumerate(lines) if re.search(r"who\s+when\s+how", line)), None)
    if head is None or head + 1 >= len(lines):
        return None
    row = lines[head + 1].split("│")[1].strip()
    return row if "sip:baresip@127.0.0.1" in row else None
