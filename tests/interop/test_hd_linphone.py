"""HD voice against a real linphonec 5.1: G.722 and Opus (Debian's liblinphone has both) forced
in turn, G.711 for contrast, calls in both directions, SDES-SRTP mandatory, direct over UDP.

Both sides play a wideband signal (speech plus a 6 kHz tone, ``make_wideband_wav``) and record
what they hear: the tone crosses G.722 and Opus, not G.711; the speech cross-correlates (in
short windows; linphonec runs a fixed jitter buffer here, its adaptive one slips a frame early on).
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
from .conftest import LinphonecFactory
from .hd import CODECS, SECONDS, first_call, hd_phone
from .linphone import Linphonec


async def call_out(phone: Phone, peer: Linphonec) -> Call:
    mark = len(peer.output())
    call = phone.dial(peer.sip_uri)
    state = await call.wait_for(CallState.CONNECTED, timeout=10)
    assert state is CallState.CONNECTED, call.reason
    await asyncio.to_thread(peer.wait_connected, 10, since=mark)
    await asyncio.sleep(SECONDS)  # the call carries audio this long
    call.hangup()
    await call.wait_ended(10)
    await asyncio.to_thread(peer.wait_ended, 10, since=mark)
    return call


async def call_in(phone: Phone, peer: Linphonec) -> Call:
    mark = len(peer.output())
    port = phone.status()["listen"]["udp"].split(":")[1]
    await asyncio.to_thread(peer.call, f"sip:alice@127.0.0.1:{port}")
    call = await first_call(phone)
    assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
    await asyncio.to_thread(peer.wait_connected, 10, since=mark)
    await asyncio.sleep(SECONDS)
    await asyncio.to_thread(peer.terminate)
    await call.wait_ended(10)
    return call


def check_heard(recording: Path, speech: Path, codec: str, who: str) -> None:
    _, wideband = CODECS[codec]
    heard, rate = read_wav(recording, rate=None)
    share = tone_share(heard[rate // 2 :], rate)
    if wideband:
        assert share > 0.02, f"{who}: the 6 kHz tone did not cross {codec} ({share:.4f}, {rate} Hz)"
    else:
        assert share < 0.001, f"{who}: a 6 kHz tone crossed G.711 ({share:.4f}, {rate} Hz)"
    # The tone above decides what the codec carried. The speech check only shows it is this
    # sentence: through linphonec's playback of a 48 kHz file and its own encoder (Opus is
    # perceptual), on a loaded machine the waveform correlated 0.43-0.65 in some runs where a
    # clean copy gives >0.9; unrelated speech stays near 0.1.
    assert_audio_matches(read_wav(speech)[0], speech_part(recording), 0.4)


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("direction", ["we_call", "they_call"])
async def test_hd_codecs_with_linphonec(
    linphonec_factory: LinphonecFactory, tmp_path: Path, codec: str, direction: str
) -> None:
    if codec == "opus" and not opus_available():
        pytest.skip("libopus is not installed")
    ours, our_speech = make_wideband_wav(
        tmp_path / "ours.wav", "Securephone speaking, testing one two three."
    )
    theirs, their_speech = make_wideband_wav(
        tmp_path / "theirs.wav", "Linphone answering, four five six seven."
    )
    peer = linphonec_factory(
        user="bob", media_encryption="srtp", mandatory=True, codecs=(codec,),
        audio_source=theirs, sample_rate=48000, trailing_silence=6.0, adaptive_jitter=False,
    )  # fmt: skip
    heard_by_peer = await asyncio.to_thread(peer.record_to)
    phone = hd_phone(tmp_path, ours, codec, auto_answer=True)
    await phone.start()
    try:
        call = await (call_out(phone, peer) if direction == "we_call" else call_in(phone, peer))
    finally:
        await phone.stop()
    media = call.summary()["media"]
    rate, _ = CODECS[codec]
    assert media["codec"].startswith(codec) and media["audio_rate"] == rate
    assert media["encryption"] == "srtp" and media["srtp"]["auth_failures"] == 0
    assert media["packets_received"] >= SECONDS * 50 * 0.7
    assert peer.wait_negotiated(1) == ["LinphoneMediaEncryptionSRTP"]
    check_heard(heard_by_peer, our_speech, codec, "linphonec")
    check_heard(tmp_path / "we-heard.wav", their_speech, codec, "securephone")
