"""Calls between two sans-I/O user agents wired in memory (RFC 3261 §13–15, RFC 3264 hold)."""

from __future__ import annotations

from securephone.media.negotiation import SdpMedia
from securephone.sdp.offer_answer import MediaCapabilities
from securephone.sip.callstate import CallState
from securephone.sip.events import (
    CallMediaUpdated,
    CallStateChanged,
    Event,
    HoldChanged,
    IncomingCall,
)
from securephone.sip.message import Request, parse_message
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent

A = Peer("udp", "127.0.0.1", 5070)
B = Peer("udp", "127.0.0.1", 5080)


class Pair:
    """Two user agents on a fake network; ``drop`` can eat messages."""

    def __init__(self, max_calls: int = 4) -> None:
        self.now = 0.0
        self.a = UserAgent({"udp": (A.host, A.port)}, max_calls=max_calls)
        self.b = UserAgent({"udp": (B.host, B.port)}, max_calls=max_calls)
        self.events: dict[str, list[Event]] = {"a": [], "b": []}
        self.wire: list[tuple[str, bytes]] = []
        self.drop = lambda sender, data: False

    def flush(self) -> None:
        for _ in range(100):
            moved = False
            for name, ua, other, src in (("a", self.a, self.b, A), ("b", self.b, self.a, B)):
                self.events[name].extend(iter(ua.next_event, None))
                for out in ua.outgoing():
                    moved = True
                    self.wire.append((name, out.data))
                    if not self.drop(name, out.data):
                        other.receive_datagram(out.data, src, self.now)
            if not moved:
                break
        for name, ua in (("a", self.a), ("b", self.b)):
            self.events[name].extend(iter(ua.next_event, None))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [
                t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None and t <= end
            ]
            if not due:
                break
            self.now = max(self.now, min(due))
            self.a.handle_timer(self.now)
            self.b.handle_timer(self.now)
            self.flush()
        self.now = end

    def states(self, name: str) -> list[str]:
        return [e.new.value for e in self.events[name] if isinstance(e, CallStateChanged)]

    def incoming(self) -> str:
        calls = [e.call_id for e in self.events["b"] if isinstance(e, IncomingCall)]
        assert len(calls) == 1
        return calls[0]

    def sent(self, name: str, start: str) -> list[bytes]:
        return [d for n, d in self.wire if n == name and d.startswith(start.encode())]


def media(port: int, codecs: tuple[str, ...] = ("PCMU", "PCMA")) -> SdpMedia:
    return SdpMedia(MediaCapabilities(codecs=codecs), port)


def connect(pair: Pair) -> tuple[str, str, SdpMedia, SdpMedia]:
    ma, mb = media(40000), media(40002)
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), ma, pair.now).key
    pair.flush()
    incoming = pair.incoming()
    pair.b.answer(incoming, mb, pair.now)
    pair.flush()
    return key, incoming, ma, mb


def test_call_connects_with_ringing_and_negotiated_media() -> None:
    pair = Pair()
    key, incoming, ma, mb = connect(pair)
    assert pair.states("a") == ["ringing", "connected"]
    assert pair.states("b") == ["answering", "connected"]
    assert ma.negotiated is not None and mb.negotiated is not None
    assert (ma.negotiated.remote_port, mb.negotiated.remote_port) == (40002, 40000)
    assert ma.negotiated.codec == mb.negotiated.codec == "PCMU"
    assert any(isinstance(e, CallMediaUpdated) for e in pair.events["a"])
    assert key == incoming  # the Call-ID names the call on both sides
    ack = parse_message(pair.sent("a", "ACK")[0])
    assert isinstance(ack, Request) and ack.uri == SipUri.parse("sip:securephone@127.0.0.1:5080")


def test_bye_from_either_side() -> None:
    for side in ("a", "b"):
        pair = Pair()
        key, incoming, _, _ = connect(pair)
        ua = pair.a if side == "a" else pair.b
        ua.hangup(key if side == "a" else incoming, pair.now)
        pair.flush()
        hung, other = ("a", "b") if side == "a" else ("b", "a")
        assert pair.states(hung)[-2:] == ["terminating", "terminated"]
        assert pair.states(other)[-1] == "terminated"
        calls = {"a": pair.a.calls.get(key), "b": pair.b.calls.get(incoming)}
        assert calls[hung].reason == "hung up"
        assert calls[other].reason == "the far end hung up"


def test_cancel_while_ringing_gives_487() -> None:
    pair = Pair()
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    incoming = pair.incoming()
    pair.a.hangup(key, pair.now)
    pair.flush()
    assert pair.states("a") == ["ringing", "terminating", "terminated"]
    assert pair.a.calls.get(key).reason == "cancelled"
    assert pair.a.calls.get(key).status == 487
    assert pair.b.calls.get(incoming).status == 487
    assert len(pair.sent("a", "CANCEL")) == 1
    assert len(pair.sent("b", "SIP/2.0 487")) == 1


