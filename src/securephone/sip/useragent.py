"""The sans-I/O user agent: transactions, registrations, OPTIONS, and requests that carry digest auth.

One ``UserAgent`` serves every interface of the phone. Input: ``receive_datagram``/``receive_message``
with the peer and ``now``, API calls, ``handle_timer(now)``. Output: ``outgoing()``, ``next_event()``,
``get_timer()``.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass, field

from securephone.sip.auth import DigestClient, DigestCredentials, choose_per_realm, parse_challenges
from securephone.sip.call import CallMedia
from securephone.sip.calls import CallManager
from securephone.sip.endpoint import SipEndpoint, new_branch, new_tag
from securephone.sip.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionTimedOut,
    TransportFailed,
)
from securephone.sip.headers import NameAddr
from securephone.sip.message import Headers, Request, Response, make_response
from securephone.sip.registration import Registration, RegState, RetryPolicy, StateChange
from securephone.sip.transaction import TimerSettings, make_via
from securephone.sip.transport import Outgoing, Peer
from securephone.sip.uri import SipUri

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
ACCEPT = "application/sdp"
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


@dataclass(frozen=True)
class AccountSpec:
    """What the core needs to know of one account (the config layer builds it)."""

    name: str
    aor: SipUri
    registrar: SipUri
    auth_user: str
    password: str = field(repr=False)
    transport: str = "udp"
    outbound_proxy: SipUri | None = None
    register: bool = True
    expires: int = 600
    display_name: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class RegistrationChanged(Event):
    """An account's registration state changed."""

    account: str
    change: StateChange


@dataclass(frozen=True)
class RequestCompleted(Event):
    """An out-of-dialog request we sent got its final response (after any auth round)."""

    handle: str
    response: Response


@dataclass(frozen=True)
class RequestFailed(Event):
    """An out-of-dialog request got no final response: timeout or transport failure."""

    handle: str
    reason: str


@dataclass
class _Pending:
    """An out-of-dialog request waiting for its final response."""

    handle: str
    request: Request
    peer: Peer
    account: str | None
    auth_tries: int = 0


