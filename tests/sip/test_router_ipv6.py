"""The router with IPv6 and wildcard listeners: bracketed literals in Via and Contact (RFC 3261
§19.1.1, §25.1: ``[::1]:5060``), and on ``::``/``0.0.0.0`` our address toward each peer."""

from __future__ import annotations

from securephone.sip.message import Headers, Request
from securephone.sip.router import ROUTES_KEPT, AccountSpec, Router
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri


def options(router: Router, peer: Peer) -> str:
    request = Request("OPTIONS", SipUri.parse("sip:bob@[::1]:5070"), Headers())
    return str(router.stamp_request(request, peer).headers.get("Via"))


def account(registrar: str) -> AccountSpec:
    return AccountSpec(
        "alice", SipUri.parse("sip:alice@example.test"), SipUri.parse(registrar), "alice", "pw"
    )


def test_an_ipv6_listener_is_bracketed_in_via_contact_and_identity() -> None:
    router = Router({"udp": ("::1", 5060), "tcp": ("::1", 5060)})
    assert options(router, Peer("udp", "::1", 5070)).startswith("SIP/2.0/UDP [::1]:5060;")
    contact = router.contact_for(None, "tcp")
    assert str(contact.uri) == "sip:securephone@[::1]:5060;transport=tcp"
    assert str(router.identity) == "sip:securephone@[::1]"


def test_an_ipv6_uri_routes_to_the_unbracketed_address() -> None:
    router = Router({"udp": ("::1", 5060)})
    peer = router.route_peer(None, SipUri.parse("sip:bob@[::1]:5070;transport=tcp"))
    assert (peer.transport, peer.host, peer.port) == ("tcp", "::1", 5070)
    assert str(peer) == "tcp:[::1]:5070"


def test_a_wildcard_listener_names_our_address_toward_each_peer() -> None:
    router = Router({"udp": ("::", 5060)})
    router.learn_route("::1", "::1")
    router.learn_route("127.0.0.1", "127.0.0.1")
    assert options(router, Peer("udp", "::1", 5070)).startswith("SIP/2.0/UDP [::1]:5060;")
    assert options(router, Peer("udp", "127.0.0.1", 5070)).startswith("SIP/2.0/UDP 127.0.0.1:5060;")
    to_v4 = router.contact_for(None, "udp", peer=Peer("udp", "127.0.0.1", 5070))
    assert str(to_v4.uri) == "sip:securephone@127.0.0.1:5060"
    v4_from = router.local_identity(None, Peer("udp", "127.0.0.1", 5070))
    assert str(v4_from.uri) == "sip:securephone@127.0.0.1"


def test_a_wildcard_contact_for_an_account_follows_its_registrar() -> None:
    router = Router({"udp": ("::", 5060)})
    router.learn_route("127.0.0.1", "127.0.0.1")
    spec = account("sip:127.0.0.1:5080")
    assert str(router.contact_for(spec).uri) == "sip:alice@127.0.0.1:5060"


def test_an_unknown_peer_gets_a_learnt_address_of_its_family_else_the_loopback() -> None:
    router = Router({"udp": ("::", 5060)})
    assert router.local_host("::2", "::") == "::1"  # nothing learnt yet
    assert router.local_host("127.0.0.2", "0.0.0.0") == "127.0.0.1"
    router.learn_route("::1", "::1")
    assert router.local_host("::2", "::") == "::1"
    assert router.local_host("127.0.0.2", "::") == "127.0.0.1"  # no IPv4 route learnt
    assert router.local_host("::2", "::1") == "::1"  # a concrete listener is itself


def test_learnt_routes_are_bounded() -> None:
    router = Router({"udp": ("::", 5060)})
    for n in range(ROUTES_KEPT + 10):
        router.learn_route(f"2001:db8::{n:x}", "2001:db8::ffff")
    assert len(router.routes) == ROUTES_KEPT
    assert "2001:db8::0" not in router.routes and "2001:db8::109" in router.routes


def test_register_names_our_address_toward_the_server_dns_located() -> None:
    """The account is added before DNS is asked; REGISTER's Contact and Via are chosen when it
    starts, toward the located server (documentation addresses, nothing is sent)."""
    from securephone.sip.message import parse_message
    from securephone.sip.useragent import UserAgent

    ua = UserAgent({"tcp": ("::", 5060)})
    spec = AccountSpec(
        "alice", SipUri.parse("sip:alice@pbx.test"), SipUri.parse("sip:pbx.test"), "alice", "pw",
        transport="tcp",
    )  # fmt: skip
    ua.add_account(spec)
    ua.router.use_targets("pbx.test", [Peer("tcp", "2001:db8::7", 5060)])
    ua.router.learn_route("2001:db8::7", "2001:db8::1")
    ua.register("alice", 0.0)
    (out,) = ua.outgoing()
    assert out.peer.host == "2001:db8::7"
    register = parse_message(out.data)
    assert str(register.headers.get("Contact")) == "<sip:alice@[2001:db8::1]:5060;transport=tcp>"
    assert str(register.headers.get("Via")).startswith("SIP/2.0/TCP [2001:db8::1]:5060;")
