"""Codec choice in offer/answer (RFC 3264 §5.1, §6.1, §7, §8.3.2) for Opus, G.722 and G.711.

Opus is ``opus/48000/2`` on a dynamic payload type with RFC 7587 §6.1 fmtp; G.722 is
``G722/8000`` on static type 9 (RFC 3551 §4.5.2); numbers name what each side receives.
"""

from __future__ import annotations

import pytest

from securephone.errors import SdpError
from securephone.media.codecs.catalog import bandwidth_label, negotiated_codec
from securephone.media.codecs.opus import OpusCodec, OpusParams
from securephone.sdp.offer_answer import (
    MediaCapabilities,
    create_answer,
    create_offer,
    process_answer,
)
from securephone.sdp.session import SessionDescription, parse

HD = MediaCapabilities(codecs=("opus", "G722", "PCMU", "PCMA"))
NARROW = MediaCapabilities(codecs=("PCMU", "PCMA"))


def offer_of(body: str) -> SessionDescription:
    head = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    return parse((head + body.strip().replace("\n", "\r\n") + "\r\n").encode())


def test_our_offer_lists_opus_g722_g711_in_preference_order() -> None:
    media = create_offer(HD, 5000, 1, 0).media[0]
    assert media.formats == ["111", "9", "0", "8", "101"]
    assert media.rtpmap(111) == (111, "opus", 48000, 2)
    assert media.rtpmap(9) == (9, "G722", 8000, None)
    params = OpusParams.parse(media.fmtp(111) or "")
    assert params.useinbandfec and not params.usedtx
    assert params.maxaveragebitrate == 32000
    assert media.fmtp(9) is None


def test_an_offer_of_g722_only_is_answered_with_g722_at_its_8000_clock() -> None:
    offer = offer_of("m=audio 6000 RTP/AVP 9\na=rtpmap:9 G722/8000")
    answer, agreed = create_answer(offer, HD, 5000, 1, 0)
    assert answer.media[0].formats == ["9"]
    assert (agreed.codec, agreed.payload_type, agreed.clock_rate) == ("G722", 9, 8000)
    codec = negotiated_codec(agreed.codec, agreed.local_fmtp, agreed.fmtp, agreed.ptime)
    assert (codec.frame_samples(20), codec.timestamp_units(20)) == (320, 160)
    assert bandwidth_label(codec) == "G722 (wideband, 16 kHz)"


def test_static_g722_without_rtpmap_is_understood() -> None:
    _, agreed = create_answer(offer_of("m=audio 6000 RTP/AVP 9 0"), HD, 5000, 1, 0)
    assert agreed.codec == "G722"


def test_the_answerer_uses_its_own_order_and_the_offerers_numbers() -> None:
    offer = offer_of(
        "m=audio 6000 RTP/AVP 0 9 96\na=rtpmap:96 opus/48000/2\na=fmtp:96 useinbandfec=1"
    )
    answer, agreed = create_answer(offer, HD, 5000, 1, 0)
    media = answer.media[0]
    assert media.formats == ["96"]
    assert media.rtpmap(96) == (96, "opus", 48000, 2)
    assert "useinbandfec=1" in (media.fmtp(96) or "")
    assert agreed.codec == "opus" and agreed.payload_type == agreed.receive_payload_type == 96
    assert agreed.fmtp == "useinbandfec=1"


def test_a_narrowband_phone_answers_pcmu_to_a_wideband_offer() -> None:
    offer = offer_of("m=audio 6000 RTP/AVP 96 9 0\na=rtpmap:96 opus/48000/2")
    _, agreed = create_answer(offer, NARROW, 5000, 1, 0)
    assert agreed.codec == "PCMU"


def test_only_opus_with_odd_fmtp_is_accepted_and_its_parameters_read() -> None:
    offer = offer_of(
        "m=audio 6000 RTP/AVP 120\na=rtpmap:120 OPUS/48000\n"
        "a=fmtp:120 MaxPlaybackRate=16000; sprop-stereo=1;x-vendor=7;MAXAVERAGEBITRATE=20000"
    )
    _, agreed = create_answer(offer, HD, 5000, 1, 0)
    assert (agreed.codec.lower(), agreed.payload_type) == ("opus", 120)
    codec = negotiated_codec(agreed.codec, agreed.local_fmtp, agreed.fmtp, agreed.ptime)
    assert isinstance(codec, OpusCodec)
    assert codec.remote.maxplaybackrate == 16000 and codec.remote.maxaveragebitrate == 20000
    assert codec.remote.ignored == ("x-vendor",)
    assert bandwidth_label(codec) == "opus (wideband, 16 kHz)"


