"""RFC 5626 flows over UDP in the phone, real sockets on 127.0.0.1: two fake edge proxies (each a
UDP registrar that also answers STUN). One REGISTER per edge with its own reg-id, a STUN keep-alive
to each edge from the SIP socket, and a moved mapping seen on one flow registers that flow again
(§4.4.2, §4.5). Media ports 56100-56199 (the NAT block)."""

from __future__ import annotations

import itertools
from pathlib import Path

from securephone.aio.phone import Phone

from ..helpers import await_until
from .test_nat_stun import PUBLIC_IP, FakeRegistrar, config, serve


async def test_one_register_and_one_keepalive_per_udp_flow(tmp_path: Path) -> None:
    edges = [FakeRegistrar(), FakeRegistrar()]
    served = [await serve(edge) for edge in edges]
    account = {
        "name": "alice",
        "user": "alice",
        "domain": "127.0.0.1",
        "outbound": True,
        "outbound_proxies": [f"sip:127.0.0.1:{port}" for _, port in served],
    }
    cfg = config(tmp_path, served[0][1], accounts=[account])
    cfg.media.port_max = 56199
    cfg.media.port_min = 56100
    phone = Phone(cfg)
    try:
        await phone.start()
        flows = lambda: phone.status()["accounts"][0]["flows"]  # noqa: E731
        await await_until(lambda: all(f["state"] == "registered" for f in flows()), 5)
        for reg_id, edge in enumerate(edges, start=1):
            (register,) = edge.registers
            assert f"reg-id={reg_id}" in str(register.headers.get("Contact"))
            assert str(register.headers.get("Route")).endswith(";lr;ob>")
        assert sorted(phone.status()["nat"]["keepalives"]) == ["alice", "alice/2"]
        sip_port = int(phone.status()["listen"]["udp"].rsplit(":", 1)[1])
        for edge in edges:  # each flow is kept alive towards its own edge
            await await_until(lambda e=edge: e.requests.count(("127.0.0.1", sip_port)) >= 3, 5)
        edges[1].offset = 2000  # only flow 2's keep-alive sees a new mapping
        await await_until(lambda: len(edges[1].registers) > 1, 5)
        moved = str(edges[1].registers[-1].headers.get("Contact"))
        assert f"{PUBLIC_IP}:{sip_port + 2000}" in moved and "reg-id=2" in moved
        assert len(edges[0].registers) == 1  # flow 1 was not disturbed
    finally:
        await phone.stop(timeout=1)
        for transport, _ in served:
            transport.close()


async def test_the_registrars_flow_timer_sets_the_keepalive_pace(tmp_path: Path) -> None:
    """RFC 5626 §4.4.1: with ``Flow-Timer: 1`` in the 200, STUN keep-alives come every 0.8-1 s
    although the configuration says 30 s; status and the SIP trace show the Flow-Timer."""
    edge = FakeRegistrar()
    edge.flow_timer = "1"
    transport, port = await serve(edge)
    account = {"name": "alice", "user": "alice", "domain": "127.0.0.1", "outbound": True,
               "registrar": f"sip:127.0.0.1:{port}"}  # fmt: skip
    cfg = config(tmp_path, port, accounts=[account])
    cfg.nat.keepalive_interval = 30.0
    cfg.sip.trace_file = str(tmp_path / "trace.txt")
    cfg.media.port_max = 56199
    cfg.media.port_min = 56100
    phone = Phone(cfg)
    try:
        await phone.start()
        await await_until(lambda: phone.status()["accounts"][0]["flow_timer"] == 1, 5)
        sip_port = int(phone.status()["listen"]["udp"].rsplit(":", 1)[1])
        mark = len(edge.times)
        await await_until(lambda: edge.requests[mark:].count(("127.0.0.1", sip_port)) >= 5, 8)
        ours = ("127.0.0.1", sip_port)  # (the RTP socket's mapping asked from another port)
        times = [
            t for t, a in zip(edge.times[mark:], edge.requests[mark:], strict=True) if a == ours
        ]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps and all(0.5 <= gap <= 2.5 for gap in gaps), gaps  # 0.8-1 s, a loaded CI too
        assert phone.nat.keepalive_interval("alice") == 1.0
        trace = (tmp_path / "trace.txt").read_text()
        assert "registrar's Flow-Timer 1 s" in trace
    finally:
        await phone.stop(timeout=1)
        transport.close()
