"""Two Phones in one process, each with a microphone and a speaker on sound devices: A calls B.

Run by ``test_devices_pulseaudio.py`` as a subprocess (PortAudio reads the ALSA configuration,
the test HOME's ``.asoundrc``, once when it starts). Arguments: ``DATA_DIR BUFFER_MS``. The
devices are the ALSA PCMs ``amic``/``aspk`` (phone A) and ``bmic``/``bspk`` (phone B).

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
from pathlib import Path
from typing import Any

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.aio.sound import CallAudio
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until


def phone(data: Path, name: str, buffer_ms: int) -> tuple[Phone, CallAudio]:
    """A phone on 127.0.0.1 (plain RTP, G.711) whose calls use ``{name}mic`` / ``{name}spk``."""
    config = parse_config(
        {
            "data_dir": str(data / name),
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"srtp": "off", "codecs": ["PCMU"]},  # G.711: what this test was proven with
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


def flowing(audio: CallAudio, call: Call) -> bool:
    """Both device streams are past their start: the microphone has captured a second of
    samples, the speaker played a second (ALSA's pulse plugin takes a moment to start)."""
    stats: dict[str, Any] = audio.stats(call)
    return (
        "input" in stats
        and "output" in stats
        and stats["input"]["samples_in"] >= stats["input"]["device_rate"]
        and stats["output"]["samples_out"] >= stats["output"]["device_rate"]
    )


async def main(data: Path, buffer_ms: int) -> None:
    a, audio_a = phone(data, "a", buffer_ms)
    b, audio_b = phone(data, "b", buffer_ms)
    await a.start()
    await b.start()
    try:
        call = a.dial(f"sip:b@{b.status()['listen']['udp']}")
        await call.wait_for(CallState.CONNECTED, timeout=20)
        theirs = await await_until(lambda: next(iter(b.calls.values()), None), 10)

        def report(**extra: Any) -> None:
            stats = {"a": audio_a.stats(call), "b": audio_b.stats(theirs), **extra}
            print(json.dumps(stats), flush=True)

        await await_until(lambda: flowing(audio_a, call) and flowing(audio_b, theirs), 20)
        report(connected=call.state is CallState.CONNECTED, errors=audio_a.errors + audio_b.errors)
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
        await a.stop()
        await b.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
