"""Calls between two sans-I/O user agents wired in memory (RFC 3261 §13–15, RFC 3264 hold)."""

from __future__ import annotations

import logging

import pytest

from securephone.media.negotiation import SdpMedia
from securephone.sdp.offer_answer import MediaCapabilities
from securephone.sip.callmanager import MAX_FORKS
from securephone.sip.callstate import CallEnding, CallState
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


def test_busy_log_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """An INVITE flood at the call limit: the first few lines, then counts (issue 13)."""
    pair = Pair(max_calls=1)
    connect(pair)
    caplog.set_level(logging.INFO, logger="securephone.sip.callmanager")
    for port in range(50):
        pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(41000 + 2 * port), pair.now)
        pair.flush()
    busy = [r for r in caplog.records if r.getMessage().startswith("busy")]
    assert len(pair.sent("b", "SIP/2.0 486")) >= 50
    assert len(busy) == pair.b.calls.busy_log.burst
    assert pair.b.calls.busy_log.total["busy"] == 50


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


# -- event order, endings, and the branches a plain call does not take ------------------------------


def kinds(pair: Pair, name: str) -> list[str]:
    """The side's events in order, as short names (state changes by their new state)."""
    names = []
    for event in pair.events[name]:
        if isinstance(event, CallStateChanged):
            names.append(event.new.value)
        elif isinstance(event, CallMediaUpdated | HoldChanged | IncomingCall):
            names.append(type(event).__name__)
    return names


def test_event_order_both_sides_through_hold_and_hangup() -> None:
    pair = Pair()
    key, incoming, _, _ = connect(pair)
    assert kinds(pair, "a") == ["ringing", "connected", "CallMediaUpdated"]
    assert kinds(pair, "b") == ["IncomingCall", "answering", "connected", "CallMediaUpdated"]
    for name in ("a", "b"):
        pair.events[name].clear()
    pair.a.hold(key, True, pair.now)
    pair.flush()
    pair.a.hold(key, False, pair.now)
    pair.flush()
    held = ["HoldChanged", "CallMediaUpdated"]
    assert kinds(pair, "a") == held + held
    assert kinds(pair, "b") == held + held
    for name in ("a", "b"):
        pair.events[name].clear()
    pair.b.hangup(incoming, pair.now)
    pair.flush()
    assert kinds(pair, "b") == ["terminating", "terminated"]
    assert kinds(pair, "a") == ["terminated"]


def test_endings_are_typed_and_clean_only_for_hang_ups() -> None:
    pair = Pair()
    key, incoming, _, _ = connect(pair)
    pair.a.hangup(key, pair.now)
    pair.flush()
    a, b = pair.a.calls.get(key), pair.b.calls.get(incoming)
    assert a.ending is CallEnding.HUNG_UP_HERE and b.ending is CallEnding.HUNG_UP_THERE
    assert a.ending.ok and b.ending.ok and a.answered and b.answered
    last = [e for e in pair.events["a"] if isinstance(e, CallStateChanged)][-1]
    assert last.ending is CallEnding.HUNG_UP_HERE
    bye = parse_message(pair.sent("a", "BYE")[0])
    assert "Reason" not in bye.headers  # a plain hang-up gives no cause (RFC 3326)


def test_reject_and_cancel_endings() -> None:
    pair = Pair()
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    pair.b.reject(pair.incoming(), 603, pair.now)
    pair.flush()
    a, b = pair.a.calls.get(key), pair.b.calls.get(key)
    assert a.ending is CallEnding.REJECTED and a.status == 603 and not a.ending.ok
    assert b.ending is CallEnding.DECLINED_HERE


def test_no_common_codec_ends_as_media_refused() -> None:
    pair = Pair()
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000, ("PCMA",)), pair.now).key
    pair.flush()
    pair.b.answer(pair.incoming(), media(40002, ("PCMU",)), pair.now)
    pair.flush()
    assert pair.a.calls.get(key).ending is CallEnding.MEDIA_REFUSED
    assert pair.b.calls.get(key).ending is CallEnding.MEDIA_REFUSED


