"""HD voice per codec: objective quality of a loopback call and the CPU one call costs.

Run: ``PYTHONPATH=src python benchmarks/hd_voice.py``.

* **Quality**: a spoken sentence (espeak-ng, 16 kHz) goes through a loopback call per codec
  (``securephone.media.loopback``: the real offer/answer, codec objects, RTP, jitter buffer),
  and what the callee plays out is scored against the sentence with wideband PESQ
  (ITU-T P.862.2, MOS-LQO 1.0-4.64, through the ``pesq`` package). A second column scores the
  same call with 5 % of the packets lost (every 20th), where Opus FEC/PLC shows.
  Synthetic speech scores lower than recorded speech; compare codecs, not absolute numbers.
* **CPU**: two phones in this process call each other over 127.0.0.1 for ``BENCH_SECONDS``
  (default 5) with SRTP, each sending a tone; the process CPU time divided by the call-seconds
  of both call legs is the CPU one phone spends per second of one call (codec, SRTP, RTP,
  jitter buffer, asyncio).
Numbers are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from securephone.aio.phone import Phone
from securephone.audio.resample import resample
from securephone.audio.sources import ToneSource, load_wav
from securephone.media.codecs.opus import opus_available
from securephone.media.loopback import connected_pair, loopback_call
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

CODECS = ("PCMU", "PCMA", "G722", "opus")
SENTENCE = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."


def _sentence(folder: Path) -> Path | None:
    if shutil.which("espeak-ng") is None:
        return None
    path = folder / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
    return path


def pesq_score(codec: str, sentence: Path, loss_every: int = 0) -> float | None:
    try:
        from pesq import pesq  # type: ignore[import-untyped]
    except ImportError:
        return None
    rate = connected_pair(codec)[0].sample_rate
    sent, _ = load_wav(sentence, rate)
    frames = -(-sent.size // connected_pair(codec)[0].samples)
    drop = set(range(loss_every, frames, loss_every)) if loss_every else set()
    heard, rate = loopback_call(codec, sent, drop)
    reference, _ = load_wav(sentence, 16000)
    degraded = resample(heard, rate, 16000)[: reference.size + 1600]
    return float(pesq(16000, reference.astype(np.float64), degraded, "wb"))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _phone(codec: str, port_min: int, answer: bool) -> Phone:
    config = parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
            "media": {
                "port_min": port_min, "port_max": port_min + 99, "codecs": [codec],
                "srtp": "mandatory", "allow_sdes_over_plaintext": True,
            },
            "calls": {"auto_answer": answer},
        }
    )  # fmt: skip
    phone = Phone(config)
    phone.source_factory = lambda call: ToneSource(frequencies=(440.0, 1300.0))
    return phone


async def cpu_per_call_second(codec: str, seconds: float) -> tuple[float, int]:
    """CPU ms per call-second of one leg, and packets lost, for one call in this process."""
    caller, callee = _phone(codec, 24100, False), _phone(codec, 24300, True)
    await caller.start()
    await callee.start()
    try:
        port = callee.status()["listen"]["udp"].split(":")[1]
        call = caller.dial(f"sip:bench@127.0.0.1:{port}")
        await call.wait_for(CallState.CONNECTED, timeout=10)
        await asyncio.sleep(1.0)  # settle
        cpu0, wall0 = _cpu(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu1, wall1 = _cpu(), time.perf_counter()
        lost = int(call.summary()["media"]["packets_lost"])
        call.hangup()
        await call.wait_ended(10)
    finally:
        await caller.stop()
        await callee.stop()
    return (cpu1 - cpu0) / (2 * (wall1 - wall0)) * 1000, lost


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    table = Table(title="HD voice per codec: loopback quality (wideband PESQ) and CPU per call")
    for column in ("codec", "audio Hz", "PESQ-WB", "PESQ-WB 5 % loss", "CPU ms/call-s", "lost"):
        table.add_column(column, justify="left" if column == "codec" else "right")
    with tempfile.TemporaryDirectory(prefix="hd-bench-") as tmp:
        sentence = _sentence(Path(tmp))
        for codec in CODECS:
            if codec == "opus" and not opus_available():
                table.add_row(codec, "-", "no libopus", "-", "-", "-")
                continue
            rate = connected_pair(codec)[0].sample_rate
            clean = pesq_score(codec, sentence) if sentence else None
            lossy = pesq_score(codec, sentence, 20) if sentence else None
            cpu, lost = asyncio.run(cpu_per_call_second(codec, seconds))
            table.add_row(
                codec,
                str(rate),
                "n/a" if clean is None else f"{clean:.2f}",
                "n/a" if lossy is None else f"{lossy:.2f}",
                f"{cpu:.2f}",
                str(lost),
            )
    Console(width=110).print(table)
    if sentence is None:
        print("PESQ: espeak-ng is not installed (apt-get install espeak-ng)")


if __name__ == "__main__":
    main()
