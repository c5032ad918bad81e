"""Opus through libopus: round trips, PLC and FEC on loss, and the RFC 7587 §6.1 fmtp."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from securephone.media.codecs.base import AudioCodec, FrameDecoder, FrameEncoder
from securephone.media.codecs.opus import (
    OPUS,
    OpusCodec,
    OpusDecoder,
    OpusEncoder,
    OpusError,
    OpusFmtpError,
    OpusParams,
    opus_available,
)

RATE = 48000
FRAME = 960  # 20 ms
needs_libopus = pytest.mark.skipif(not opus_available(), reason="libopus / opuslib-next missing")

Signal = npt.NDArray[np.int16]


def _tone(freq: float, seconds: float = 1.0, amplitude: float = 10000) -> Signal:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _chirp() -> tuple[Signal, npt.NDArray[np.float64]]:
    """A 2 s linear chirp from 200 Hz to 3200 Hz and its instantaneous frequency."""
    t = np.arange(2 * RATE) / RATE
    return (10000 * np.sin(2 * np.pi * (200 * t + 750 * t**2))).astype(np.int16), 200 + 1500 * t


def _round_trip(signal: Signal, bitrate: int) -> tuple[Signal, list[bytes]]:
    encoder = OpusEncoder(OpusParams(maxaveragebitrate=bitrate), bitrate=510000)
    decoder = OpusDecoder()
    packets = [encoder.encode(frame) for frame in signal.reshape(-1, FRAME)]
    return np.concatenate([decoder.decode(packet) for packet in packets]), packets


def _purity_db(decoded: Signal, freq: float) -> float:
    """Energy within 60 Hz of ``freq`` over the rest, after the first 200 ms."""
    y = decoded[9600:].astype(np.float64) * np.hanning(decoded.size - 9600)
    power = np.abs(np.fft.rfft(y)) ** 2
    near = np.abs(np.fft.rfftfreq(y.size, 1 / RATE) - freq) < 60
    return float(10 * np.log10(power[near].sum() / power[~near].sum()))


def _snr_db(reference: Signal, test: Signal) -> float:
    ref, err = reference.astype(np.float64), reference.astype(np.float64) - test
    return float(10 * np.log10((ref**2).sum() / max((err**2).sum(), 1.0)))


# --- round trips ---------------------------------------------------------------------------------


@needs_libopus
@pytest.mark.parametrize("bitrate", [12000, 24000, 32000, 64000])
def test_tone_round_trip(bitrate: int) -> None:
    tone = _tone(1000)
    decoded, _ = _round_trip(tone, bitrate)
    assert decoded.dtype == np.int16 and decoded.size == tone.size
    assert _purity_db(decoded, 1000) > 20
    level = np.sqrt(np.mean(decoded[9600:].astype(np.float64) ** 2))
    assert 0.7 < level / (10000 / np.sqrt(2)) < 1.4


@needs_libopus
def test_more_bits_give_a_cleaner_tone() -> None:
    tone = _tone(1000)
    assert (
        _purity_db(_round_trip(tone, 64000)[0], 1000)
        > _purity_db(_round_trip(tone, 12000)[0], 1000) + 10
    )


@needs_libopus
@pytest.mark.parametrize("bitrate", [12000, 32000, 64000])
def test_chirp_frequency_is_tracked(bitrate: int) -> None:
    """Frame by frame, the decoded chirp's peak is within 60 Hz of the sent frequency."""
    chirp, freq = _chirp()
    decoded, _ = _round_trip(chirp, bitrate)
    head, sent = decoded[:24000].astype(np.float64), chirp[:24000].astype(np.float64)
    delay = int(np.argmax(np.correlate(head, sent, "full"))) - 23999
    assert 0 <= delay < 960  # libopus look-ahead plus resampler: a few ms
    hits = []
    for k in range(5, chirp.size // FRAME - 1):
        segment = decoded[k * FRAME + delay : (k + 1) * FRAME + delay] * np.hanning(FRAME)
        spectrum = np.abs(np.fft.rfft(segment, 8 * FRAME))
        peak = np.fft.rfftfreq(8 * FRAME, 1 / RATE)[int(np.argmax(spectrum))]
        hits.append(abs(peak - freq[k * FRAME + FRAME // 2]) < 60)
    assert np.mean(hits) > 0.9


@needs_libopus
def test_wideband_tone_passes_and_narrowband_cap_removes_it() -> None:
    """A 6 kHz tone survives at 24 kbit/s; a receiver's maxplaybackrate=8000 filters it out."""
    tone = _tone(6000)
    assert _purity_db(_round_trip(tone, 24000)[0], 6000) > 15
    encoder = OpusEncoder(OpusParams(maxplaybackrate=8000))
    decoder = OpusDecoder()
    decoded = np.concatenate([decoder.decode(encoder.encode(f)) for f in tone.reshape(-1, FRAME)])
    assert _purity_db(decoded, 6000) < 0


@needs_libopus
def test_maxaveragebitrate_limits_the_packets() -> None:
    tone = _tone(1000, seconds=2)
    sizes = {rate: np.mean([len(p) for p in _round_trip(tone, rate)[1]]) for rate in (12000, 64000)}
    assert sizes[12000] <= 1.25 * 12000 / 8 / 50
    assert sizes[64000] > 2 * sizes[12000]


@needs_libopus
def test_stereo_interleaved_round_trip() -> None:
    stereo = OpusCodec(local=OpusParams(stereo=True), remote=OpusParams(stereo=True))
    assert stereo.channels == 2 and stereo.rtpmap == "opus/48000/2"
    left, right = _tone(500), _tone(1500)
    pcm = np.stack([left, right], axis=1).reshape(-1)
    encoder, decoder = stereo.new_encoder(), stereo.new_decoder()
    decoded = np.concatenate(
        [decoder.decode(encoder.encode(f)) for f in pcm.reshape(-1, 2 * FRAME)]
    )
    channels = decoded.reshape(-1, 2).T
    assert _purity_db(channels[0], 500) > 15
    assert _purity_db(channels[1], 1500) > 15


# --- loss: PLC and FEC ---------------------------------------------------------------------------


def _lost_frame_snr(fec_negotiated: bool, use_next: bool, lost: int = 50) -> float:
    """SNR of the concealed frame against what a loss-free decoder made of it."""
    chirp, _ = _chirp()
    encoder = OpusEncoder(OpusParams(useinbandfec=fec_negotiated))
    packets = [encoder.encode(frame) for frame in chirp.reshape(-1, FRAME)]
    clean = OpusDecoder()
    reference = [clean.decode(packet) for packet in packets]
    decoder = OpusDecoder()
    for packet in packets[:lost]:
        decoder.decode(packet)
    concealed = decoder.conceal(FRAME, packets[lost + 1] if use_next else None)
    assert concealed is not None and concealed.size == FRAME
    return _snr_db(reference[lost], concealed)


@needs_libopus
def test_fec_recovers_a_lost_frame_better_than_plc() -> None:
    fec, plc = _lost_frame_snr(True, True), _lost_frame_snr(True, False)
    assert fec > plc + 10
    assert fec > 10


@needs_libopus
def test_without_negotiated_fec_the_next_packet_does_not_help() -> None:
    """No useinbandfec from the receiver: no LBRR is sent, libopus falls back to PLC."""
    assert abs(_lost_frame_snr(False, True) - _lost_frame_snr(False, False)) < 3


@needs_libopus
def test_conceal_needs_an_opus_frame_size() -> None:
    with pytest.raises(OpusError):
        OpusDecoder().conceal(1000)


# --- configuration -------------------------------------------------------------------------------


@needs_libopus
def test_encoder_follows_remote_parameters() -> None:
    default = OpusEncoder().settings
    assert default["dtx"] == 0 and default["inband_fec"] == 0 and default["bitrate"] == 32000
    shaped = OpusEncoder(
        OpusParams(useinbandfec=True, maxaveragebitrate=20000, maxplaybackrate=16000, cbr=True)
    ).settings
    assert shaped["inband_fec"] == 1 and shaped["packet_loss_perc"] > 0
    assert shaped["bitrate"] == 20000 and shaped["vbr"] == 0
    assert shaped["max_bandwidth"] == 1103  # OPUS_BANDWIDTH_WIDEBAND
    assert OpusEncoder(OpusParams(usedtx=True)).settings["dtx"] == 1


@needs_libopus
def test_bad_frames_and_payloads_are_refused() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    with pytest.raises(OpusError):
        encoder.encode(np.zeros(1000, dtype=np.int16))
    with pytest.raises(TypeError):
        encoder.encode(np.zeros(FRAME, dtype=np.float32))
    with pytest.raises(OpusError):
        decoder.decode(b"")
    with pytest.raises(OpusError):
        decoder.decode(b"\x03\x00")  # code 3 packet announcing zero frames (RFC 6716 §3.4 R5)


@needs_libopus
def test_codec_interface() -> None:
    assert isinstance(OPUS, AudioCodec)
    assert isinstance(OPUS.new_encoder(), FrameEncoder)
    assert isinstance(OPUS.new_decoder(), FrameDecoder)
    assert (OPUS.name, OPUS.payload_type, OPUS.clock_rate, OPUS.sample_rate) == (
        "opus",
        None,
        48000,
        48000,
    )
    assert OPUS.rtpmap == "opus/48000/2" and OPUS.channels == 1
    assert OPUS.timestamp_units(20) == 960 and OPUS.frame_samples(20) == 960
    assert OPUS.fmtp == "useinbandfec=1"


# --- fmtp (RFC 7587 §6.1) ------------------------------------------------------------------------


def test_fmtp_parse() -> None:
    params = OpusParams.parse(
        "maxplaybackrate=16000; sprop-maxcapturerate=16000; maxaveragebitrate=20000;"
        " stereo=1; sprop-stereo=0; cbr=0; useinbandfec=1; usedtx=0"
    )
    assert params == OpusParams(
        maxplaybackrate=16000,
        sprop_maxcapturerate=16000,
        maxaveragebitrate=20000,
        stereo=True,
        useinbandfec=True,
    )


def test_fmtp_webrtc_style_and_case() -> None:
    params = OpusParams.parse("minptime=10;UseInbandFEC=1")
    assert params.useinbandfec and params.ignored == ("minptime",)
    assert OpusParams.parse("") == OpusParams()


def test_fmtp_serialise_round_trip() -> None:
    params = OpusParams(maxaveragebitrate=40000, stereo=True, useinbandfec=True, usedtx=True)
    text = params.to_fmtp()
    assert text == "maxaveragebitrate=40000;stereo=1;useinbandfec=1;usedtx=1"
    assert OpusParams.parse(text) == params
    assert OpusParams().to_fmtp() == ""


@pytest.mark.parametrize(
    "fmtp",
    [
        "useinbandfec=2",
        "stereo=yes",
        "stereo",
        "=1",
        "maxaveragebitrate=5999",
        "maxaveragebitrate=510001",
        "maxaveragebitrate=-6000",
        "maxaveragebitrate=+6000",
        "maxaveragebitrate=abc",
        "maxaveragebitrate=",
        "maxplaybackrate=96000",
        "sprop-maxcapturerate=7999",
        "stereo=1;stereo=0",
        "maxaveragebitrate=１２０００",
    ],
)
def test_fmtp_bad_values_rejected(fmtp: str) -> None:
    with pytest.raises(OpusFmtpError):
        OpusParams.parse(fmtp)


def test_bad_ptime_rejected() -> None:
    with pytest.raises(OpusFmtpError):
        OpusCodec(ptime=30)
    assert OpusCodec(ptime=60).ptime == 60
