"""securephone ↔ securephone over real sockets on 127.0.0.1: audio both ways, hold, resume, DTMF,
hang-up from either side, and the CLI's call/answer pair with its JSON summary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until, free_port, port_listening, wait_until
from .audio_tools import assert_audio_matches, best_alignment, make_speech_wav, read_wav


def config(**calls: Any) -> Any:
    return parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
            "media": {"port_min": 30000, "port_max": 39999, "srtp": "off"},
            "calls": calls,
        }
    )


@pytest.fixture
def speech(tmp_path: Path) -> tuple[Path, Path]:
    a = make_speech_wav(tmp_path / "alice.wav", "This is alice speaking on a secure phone call.")
    b = make_speech_wav(tmp_path / "bob.wav", "Bob answers and reads a different sentence back.")
    return a, b


async def start_pair(tmp_path: Path, speech: tuple[Path, Path]) -> tuple[Phone, Phone]:
    alice, bob = Phone(config()), Phone(config(auto_answer=True))
    alice.source_factory = lambda call: WavSource(speech[0])
    alice.sink_factory = lambda call: WavRecorder(tmp_path / "alice-heard.wav")
    bob.source_factory = lambda call: WavSource(speech[1])
    bob.sink_factory = lambda call: WavRecorder(tmp_path / "bob-heard.wav")
    await alice.start()
    await bob.start()
    return alice, bob


def bob_uri(bob: Phone, transport: str = "udp") -> str:
    host, port = bob.status()["listen"][transport].split(":")
    return f"sip:bob@{host}:{port};transport={transport}"


async def only_call(phone: Phone) -> Call:
    return await await_until(
        lambda: next(iter(phone.calls.values()), None), 5, message="no call arrived"
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_audio_both_ways_and_hangup(
    tmp_path: Path, speech: tuple[Path, Path], transport: str
) -> None:
    alice, bob = await start_pair(tmp_path, speech)
    try:
        call = alice.dial(bob_uri(bob, transport))
        assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
        their = await only_call(bob)
        await asyncio.sleep(4.5)  # the call carries audio this long
        call.hangup()
        await call.wait_ended(5)
        await their.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()
    assert call.reason == "hung up" and their.reason == "the far end hung up"
    summary = call.summary()
    media = summary["media"]
    assert media["codec"] == "opus (fullband, 48 kHz)"  # the default preference's first
    assert media["rtpmap"] == "opus/48000" and media["audio_rate"] == 48000
    assert media["local_rtp"].startswith("127.0.0.1:") and media["remote_rtp"].startswith(
        "127.0.0.1:"
    )
    assert media["packets_sent"] >= 200 and media["packets_received"] >= 200
    assert media["packets_lost"] == 0
    sent_a, _ = read_wav(speech[0])
    sent_b, _ = read_wav(speech[1])
    heard_by_bob, _ = read_wav(tmp_path / "bob-heard.wav")
    heard_by_alice, _ = read_wav(tmp_path / "alice-heard.wav")
    assert_audio_matches(sent_a, heard_by_bob)
    assert_audio_matches(sent_b, heard_by_alice)
    # and not the other way round: each side hears the other's sentence, not its own
    assert best_alignment(sent_a, heard_by_alice)[1] < 0.5


async def test_hold_resume_dtmf_both_ways_and_bye_from_callee(
    tmp_path: Path, speech: tuple[Path, Path]
) -> None:
    alice, bob = await start_pair(tmp_path, speech)
    try:
        call = alice.dial(bob_uri(bob))
        await call.wait_for(CallState.CONNECTED, timeout=5)
        their = await only_call(bob)
        await their.wait_for(CallState.CONNECTED, timeout=5)
        call.send_dtmf("123#")
        their.send_dtmf("*9A")
        await await_until(
            lambda: len(their.digits) >= 4 and len(call.digits) >= 3, 5, message="DTMF arrived"
        )
        assert their.digits == "123#" and call.digits == "*9A"
        await await_until(  # bob's media has flowed a while before the hold
            lambda: their.summary()["media"]["packets_sent"] > 40, 5, message="bob sends media"
        )
        sent_before = their.summary()["media"]["packets_sent"]
        call.hold()
        await await_until(lambda: call.local_hold and their.remote_hold, 5, message="on hold")
        assert their.summary()["media"]["direction"] == "recvonly"
        # While held, bob must not send: his packet count stands still (over half a second).
        held_count = their.summary()["media"]["packets_sent"]
        await asyncio.sleep(0.5)
        assert their.summary()["media"]["packets_sent"] == held_count
        assert sent_before > 40 and held_count - sent_before <= 2  # stopped at once
        call.resume()
        await await_until(
            lambda: not call.local_hold and not their.remote_hold, 5, message="resumed"
        )
        resumed = their.summary()["media"]["packets_sent"]
        await await_until(
            lambda: their.summary()["media"]["packets_sent"] > resumed, 5, message="sends again"
        )
        their.hangup()
        await call.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()
    assert call.reason == "the far end hung up" and their.reason == "hung up"
    assert call.summary()["dtmf_received"] == "*9A"


def run_cli(*args: str, timeout: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "securephone.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_call_and_answer_json(tmp_path: Path, speech: tuple[Path, Path]) -> None:
    port = free_port("both")
    answer = run_cli(
        "answer", "--listen", f"127.0.0.1:{port}", "--calls", "1", "--json", "--srtp", "off",
        "--play", str(speech[1]), "--record", str(tmp_path / "answer-heard.wav"), "--dtmf", "42",
        "--codecs", "G722,PCMU",
    )  # fmt: skip
    try:
        wait_until(
            lambda: port_listening(port, "udp") or answer.poll() is not None,
            20,
            message=f"the answering CLI listens on UDP {port}",
        )
        caller = subprocess.run(
            [
                sys.executable, "-m", "securephone.cli", "call", f"sip:bob@127.0.0.1:{port}",
                "--play", str(speech[0]), "--record", str(tmp_path / "call-heard.wav"),
                "--duration", "4", "--dtmf", "0*", "--json", "--srtp", "off",
                "--codecs", "PCMA,G722",
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        out, err = answer.communicate(timeout=30)
    finally:
        if answer.poll() is None:
            answer.kill()
            answer.wait()
    assert caller.returncode == 0, caller.stderr
    assert answer.returncode == 0, err
    placed, answered = json.loads(caller.stdout), json.loads(out)
    for summary in (placed, answered):
        assert summary["ok"] and summary["answered"] and summary["state"] == "terminated"
        assert 3.5 <= summary["duration"] <= 5.5
        assert summary["media"]["packets_lost"] == 0
        assert summary["media"]["jitter_ms"] is not None
        # the answerer's preference wins (RFC 3264 §6.1): G.722, at 16 kHz end to end
        assert summary["media"]["codec"] == "G722 (wideband, 16 kHz)"
    assert placed["sip_status"] == 200 and placed["dtmf_received"] == "42"
    assert answered["dtmf_received"] == "0*"
    assert answered["reason"] == "the far end hung up"
    sent_a, _ = read_wav(speech[0])
    heard, _ = read_wav(tmp_path / "answer-heard.wav")
    assert_audio_matches(sent_a, heard)
    assert read_wav(tmp_path / "answer-heard.wav", rate=None)[1] == 16000  # recorded at 16 kHz


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "securephone.cli", "call", "not a uri"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "bad URI" in bad.stderr
    port = free_port("tcp")  # nobody listens on TCP there: connection refused
    refused = subprocess.run(
        [sys.executable, "-m", "securephone.cli", "call", f"sip:x@127.0.0.1:{port};transport=tcp",
         "--json", "--srtp", "off"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "cannot connect" in refused.stderr and refused.stderr.strip().count("\n") == 0
    assert json.loads(refused.stdout)["answered"] is False
    # By default SRTP is mandatory: SDES keys are never put in SDP over plaintext TCP/UDP
    # signalling (ZRTP, which needs no keys in SDP, is the default's second choice)
    default = subprocess.run(
        [sys.executable, "-m", "securephone.cli", "call", f"sip:x@127.0.0.1:{port};transport=tcp",
         "--keying", "sdes"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert default.returncode == 1 and default.stderr.strip().count("\n") == 0
    assert "SRTP is mandatory" in default.stderr and "plaintext signalling" in default.stderr
    bad_keying = subprocess.run(
        [sys.executable, "-m", "securephone.cli", "call", "sip:x@127.0.0.1", "--keying", "rot13"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad_keying.returncode == 2 and "--keying must" in bad_keying.stderr
    bad_mode = subprocess.run(
        [sys.executable, "-m", "securephone.cli", "call", "sip:x@127.0.0.1", "--srtp", "sometimes"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad_mode.returncode == 2 and "--srtp must be" in bad_mode.stderr


async def test_caller_display_name_reaches_the_callee(tmp_path: Path) -> None:
    """The far end's display name (untrusted text, quoted per RFC 3261 §25.1) is kept as given."""
    name = 'Alice "<b>&amp;" O\'Hara'
    data = {
        "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
        "media": {"port_min": 30000, "port_max": 39999, "srtp": "off"},
        "accounts": [
            {"name": "alice", "user": "alice", "domain": "127.0.0.1", "register": False,
             "display_name": name}
        ],
    }  # fmt: skip
    alice, bob = Phone(parse_config(data)), Phone(config(auto_answer=True))
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(bob_uri(bob), account="alice")
        await call.wait_for(CallState.CONNECTED, timeout=5)
        their = await only_call(bob)
        assert their.remote_display_name == name
        assert their.summary()["remote_display_name"] == name
        call.hangup()
        await call.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()


