"""``accept_only_from_proxy``: an account that registers takes out-of-dialog requests only from its
registrar/outbound proxy (403 to scanners' "ghost calls"); direct listening is unchanged."""

from __future__ import annotations

from securephone.aio.phone import account_spec
from securephone.sip.message import Response, parse_message
from securephone.sip.router import AccountSpec
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent
from securephone.store.config import parse_config

from .wire import build_request

PROXY = Peer("udp", "127.0.0.5", 5060)
SCANNER = Peer("udp", "127.0.0.9", 5060)


def agent(enforce: bool, transport: str = "udp") -> UserAgent:
    """alice's phone, its registrar at 127.0.0.5 (5060 over UDP, 5061 over TLS)."""
    ua = UserAgent({"udp": ("127.0.0.1", 5070), "tls": ("127.0.0.1", 5071)})
    registrar = "sip:127.0.0.5:5060" if transport == "udp" else "sip:127.0.0.5:5061;transport=tls"
    ua.add_account(
        AccountSpec(
            name="a",
            aor=SipUri("sip", "example.com", "alice"),
            registrar=SipUri.parse(registrar),
            auth_user="alice",
            password="x",
            transport=transport,
            accept_only_from_proxy=enforce,
        )
    )
    return ua


def status_of(ua: UserAgent, method: str, peer: Peer) -> list[int]:
    ua.receive_datagram(bytes(build_request(method, target="sip:alice@127.0.0.1:5070")), peer, 0.0)
    out = [parse_message(o.data) for o in ua.outgoing()]
    return [m.status for m in out if isinstance(m, Response)]


def test_requests_from_elsewhere_are_refused() -> None:
    ua = agent(enforce=True)
    assert status_of(ua, "INVITE", SCANNER) == [403]
    assert status_of(ua, "OPTIONS", SCANNER) == [403]
    assert not ua.calls.active()  # no ghost call rang
    assert status_of(ua, "OPTIONS", PROXY) == [200]
    assert status_of(ua, "INVITE", PROXY)[-1] == 180
    assert ua.endpoint.bad_input.total["request not from the proxy"] == 2


def test_without_the_setting_anyone_may_call() -> None:
    ua = agent(enforce=False)
    assert status_of(ua, "INVITE", SCANNER)[-1] == 180


def test_on_by_default_for_accounts_that_register() -> None:
    config = parse_config(
        {
            "accounts": [
                {"name": "r", "user": "alice", "domain": "example.com"},
                {"name": "d", "user": "bob", "domain": "example.com", "register": False},
                {
                    "name": "o",
                    "user": "carol",
                    "domain": "example.com",
                    "accept_only_from_proxy": False,
                },
            ]
        }
    )
    flags = [account_spec(a).accept_only_from_proxy for a in config.accounts]
    assert flags == [True, False, False]


def test_a_tls_accounts_proxy_address_over_udp_is_not_the_proxy() -> None:
    """A forged UDP source is easy: an account that reaches its proxy over TLS takes out-of-dialog
    requests from the proxy's address only over TLS."""
    ua = agent(enforce=True, transport="tls")
    assert ua.router.from_proxy(Peer("tls", "127.0.0.5", 40123)) is True  # its flow
    assert ua.router.from_proxy(Peer("udp", "127.0.0.5", 5061)) is False
    assert ua.router.from_proxy(Peer("tcp", "127.0.0.5", 5061)) is False
    assert status_of(ua, "INVITE", Peer("udp", "127.0.0.5", 5060)) == [403]


def test_a_refused_invite_is_answered_once_not_on_timer_g() -> None:
    """The 403 to a request not from the proxy is not repeated unasked (its source may be forged,
    and 11 answers for one INVITE would go to the victim); a retransmitted INVITE gets it again."""
    ua = agent(enforce=True)
    invite = bytes(build_request("INVITE", target="sip:alice@127.0.0.1:5070"))
    statuses: list[int] = []

    def run_until(end: float) -> None:
        while (timer := ua.get_timer()) is not None and timer < end:
            ua.handle_timer(timer)
            statuses.extend(responses(ua))

    ua.receive_datagram(invite, SCANNER, 0.0)
    statuses.extend(responses(ua))
    run_until(5.0)  # Timer G would have repeated it at 0.5, 1.5 and 3.5 s
    assert statuses == [403]
    ua.receive_datagram(invite, SCANNER, 5.0)  # the INVITE again: the 403 was lost
    statuses.extend(responses(ua))
    run_until(40.0)  # past Timer H
    assert statuses == [403, 403]


def responses(ua: UserAgent) -> list[int]:
    out = [parse_message(o.data) for o in ua.outgoing()]
    return [m.status for m in out if isinstance(m, Response)]
