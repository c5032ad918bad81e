"""RFC 5626 flows through two outbound proxies: one registration per flow, failover, back-off.

The sans-I/O UserAgent against two in-memory edge proxies (each answers REGISTER with 200 and
``Require: outbound``) with a fake clock: §4.2 (reg-id per flow, same instance, pre-loaded
Route ``;lr;ob``), §4.3 (requests over a working flow), §4.4/§4.5 (a lost flow is formed again
at once, then with the back-off whose base triples while another flow works).
"""

from __future__ import annotations

import random

from securephone.sip.endpoint import SipEndpoint
from securephone.sip.events import FlowTimerChanged, RegistrationChanged, RequestReceived
from securephone.sip.message import Request, make_response, parse_message
from securephone.sip.outbound import account_state, working_flow
from securephone.sip.registration import Registration, RegState, RetryPolicy
from securephone.sip.router import AccountSpec
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent

URN = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
EDGE1 = Peer("tcp", "127.0.0.1", 5061)
EDGE2 = Peer("tcp", "127.0.0.1", 5062)
ALICE = Peer("tcp", "127.0.0.1", 5070)
BASE = 2.0


class FakeEdge:
    """An edge proxy with its registrar behind it: 200 (Require: outbound) to every REGISTER."""

    def __init__(self) -> None:
        self.endpoint = SipEndpoint()
        self.seen: list[Request] = []
        self.up = True
        self.flow_timer: str | None = None  # a Flow-Timer for its REGISTER answers

    def receive(self, data: bytes, now: float) -> None:
        self.endpoint.receive_datagram(data, ALICE, now)
        while (event := self.endpoint.next_event()) is not None:
            if isinstance(event, RequestReceived) and event.transaction_id:
                self.seen.append(event.request)
                self.endpoint.send_response(event.transaction_id, self.answer(event.request), now)

    def answer(self, request: Request):  # type: ignore[no-untyped-def]
        response = make_response(request, 200, to_tag="edge")
        if request.method == "REGISTER" and request.headers.get("Expires") != "0":
            response.headers.add("Contact", f"{request.headers.get('Contact')};expires=600")
            response.headers.add("Require", "outbound")
            if self.flow_timer is not None:
                response.headers.add("Flow-Timer", self.flow_timer)
        return response


def make_ua() -> UserAgent:
    ua = UserAgent({"tcp": ("127.0.0.1", 5070)})
    ua.router.instance = URN
    proxies = tuple(SipUri.parse(f"sip:127.0.0.1:{p.port};transport=tcp") for p in (EDGE1, EDGE2))
    ua.add_account(
        AccountSpec(
            name="alice",
            aor=SipUri("sip", "example.test", "alice"),
            registrar=SipUri("sip", "example.test"),
            auth_user="alice",
            password="secret",
            transport="tcp",
            outbound=True,
            outbound_proxies=proxies,
            retry=RetryPolicy(base=BASE, maximum=1800),
        )
    )
    for i, reg in enumerate(ua.flows["alice"]):
        reg.rng = random.Random(i)
    return ua


def exchange(ua: UserAgent, edges: dict[Peer, FakeEdge], now: float) -> list[Peer]:
    """Deliver until quiet; a request to an edge that is down fails its transport at once."""
    used: list[Peer] = []
    for _ in range(20):
        out = ua.outgoing()
        if not out:
            return used
        for item in out:
            used.append(item.peer)
            edge = edges[item.peer]
            if not edge.up:
                ua.transport_failed(item.peer, "connection refused", now)
                continue
            edge.receive(item.data, now)
            for answer in edge.endpoint.outgoing():
                ua.receive_datagram(answer.data, item.peer, now)
    return used


def registered(edges: dict[Peer, FakeEdge]) -> tuple[UserAgent, list[Registration]]:
    ua = make_ua()
    ua.register("alice", 0.0)
    exchange(ua, edges, 0.0)
    return ua, ua.flows["alice"]


