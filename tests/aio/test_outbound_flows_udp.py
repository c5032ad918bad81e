"""RFC 5626 flows over UDP in the phone, real sockets on 127.0.0.1: two fake edge proxies (each a
UDP registrar that also answers STUN). One REGISTER per edge with its own reg-id, a STUN keep-alive
to each edge from the SIP socket, and a moved mapping seen on one flow registers that flow again
(§4.4.2, §4.5). Media ports 56100-56199 (the NAT block)."""

from __future__ import annotations

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