def test_busy_when_call_limit_reached() -> None:
    pair = Pair(max_calls=1)
    connect(pair)
    second = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40004), pair.now).key
    pair.flush()
    call = pair.a.calls.get(second)
    assert call.state is CallState.TERMINATED
    assert call.status == 486 and "486 Busy Here" in call.reason


def test_no_common_codec_is_488_with_reason() -> None:
    pair = Pair()
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000, ("PCMA",)), pair.now).key
    pair.flush()
    pair.b.answer(pair.incoming(), media(40002, ("PCMU",)), pair.now)
    pair.flush()
    call = pair.a.calls.get(key)
    assert call.state is CallState.TERMINATED and call.status == 488
    rejection = parse_message(pair.sent("b", "SIP/2.0 488")[0])
    assert "PCMA" in (rejection.headers.get("Warning") or "")


def test_hold_and_resume_both_directions() -> None:
    pair = Pair()
    key, incoming, ma, mb = connect(pair)
    pair.a.hold(key, True, pair.now)
    pair.flush()
    assert ma.negotiated is not None and mb.negotiated is not None
    assert ma.negotiated.local_direction == "sendonly"
    assert mb.negotiated.local_direction == "recvonly"
    holds_b = [e for e in pair.events["b"] if isinstance(e, HoldChanged)]
    assert holds_b and holds_b[-1].remote_hold
    pair.a.hold(key, False, pair.now)
    pair.flush()
    assert ma.negotiated.local_direction == mb.negotiated.local_direction == "sendrecv"
    # now bob holds alice
    pair.b.hold(incoming, True, pair.now)
    pair.flush()
    assert (
        mb.negotiated.local_direction == "sendonly" and ma.negotiated.local_direction == "recvonly"
    )
    holds_a = [e for e in pair.events["a"] if isinstance(e, HoldChanged)]
    assert holds_a[-1].remote_hold
    assert pair.a.calls.get(key).state is CallState.CONNECTED
    # o= versions went up by one per offer/answer (RFC 3264 §8)
    assert ma.local is not None and ma.local.origin.sess_version >= 2


def test_lost_200_is_retransmitted_until_ack() -> None:
    pair = Pair()
    dropped = {"n": 0}

    def drop_first_ok(sender: str, data: bytes) -> bool:
        if (
            sender == "b"
            and data.startswith(b"SIP/2.0 200")
            and b"INVITE" in data
            and dropped["n"] < 2
        ):
            dropped["n"] += 1
            return True
        return False

    pair.drop = drop_first_ok
    connect(pair)
    assert pair.states("b") == ["answering"]
    pair.advance(2.0)  # RFC 3261 §13.3.1.4: retransmit at T1, then 2*T1
    assert pair.states("a") == ["ringing", "connected"]
    assert pair.states("b") == ["answering", "connected"]
    assert len(pair.sent("b", "SIP/2.0 200")) == 3
    pair.advance(40)
    assert len(pair.sent("b", "SIP/2.0 200")) == 3  # no more after the ACK


def test_missing_ack_ends_call_with_bye() -> None:
    pair = Pair()
    pair.drop = lambda sender, data: sender == "a" and data.startswith(b"ACK")
    connect(pair)
    pair.advance(33)
    assert pair.states("b")[-1] == "terminated"
    assert len(pair.sent("b", "BYE")) == 1


def test_glare_491_then_retry() -> None:
    pair = Pair()
    key, incoming, ma, mb = connect(pair)
    pair.a.hold(key, True, pair.now)
    pair.b.hold(incoming, True, pair.now)  # both re-INVITEs cross on the wire
    pair.flush()
    assert len(pair.sent("a", "SIP/2.0 491")) + len(pair.sent("b", "SIP/2.0 491")) == 2
    pair.advance(5)  # both retry after the RFC 3261 §14.1 random delays
    assert ma.negotiated is not None and mb.negotiated is not None
    assert pair.a.calls.get(key).local_hold and pair.b.calls.get(incoming).local_hold
    assert ma.negotiated.local_direction in ("sendonly", "inactive")


def test_ended_calls_are_forgotten_with_their_indexes() -> None:
    pair = Pair()
    keys = []
    for _ in range(3):
        pair.events["b"].clear()
        key, _, _, _ = connect(pair)
        pair.a.hangup(key, pair.now)
        pair.flush()
        keys.append(key)
    manager = pair.a.calls
    manager.forget_ended(keep=1)
    assert list(manager.calls) == [keys[-1]]
    for table in (manager._by_tx, manager._by_dialog, manager._by_invite):
        assert set(table.values()) <= {keys[-1]}
