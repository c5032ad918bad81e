"""HD voice against a real baresip 1.0.0: G.722 (its ``g722`` module) and Opus (its ``opus``
module) forced in turn, G.711 for contrast, calls in both directions, SDES-SRTP mandatory.

Both sides send a wideband signal — speech plus a steady 6 kHz tone (``make_wideband_wav``) —
and record what they hear. The tone reaches the far end through G.722 (7 kHz audio band) and
Opus; through G.711 the whole path is 8 kHz and it cannot (and the 8 kHz recording shows no
alias of it at 2 kHz either: it was filtered out, not folded down). The speech part, compared at
8 kHz where the tone is filtered out, cross-correlates with what was sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.media.codecs.opus import opus_available
from securephone.sip.callstate import CallState

from .audio_tools import (
    assert_audio_matches,
    make_wideband_wav,
    read_wav,
    speech_part,
    tone_share,
)
from .baresip import MODULE_DIR, Baresip
from .conftest import BaresipFactory
from .hd import CODECS, SECONDS, first_call, hd_phone

# baresip's adaptive playout stretched a G.722 sentence once while both CI cores ran other peers
# (correlation 0.49): these audio comparisons run alone, with the sound-server tests
pytestmark = pytest.mark.realtime


def skip_without(codec: str) -> None:
    module = {"G722": "g722.so", "opus": "opus.so"}.get(codec)
    if module is not None and not (MODULE_DIR / module).exists():
        pytest.skip(f"baresip has no {module}")
    if codec == "opus" and not opus_available():
        pytest.skip("libopus is not installed")


async def call_out(phone: Phone, peer: Baresip) -> Call:
    call = phone.dial(peer.sip_uri)
    state = await call.wait_for(CallState.CONNECTED, timeout=10)
    assert state is CallState.CONNECTED, call.reason
    await asyncio.to_thread(peer.wait_heard, SECONDS, 15)
    call.hangup()
    await call.wait_ended(10)
    return call


async def call_in(phone: Phone, peer: Baresip) -> Call:
    host, port = phone.status()["listen"]["udp"].split(":")
    await asyncio.to_thread(peer.dial, f"sip:alice@{host}:{port};transport=udp")
    await asyncio.to_thread(peer.wait_event, "CALL_ESTABLISHED", 10)
    call = await first_call(phone)
    await call.wait_for(CallState.CONNECTED, timeout=5)
    await asyncio.to_thread(peer.wait_heard, SECONDS, 15)
    await asyncio.to_thread(peer.hangup)
    await call.wait_ended(10)
    return call


def check_heard(recording: Path, speech: Path, codec: str, who: str) -> None:
    _, wideband = CODECS[codec]
    heard, file_rate = read_wav(recording, rate=None)
    share = tone_share(heard[file_rate // 2 :], file_rate)
    if wideband:
        assert file_rate >= 16000, f"{who} recorded at {file_rate} Hz"
        assert share > 0.02, f"{who}: the 6 kHz tone did not get through {codec} ({share:.4f})"
    else:
        assert file_rate == 8000 and share == 0.0
        alias = tone_share(heard[file_rate // 2 :], file_rate, 2000.0)
        # unfiltered, the tone would fold to 2 kHz at full strength; the resampler's stopband
        # leaves ~1 % (measured 0.0101 on a loaded machine)
        assert alias < 0.02, f"{who}: the 6 kHz tone folded down to 2 kHz ({alias:.4f})"
    assert_audio_matches(read_wav(speech)[0], speech_part(recording))


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("direction", ["we_call", "they_call"])
async def test_hd_codecs_with_baresip(
    baresip_factory: BaresipFactory, tmp_path: Path, codec: str, direction: str
) -> None:
    skip_without(codec)
    ours, our_speech = make_wideband_wav(
        tmp_path / "ours.wav", "Securephone speaking, testing one two three."
    )
    theirs, their_speech = make_wideband_wav(
        tmp_path / "theirs.wav", "Baresip here, reading another sentence."
    )
    peer = baresip_factory(
        user="bob", audio_codecs=(codec,), audio_source=theirs, mediaenc="srtp-mand",
        sample_rate=48000,
    )  # fmt: skip
    phone = hd_phone(tmp_path, ours, codec, auto_answer=True)
    await phone.start()
    try:
        call = await (call_out(phone, peer) if direction == "we_call" else call_in(phone, peer))
    finally:
        await phone.stop()
    media = call.summary()["media"]
    rate, _ = CODECS[codec]
    assert media["audio_rate"] == rate and media["codec"].startswith(codec)
    assert media["encryption"] == "srtp"
    srtp = media["srtp"]  # baresip's RTCP in the clear may count as SRTCP failures, never audio
    assert srtp["auth_failures"] == srtp["rtcp_auth_failures"] <= 3, srtp
    assert media["packets_received"] >= SECONDS * 50 * 0.8
    assert media["decode_errors"] == 0
    recordings = await asyncio.to_thread(peer.wait_recordings, 1, 10)
    check_heard(recordings[0], our_speech, codec, "baresip")
    check_heard(tmp_path / "we-heard.wav", their_speech, codec, "securephone")
