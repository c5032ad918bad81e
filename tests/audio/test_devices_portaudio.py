"""The device layer through the real PortAudio library (ALSA host API), without a sound card.

This machine has no sound card and no sound server. ALSA's ``file`` PCM, defined in an
``~/.asoundrc`` in a temporary HOME, is a virtual device PortAudio lists and opens: what we play
is written to a file, what we capture is read from another. Its slave is ALSA's ``null`` PCM,
which has no clock: the "device" runs as fast as it can. So these tests show the real PortAudio
path (listing, opening by name, callback streams, the formats, the error for a missing device,
the ring buffer's edges under a device clock far faster than the media clock); they cannot show
real-time behaviour against a paced sound card.

Each case runs in a subprocess: PortAudio reads the ALSA configuration once, at initialisation.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sounddevice")

from securephone.aio.phone import Phone
from securephone.audio.sources import ToneSource
from securephone.store.config import parse_config

from ..helpers import await_until

ROOT = Path(__file__).resolve().parents[2]
RATE = 8000


def asound_home(tmp_path: Path) -> Path:
    """A HOME whose .asoundrc defines the virtual devices ``spmic`` (captures a 1 kHz tone from a
    file) and ``spout`` (plays into a file)."""
    home = tmp_path / "home"
    home.mkdir()
    t = np.arange(RATE) / RATE
    (home / "in.raw").write_bytes(
        np.rint(8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    )
    pcms = {
        "spmic": f'file "{home}/captured.raw"\n    infile "{home}/in.raw"',
        "spout": f'file "{home}/out.raw"',
    }
    (home / ".asoundrc").write_text(
        "".join(
            f'pcm.{name} {{\n    type file\n    slave.pcm "null"\n    {files}\n    format "raw"\n}}\n'
            for name, files in pcms.items()
        )
    )
    return home


def run(home: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    command = (
        [sys.executable, "-c", code] if code else [sys.executable, "-m", "securephone.cli", *args]
    )
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def peak_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spectrum) * RATE / pcm.size)


def test_devices_lists_the_virtual_device(tmp_path: Path) -> None:
    result = run(asound_home(tmp_path), "devices")
    assert result.returncode == 0, result.stderr
    names = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert {"spmic", "spout"} <= set(names), result.stdout
    assert "[ALSA]" in names["spout"] and " out" in names["spout"]


def test_no_device_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(empty, "devices")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "securephone: error: no sound devices found (no sound card, or PortAudio sees none)"
    )
    config = tmp_path / "phone.toml"
    config.write_text('[audio]\non_device_error = "fail"\n[sip]\nudp_port = 0\ntcp_port = 0\n')
    call = run(
        empty, "call", "sip:bob@127.0.0.1:9", "--config", str(config), "--play", "device:headset"
    )
    assert call.returncode == 1
    lines = call.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "securephone: error: --play: no input sound device"
    )
    assert "'headset'" in lines[0]


async def call_bob(
    tmp_path: Path,
    home: Path,
    *args: str,
    bob_media: dict[str, Any] | None = None,
    bob_source: Any = None,
) -> tuple[int | None, str, str]:
    """``securephone call sip:bob ... --srtp off --json *args`` as a user runs it (HOME=home, so
    its ALSA configuration), to a Phone bob that answers; the exit code, stdout and stderr."""
    config = tmp_path / "phone.toml"
    config.write_text("[sip]\nudp_port = 0\ntcp_port = 0\n")  # on_device_error = continue
    bob = Phone(
        parse_config(
            {
                "data_dir": str(tmp_path / "bob"),
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
                "media": {"srtp": "off", **(bob_media or {})},
                "calls": {"auto_answer": True},
            }
        )
    )
    if bob_source is not None:
        bob.source_factory = bob_source
    await bob.start()
    try:
        target = f"sip:bob@{bob.status()['listen']['udp']}"
        env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
        command = ["call", target, "--config", str(config), *args, "--srtp", "off", "--json"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "securephone.cli", *command, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await bob.stop()
    return proc.returncode, out.decode(), err.decode()


async def test_missing_device_with_continue_is_a_warning_and_the_call_goes_on(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = await call_bob(tmp_path, empty, "--record", "device", "--duration", "0.5")
    assert err.strip().splitlines() == [
        "securephone: warning: --record: no default output sound device (none found); "
        "the call goes on without it"
    ]
    assert code == 0  # answered and ended cleanly, without a speaker
    summary = json.loads(out)
    assert summary["answered"] and summary["media"]["packets_received"] > 10


async def test_call_summary_shows_the_speaker_buffer(tmp_path: Path) -> None:
    """`call --record device:spout --json`: the summary carries the device ring's figures."""
    home = asound_home(tmp_path)
    code, out, err = await call_bob(
        tmp_path, home, "--record", "device:spout", "--duration", "1",
        bob_media={"port_min": 58000, "port_max": 58999},
        bob_source=lambda call: ToneSource(440.0),
    )  # fmt: skip
    assert code == 0, err
    devices = json.loads(out)["audio_devices"]
    assert devices["errors"] == [] and "input" not in devices
    speaker = devices["output"]
    assert speaker["device"] == "spout" and speaker["capacity_ms"] == 60, speaker
    assert speaker["samples_in"] > 4000 and speaker["callbacks"] > 0, speaker  # 1 s of the call
    assert 0 <= speaker["depth_ms"] <= 60 and speaker["overruns"] == 0, speaker
    assert (home / "out.raw").stat().st_size > 0  # the device really played


