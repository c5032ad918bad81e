"""Every codec satisfies the common interface (codecs/base.py) with the SDP/RTP facts it must."""

from __future__ import annotations

import numpy as np
import pytest

from securephone.media.codecs.base import AudioCodec, FrameDecoder, FrameEncoder
from securephone.media.codecs.catalog import (
    AUDIO_CODECS,
    audio_codec,
    audio_codec_by_payload_type,
)
from securephone.media.codecs.g711 import PCMA, PCMU
from securephone.media.codecs.g722 import G722
from securephone.media.codecs.opus import OPUS, opus_available

# name, rtpmap, static payload type, RTP clock, audio rate, timestamp units and samples per 20 ms
# (RFC 3551 §4.5.2 and Table 4 for G.722 and G.711; RFC 7587 §4.1, §7 for Opus)
FACTS = [
    (PCMU, "PCMU/8000", 0, 8000, 8000, 160, 160),
    (PCMA, "PCMA/8000", 8, 8000, 8000, 160, 160),
    (G722, "G722/8000", 9, 8000, 16000, 160, 320),
    (OPUS, "opus/48000/2", None, 48000, 48000, 960, 960),
]


@pytest.mark.parametrize(("codec", "rtpmap", "pt", "clock", "rate", "units", "samples"), FACTS)
def test_sdp_and_rtp_facts(
    codec: AudioCodec, rtpmap: str, pt: int | None, clock: int, rate: int, units: int, samples: int
) -> None:
    assert isinstance(codec, AudioCodec)
    assert codec.rtpmap == rtpmap
    assert codec.payload_type == pt
    assert (codec.clock_rate, codec.sample_rate) == (clock, rate)
    assert codec.timestamp_units(20) == units
    assert codec.frame_samples(20) == samples


def test_g722_timestamp_runs_at_half_the_sample_rate() -> None:
    """RFC 3551 §4.5.2: 16 kHz audio but an 8000 Hz RTP clock, one octet per timestamp unit."""
    frame = np.zeros(G722.frame_samples(20), dtype=np.int16)
    payload = G722.new_encoder().encode(frame)
    assert len(payload) == G722.timestamp_units(20) == 160


@pytest.mark.parametrize("codec", [PCMU, PCMA, G722, OPUS], ids=lambda c: c.name)
def test_encoder_decoder_objects_per_stream(codec: AudioCodec) -> None:
    if codec is OPUS and not opus_available():
        pytest.skip("libopus / opuslib-next missing")
    encoder, decoder = codec.new_encoder(), codec.new_decoder()
    assert isinstance(encoder, FrameEncoder) and isinstance(decoder, FrameDecoder)
    t = np.arange(codec.frame_samples(20) * 10) / codec.sample_rate
    tone = (8000 * np.sin(2 * np.pi * 700 * t)).astype(np.int16)
    frames = tone.reshape(10, -1)
    decoded = [decoder.decode(encoder.encode(frame)) for frame in frames]
    assert all(d.dtype == np.int16 and d.size == frames.shape[1] for d in decoded)
    last = decoded[-1].astype(np.float64)
    assert np.sqrt(np.mean(last**2)) > 3000  # the tone came through, not silence
    concealed = decoder.conceal(codec.frame_samples(20))
    if codec is OPUS:
        assert concealed is not None and concealed.size == codec.frame_samples(20)
    else:
        assert concealed is None  # G.711 and G.722 leave concealment to the caller


def test_catalog_lookup() -> None:
    assert audio_codec("g722") is G722
    assert audio_codec("G722/8000") is G722
    assert audio_codec("OPUS/48000/2") is OPUS
    assert audio_codec("pcma") is PCMA
    assert audio_codec_by_payload_type(9) is G722
    assert audio_codec_by_payload_type(0) is PCMU
    assert [c.name for c in AUDIO_CODECS] == ["opus", "G722", "PCMU", "PCMA"]
    with pytest.raises(KeyError):
        audio_codec("G729")
    with pytest.raises(KeyError):
        audio_codec_by_payload_type(96)  # dynamic numbers mean nothing without SDP
