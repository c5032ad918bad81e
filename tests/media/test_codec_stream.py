"""MediaStream at the codec's rate: G.722 (16 kHz audio, 8 kHz RTP clock) and Opus (48 kHz),
per-direction codec state, Opus FEC and PLC on a gap, payload type renumbering (RFC 3264 §8.3.2).
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from securephone.media.codecs.opus import opus_available
from securephone.media.rtp import RtpPacket
from securephone.media.session import MediaStream, Pcm
from securephone.sdp.offer_answer import DEFAULT_OPUS_FMTP, NegotiatedMedia

ALICE = ("127.0.0.1", 40000)
BOB = ("127.0.0.1", 42000)
needs_opus = pytest.mark.skipif(not opus_available(), reason="libopus is not installed")


def agreed(
    remote: tuple[str, int], codec: str, pt: int, clock: int, **more: object
) -> NegotiatedMedia:
    media = NegotiatedMedia(
        remote_address=remote[0],
        remote_port=remote[1],
        remote_rtcp_port=remote[1] + 1,
        codec=codec,
        payload_type=pt,
        clock_rate=clock,
        telephone_event_pt=101,
        ptime=20,
        local_direction="sendrecv",
        remote_direction="sendrecv",
        proto="RTP/AVP",
    )
    return dataclasses.replace(media, **more)  # type: ignore[arg-type]


G722_MEDIA = ("G722", 9, 8000)
OPUS_MEDIA = ("opus", 111, 48000)
OPUS_FMTP = {"fmtp": DEFAULT_OPUS_FMTP, "local_fmtp": DEFAULT_OPUS_FMTP, "channels": 2}


def pair(codec: tuple[str, int, int], **more: object) -> tuple[MediaStream, MediaStream]:
    alice = MediaStream("alice@127.0.0.1", rng=random.Random(1))
    bob = MediaStream("bob@127.0.0.1", rng=random.Random(2))
    alice.configure(agreed(BOB, *codec, **more))
    bob.configure(agreed(ALICE, *codec, **more))
    return alice, bob


def tone(rate: int, samples: int, n: int, freq: float) -> Pcm:
    t = (np.arange(samples) + n * samples) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def level_at(pcm: Pcm, rate: int, freq: float) -> float:
    """Share of the signal's energy within 200 Hz of ``freq``."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    return float(spectrum[np.abs(freqs - freq) < 200].sum() / (spectrum.sum() + 1e-9))


def run_call(
    alice: MediaStream, bob: MediaStream, frames: int, freq: float, drop: set[int] = frozenset()
) -> Pcm:
    """Alice sends ``frames`` frames of tone; Bob plays out one frame per period."""
    rate, size = alice.sample_rate, alice.samples
    out = []
    for n in range(frames):
        packet = alice.next_packet(tone(rate, size, n, freq))
        if packet is not None and n not in drop:
            bob.receive(packet, ALICE, n * 0.02)
        out.append(bob.playout(n * 0.02))
    return np.concatenate(out)


def test_g722_frames_are_320_samples_at_16khz_and_160_timestamp_units() -> None:
    alice, _ = pair(G722_MEDIA)
    assert (alice.sample_rate, alice.samples, alice.timestamp_step) == (16000, 320, 160)
    first = RtpPacket.parse(alice.next_packet(tone(16000, 320, 0, 1000)) or b"")
    second = RtpPacket.parse(alice.next_packet(tone(16000, 320, 1, 1000)) or b"")
    assert (first.payload_type, len(first.payload)) == (9, 160)
    assert (second.timestamp - first.timestamp) % 2**32 == 160
    assert alice.codec_label == "G722 (wideband, 16 kHz)"


def test_g722_carries_a_6khz_tone_and_g711_stays_at_8khz() -> None:
    wide = run_call(*pair(G722_MEDIA), 50, 6000.0)
    assert level_at(wide[-8000:], 16000, 6000) > 0.9
    alice, bob = pair(("PCMU", 0, 8000))
    narrow = run_call(alice, bob, 50, 3000.0)
    assert bob.sample_rate == 8000 and narrow.size == 50 * 160
    assert level_at(narrow[-4000:], 8000, 3000) > 0.9