STREAMS = """
import json, time
import numpy as np
from securephone.audio.devices import DeviceSink, DeviceSource
sink = DeviceSink("spout", buffer_ms=60)
source = DeviceSource("spmic", buffer_ms=60)
t = np.arange(160) / 8000
frames = []
for i in range(25):  # half a second of media clock
    sink.write_frame(np.rint(6000 * np.sin(2 * np.pi * 500 * (t + i * 0.02) + 0.3)).astype(np.int16))
    frames.append(source.read_frame())
    time.sleep(0.02)
stats = {"source": source.stats(), "sink": sink.stats()}
source.close(); sink.close()
np.save("captured.npy", np.concatenate(frames))
print(json.dumps(stats))
"""


def test_real_portaudio_streams_through_the_file_device(tmp_path: Path) -> None:
    home = asound_home(tmp_path)
    env_code = f"import os; os.chdir({str(tmp_path)!r})\n" + STREAMS
    result = run(home, code=env_code)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    captured = np.load(tmp_path / "captured.npy")
    assert captured.size == 25 * 160
    assert abs(peak_hz(captured[800:]) - 1000) < 20  # the capture file's 1 kHz tone came through
    # the unpaced device clock overruns the capture buffer, and drains the playback one:
    assert stats["source"]["overruns"] > 0 and stats["source"]["depth_ms"] <= 60
    assert stats["sink"]["underruns"] > 0
    played = np.frombuffer((home / "out.raw").read_bytes(), dtype="<i2")
    # the tone has no zero sample, the device got silence only when the ring was dry: without
    # the silences, what was played is exactly what the media clock wrote, in order
    sound = played[played != 0]
    t = np.arange(25 * 160) / RATE
    sent = np.rint(6000 * np.sin(2 * np.pi * 500 * t + 0.3)).astype(np.int16)
    assert sound.size >= 20 * 160
    assert np.array_equal(sound, sent[: sound.size])


def device_phone(tmp_path: Path, name: str, on_error: str, answer: bool) -> tuple[Phone, Any]:
    """A phone on 127.0.0.1 whose calls use sound devices that do not exist."""
    from securephone.aio.sound import CallAudio

    config = parse_config(
        {
            "data_dir": str(tmp_path / name),
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"srtp": "off", "port_min": 58000, "port_max": 58999},
            "calls": {"auto_answer": answer},
            "audio": {
                "input": "no-such-microphone",
                "output": "no-such-speaker",
                "on_device_error": on_error,
            },
        }
    )
    phone = Phone(config)
    audio = CallAudio.from_settings(config.audio)
    phone.source_factory = audio.source
    phone.sink_factory = audio.sink
    return phone, audio


@pytest.mark.parametrize("on_error", ["fail", "continue"])
async def test_device_missing_at_call_time_follows_on_device_error(
    tmp_path: Path, on_error: str
) -> None:
    """Bob answers with a microphone and a speaker that are not there (real PortAudio): one
    error line for each, kept for the user; with ``fail`` Bob's phone hangs the answered call up, with ``continue`` the call
    stays up in silence until Alice hangs up."""
    from securephone.sip.callstate import CallState

    bob, audio = device_phone(tmp_path, "bob", on_error, answer=True)
    alice = Phone(
        parse_config(
            {
                "data_dir": str(tmp_path / "alice"),
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
                "media": {"srtp": "off", "port_min": 58000, "port_max": 58999},
            }
        )
    )
    await bob.start()
    await alice.start()
    try:
        call = alice.dial(f"sip:bob@{bob.status()['listen']['udp']}")
        await call.wait_for(CallState.CONNECTED, timeout=10)
        if on_error == "fail":
            await call.wait_ended(timeout=10)
            assert call.ending is not None and call.ending.name == "HUNG_UP_THERE", call.ending
        else:
            # Bob's side sends (silence): half a second of packets reach Alice, the call stays
            await await_until(lambda: call.summary()["media"]["packets_received"] >= 25, 10)
            assert call.state is CallState.CONNECTED
            call.hangup()
            await call.wait_ended(timeout=10)
            assert call.ending is not None and call.ending.name == "HUNG_UP_HERE", call.ending
    finally:
        await alice.stop()
        await bob.stop()
    assert len(audio.errors) == 2, audio.errors
    assert "input" in audio.errors[0] and "'no-such-microphone'" in audio.errors[0]
    assert "output" in audio.errors[1] and "'no-such-speaker'" in audio.errors[1]