def retag(data: bytes, header: str, new_tag: str) -> bytes:
    """The message with the tag of ``header`` (To/From) replaced."""
    message = parse_message(data)
    value = message.headers.get(header) or ""
    head, _, _ = value.partition(";tag=")
    message.headers.set(header, f"{head};tag={new_tag}")
    return bytes(message)


def test_second_forked_2xx_is_acked_and_byed() -> None:
    """RFC 3261 §13.2.2.4: a 2xx from a second fork gets an ACK and a BYE; the call stays up."""
    pair = Pair()
    key, _, _, _ = connect(pair)
    ok = pair.sent("b", "SIP/2.0 200")[0]
    pair.a.receive_datagram(retag(ok, "To", "otherfork"), B, pair.now)
    out = [o.data for o in pair.a.outgoing()]
    acks = [d for d in out if d.startswith(b"ACK")]
    byes = [d for d in out if d.startswith(b"BYE")]
    assert len(acks) == 1 and len(byes) == 1
    assert parse_message(byes[0]).to.tag == "otherfork"
    assert pair.a.calls.get(key).state is CallState.CONNECTED


def test_forked_2xx_each_fork_is_byed_once_and_forks_are_bounded() -> None:
    """A retransmitted 2xx of an extra fork gets its ACK again but no second BYE; past MAX_FORKS
    new tags get nothing: who sends 2xx must not make us send a BYE for each of them."""
    pair = Pair()
    key, _, _, _ = connect(pair)
    ok = pair.sent("b", "SIP/2.0 200")[0]
    for _ in range(3):
        pair.a.receive_datagram(retag(ok, "To", "otherfork"), B, pair.now)
    for n in range(50):
        pair.a.receive_datagram(retag(ok, "To", f"fork{n}"), B, pair.now)
    out = [o.data for o in pair.a.outgoing()]
    byes = [parse_message(d).to.tag for d in out if d.startswith(b"BYE")]
    acks = [d for d in out if d.startswith(b"ACK")]
    assert byes == ["otherfork", *(f"fork{n}" for n in range(MAX_FORKS - 1))]
    assert len(acks) == 3 + MAX_FORKS - 1
    assert pair.a.calls.get(key).state is CallState.CONNECTED


def test_invite_401_is_retried_once_with_credentials() -> None:
    """RFC 3261 §22.2: the INVITE goes again with CSeq + 1 and an Authorization header."""
    from securephone.sip.message import make_response
    from securephone.sip.router import AccountSpec

    pair = Pair()
    aor = SipUri.parse("sip:alice@127.0.0.1")
    spec = AccountSpec("alice", aor, aor, "alice", "secret", register=False)
    pair.a.add_account(spec)
    challenged: list[bytes] = []

    def challenge_first(sender: str, data: bytes) -> bool:
        if sender == "a" and data.startswith(b"INVITE") and not challenged:
            challenged.append(data)
            return True
        return False

    pair.drop = challenge_first
    key = pair.a.dial(
        SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now, account="alice"
    ).key
    pair.flush()
    invite = parse_message(challenged[0])
    assert isinstance(invite, Request)
    response = make_response(invite, 401, to_tag="t401")
    response.headers.add("WWW-Authenticate", 'Digest realm="test", nonce="abc", qop="auth"')
    pair.a.receive_datagram(bytes(response), B, pair.now)
    pair.flush()
    invites = [parse_message(d) for d in pair.sent("a", "INVITE")]
    assert len(invites) == 2 and invites[1].cseq.seq == invites[0].cseq.seq + 1
    assert "Digest" in (invites[1].headers.get("Authorization") or "")
    pair.b.answer(pair.incoming(), media(40002), pair.now)
    pair.flush()
    assert pair.a.calls.get(key).state is CallState.CONNECTED