def edges() -> dict[Peer, FakeEdge]:
    return {EDGE1: FakeEdge(), EDGE2: FakeEdge()}


def test_one_register_per_flow_with_its_reg_id_route_and_the_same_instance_rfc5626_4_2() -> None:
    net = edges()
    ua, flows = registered(net)
    assert [f.state for f in flows] == [RegState.REGISTERED, RegState.REGISTERED]
    first, second = net[EDGE1].seen[0], net[EDGE2].seen[0]
    assert [first.contacts[0].param("reg-id"), second.contacts[0].param("reg-id")] == ["1", "2"]
    assert {
        first.contacts[0].param("+sip.instance"),
        second.contacts[0].param("+sip.instance"),
    } == {f"<{URN}>"}
    assert first.headers.get("Route") == "<sip:127.0.0.1:5061;transport=tcp;lr;ob>"
    assert second.headers.get("Route") == "<sip:127.0.0.1:5062;transport=tcp;lr;ob>"
    assert first.headers.get("Call-ID") != second.headers.get("Call-ID")
    assert first.headers.get("Supported") == "outbound, path"
    assert all(f.outbound_granted for f in flows)
    assert ua.registration_state("alice") is RegState.REGISTERED


def test_requests_leave_over_a_working_flow_and_move_when_it_fails_rfc5626_4_3() -> None:
    net = edges()
    ua, flows = registered(net)
    target = SipUri.parse("sip:bob@example.test")
    ua.request("OPTIONS", target, 1.0, account="alice")
    assert exchange(ua, net, 1.0) == [EDGE1]
    net[EDGE1].up = False
    ua.transport_failed(EDGE1, "the server closed the connection", 2.0)
    assert flows[0].state is RegState.FAILED and flows[1].state is RegState.REGISTERED
    assert ua.registration_state("alice") is RegState.REGISTERED  # still reachable via flow 2
    ua.request("OPTIONS", target, 2.1, account="alice")
    assert exchange(ua, net, 2.1) == [EDGE2]
    events = [e for e in iter(ua.next_event, None) if isinstance(e, RegistrationChanged)]
    assert (events[-1].flow, events[-1].change.new) == (1, RegState.FAILED)


def test_lost_flow_is_formed_again_at_once_then_backs_off_while_the_other_works_rfc5626_4_5() -> (
    None
):
    net = edges()
    ua, flows = registered(net)
    net[EDGE1].up = False
    ua.transport_failed(EDGE1, "the server closed the connection", 100.0)
    wake = flows[0].get_timer()
    assert wake is not None and 100.5 <= wake <= 101.5  # a new flow at once (§4.5)
    ua.handle_timer(wake)
    assert exchange(ua, net, wake) == [EDGE1]  # refused: the edge is down
    retry = flows[0].get_timer()
    assert flows[0].state is RegState.FAILED and retry is not None
    # Another flow works: base 3 x BASE, randomised to 50-100 %.
    assert wake + 0.5 * 3 * BASE <= retry <= wake + 3 * BASE
    assert (
        flows[1].state is RegState.REGISTERED and flows[1].get_timer() == 540.0
    )  # untouched refresh
    net[EDGE1].up = True
    ua.handle_timer(retry)
    assert exchange(ua, net, retry) == [EDGE1]
    assert [f.state for f in flows] == [RegState.REGISTERED, RegState.REGISTERED]
    assert net[EDGE1].seen[-1].contacts[0].param("reg-id") == "1"  # the same reg-id (§4.5)


def test_back_off_base_is_the_plain_one_when_every_flow_failed_rfc5626_4_5() -> None:
    net = edges()
    ua, flows = registered(net)
    for edge in (EDGE1, EDGE2):
        net[edge].up = False
        ua.transport_failed(edge, "closed", 100.0)
    assert ua.registration_state("alice") is RegState.FAILED
    wakes = [f.get_timer() for f in flows]
    assert all(w is not None for w in wakes)
    now = max(w for w in wakes if w is not None)
    ua.handle_timer(now)
    exchange(ua, net, now)
    for flow in flows:
        retry = flow.get_timer()
        assert retry is not None and now + 0.5 * BASE <= retry <= now + BASE