class UserAgent:
    """A SIP user agent core without I/O."""

    def __init__(
        self,
        listen: dict[str, tuple[str, int]],
        *,
        user_agent: str = "securephone",
        timers: TimerSettings | None = None,
        max_calls: int = 4,
        identity: SipUri | None = None,
    ) -> None:
        self.listen = dict(listen)
        self.user_agent = user_agent
        self.allow = ALLOW
        host = _host(next(iter(self.listen.values()))[0])
        self.identity = identity or SipUri("sip", host, "securephone")
        self.endpoint = SipEndpoint(timers)
        self.calls = CallManager(self, max_calls)
        self.accounts: dict[str, AccountSpec] = {}
        self.registrations: dict[str, Registration] = {}
        self._auth: dict[str, DigestClient] = {}
        self._reg_tx: dict[str, str] = {}  # transaction id -> account name
        self._pending: dict[str, _Pending] = {}  # transaction id -> pending request
        self._events: deque[Event] = deque()

    # -- accounts ----------------------------------------------------------------------------------
    def add_account(self, spec: AccountSpec) -> None:
        """Add an account; its registration starts with ``register(name, now)``."""
        if spec.transport == "udp" and "udp" not in self.listen:
            raise ValueError(f"account {spec.name}: UDP needs a UDP listener ([sip] transports)")
        self.accounts[spec.name] = spec
        auth = DigestClient(DigestCredentials(spec.auth_user, spec.password))
        self._auth[spec.name] = auth
        self.registrations[spec.name] = Registration(
            aor=spec.aor,
            registrar=spec.registrar,
            contact=self.contact_for(spec),
            auth=auth,
            expires=spec.expires,
            call_id=secrets.token_hex(16),
            from_tag=new_tag(),
            retry=spec.retry,
        )

    def contact_for(
        self, spec: AccountSpec | None, transport: str | None = None, *, secure: bool = False
    ) -> NameAddr:
        """Our Contact: the listener of the transport in use (RFC 3261 §8.1.1.8, §10.2.1).

        A sips: request carries a sips: Contact (RFC 5630 §3.1.3), with no ``transport=tls``.
        """
        transport = transport or (spec.transport if spec else "udp")
        host, port = self._listener(transport)
        aor = spec.aor if spec else self.identity
        sips = transport == "tls" and (secure or aor.scheme == "sips")
        params: tuple[tuple[str, str | None], ...] = ()
        if transport != "udp" and not sips:
            params = (("transport", transport),)
        uri = SipUri("sips" if sips else "sip", _host(host), aor.user, port=port, params=params)
        return NameAddr(uri)

    def _listener(self, transport: str) -> tuple[str, int]:
        """Our address for ``transport``: its listener, else a stream one (connection reuse), else any."""
        for name in (transport, "tls" if transport == "tcp" else "tcp"):
            if name in self.listen:
                return self.listen[name]
        return next(iter(self.listen.values()))

    def account_for(self, request: Request) -> str | None:
        """The account an incoming request is addressed to (by user part), if any."""
        user = request.uri.user if isinstance(request.uri, SipUri) else None
        for name, spec in self.accounts.items():
            if spec.aor.user == user:
                return name
        return None

    def register(self, name: str, now: float) -> None:
        """Start registering account ``name``."""
        reg = self.registrations[name]
        self._send_register(name, reg.start(), now)

    def unregister(self, name: str, now: float) -> bool:
        """Remove the binding; False when there was nothing to remove."""
        request = self.registrations[name].stop()
        self._emit_changes(name)
        if request is None:
            return False
        self._send_register(name, request, now)
        return True

    def _send_register(self, name: str, request: Request, now: float) -> None:
        spec = self.accounts[name]
        key = self.send(request, self.route_peer(spec, spec.registrar), now)
        self._reg_tx[key] = name
        self._emit_changes(name)

    def _emit_changes(self, name: str) -> None:
        for change in self.registrations[name].take_changes():
            self._events.append(RegistrationChanged(name, change))

    # -- generic out-of-dialog requests --------------------------------------------------------------
    def request(
        self, method: str, target: SipUri, now: float, *, account: str | None = None
    ) -> str:
        """Send an out-of-dialog request (e.g. OPTIONS); returns a handle for RequestCompleted/Failed."""
        spec = self.accounts[account] if account else None
        aor = spec.aor if spec else SipUri("sip", "invalid", "anonymous")
        headers = Headers()
        headers.add("From", str(NameAddr(aor, params=(("tag", new_tag()),))))
        headers.add("To", str(NameAddr(target)))
        headers.add("Call-ID", secrets.token_hex(16))
        headers.add("CSeq", f"1 {method}")
        headers.add("Max-Forwards", "70")
        if spec is not None:
            headers.add("Contact", str(self.contact_for(spec)))
        request = Request(method, target, headers)
        peer = self.route_peer(spec, target)
        handle = secrets.token_hex(8)
        key = self.send(request, peer, now)
        self._pending[key] = _Pending(handle, request, peer, account)
        return handle

    # -- calls -------------------------------------------------------------------------------------
    def dial(
        self, target: SipUri, media: CallMedia, now: float, *, account: str | None = None
    ) -> str:
        """Place a call; returns its key (the Call-ID). Progress comes as CallStateChanged events."""
        key = self.calls.dial(target, media, now, account)
        self._collect_calls()
        return key

    def answer(self, key: str, media: CallMedia, now: float) -> None:
        """Answer an incoming call."""
        self.calls.answer(key, media, now)
        self._collect_calls()

    def reject(self, key: str, status: int, now: float) -> None:
        """Refuse an incoming call."""
        self.calls.reject(key, status, now)
        self._collect_calls()

    def hangup(self, key: str, now: float) -> None:
        """End a call in any state."""
        self.calls.hangup(key, now)
        self._collect_calls()

    def hold(self, key: str, on: bool, now: float) -> None:
        """Hold (True) or resume (False) a connected call."""
        self.calls.hold(key, on, now)
        self._collect_calls()

    def _collect_calls(self) -> None:
        self._events.extend(self.calls.events)
        self.calls.events.clear()

    def authorized_retry(
        self, account: str | None, request: Request, response: Response
    ) -> Request | None:
        """The same request with CSeq + 1 and credentials for the challenges (RFC 3261 §22.2)."""
        if account is None:
            return None
        return self._with_auth(_Pending("", request, Peer("udp", "", 0), account), response)

    def route_peer(
        self, spec: AccountSpec | None, target: SipUri, *, use_proxy: bool = True
    ) -> Peer:
        """Where a request goes: the outbound proxy, else the target (RFC 3263 without DNS SRV)."""
        proxy = spec.outbound_proxy if spec and use_proxy else None
        hop = proxy or target
        if target.scheme == "sips" and hop.scheme != "sips" and (hop.transport or "") != "tls":
            raise ValueError(
                f"{target} needs TLS all the way (RFC 3261 §26.2.2), but the next hop {hop} is not TLS"
            )
        transport = (hop.transport or (spec.transport if spec else "udp")).lower()
        if hop.scheme == "sips":
            transport = "tls"
        port = hop.port or DEFAULT_PORTS.get(transport, 5060)
        return Peer(transport, hop.host.strip("[]"), port)

    def send(self, request: Request, peer: Peer, now: float, *, keep_via: bool = False) -> str:
        """Add our Via (unless kept, as for CANCEL) and User-Agent; start the client transaction."""
        if not keep_via:
            host, port = self._listener(peer.transport)
            via = make_via(peer.transport, _host(host), port, new_branch())
            request.headers.remove("Via")
            request.headers.prepend("Via", str(via))
        if "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.user_agent)
        return self.endpoint.send_request(request, peer, now)

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """An ACK for a 2xx, or a 2xx retransmission: outside any transaction."""
        if isinstance(message, Request):
            host, port = self._listener(peer.transport)
            via = make_via(peer.transport, _host(host), port, new_branch())
            message.headers.remove("Via")
            message.headers.prepend("Via", str(via))
        self.endpoint.send_stateless(message, peer)

    def respond(self, transaction_id: str, response: Response, now: float) -> None:
        """Answer a server transaction."""
        if "User-Agent" not in response.headers and response.status >= 200:
            response.headers.add("Server", self.user_agent)
        self.endpoint.send_response(transaction_id, response, now)

    # -- input -------------------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        """Bytes of one message from the network."""
        self.endpoint.receive_datagram(data, peer, now)
        self._drain(now)

    def receive_message(self, message: Request | Response, peer: Peer, now: float) -> None:
        """A message already framed and parsed by a stream transport."""
        self.endpoint.receive_message(message, peer, now)
        self._drain(now)

    def transport_failed(self, peer: Peer, reason: str, now: float) -> None:
        """The shell could not reach ``peer``: fail what waits on it."""
        self.endpoint.transport_failed(peer, reason)
        for name, reg in self.registrations.items():
            hop = self.route_peer(self.accounts[name], self.accounts[name].registrar)
            if peer.reliable and (hop.transport, hop.host, hop.port) == (
                peer.transport,
                peer.host,
                peer.port,
            ):
                reg.flow_failed(reason, now)
                self._emit_changes(name)
        self._drain(now)

    def get_timer(self) -> float | None:
        """The earliest deadline of the transactions and the registrations."""
        times = [self.endpoint.get_timer(), self.calls.get_timer()]
        times += [r.get_timer() for r in self.registrations.values()]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        """Run everything that is due."""
        self.endpoint.handle_timer(now)
        self.calls.handle_timer(now)
        for name, reg in self.registrations.items():
            request = reg.handle_timer(now)
            if request is not None:
                self._send_register(name, request, now)
        self._drain(now)

    def outgoing(self) -> list[Outgoing]:
        """Bytes to send."""
        return self.endpoint.outgoing()

    def next_event(self) -> Event | None:
        """The next event for the phone."""
        return self._events.popleft() if self._events else None

    def _drain(self, now: float) -> None:
        while (event := self.endpoint.next_event()) is not None:
            self._dispatch(event, now)
        self._collect_calls()

    def _dispatch(self, event: Event, now: float) -> None:
        if isinstance(event, ResponseReceived):
            self._on_response(event, now)
        elif isinstance(event, TransactionTimedOut | TransportFailed):
            reason = (
                "no response (timeout)" if isinstance(event, TransactionTimedOut) else event.reason
            )
            self._on_failure(event.transaction_id, reason, now)
        elif isinstance(event, RequestReceived):
            self._on_request(event, now)
        elif isinstance(event, StrayResponse) and self.calls.on_stray_2xx(event.response):
            pass
        else:
            self._events.append(event)

    def _on_response(self, event: ResponseReceived, now: float) -> None:
        key, response = event.transaction_id, event.response
        if self.calls.on_response(key, response, now) or response.status < 200:
            return
        if (name := self._reg_tx.pop(key, None)) is not None:
            follow = self.registrations[name].on_response(response, now)
            if follow is not None:
                self._send_register(name, follow, now)
            self._emit_changes(name)
        elif (pending := self._pending.pop(key, None)) is not None:
            self._on_pending_response(pending, response, now)
        else:
            self._events.append(event)

    def _on_pending_response(self, pending: _Pending, response: Response, now: float) -> None:
        if response.status in (401, 407) and pending.account and pending.auth_tries == 0:
            retry = self._with_auth(pending, response)
            if retry is not None:
                key = self.send(retry, pending.peer, now)
                self._pending[key] = _Pending(
                    pending.handle, retry, pending.peer, pending.account, pending.auth_tries + 1
                )
                return
        self._events.append(RequestCompleted(pending.handle, response))

    def _with_auth(self, pending: _Pending, response: Response) -> Request | None:
        """RFC 3261 §22.2/§22.3: the same request, CSeq + 1, with credentials for each challenge."""
        proxy = response.status == 407
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges = choose_per_realm(
            parse_challenges(response.headers.get_all(header), proxy=proxy)
        )
        if not challenges or pending.account is None:
            return None
        old = pending.request
        headers = old.headers.copy()
        headers.set("CSeq", f"{old.cseq.seq + 1} {old.method}")
        auth = self._auth[pending.account]
        for challenge in challenges:
            name, value = auth.authorize(challenge, old.method, str(old.uri), old.body)
            headers.add(name, value)
        return Request(old.method, old.uri, headers, old.body)

    def _on_failure(self, key: str, reason: str, now: float) -> None:
        if self.calls.on_failure(key, reason, now):
            return
        if (name := self._reg_tx.pop(key, None)) is not None:
            self.registrations[name].on_timeout(reason, now)
            self._emit_changes(name)
        elif (pending := self._pending.pop(key, None)) is not None:
            self._events.append(RequestFailed(pending.handle, reason))

    def _on_request(self, event: RequestReceived, now: float) -> None:
        request, key = event.request, event.transaction_id
        if self.calls.on_request(event, now) or key is None:
            return
        if request.method == "OPTIONS":
            self.respond(key, self.options_response(request), now)
            return
        status = 481 if request.method in ("BYE", "INFO", "UPDATE", "PRACK") else 405
        response = make_response(request, status, to_tag=new_tag())
        response.headers.add("Allow", self.allow)
        self.respond(key, response, now)

    def options_response(self, request: Request) -> Response:
        """RFC 3261 §11.2: 200 with what we can do."""
        response = make_response(request, 200, to_tag=new_tag())
        response.headers.add("Allow", self.allow)
        response.headers.add("Accept", ACCEPT)
        response.headers.add("Accept-Encoding", "identity")
        response.headers.add("Accept-Language", "en")
        response.headers.add("User-Agent", self.user_agent)
        return response

    def registration_state(self, name: str) -> RegState:
        """Shortcut for status displays."""
        return self.registrations[name].state


def _host(host: str) -> str:
    """Bracket IPv6 literals for use in URIs and Via."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
