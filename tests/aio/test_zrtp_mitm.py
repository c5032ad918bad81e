"""A man in the middle between two real Phones (RFC 6189 §4.3, §7): a rogue SIP server that
relays the signalling, rewrites each SDP's media port and ``a=zrtp-hash`` to its own, and runs
one ZRTP session towards each phone (it owns both Diffie-Hellman exchanges), decrypting and
re-encrypting the SRTP in between. It even presents each phone's real ZID to the other.

What gives it away: the two phones show DIFFERENT SAS; and once the phones had verified each
other in a direct call, the relay cannot prove the retained secret, so both raise the
cache-mismatch alarm and keep their secrets untouched (RFC 6189 §4.6.1.1).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.media.srtp import SrtpContext
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.events import SecureOn
from securephone.media.zrtp.packet import is_zrtp
from securephone.media.zrtp.session import ZrtpConfig, ZrtpSession
from securephone.sip.callstate import CallState

from ..helpers import await_until, free_port
from .calls import connected_pair, keying_event
from .test_zrtp_calls import config

LO = "127.0.0.1"
Address = tuple[str, int]


@dataclass
class Leg:
    """The relay's media towards one phone: its socket, its ZRTP session, its SRTP keys."""

    sock: socket.socket
    zrtp: ZrtpSession
    peer: Address | None = None
    srtp: SrtpContext | None = None
    secure: SecureOn | None = None
    relayed: int = field(default=0)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


def _udp(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LO, port))
    sock.setblocking(False)
    return sock


