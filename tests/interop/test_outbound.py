"""RFC 5626 flow failover with real edge proxies: two Kamailio edge proxies (outbound, path, rr
modules) in front of one Kamailio registrar with outbound support, all on 127.0.0.1.

alice (securephone, ``outbound_proxies`` = both edges, TCP) registers one flow through each edge:
the registrar holds two bindings of one instance, reg-id 1 and 2, each with its edge's Path.
bob (a second securephone registered straight at the registrar) calls alice. Edge 1 is stopped:
alice's phone sees its flow close, the account stays registered through edge 2, and a second call
reaches alice through edge 2 (the registrar tries the next flow of the instance). Edge 1 is started
again on its port: alice's flow 1 registers again, with reg-id 1. While edge 1 is down alice also calls bob: the INVITE leaves through edge 2.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from securephone.aio.phone import Phone
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState
from securephone.store.config import parse_config

from ..helpers import await_until, wait_until
from .conftest import KamailioFactory
from .kamailio import ContactInfo, Kamailio

USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
FLOW_TIMER = 12  # seconds, the registrar's Flow-Timer


def phone_config(
    name: str, listen: str, ports: tuple[int, int], data_dir: Path, **account: Any
) -> Any:
    """A phone listening on ``listen`` (udp or tcp) with one account ``name`` at 127.0.0.1 (DNS
    off, auto-answer, plain RTP in ``ports``); ``account`` adds the account's own settings."""
    return parse_config(
        {
            "data_dir": str(data_dir),
            "sip": {
                "listen_address": "127.0.0.1",
                "transports": [listen],
                f"{listen}_port": 0,
            },
            "media": {"port_min": ports[0], "port_max": ports[1], "srtp": "off"},
            "calls": {"auto_answer": True},
            "dns": {"enabled": False},
            "accounts": [
                {
                    "name": name,
                    "user": name,
                    "domain": "127.0.0.1",
                    "password": USERS[name],
                    "expires": 120,
                    **account,
                }
            ],
        }
    )


def alice_config(edges: list[Kamailio], data_dir: Path) -> Any:
    """alice behind the edges: TCP, RFC 5626 outbound, one flow per edge."""
    return phone_config(
        "alice", "tcp", (56500, 56749), data_dir, transport="tcp", outbound=True,
        outbound_proxies=[edge.uri("tcp") for edge in edges], retry_base=1, retry_max=2,
    )  # fmt: skip


def bob_config(registrar: Kamailio, data_dir: Path) -> Any:
    """bob registered straight at the registrar over UDP."""
    return phone_config(
        "bob", "udp", (56750, 56999), data_dir, registrar=f"sip:127.0.0.1:{registrar.port}"
    )


def flows(phone: Phone) -> list[dict[str, Any]]:
    flows: list[dict[str, Any]] = phone.status()["accounts"][0]["flows"]
    return flows


def bindings(registrar: Kamailio) -> list[ContactInfo]:
    return [c for c in registrar.contacts("alice") if c["expires"] > 0]


def reg_ids(contacts: list[ContactInfo]) -> list[str]:
    return sorted(c["fields"].get("Reg-Id", "") for c in contacts)


def invites_to_client(edge: Kamailio) -> list[str]:
    """Call-IDs of the INVITEs an edge handed to its client over the client's flow."""
    return re.findall(r"HARNESS-EDGE INVITE (\S+) to the client", edge.log_text())


def from_client(edge: Kamailio, method: str) -> list[str]:
    """Call-IDs of the ``method`` requests an edge received from its client."""
    return re.findall(rf"HARNESS-EDGE {method} (\S+) from the client", edge.log_text())


async def call_alice(bob: Phone, registrar: Kamailio, alice: Phone) -> str:
    """bob calls alice through the registrar; alice answers; bob hangs up. Returns the Call-ID."""
    before = len(alice.calls)
    call = bob.dial(f"sip:alice@127.0.0.1:{registrar.port}", account="bob")
    state = await call.wait_for(CallState.CONNECTED, timeout=20)
    assert state is CallState.CONNECTED, call.summary()
    await await_until(lambda: len(alice.calls) > before, 5, message="alice got no call")
    call.hangup()
    await call.wait_ended(10)
    return str(call.summary()["call_id"])


