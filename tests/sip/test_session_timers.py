"""RFC 4028 session timers between two sans-I/O user agents on the fake clock."""

from __future__ import annotations

from securephone.sip.callstate import CallEnding, CallState
from securephone.sip.message import Request, Response, make_response, parse_message
from securephone.sip.uri import SipUri

from .test_calls import B, Pair, connect, media


def _sent(pair: Pair, name: str, start: str) -> list[Request | Response]:
    return [parse_message(data) for data in pair.sent(name, start)]


def test_offered_agreed_and_refreshed_by_the_caller() -> None:
    pair = Pair()
    key, incoming, _, _ = connect(pair)
    invite = _sent(pair, "a", "INVITE")[0]
    assert invite.headers.get("Session-Expires") == "1800"
    assert "timer" in (invite.headers.get("Supported") or "")
    ok = _sent(pair, "b", "SIP/2.0 200")[0]
    assert ok.headers.get("Session-Expires") == "1800;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    caller, callee = pair.a.calls.get(key), pair.b.calls.get(incoming)
    assert caller.session_refresh_at == 900 and callee.session_refresh_at is None
    pair.advance(899)
    assert len(pair.sent("a", "INVITE")) == 1
    pair.advance(3600)  # four refreshes later the call is still up on both sides
    refreshes = _sent(pair, "a", "INVITE")[1:]
    assert len(refreshes) == 4
    assert all(r.headers.get("Session-Expires") == "1800;refresher=uac" for r in refreshes)
    assert caller.state is CallState.CONNECTED and callee.state is CallState.CONNECTED
    assert pair.sent("a", "BYE") == pair.sent("b", "BYE") == []


def test_a_session_not_refreshed_is_ended_with_bye_408() -> None:
    pair = Pair()
    _, incoming, _, _ = connect(pair)
    pair.drop = lambda sender, data: sender == "a"  # the caller vanished: nothing more arrives
    pair.advance(1767)
    callee = pair.b.calls.get(incoming)
    assert callee.state is CallState.CONNECTED and pair.sent("b", "BYE") == []
    pair.advance(2)  # 1800 - min(32, 1800/3) after the ACK
    bye = _sent(pair, "b", "BYE")[0]
    assert (bye.headers.get("Reason") or "").startswith("SIP;cause=408")
    pair.advance(40)  # the BYE itself goes unanswered
    assert callee.state is CallState.TERMINATED and callee.ending is CallEnding.TIMED_OUT
    assert "session expired" in callee.reason
    # the caller did try its refresh at 900 s (retransmitted, then it gave up)
    assert {m.cseq.seq for m in _sent(pair, "a", "INVITE")} == {1, 2}


def test_too_small_an_interval_gets_422_and_the_caller_asks_again_with_min_se() -> None:
    pair = Pair()
    pair.a.calls.session_expires = 30
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    refusal = _sent(pair, "b", "SIP/2.0 422")
    assert len(refusal) == 1 and refusal[0].headers.get("Min-SE") == "90"
    b_first = next(data for name, data in pair.wire if name == "b")
    assert b_first.startswith(b"SIP/2.0 422")  # refused before ringing (RFC 4028 §8.1)
    first, again = _sent(pair, "a", "INVITE")  # RFC 4028 §7.4: once more, asking for 90 s
    assert again.cseq.seq == first.cseq.seq + 1 and again.call_id == first.call_id
    assert again.headers.get("Session-Expires") == "90" and again.headers.get("Min-SE") == "90"
    incoming = next(iter(pair.b.calls.active())).key
    pair.b.answer(incoming, media(40002), pair.now)
    pair.flush()
    caller, callee = pair.a.calls.get(key), pair.b.calls.get(incoming)
    assert caller.state is CallState.CONNECTED and callee.state is CallState.CONNECTED
    assert caller.session_refresh_at == pair.now + 45  # half of the 90 s agreed


def test_a_second_422_ends_the_call() -> None:
    pair = Pair()
    pair.a.calls.session_expires = 30
    # b never sees the retry; a proxy on the way answers it with 422 once more
    pair.drop = lambda sender, data: sender == "a" and b"\r\nCSeq: 2 INVITE" in data
    key = pair.a.dial(SipUri.parse("sip:bob@127.0.0.1:5080"), media(40000), pair.now).key
    pair.flush()
    _, again = _sent(pair, "a", "INVITE")
    assert again.headers.get("Session-Expires") == "90"
    reply = make_response(again, 422, "Session Interval Too Small", to_tag="t")  # type: ignore[arg-type]
    reply.headers.add("Min-SE", "900")
    pair.a.receive_message(reply, B, pair.now)
    pair.flush()
    call = pair.a.calls.get(key)
    assert call.state is CallState.TERMINATED and call.status == 422
    assert len(_sent(pair, "a", "INVITE")) == 2


def test_no_timer_when_the_caller_asks_for_none() -> None:
    pair = Pair()
    pair.a.calls.session_expires = None
    key, incoming, _, _ = connect(pair)
    assert _sent(pair, "b", "SIP/2.0 200")[0].headers.get("Session-Expires") is None
    for call in (pair.a.calls.get(key), pair.b.calls.get(incoming)):
        assert call.session_timer is None and call.session_expires_at is None
    pair.advance(4000)
    assert pair.b.calls.get(incoming).state is CallState.CONNECTED


def test_hold_reinvite_from_the_callee_keeps_the_caller_refreshing() -> None:
    pair = Pair()
    key, incoming, _, _ = connect(pair)
    pair.advance(100)
    pair.b.hold(incoming, True, pair.now)
    pair.flush()
    hold = _sent(pair, "b", "INVITE")[0]
    assert hold.headers.get("Session-Expires") == "1800;refresher=uas"
    assert pair.a.calls.get(key).session_refresh_at == 100 + 900  # restarted by the re-INVITE
