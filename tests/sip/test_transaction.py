"""RFC 3261 §17 transactions: two endpoints wired in memory with a fake clock, with loss and timeouts."""

from __future__ import annotations

import itertools

import pytest

from securephone.sip.events import (
    MalformedMessage,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportFailed,
)
from securephone.sip.message import Request, Response, make_response, parse_message
from securephone.sip.transaction import TxState

from .wire import Node, Wire, build_request

T1 = 0.5


def setup(transport: str = "udp") -> tuple[Wire, Node, Node]:
    wire = Wire(transport)
    return wire, wire.add("alice", 5070), wire.add("bob", 5080)


def start(wire: Wire, alice: Node, bob: Node, method: str) -> tuple[Request, str]:
    request = build_request(method, transport=wire.transport)
    key = alice.endpoint.send_request(request, bob.peer, wire.clock.now)
    wire.flush()
    return request, key


def requests_at(node: Node, method: str) -> list[float]:
    """Times at which ``node`` sent a request with this method."""
    times = []
    for when, out in node.sent:
        msg = parse_message(out.data)
        if isinstance(msg, Request) and msg.method == method:
            times.append(round(when - 1000.0, 3))
    return times


def server_tx(bob: Node) -> str:
    received = [e for e in bob.events if isinstance(e, RequestReceived)]
    assert len(received) == 1, received
    key = received[0].transaction_id
    assert key is not None
    return key


def responses(node: Node) -> list[Response]:
    return [e.response for e in node.events if isinstance(e, ResponseReceived)]


def test_non_invite_roundtrip_udp_and_timer_k() -> None:
    wire, alice, bob = setup()
    request, _ = start(wire, alice, bob, "OPTIONS")
    key = server_tx(bob)
    bob.endpoint.send_response(key, make_response(bob.events[0].request, 200), wire.clock.now)  # type: ignore[attr-defined]
    wire.flush()
    assert [r.status for r in responses(alice)] == [200]
    assert responses(alice)[0].call_id == request.call_id
    # Timer K (T4 = 5 s) keeps the client transaction to absorb retransmissions, Timer J (64*T1) the server's.
    assert alice.endpoint.transaction_count == 1
    wire.run_until(wire.clock.now + 5.01)
    assert alice.endpoint.transaction_count == 0
    assert bob.endpoint.transaction_count == 1
    wire.run_until(wire.clock.now + 64 * T1)
    assert bob.endpoint.transaction_count == 0


def test_non_invite_retransmits_on_loss_with_timer_e_doubling() -> None:
    wire, alice, bob = setup()
    dropped = {"n": 0}

    def drop_first_three(node: Node, out: object) -> bool:
        if node is alice and dropped["n"] < 3:
            dropped["n"] += 1
            return True
        return False

    wire.drop = drop_first_three
    start(wire, alice, bob, "OPTIONS")
    wire.run_until(wire.clock.now + 4.0)
    # RFC 3261 §17.1.2.2: E = T1, 2T1, 4T1 ... → sends at 0, 0.5, 1.5, 3.5
    assert requests_at(alice, "OPTIONS") == [0.0, 0.5, 1.5, 3.5]
    key = server_tx(bob)  # delivered once: the fourth copy
    bob.endpoint.send_response(key, make_response(bob.events[0].request, 200), wire.clock.now)  # type: ignore[attr-defined]
    wire.flush()
    assert [r.status for r in responses(alice)] == [200]


def test_non_invite_timeout_timer_f_after_eleven_sends() -> None:
    wire, alice, bob = setup()
    wire.drop = lambda node, out: node is alice
    request, key = start(wire, alice, bob, "OPTIONS")
    wire.run_until(wire.clock.now + 40)
    # E caps at T2 = 4 s: 0, .5, 1.5, 3.5, 7.5, 11.5, ... 31.5 → 11 transmissions, then Timer F at 32 s.
    sent = requests_at(alice, "OPTIONS")
    assert sent == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    timeouts = [e for e in alice.events if isinstance(e, TransactionTimedOut)]
    assert [t.transaction_id for t in timeouts] == [key]
    assert timeouts[0].request.call_id == request.call_id
    assert alice.endpoint.transaction_count == 0


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    wire, alice, bob = setup()
    start(wire, alice, bob, "OPTIONS")
    key = server_tx(bob)
    bob.endpoint.send_response(key, make_response(bob.events[0].request, 100), wire.clock.now)  # type: ignore[attr-defined]
    wire.run_until(wire.clock.now + 10)
    sent = requests_at(alice, "OPTIONS")
    # Proceeding: every retransmission interval is T2 (RFC 3261 §17.1.2.2).
    assert sent[:2] == [0.0, 0.5]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(sent[1:])]
    assert gaps and all(g == 4.0 for g in gaps)
    # The server answered every retransmission with its last provisional response, and in
    # Proceeding the client passes each further provisional response up (RFC 3261 §17.1.2.2).
    assert [r.status for r in responses(alice)] == [100] * len(sent)