async def test_two_flows_through_two_edges_and_failover_when_one_dies(
    kamailio_factory: KamailioFactory, tmp_path: Path
) -> None:
    registrar = kamailio_factory(users=USERS, role="outbound-registrar", flow_timer=FLOW_TIMER)
    address = ("127.0.0.1", registrar.port)
    edges = [kamailio_factory(role="edge", registrar=address) for _ in range(2)]
    alice = Phone(alice_config(edges, tmp_path / "alice"))
    bob = Phone(bob_config(registrar, tmp_path / "bob"))
    await alice.start()
    await bob.start()
    try:
        await alice.wait_registration("alice", (RegState.REGISTERED,), 15)
        await bob.wait_registration("bob", (RegState.REGISTERED,), 15)
        await await_until(lambda: all(f["state"] == "registered" for f in flows(alice)), 15)
        both = await asyncio.to_thread(
            lambda: await_registrar(registrar, lambda cs: reg_ids(cs) == ["1", "2"])
        )
        instances = {c["fields"].get("Instance") for c in both}
        assert len(instances) == 1 and "urn:uuid:" in str(instances.pop())
        paths = sorted(c["fields"].get("Path", "") for c in both)
        assert [f":{edges[0].port}" in p or f":{edges[1].port}" in p for p in paths] == [True] * 2
        assert all(";ob" in p for p in paths), paths
        assert alice.status()["accounts"][0]["outbound_granted"] is True
        # the registrar's Flow-Timer (RFC 5626 §4.4.1) came back through the edges: each TCP
        # flow is pinged by it, sooner than the configured 30 s
        assert [(f["flow_timer"], f["keepalive_s"]) for f in flows(alice)] == [
            (FLOW_TIMER, float(FLOW_TIMER)),
            (FLOW_TIMER, float(FLOW_TIMER)),
        ]
        assert [(f["reg_id"], f["proxy"]) for f in flows(alice)] == [
            (1, edges[0].uri("tcp")),
            (2, edges[1].uri("tcp")),
        ]

        first = await call_alice(bob, registrar, alice)
        reached = invites_to_client(edges[0]) + invites_to_client(edges[1])
        assert first in reached

        await asyncio.to_thread(edges[0].stop)
        await await_until(
            lambda: flows(alice)[0]["state"] != "registered", 10, message="flow 1 not noticed"
        )
        assert "closed" in flows(alice)[0]["reason"] or "connect" in flows(alice)[0]["reason"]
        assert flows(alice)[1]["state"] == "registered"
        assert alice.status()["accounts"][0]["registration"] == "registered"

        second = await call_alice(bob, registrar, alice)
        assert second in invites_to_client(edges[1])

        # alice calls out: the INVITE leaves over the working flow, through edge 2 (§4.3)
        out = alice.dial(f"sip:bob@127.0.0.1:{registrar.port}", account="alice")
        state = await out.wait_for(CallState.CONNECTED, timeout=20)
        assert state is CallState.CONNECTED, out.summary()
        out.hangup()
        await out.wait_ended(10)
        assert str(out.summary()["call_id"]) in from_client(edges[1], "INVITE")

        await asyncio.to_thread(edges[0].start, keep_ports=True)
        await await_until(
            lambda: all(f["state"] == "registered" for f in flows(alice)),
            20,
            message="flow 1 did not register again",
        )
        again = await asyncio.to_thread(
            lambda: await_registrar(registrar, lambda cs: reg_ids(cs) == ["1", "2"])
        )
        assert len({c["fields"].get("Instance") for c in again}) == 1
        assert any(f":{edges[0].port}" in c["fields"].get("Path", "") for c in again)
    finally:
        await bob.stop()
        await alice.stop()


def await_registrar(registrar: Kamailio, ok: Any) -> list[ContactInfo]:
    """The registrar's bindings of alice once ``ok(bindings)`` holds (within 15 s)."""

    def check() -> list[ContactInfo] | None:
        found = bindings(registrar)
        return found if ok(found) else None

    return wait_until(check, 15, interval=0.5, message="registrar bindings of alice")
