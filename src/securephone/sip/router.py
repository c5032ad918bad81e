"""Who we are and where requests go: accounts, listeners, Contact, Via and the next hop.

Pure functions of the configuration, no state that changes with traffic: the call manager, the
registrations and the user agent all use one ``Router`` and it calls none of them (RFC 3261 §8.1.1,
§10.2.1, §18.1.1; RFC 3263 without DNS; RFC 5630 for sips:).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from securephone.sip.endpoint import new_branch, new_tag
from securephone.sip.headers import NameAddr
from securephone.sip.message import Request, Response, make_response
from securephone.sip.registration import RetryPolicy
from securephone.sip.transaction import make_via
from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
ACCEPT = "application/sdp"
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
WILDCARDS = ("0.0.0.0", "::")  # listening on every address (``::`` also takes IPv4: dual stack)
ROUTES_KEPT = 256  # our address toward this many peers (wildcard listeners)


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
    accept_only_from_proxy: bool = False
    outbound: bool = False  # RFC 5626: instance id, reg-id, ;ob, flow keep-alives
    reg_id: int = 1
    # RFC 5626 §4.2: several outbound proxies, one flow (and registration, reg-id 1, 2 …) each
    outbound_proxies: tuple[SipUri, ...] = ()


class Router:
    """Our listeners, identity and accounts, and the routing rules that follow from them."""

    def __init__(
        self,
        listen: dict[str, tuple[str, int]],
        user_agent: str = "securephone",
        identity: SipUri | None = None,
    ) -> None:
        self.listen = dict(listen)
        self.user_agent = user_agent
        self.allow = ALLOW
        # With a wildcard listener our address depends on the peer: the shell looks the route up
        # (``learn_route``) and Via, Contact and SDP name the address on that route.
        self.routes: dict[str, str] = {}
        host = bracket(self.local_host(None, next(iter(self.listen.values()))[0]))
        self.identity = identity or SipUri("sip", host, "securephone")
        self._own_identity = identity is None  # ours to adapt to the peer (wildcard listeners)
        self.accounts: dict[str, AccountSpec] = {}
        # RFC 3263 §4.3: the servers found in DNS for a host name, the one in use first.
        self.resolved: dict[str, list[Peer]] = {}
        self.ranked: dict[str, list[Peer]] = {}  # the same servers in DNS's own order
        self.failovers: list[tuple[Peer, Peer, str]] = []  # (from, to, why), newest last
        # What a STUN server saw of our listener, per transport: Contact carries it (RFC 8489).
        self.public: dict[str, tuple[str, int]] = {}
        self.instance: str | None = None  # RFC 5626 §4.1 +sip.instance (urn:uuid:...)
        # RFC 5626 §4.3: the outbound proxy of a working flow, per account with several flows.
        self.flow_in_use: dict[str, SipUri] = {}

    def account(self, name: str | None) -> AccountSpec | None:
        """The account called ``name``, or None for direct (account-less) calls."""
        return self.accounts.get(name) if name else None

    def account_for(self, request: Request) -> str | None:
        """The account an incoming request is addressed to (by user part), if any."""
        user = request.uri.user if isinstance(request.uri, SipUri) else None
        for name, spec in self.accounts.items():
            if spec.aor.user == user:
                return name
        return None

    def from_proxy(self, peer: Peer) -> bool | None:
        """Whether ``peer`` is the registrar or outbound proxy of an account that accepts requests
        only from there; None when no account asks for that (direct listening is unchanged).

        The transport must be the hop's; then a hop given as (or resolved to) an IP address must
        match the source address, and a hop given by a name the core has no address for must
        match the port the server sends from.
        """
        enforcing = [s for s in self.accounts.values() if s.accept_only_from_proxy]
        hops = [self.route_peer(s, s.registrar) for s in enforcing]
        hops += [self.route_peer(s, s.registrar, use_proxy=False) for s in enforcing]
        hops += [
            self.route_peer(s, p, use_proxy=False) for s in enforcing for p in s.outbound_proxies
        ]
        if not hops:
            return None
        return any(_same_server(hop, peer) for hop in hops)

    def local_identity(self, spec: AccountSpec | None, peer: Peer | None = None) -> NameAddr:
        """Our From for a new request (without an account: our address toward ``peer``)."""
        if spec is not None:
            return NameAddr(spec.aor, spec.display_name)
        return NameAddr(self._identity_toward(peer))

    def contact_for(
        self,
        spec: AccountSpec | None,
        transport: str | None = None,
        *,
        secure: bool = False,
        register: bool = False,
        reg_id: int | None = None,
        peer: Peer | None = None,
    ) -> NameAddr:
        """Our Contact: the listener of the transport in use (RFC 3261 §8.1.1.8, §10.2.1).

        A sips: request carries a sips: Contact (RFC 5630 §3.1.3), with no ``transport=tls``.
        The address a STUN server saw replaces the listener's (``public``). With RFC 5626
        outbound, REGISTER's Contact carries ``reg-id`` and ``+sip.instance`` (§4.2.1) and
        every other Contact the ``ob`` URI parameter (§4.3). With a wildcard listener the host
        is our address toward ``peer`` (default: the account's registrar).
        """
        transport = transport or (spec.transport if spec else "udp")
        public = self.public.get(transport)
        host, port = public or self.listener(transport)
        if public is None:
            if peer is None and spec is not None and host in WILDCARDS:
                try:
                    peer = self.route_peer(spec, spec.registrar)
                except ValueError:
                    peer = None
            host = self.local_host(peer.host if peer is not None else None, host)
        aor = spec.aor if spec else self._identity_toward(peer)
        sips = transport == "tls" and (secure or aor.scheme == "sips")
        params: tuple[tuple[str, str | None], ...] = ()
        if transport != "udp" and not sips:
            params = (("transport", transport),)
        if spec is not None and spec.outbound and not register:
            params += (("ob", None),)  # RFC 5626 §4.3: route this dialog over the flow
        uri = SipUri("sips" if sips else "sip", bracket(host), aor.user, port=port, params=params)
        contact = NameAddr(uri)
        if register and spec is not None and spec.outbound and self.instance:
            contact = contact.with_params(**{"reg-id": str(reg_id or spec.reg_id)})
            contact = contact.with_params(**{"+sip.instance": f"<{self.instance}>"})
        return contact

    def learn_route(self, peer_host: str, local: str) -> None:
        """The shell found ``local`` to be our address on the route to ``peer_host``."""
        key = peer_host.strip("[]").lower()
        self.routes.pop(key, None)
        self.routes[key] = local.strip("[]")
        while len(self.routes) > ROUTES_KEPT:
            del self.routes[next(iter(self.routes))]

    def local_host(self, peer_host: str | None, listening: str) -> str:
        """The address we name for a socket bound to ``listening`` when talking to ``peer_host``.

        A concrete listen address is itself. For a wildcard: the learnt address toward the
        peer, else a learnt one of the peer's family, else the loopback of the listener
        (``::1`` for ``::``, which is dual stack, or ``127.0.0.1``).
        """
        if listening not in WILDCARDS:
            return listening
        key = peer_host.strip("[]").lower() if peer_host else None
        if key is not None and key in self.routes:
            return self.routes[key]
        v6 = ":" in key if key is not None and _is_ip(key) else listening == "::"
        same = [a for a in self.routes.values() if (":" in a) == v6]
        if same:
            return same[-1]
        return "::1" if v6 and listening == "::" else "127.0.0.1"

    def _identity_toward(self, peer: Peer | None) -> SipUri:
        """``sip:securephone@HOST`` with HOST our address toward ``peer`` (wildcard listeners)."""
        listening = next(iter(self.listen.values()))[0]
        if peer is None or listening not in WILDCARDS or not self._own_identity:
            return self.identity
        host = bracket(self.local_host(peer.host, listening))
        return SipUri(self.identity.scheme, host, self.identity.user)

    def listener(self, transport: str) -> tuple[str, int]:
        """Our address for ``transport``: its listener, else a stream one (connection reuse), else any."""
        for name in (transport, "tls" if transport == "tcp" else "tcp"):
            if name in self.listen:
                return self.listen[name]
        return next(iter(self.listen.values()))

    def route_peer(
        self, spec: AccountSpec | None, target: SipUri, *, use_proxy: bool = True
    ) -> Peer:
        """Where a request goes: the outbound proxy, else the target (RFC 3263 without DNS SRV).

        With several outbound proxies (RFC 5626 §4.3) the proxy of a working flow, else the first.
        """
        proxy = self._proxy_of(spec) if spec and use_proxy else None
        hop = proxy or target
        if target.scheme == "sips" and hop.scheme != "sips" and (hop.transport or "") != "tls":
            raise ValueError(
                f"{target} needs TLS all the way (RFC 3261 §26.2.2), but the next hop {hop} is not TLS"
            )
        transport = (hop.transport or (spec.transport if spec else "udp")).lower()
        if hop.scheme == "sips":
            transport = "tls"
        port = hop.port or DEFAULT_PORTS.get(transport, 5060)
        targets = self.resolved.get(hop.host.lower())
        if targets:
            return targets[0]
        return Peer(transport, hop.host.strip("[]"), port)

    def _proxy_of(self, spec: AccountSpec) -> SipUri | None:
        if spec.outbound_proxies:
            return self.flow_in_use.get(spec.name, spec.outbound_proxies[0])
        return spec.outbound_proxy

    def use_targets(self, host: str, peers: list[Peer]) -> None:
        """The shell located ``host`` (RFC 3263 §4): requests to it go to ``peers``, in order."""
        self.resolved[host.lower()] = list(peers)
        self.ranked[host.lower()] = list(peers)

    def failover(self, peer: Peer, why: str) -> Peer | None:
        """RFC 3263 §4.3: ``peer`` did not answer, refused or said 503 — the next server, if any.

        The failed one goes to the end of its list, so later requests start with the next one.
        """
        for peers in self.resolved.values():
            index = next((i for i, p in enumerate(peers) if _same_target(p, peer)), None)
            if index is None or len(peers) < 2:
                continue
            failed = peers.pop(index)
            peers.append(failed)
            self.failovers.append((failed, peers[0], why))
            del self.failovers[:-20]
            return peers[0]
        return None

    def preferred_over(self, peer: Peer) -> list[Peer]:
        """The servers DNS ranks above ``peer``, best first, when ``peer`` is one we failed over
        to; else none."""
        for ranked in self.ranked.values():
            for index, server in enumerate(ranked):
                if _same_target(server, peer):
                    return list(ranked[:index])
        return []

    def fail_back(self, peer: Peer, why: str) -> None:
        """``peer``, a server DNS ranks above the one in use, answers again: requests go there
        first, then on down DNS's order (the servers above it last, as they did not answer)."""
        for host, ranked in self.ranked.items():
            for index, server in enumerate(ranked):
                if _same_target(server, peer):
                    current = self.resolved[host][0]
                    self.resolved[host] = [*ranked[index:], *ranked[:index]]
                    self.failovers.append((current, peer, why))
                    del self.failovers[:-20]
                    return

    def registrar_peer(self, name: str) -> Peer:
        """Where account ``name`` registers."""
        spec = self.accounts[name]
        return self.route_peer(spec, spec.registrar)

    def stamp_request(self, request: Request, peer: Peer, *, keep_via: bool = False) -> Request:
        """Our Via with a fresh branch (unless kept, as for CANCEL) and our User-Agent (§8.1.1.7)."""
        if not keep_via:
            host, port = self.listener(peer.transport)
            host = self.local_host(peer.host, host)
            via = make_via(peer.transport, bracket(host), port, new_branch())
            request.headers.remove("Via")
            request.headers.prepend("Via", str(via))
        if "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.user_agent)
        return request

    def stamp_response(self, response: Response) -> Response:
        """Our Server header on final responses (RFC 3261 §20.35)."""
        if "User-Agent" not in response.headers and response.status >= 200:
            response.headers.add("Server", self.user_agent)
        return response

    def options_response(self, request: Request) -> Response:
        """RFC 3261 §11.2: 200 with what we can do."""
        response = make_response(request, 200, to_tag=new_tag())
        response.headers.add("Allow", self.allow)
        response.headers.add("Accept", ACCEPT)
        response.headers.add("Accept-Encoding", "identity")
        response.headers.add("Accept-Language", "en")
        response.headers.add("User-Agent", self.user_agent)
        return response


def _same_target(a: Peer, b: Peer) -> bool:
    return (a.transport, a.host.strip("[]"), a.port) == (b.transport, b.host.strip("[]"), b.port)


def _same_server(hop: Peer, peer: Peer) -> bool:
    """The request came from ``hop`` over its transport: an account that speaks TLS to its proxy
    takes nothing from that proxy's address over UDP or TCP (anyone can forge a UDP source)."""
    if peer.transport != hop.transport:
        return False
    host = hop.host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return peer.port == hop.port
    return peer.host.strip("[]") == host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def bracket(host: str) -> str:
    """Bracket IPv6 literals for use in URIs and Via."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
