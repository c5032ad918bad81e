"""TOFU pinning of a real Kamailio's TLS key: the first registration pins it; a restart with
another certificate of the same CA (valid for the name) alarms under "tofu" and is refused,
with no plaintext SIP, under "strict"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securephone.aio.call import TlsPeerChanged
from securephone.aio.phone import Phone
from securephone.pki.certs import issue_certificate
from securephone.sip.events import Event

from .capture import LoopbackCapture, plaintext_sip
from .conftest import KamailioFactory
from .pki_tools import Pki, _write_pair, kam_tls
from .test_tls_kamailio import STATES, USERS, phone, register


async def _register_seeing_alarms(p: Phone) -> tuple[dict[str, object], list[TlsPeerChanged]]:
    events: list[TlsPeerChanged] = []

    def listen(event: Event) -> None:
        if isinstance(event, TlsPeerChanged):
            events.append(event)

    p.add_listener(listen)
    await p.start()
    try:
        await p.wait_registration("alice", STATES, 15)
        status = p.status()
        return {"account": status["accounts"][0], "alarms": status["tls_alarms"]}, events
    finally:
        await p.stop()


@pytest.mark.parametrize("pinning", ["tofu", "strict"])
async def test_a_swapped_server_key_alarms_or_is_refused(
    kamailio_factory: KamailioFactory, pki: Pki, tmp_path: Path, pinning: str
) -> None:
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki))
    first = await register(phone(pki, kam, pinning=pinning))
    assert first["registration"] == "registered", first["reason"]
    pins = json.loads((pki.dir / "known_peers.json").read_text())["peers"]
    peer = f"127.0.0.1:{kam.address('tls')[1]}"
    assert list(pins) == [peer]

    kam.stop()
    other = issue_certificate(
        pki.ca, "localhost", kind="server", dns=["localhost"], ips=["127.0.0.1"]
    )
    cert, key = _write_pair(pki.dir, "other", other)
    kam.tls = kam_tls(pki, cert, key)
    kam.start(keep_ports=True)
    assert f"127.0.0.1:{kam.address('tls')[1]}" == peer

    bpf = f"tcp port {kam.address('tls')[1]}"
    with LoopbackCapture(tmp_path / "swapped.pcap", bpf) as capture:
        seen, events = await _register_seeing_alarms(phone(pki, kam, pinning=pinning))
    account, alarms = seen["account"], seen["alarms"]
    assert isinstance(account, dict) and isinstance(alarms, list)
    assert [e.peer for e in events] == [peer] and events[0].pinned == pins[peer]
    assert events[0].seen != pins[peer] and events[0].refused is (pinning == "strict")
    assert [a["peer"] for a in alarms] == [peer] and "changed" in alarms[0]["message"]
    if pinning == "tofu":
        assert account["registration"] == "registered", account["reason"]
    else:
        assert account["registration"] == "failed"
        assert "pinning is strict" in account["reason"], account["reason"]
        assert plaintext_sip(capture.segments()) == []
        assert kam.contacts("alice") == []  # the restarted registrar never saw a REGISTER
    # the pin is still the first key: the alarm repeats until the user accepts the new one
    assert json.loads((pki.dir / "known_peers.json").read_text())["peers"] == pins
