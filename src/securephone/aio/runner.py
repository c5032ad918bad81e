"""Headless call runs for the CLI and test rigs: place one call, or answer N calls, then summarise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securephone.aio.call import Call
from securephone.aio.phone import Phone, PhoneError
from securephone.aio.sound import CallAudio, is_device, ringer_for
from securephone.audio.sinks import AudioSink, NullSink, WavRecorder
from securephone.audio.sources import AudioSource, SilenceSource, open_source
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState
from securephone.store.config import Config

MAX_KEPT_SUMMARIES = 1000  # `answer --calls 0`: the newest call summaries returned

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallOptions:
    """What to do with each call: audio in and out, length, digits."""

    play: str | None = None  # a WAV file, tone:..., silence, or device[:NAME]
    record: Path | None = None  # a WAV file, or device[:NAME]
    duration: float | None = None
    dtmf: str | None = None


def _record_path(base: Path, index: int, many: bool) -> Path:
    return base if not many else base.with_name(f"{base.stem}-{index}{base.suffix}")


def _install_audio(phone: Phone, options: CallOptions, many: bool) -> CallAudio | None:
    """Sources and sinks for the calls; the sound devices when a call uses one."""
    counter = {"n": 0}
    record = str(options.record) if options.record is not None else None
    devices = CallAudio.from_settings(phone.config.audio, options.play, record)
    if is_device(options.play) or is_device(record):
        ringer = ringer_for(phone.config.audio)
        if ringer is not None:
            phone.add_listener(ringer.on_event)

    def source(call: Call) -> AudioSource:
        if is_device(options.play):
            return devices.source(call)
        return open_source(options.play) if options.play else SilenceSource()

    def sink(call: Call) -> AudioSink:
        if is_device(record):
            return devices.sink(call)
        if options.record is None:
            return NullSink()
        counter["n"] += 1
        return WavRecorder(_record_path(options.record, counter["n"], many))

    phone.source_factory = source
    phone.sink_factory = sink
    return devices if is_device(options.play) or is_device(record) else None


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def finish_summary(
    call: Call, error: str | None = None, devices: CallAudio | None = None
) -> dict[str, Any]:
    """The call's summary plus ``ok`` (answered and ended cleanly) and the error line, if any;
    with sound devices, their buffer figures for this call and any device error."""
    summary = call.summary()
    if devices is not None:
        summary["audio_devices"] = {**devices.stats(call), "errors": list(devices.errors)}
    clean = call.ending is not None and call.ending.ok
    summary["ok"] = error is None and call.answered and clean
    if not summary["ok"]:
        summary["error"] = error or _error_text(call)
    return summary


def _error_text(call: Call) -> str:
    if not call.answered:
        return f"not answered: {call.reason}" if call.reason else "not answered"
    return f"did not end cleanly: {call.reason}"


async def _registered(phone: Phone, account: str | None) -> str | None:
    """Wait for the account's registration when it registers; an error line if it failed."""
    if account is None or phone.ua is None:
        return None
    reg = phone.ua.registrations.get(account)
    if reg is None:
        return f"no account named {account!r}"
    if not phone.ua.accounts[account].register:
        return None
    states = (RegState.REGISTERED, RegState.FAILED)
    try:
        state = await phone.wait_registration(account, states, 15)
    except TimeoutError:
        return "registration did not finish within 15 s"
    return None if state is RegState.REGISTERED else f"registration failed: {reg.reason}"


