"""The policy of SIP stream connections (TCP/TLS flows), sans-I/O: keep-alive, timeouts, limits.

The shell reports what happens on each connection (opened, bytes parsed, closed) with ``now``;
this table says when to ping and when to close, as commands, and when it next needs the clock
(``get_timer()`` / ``handle_timer(now)``).

- RFC 5626 §4.4.1: on flows we opened, a CRLFCRLF ping every ``keepalive_interval``; no CRLF pong
  by the next ping means the flow is dead and is closed (the registration then recovers). A flow
  whose registrar gave a Flow-Timer is pinged at 80-100 % of it, chosen at random for each ping
  (``set_keepalive``).
- A stranger must not hold connections for free: a connection that has not completed a SIP
  message within ``first_message_timeout``, a message begun and not finished within
  ``message_timeout`` (half a header, a Content-Length never sent, one byte every two seconds),
  or (on accepted connections) no bytes at all for ``idle_timeout`` is closed; beyond ``max_connections``
  in all, or ``max_per_address`` from one address, new incoming connections are refused.
- Nor make us hold connections: a call's far end names where our requests go (Contact,
  Record-Route), so beyond ``max_dialled`` connections we opened, the least recently used one
  that never carried a REGISTER is closed (a registration's flow must stay: RFC 5626).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger(__name__)


class FlowAction(Enum):
    PING = "ping"  # write CRLFCRLF
    CLOSE = "close"


@dataclass(frozen=True)
class FlowCommand:
    """What the shell must do to connection ``conn`` now."""

    conn: int
    action: FlowAction
    reason: str = ""


@dataclass(frozen=True)
class FlowLimits:
    """Timeouts (seconds) and the connection limit; 0 turns keep-alive off."""

    keepalive_interval: float = 0.0
    first_message_timeout: float = 32.0  # 64*T1, the life of a transaction
    message_timeout: float = 32.0
    idle_timeout: float = 900.0
    max_connections: int = 256
    max_per_address: int = 32  # accepted connections from one IP address
    max_dialled: int = 64  # connections we opened; beyond, the least recently used one goes


@dataclass
class _Flow:
    dialled: bool  # we opened it (keep-alive applies) or accepted it
    host: str | None
    opened_at: float
    last_rx: float
    messages: int = 0
    partial_since: float | None = None
    awaiting_pong: bool = False
    next_ping: float | None = None
    interval: float | None = None  # a registrar's Flow-Timer for this flow, else the limits'
    last_used: float = 0.0  # a SIP message sent or received
    registration: bool = False  # a REGISTER went over it: never closed to make room

    def deadline(self, limits: FlowLimits) -> tuple[float, str]:
        """The earliest time this flow must be closed, and why."""
        times = [(float("inf"), "")]
        if not self.dialled:  # our own flows carry registrations; keep-alive watches them
            times.append((self.last_rx + limits.idle_timeout, "idle"))
        if self.partial_since is not None:
            times.append((self.partial_since + limits.message_timeout, "incomplete message"))
        if not self.dialled and self.messages == 0:
            times.append((self.opened_at + limits.first_message_timeout, "no SIP message"))
        return min(times)


class FlowTable:
    """Every stream connection of one phone, and the rules above."""

    def __init__(self, limits: FlowLimits | None = None, rng: random.Random | None = None) -> None:
        self.limits = limits or FlowLimits()
        self._rng = rng or random.Random()
        self._flows: dict[int, _Flow] = {}
        self.accepted = 0  # open connections others made to us (the limited kind)
        self.refused = 0
        self._per_host: dict[str, int] = {}  # accepted connections per remote address

    def __len__(self) -> int:
        return len(self._flows)

    def opened(self, conn: int, *, dialled: bool, now: float, host: str | None = None) -> bool:
        """A connection is up; False when an accepted one is over a limit (close it at once).

        Accepted connections are limited in all (``max_connections``) and per remote address
        (``max_per_address``), so one host cannot take every slot.
        """
        if not dialled and not self._room_for(host):
            self.refused += 1
            return False
        if not dialled:
            self.accepted += 1
            if host is not None:
                self._per_host[host] = self._per_host.get(host, 0) + 1
        flow = _Flow(dialled, host, now, now, last_used=now)
        if dialled and self.limits.keepalive_interval > 0:
            flow.next_ping = now + self.limits.keepalive_interval
        self._flows[conn] = flow
        return True

    def sent(self, conn: int, now: float, *, register: bool = False) -> None:
        """A SIP message went out on ``conn`` (``register``: a REGISTER, so it is a flow)."""
        flow = self._flows.get(conn)
        if flow is not None:
            flow.last_used = now
            flow.registration = flow.registration or register

    def overflow(self) -> list[FlowCommand]:
        """Closes that make room when more than ``max_dialled`` connections we opened are up:
        the least recently used ones that carry no registration (forgotten here)."""
        dialled = [(f.last_used, c) for c, f in self._flows.items() if f.dialled]
        spare = sorted((used, c) for used, c in dialled if not self._flows[c].registration)
        commands = []
        for _, conn in spare[: max(0, len(dialled) - self.limits.max_dialled)]:
            commands.append(FlowCommand(conn, FlowAction.CLOSE, "too many connections we opened"))
            self._forget(conn)
        return commands

    def received(
        self, conn: int, now: float, *, messages: int, partial: bool, pongs: int = 0
    ) -> None:
        """Bytes arrived and were parsed: ``messages`` complete ones, ``partial`` bytes left over."""
        flow = self._flows.get(conn)
        if flow is None:
            return
        flow.last_rx = now
        flow.messages += messages
        if messages:
            flow.last_used = now
        if pongs:
            flow.awaiting_pong = False
        if not partial:
            flow.partial_since = None
        elif messages or flow.partial_since is None:
            flow.partial_since = now  # a new message has begun

    def closed(self, conn: int) -> None:
        self._forget(conn)

    def set_keepalive(self, conn: int, seconds: float | None, now: float) -> bool:
        """Ping dialled flow ``conn`` at least every ``seconds`` (a registrar's Flow-Timer, RFC
        5626 §4.4.1): each ping 80-100 % of it after the last, and the next one no later than
        that from now. None: back to ``keepalive_interval``. False when there is no such flow.
        """
        flow = self._flows.get(conn)
        if flow is None or not flow.dialled:
            return False
        if seconds == flow.interval:
            return True
        flow.interval = seconds
        step = self._step(flow)
        if step <= 0:
            flow.next_ping = None
        elif flow.next_ping is None or now + step < flow.next_ping:
            flow.next_ping = now + step
        return True

    def keepalive_of(self, conn: int) -> float | None:
        """The Flow-Timer a flow is pinged by (``set_keepalive``), None for the configured one."""
        flow = self._flows.get(conn)
        return None if flow is None else flow.interval

    def _step(self, flow: _Flow) -> float:
        """Seconds to the next ping (0: none)."""
        if flow.interval:
            return flow.interval * self._rng.uniform(0.8, 1.0)
        return self.limits.keepalive_interval

    def _room_for(self, host: str | None) -> bool:
        if self.accepted >= self.limits.max_connections:
            return False
        return host is None or self._per_host.get(host, 0) < self.limits.max_per_address

    def from_address(self, host: str) -> int:
        """Accepted connections open from ``host``."""
        return self._per_host.get(host, 0)

    def _forget(self, conn: int) -> None:
        flow = self._flows.pop(conn, None)
        if flow is None or flow.dialled:
            return
        self.accepted -= 1
        if flow.host is not None:
            left = self._per_host.get(flow.host, 1) - 1
            if left:
                self._per_host[flow.host] = left
            else:
                self._per_host.pop(flow.host, None)

    def get_timer(self) -> float | None:
        """The earliest deadline of any flow."""
        times = [flow.deadline(self.limits)[0] for flow in self._flows.values()]
        times += [f.next_ping for f in self._flows.values() if f.next_ping is not None]
        due = min(times, default=float("inf"))
        return None if due == float("inf") else due

    def handle_timer(self, now: float) -> list[FlowCommand]:
        """Pings and closes that are due (a closed flow is forgotten here)."""
        commands: list[FlowCommand] = []
        for conn, flow in list(self._flows.items()):
            command = self._due(conn, flow, now)
            if command is not None:
                commands.append(command)
                if command.action is FlowAction.CLOSE:
                    self._forget(conn)
        return commands

    def _due(self, conn: int, flow: _Flow, now: float) -> FlowCommand | None:
        at, why = flow.deadline(self.limits)
        if now >= at:
            return FlowCommand(conn, FlowAction.CLOSE, why)
        if flow.next_ping is None or now < flow.next_ping:
            return None
        if flow.awaiting_pong:
            return FlowCommand(conn, FlowAction.CLOSE, "no keep-alive pong")
        flow.awaiting_pong = True
        flow.next_ping = now + self._step(flow)
        return FlowCommand(conn, FlowAction.PING)
