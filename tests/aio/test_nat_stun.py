"""STUN in the phone over real sockets on 127.0.0.1: a small STUN server (answers built by the core
codec) reports a documentation-range address; the phone must put what it heard into Contact and
SDP, show it in status(), keep its outbound flow alive with STUN and re-register when the mapping
moves (RFC 5626 §4.4.2). Media ports 56000-56099 (the NAT block)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from securephone.aio.phone import Phone
from securephone.net.stun import StunClass, StunMessage, binding_success
from securephone.sip.message import Request
from securephone.sip.message import parse_message as parse
from securephone.store.config import parse_config

from ..helpers import await_until

PUBLIC_IP = "198.51.100.7"


class FakeStun(asyncio.DatagramProtocol):
    """Answers Binding requests with a made-up public address (port = source port + offset)."""

    def __init__(self, offset: int = 1000) -> None:
        self.offset = offset
        self.requests: list[tuple[str, int]] = []
        self.times: list[float] = []  # when each request came (loop time)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = StunMessage.parse(data)
        assert request.cls is StunClass.REQUEST
        self.requests.append(addr)
        self.times.append(asyncio.get_running_loop().time())
        assert self.transport is not None
        self.transport.sendto(binding_success(request, (PUBLIC_IP, addr[1] + self.offset)), addr)


class FakeRegistrar(FakeStun):
    """A registrar on one UDP port: 200 to every REGISTER (echoing Contact), STUN answered too."""

    def __init__(self) -> None:
        super().__init__()
        self.registers: list[Request] = []
        self.invites: list[Request] = []
        self.flow_timer: str | None = None  # a Flow-Timer for the 200s (RFC 5626 §4.4.1)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data[0] < 4:
            super().datagram_received(data, addr)
            return
        message = parse(data)
        if not isinstance(message, Request):
            return
        if message.method == "INVITE":
            self.invites.append(message)
            return
        self.registers.append(message)
        lines = [
            "SIP/2.0 200 OK",
            *(f"{n}: {message.headers.get(n)}" for n in ("Via", "From", "To", "Call-ID", "CSeq")),
            f"Contact: {message.headers.get('Contact')};expires=600",
            *([f"Flow-Timer: {self.flow_timer}"] if self.flow_timer is not None else []),
            "Content-Length: 0",
        ]
        assert self.transport is not None
        self.transport.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), addr)


async def serve(protocol: FakeStun) -> tuple[asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, local_addr=("127.0.0.1", 0)
    )
    return transport, transport.get_extra_info("sockname")[1]


def config(tmp_path: Path, stun_port: int, **extra: Any) -> Any:
    return parse_config(
        {
            "data_dir": str(tmp_path),
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"port_min": 56000, "port_max": 56099, "srtp": "off"},
            "nat": {"stun_server": f"127.0.0.1:{stun_port}", "keepalive_interval": 0.3},
            **extra,
        }
    )


async def test_public_address_goes_into_contact_sdp_and_status(tmp_path: Path) -> None:
    stun_transport, stun_port = await serve(FakeStun())
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    phone = Phone(config(tmp_path, stun_port))
    try:
        await phone.start()
        sip_port = phone.status()["listen"]["udp"].rsplit(":", 1)[1]
        nat = phone.status()["nat"]
        assert nat["public_address"] == f"{PUBLIC_IP}:{int(sip_port) + 1000}"
        phone.dial(f"sip:bob@127.0.0.1:{peer.getsockname()[1]}")
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(peer, 65535), 5)
        invite = parse(data)
        assert isinstance(invite, Request)
        assert f"@{PUBLIC_IP}:{int(sip_port) + 1000}" in str(invite.headers.get("Contact"))
        body = invite.body.decode()
        rtp_port = next(iter(phone.calls.values())).channel.local_port  # type: ignore[union-attr]
        assert f"c=IN IP4 {PUBLIC_IP}" in body
        assert f"m=audio {rtp_port + 1000} " in body  # the RTP socket's own mapping
        assert phone.status()["nat"]["media_address"] == f"{PUBLIC_IP}:{rtp_port + 1000}"
    finally:
        await phone.stop(timeout=1)
        peer.close()
        stun_transport.close()


async def test_outbound_register_and_keepalive_to_the_registrar(tmp_path: Path) -> None:
    registrar = FakeRegistrar()
    reg_transport, reg_port = await serve(registrar)
    account = {
        "name": "alice",
        "user": "alice",
        "domain": "127.0.0.1",
        "registrar": f"sip:127.0.0.1:{reg_port}",
        "outbound": True,
    }
    phone = Phone(config(tmp_path, reg_port, accounts=[account]))
    try:
        await phone.start()
        await await_until(lambda: phone.status()["accounts"][0]["registration"] == "registered", 5)
        contact = str(registrar.registers[-1].headers.get("Contact"))
        urn = (tmp_path / "instance-id").read_text().strip()
        assert urn.startswith("urn:uuid:")
        assert f'+sip.instance="<{urn}>"' in contact and "reg-id=1" in contact
        assert "outbound" in str(registrar.registers[-1].headers.get("Supported"))
        # keep-alives: Binding requests from the SIP socket to the registrar, repeatedly
        sip_port = int(phone.status()["listen"]["udp"].rsplit(":", 1)[1])
        await await_until(lambda: registrar.requests.count(("127.0.0.1", sip_port)) >= 3, 5)
        # the NAT moves the flow: the next keep-alive sees it and the phone registers again
        registered = len(registrar.registers)
        registrar.offset = 2000
        await await_until(lambda: len(registrar.registers) > registered, 5)
        assert f"{PUBLIC_IP}:{sip_port + 2000}" in str(
            registrar.registers[-1].headers.get("Contact")
        )
        assert phone.status()["accounts"][0]["outbound_granted"] is False  # no Require: outbound
    finally:
        await phone.stop(timeout=1)
        reg_transport.close()
