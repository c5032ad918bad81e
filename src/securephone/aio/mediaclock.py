"""One media clock for every call on an event loop: one timer per tick, not one per call.

Each call (a :class:`Ticker`) keeps its own send grid, packet n due at ``start + n * ptime``,
so its schedule never drifts and calls with other ptimes stay on their own grid. The clock
files every call under the :data:`GRID` slot its next packet falls in and arms a single
``loop.call_at`` for the earliest slot; when it fires it runs every call whose packet is due,
each reading the time itself (so a call's lateness includes the work done before it in the
same tick). New calls start in the least loaded of the next 20 ms worth of slots, so a tick
carries a share of the calls rather than all of them, and asyncio's timer heap holds one entry
instead of one per call.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Protocol

GRID = 0.002  # seconds between slots
PHASES = 10  # slots per 20 ms: where new calls are spread
_EPSILON = 1e-6  # in slots: float noise of "start + n * ptime"


class Ticker(Protocol):
    """One call's media: does one packet time's work and says when the next is due."""

    def tick(self) -> float | None:
        """Run the work of the packet due now; the next due time, or None to stop."""


class MediaClock:
    """The shared media timer of one event loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoch = loop.time()
        self._slots: dict[int, list[Ticker]] = {}
        self._slot_of: dict[Ticker, int] = {}
        self._phase_of: dict[Ticker, int] = {}
        self._load = [0] * PHASES
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None
        self.ticks = 0  # timer callbacks run (each serves every call due)

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> MediaClock:
        """The clock shared by every call on ``loop`` (created on first use)."""
        clock = _CLOCKS.get(loop)
        if clock is None:
            clock = _CLOCKS[loop] = cls(loop)
        return clock

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, ticker: Ticker, now: float) -> float:
        """Register a call; returns its grid start (a slot within 20 ms of ``now``)."""
        first = math.ceil((now - self._epoch) / GRID - _EPSILON)
        slot = min(range(first, first + PHASES), key=lambda s: self._load[s % PHASES])
        self._phase_of[ticker] = slot % PHASES
        self._load[slot % PHASES] += 1
        start = self._epoch + slot * GRID
        self._file(ticker, slot)
        self._arm()
        return start

    def remove(self, ticker: Ticker) -> None:
        """Stop ticking ``ticker`` (idempotent)."""
        slot = self._slot_of.pop(ticker, None)
        tickers = self._slots.get(slot) if slot is not None else None
        if tickers is not None and ticker in tickers:  # not when its slot is being run
            tickers.remove(ticker)
            if not tickers:
                del self._slots[slot]  # type: ignore[arg-type]
        phase = self._phase_of.pop(ticker, None)
        if phase is not None:
            self._load[phase] -= 1
        if not self._slots and self._handle is not None:
            self._handle.cancel()
            self._handle = self._armed = None

    def _file(self, ticker: Ticker, slot: int) -> None:
        self._slot_of[ticker] = slot
        self._slots.setdefault(slot, []).append(ticker)

    def _slot(self, due: float) -> int:
        return math.ceil((due - self._epoch) / GRID - _EPSILON)

    def _arm(self) -> None:
        if not self._slots:
            return
        first = min(self._slots)
        if self._armed is not None and self._armed <= first:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed = first
        self._handle = self._loop.call_at(self._epoch + first * GRID, self._run)

    def _run(self) -> None:
        self._handle = self._armed = None
        self.ticks += 1
        epoch, slots, slot_of = self._epoch, self._slots, self._slot_of
        limit = math.floor((self._loop.time() - epoch) / GRID + _EPSILON)
        for slot in sorted(s for s in slots if s <= limit):
            for ticker in slots.pop(slot, []):
                if slot_of.get(ticker) != slot:
                    continue  # removed while this tick ran
                due = ticker.tick()
                if due is None or ticker not in slot_of:
                    self.remove(ticker)
                    continue
                following = math.ceil((due - epoch) / GRID - _EPSILON)  # as _slot(due)
                slot_of[ticker] = following
                tickers = slots.get(following)
                if tickers is None:
                    slots[following] = [ticker]
                else:
                    tickers.append(ticker)
        self._arm()


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock] = (
    weakref.WeakKeyDictionary()
)