def test_invite_without_sdp_gets_offer_in_2xx_and_answer_in_ack() -> None:
    """RFC 3264 §5 / RFC 3261 §13.2.1: no offer in the INVITE, so ours is in the 2xx, theirs in the ACK."""
    pair = Pair()
    stripped: list[bytes] = []

    def strip_body(sender: str, data: bytes) -> bool:
        if sender == "a" and data.startswith(b"INVITE") and not stripped:
            stripped.append(data)
            return True
        return False

    pair.drop = strip_body
    ma = media(40000)
    pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), ma, pair.now)
    pair.flush()
    invite = parse_message(stripped[0])
    assert isinstance(invite, Request)
    invite.body = b""
    invite.headers.remove("Content-Type")
    pair.drop = lambda sender, data: True  # the caller's own side plays no further part
    pair.b.receive_datagram(bytes(invite), A, pair.now)
    pair.flush()
    key = pair.incoming()
    mb = media(40002)
    pair.b.answer(key, mb, pair.now)
    pair.flush()
    ok = parse_message(pair.sent("b", "SIP/2.0 200")[0])
    assert ok.body.startswith(b"v=0")  # our offer
    assert kinds(pair, "b") == ["IncomingCall", "answering"]
    # the caller's answer comes in the ACK
    answer = media(40000).receive_offer(ok.body, False)
    ack = Request("ACK", SipUri.parse("sip:securephone@127.0.0.1:5080"), ok.headers.copy(), answer)
    ack.headers.set("CSeq", f"{invite.cseq.seq} ACK")
    ack.headers.remove("Contact")
    ack.headers.set("Via", str(invite.top_via))
    pair.b.receive_datagram(bytes(ack), A, pair.now)
    pair.flush()
    assert kinds(pair, "b") == ["IncomingCall", "answering", "connected", "CallMediaUpdated"]
    assert mb.negotiated is not None and mb.negotiated.remote_port == 40000


def test_invite_timeout_ends_as_timed_out() -> None:
    pair = Pair()
    pair.drop = lambda sender, data: sender == "a"
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    pair.advance(40)  # Timer B = 64*T1 = 32 s
    call = pair.a.calls.get(key)
    assert call.ending is CallEnding.TIMED_OUT and call.status == 408
    assert len(pair.sent("a", "INVITE")) == 7  # sent at 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5


def test_transport_failure_ends_the_call() -> None:
    pair = Pair()
    pair.drop = lambda sender, data: sender == "a"
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    pair.a.transport_failed(B, "connection refused", pair.now)
    call = pair.a.calls.get(key)
    assert call.ending is CallEnding.TRANSPORT_FAILED and call.reason == "connection refused"


def test_outgoing_ring_timeout_cancels() -> None:
    pair = Pair()
    key = pair.a.dial(
        SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now, ring_timeout=5
    ).key
    pair.flush()
    pair.advance(4.9)
    assert pair.a.calls.get(key).state is CallState.RINGING
    pair.advance(0.2)
    a, b = pair.a.calls.get(key), pair.b.calls.get(key)
    assert len(pair.sent("a", "CANCEL")) == 1
    assert a.ending is CallEnding.NO_ANSWER and a.status == 487
    assert "no answer within 5" in a.reason
    assert b.ending is CallEnding.CANCELLED_THERE


def test_incoming_ring_timeout_answers_480() -> None:
    """An unanswered INVITE cannot hold a call slot for ever: 480 after the ring timeout."""
    pair = Pair(max_calls=1)
    pair.b.calls.incoming_ring_timeout = 10
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    pair.advance(10.5)
    assert pair.b.calls.get(key).ending is CallEnding.NO_ANSWER
    a = pair.a.calls.get(key)
    assert a.ending is CallEnding.REJECTED and a.status == 480
    assert not pair.b.calls.active()  # the slot is free again


def test_missing_ack_bye_carries_reason_408() -> None:
    pair = Pair()
    pair.drop = lambda sender, data: sender == "a" and data.startswith(b"ACK")
    connect(pair)
    pair.advance(33)
    bye = parse_message(pair.sent("b", "BYE")[0])
    assert (bye.headers.get("Reason") or "").startswith("SIP;cause=408")
    call = next(iter(pair.b.calls.calls.values()))
    assert call.ending is CallEnding.TIMED_OUT


