"""Registration (RFC 3261 §10) through the sans-I/O UserAgent against an in-memory digest registrar."""

from __future__ import annotations

import hashlib
import random
import re

from securephone.sip.endpoint import SipEndpoint
from securephone.sip.events import RegistrationChanged, RequestCompleted, RequestReceived
from securephone.sip.message import Request, make_response, parse_message
from securephone.sip.registration import RegState, RetryPolicy, refresh_delay
from securephone.sip.router import AccountSpec
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri
from securephone.sip.useragent import UserAgent

REALM = "test.example"
REGISTRAR = Peer("udp", "127.0.0.1", 5060)
ALICE = Peer("udp", "127.0.0.1", 5070)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class FakeRegistrar:
    """Challenges with MD5 digest (qop=auth), checks the response, stores bindings."""

    def __init__(self, password: str = "secret", grant: int | None = None, min_expires: int = 0):
        self.endpoint = SipEndpoint()
        self.password = password
        self.grant = grant
        self.min_expires = min_expires
        self.bindings: dict[str, str] = {}
        self.nonce_count = 0
        self.seen: list[Request] = []
        self.silent = False

    def receive(self, data: bytes, now: float) -> None:
        self.endpoint.receive_datagram(data, ALICE, now)
        while (event := self.endpoint.next_event()) is not None:
            if isinstance(event, RequestReceived) and event.transaction_id and not self.silent:
                self.seen.append(event.request)
                self.endpoint.send_response(event.transaction_id, self.answer(event.request), now)

    def answer(self, request: Request):  # type: ignore[no-untyped-def]
        auth = request.headers.get("Authorization")
        if auth is None or not self.valid(request, auth):
            self.nonce_count += 1
            response = make_response(request, 401, to_tag="reg")
            challenge = (
                f'Digest realm="{REALM}", nonce="n{self.nonce_count}", qop="auth", algorithm=MD5'
            )
            response.headers.add("WWW-Authenticate", challenge)
            return response
        expires = int(request.headers.get("Expires") or "3600")
        if 0 < expires < self.min_expires:
            response = make_response(request, 423, to_tag="reg")
            response.headers.add("Min-Expires", str(self.min_expires))
            return response
        aor = str(request.to.uri)
        if expires == 0:
            self.bindings.pop(aor, None)
        else:
            self.bindings[aor] = str(request.contacts[0].uri)
        response = make_response(request, 200, to_tag="reg")
        if expires:
            granted = self.grant or expires
            response.headers.add("Contact", f"<{request.contacts[0].uri}>;expires={granted}")
        return response

    def valid(self, request: Request, header: str) -> bool:
        params = dict(re.findall(r'(\w+)="?([^",]+)"?', header))
        ha1 = md5(f"{params['username']}:{REALM}:{self.password}")
        ha2 = md5(f"REGISTER:{params['uri']}")
        expected = md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
        return params["response"] == expected and params["nonce"] == f"n{self.nonce_count}"


def make_ua(expires: int = 600, password: str = "secret") -> UserAgent:
    ua = UserAgent({"udp": ("127.0.0.1", 5070)})
    aor = SipUri("sip", REALM, "alice")
    ua.add_account(
        AccountSpec(
            name="alice",
            aor=aor,
            registrar=SipUri("sip", "127.0.0.1", port=5060),
            auth_user="alice",
            password=password,
            expires=expires,
            retry=RetryPolicy(base=30, maximum=1800),
        )
    )
    ua.registrations["alice"].rng = random.Random(7)
    return ua


def exchange(ua: UserAgent, registrar: FakeRegistrar, now: float) -> None:
    """Deliver until quiet."""
    for _ in range(20):
        out = ua.outgoing()
        if not out:
            return
        for item in out:
            assert item.peer == REGISTRAR
            registrar.receive(item.data, now)
        for item in registrar.endpoint.outgoing():
            ua.receive_datagram(item.data, REGISTRAR, now)


def states(ua: UserAgent) -> list[str]:
    return [
        e.change.new.value for e in iter(ua.next_event, None) if isinstance(e, RegistrationChanged)
    ]


def test_register_with_digest_then_refresh_before_expiry() -> None:
    ua, reg = make_ua(expires=600), FakeRegistrar(grant=300)
    ua.register("alice", 0.0)
    exchange(ua, reg, 0.0)
    assert states(ua) == ["registering", "registered"]
    assert reg.bindings == {f"sip:alice@{REALM}": "sip:alice@127.0.0.1:5070"}
    first, second = reg.seen[:2]
    assert "Authorization" not in first.headers and "Authorization" in second.headers
    assert first.call_id == second.call_id and second.cseq.seq == first.cseq.seq + 1
    # The registrar granted 300 s: the refresh is due at 240 s (one minute early), not at 600 s.
    assert ua.registrations["alice"].get_timer() == refresh_delay(300) == 240.0
    ua.handle_timer(240.0)
    exchange(ua, reg, 240.0)
    assert states(ua) == ["registering", "registered"]
    refresh = reg.seen[2]
    assert refresh.call_id == first.call_id and refresh.cseq.seq > second.cseq.seq
    # The refresh re-uses the last challenge (nc=00000002): one round trip, no new 401.
    assert "nc=00000002" in (refresh.headers.get("Authorization") or "")
    assert len(reg.seen) == 3