def test_reliable_transport_never_retransmits() -> None:
    wire, alice, bob = setup("tcp")
    wire.drop = lambda node, out: node is alice
    _, key = start(wire, alice, bob, "OPTIONS")
    wire.run_until(wire.clock.now + 40)
    assert requests_at(alice, "OPTIONS") == [0.0]
    assert [e.transaction_id for e in alice.events if isinstance(e, TransactionTimedOut)] == [key]


def test_server_absorbs_request_retransmission_and_resends_response() -> None:
    wire, alice, bob = setup()
    request, _ = start(wire, alice, bob, "OPTIONS")
    key = server_tx(bob)
    bob.endpoint.send_response(key, make_response(request_of(bob), 404), wire.clock.now)
    wire.flush()
    # A duplicate of the request arrives again: no new RequestReceived, the 404 goes out again.
    bob.endpoint.receive_datagram(bytes(request), alice.peer, wire.clock.now)
    wire.flush()
    assert len([e for e in bob.events if isinstance(e, RequestReceived)]) == 1
    final_sends = [o for _, o in bob.sent if parse_message(o.data).__class__ is Response]
    assert len(final_sends) == 2


def request_of(node: Node) -> Request:
    return next(e.request for e in node.events if isinstance(e, RequestReceived))


def test_invite_failure_ack_and_timer_g_until_ack() -> None:
    wire, alice, bob = setup()
    acks = {"dropped": 0}

    def drop_first_ack(node: Node, out: object) -> bool:
        data = getattr(out, "data", b"")
        if node is alice and data.startswith(b"ACK ") and acks["dropped"] == 0:
            acks["dropped"] += 1
            return True
        return False

    wire.drop = drop_first_ack
    start(wire, alice, bob, "INVITE")
    key = server_tx(bob)
    bob.endpoint.send_response(key, make_response(request_of(bob), 486), wire.clock.now)
    wire.flush()
    assert [r.status for r in responses(alice)] == [486]
    ack_times = requests_at(alice, "ACK")
    assert ack_times == [0.0]  # the transaction itself sent the ACK (RFC 3261 §17.1.1.3)
    ack = parse_message(next(o.data for _, o in alice.sent if o.data.startswith(b"ACK ")))
    assert isinstance(ack, Request)
    assert ack.cseq.method == "ACK" and ack.to.tag == responses(alice)[0].to.tag
    assert ack.top_via.branch == parse_message(alice.sent[0][1].data).top_via.branch
    # Timer G retransmits the 486 at T1; alice's Completed transaction answers with the ACK again.
    wire.run_until(wire.clock.now + 0.6)
    assert requests_at(alice, "ACK") == [0.0, 0.5]
    assert [r.status for r in responses(alice)] == [486]  # the retransmission is not passed up
    tx = bob.endpoint._server[key]
    assert tx.state is TxState.CONFIRMED
    wire.run_until(wire.clock.now + 5.1)  # Timer I = T4
    assert bob.endpoint.transaction_count == 0
    wire.run_until(wire.clock.now + 32)  # Timer D = 32 s on UDP
    assert alice.endpoint.transaction_count == 0


def test_invite_server_timer_h_without_ack() -> None:
    wire, alice, bob = setup()
    wire.drop = lambda node, out: node is alice and out.data.startswith(b"ACK ")  # type: ignore[attr-defined]
    start(wire, alice, bob, "INVITE")
    key = server_tx(bob)
    bob.endpoint.send_response(key, make_response(request_of(bob), 603), wire.clock.now)
    wire.run_until(wire.clock.now + 33)
    timeouts = [e for e in bob.events if isinstance(e, TransactionTimedOut)]
    assert [t.transaction_id for t in timeouts] == [key]
    # G: T1, 2T1, 4T1, then capped at T2 — 0.5, 1.5, 3.5, 7.5, 11.5 ... < 32
    sends = [round(t - 1000.0, 3) for t, o in bob.sent if o.data.startswith(b"SIP/2.0 603")]
    assert sends[:5] == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert all(s < 32.0 for s in sends)