async def _run_call(call: Call, options: CallOptions, stop: asyncio.Event) -> None:
    """From answer to end: DTMF, then hang up after the duration, on a signal, or when the far end does."""
    if options.dtmf:
        call.send_dtmf(options.dtmf)
    ended = asyncio.ensure_future(call.wait_ended())
    stopper = asyncio.ensure_future(stop.wait())
    timeout = options.duration
    done, _ = await asyncio.wait(
        {ended, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    stopper.cancel()
    if ended not in done:
        call.hangup()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended, 40)
    ended.cancel()


async def place_call(
    config: Config, uri: str, account: str | None, options: CallOptions, ring_timeout: float
) -> dict[str, Any]:
    """Place one call and return its summary (``ok`` says whether it succeeded)."""
    phone = Phone(config)
    devices = _install_audio(phone, options, many=False)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await phone.start()
    try:
        return await _place(phone, uri, account, options, ring_timeout, stop, devices)
    finally:
        await phone.stop()


async def _place(
    phone: Phone,
    uri: str,
    account: str | None,
    options: CallOptions,
    ring_timeout: float,
    stop: asyncio.Event,
    devices: CallAudio | None = None,
) -> dict[str, Any]:
    error = await _registered(phone, account)
    if error is not None:
        return {"ok": False, "state": "not started", "error": error}
    try:
        await phone.locate(uri, account)  # RFC 3263: NAPTR/SRV servers of the next hop
        call = phone.dial(uri, account=account, ring_timeout=ring_timeout)
    except PhoneError as exc:
        return {"ok": False, "state": "not started", "error": str(exc)}
    await call.wait_for(CallState.CONNECTED)  # the core ends an unanswered call at ring_timeout
    if call.state is CallState.CONNECTED:
        await _run_call(call, options, stop)
    return finish_summary(call, devices=devices)


async def answer_calls(config: Config, count: int, options: CallOptions) -> list[dict[str, Any]]:
    """Answer ``count`` calls (0 = until SIGINT/SIGTERM) and return their summaries.

    Each call is summarised when it ends and then let go (it holds its INVITE and media state):
    answering until stopped, the newest ``MAX_KEPT_SUMMARIES`` are returned, and failures among
    the older ones are one summary that counts them.
    """
    config.calls.auto_answer = True
    phone = Phone(config)
    devices = _install_audio(phone, options, many=count != 1)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    runs: dict[asyncio.Task[None], Call] = {}  # calls being answered or under way
    summaries = KeptSummaries()  # of ended calls
    unfinished: list[Call] = []  # runs cut short by a stop: summarised once the phone stopped
    taken = 0

    def run_ended(task: asyncio.Task[None]) -> None:
        call = runs.pop(task)
        if call.ended:  # else the phone's stop ends it, and it is summarised after that
            summaries.add(finish_summary(call, devices=devices))
        else:
            unfinished.append(call)

    def incoming(call: Call) -> None:
        nonlocal taken
        if count and taken >= count:
            call.reject(486)
            return
        taken += 1
        task = asyncio.ensure_future(_answered(call, options, stop))
        runs[task] = call
        task.add_done_callback(run_ended)

    phone.on_incoming = incoming
    await phone.start()
    try:
        await _until_done(runs, lambda: bool(count) and taken >= count and not runs, stop)
    finally:
        await phone.stop()
    for call in [*unfinished, *runs.values()]:
        summaries.add(finish_summary(call, devices=devices))
    return summaries.result()


class KeptSummaries:
    """The newest ``limit`` call summaries; a failure among those let go is still counted, so
    the result says that not every call succeeded."""

    def __init__(self, limit: int = MAX_KEPT_SUMMARIES) -> None:
        self._kept: deque[dict[str, Any]] = deque(maxlen=max(1, limit))
        self.dropped_failures = 0

    def add(self, summary: dict[str, Any]) -> None:
        if len(self._kept) == self._kept.maxlen and not self._kept[0].get("ok"):
            self.dropped_failures += 1
        self._kept.append(summary)

    def result(self) -> list[dict[str, Any]]:
        """Oldest first; led by one failed entry that counts the failures no longer kept."""
        if self.dropped_failures:
            error = f"{self.dropped_failures} earlier calls failed (their summaries were not kept)"
            return [{"ok": False, "error": error}, *self._kept]
        return list(self._kept)


async def _answered(call: Call, options: CallOptions, stop: asyncio.Event) -> None:
    await call.wait_for(CallState.CONNECTED)
    if call.state is CallState.CONNECTED:
        await _run_call(call, options, stop)


async def _until_done(
    runs: dict[asyncio.Task[None], Call], finished: Callable[[], bool], stop: asyncio.Event
) -> None:
    """Until ``finished()`` or a stop; wakes when a call's run ends (never on one that has)."""
    while not stop.is_set() and not finished():
        waiter = asyncio.ensure_future(stop.wait())
        pending = {task for task in runs if not task.done()}
        await asyncio.wait({waiter, *pending}, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