def test_each_direction_keeps_its_own_g722_state() -> None:
    alice, bob = pair(G722_MEDIA)
    assert alice._encoder is not bob._encoder
    heard = run_call(alice, bob, 40, 1000.0)
    reference = run_call(*pair(G722_MEDIA), 40, 1000.0)
    assert np.array_equal(heard, reference)  # deterministic ADPCM: same input, same output


@needs_opus
def test_opus_frames_are_960_samples_and_960_timestamp_units() -> None:
    alice, _ = pair(OPUS_MEDIA, **OPUS_FMTP)
    assert (alice.sample_rate, alice.samples, alice.timestamp_step) == (48000, 960, 960)
    first = RtpPacket.parse(alice.next_packet(tone(48000, 960, 0, 1000)) or b"")
    second = RtpPacket.parse(alice.next_packet(tone(48000, 960, 1, 1000)) or b"")
    assert first.payload_type == 111
    assert (second.timestamp - first.timestamp) % 2**32 == 960
    assert alice.codec_label == "opus (fullband, 48 kHz)"


@needs_opus
def test_a_lost_opus_packet_is_rebuilt_from_the_next_packets_fec() -> None:
    alice, bob = pair(OPUS_MEDIA, **OPUS_FMTP)
    heard = run_call(alice, bob, 60, 6000.0, drop={30})
    stats = bob.stats()
    assert stats["fec_recovered"] == 1 and stats["concealed"] == 1
    assert stats["packets_lost"] == 1
    assert level_at(heard[-48000:], 48000, 6000) > 0.8


@needs_opus
def test_without_fec_a_lost_opus_packet_is_concealed_by_plc() -> None:
    no_fec = {"fmtp": "usedtx=0", "local_fmtp": "usedtx=0"}
    alice, bob = pair(OPUS_MEDIA, **no_fec)
    run_call(alice, bob, 40, 1000.0, drop={20, 21})
    stats = bob.stats()
    assert stats["concealed"] == 2
    assert stats["plc"] + stats["fec_recovered"] == 2


@needs_opus
def test_a_reinvite_that_renumbers_opus_keeps_both_codec_states() -> None:
    alice, bob = pair(OPUS_MEDIA, **OPUS_FMTP)
    encoder, playout = alice._encoder, alice._playout
    run_call(alice, bob, 5, 1000.0)
    renumbered = agreed(BOB, "opus", 98, 48000, **OPUS_FMTP)
    alice.configure(renumbered)
    bob.configure(agreed(ALICE, "opus", 98, 48000, **OPUS_FMTP))
    assert alice._encoder is encoder and alice._playout is playout
    packet = RtpPacket.parse(alice.next_packet(tone(48000, 960, 5, 1000)) or b"")
    assert packet.payload_type == 98
    bob.receive(packet.__bytes__(), ALICE, 0.2)
    stale = RtpPacket(111, packet.sequence_number + 1, packet.timestamp + 960, packet.ssrc, b"x")
    bob.receive(bytes(stale), ALICE, 0.22)
    assert bob.counters.unknown_payload == 1


def test_a_reinvite_that_changes_the_codec_starts_fresh_state() -> None:
    alice, _ = pair(G722_MEDIA)
    encoder = alice._encoder
    alice.configure(agreed(BOB, "PCMA", 8, 8000))
    assert alice._encoder is not encoder
    assert (alice.sample_rate, alice.samples) == (8000, 160)


def test_we_receive_on_our_number_when_the_answer_renumbered() -> None:
    alice = MediaStream("alice@127.0.0.1")
    bob = MediaStream("bob@127.0.0.1")
    alice.configure(agreed(BOB, "G722", 111, 8000, local_payload_type=9))  # sends 111
    bob.configure(agreed(ALICE, "G722", 9, 8000, local_payload_type=111))  # sends 9
    data = bob.next_packet(tone(16000, 320, 0, 1000))
    assert data is not None and RtpPacket.parse(data).payload_type == 9
    alice.receive(data, BOB, 0.0)
    assert alice.counters.unknown_payload == 0 and alice.counters.packets_received == 1


@needs_opus
def test_slots_taken_by_dtmf_events_are_silence_not_concealed_loss() -> None:
    alice, bob = pair(OPUS_MEDIA, **OPUS_FMTP)
    alice.send_dtmf("5")
    run_call(alice, bob, 40, 1000.0)
    stats = bob.stats()
    assert stats["dtmf_received"] == "5" and stats["packets_lost"] == 0
    assert stats["plc"] == 0 and stats["fec_recovered"] == 0