def test_invite_timer_a_and_b() -> None:
    wire, alice, bob = setup()
    wire.drop = lambda node, out: node is alice
    _, key = start(wire, alice, bob, "INVITE")
    wire.run_until(wire.clock.now + 40)
    # Timer A doubles without cap: 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5; Timer B at 64*T1 = 32 s.
    assert requests_at(alice, "INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [e.transaction_id for e in alice.events if isinstance(e, TransactionTimedOut)] == [key]


def test_invite_provisional_stops_retransmissions() -> None:
    wire, alice, bob = setup()
    start(wire, alice, bob, "INVITE")
    key = server_tx(bob)
    bob.endpoint.send_response(
        key, make_response(request_of(bob), 180, to_tag="t1"), wire.clock.now
    )
    wire.run_until(wire.clock.now + 20)
    assert requests_at(alice, "INVITE") == [0.0]
    assert [r.status for r in responses(alice)] == [180]


def test_invite_2xx_accepted_state_passes_retransmissions_up() -> None:
    wire, alice, bob = setup()
    start(wire, alice, bob, "INVITE")
    key = server_tx(bob)
    ok = make_response(request_of(bob), 200, to_tag="t2")
    bob.endpoint.send_response(key, ok, wire.clock.now)
    wire.flush()
    # The UAS core retransmits its 2xx (RFC 3261 §13.3.1.4); RFC 6026 'Accepted' hands each one up.
    bob.endpoint.send_response(key, ok, wire.clock.now)
    wire.flush()
    assert [r.status for r in responses(alice)] == [200, 200]
    assert (
        requests_at(alice, "ACK") == []
    )  # the ACK for a 2xx belongs to the dialog, not the transaction
    wire.run_until(wire.clock.now + 32.1)  # Timer M and Timer L = 64*T1
    assert alice.endpoint.transaction_count == 0
    assert bob.endpoint.transaction_count == 0


def test_ack_for_2xx_reaches_the_tu() -> None:
    wire, alice, bob = setup()
    invite, _ = start(wire, alice, bob, "INVITE")
    key = server_tx(bob)
    ok = make_response(request_of(bob), 200, to_tag="t3")
    bob.endpoint.send_response(key, ok, wire.clock.now)
    wire.flush()
    ack = build_request("ACK")
    ack.headers.set("Call-ID", invite.call_id)
    alice.endpoint.send_stateless(ack, bob.peer)
    wire.flush()
    acks = [e for e in bob.events if isinstance(e, RequestReceived) and e.request.method == "ACK"]
    assert len(acks) == 1 and acks[0].transaction_id is None


def test_transport_failure_ends_waiting_transaction() -> None:
    wire, alice, bob = setup("tcp")
    wire.drop = lambda node, out: True
    _, key = start(wire, alice, bob, "OPTIONS")
    alice.endpoint.transport_failed(bob.peer, "connection refused")
    wire.flush()
    failed = [e for e in alice.events if isinstance(e, TransportFailed)]
    assert [(f.transaction_id, f.reason) for f in failed] == [(key, "connection refused")]
    assert alice.endpoint.transaction_count == 0


def test_malformed_datagram_becomes_an_event() -> None:
    wire, alice, _ = setup()
    alice.endpoint.receive_datagram(b"NOT SIP AT ALL\r\n\r\n", alice.peer, wire.clock.now)
    events = list(iter(alice.endpoint.next_event, None))
    assert len(events) == 1 and isinstance(events[0], MalformedMessage)
    assert events[0].status == 400


def test_via_received_and_rport_stamped() -> None:
    wire, alice, bob = setup()
    request = build_request("OPTIONS", host="10.9.9.9", port=5999)
    bob.endpoint.receive_datagram(bytes(request), alice.peer, wire.clock.now)
    event = bob.endpoint.next_event()
    assert isinstance(event, RequestReceived)
    via = event.request.top_via
    assert via.received == "127.0.0.1"
    assert via.rport == 5070


def test_duplicate_branch_rejected() -> None:
    wire, alice, bob = setup()
    request = build_request("OPTIONS")
    alice.endpoint.send_request(request, bob.peer, wire.clock.now)
    with pytest.raises(ValueError, match="already exists"):
        alice.endpoint.send_request(request, bob.peer, wire.clock.now)