def zrtp_cli_call(tmp_path: Path, *extra: str) -> tuple[str, str]:
    """``answer`` and ``call`` with ``--keying zrtp`` (each its own data directory, so its own
    ZRTP identity) and ``extra`` options for both; what the caller and the answerer printed."""
    configs = []
    for name in ("caller", "answerer"):
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'data_dir = "{tmp_path / name}"\n[sip]\nudp_port = 0\ntcp_port = 0\n'
            '[media]\nport_min = 45000\nport_max = 45999\nsrtp = "mandatory"\n'
        )
        configs.append(path)
    port = free_port("both")
    answer = run_cli(
        "answer", "--config", str(configs[1]), "--listen", f"127.0.0.1:{port}", "--calls", "1",
        "--keying", "zrtp", *extra,
    )  # fmt: skip
    try:
        wait_until(
            lambda: port_listening(port, "udp") or answer.poll() is not None,
            20,
            message=f"the answering CLI listens on UDP {port}",
        )
        caller = subprocess.run(
            [sys.executable, "-m", "securephone.cli", "call", f"sip:bob@127.0.0.1:{port}",
             "--config", str(configs[0]), "--direct", "--keying", "zrtp", "--duration", "2",
             *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        out, err = answer.communicate(timeout=30)
    finally:
        if answer.poll() is None:
            answer.kill()
            answer.wait()
    assert caller.returncode == 0, caller.stderr
    assert answer.returncode == 0, err
    return caller.stdout, out


def test_cli_zrtp_call_json_shows_the_same_sas_on_both_ends(tmp_path: Path) -> None:
    """``call``/``answer --keying zrtp --json``: the summary's security block says ZRTP, end to
    end, the SAS and its rendering, not verified before, no cache mismatch; both ends agree."""
    caller, answer = zrtp_cli_call(tmp_path, "--json")
    placed, answered = json.loads(caller), json.loads(answer)
    for summary in (placed, answered):
        security = summary["security"]
        assert security["keying"] == "zrtp" and security["end_to_end"] and security["keys_agreed"]
        assert security["alarms"] == []
        path = security["path"]
        assert path["method"] == "zrtp" and path["state"] == "secure"
        assert path["sas_type"] in ("B32", "B256") and path["previously_verified"] is False
        assert path["cache_mismatch"] is False and path["sas_verified"] is None
        assert path["algorithms"]["key_agreement"] == "X255"  # both offer X25519 first
        assert summary["media"]["encryption"] == "srtp"
        assert "rs1" not in json.dumps(summary) and "key" not in path
    assert placed["security"]["path"]["sas"] == answered["security"]["path"]["sas"]
    assert placed["security"]["path"]["role"] != answered["security"]["path"]["role"]


def test_cli_prints_each_call_with_its_security_without_json(tmp_path: Path) -> None:
    """Without --json, call and answer each print the call: plaintext signalling said plainly,
    the media keyed by ZRTP end to end, and the same SAS at both ends (not compared)."""
    sas = []
    printed = zrtp_cli_call(tmp_path)
    for text, first in zip(printed, ("outgoing call with sip:bob@", "incoming call"), strict=True):
        lines = text.splitlines()
        assert lines[0].startswith(first) and ": answered, " in lines[0], text
        assert "  signalling: UDP with udp:127.0.0.1:" in text
        assert "not encrypted (the signalling can be read on the path)" in text
        assert "  media keying: zrtp, end to end" in lines
        assert "  SAS not compared" in lines and "ALARM" not in text
        [line] = [line for line in lines if line.startswith("  ZRTP SAS: ")]
        sas.append(line.split()[2])
        assert any(line.startswith("  audio: ") and "packets sent " in line for line in lines)
    assert sas[0] == sas[1] and len(sas[0]) == 4
