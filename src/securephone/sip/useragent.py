"""The sans-I/O user agent: transactions, registrations, OPTIONS, calls — one ordered event queue.

One ``UserAgent`` serves every interface of the phone. Input: ``receive_datagram``/``receive_message``
with the peer and ``now``, API calls, ``handle_timer(now)``. Output: ``outgoing()``, ``next_event()``,
``get_timer()``. It is built from the parts below it (endpoint, router, digest clients,
registrations, call manager) and they never call back up into it.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass

from securephone.sip.auth import DigestClient, DigestCredentials
from securephone.sip.callmanager import DEFAULT_INCOMING_RING, CallManager
from securephone.sip.callsession import CallMedia, CallSession
from securephone.sip.callstate import CallEnding
from securephone.sip.endpoint import SipEndpoint, new_tag
from securephone.sip.events import (
    Event,
    FlowTimerChanged,
    RegistrationChanged,
    RequestCompleted,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionTimedOut,
    TransportFailed,
)
from securephone.sip.headers import NameAddr
from securephone.sip.message import Headers, Request, Response, make_response
from securephone.sip.outbound import account_state, note_other_flows, working_flow
from securephone.sip.registration import Registration, RegState
from securephone.sip.router import AccountSpec, Router
from securephone.sip.transaction import TimerSettings
from securephone.sip.transport import Outgoing, Peer
from securephone.sip.uri import SipUri

log = logging.getLogger(__name__)


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
        incoming_ring_timeout: float = DEFAULT_INCOMING_RING,
        identity: SipUri | None = None,
        failback_interval: float = 0.0,
    ) -> None:
        self.router = Router(listen, user_agent, identity)
        # After a failover (RFC 3263 §4.3), probe the server DNS ranks first this often with
        # OPTIONS and register there again once it answers; 0: stay where the failover led.
        self.failback_interval = failback_interval
        self._next_failback: float | None = None
        self._probes: dict[str, tuple[str, Peer]] = {}  # transaction id -> (account, server)
        self.endpoint = SipEndpoint(timers)
        self._events: deque[Event] = deque()
        self._auth: dict[str, DigestClient] = {}
        self.calls = CallManager(
            self.endpoint,
            self.router,
            self._auth,
            self._events,
            max_calls=max_calls,
            incoming_ring_timeout=incoming_ring_timeout,
        )
        self.registrations: dict[str, Registration] = {}  # the first (or only) flow's
        self.flows: dict[str, list[Registration]] = {}  # every flow's, reg-id order (RFC 5626)
        self._reg_tx: dict[str, tuple[str, Registration]] = {}  # transaction id -> whose
        self._reg_sent: dict[str, tuple[Request, Peer]] = {}  # transaction id -> what went where
        self._pending: dict[str, _Pending] = {}  # transaction id -> pending request

    @property
    def accounts(self) -> dict[str, AccountSpec]:
        return self.router.accounts

    @property
    def listen(self) -> dict[str, tuple[str, int]]:
        return self.router.listen

    # -- accounts ----------------------------------------------------------------------------------
    def add_account(self, spec: AccountSpec) -> None:
        """Add an account; its registration starts with ``register(name, now)``."""
        if spec.transport == "udp" and "udp" not in self.listen:
            raise ValueError(f"account {spec.name}: UDP needs a UDP listener ([sip] transports)")
        self.accounts[spec.name] = spec
        auth = DigestClient(DigestCredentials(spec.auth_user, spec.password))
        self._auth[spec.name] = auth
        proxies = spec.outbound_proxies or (None,)
        flows = [self._new_flow(spec, auth, i + 1, p) for i, p in enumerate(proxies)]
        self.flows[spec.name] = flows
        self.registrations[spec.name] = flows[0]

    def _new_flow(
        self, spec: AccountSpec, auth: DigestClient, reg_id: int, proxy: SipUri | None
    ) -> Registration:
        """One registration; with several outbound proxies, one per flow (RFC 5626 §4.2)."""
        reg = Registration(
            aor=spec.aor,
            registrar=spec.registrar,
            contact=self.router.contact_for(spec, register=True, reg_id=reg_id),
            auth=auth,
            expires=spec.expires,
            call_id=secrets.token_hex(16),
            from_tag=new_tag(),
            retry=spec.retry,
            reg_id=reg_id if proxy is not None else None,
            proxy=proxy,
        )
        if spec.outbound:
            reg.supported = "outbound, path"  # RFC 5626 §4.2.1
        return reg

    def flows_of_all(self) -> list[tuple[str, Registration]]:
        """Every (account, registration) pair: one per flow (RFC 5626), one per plain account."""
        return [(name, reg) for name, flows in self.flows.items() for reg in flows]

    def flow_peer(self, name: str, reg: Registration) -> Peer:
        """Where one flow's REGISTER goes: its own outbound proxy, else the account's next hop."""
        spec = self.accounts[name]
        if reg.proxy is not None:
            return self.router.route_peer(spec, reg.proxy, use_proxy=False)
        return self.router.registrar_peer(name)

    def refresh_contacts(self) -> None:
        """Our address changed (a new STUN mapping): later REGISTERs carry the new Contact."""
        for name, reg in self.flows_of_all():
            spec = self.accounts[name]
            reg.contact = self.router.contact_for(spec, register=True, reg_id=reg.reg_id)

    def flow_failed(self, name: str, reason: str, now: float, reg_id: int | None = None) -> None:
        """RFC 5626 §4.4.2/§4.5: a keep-alive found a flow of account ``name`` broken."""
        flows = self.flows[name]
        chosen = [r for r in flows if r.reg_id == reg_id] if reg_id is not None else flows[:1]
        for reg in chosen:
            reg.flow_failed(reason, now)
        self._emit_changes(name)

    def register(self, name: str, now: float) -> None:
        """Start registering account ``name`` (every flow of it).

        The Contact is chosen again now: on a wildcard listener it names our address toward the
        server, which the shell may only have located (RFC 3263) after the account was added.
        """
        spec = self.accounts[name]
        for reg in self.flows[name]:
            reg.contact = self.router.contact_for(spec, register=True, reg_id=reg.reg_id)
            self._send_register(name, reg, reg.start(), now)

    def unregister(self, name: str, now: float) -> bool:
        """Remove the bindings; False when there was nothing to remove."""
        sent = False
        for reg in self.flows[name]:
            request = reg.stop()
            if request is not None:
                self._send_register(name, reg, request, now)
                sent = True
        self._emit_changes(name)
        return sent

    def _send_register(
        self, name: str, reg: Registration, request: Request, now: float, peer: Peer | None = None
    ) -> None:
        peer = peer or self.flow_peer(name, reg)
        key = self._send(request, peer, now)
        self._reg_tx[key] = (name, reg)
        self._reg_sent[key] = (request, peer)
        self._emit_changes(name)

    def _register_failover(self, key: str, why: str, now: float) -> bool:
        """RFC 3263 §4.3: the REGISTER again, to the registrar's next server, when there is one."""
        sent = self._reg_sent.pop(key, None)
        whose = self._reg_tx.get(key)
        if sent is None or whose is None:
            return False
        name, reg = whose
        request, peer = sent
        following = self.router.failover(peer, why)
        if following is None:
            return False
        if self.failback_interval > 0 and self._next_failback is None:
            self._next_failback = now + self.failback_interval
        del self._reg_tx[key]
        _drop_credentials(request)
        reg.new_server()
        log.info("REGISTER for %s: %s %s, trying %s", name, peer, why, following)
        self._send_register(name, reg, request, now, following)
        return True

    def _emit_changes(self, name: str) -> None:
        flows = self.flows[name]
        several = len(flows) > 1
        for reg in flows:
            for change in reg.take_changes():
                self._events.append(
                    RegistrationChanged(name, change, reg.reg_id if several else None)
                )
            if reg.flow_timer_changed:
                reg.flow_timer_changed = False
                flow = reg.reg_id if several else None
                self._events.append(FlowTimerChanged(name, reg.flow_timer, flow))
        if several:
            note_other_flows(flows)
            working = working_flow(flows)
            if working is not None and working.proxy is not None:
                self.router.flow_in_use[name] = working.proxy
            else:
                self.router.flow_in_use.pop(name, None)

    def _send(self, request: Request, peer: Peer, now: float) -> str:
        self.router.stamp_request(request, peer)
        return self.endpoint.send_request(request, peer, now)

    # -- generic out-of-dialog requests --------------------------------------------------------------
    def request(
        self, method: str, target: SipUri, now: float, *, account: str | None = None
    ) -> str:
        """Send an out-of-dialog request (e.g. OPTIONS); returns a handle for RequestCompleted/Failed."""
        spec = self.accounts[account] if account else None
        request = self._new_request(method, target, spec)
        peer = self.router.route_peer(spec, target)
        handle = secrets.token_hex(8)
        key = self._send(request, peer, now)
        self._pending[key] = _Pending(handle, request, peer, account)
        return handle

    def _new_request(self, method: str, target: SipUri, spec: AccountSpec | None) -> Request:
        """A request outside any dialog (RFC 3261 §8.1.1), from the account's AOR."""
        aor = spec.aor if spec else SipUri("sip", "invalid", "anonymous")
        headers = Headers()
        headers.add("From", str(NameAddr(aor, params=(("tag", new_tag()),))))
        headers.add("To", str(NameAddr(target)))
        headers.add("Call-ID", secrets.token_hex(16))
        headers.add("CSeq", f"1 {method}")
        headers.add("Max-Forwards", "70")
        if spec is not None:
            headers.add("Contact", str(self.router.contact_for(spec)))
        return Request(method, target, headers)

    # -- calls: typed commands, each a method of the call manager -------------------------------------
    def dial(
        self,
        target: SipUri,
        media: CallMedia,
        now: float,
        *,
        account: str | None = None,
        ring_timeout: float | None = None,
    ) -> CallSession:
        """Place a call; progress comes as CallStateChanged events on the one queue."""
        return self.calls.dial(target, media, now, account, ring_timeout)

    def answer(self, key: str, media: CallMedia, now: float) -> None:
        """Answer an incoming call."""
        self.calls.answer(key, media, now)

    def reject(self, key: str, status: int, now: float) -> None:
        """Refuse an incoming call."""
        self.calls.reject(key, status, now)

    def hangup(self, key: str, now: float) -> None:
        """End a call in any state."""
        self.calls.hangup(key, now)

    def terminate(self, key: str, ending: CallEnding, reason: str, now: float) -> None:
        """End a call for a cause (a BYE then carries a Reason header)."""
        self.calls.terminate(key, ending, reason, now)

    def hold(self, key: str, on: bool, now: float) -> None:
        """Hold (True) or resume (False) a connected call."""
        self.calls.hold(key, on, now)

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
        for name, reg in self.flows_of_all():
            hop = self.flow_peer(name, reg)
            if peer.reliable and (hop.transport, hop.host, hop.port) == (
                peer.transport,
                peer.host,
                peer.port,
            ):
                reg.flow_failed(reason, now)
                self._emit_changes(name)
        self._drain(now)

    def get_timer(self) -> float | None:
        """The earliest deadline of the transactions, the calls and the registrations."""
        times = [self.endpoint.get_timer(), self.calls.get_timer(), self._next_failback]
        times += [r.get_timer() for _, r in self.flows_of_all()]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        """Run everything that is due."""
        self.endpoint.handle_timer(now)
        self.calls.handle_timer(now)
        for name, reg in self.flows_of_all():
            request = reg.handle_timer(now)
            if request is not None:
                self._send_register(name, reg, request, now)
        if self._next_failback is not None and now >= self._next_failback:
            self._probe_preferred_servers(now)
        self._drain(now)

    # -- returning to the preferred server after a failover -------------------------------------------
    def _probe_preferred_servers(self, now: float) -> None:
        """Send OPTIONS to every server DNS ranks above the one each account failed over to.

        A server that answers at all (any final response, 401/407/405 included) is up: the
        account registers there again (or at a better one that answers later). No answer: ask
        again after ``failback_interval``.
        """
        self._next_failback = None
        for name, reg in self.registrations.items():
            if reg.state not in (RegState.REGISTERED, RegState.FAILED) or len(self.flows[name]) > 1:
                continue
            spec = self.accounts[name]
            for preferred in self.router.preferred_over(self.router.registrar_peer(name)):
                if (name, preferred) in self._probes.values():
                    continue
                request = self._new_request("OPTIONS", spec.registrar, spec)
                self._probes[self._send(request, preferred, now)] = (name, preferred)
                log.info(
                    "account %s: asking %s, a preferred server, whether it is back", name, preferred
                )
                self._next_failback = now + self.failback_interval

    def _probe_done(self, key: str, response: Response | None, why: str, now: float) -> None:
        name, server = self._probes.pop(key)
        if response is None:
            log.info("preferred server %s still unreachable (%s)", server, why)
            self._next_failback = self._next_failback or now + self.failback_interval
            return
        reg = self.registrations[name]
        if server not in self.router.preferred_over(self.router.registrar_peer(name)):
            return  # already there or at a better one (another probe, or a later failover)
        self.router.fail_back(server, f"back: answered OPTIONS with {response.status}")
        log.info("account %s: %s answers again, registering there", name, server)
        if reg.state in (RegState.REGISTERED, RegState.FAILED):
            reg.new_server()
            self._send_register(name, reg, reg.start(), now)

    def outgoing(self) -> list[Outgoing]:
        """Bytes to send."""
        return self.endpoint.outgoing()

    def next_event(self) -> Event | None:
        """The next event for the phone, in the order things happened."""
        return self._events.popleft() if self._events else None

    def _drain(self, now: float) -> None:
        while (event := self.endpoint.next_event()) is not None:
            self._dispatch(event, now)

    def _dispatch(self, event: Event, now: float) -> None:
        if isinstance(event, ResponseReceived):
            self._on_response(event, now)
        elif isinstance(event, TransactionTimedOut):
            self._on_failure(event.transaction_id, "no response (timeout)", now, timeout=True)
        elif isinstance(event, TransportFailed):
            self._on_failure(event.transaction_id, event.reason, now, timeout=False)
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
        if key in self._probes:
            self._probe_done(key, response, "", now)
            return
        if response.status == 503 and self._register_failover(key, "answered 503", now):
            return
        self._reg_sent.pop(key, None)
        if (whose := self._reg_tx.pop(key, None)) is not None:
            name, reg = whose
            follow = reg.on_response(response, now)
            if follow is not None:
                self._send_register(name, reg, follow, now)
            self._emit_changes(name)
        elif (pending := self._pending.pop(key, None)) is not None:
            self._on_pending_response(pending, response, now)
        else:
            self._events.append(event)

    def _on_pending_response(self, pending: _Pending, response: Response, now: float) -> None:
        auth = self._auth.get(pending.account) if pending.account else None
        if response.status in (401, 407) and auth is not None and pending.auth_tries == 0:
            retry = auth.retry(pending.request, response)
            if retry is not None:
                key = self._send(retry, pending.peer, now)
                self._pending[key] = _Pending(
                    pending.handle, retry, pending.peer, pending.account, pending.auth_tries + 1
                )
                return
        self._events.append(RequestCompleted(pending.handle, response))

    def _on_failure(self, key: str, reason: str, now: float, *, timeout: bool) -> None:
        ending = CallEnding.TIMED_OUT if timeout else CallEnding.TRANSPORT_FAILED
        if self.calls.on_failure(key, reason, now, ending):
            return
        if key in self._probes:
            self._probe_done(key, None, reason, now)
            return
        if self._register_failover(key, reason, now):
            return
        if (whose := self._reg_tx.pop(key, None)) is not None:
            name, reg = whose
            reg.on_timeout(reason, now)
            self._emit_changes(name)
        elif (pending := self._pending.pop(key, None)) is not None:
            self._events.append(RequestFailed(pending.handle, reason))

    def _on_request(self, event: RequestReceived, now: float) -> None:
        request, key = event.request, event.transaction_id
        if key is not None and not self._accepted_source(event, now):
            return
        if self.calls.on_request(event, now) or key is None:
            return
        if request.method == "OPTIONS":
            response = self.router.options_response(request)
        else:
            status = 481 if request.method in ("BYE", "INFO", "UPDATE", "PRACK") else 405
            response = make_response(request, status, to_tag=new_tag())
            response.headers.add("Allow", self.router.allow)
        self.endpoint.send_response(key, self.router.stamp_response(response), now)

    def _accepted_source(self, event: RequestReceived, now: float) -> bool:
        """``accept_only_from_proxy``: out-of-dialog requests only from the registrar/proxy (403).

        In-dialog requests go on to the call manager, which knows the dialog and its flow.
        """
        request = event.request
        if (
            request.to.tag
            or request.method == "ACK"
            or self.router.from_proxy(event.peer) is not False
        ):
            return True
        self.endpoint.bad_input.note(
            now, "request not from the proxy", f"{request.method} from {event.peer} refused"
        )
        assert event.transaction_id is not None
        response = make_response(request, 403, "Only Accepted From The Proxy", to_tag=new_tag())
        # once, not on Timer G: its source may be forged, and the repeats would go to the victim
        self.endpoint.send_response(
            event.transaction_id, self.router.stamp_response(response), now, retransmit=False
        )
        return False

    def registration_state(self, name: str) -> RegState:
        """Shortcut for status displays: with several flows, registered while any flow is."""
        return account_state(self.flows[name])


def _drop_credentials(request: Request) -> None:
    """Credentials answer one server's challenge (its nonce): the next server challenges anew."""
    request.headers.remove("Authorization")
    request.headers.remove("Proxy-Authorization")
