"""Two Phones in one process, each with a microphone and a speaker on sound devices: A calls B.

Run by ``test_devices_pulseaudio.py`` as a subprocess (PortAudio reads the ALSA configuration,
the test HOME's ``.asoundrc``, once when it starts). Arguments: ``DATA_DIR BUFFER_MS CODEC``.
The devices are the ALSA PCMs ``amic``/``aspk`` (phone A) and ``bmic``/``bspk`` (phone B).

From the first statistics line on, every half second one line of all four rings' figures
(time, depth, smoothed depth, edge and drift counters) goes to ``DATA_DIR/depth.jsonl``: the
depth over time, for the drift test and for anyone reading a failure.

It prints one JSON line when the call is connected and both phones' device streams are running,
then answers one line on stdout per command line read on stdin:

* ``stats`` → both phones' device statistics (``CallAudio.stats``: ring depth, underruns,
  overruns, samples through each side);
* ``mute`` / ``unmute`` → both microphones muted or not, then the statistics;
* ``hangup`` → A hangs up; the last statistics, then the process exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.aio.sound import CallAudio
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until

MEDIA_PORTS = {"a": (58000, 58499), "b": (58500, 58999)}  # the sound tests' block
SAMPLE_EVERY = 0.5  # seconds between two lines of depth.jsonl


def phone(data: Path, name: str, buffer_ms: int, codec: str) -> tuple[Phone, CallAudio]:
    """A phone on 127.0.0.1 (plain RTP, ``codec`` only) whose calls use ``{name}mic`` /
    ``{name}spk``."""
    low, high = MEDIA_PORTS[name]
    config = parse_config(
        {
            "data_dir": str(data / name),
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"srtp": "off", "codecs": [codec], "port_min": low, "port_max": high},
            "calls": {"auto_answer": name == "b"},
            "audio": {
                "input": f"{name}mic",
                "output": f"{name}spk",
                "buffer_ms": buffer_ms,
                "ring_tone": False,
                "on_device_error": "fail",
            },
        }
    )
    ph = Phone(config)
    audio = CallAudio.from_settings(config.audio)
    ph.source_factory = audio.source
    ph.sink_factory = audio.sink
    return ph, audio


def settled(figures: dict[str, Any]) -> bool:
    """A ring whose band has been centred where its depth settled (about 2 s after the start),
    with the smoothed depth in it and nothing being corrected."""
    average = figures["average_depth_ms"]
    low, high = figures["band_ms"]
    if not figures["drift_settled"] or figures["drift_correcting"]:
        return False
    return average is not None and low <= average <= high


def flowing(audio: CallAudio, call: Call) -> bool:
    """Both device streams are past their start: the microphone has captured two seconds of
    samples, the speaker played two seconds, and both rings have settled in their band (ALSA's
    pulse plugin takes a second or two to start, and delivers unevenly at first)."""
    stats: dict[str, Any] = audio.stats(call)
    if "input" not in stats or "output" not in stats:
        return False
    mic, speaker = stats["input"], stats["output"]
    return (
        mic["samples_in"] >= 2 * mic["device_rate"]
        and speaker["samples_out"] >= 2 * speaker["device_rate"]
        and settled(mic)
        and settled(speaker)
    )


async def sample_depths(path: Path, stats: Callable[[], dict[str, Any]]) -> None:
    """Every ``SAMPLE_EVERY`` seconds, one JSON line of the rings' figures into ``path``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    with path.open("w") as out:
        while True:
            out.write(json.dumps({"t": round(loop.time() - start, 3), **stats()}) + "\n")
            out.flush()
            await asyncio.sleep(SAMPLE_EVERY)


async def main(data: Path, buffer_ms: int, codec: str) -> None:
    a, audio_a = phone(data, "a", buffer_ms, codec)
    b, audio_b = phone(data, "b", buffer_ms, codec)
    sampler: asyncio.Task[None] | None = None
    await a.start()
    await b.start()
    try:
        call = a.dial(f"sip:b@{b.status()['listen']['udp']}")
        await call.wait_for(CallState.CONNECTED, timeout=20)
        theirs = await await_until(lambda: next(iter(b.calls.values()), None), 10)

        def both() -> dict[str, Any]:
            return {"a": audio_a.stats(call), "b": audio_b.stats(theirs)}

        def report(**extra: Any) -> None:
            print(json.dumps({**both(), **extra}), flush=True)

        await await_until(lambda: flowing(audio_a, call) and flowing(audio_b, theirs), 30)
        sampler = asyncio.create_task(sample_depths(data / "depth.jsonl", both))
        media = call.summary()["media"] or {}
        report(
            connected=call.state is CallState.CONNECTED,
            errors=audio_a.errors + audio_b.errors,
            codec=media.get("codec"),
        )
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            if line in ("mute", "unmute"):
                audio_a.set_muted(call, line == "mute")
                audio_b.set_muted(theirs, line == "mute")
            if line == "hangup":
                report(packets_received_b=theirs.summary()["media"]["packets_received"])
                call.hangup()
                await call.wait_ended(timeout=10)
                return
            report()
    finally:
        if sampler is not None:
            sampler.cancel()
        await a.stop()
        await b.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
