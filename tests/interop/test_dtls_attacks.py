"""DTLS-SRTP under attack, between two securephones on real sockets, with a capture of the media:

* a SIP relay between the phones rewrites one a=fingerprint (in the offer or in the answer): the
  call fails with the fingerprint reason and not one RTP packet leaves either phone;
* a flood of DTLS ClientHellos on a phone's media port during the handshake, and garbage in the
  DTLS range after it: dropped and counted, the call keeps its keys and its audio.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any, cast

import pytest

from securephone.aio.call import Call, CallKeyingChanged
from securephone.aio.phone import Phone
from securephone.media.demux import PacketKind, classify
from securephone.media.dtls.certificate import DtlsCertificate
from securephone.media.keying import KeyingFailed, KeysAgreed
from securephone.pki import create_media_certificate
from securephone.sip.callstate import CallEnding, CallState
from securephone.store.config import parse_config

from ..helpers import await_until, free_port
from .capture import LoopbackCapture

PORTS = (54000, 54999)  # no other test uses this block (captures must not see their calls)


def phone(data_dir: Path, **calls: Any) -> Phone:
    return Phone(
        parse_config(
            {
                "data_dir": str(data_dir),
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
                "media": {"port_min": PORTS[0], "port_max": PORTS[1], "keying": ["dtls"]},
                "calls": calls,
            }
        )
    )


def udp_port(p: Phone) -> int:
    return int(p.status()["listen"]["udp"].split(":")[1])


class TamperingRelay(asyncio.DatagramProtocol):
    """Relays SIP between a caller and ``callee``, replacing ``victim`` fingerprints with
    ``forged`` ones (same length, so Content-Length stays right)."""

    def __init__(self, callee: tuple[str, int], victim: str, forged: str) -> None:
        self.callee, self.victim, self.forged = callee, victim.encode(), forged.encode()
        self.caller: tuple[str, int] | None = None
        self.rewritten = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.victim in data:
            data = data.replace(self.victim, self.forged)
            self.rewritten += 1
        if addr == self.callee:
            if self.caller is not None and self.transport is not None:
                self.transport.sendto(data, self.caller)
        else:
            self.caller = addr
            if self.transport is not None:
                self.transport.sendto(data, self.callee)


def keying_event(call: Call, kind: type[Any]) -> Any:
    for event in call.events:
        if isinstance(event, CallKeyingChanged) and isinstance(event.keying, kind):
            return event.keying
    return None


def media_kinds(capture: LoopbackCapture) -> list[PacketKind]:
    return [classify(s.payload) for s in capture.segments() if s.proto == "udp"]


@pytest.mark.parametrize("where", ["offer", "answer"])
async def test_rewritten_fingerprint_fails_the_call_and_no_rtp_leaves(
    tmp_path: Path, where: str
) -> None:
    alice = phone(tmp_path / "alice")
    bob = phone(tmp_path / "bob", auto_answer=True)
    await alice.start()
    await bob.start()
    loop = asyncio.get_running_loop()
    relay_transport = None
    try:
        target = bob if where == "answer" else alice
        victim = target.media_fingerprint
        assert victim is not None
        forged = str(DtlsCertificate.from_issued(create_media_certificate()).fingerprint())
        relay = TamperingRelay(("127.0.0.1", udp_port(bob)), victim[8:], forged[8:])
        relay_port = free_port()
        relay_transport, _ = await loop.create_datagram_endpoint(
            lambda: relay, local_addr=("127.0.0.1", relay_port)
        )
        with LoopbackCapture(
            tmp_path / "media.pcap",
            f"udp src portrange {PORTS[0]}-{PORTS[1]} and udp dst portrange {PORTS[0]}-{PORTS[1]}",
        ) as cap:
            call = alice.dial(f"sip:bob@127.0.0.1:{relay_port}")
            await call.wait_ended(20)
            their = next(iter(bob.calls.values()))
            await their.wait_ended(10)
            cap.wait_settled()
        assert relay.rewritten >= 1
        # the side that checked the forged fingerprint says why, and ended the call for security
        checker = call if where == "answer" else their
        failed = keying_event(checker, KeyingFailed)
        assert failed is not None and "fingerprint mismatch" in failed.reason, checker.events
        assert checker.ending is CallEnding.SECURITY_REFUSED, checker.reason
        assert "fingerprint mismatch" in checker.reason
        for side in (call, their):
            assert keying_event(side, KeysAgreed) is None
            assert side.summary()["media"]["packets_sent"] == 0
        kinds = media_kinds(cap)
        assert PacketKind.DTLS in kinds  # the handshake was tried on the media ports ...
        assert PacketKind.RTP not in kinds  # ... and not one RTP or RTCP packet followed
    finally:
        if relay_transport is not None:
            relay_transport.close()
        await alice.stop()
        await bob.stop()


def client_hello() -> bytes:
    """A DTLS 1.2 record header (handshake, epoch 0) around a truncated ClientHello."""
    body = b"\x01\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x40" + os.urandom(64)
    return b"\x16\xfe\xfd" + b"\x00\x00" + secrets.token_bytes(6) + len(body).to_bytes(2) + body


async def test_flood_and_garbage_on_the_media_port_are_dropped(tmp_path: Path) -> None:
    alice = phone(tmp_path / "alice")
    bob = phone(tmp_path / "bob", auto_answer=True)
    await alice.start()
    await bob.start()
    loop = asyncio.get_running_loop()
    attacker, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        call = alice.dial(f"sip:bob@127.0.0.1:{udp_port(bob)}")
        assert call.channel is not None
        target = ("127.0.0.1", call.channel.local_port)
        for _ in range(300):  # a ClientHello flood while the call is being set up
            attacker.sendto(client_hello(), target)
        assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
        their = await await_until(lambda: next(iter(bob.calls.values()), None), 5)
        await await_until(
            lambda: keying_event(call, KeysAgreed) and keying_event(their, KeysAgreed),
            10,
            message="no DTLS-SRTP keys under a flood",
        )
        for first in (20, 23, 63):  # the DTLS range of RFC 7983, after the handshake
            for _ in range(50):
                attacker.sendto(bytes([first]) + os.urandom(80), target)
        for _ in range(50):
            attacker.sendto(client_hello(), target)
        received = call.summary()["media"]["srtp"]["packets_unprotected"]
        await await_until(
            lambda: call.summary()["media"]["srtp"]["packets_unprotected"] > received + 50,
            5,
            message="audio stopped after the garbage",
        )
        path = call.summary()["security"]["path"]
        # the stranger's datagrams never reach the DTLS engine: the media stream drops them,
        # like a stranger's plain RTP, because they do not come from the negotiated address
        assert path["state"] == "connected"
        assert call.summary()["media"]["foreign_dropped"] >= 450
        assert call.state is CallState.CONNECTED and their.state is CallState.CONNECTED
        call.hangup()
        await call.wait_ended(5)
        assert call.ending is CallEnding.HUNG_UP_HERE
    finally:
        attacker.close()
        await alice.stop()
        await bob.stop()