class RogueRelay:
    """A stateless SIP relay (RFC 3261 §16.11 Via push/pop, Record-Route) that rewrites SDP,
    plus a ZRTP endpoint on each media leg."""

    def __init__(self, bob: Address, alice_zid: bytes, bob_zid: bytes) -> None:
        self.bob = bob
        self.sip = _udp()
        self.port = int(self.sip.getsockname()[1])
        # leg a faces alice pretending to be bob (bob's ZID), leg b faces bob as alice
        self.a = Leg(_udp(free_port("udp", pair=True)), self._session(bob_zid, 0xA))
        self.b = Leg(_udp(free_port("udp", pair=True)), self._session(alice_zid, 0xB))
        self._loop = asyncio.get_running_loop()
        self._tick: asyncio.Task[None] | None = None

    @staticmethod
    def _session(zid: bytes, ssrc: int) -> ZrtpSession:
        return ZrtpSession(ZrtpConfig(), ZrtpCache(zid=zid), ssrc)

    def start(self) -> None:
        self._loop.add_reader(self.sip.fileno(), self._sip_readable)
        for leg, other in ((self.a, self.b), (self.b, self.a)):
            self._loop.add_reader(leg.sock.fileno(), self._media_readable, leg, other)
        self._tick = self._loop.create_task(self._timers())

    def close(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        for sock in (self.sip, self.a.sock, self.b.sock):
            self._loop.remove_reader(sock.fileno())
            sock.close()

    # -- SIP -------------------------------------------------------------------------------------
    def _sip_readable(self) -> None:
        while True:
            try:
                data, source = self.sip.recvfrom(65535)
            except BlockingIOError:
                return
            self._relay_sip(data.decode(), source)

    def _relay_sip(self, text: str, source: Address) -> None:
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        if lines[0].startswith("SIP/2.0"):
            lines = _pop_via(lines)
            target = _via_address(lines)
        else:
            lines = [
                ln for ln in lines if not ln.lower().startswith(f"route: <sip:{LO}:{self.port}")
            ]
            target = self._request_target(lines[0])
            branch = hashlib.sha256(_top_via(lines).encode()).hexdigest()[:16]
            via = f"Via: SIP/2.0/UDP {LO}:{self.port};branch=z9hG4bK{branch}"
            first_via = next(i for i, ln in enumerate(lines) if ln.lower().startswith("via:"))
            lines.insert(first_via, via)
            if lines[0].startswith("INVITE") and ";tag=" not in _header(lines, "to"):
                lines.insert(1, f"Record-Route: <sip:{LO}:{self.port};lr>")
        if body:
            body = self._rewrite_sdp(body, towards_bob=target == self.bob)
            lines = [ln for ln in lines if not ln.lower().startswith("content-length:")]
            lines.append(f"Content-Length: {len(body.encode())}")
        self.sip.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), target)

    def _request_target(self, request_line: str) -> Address:
        found = re.search(r"sip:(?:[^@\s]+@)?([\d.]+):(\d+)", request_line)
        assert found is not None, request_line
        address = (found.group(1), int(found.group(2)))
        return self.bob if address == (LO, self.port) else address

    def _rewrite_sdp(self, sdp: str, towards_bob: bool) -> str:
        """Media to our leg socket, our Hello's hash instead of the sender's (RFC 6189 §8.1)."""
        sender, receiver = (self.a, self.b) if towards_bob else (self.b, self.a)
        port = re.search(r"m=audio (\d+)", sdp)
        hello = re.search(r"a=zrtp-hash:1\.10 ([0-9a-f]+)", sdp)
        assert port is not None and hello is not None, sdp
        if sender.peer is None:
            sender.peer = (LO, int(port.group(1)))
            sender.zrtp.set_peer_hello_hash(hello.group(1))
            sender.zrtp.start(self._loop.time())
        sdp = sdp.replace(port.group(0), f"m=audio {receiver.port}")
        return sdp.replace(hello.group(0), f"a=zrtp-hash:{receiver.zrtp.sdp_zrtp_hash}")

    # -- media -------------------------------------------------------------------------------------
    def _media_readable(self, leg: Leg, other: Leg) -> None:
        while True:
            try:
                data, source = leg.sock.recvfrom(4096)
            except BlockingIOError:
                break
            if is_zrtp(data):
                leg.zrtp.receive(data, source[:2], self._loop.time())
            elif leg.srtp is not None and other.srtp is not None and other.peer is not None:
                clear = leg.srtp.unprotect(data)  # the relay hears everything
                if clear is not None:
                    other.sock.sendto(other.srtp.protect(clear), other.peer)
                    leg.relayed += 1
        self._drive(leg)

    def _drive(self, leg: Leg) -> None:
        now = self._loop.time()
        deadline = leg.zrtp.get_timer()
        if deadline is not None and now >= deadline:
            leg.zrtp.handle_timer(now)
        while (event := leg.zrtp.next_event()) is not None:
            if isinstance(event, SecureOn):
                leg.secure = event
                leg.srtp = SrtpContext(event.srtp_suite, event.local_key, event.remote_key)
        for datagram in leg.zrtp.datagrams_to_send():
            if leg.peer is not None:
                leg.sock.sendto(datagram, leg.peer)

    async def _timers(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            for leg in (self.a, self.b):
                if leg.peer is not None:
                    self._drive(leg)


def _header(lines: list[str], name: str) -> str:
    return next((ln for ln in lines if ln.lower().startswith(name + ":")), "")


def _top_via(lines: list[str]) -> str:
    return _header(lines, "via")


def _pop_via(lines: list[str]) -> list[str]:
    first = next(i for i, ln in enumerate(lines) if ln.lower().startswith("via:"))
    return lines[:first] + lines[first + 1 :]


def _via_address(lines: list[str]) -> Address:
    found = re.search(r"SIP/2\.0/UDP ([\d.]+):(\d+)", _top_via(lines))
    assert found is not None, lines
    return found.group(1), int(found.group(2))


def sas_of(call: Call) -> str:
    keys = keying_event(call)
    assert keys is not None
    return str(keys.details["sas"])


async def test_relay_in_the_middle_shows_different_sas_and_is_caught_by_the_cache(
    tmp_path: Path,
) -> None:
    alice = Phone(config(tmp_path / "alice"))
    bob = Phone(config(tmp_path / "bob", auto_answer=True))
    await alice.start()
    await bob.start()
    relay: RogueRelay | None = None
    try:
        # 1. a direct call: equal SAS, both confirm it; both caches now say "verified"
        call, their = await connected_pair(alice, bob, "ZRTP")
        assert sas_of(call) == sas_of(their)
        call.confirm_sas()
        their.confirm_sas()
        call.hangup()
        await their.wait_ended(5)
        alice_cache, bob_cache = alice._zrtp_cache, bob._zrtp_cache
        assert alice_cache is not None and bob_cache is not None
        rs1 = alice_cache.peers[bob_cache.zid].rs1
        assert rs1 is not None and rs1 == bob_cache.peers[alice_cache.zid].rs1

        # 2. the same call through the rogue relay
        bob_port = int(bob.status()["listen"]["udp"].split(":")[1])
        relay = RogueRelay((LO, bob_port), alice_cache.zid, bob_cache.zid)
        relay.start()
        call = alice.dial(f"sip:bob@{LO}:{relay.port}")
        assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
        their = await await_until(
            lambda: next((c for c in bob.calls.values() if not c.ended), None), 5
        )
        await await_until(
            lambda: keying_event(call) and keying_event(their), 10, message="ZRTP via relay"
        )
        # audio really flows through the relay, decrypted and re-encrypted by it
        await await_until(lambda: relay is not None and relay.a.relayed > 20, 5)
        await await_until(lambda: relay is not None and relay.b.relayed > 20, 5)
        assert relay.a.secure is not None and relay.b.secure is not None
        # the two legs have their own SAS: the phones read different strings to each other
        assert sas_of(call) == relay.a.secure.sas and sas_of(their) == relay.b.secure.sas
        assert sas_of(call) != sas_of(their)
        for side in (call, their):
            keys = keying_event(side)
            assert keys is not None
            assert keys.details["cache_mismatch"] is True
            assert keys.details["previously_verified"] is False
            security = side.security
            assert security["alarms"] and "cache mismatch" in security["alarms"][0]
            srtp = side.summary()["media"]["srtp"]
            assert srtp["packets_unprotected"] > 10 and srtp["auth_failures"] == 0
        call.hangup()
        await their.wait_ended(5)
        # nobody confirmed the SAS: the retained secrets are untouched (RFC 6189 §4.6.1.1)
        assert alice_cache.peers[bob_cache.zid].rs1 == rs1
        assert bob_cache.peers[alice_cache.zid].rs1 == rs1
    finally:
        if relay is not None:
            relay.close()
        await alice.stop()
        await bob.stop()
