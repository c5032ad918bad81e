"""Locating SIP servers (RFC 3263 §4): NAPTR, then SRV, then A/AAAA, without I/O.

``Locator`` asks for DNS records (``next_query()``), is given the answers (``answer()``) and
returns an ordered list of ``Target`` s (``targets()``): the first hop to try first, the ones to
fail over to after (§4.3). The shell runs the queries with a real resolver; the order of SRV
records of equal priority is RFC 2782's weighted random order drawn from an injected ``Random``.
"""

from __future__ import annotations

import ipaddress
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from securephone.sip.transport import Peer
from securephone.sip.uri import SipUri

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
# RFC 3263 §4.1 and RFC 3263 §6 / RFC 5630: NAPTR service field -> transport
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
# SRV prefixes per transport (§4.1: "_sips._tcp" for TLS)
SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
# Our own preference when the domain publishes no NAPTR records (§4.1): the most secure first.
CLIENT_ORDER = ("tls", "tcp", "udp")


class LocateError(Exception):
    """The domain offers no server this request may use (e.g. no TLS for a sips: URI)."""


class NoServerFound(LocateError):
    """DNS gave no address at all for the name (nothing published, or no answer)."""


@dataclass(frozen=True)
class Naptr:
    """One NAPTR record (RFC 3403 §4.1)."""

    order: int
    preference: int
    flags: str
    service: str
    replacement: str
    ttl: int = 0


