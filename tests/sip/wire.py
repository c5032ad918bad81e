"""Test helpers: SIP endpoints wired together in memory with a fake clock, and request builders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from securephone.sip.endpoint import SipEndpoint, new_branch, new_tag
from securephone.sip.events import Event
from securephone.sip.message import Headers, Request
from securephone.sip.transaction import make_via
from securephone.sip.transport import Outgoing, Peer
from securephone.sip.uri import SipUri


def build_request(
    method: str,
    *,
    transport: str = "udp",
    host: str = "127.0.0.1",
    port: int = 5070,
    target: str = "sip:bob@127.0.0.1:5080",
    cseq: int = 1,
) -> Request:
    """A minimal valid request (RFC 3261 §8.1.1) with a fresh branch."""
    headers = Headers()
    headers.add("Via", str(make_via(transport, host, port, new_branch())))
    headers.add("From", f"<sip:alice@127.0.0.1>;tag={new_tag()}")
    headers.add("To", "<sip:bob@127.0.0.1>")
    headers.add("Call-ID", new_tag() + "@test")
    headers.add("CSeq", f"{cseq} {method}")
    headers.add("Max-Forwards", "70")
    return Request(method, SipUri.parse(target), headers)


class FakeClock:
    """Time that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0


@dataclass
class Node:
    """One endpoint on the fake network."""

    name: str
    endpoint: SipEndpoint
    peer: Peer  # how others see it
    events: list[Event] = field(default_factory=list)
    sent: list[tuple[float, Outgoing]] = field(default_factory=list)


Drop = Callable[[Node, Outgoing], bool]


class Wire:
    """Delivers what each endpoint sends to the node at the destination port, unless ``drop`` says no."""

    def __init__(self, transport: str = "udp") -> None:
        self.clock = FakeClock()
        self.transport = transport
        self.nodes: dict[int, Node] = {}
        self.drop: Drop = lambda node, out: False

    def add(self, name: str, port: int) -> Node:
        node = Node(name, SipEndpoint(), Peer(self.transport, "127.0.0.1", port))
        self.nodes[port] = node
        return node

    def flush(self) -> int:
        """Move messages until the network is quiet; returns how many were delivered."""
        delivered = 0
        moved = True
        while moved:
            moved = False
            for node in list(self.nodes.values()):
                node.events.extend(iter(node.endpoint.next_event, None))
                for out in node.endpoint.outgoing():
                    node.sent.append((self.clock.now, out))
                    moved = True
                    if self.drop(node, out):
                        continue
                    dest = self.nodes[out.peer.port]
                    dest.endpoint.receive_datagram(out.data, node.peer, self.clock.now)
                    delivered += 1
        for node in self.nodes.values():
            node.events.extend(iter(node.endpoint.next_event, None))
        return delivered

    def run_until(self, end: float) -> None:
        """Advance the clock timer by timer up to ``end``, flushing after each."""
        self.flush()
        while True:
            deadlines = [
                t for n in self.nodes.values() if (t := n.endpoint.get_timer()) is not None
            ]
            due = min(deadlines, default=None)
            if due is None or due > end:
                break
            self.clock.now = max(self.clock.now, due)
            for node in self.nodes.values():
                node.endpoint.handle_timer(self.clock.now)
            self.flush()
        self.clock.now = end
