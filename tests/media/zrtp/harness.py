"""Two (or more) ZRTP sessions wired together in memory with a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.events import Event, SecureOn, ZrtpFailed
from securephone.media.zrtp.session import State, ZrtpConfig, ZrtpSession

# A filter sees (sender name, datagram) and returns the datagrams to deliver (drop = []).
Filter = Callable[[str, bytes], list[bytes]]


def passthrough(_sender: str, datagram: bytes) -> list[bytes]:
    return [datagram]


@dataclass
class Endpoint:
    name: str
    session: ZrtpSession
    events: list[Event] = field(default_factory=list)

    def drain(self) -> None:
        while (event := self.session.next_event()) is not None:
            self.events.append(event)

    def of(self, kind: type) -> list[object]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def secure(self) -> SecureOn:
        (event,) = self.of(SecureOn)
        assert isinstance(event, SecureOn)
        return event

    @property
    def failure(self) -> ZrtpFailed:
        (event,) = self.of(ZrtpFailed)
        assert isinstance(event, ZrtpFailed)
        return event


def endpoint(
    name: str, cache: ZrtpCache | None = None, config: ZrtpConfig | None = None, ssrc: int = 0
) -> Endpoint:
    session = ZrtpSession(
        config or ZrtpConfig(), cache or ZrtpCache.new(), ssrc or hash(name) & 0xFFFFFFF
    )
    return Endpoint(name, session)


@dataclass
class Wire:
    """Delivers each side's datagrams to the other; advances a fake clock to the next timer."""

    a: Endpoint
    b: Endpoint
    link: Filter = passthrough
    now: float = 100.0
    sent: dict[str, list[bytes]] = field(default_factory=lambda: {"a": [], "b": []})

    def start(self, stagger: float = 0.0) -> None:
        self.a.session.start(self.now)
        self.now += stagger
        self.b.session.start(self.now)

    def run(self, limit: float = 60.0) -> None:
        """Exchange until both sides are done (SECURE/FAILED, no pending timer) or ``limit``."""
        end = self.now + limit
        while self.now < end:
            if self.step():
                continue
            timers = [
                t for s in (self.a.session, self.b.session) if (t := s.get_timer()) is not None
            ]
            if not timers:
                break
            self.now = max(self.now, min(timers))
            for side in (self.a, self.b):
                timer = side.session.get_timer()
                if timer is not None and timer <= self.now:
                    side.session.handle_timer(self.now)
        self.a.drain()
        self.b.drain()

    def step(self) -> bool:
        """Deliver what is queued, one side after the other; True if anything moved."""
        moved = False
        for src, dst, tag in ((self.a, self.b, "a"), (self.b, self.a, "b")):
            for datagram in src.session.datagrams_to_send():
                moved = True
                self.sent[tag].append(datagram)
                for delivered in self.link(tag, datagram):
                    dst.session.receive(delivered, (src.name, 0), self.now)
            src.drain()
        return moved


def both_secure(wire: Wire) -> bool:
    return wire.a.session.state is State.SECURE and wire.b.session.state is State.SECURE
