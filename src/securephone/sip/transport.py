"""Transport-level names shared by the sans-I/O core and the asyncio shell (RFC 3261 §18)."""

from __future__ import annotations

from dataclasses import dataclass, field

RELIABLE = frozenset({"tcp", "tls"})


@dataclass(frozen=True)
class Peer:
    """Where a message came from or goes to; ``conn`` names the stream connection when there is one."""

    transport: str  # "udp", "tcp" or "tls"
    host: str
    port: int
    conn: int | None = None
    # The name the TLS certificate must show (RFC 5922 §4): the SIP domain when DNS SRV chose the
    # host; None means ``host`` itself. Not part of the peer's identity.
    server_name: str | None = field(default=None, compare=False)

    @property
    def reliable(self) -> bool:
        """True for stream transports, which get no retransmissions (RFC 3261 §17.1.1.2)."""
        return self.transport in RELIABLE

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True)
class Outgoing:
    """Bytes the shell must send to ``peer`` (over connection ``peer.conn`` when it is set)."""

    data: bytes
    peer: Peer
