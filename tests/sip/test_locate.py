"""RFC 3263 server location over fixed DNS answers, and failover between the targets in the core."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from securephone.sip.locate import (
    Address,
    LocateError,
    Naptr,
    NoServerFound,
    Query,
    Records,
    Srv,
    locate,
    order_srv,
)
from securephone.sip.message import make_response, parse_message
from securephone.sip.router import AccountSpec
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent

DOMAIN = "example.test"


def records() -> dict[Query, Records]:
    return {
        Query(DOMAIN, "NAPTR"): [
            Naptr(20, 10, "S", "SIP+D2U", f"_sip._udp.{DOMAIN}", 600),
            Naptr(10, 10, "S", "SIPS+D2T", f"_sips._tcp.{DOMAIN}", 600),
            Naptr(10, 20, "S", "SIP+D2T", f"_sip._tcp.{DOMAIN}", 600),
        ],
        Query(f"_sips._tcp.{DOMAIN}", "SRV"): [Srv(10, 0, 5061, f"tls1.{DOMAIN}", 300)],
        Query(f"_sip._tcp.{DOMAIN}", "SRV"): [
            Srv(20, 0, 5080, f"b.{DOMAIN}", 300),
            Srv(10, 0, 5070, f"a.{DOMAIN}", 120),
        ],
        Query(f"_sip._udp.{DOMAIN}", "SRV"): [Srv(10, 0, 5060, f"a.{DOMAIN}", 300)],
        Query(f"tls1.{DOMAIN}", "A"): [Address("127.0.0.3", 60)],
        Query(f"a.{DOMAIN}", "A"): [Address("127.0.0.1", 60)],
        Query(f"a.{DOMAIN}", "AAAA"): [Address("::1", 30)],
        Query(f"b.{DOMAIN}", "A"): [Address("127.0.0.2", 900)],
    }


def test_naptr_order_and_preference_then_srv_priority() -> None:
    found = locate(SipUri("sip", DOMAIN, "bob"), records(), rng=random.Random(1))
    assert [str(t.peer) for t in found] == [
        "tls:127.0.0.3:5061",  # NAPTR order 10, preference 10
        "tcp:127.0.0.1:5070",  # order 10, preference 20; SRV priority 10 before 20
        "tcp:[::1]:5070",
        "tcp:127.0.0.2:5080",
        "udp:127.0.0.1:5060",  # NAPTR order 20
        "udp:[::1]:5060",
    ]
    assert {t.source for t in found} == {"naptr"}
    assert {t.peer.server_name for t in found} == {DOMAIN}  # RFC 5922: the domain, not a.example
    assert [t.ttl for t in found[:4]] == [60, 60, 30, 300]  # the smallest TTL on the way


def test_account_transport_restricts_naptr_choices() -> None:
    found = locate(SipUri("sip", DOMAIN, "bob"), records(), transport="tcp")
    assert [str(t.peer) for t in found] == [
        "tcp:127.0.0.1:5070",
        "tcp:[::1]:5070",
        "tcp:127.0.0.2:5080",
    ]


def test_sips_uses_only_tls() -> None:
    found = locate(SipUri("sips", DOMAIN, "bob"), records())
    assert [str(t.peer) for t in found] == ["tls:127.0.0.3:5061"]


def test_sips_refused_when_only_udp_is_published() -> None:
    answers = {
        Query(DOMAIN, "NAPTR"): [Naptr(10, 10, "S", "SIP+D2U", f"_sip._udp.{DOMAIN}", 60)],
        Query(f"_sip._udp.{DOMAIN}", "SRV"): [Srv(10, 0, 5060, f"a.{DOMAIN}", 60)],
    }
    with pytest.raises(LocateError, match=r"no TLS server.*offer only udp"):
        locate(SipUri("sips", DOMAIN, "bob"), answers)


def test_no_naptr_queries_srv_in_our_order() -> None:
    answers = records()
    del answers[Query(DOMAIN, "NAPTR")]
    found = locate(SipUri("sip", DOMAIN, "bob"), answers)
    assert [t.peer.transport for t in found] == ["tls", "tcp", "tcp", "tcp", "udp", "udp"]
    assert {t.source for t in found} == {"srv"}


def test_transport_parameter_goes_straight_to_srv() -> None:
    uri = SipUri("sip", DOMAIN, "bob", params=(("transport", "udp"),))
    found = locate(uri, records())
    assert [str(t.peer) for t in found] == ["udp:127.0.0.1:5060", "udp:[::1]:5060"]


def test_no_srv_falls_back_to_address_records_and_default_port() -> None:
    answers: dict[Query, Records] = {Query(DOMAIN, "A"): [Address("127.0.0.9", 10)]}
    found = locate(SipUri("sips", DOMAIN, "bob"), answers)
    assert [(str(t.peer), t.source) for t in found] == [("tls:127.0.0.9:5061", "a")]


def test_explicit_port_skips_srv() -> None:
    answers = records()
    answers[Query(DOMAIN, "A")] = [Address("127.0.0.8", 10)]
    found = locate(SipUri("sip", DOMAIN, "bob", port=5099), answers)
    assert [str(t.peer) for t in found] == ["udp:127.0.0.8:5099"]


def test_nothing_at_all_is_no_server_found() -> None:
    with pytest.raises(NoServerFound):
        locate(SipUri("sip", DOMAIN, "bob"), {})


def test_ip_literal_needs_no_dns() -> None:
    found = locate(SipUri("sip", "[::1]", "bob", port=5070), {})
    assert [str(t.peer) for t in found] == ["udp:[::1]:5070"]
    assert found[0].peer.server_name is None


def test_srv_weights_rfc2782() -> None:
    """Within one priority the first pick follows the weights; priority always wins."""
    group = [Srv(10, 90, 1, "heavy"), Srv(10, 10, 2, "light"), Srv(5, 0, 3, "first")]
    rng = random.Random(7)
    firsts: Counter[str] = Counter()
    for _ in range(2000):
        ordered = order_srv(group, rng)
        assert ordered[0].target == "first"
        assert sorted(r.target for r in ordered) == ["first", "heavy", "light"]
        firsts[ordered[1].target] += 1
    assert 0.8 < firsts["heavy"] / 2000 < 0.97  # 90 of 100 expected; weight 0 rarely first


# -- failover in the core (RFC 3263 §4.3) ------------------------------------------------------------
A = Peer("tcp", "127.0.0.1", 5070)
B = Peer("tcp", "127.0.0.2", 5080)


def phone() -> UserAgent:
    ua = UserAgent({"tcp": ("127.0.0.1", 5090)})
    ua.add_account(
        AccountSpec(
            "a", SipUri("sip", DOMAIN, "alice"), SipUri("sip", DOMAIN), "alice", "pw", "tcp"
        )
    )
    ua.router.use_targets(DOMAIN, [A, B])
    return ua


def sent_to(ua: UserAgent) -> list[Peer]:
    return [out.peer for out in ua.outgoing()]


def test_register_fails_over_on_refusal_and_stays_there() -> None:
    ua = phone()
    ua.register("a", 0.0)
    assert sent_to(ua) == [A]
    ua.transport_failed(A, "connection refused", 0.1)
    assert sent_to(ua) == [B]
    assert ua.router.registrar_peer("a") == B  # later requests start with the one that works
    assert ua.router.failovers[-1][:2] == (A, B)


def test_register_fails_over_on_503() -> None:
    ua = phone()
    ua.register("a", 0.0)
    (out,) = ua.outgoing()
    request = parse_message(out.data)
    reply = make_response(request, 503, to_tag="x")  # type: ignore[arg-type]
    ua.receive_message(reply, A, 0.1)
    assert sent_to(ua) == [B]


def test_no_failover_with_a_single_target() -> None:
    ua = phone()
    ua.router.use_targets(DOMAIN, [A])
    ua.register("a", 0.0)
    ua.outgoing()
    ua.transport_failed(A, "connection refused", 0.1)
    assert sent_to(ua) == []
    assert ua.registrations["a"].state.value == "failed"


def test_invite_fails_over_on_refusal_then_503_and_keeps_one_call() -> None:
    from securephone.media.negotiation import SdpMedia
    from securephone.sdp.offer_answer import MediaCapabilities
    from securephone.sip.callstate import CallState

    ua = phone()
    c = Peer("tcp", "127.0.0.3", 5090)
    ua.router.use_targets(DOMAIN, [A, B, c])
    call = ua.dial(SipUri("sip", DOMAIN, "bob"), SdpMedia(MediaCapabilities(), 40000), 0.0)
    (first,) = ua.outgoing()
    assert first.peer == A
    ua.transport_failed(A, "connection refused", 0.1)
    (second,) = ua.outgoing()
    assert second.peer == B
    invite = parse_message(second.data)
    assert invite.call_id == parse_message(first.data).call_id  # the same call, a new transaction
    ua.receive_message(make_response(invite, 503, to_tag="x"), B, 0.2)  # type: ignore[arg-type]
    assert [o.peer for o in ua.outgoing() if b"INVITE" in o.data.split(b"\r\n")[0]] == [c]
    assert call.state is CallState.CALLING
    assert [(f.host, t.host) for f, t, _ in ua.router.failovers] == [
        ("127.0.0.1", "127.0.0.2"),
        ("127.0.0.2", "127.0.0.3"),
    ]


# -- returning to the preferred server ([dns] failback_interval) ---------------------------------------
def registered_on_b(interval: float) -> UserAgent:
    """A phone that failed over from A to B and holds a binding at B (B asked for credentials)."""
    ua = phone()
    ua.failback_interval = interval
    ua.register("a", 0.0)
    ua.outgoing()
    ua.transport_failed(A, "connection refused", 0.1)
    (out,) = ua.outgoing()
    challenge = make_response(parse_message(out.data), 401, to_tag="x")  # type: ignore[arg-type]
    challenge.headers.add("WWW-Authenticate", 'Digest realm="b", nonce="nonce-of-b"')
    ua.receive_message(challenge, B, 0.2)
    (out,) = ua.outgoing()
    assert b"nonce-of-b" in out.data
    ua.receive_message(make_response(parse_message(out.data), 200, to_tag="x"), B, 0.3)  # type: ignore[arg-type]
    assert ua.registrations["a"].state.value == "registered"
    return ua


def test_probes_the_preferred_server_and_registers_there_once_it_answers() -> None:
    ua = registered_on_b(5.0)
    ua.handle_timer(5.0)
    assert sent_to(ua) == []  # the first probe comes one interval after the failover
    ua.handle_timer(5.1)
    (probe,) = ua.outgoing()
    assert probe.peer == A and probe.data.startswith(b"OPTIONS sip:example.test SIP/2.0")
    ua.transport_failed(A, "connection refused", 5.2)  # still down: stay on B, ask again later
    assert sent_to(ua) == []
    assert ua.router.registrar_peer("a") == B
    ua.handle_timer(10.0)
    assert sent_to(ua) == []
    ua.handle_timer(10.1)
    (probe,) = ua.outgoing()
    assert probe.peer == A
    answer = make_response(parse_message(probe.data), 405, to_tag="y")  # type: ignore[arg-type]
    ua.receive_message(answer, A, 10.2)  # any answer means it is up
    (register,) = ua.outgoing()
    assert register.peer == A and register.data.startswith(b"REGISTER ")
    assert b"nonce-of-b" not in register.data  # A challenges anew: B's nonce is not replayed
    assert ua.router.registrar_peer("a") == A
    assert ua.router.failovers[-1] == (B, A, "back: answered OPTIONS with 405")
    ua.receive_message(make_response(parse_message(register.data), 200, to_tag="z"), A, 10.3)  # type: ignore[arg-type]
    ua.handle_timer(15.2)
    assert sent_to(ua) == []  # back on A: no more probes


def test_no_probe_when_failback_is_off() -> None:
    ua = registered_on_b(0.0)
    ua.handle_timer(540.3)  # the refresh (a minute before 600 s): it goes to B, nothing to A
    assert [out.peer for out in ua.outgoing()] == [B]
    assert ua.router.registrar_peer("a") == B


def test_probes_every_better_server_and_climbs_back_one_rank_at_a_time() -> None:
    """A, B, C in DNS order; A and B refused, so the account registered at C. The probes ask A
    and B; B answers first: register at B (then C, then A if B fails again); the next probes ask
    only A, and once A answers the account is back at the top."""
    c = Peer("tcp", "127.0.0.3", 5090)
    ua = phone()
    ua.router.use_targets(DOMAIN, [A, B, c])
    ua.failback_interval = 5.0
    ua.register("a", 0.0)
    ua.outgoing()
    ua.transport_failed(A, "connection refused", 0.1)
    ua.outgoing()
    ua.transport_failed(B, "connection refused", 0.2)
    (out,) = ua.outgoing()
    assert out.peer == c
    ua.receive_message(make_response(parse_message(out.data), 200, to_tag="x"), c, 0.3)  # type: ignore[arg-type]
    ua.handle_timer(5.2)
    probes = ua.outgoing()
    assert sorted(p.peer.host for p in probes) == ["127.0.0.1", "127.0.0.2"]
    assert all(p.data.startswith(b"OPTIONS ") for p in probes)
    to_b = next(p for p in probes if p.peer == B)
    ua.receive_message(make_response(parse_message(to_b.data), 200, to_tag="y"), B, 5.3)  # type: ignore[arg-type]
    (register,) = ua.outgoing()
    assert register.peer == B and register.data.startswith(b"REGISTER ")
    assert ua.router.registrar_peer("a") == B
    assert ua.router.failovers[-1] == (c, B, "back: answered OPTIONS with 200")
    assert ua.router.resolved[DOMAIN] == [B, c, A]  # A, still silent, is tried last
    ua.receive_message(make_response(parse_message(register.data), 200, to_tag="z"), B, 5.4)  # type: ignore[arg-type]
    ua.transport_failed(A, "connection refused", 5.5)  # A's probe fails: try it again later
    ua.handle_timer(10.3)
    (probe,) = ua.outgoing()
    assert probe.peer == A  # only the server above B
    ua.receive_message(make_response(parse_message(probe.data), 405, to_tag="w"), A, 10.4)  # type: ignore[arg-type]
    (register,) = ua.outgoing()
    assert register.peer == A and ua.router.registrar_peer("a") == A
    assert ua.router.resolved[DOMAIN] == [A, B, c]
