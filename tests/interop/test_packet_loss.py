"""Opus over a lossy path: an in-test UDP relay drops 5 % of one direction's packets and swaps
neighbours, between two securephones on 127.0.0.1 (SDES-SRTP, so packets relayed from another
address still authenticate). Opus in-band FEC and packet-loss concealment with the jitter
buffer keep the speech intelligible, and the receiver's counters show the losses.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.media.codecs.opus import opus_available
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until
from .audio_tools import assert_audio_matches, make_speech_wav, read_wav

LOSS = 0.05
SWAP = 0.05
SEED = 20260516


class LossyRelay(asyncio.DatagramProtocol):
    """Forwards datagrams to ``target``, dropping ``loss`` of them and swapping neighbours."""

    def __init__(self, target: tuple[str, int], rng: random.Random) -> None:
        self.target, self.rng = target, rng
        self.transport: asyncio.DatagramTransport | None = None
        self.forwarded = self.dropped = self.swapped = 0
        self._held: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        draw = self.rng.random()
        if draw < LOSS:
            self.dropped += 1
            return
        if self._held is None and draw < LOSS + SWAP:
            self._held = data  # goes out after the next one: the two arrive swapped
            self.swapped += 1
            return
        self._send(data)
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held)

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.target)
        self.forwarded += 1


def phone(tmp_path: Path, name: str, speech: Path, **calls: Any) -> Phone:
    config = parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
            "media": {
                "port_min": 30000, "port_max": 39999, "codecs": ["opus"], "srtp": "mandatory",
                "keying": ["sdes"], "allow_sdes_over_plaintext": True,
            },
            "calls": calls,
        }
    )  # fmt: skip
    p = Phone(config)
    p.source_factory = lambda call: WavSource(speech, loop=True)
    p.sink_factory = lambda call: WavRecorder(tmp_path / f"{name}-heard.wav")
    return p


async def test_opus_fec_and_the_jitter_buffer_carry_speech_over_5_percent_loss(
    tmp_path: Path,
) -> None:
    if not opus_available():
        pytest.skip("libopus is not installed")
    speech = make_speech_wav(
        tmp_path / "alice.wav", "Packet loss test: the quick brown fox jumps over the lazy dog."
    )
    alice, bob = phone(tmp_path, "alice", speech), phone(tmp_path, "bob", speech, auto_answer=True)
    await alice.start()
    await bob.start()
    loop = asyncio.get_running_loop()
    relay: LossyRelay | None = None
    transport = None
    try:
        port = bob.status()["listen"]["udp"].split(":")[1]
        call = alice.dial(f"sip:bob@127.0.0.1:{port}")
        assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
        their = await await_until(lambda: next(iter(bob.calls.values()), None), 5)
        channel = call.channel
        assert channel is not None and channel.remote is not None and channel.remote_rtcp
        transport, relay = await loop.create_datagram_endpoint(
            lambda: LossyRelay(channel.remote, random.Random(SEED)),  # type: ignore[arg-type]
            local_addr=("127.0.0.1", 0),
        )
        relay_port = transport.get_extra_info("sockname")[1]
        channel.remote = ("127.0.0.1", relay_port)  # alice -> relay -> bob, RTP only
        await asyncio.sleep(8.0)  # the call carries audio this long through the relay
        call.hangup()
        await call.wait_ended(10)
        await their.wait_ended(10)
    finally:
        if transport is not None:
            transport.close()
        await alice.stop()
        await bob.stop()
    assert relay is not None and relay.dropped >= 10 and relay.swapped >= 10
    media = their.summary()["media"]
    assert media["codec"].startswith("opus") and media["srtp"]["auth_failures"] == 0
    # the counters show the losses: RTP sequence gaps, and the frames made up for them
    assert abs(media["packets_lost"] - relay.dropped) <= 2, (media["packets_lost"], relay.dropped)
    assert media["fec_recovered"] >= relay.dropped // 2, media
    assert media["fec_recovered"] + media["plc"] >= media["packets_lost"] - 2, media
    assert media["late"] <= 2  # swapped neighbours are put back in order, not thrown away
    heard, _ = read_wav(tmp_path / "bob-heard.wav")
    assert_audio_matches(read_wav(speech)[0], heard, min_corr=0.75)