@dataclass(frozen=True)
class Srv:
    """One SRV record (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str
    ttl: int = 0


@dataclass(frozen=True)
class Address:
    """One A or AAAA record: ``address`` is the IPv4 or IPv6 literal."""

    address: str
    ttl: int = 0


@dataclass(frozen=True)
class Query:
    """A DNS question the shell must ask: ``rdtype`` is "NAPTR", "SRV", "A" or "AAAA"."""

    name: str
    rdtype: str


Records = list[Naptr] | list[Srv] | list[Address]


@dataclass(frozen=True)
class Target:
    """A server to try: where to send, how it was found and how long the answer may be kept."""

    peer: Peer
    ttl: int
    source: str  # "literal", "a", "srv" or "naptr"

    def __str__(self) -> str:
        return f"{self.peer} (from {self.source}, ttl {self.ttl}s)"


@dataclass
class _Slot:
    """A host name and port to look up, in the final order."""

    transport: str
    host: str
    port: int
    ttl: int | None
    source: str


@dataclass
class Locator:
    """RFC 3263 §4 for one URI: which records to ask for, and the ordered targets they give.

    ``transport`` restricts the choice to the one transport the account uses (NAPTR records of
    other transports are skipped); None lets NAPTR (or our own order) choose. A ``transport``
    parameter in the URI goes straight to that transport's SRV records (§4.1).
    """

    uri: SipUri
    transport: str | None = None
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.host = self.uri.host.strip("[]").rstrip(".").lower()
        self.secure = self.uri.scheme == "sips"
        self.explicit = bool(self.uri.transport)
        wanted = (self.uri.transport or self.transport or "").lower() or None
        if self.secure and wanted not in (None, "tls", "tcp"):
            raise LocateError(f"{self.uri} needs TLS (RFC 3261 §26.2.2), not {wanted}")
        if self.secure:
            wanted = "tls"
        self.wanted = wanted
        self._queue: deque[Query] = deque()
        self._slots: list[_Slot] = []
        self._addresses: dict[str, list[tuple[Address, int]]] = {}
        self._asked: set[Query] = set()
        self._ttls: dict[Query, int] = {}
        self._naptr_transport: dict[str, str] = {}
        self._naptr_seen = False
        self._fallback = False
        self._start()

    # -- the plan of RFC 3263 §4.1 and §4.2 ---------------------------------------------------------
    def _start(self) -> None:
        port = self.uri.port
        if _is_ip(self.host) or port is not None:
            transport = self.wanted or "udp"
            self._slots.append(
                _Slot(transport, self.host, port or DEFAULT_PORTS[transport], None, "a")
            )
            if not _is_ip(self.host):
                self._ask_address(self.host)
        elif self.explicit and self.wanted is not None:
            self._ask(Query(f"{SRV_PREFIX[self.wanted]}.{self.host}", "SRV"))
        else:
            self._ask(Query(self.host, "NAPTR"))

    def next_query(self) -> Query | None:
        """The next DNS question, or None when every answer needed is in.

        With no SRV record at all, §4.2 says to use the host's A/AAAA records and the default
        port: those questions are added once the SRV answers are in.
        """
        if not self._queue and not self._slots and not self._fallback:
            self._fallback = True
            transport = self.wanted or ("tls" if self.secure else "udp")
            self._slots.append(_Slot(transport, self.host, DEFAULT_PORTS[transport], None, "a"))
            self._ask_address(self.host)
        return self._queue.popleft() if self._queue else None

    def answer(self, query: Query, records: Records) -> None:
        """The answer to ``query`` (an empty list for NXDOMAIN, no data or a failed lookup)."""
        if query.rdtype == "NAPTR":
            self._on_naptr([r for r in records if isinstance(r, Naptr)])
        elif query.rdtype == "SRV":
            self._on_srv(query, [r for r in records if isinstance(r, Srv)])
        else:
            found = self._addresses.setdefault(query.name, [])
            found.extend((r, r.ttl) for r in records if isinstance(r, Address))

    def _on_naptr(self, records: list[Naptr]) -> None:
        """§4.1: the SIP services of the NAPTR set in order and preference, else our own order."""
        usable = []
        for record in sorted(records, key=lambda r: (r.order, r.preference)):
            transport = NAPTR_SERVICES.get(record.service.upper())
            if transport is None or record.flags.lower() != "s":
                continue
            self._naptr_seen = True
            if self._allowed(transport):
                usable.append((transport, record))
        if self._naptr_seen and not usable:
            offered = sorted({NAPTR_SERVICES.get(r.service.upper(), "?") for r in records} - {"?"})
            raise LocateError(
                f"{self.host} publishes no {self._wanted_text()} server"
                f" (its NAPTR records offer only {', '.join(offered)})"
            )
        if usable:
            for transport, record in usable:
                self._ask(Query(record.replacement.rstrip(".").lower(), "SRV"), record.ttl)
                self._naptr_transport[record.replacement.rstrip(".").lower()] = transport
            return
        for transport in CLIENT_ORDER:
            if self._allowed(transport):
                self._ask(Query(f"{SRV_PREFIX[transport]}.{self.host}", "SRV"))

    def _on_srv(self, query: Query, records: list[Srv]) -> None:
        """RFC 2782: lowest priority first; within one priority, weighted random order."""
        transport = self._naptr_transport.get(query.name) or _srv_transport(query.name)
        source = "naptr" if query.name in self._naptr_transport else "srv"
        if len(records) == 1 and records[0].target in ("", "."):
            return  # "." target: the service is decidedly not available here
        for record in order_srv(records, self.rng):
            host = record.target.rstrip(".").lower()
            ttl = min(record.ttl, self._ttls.get(query, record.ttl))
            self._slots.append(_Slot(transport, host, record.port, ttl, source))
            if not _is_ip(host):
                self._ask_address(host)

    def _ask_address(self, host: str) -> None:
        self._ask(Query(host, "A"))
        self._ask(Query(host, "AAAA"))

    def _ask(self, query: Query, ttl: int | None = None) -> None:
        if query not in self._asked:
            self._asked.add(query)
            self._queue.append(query)
            if ttl is not None:
                self._ttls[query] = ttl

    def _allowed(self, transport: str) -> bool:
        if self.wanted is not None:
            return transport == self.wanted
        return transport == "tls" if self.secure else True

    def _wanted_text(self) -> str:
        return "TLS" if self.secure else (self.wanted or "SIP").upper()

    # -- the result -------------------------------------------------------------------------------
    def targets(self) -> list[Target]:
        """The ordered targets (§4.3: try them in turn); raises LocateError when there are none.

        The TLS name (``Peer.server_name``) is the URI's domain (RFC 5922 §4), whatever SRV said.
        """
        if self._queue:
            raise RuntimeError("targets() before every query was answered")
        result: list[Target] = []
        name = None if _is_ip(self.host) else self.host
        for slot in self._slots:
            if _is_ip(slot.host):
                found = [(Address(slot.host), slot.ttl or 0)]
            else:
                found = self._addresses.get(slot.host, [])
            for address, ttl in found:
                peer = Peer(slot.transport, address.address, slot.port, server_name=name)
                ttls = [t for t in (ttl, slot.ttl) if t is not None]
                result.append(Target(peer, min(ttls, default=0), slot.source))
        if not result:
            raise NoServerFound(f"no server found for {self.uri} ({self._wanted_text()})")
        return result


def locate(
    uri: SipUri,
    records: dict[Query, Records],
    *,
    transport: str | None = None,
    rng: random.Random | None = None,
) -> list[Target]:
    """Run a ``Locator`` over a fixed set of answers (missing questions answer nothing)."""
    locator = Locator(uri, transport, rng or random.Random())
    return resolve_with(locator, lambda q: records.get(q, []))


def resolve_with(locator: Locator, ask: Callable[[Query], Records]) -> list[Target]:
    """Drive ``locator`` with a synchronous ``ask`` (tests and the fixed-record case)."""
    while (query := locator.next_query()) is not None:
        locator.answer(query, ask(query))
    return locator.targets()


def order_srv(records: list[Srv], rng: random.Random) -> list[Srv]:
    """RFC 2782 "Usage rules": by priority; within a priority, a weighted random draw each time."""
    result: list[Srv] = []
    for priority in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    result.append(group.pop(index))
                    break
    return result


def _srv_transport(name: str) -> str:
    for transport, prefix in SRV_PREFIX.items():
        if name.startswith(prefix + "."):
            return transport
    return "udp"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