def test_unregister_removes_every_flow() -> None:
    net = edges()
    ua, flows = registered(net)
    assert ua.unregister("alice", 5.0)
    assert exchange(ua, net, 5.0) == [EDGE1, EDGE2]
    assert [f.state for f in flows] == [RegState.UNREGISTERED, RegState.UNREGISTERED]
    assert [r.headers.get("Expires") for r in (net[EDGE1].seen[-1], net[EDGE2].seen[-1])] == [
        "0",
        "0",
    ]


def test_a_single_proxy_account_keeps_its_old_register() -> None:
    ua = UserAgent({"udp": ("127.0.0.1", 5070)})
    ua.router.instance = URN
    proxy = SipUri.parse("sip:127.0.0.1:5061")
    ua.add_account(
        AccountSpec(
            name="bob",
            aor=SipUri("sip", "example.test", "bob"),
            registrar=SipUri("sip", "example.test"),
            auth_user="bob",
            password="pw",
            outbound=True,
            outbound_proxy=proxy,
        )
    )
    ua.register("bob", 0.0)
    (out,) = ua.outgoing()
    request = parse_message(out.data)
    assert isinstance(request, Request) and "Route" not in request.headers
    assert out.peer == Peer("udp", "127.0.0.1", 5061) and len(ua.flows["bob"]) == 1
    assert request.contacts[0].param("reg-id") == "1"


def test_account_state_from_flow_states() -> None:
    def flows(*states: RegState) -> list[Registration]:
        out = []
        for state in states:
            reg = make_ua().flows["alice"][0]
            reg.state = state
            out.append(reg)
        return out

    R = RegState
    assert account_state(flows(R.FAILED, R.REGISTERED)) is R.REGISTERED
    assert account_state(flows(R.FAILED, R.REGISTERING)) is R.REGISTERING
    assert account_state(flows(R.FAILED, R.FAILED)) is R.FAILED
    assert account_state(flows(R.UNREGISTERED, R.UNREGISTERED)) is R.UNREGISTERED
    assert account_state(flows(R.UNREGISTERED, R.UNREGISTERING)) is R.UNREGISTERING
    assert account_state(flows(R.UNREGISTERED, R.FAILED)) is R.FAILED
    pair = flows(R.FAILED, R.REGISTERED)
    assert working_flow(pair) is pair[1]


def refresh_both(ua: UserAgent, net: dict[Peer, FakeEdge]) -> float:
    """Run the clock until each edge has seen one more REGISTER; the time reached."""
    wanted = {peer: len(edge.seen) + 1 for peer, edge in net.items()}
    now = 0.0
    while any(len(net[peer].seen) < count for peer, count in wanted.items()):
        due = ua.get_timer()
        assert due is not None
        now = due
        ua.handle_timer(now)
        exchange(ua, net, now)
    return now


def test_each_flow_reports_its_registrars_flow_timer_once_per_change_rfc5626_4_4_1() -> None:
    net = edges()
    net[EDGE1].flow_timer, net[EDGE2].flow_timer = "20", "9"
    ua, flows = registered(net)
    timers = [e for e in iter(ua.next_event, None) if isinstance(e, FlowTimerChanged)]
    assert sorted((e.flow, e.seconds) for e in timers) == [(1, 20), (2, 9)]
    assert [f.flow_timer for f in flows] == [20, 9]
    refresh_both(ua, net)  # the same Flow-Timers again: nothing new to say
    assert not [e for e in iter(ua.next_event, None) if isinstance(e, FlowTimerChanged)]
    net[EDGE1].flow_timer = "5"
    refresh_both(ua, net)
    timers = [e for e in iter(ua.next_event, None) if isinstance(e, FlowTimerChanged)]
    assert [(e.flow, e.seconds) for e in timers] == [(1, 5)]
    assert [f.flow_timer for f in flows] == [5, 9]
