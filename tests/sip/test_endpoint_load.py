"""Issue 13 item 7: transaction look-up is O(1) per message and the server table is bounded.

Fake clock, no sockets: a 10,000-request OPTIONS flood leaves at most ``max_server_transactions``
live, a later OPTIONS is still answered 200 while touching O(1) transactions, and requests that
find the table full of pending transactions get a 503 with Retry-After, then are dropped.
"""

from __future__ import annotations

import pytest

from securephone.sip.endpoint import EndpointLimits, SipEndpoint
from securephone.sip.events import RequestReceived
from securephone.sip.message import Response, make_response, parse_message
from securephone.sip.transaction import Transaction
from securephone.sip.transport import Peer
from securephone.sip.useragent import UserAgent

from .wire import build_request

NOW = 1000.0


def options(i: int) -> tuple[bytes, Peer]:
    request = build_request("OPTIONS", port=20000 + i % 5000)
    return bytes(request), Peer("udp", "127.0.0.1", 20000 + i % 5000)


def answers(ua: UserAgent) -> list[Response]:
    out = [parse_message(o.data) for o in ua.outgoing()]
    return [m for m in out if isinstance(m, Response)]


def test_an_options_flood_is_bounded_and_a_later_options_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ua = UserAgent({"udp": ("127.0.0.1", 5060)})
    limit = ua.endpoint.limits.max_server_transactions
    for i in range(10_000):
        data, peer = options(i)
        ua.receive_datagram(data, peer, NOW + i / 1000)  # 1,000 per second for 10 s
        ua.outgoing()
    assert ua.endpoint.transaction_count <= limit  # Timer J would keep all 10,000 for 32 s
    assert ua.endpoint.overloaded == 0  # completed ones made room: nobody was refused

    looked_at = 0
    deadline = Transaction.deadline

    def counting(tx: Transaction) -> float | None:
        nonlocal looked_at
        looked_at += 1
        return deadline(tx)

    monkeypatch.setattr(Transaction, "deadline", counting)
    probe = build_request("OPTIONS", port=5999)
    ua.receive_datagram(bytes(probe), Peer("udp", "127.0.0.1", 5999), NOW + 10.5)
    ua.get_timer()
    replies = answers(ua)
    assert [r.status for r in replies] == [200]
    assert replies[0].call_id == probe.call_id
    assert looked_at < 10  # the message and the next deadline touch O(1) transactions


def test_pending_requests_beyond_the_bound_get_503_then_are_dropped() -> None:
    endpoint = SipEndpoint(
        limits=EndpointLimits(max_server_transactions=10, overload_replies_per_second=5)
    )
    peer = Peer("udp", "127.0.0.1", 5070)
    for _ in range(30):  # INVITEs nobody answers: they stay pending
        endpoint.receive_message(build_request("INVITE"), peer, NOW)
    received = []
    while (event := endpoint.next_event()) is not None:
        received.append(event)
    assert len([e for e in received if isinstance(e, RequestReceived)]) == 10
    refusals = [parse_message(o.data) for o in endpoint.outgoing()]
    assert [getattr(r, "status", None) for r in refusals] == [503] * 5  # then dropped
    assert all(r.headers.get("Retry-After") == "5" for r in refusals)
    assert endpoint.overloaded == 20
    endpoint.receive_message(build_request("INVITE"), peer, NOW + 1.0)
    assert len(endpoint.outgoing()) == 1  # the budget refills with time
    assert endpoint.transaction_count == 10


def test_completed_transactions_make_room_for_new_ones() -> None:
    endpoint = SipEndpoint(limits=EndpointLimits(max_server_transactions=10))
    peer = Peer("udp", "127.0.0.1", 5070)
    first = []
    for _ in range(10):
        request = build_request("OPTIONS")
        endpoint.receive_message(request, peer, NOW)
        event = endpoint.next_event()
        assert isinstance(event, RequestReceived) and event.transaction_id is not None
        endpoint.send_response(event.transaction_id, make_response(request, 200), NOW)
        first.append(event.transaction_id)
    endpoint.receive_message(build_request("OPTIONS"), peer, NOW)
    assert isinstance(endpoint.next_event(), RequestReceived)
    assert endpoint.transaction_count == 10
    assert endpoint.server_request(first[0]) is None  # the oldest completed one made room
    assert endpoint.server_request(first[1]) is not None


def test_timers_still_fire_from_the_heap() -> None:
    """Timer J of a UDP non-INVITE server transaction ends it 64*T1 later, and only then."""
    endpoint = SipEndpoint()
    request = build_request("OPTIONS")
    endpoint.receive_message(request, Peer("udp", "127.0.0.1", 5070), NOW)
    event = endpoint.next_event()
    assert isinstance(event, RequestReceived) and event.transaction_id is not None
    endpoint.send_response(event.transaction_id, make_response(request, 200), NOW)
    assert endpoint.get_timer() == NOW + 32
    endpoint.handle_timer(NOW + 31.9)
    assert endpoint.transaction_count == 1
    endpoint.handle_timer(NOW + 32)
    assert endpoint.transaction_count == 0 and endpoint.get_timer() is None
