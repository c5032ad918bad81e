"""securephone registers with a real Kamailio (UDP, TCP), fails clearly on a wrong password,
unregisters, and reaches another registered securephone with OPTIONS through the proxy."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.phone import Phone
from securephone.sip.registration import RegState
from securephone.store.config import parse_config

from ..helpers import wait_until
from .conftest import KamailioFactory
from .kamailio import Kamailio

USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}


def phone_config(kam: Kamailio, user: str, transport: str, password: str | None = None) -> Any:
    host, port = kam.address(transport)
    return parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
            "accounts": [
                {
                    "name": user,
                    "user": user,
                    "domain": "127.0.0.1",
                    "password": USERS[user] if password is None else password,
                    "registrar": f"sip:{host}:{port};transport={transport}",
                    "transport": transport,
                    "expires": 120,
                    "retry_base": 60,
                }
            ],
        }
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_register_refresh_state_and_unregister(
    kamailio_factory: KamailioFactory, transport: str
) -> None:
    kam = kamailio_factory(users=USERS)
    phone = Phone(phone_config(kam, "alice", transport))
    await phone.start()
    try:
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
        assert state is RegState.REGISTERED, phone.status()
        contacts = await asyncio.to_thread(kam.wait_registered, "sip:alice@127.0.0.1")
        listen_host, listen_port = phone.status()["listen"][transport].split(":")
        assert len(contacts) == 1
        assert f"@{listen_host}:{listen_port}" in contacts[0]["contact"]
        assert contacts[0]["received"] is None or "127.0.0.1" in str(contacts[0]["received"])
        assert "securephone" in contacts[0]["user_agent"]
        account = phone.status()["accounts"][0]
        assert account["registration"] == "registered" and account["status"] == 200
        assert 100 <= account["expires_in"] <= 120
    finally:
        await phone.stop()
    assert phone.status()["accounts"][0]["registration"] == "unregistered"
    await asyncio.to_thread(kam.wait_unregistered, "sip:alice@127.0.0.1", 5.0)


async def test_wrong_password_fails_with_clear_reason(kamailio_factory: KamailioFactory) -> None:
    kam = kamailio_factory(users=USERS)
    phone = Phone(phone_config(kam, "alice", "udp", password="not-the-password"))
    await phone.start()
    try:
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
        account = phone.status()["accounts"][0]
        assert state is RegState.FAILED
        assert account["status"] in (401, 403)
        assert "authentication failed" in account["reason"] or "refused" in account["reason"]
        assert kam.contacts("sip:alice@127.0.0.1") == []
    finally:
        await phone.stop()


async def test_options_through_kamailio_reaches_second_phone(
    kamailio_factory: KamailioFactory,
) -> None:
    kam = kamailio_factory(users=USERS)
    bob = Phone(phone_config(kam, "bob", "udp"))
    alice = Phone(phone_config(kam, "alice", "tcp"))
    alice.config.accounts[0].outbound_proxy = kam.uri("tcp")
    await bob.start()
    await alice.start()
    try:
        for phone, name in ((bob, "bob"), (alice, "alice")):
            state = await phone.wait_registration(name, (RegState.REGISTERED, RegState.FAILED), 10)
            assert state is RegState.REGISTERED
        seen: list[str] = []
        bob.add_listener(lambda event: seen.append(type(event).__name__))
        response = await asyncio.wait_for(alice.options("sip:bob@127.0.0.1", account="alice"), 10)
        assert response.status == 200
        # The answer is bob's own: his Allow list and User-Agent came back through the proxy.
        assert "INVITE" in (response.headers.get("Allow") or "")
        assert (response.headers.get("User-Agent") or "").startswith("securephone")
        assert response.headers.get("Accept") == "application/sdp"
        # Alice's OPTIONS crossed TCP to Kamailio and UDP to bob: Kamailio challenged it (407) first.
        assert len(response.vias) == 1
    finally:
        await alice.stop()
        await bob.stop()


def test_cli_run_registers_traces_and_unregisters_on_sigterm(
    kamailio_factory: KamailioFactory, tmp_path: Path
) -> None:
    kam = kamailio_factory(users=USERS)
    host, port = kam.address("udp")
    config = tmp_path / "phone.toml"
    config.write_text(
        '[sip]\nlisten_address = "127.0.0.1"\nudp_port = 0\ntcp_port = 0\n\n'
        '[[accounts]]\nname = "alice"\nuser = "alice"\ndomain = "127.0.0.1"\n'
        f'password = "{USERS["alice"]}"\nregistrar = "sip:{host}:{port}"\nexpires = 120\n'
    )
    trace = tmp_path / "sip.trace"
    cmd = [sys.executable, "-m", "securephone.cli", "run", "--config", str(config), "--no-web"]
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*cmd, "--trace", str(trace), "--json"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        kam.wait_registered("sip:alice@127.0.0.1", timeout=15)
        wait_until(  # the phone has taken the 200 in, not only Kamailio
            lambda: "registering -> registered" in log.read_text() or proc.poll() is not None,
            15,
            message="the phone logs its registration",
        )
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = log.read_text()
    assert proc.returncode == 0, err
    kam.wait_unregistered("sip:alice@127.0.0.1", timeout=5)
    assert "unregistered -> registering" in err and "registering -> registered" in err
    assert "registered -> unregistering" in err or "unregistering -> unregistered" in err
    assert USERS["alice"] not in err and USERS["alice"] not in trace.read_text()
    text = trace.read_text()
    # REGISTER, 401, REGISTER with credentials, 200, then the unregister re-uses the challenge: 3 + 3.
    assert text.count(">> out") == 3 and text.count("<< in") == 3
    assert "SIP/2.0 401 Unauthorized" in text and "Expires: 0" in text
    import json

    summary = json.loads(out)
    assert summary["accounts"][0]["registration"] == "registered"
    assert summary["accounts_after_stop"][0]["registration"] == "unregistered"
