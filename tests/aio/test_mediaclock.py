"""The shared media clock: one timer for many calls, each call on its own ptime grid."""

from __future__ import annotations

import asyncio

from securephone.aio.mediaclock import PHASES, MediaClock


class FakeCall:
    """A ticker on its own grid: records when each packet time ran against when it was due."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ptime: float, packets: int) -> None:
        self.loop = loop
        self.ptime = ptime
        self.packets = packets
        self.start = 0.0
        self.runs: list[tuple[float, float]] = []  # (due, ran at)
        self.done: asyncio.Future[None] = loop.create_future()

    def tick(self) -> float | None:
        due = self.start + len(self.runs) * self.ptime
        self.runs.append((due, self.loop.time()))
        if len(self.runs) == self.packets:
            self.done.set_result(None)
            return None
        return self.start + len(self.runs) * self.ptime


async def test_calls_with_other_ptimes_keep_their_own_grid() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop)
    calls = [FakeCall(loop, ptime, 6) for ptime in (0.010, 0.020, 0.030)]
    for call in calls:
        call.start = clock.add(call, loop.time())
    await asyncio.wait_for(asyncio.gather(*(c.done for c in calls)), 10)
    for call in calls:
        dues = [due for due, _ in call.runs]
        assert dues == [call.start + n * call.ptime for n in range(6)]
        assert all(ran >= due - 1e-9 for due, ran in call.runs)  # never early
    assert len(clock) == 0  # finished calls leave the clock


async def test_one_timer_serves_several_calls_spread_over_the_phases() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop)
    now = loop.time()
    calls = [FakeCall(loop, 0.020, 5) for _ in range(2 * PHASES)]
    starts = [clock.add(call, now) for call in calls]
    for call, start in zip(calls, starts, strict=True):
        call.start = start
        assert now <= start < now + 0.020 + 1e-9
    assert len(set(starts)) == PHASES  # two calls per slot, every slot used
    await asyncio.wait_for(asyncio.gather(*(c.done for c in calls)), 10)
    runs = sum(len(c.runs) for c in calls)
    assert clock.ticks <= runs // 2  # every timer callback ran at least two calls


async def test_a_call_removed_in_another_call_s_tick_is_not_run_again() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop)
    victim = FakeCall(loop, 0.020, 100)

    class Closer(FakeCall):
        def tick(self) -> float | None:
            clock.remove(victim)
            return super().tick()

    closer = Closer(loop, 0.020, 3)
    now = loop.time()
    closer.start = clock.add(closer, now)
    victim.start = clock.add(victim, now)
    await asyncio.wait_for(closer.done, 10)
    assert len(victim.runs) <= 1  # at most the run before the first removal
    assert len(clock) == 0
