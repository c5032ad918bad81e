"""The terminal softphone driven with Textual's own pilot, against a second real Phone on 127.0.0.1.

The app owns one Phone (no sound devices here: silence in, frames dropped); the test drives the
other Phone directly. Keys go in through the pilot, the screen is read back from the widgets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textual import events
from textual.keys import _character_to_key
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.pki.certs import create_ca, issue_certificate, write_secret_file
from securephone.sip.callstate import CallState
from securephone.store.config import Config, parse_config
from securephone.tui.app import SoftphoneApp

from ..helpers import await_until

SIZE = (150, 50)


def config(
    data_dir: Path, srtp: str = "off", tls: dict[str, Any] | None = None, **calls: Any
) -> Config:
    transports = ["udp", "tls"] if tls else ["udp"]
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tls_port": 0, "transports": transports},
        "media": {"port_min": 43000, "port_max": 43999, "srtp": srtp},  # 47000-47999: make demo
        "calls": calls,
    }  # fmt: skip
    if tls:
        data["tls"] = tls
    return parse_config(data)


def uri(phone: Phone, user: str = "bob", transport: str = "udp") -> str:
    host, port = phone.status()["listen"][transport].split(":")
    return f"{'sips' if transport == 'tls' else 'sip'}:{user}@{host}:{port}"


def text(app: SoftphoneApp, widget: str) -> str:
    return str(app.query_one(f"#{widget}", Static).content)


def screen(app: SoftphoneApp) -> str:
    calls = app.query_one("#calls", DataTable)
    rows = [" | ".join(str(c) for c in calls.get_row_at(i)) for i in range(calls.row_count)]
    parts = ("incoming", "accounts", "call", "security")
    return "\n".join([*(text(app, p) for p in parts), *rows])


async def shows(app: SoftphoneApp, needle: str, timeout: float = 10) -> None:
    await await_until(
        lambda: needle in screen(app),
        timeout,
        message=lambda: f"{needle!r} not on screen:\n{screen(app)}",
    )


@asynccontextmanager
async def softphone(cfg: Config, far: Phone) -> AsyncIterator[tuple[SoftphoneApp, Pilot[None]]]:
    app = SoftphoneApp(cfg, devices=False)
    await far.start()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await await_until(lambda: app.started, 10, message="the app's phone did not start")
            yield app, pilot
            await pilot.press("q")
    finally:
        await far.stop()


def live(phone: Phone) -> list[Call]:
    return [c for c in phone.calls.values() if not c.ended]


async def dial_by_keyboard(pilot: Pilot[None], target: str) -> None:
    await pilot.press("d", *target, "enter")


async def test_dial_ring_answer_hold_dtmf_mute_hangup(tmp_path: Path) -> None:
    bob = Phone(config(tmp_path / "bob"))
    async with softphone(config(tmp_path / "me"), bob) as (app, pilot):
        await dial_by_keyboard(pilot, uri(bob))
        await shows(app, "ringing")  # bob has not answered: our call rings there
        assert "sip:bob@" in screen(app)
        theirs = await await_until(lambda: live(bob), 5, message="no call at bob")
        theirs[0].answer()
        await shows(app, "state: connected")
        mine = app.phone.calls[app.selected or ""]

        await pilot.press("o")
        await await_until(lambda: theirs[0].remote_hold, 5, message="bob was not put on hold")
        await shows(app, "on hold")
        await pilot.press("o")
        await await_until(lambda: not theirs[0].remote_hold, 5, message="not resumed")

        await pilot.press("1", "2", "number_sign", "asterisk")
        await shows(app, "DTMF sent: 12#*")
        await await_until(lambda: theirs[0].digits == "12#*", 5, message="bob got no DTMF")

        await pilot.press("m")
        await shows(app, "microphone: MUTED")
        assert app.sources[mine.key].muted

        security = text(app, "security")
        assert "signalling: UDP" in security
        assert "ALARM: media NOT encrypted" in security  # [media] srtp = off: shown in red

        await pilot.press("e")
        await theirs[0].wait_ended(timeout=5)
        await await_until(lambda: mine.ended, 5)
        recent = app.query_one("#recent", DataTable)
        await await_until(lambda: recent.row_count == 1, 5, message="no recent call")
        assert "sip:bob@" in str(recent.get_row_at(0)[1])
        assert recent.get_row_at(0)[3] == "answered"


async def test_incoming_calls_answer_reject_and_switch_between_two(tmp_path: Path) -> None:
    bob = Phone(config(tmp_path / "bob"))
    async with softphone(config(tmp_path / "me"), bob) as (app, pilot):
        me = uri(app.phone, "me")
        first = bob.dial(me)
        await shows(app, "Incoming call from")
        await pilot.press("a")
        assert await first.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED

        second = bob.dial(me)
        await shows(app, "Incoming call from")
        await pilot.press("a")
        assert await second.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
        calls = app.query_one("#calls", DataTable)
        await await_until(lambda: calls.row_count == 2, 5, message="two calls not listed")

        selected = app.selected
        await pilot.press("n")
        assert app.selected is not None and app.selected != selected
        await pilot.press("n")
        assert app.selected == selected
        await pilot.press("n")
        switched = app.selected
        # hang up the selected call only; the other one stays connected
        await pilot.press("e")
        await await_until(lambda: calls.row_count == 1, 5, message="the call did not end")
        remaining = live(app.phone)
        assert [c.key for c in remaining] != [switched] and remaining[
            0
        ].state is CallState.CONNECTED

        third = bob.dial(me)
        await shows(app, "Incoming call from")
        await pilot.press("r")
        await third.wait_ended(timeout=5)
        assert third.status == 486 and not third.answered
        assert remaining[0].state is CallState.CONNECTED


async def test_zrtp_call_shows_the_sas_and_confirms_it_from_the_keyboard(tmp_path: Path) -> None:
    bob = Phone(config(tmp_path / "bob", srtp="mandatory", auto_answer=True))
    async with softphone(config(tmp_path / "me", srtp="mandatory"), bob) as (app, pilot):
        await dial_by_keyboard(pilot, uri(bob))
        await shows(app, "ZRTP SAS:", timeout=15)
        theirs = live(bob)[0]
        # the two ends finish the ZRTP exchange a message apart: bob's SAS may come a moment later
        await await_until(lambda: (theirs.security["path"] or {}).get("sas"), 10)
        sas = theirs.security["path"]["sas"]
        security = text(app, "security")
        assert f"ZRTP SAS: {sas}" in security
        assert "media keying: zrtp, end to end" in security
        assert "SAS not compared yet" in security
        await pilot.press("s")
        await shows(app, "SAS confirmed: peer verified")
        call = app.phone.calls[app.selected or ""]
        assert call.security["path"]["sas_verified"] is True
        await shows(app, "media: SRTP AES_CM_128_HMAC_SHA1_80")


async def test_sas_rejected_is_an_alarm(tmp_path: Path) -> None:
    bob = Phone(config(tmp_path / "bob", srtp="mandatory", auto_answer=True))
    async with softphone(config(tmp_path / "me", srtp="mandatory"), bob) as (app, pilot):
        await dial_by_keyboard(pilot, uri(bob))
        await shows(app, "ZRTP SAS:", timeout=15)
        await pilot.press("w")
        await shows(app, "ALARM: SAS rejected")


def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    ca = create_ca("softphone test CA")
    (tmp_path / "pki").mkdir()
    ca_file = tmp_path / "pki" / "ca.pem"
    write_secret_file(ca_file, ca.cert_pem)
    cert = tmp_path / "pki" / "phone.pem"
    issued = issue_certificate(ca, "127.0.0.1", kind="server", ips=["127.0.0.1"], dns=["localhost"])
    write_secret_file(cert, issued.combined_pem())
    return ca_file, cert


async def test_sdes_call_over_tls_shows_tls_and_srtp(tmp_path: Path) -> None:
    ca_file, cert = tls_files(tmp_path)
    tls = {"ca_file": str(ca_file), "use_system_cas": False, "certificate": str(cert)}
    bob = Phone(config(tmp_path / "bob", srtp="mandatory", tls=tls, auto_answer=True))
    mine = config(tmp_path / "me", srtp="mandatory", tls=tls)
    async with softphone(mine, bob) as (app, pilot):
        await dial_by_keyboard(pilot, uri(bob, transport="tls"))
        await shows(app, "state: connected")
        await shows(app, "media: SRTP")
        security = text(app, "security")
        assert "signalling: TLS" in security
        assert "TLS version: TLSv1.3" in security or "TLS version: TLSv1.2" in security
        assert "cipher: " in security
        assert "peer certificate: " in security and "127.0.0.1" in security
        assert "SHA-256: " in security
        assert "media keying: sdes, hop by hop" in security
        assert "ALARM" not in security
        await pilot.press("e")
        await await_until(lambda: not live(app.phone), 5, message="not hung up")


async def test_keys_typed_right_after_d_go_into_the_dial_box(tmp_path: Path) -> None:
    """A person types ``d`` and the URI without waiting: every key already queued behind ``d``
    lands in the dial box, none reaches the app's bindings (``o``, ``m``, ``1`` ... are
    commands there)."""
    bob = Phone(config(tmp_path / "bob"))
    async with softphone(config(tmp_path / "me"), bob) as (app, pilot):
        target = "sip:bob@127.0.0.1:5062;transport=udp"
        driver = app._driver
        assert driver is not None
        for char in "d" + target:  # all queued at once, as a fast typist's keys arrive
            key = events.Key(_character_to_key(char) if not char.isalnum() else char, char)
            key.set_sender(app)
            driver.send_message(key)  # what the terminal driver does with each key read
        dial = app.query_one("#dial", Input)
        await await_until(lambda: len(dial.value) >= len(target), 5, message=lambda: dial.value)
        assert dial.has_focus and dial.value == target, dial.value
        await pilot.press("escape")
        assert not dial.has_focus