def test_wrong_password_fails_clearly_and_backs_off() -> None:
    ua, reg = make_ua(password="wrong"), FakeRegistrar(password="secret")
    ua.register("alice", 0.0)
    exchange(ua, reg, 0.0)
    assert states(ua) == ["registering", "failed"]
    registration = ua.registrations["alice"]
    assert "authentication failed" in registration.reason
    assert registration.status == 401
    assert len(reg.seen) == 2  # one try with credentials, no hammering
    retry_at = registration.get_timer()
    assert retry_at is not None and 15.0 <= retry_at <= 30.0  # RFC 5626 §4.5: base 30 s, 50–100 %
    ua.handle_timer(retry_at)
    exchange(ua, reg, retry_at)
    second_retry = registration.get_timer()
    assert second_retry is not None and 30.0 <= second_retry - retry_at <= 60.0  # doubled


def test_password_never_in_repr_or_requests() -> None:
    ua, reg = make_ua(password="hunter2-secret"), FakeRegistrar(password="hunter2-secret")
    ua.register("alice", 0.0)
    exchange(ua, reg, 0.0)
    assert "hunter2" not in repr(ua.accounts["alice"])
    assert all(b"hunter2" not in bytes(r) for r in reg.seen)


def test_timeout_then_retry_succeeds() -> None:
    ua, reg = make_ua(), FakeRegistrar()
    reg.silent = True
    ua.register("alice", 0.0)
    now = 0.0
    while ua.registrations["alice"].state is not RegState.FAILED:
        exchange(ua, reg, now)
        deadline = ua.get_timer()
        assert deadline is not None
        now = deadline
        ua.handle_timer(now)
    assert now == 32.0  # Timer F
    assert "timeout" in ua.registrations["alice"].reason
    reg.silent = False
    retry_at = ua.registrations["alice"].get_timer()
    assert retry_at is not None
    ua.handle_timer(retry_at)
    exchange(ua, reg, retry_at)
    assert ua.registrations["alice"].state is RegState.REGISTERED


def test_interval_too_brief_uses_min_expires() -> None:
    ua, reg = make_ua(expires=60), FakeRegistrar(min_expires=120)
    ua.register("alice", 0.0)
    exchange(ua, reg, 0.0)
    registration = ua.registrations["alice"]
    assert registration.state is RegState.REGISTERED
    assert registration.granted == 120


def test_unregister_removes_binding() -> None:
    ua, reg = make_ua(), FakeRegistrar()
    ua.register("alice", 0.0)
    exchange(ua, reg, 0.0)
    assert reg.bindings
    assert ua.unregister("alice", 1.0)
    exchange(ua, reg, 1.0)
    assert reg.bindings == {}
    assert ua.registrations["alice"].state is RegState.UNREGISTERED
    last = reg.seen[-1]
    assert last.headers.get("Expires") == "0"
    assert ua.registrations["alice"].get_timer() is None


def test_options_answered_with_allow_and_accept() -> None:
    ua = make_ua()
    other = make_ua()
    handle = other.request("OPTIONS", SipUri("sip", "127.0.0.1", "alice", port=5070), 0.0)
    for item in other.outgoing():
        ua.receive_datagram(item.data, ALICE, 0.0)
    replies = ua.outgoing()
    assert len(replies) == 1
    response = parse_message(replies[0].data)
    for item in replies:
        other.receive_datagram(item.data, ALICE, 0.0)
    completed = [e for e in iter(other.next_event, None) if isinstance(e, RequestCompleted)]
    assert [(c.handle, c.response.status) for c in completed] == [(handle, 200)]
    assert "INVITE" in (response.headers.get("Allow") or "")
    assert response.headers.get("Accept") == "application/sdp"


def test_lost_connection_registers_again_soon() -> None:
    ua = UserAgent({"tcp": ("127.0.0.1", 5070)})
    ua.add_account(
        AccountSpec(
            name="alice",
            aor=SipUri("sip", REALM, "alice"),
            registrar=SipUri("sip", "127.0.0.1", port=5060, params=(("transport", "tcp"),)),
            auth_user="alice",
            password="secret",
            transport="tcp",
        )
    )
    reg = FakeRegistrar()
    ua.register("alice", 0.0)
    for _ in range(5):  # exchange over the fake stream
        for item in ua.outgoing():
            reg.receive(item.data, 0.0)
        for item in reg.endpoint.outgoing():
            ua.receive_datagram(item.data, Peer("tcp", "127.0.0.1", 5060), 0.0)
    assert ua.registrations["alice"].state is RegState.REGISTERED
    ua.transport_failed(Peer("tcp", "127.0.0.1", 5060), "the server closed the connection", 100.0)
    registration = ua.registrations["alice"]
    assert registration.state is RegState.FAILED and "closed the connection" in registration.reason
    wake = registration.get_timer()
    assert (
        wake is not None and 100.5 <= wake <= 101.5
    )  # RFC 5626 flow recovery, not the 30 s back-off
    ua.handle_timer(wake)
    assert [p.peer.transport for p in ua.outgoing()] == ["tcp"]  # a new REGISTER goes out at once
