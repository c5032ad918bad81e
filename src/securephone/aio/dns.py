"""Asks DNS for the records the RFC 3263 locator wants (dnspython's asyncio resolver), with a cache.

The order of servers is decided by the core (``sip/locate.py``); this module only runs the
queries: the system resolver, or the servers and port of ``[dns]``. Answers are kept as long as
their TTL says (RFC 1035 §3.2.1) and reported through ``on_answer`` for the SIP trace and the log.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from securephone.sip.locate import Address, Locator, Naptr, Query, Records, Srv, Target
from securephone.sip.uri import SipUri
from securephone.store.config import DnsSettings

if TYPE_CHECKING:  # dnspython loads on the first query: a call to an IP address needs none
    import dns.asyncresolver
    import dns.resolver

log = logging.getLogger(__name__)

AnswerCallback = Callable[[str], None]


@dataclass
class Located:
    """What the phone found for one host: the ordered targets and when to ask again."""

    uri: str
    targets: list[Target]
    expires: float
    lines: list[str] = field(default_factory=list)


class SipResolver:
    """RFC 3263 lookups over a real resolver, answers cached for their TTL."""

    def __init__(
        self,
        settings: DnsSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._cache: dict[Query, tuple[float, Records]] = {}
        self.on_answer: AnswerCallback | None = None
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _dns(self) -> dns.asyncresolver.Resolver:
        """The dnspython resolver, made (and dnspython imported) on the first query."""
        if self._resolver is None:
            import dns.asyncresolver

            settings = self.settings
            resolver = dns.asyncresolver.Resolver(configure=not settings.servers)
            if settings.servers:
                resolver.nameservers = list(settings.servers)
                resolver.port = settings.port
            resolver.lifetime = settings.timeout
            self._resolver = resolver
        return self._resolver

    async def locate(self, uri: SipUri, transport: str | None = None) -> Located:
        """The ordered servers for ``uri`` (raises ``LocateError`` when there are none)."""
        locator = Locator(uri, transport, self._rng)
        lines: list[str] = []
        while (query := locator.next_query()) is not None:
            records = await self._ask(query)
            lines.append(_describe(query, records))
            locator.answer(query, records)
        targets = locator.targets()
        ttl = min((t.ttl for t in targets), default=0)
        lines.append(f"{uri}: " + ", ".join(str(t) for t in targets))
        for line in lines:
            log.info("DNS %s", line)
            if self.on_answer is not None:
                self.on_answer(line)
        return Located(str(uri), targets, self._clock() + ttl, lines)

    async def _ask(self, query: Query) -> Records:
        now = self._clock()
        cached = self._cache.get(query)
        if cached is not None and cached[0] > now:
            return cached[1]
        resolver = self._dns()
        import dns.exception
        import dns.resolver

        try:
            answer = await resolver.resolve(query.name, query.rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            self._cache[query] = (now + 30, [])  # negative answers: a short while (RFC 2308)
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            log.warning("DNS %s %s failed: %s", query.rdtype, query.name, exc)
            return []
        ttl = answer.rrset.ttl if answer.rrset is not None else 0
        records = _convert(query.rdtype, answer, ttl)
        self._cache[query] = (now + ttl, records)
        return records


def _convert(rdtype: str, answer: dns.resolver.Answer, ttl: int) -> Records:
    if rdtype == "NAPTR":
        return [
            Naptr(
                r.order,
                r.preference,
                r.flags.decode(),
                r.service.decode(),
                r.replacement.to_text(omit_final_dot=True),
                ttl,
            )
            for r in answer
        ]
    if rdtype == "SRV":
        return [
            Srv(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True), ttl)
            for r in answer
        ]
    return [Address(r.address, ttl) for r in answer]


def _describe(query: Query, records: Records) -> str:
    if not records:
        return f"{query.rdtype} {query.name}: no records"
    return f"{query.rdtype} {query.name}: " + "; ".join(_record_text(r) for r in records)


def _record_text(record: Naptr | Srv | Address) -> str:
    if isinstance(record, Naptr):
        return f"{record.order} {record.preference} {record.service} {record.replacement}"
    if isinstance(record, Srv):
        return f"{record.priority} {record.weight} {record.port} {record.target}"
    return record.address
