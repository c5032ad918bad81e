"""Jitter buffer: prefetch, reorder, loss, duplicates, wrap, talkspurts, SSRC change, overflow."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from securephone.media.codecs.g711 import PCMU
from securephone.media.jitterbuffer import Concealer, Frame, JitterBuffer
from securephone.media.rtp import RtpPacket

SSRC = 0x1234


def pkt(seq: int, ts: int | None = None, marker: bool = False, ssrc: int = SSRC) -> RtpPacket:
    """A 20 ms PCMU packet whose payload names its sequence number.

    ``seq`` may be given unwrapped (65536 is sent as 0); the timestamp then keeps counting
    160 per frame across the wrap unless ``ts`` is given.
    """
    timestamp = (seq * 160 if ts is None else ts) & 0xFFFFFFFF
    seq &= 0xFFFF
    return RtpPacket(
        sequence_number=seq,
        timestamp=timestamp,
        ssrc=ssrc,
        marker=marker,
        payload=seq.to_bytes(2, "big"),
    )


def played(frame: Frame) -> int | None:
    """The sequence number a frame carries audio for; None for silence or concealment."""
    return None if frame.payload is None else int.from_bytes(frame.payload, "big")


def drain(jb: JitterBuffer, n: int) -> list[int | str | None]:
    """n playout slots: seq for audio, 'C' for concealed, None for silence."""
    out: list[int | str | None] = []
    for _ in range(n):
        frame = jb.get(0.0)
        out.append("C" if frame.concealed else played(frame))
    return out


def test_prefetch_until_depth_then_play_in_order() -> None:
    jb = JitterBuffer(depth_frames=3)
    jb.put(pkt(10), 0.00)
    jb.put(pkt(11), 0.02)
    assert jb.get(0.03) == Frame(None)  # 2 < depth: silence, not concealment
    jb.put(pkt(12), 0.04)
    frame = jb.get(0.05)
    assert frame == Frame(b"\x00\x0a", False, 0, 10, 1600)
    jb.put(pkt(13), 0.06)
    assert drain(jb, 3) == [11, 12, 13]
    assert jb.stats.played == 4 and jb.stats.concealed == 0 and jb.stats.received == 4
    # delays: 10 waited 0.05, 11..13 were fetched at now=0.0 in drain (negative, still exact)
    assert jb.stats.delay_total == pytest.approx(0.05 - 0.02 - 0.04 - 0.06)


def test_a_short_tail_plays_after_waiting_depth_frames() -> None:
    jb = JitterBuffer(depth_frames=3)
    assert drain(jb, 2) == [None, None]  # nothing queued: waiting does not count
    jb.put(pkt(1), 0.0)
    jb.put(pkt(2), 0.0)  # the sender stops after two frames
    assert drain(jb, 5) == [None, None, 1, 2, "C"]


def test_reordered_packets_play_in_sequence() -> None:
    jb = JitterBuffer(depth_frames=3)
    for seq in (1, 3, 2, 5, 4):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 5) == [1, 2, 3, 4, 5]
    assert jb.stats.late == 0 and jb.stats.duplicates == 0


def test_loss_is_concealed_and_the_late_packet_dropped() -> None:
    jb = JitterBuffer(depth_frames=3)
    for seq in (1, 2, 3, 5, 6):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 4) == [1, 2, 3, "C"]
    jb.put(pkt(4), 0.0)  # its slot was already concealed
    assert drain(jb, 2) == [5, 6]
    assert jb.stats.concealed == 1
    assert jb.stats.late == 1
    assert jb.stats.played == 5


def test_concealed_frame_names_the_missing_sequence_number() -> None:
    jb = JitterBuffer(depth_frames=2)
    for seq in (7, 9):
        jb.put(pkt(seq), 0.0)
    jb.get(0.0)
    assert jb.get(0.0) == Frame(None, concealed=True, sequence_number=8)


def test_duplicates_are_counted_whether_queued_or_played() -> None:
    jb = JitterBuffer(depth_frames=2)
    jb.put(pkt(1), 0.0)
    jb.put(pkt(1), 0.0)  # queued twice
    jb.put(pkt(2), 0.0)
    assert drain(jb, 1) == [1]
    jb.put(pkt(1), 0.0)  # already played
    assert jb.stats.duplicates == 2
    assert jb.stats.late == 0
    assert drain(jb, 1) == [2]


def test_sequence_wrap_with_reordering() -> None:
    jb = JitterBuffer(depth_frames=3)
    for seq in (65533, 65534, 65536, 65535, 65538, 65537):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 6) == [65533, 65534, 65535, 0, 1, 2]
    jb.put(pkt(65535), 0.0)  # a stray duplicate from before the wrap
    jb.put(pkt(65539), 0.0)
    assert jb.stats.duplicates == 1
    assert drain(jb, 1) == [3]


def test_underrun_conceals_once_then_prefetches_again() -> None:
    jb = JitterBuffer(depth_frames=2)
    for seq in (1, 2):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 5) == [1, 2, "C", None, None]
    assert jb.stats.underruns == 1
    jb.put(pkt(4), 0.0)  # 3 never comes; the stream goes on without a marker
    assert drain(jb, 1) == [None]  # prefetching
    jb.put(pkt(5), 0.0)
    assert drain(jb, 3) == [4, 5, "C"]
    assert jb.stats.concealed == 2 and jb.stats.underruns == 2


def test_new_talkspurt_with_marker_and_timestamp_jump() -> None:
    jb = JitterBuffer(depth_frames=3)
    for seq in (1, 2, 3):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 3) == [1, 2, 3]
    assert drain(jb, 3) == ["C", None, None]  # silence suppression: the sender pauses
    # Next talkspurt: sequence numbers continue, timestamp jumps 1 s, marker set (RFC 3550
    # §5.1); it starts with the full depth and none of its frames is concealed.
    start = 3 * 160 + 8000
    jb.put(pkt(4, start, marker=True), 1.0)
    assert drain(jb, 1) == [None]
    jb.put(pkt(5, start + 160), 1.02)
    jb.put(pkt(6, start + 320), 1.04)
    assert drain(jb, 3) == [4, 5, 6]
    assert jb.stats.concealed == 1


def test_timestamp_jump_without_marker_is_a_talkspurt_too() -> None:
    jb = JitterBuffer(depth_frames=2)
    for seq in (1, 2):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 2) == [1, 2]  # drained, but no underrun yet
    jb.put(pkt(3, 160 * 3 + 4000), 0.0)  # jump of 4000 units, no marker
    assert drain(jb, 1) == [None]  # prefetch restarted at the new talkspurt
    jb.put(pkt(4, 160 * 4 + 4000), 0.0)
    assert drain(jb, 2) == [3, 4]
    assert jb.stats.concealed == 0 and jb.stats.underruns == 0


def test_straggler_after_an_underrun_still_plays() -> None:
    jb = JitterBuffer(depth_frames=3)
    for seq in (1, 2, 3):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 2) == [1, 2]
    jb.put(pkt(4), 0.0)
    assert drain(jb, 3) == [3, 4, "C"]  # underrun at slot 5: prefetching from 5 on
    jb.put(pkt(6), 0.0)  # 5 is lost, 6 arrives during the prefetch
    jb.put(pkt(8, marker=True), 0.0)  # a marker while frames are queued changes nothing
    jb.put(pkt(7), 0.0)
    assert drain(jb, 3) == [6, 7, 8]
    assert jb.stats.late == 0 and jb.stats.concealed == 1


def test_marker_while_frames_are_queued_just_continues() -> None:
    jb = JitterBuffer(depth_frames=2)
    for seq in (1, 2):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 1) == [1]
    jb.put(pkt(3, 3 * 160 + 800, marker=True), 0.0)  # 2 is still queued
    assert drain(jb, 2) == [2, 3]


def test_ssrc_change_resets_the_buffer() -> None:
    jb = JitterBuffer(depth_frames=2)
    for seq in (100, 101, 102):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 1) == [100]
    jb.put(pkt(5000, ssrc=0xBEEF), 0.0)  # the peer switched source (e.g. a transfer)
    assert jb.ssrc == 0xBEEF
    assert jb.stats.resets == 1 and jb.stats.flushed == 2
    assert drain(jb, 1) == [None]
    jb.put(pkt(5001, ssrc=0xBEEF), 0.0)
    jb.put(pkt(102, ssrc=SSRC), 0.0)  # the old source again: another reset
    assert jb.stats.resets == 2
    assert len(jb) == 1


def test_overflow_drops_the_oldest() -> None:
    jb = JitterBuffer(depth_frames=3, max_frames=5)
    for seq in range(1, 9):
        jb.put(pkt(seq), 0.0)
    assert jb.stats.overflow_drops == 3
    assert len(jb) == 5
    assert drain(jb, 5) == [4, 5, 6, 7, 8]


def test_overflow_while_playing_moves_the_playout_point() -> None:
    jb = JitterBuffer(depth_frames=2, max_frames=4)
    for seq in (1, 2):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 1) == [1]
    for seq in range(3, 8):  # a burst: 2..7 is 6 frames, 2 too many
        jb.put(pkt(seq), 0.0)
    assert jb.stats.overflow_drops == 2
    assert drain(jb, 4) == [4, 5, 6, 7]
    assert jb.stats.concealed == 0


def test_sequence_jump_needs_confirmation_then_restarts() -> None:
    jb = JitterBuffer(depth_frames=2, max_frames=10)
    for seq in (10, 11, 12):
        jb.put(pkt(seq), 0.0)
    assert drain(jb, 1) == [10]
    jb.put(pkt(30000), 0.0)  # a stray packet far away: dropped
    assert jb.stats.out_of_window == 1 and len(jb) == 2
    jb.put(pkt(40000), 0.0)  # not in sequence with the first: dropped too
    assert jb.stats.out_of_window == 2
    jb.put(pkt(40001), 0.0)  # confirms a sender restart
    assert jb.stats.resets == 1 and jb.stats.flushed == 2
    jb.put(pkt(40002), 0.0)
    assert drain(jb, 2) == [40001, 40002]


def test_small_gap_is_not_a_jump() -> None:
    jb = JitterBuffer(depth_frames=1, max_frames=10)
    jb.put(pkt(1), 0.0)
    jb.put(pkt(8), 0.0)  # 6 lost, within max_frames
    assert drain(jb, 8) == [1, "C", "C", "C", "C", "C", "C", 8]
    assert jb.stats.out_of_window == 0


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(depth_frames=0)
    with pytest.raises(ValueError):
        JitterBuffer(depth_frames=5, max_frames=4)
    with pytest.raises(ValueError):
        JitterBuffer(samples_per_frame=0)


@given(
    st.lists(st.integers(0, 40), max_size=80),
    st.lists(st.integers(0, 2), min_size=80, max_size=80),
    st.integers(0, 0xFFFF),
)
def test_accounting_and_order_invariants(
    arrivals: list[int], gets_after: list[int], base: int
) -> None:
    jb = JitterBuffer(depth_frames=3, max_frames=20)
    played_seqs: list[tuple[int, int]] = []  # (restarts so far, offset played)
    for i, offset in enumerate(arrivals):
        jb.put(pkt(base + offset), float(i))
        for _ in range(gets_after[i]):
            seq = played(jb.get(float(i)))
            if seq is not None:
                played_seqs.append((jb.stats.resets, (seq - base) & 0xFFFF))
    s = jb.stats
    assert s.received == len(arrivals)
    assert s.received == (
        s.played + s.late + s.duplicates + s.overflow_drops + s.out_of_window + s.flushed + len(jb)
    )
    assert len(played_seqs) == s.played
    # Each frame once and in sequence order, within each epoch between confirmed restarts.
    assert played_seqs == sorted(set(played_seqs))


# --- concealment on the PCM level ------------------------------------------------------------


def test_concealer_repeats_attenuated_once_then_silence() -> None:
    tone = np.full(160, 8000, dtype=np.int16)
    payload = PCMU.encode(tone)
    level = int(PCMU.decode(payload)[0])
    concealer = Concealer()
    assert concealer.to_pcm(Frame(payload, payload_type=0)).tolist() == [level] * 160
    assert concealer.to_pcm(Frame(None, concealed=True)).tolist() == [level // 2] * 160
    assert not concealer.to_pcm(Frame(None, concealed=True)).any()
    assert not concealer.to_pcm(Frame(None, concealed=True)).any()
    assert concealer.to_pcm(Frame(payload, payload_type=0))[0] == level  # audio resumes


def test_concealer_silence_and_unknown_payload_types() -> None:
    concealer = Concealer()
    silence = concealer.to_pcm(Frame(None))
    assert silence.dtype == np.int16 and silence.shape == (160,) and not silence.any()
    concealer.to_pcm(Frame(PCMU.encode(np.full(160, 1000, dtype=np.int16)), payload_type=0))
    assert not concealer.to_pcm(Frame(None)).any()  # silence breaks the repeat chain
    assert not concealer.to_pcm(Frame(None, concealed=True)).any()
    assert not concealer.to_pcm(Frame(b"\x00" * 160, payload_type=18)).any()  # G.729: unknown


def test_concealer_with_custom_decoder_and_frame_size() -> None:
    def decode(data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=">i2").astype(np.int16)

    concealer = Concealer({96: decode}, samples_per_frame=4, attenuation=0.25)
    pcm = concealer.to_pcm(Frame(np.array([400, -400], ">i2").tobytes(), payload_type=96))
    assert pcm.tolist() == [400, -400]
    assert concealer.to_pcm(Frame(None, concealed=True)).tolist() == [100, -100]
    assert concealer.to_pcm(Frame(None, concealed=True)).tolist() == [0, 0, 0, 0]


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 40)), min_size=1, max_size=60),
    st.integers(0, 0xFFFF),
)
def test_bounded_network_delay_loses_nothing_beyond_the_network(
    packets: list[tuple[bool, int]], base: int
) -> None:
    """Packet i is sent at frame time i and arrives up to 2 frames later (or is lost).

    With a depth of 4 frames every delivered packet is played exactly once and in order.
    """
    arrivals = sorted((i + delay / 20, i) for i, (lost, delay) in enumerate(packets) if not lost)
    jb = JitterBuffer(depth_frames=4)
    out: list[int] = []
    pending = list(arrivals)
    for tick in range(len(packets) + 10):
        while pending and pending[0][0] <= tick:
            _, i = pending.pop(0)
            jb.put(pkt(base + i), float(tick))
        seq = played(jb.get(float(tick)))
        if seq is not None:
            out.append((seq - base) & 0xFFFF)
    assert out == [i for _, i in sorted(arrivals, key=lambda a: a[1])]
    assert jb.stats.late == 0 and jb.stats.duplicates == 0 and jb.stats.overflow_drops == 0