def test_opus_fmtp_with_values_out_of_range_falls_back_to_the_defaults() -> None:
    offer = offer_of(
        "m=audio 6000 RTP/AVP 111\na=rtpmap:111 opus/48000/2\na=fmtp:111 maxaveragebitrate=9999999"
    )
    _, agreed = create_answer(offer, HD, 5000, 1, 0)
    codec = negotiated_codec(agreed.codec, agreed.local_fmtp, agreed.fmtp, agreed.ptime)
    assert isinstance(codec, OpusCodec) and codec.remote == OpusParams()


def test_only_opus_offered_to_a_phone_without_opus_is_refused_with_488() -> None:
    offer = offer_of("m=audio 6000 RTP/AVP 111\na=rtpmap:111 opus/48000/2")
    with pytest.raises(SdpError, match="111 opus/48000") as caught:
        create_answer(offer, NARROW, 5000, 1, 0)
    assert caught.value.status_hint == 488


def test_a_number_that_is_telephone_event_in_the_offer_stays_so_in_the_answer() -> None:
    # we would receive Opus on 111 ourselves; the offerer uses 111 for telephone-event
    offer = offer_of(
        "m=audio 6000 RTP/AVP 96 111\na=rtpmap:96 opus/48000/2\n"
        "a=rtpmap:111 telephone-event/8000\na=fmtp:111 0-16"
    )
    answer, agreed = create_answer(offer, HD, 5000, 1, 0)
    media = answer.media[0]
    assert media.rtpmap(96) == (96, "opus", 48000, 2)
    assert media.rtpmap(111) == (111, "telephone-event", 8000, None)
    assert (agreed.payload_type, agreed.telephone_event_pt) == (96, 111)


def test_an_answer_that_maps_our_opus_number_to_another_codec() -> None:
    # RFC 3264 §5.1: each side's numbers say what it receives. We offered 111 = opus, 9 = G722;
    # the answer receives G.722 on 111. We send G.722 with 111 and receive it on 9.
    ours = create_offer(HD, 5000, 1, 0)
    answer = offer_of("m=audio 6000 RTP/AVP 111\na=rtpmap:111 G722/8000")
    agreed = process_answer(ours, answer, HD)
    assert (agreed.codec, agreed.payload_type, agreed.receive_payload_type) == ("G722", 111, 9)


def test_an_answer_that_renumbers_opus() -> None:
    ours = create_offer(HD, 5000, 1, 0)
    answer = offer_of(
        "m=audio 6000 RTP/AVP 98\na=rtpmap:98 opus/48000/2\na=fmtp:98 maxaveragebitrate=24000"
    )
    agreed = process_answer(ours, answer, HD)
    assert (agreed.codec, agreed.payload_type, agreed.receive_payload_type) == ("opus", 98, 111)
    assert agreed.fmtp == "maxaveragebitrate=24000"
    assert agreed.local_fmtp == HD.opus_fmtp


def test_an_answer_with_a_codec_we_did_not_offer_is_refused() -> None:
    ours = create_offer(NARROW, 5000, 1, 0)
    answer = offer_of("m=audio 6000 RTP/AVP 9\na=rtpmap:9 G722/8000")
    with pytest.raises(SdpError) as caught:
        process_answer(ours, answer, NARROW)
    assert caught.value.status_hint == 488


def test_opus_payload_type_must_be_a_free_dynamic_number() -> None:
    with pytest.raises(ValueError, match="opus_payload_type"):
        MediaCapabilities(codecs=("opus",), opus_payload_type=101, telephone_event_pt=101)
    with pytest.raises(ValueError, match="opus_payload_type"):
        MediaCapabilities(codecs=("opus",), opus_payload_type=9)