def test_hangup_while_answering_sends_bye_after_the_ack() -> None:
    """RFC 3261 §15: the callee must not send BYE before the ACK (or its timeout)."""
    pair = Pair()
    held: list[bytes] = []

    def hold_ack(sender: str, data: bytes) -> bool:
        if sender == "a" and data.startswith(b"ACK") and not held:
            held.append(data)
            return True
        return False

    pair.drop = hold_ack
    key, incoming, _, _ = connect(pair)
    pair.b.hangup(incoming, pair.now)
    pair.flush()
    assert pair.b.calls.get(incoming).state is CallState.TERMINATING
    assert not pair.sent("b", "BYE")
    pair.b.receive_datagram(held[0], A, pair.now)
    pair.flush()
    assert len(pair.sent("b", "BYE")) == 1
    assert pair.b.calls.get(incoming).ending is CallEnding.HUNG_UP_HERE
    assert pair.a.calls.get(key).ending is CallEnding.HUNG_UP_THERE


def test_call_commands_on_unknown_or_wrong_state_raise_call_error() -> None:
    import pytest

    from securephone.errors import CallError

    pair = Pair()
    _, incoming, _, _ = connect(pair)
    with pytest.raises(CallError):
        pair.a.hangup("nope", pair.now)
    with pytest.raises(CallError):
        pair.b.answer(incoming, media(40010), pair.now)  # already connected
    with pytest.raises(CallError):
        pair.b.reject(incoming, 486, pair.now)


def test_refused_offer_gets_488_without_ringing() -> None:
    """The phone's media policy is asked before the 180: an offer it cannot take never rings."""
    from securephone.errors import MediaError

    pair = Pair()
    checked: list[str | None] = []

    def refuse(account: str | None, invite: Request, transport: str) -> MediaError | None:
        checked.append(transport)
        return MediaError("SRTP is mandatory but the offer is RTP/AVP", 488, security=True)

    pair.b.calls.offer_check = refuse
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    assert checked == ["udp"]
    assert not pair.sent("b", "SIP/2.0 180")
    rejection = parse_message(pair.sent("b", "SIP/2.0 488")[0])
    assert "RTP/AVP" in (rejection.headers.get("Warning") or "")
    assert pair.b.calls.get(key).ending is CallEnding.SECURITY_REFUSED
    assert pair.a.calls.get(key).ending is CallEnding.MEDIA_REFUSED  # as the caller sees a 488
    assert kinds(pair, "b") == ["IncomingCall", "terminated"]


def test_refused_offers_are_logged_a_few_at_a_time(caplog: pytest.LogCaptureFixture) -> None:
    """Anyone can send INVITEs the media policy refuses: a burst of warnings, then counts."""
    from securephone.errors import MediaError

    pair = Pair()

    def refuse(account: str | None, invite: Request, transport: str) -> MediaError | None:
        return MediaError("SRTP is mandatory but the offer is RTP/AVP", 488, security=True)

    pair.b.calls.offer_check = refuse
    caplog.set_level(logging.WARNING, logger="securephone.sip.callmanager")
    for port in range(40):
        pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(41000 + 2 * port), pair.now)
        pair.flush()
    refused = [r for r in caplog.records if r.getMessage().startswith("offer refused")]
    assert len(pair.sent("b", "SIP/2.0 488")) >= 40  # every one refused all the same
    assert len(refused) == pair.b.calls.refusal_log.burst
    assert all(r.levelno == logging.WARNING for r in refused)
    assert pair.b.calls.refusal_log.total["offer refused"] == 40


def test_crossed_byes_keep_each_sides_own_cause() -> None:
    """Both sides end the call for a security cause at once: the BYEs cross, and each side's
    ending stays its own cause rather than "the far end hung up"."""
    pair = Pair()
    key, incoming, _, _ = connect(pair)
    pair.a.terminate(key, CallEnding.SECURITY_REFUSED, "fingerprint mismatch", pair.now)
    pair.b.terminate(incoming, CallEnding.SECURITY_REFUSED, "peer alert", pair.now)
    pair.flush()
    a, b = pair.a.calls.get(key), pair.b.calls.get(incoming)
    assert a.ending is CallEnding.SECURITY_REFUSED and a.reason == "fingerprint mismatch"
    assert b.ending is CallEnding.SECURITY_REFUSED and b.reason == "peer alert"
