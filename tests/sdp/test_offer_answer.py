"""Offer/answer (RFC 3264) for one audio stream, hold (RFC 3264 §8.4) and SDES (RFC 4568)."""

from __future__ import annotations

import base64

import pytest

from securephone.sdp import crypto
from securephone.sdp.offer_answer import (
    MediaCapabilities,
    NegotiatedMedia,
    answer_direction,
    create_answer,
    create_offer,
    direction_of,
    hold_direction,
    make_reoffer,
    process_answer,
)
from securephone.sdp.session import (
    Connection,
    MediaDescription,
    SdpError,
    SessionDescription,
    parse,
)

# RFC 3264 §10's examples name hosts in c=; the phone itself only takes IP literals (tested below)
CAPS = MediaCapabilities(literal_addresses_only=False)


def sdp(text: str) -> SessionDescription:
    """The RFC examples are printed with LF and no trailing spaces; parse() takes them as is."""
    return parse(text.strip() + "\n")


def m_line(media: MediaDescription) -> str:
    return media.to_lines()[0]


# ---------------------------------------------------------------- RFC 3264 §10.1

# RFC 3264 §10.1: Alice offers one audio and two video streams.
RFC3264_10_1_OFFER = sdp("""
v=0
o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
""")

# RFC 3264 §10.1: Bob's answer (he rejects the first video stream).
RFC3264_10_1_ANSWER = sdp("""
v=0
o=bob 2890844730 2890844730 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 49920 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
""")

# RFC 3264 §10.1: Bob's re-offer: new audio port, version + 1, an added recvonly audio stream.
RFC3264_10_1_REOFFER = sdp("""
v=0
o=bob 2890844730 2890844731 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 65422 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
m=audio 51434 RTP/AVP 110
a=rtpmap:110 telephone-events/8000
a=recvonly
""")

# RFC 3264 §10.1: Alice's answer to the re-offer.
RFC3264_10_1_REANSWER = sdp("""
v=0
o=alice 2890844526 2890844527 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
m=audio 53122 RTP/AVP 110
a=rtpmap:110 telephone-events/8000
a=sendonly
""")


def test_10_1_answering_alices_offer() -> None:
    answer, negotiated = create_answer(RFC3264_10_1_OFFER, CAPS, 49920, 2890844730, 2890844730)
    audio, video1, video2 = answer.media
    # The audio part matches Bob's answer in RFC 3264 §10.1.
    assert m_line(audio) == "m=audio 49920 RTP/AVP 0"
    assert audio.rtpmap(0) is not None and audio.attribute("rtpmap") == "0 PCMU/8000"
    assert answer.timing == RFC3264_10_1_OFFER.timing  # "t=" equals the offer's (§6)
    # Our policy rejects every video stream with port 0, keeping m-line order (§6).
    assert [m_line(video1), m_line(video2)] == ["m=video 0 RTP/AVP 31", "m=video 0 RTP/AVP 32"]
    assert negotiated == NegotiatedMedia(
        remote_address="host.anywhere.com",
        remote_port=49170,
        remote_rtcp_port=49171,
        codec="PCMU",
        payload_type=0,
        clock_rate=8000,
        telephone_event_pt=None,  # Alice did not offer telephone-event
        ptime=20,
        local_direction="sendrecv",
        remote_direction="sendrecv",
        proto="RTP/AVP",
        media_index=0,
    )
    assert parse(bytes(answer)) == answer


def test_10_1_processing_bobs_answer() -> None:
    negotiated = process_answer(RFC3264_10_1_OFFER, RFC3264_10_1_ANSWER, CAPS)
    assert (negotiated.remote_address, negotiated.remote_port) == ("host.example.com", 49920)
    assert negotiated.remote_rtcp_port == 49921  # RTP port + 1 (RFC 3550 §11)
    assert (negotiated.codec, negotiated.payload_type, negotiated.clock_rate) == ("PCMU", 0, 8000)
    assert negotiated.can_send and negotiated.can_receive and not negotiated.is_on_hold


def test_10_1_reoffer_increments_the_origin_version() -> None:
    reoffer = make_reoffer(RFC3264_10_1_ANSWER, "sendrecv")
    assert reoffer.origin.sess_version == RFC3264_10_1_REOFFER.origin.sess_version == 2890844731
    assert reoffer.origin.sess_id == RFC3264_10_1_REOFFER.origin.sess_id
    assert RFC3264_10_1_ANSWER.origin.sess_version == 2890844730  # the input is not modified


def test_10_1_answering_bobs_reoffer_keeps_four_m_lines() -> None:
    answer, negotiated = create_answer(RFC3264_10_1_REOFFER, CAPS, 49170, 2890844526, 2890844527)
    assert [m_line(m) for m in answer.media] == [
        "m=audio 49170 RTP/AVP 0",
        "m=video 0 RTP/AVP 31",
        "m=video 0 RTP/AVP 32",
        # A second audio stream is refused: this phone runs one audio stream per call.
        "m=audio 0 RTP/AVP 110",
    ]
    assert (negotiated.remote_port, negotiated.media_index) == (65422, 0)


def test_10_1_processing_alices_answer_to_the_reoffer() -> None:
    negotiated = process_answer(RFC3264_10_1_REOFFER, RFC3264_10_1_REANSWER, CAPS)
    assert (negotiated.remote_address, negotiated.remote_port) == ("host.anywhere.com", 49170)
    assert negotiated.codec == "PCMU"
    assert negotiated.telephone_event_pt is None  # RFC's "telephone-events" is not RFC 4733's


# ---------------------------------------------------------------- RFC 3264 §10.2

# RFC 3264 §10.2: one of N codec selection; the first offer is inactive.
RFC3264_10_2_OFFER = sdp("""
v=0
o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 62986 RTP/AVP 0 4 18
a=rtpmap:0 PCMU/8000
a=rtpmap:4 G723/8000
a=rtpmap:18 G729/8000
a=inactive
""")

RFC3264_10_2_ANSWER = sdp("""
v=0
o=bob 2890844730 2890844731 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 54344 RTP/AVP 0 4
a=rtpmap:0 PCMU/8000
a=rtpmap:4 G723/8000
a=inactive
""")

RFC3264_10_2_UPDATED_OFFER = sdp("""
v=0
o=alice 2890844526 2890844527 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 62986 RTP/AVP 4
a=rtpmap:4 G723/8000
a=sendrecv
""")

RFC3264_10_2_FINAL_ANSWER = sdp("""
v=0
o=bob 2890844730 2890844732 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 54344 RTP/AVP 4
a=rtpmap:4 G723/8000
a=sendrecv
""")


def test_10_2_inactive_offer_gets_an_inactive_answer() -> None:
    answer, negotiated = create_answer(RFC3264_10_2_OFFER, CAPS, 54344, 2890844730, 2890844731)
    (audio,) = answer.media
    assert m_line(audio) == "m=audio 54344 RTP/AVP 0"
    assert audio.direction == "inactive"
    assert not negotiated.can_send and not negotiated.can_receive


def test_10_2_processing_bobs_answer_uses_the_first_answered_codec() -> None:
    negotiated = process_answer(RFC3264_10_2_OFFER, RFC3264_10_2_ANSWER, CAPS)
    assert (negotiated.codec, negotiated.payload_type, negotiated.remote_port) == ("PCMU", 0, 54344)
    assert negotiated.local_direction == negotiated.remote_direction == "inactive"


def test_10_2_g723_only_offer_is_not_acceptable_to_a_g711_phone() -> None:
    with pytest.raises(SdpError, match=r"offered: audio RTP/AVP port 62986 \[4 G723/8000\]") as e:
        create_answer(RFC3264_10_2_UPDATED_OFFER, CAPS, 54344, 2890844730, 2890844732)
    assert e.value.status_hint == 488
    assert "we accept PCMU, PCMA over RTP/AVP" in str(e.value)


def test_10_2_g723_phone_answers_like_bob() -> None:
    caps = MediaCapabilities(codecs=["G723"], telephone_event=False, literal_addresses_only=False)
    answer, negotiated = create_answer(RFC3264_10_2_UPDATED_OFFER, caps, 54344, 1, 1)
    expected = RFC3264_10_2_FINAL_ANSWER.media[0]
    assert m_line(answer.media[0]) == m_line(expected)
    assert answer.media[0].attribute("rtpmap") == expected.attribute("rtpmap") == "4 G723/8000"
    assert answer.media[0].direction == expected.direction == "sendrecv"
    assert process_answer(RFC3264_10_2_UPDATED_OFFER, RFC3264_10_2_FINAL_ANSWER, caps).codec == (
        "G723"
    )
    assert negotiated.codec == "G723"


# ---------------------------------------------------------------- offers


def test_create_offer() -> None:
    offer = create_offer(CAPS, 40000, 123, 1)
    assert str(offer) == (
        "v=0\r\n"
        "o=- 123 1 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert parse(bytes(offer)) == offer


def test_create_srtp_offer_with_extras() -> None:
    line = crypto.format_crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(30))
    caps = MediaCapabilities(local_address="::1", proto="RTP/SAVP", rtcp_mux=True)
    offer = create_offer(
        caps, 5004, 9, 9, "sendonly", [line], extra_attributes=[("zrtp-hash", "1.10 " + "a" * 64)]
    )
    media = offer.media[0]
    assert m_line(media) == "m=audio 5004 RTP/SAVP 0 8 101"
    assert str(offer.connection) == "IN IP6 ::1"
    assert media.crypto_lines == [line]
    assert media.rtcp_mux and media.direction == "sendonly"
    assert media.zrtp_hash is not None and media.zrtp_hash.value == "a" * 64


def test_offer_argument_checks() -> None:
    with pytest.raises(ValueError, match="needs at least one a=crypto"):
        create_offer(MediaCapabilities(proto="RTP/SAVP"), 5004, 1, 1)
    with pytest.raises(ValueError, match=r"port must be 1\.\.65535"):
        create_offer(CAPS, 0, 1, 1)
    with pytest.raises(ValueError, match="direction must be one of"):
        create_offer(CAPS, 5004, 1, 1, "mute")
    with pytest.raises(crypto.CryptoAttributeError):
        create_offer(CAPS, 5004, 1, 1, crypto_lines=["1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codecs": ["AMR-WB"]}, "static audio codecs"),
        ({"codecs": []}, "static audio codecs"),
        ({"codecs": ["CN"]}, "static audio codecs"),
        ({"proto": "TCP/TLS/RTP/SAVP"}, "proto must be"),
        ({"telephone_event_pt": 8}, "dynamic payload type"),
        ({"ptime": 0}, "ptime must be"),
        ({"local_address": "phone.example.com"}, "does not appear to be an IPv4 or IPv6"),
    ],
)
def test_capabilities_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MediaCapabilities(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- answer policy


def offer_with(media: str, session: str = "") -> SessionDescription:
    return parse(
        "v=0\r\no=peer 7 7 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
        + session
        + media
    )


def test_answer_uses_local_preference_not_offer_order() -> None:
    offer = offer_with("m=audio 6000 RTP/AVP 8 0\r\n")
    _, pcmu_first = create_answer(offer, CAPS, 7000, 1, 1)
    assert (pcmu_first.codec, pcmu_first.payload_type) == ("PCMU", 0)
    answer, pcma_first = create_answer(
        offer, MediaCapabilities(codecs=("PCMA", "PCMU")), 7000, 1, 1
    )
    assert (pcma_first.codec, pcma_first.payload_type) == ("PCMA", 8)
    assert answer.media[0].formats == ["8"]  # a single codec is answered


def test_answer_keeps_the_offerers_dynamic_payload_type() -> None:
    offer = offer_with(
        "m=audio 6000 RTP/AVP 0 96\r\na=rtpmap:96 TELEPHONE-EVENT/8000\r\na=fmtp:96 0-15\r\n"
        "a=ptime:30\r\n"
    )
    answer, negotiated = create_answer(offer, CAPS, 7000, 1, 1)
    media = answer.media[0]
    assert media.formats == ["0", "96"]
    event = media.rtpmap(96)
    assert event is not None and event.encoding_name == "telephone-event"
    assert media.fmtp(96) == "0-16"
    assert negotiated.telephone_event_pt == 96
    assert negotiated.ptime == 30  # the peer's a=ptime is what we send with
    assert media.ptime == 20  # ... and ours is what we want to receive


def test_telephone_event_at_another_rate_or_disabled_is_not_answered() -> None:
    offer = offer_with("m=audio 6000 RTP/AVP 0 97\r\na=rtpmap:97 telephone-event/48000\r\n")
    assert create_answer(offer, CAPS, 7000, 1, 1)[0].media[0].formats == ["0"]
    plain = offer_with("m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    no_dtmf = MediaCapabilities(telephone_event=False)
    assert create_answer(plain, no_dtmf, 7000, 1, 1)[1].telephone_event_pt is None


def test_static_payload_type_without_rtpmap_is_understood() -> None:
    _, negotiated = create_answer(offer_with("m=audio 6000 RTP/AVP 8\r\n"), CAPS, 7000, 1, 1)
    assert negotiated.codec == "PCMA"


def test_disabled_audio_stream_is_skipped_for_the_next_one() -> None:
    offer = offer_with("m=audio 0 RTP/AVP 0\r\nm=audio 6002 RTP/AVP 0\r\n")
    answer, negotiated = create_answer(offer, CAPS, 7000, 1, 1)
    assert [m.port for m in answer.media] == [0, 7000]
    assert (negotiated.media_index, negotiated.remote_port) == (1, 6002)


def test_video_first_then_audio() -> None:
    offer = offer_with(
        "m=video 6000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 6002 RTP/AVP 0\r\n"
    )
    answer, negotiated = create_answer(offer, CAPS, 7000, 1, 1)
    assert [m_line(m) for m in answer.media] == ["m=video 0 RTP/AVP 96", "m=audio 7000 RTP/AVP 0"]
    assert negotiated.media_index == 1


@pytest.mark.parametrize(
    ("media", "fragment"),
    [
        (
            "m=video 6000 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n",
            "video RTP/AVP port 6000 [31 H261/",
        ),
        ("m=video 6000 RTP/AVP 34\r\n", "video RTP/AVP port 6000 [34]"),
        ("m=audio 0 RTP/AVP 0\r\n", "audio RTP/AVP disabled [0 PCMU/8000]"),
        ("m=audio 6000 RTP/AVP 96\r\n", "audio RTP/AVP port 6000 [96]"),
        ("m=audio 6000 UDP/TLS/RTP/SAVP 0\r\n", "audio UDP/TLS/RTP/SAVP port 6000"),
        ("m=image 6000 udptl t38\r\n", "image udptl port 6000 [t38]"),
    ],
)
def test_nothing_acceptable_is_488_naming_the_offer(media: str, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        create_answer(offer_with(media), CAPS, 7000, 1, 1)
    assert info.value.status_hint == 488
    assert fragment in str(info.value)


# ---------------------------------------------------------------- directions and hold


@pytest.mark.parametrize(
    ("offered", "wanted", "answered"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),  # we hold while answering
        ("sendonly", "sendonly", "inactive"),  # both hold
        ("recvonly", "inactive", "inactive"),
        ("sendrecv", "recvonly", "recvonly"),
    ],
)
def test_answer_direction_rfc3264_6_1(offered: str, wanted: str, answered: str) -> None:
    assert answer_direction(offered, wanted) == answered
    offer = offer_with(f"m=audio 6000 RTP/AVP 0\r\na={offered}\r\n")
    answer, negotiated = create_answer(offer, CAPS, 7000, 1, 1, direction=wanted)
    assert answer.media[0].direction == answered
    assert (negotiated.local_direction, negotiated.remote_direction) == (answered, offered)


def test_session_level_direction_applies_to_the_stream() -> None:
    offer = offer_with("m=audio 6000 RTP/AVP 0\r\n", session="a=sendonly\r\n")
    answer, negotiated = create_answer(offer, CAPS, 7000, 1, 1)
    assert answer.media[0].direction == "recvonly"
    assert negotiated.held_by_remote and negotiated.is_on_hold and not negotiated.held_by_us


def test_rfc2543_hold_with_null_connection() -> None:
    """RFC 3264 §8.4: c=0.0.0.0 means "send neither RTP nor RTCP to me"."""
    offer = parse(
        "v=0\r\no=old 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        "m=audio 6000 RTP/AVP 0\r\n"
    )
    answer, negotiated = create_answer(offer, CAPS, 7000, 1, 1)
    assert answer.media[0].direction == "recvonly"
    assert negotiated.remote_direction == "sendonly"
    assert not negotiated.can_send
    assert negotiated.held_by_remote and negotiated.is_on_hold


@pytest.mark.parametrize(
    ("current", "held"),
    [("sendrecv", "sendonly"), ("recvonly", "inactive"), ("sendonly", "sendonly")],
)
def test_hold_direction_rfc3264_8_4(current: str, held: str) -> None:
    assert hold_direction(current) == held


def test_direction_of() -> None:
    assert [direction_of(s, r) for s in (True, False) for r in (True, False)] == [
        "sendrecv",
        "sendonly",
        "recvonly",
        "inactive",
    ]


def test_hold_and_resume_flow() -> None:
    """RFC 3264 §8.4 / RFC 6337 §5: hold = re-offer sendonly with o= version + 1."""
    offer = create_offer(CAPS, 40000, 55, 1)
    peer = MediaCapabilities(local_address="127.0.0.2")
    answer, _ = create_answer(parse(bytes(offer)), peer, 41000, 77, 1)
    assert process_answer(offer, parse(bytes(answer)), CAPS).is_on_hold is False

    hold = make_reoffer(offer, hold_direction("sendrecv"))
    assert (hold.origin.sess_id, hold.origin.sess_version) == (55, 2)
    assert hold.media[0].direction == "sendonly"
    held_answer, peer_view = create_answer(parse(bytes(hold)), peer, 41000, 77, 2)
    assert held_answer.media[0].direction == "recvonly"
    assert peer_view.held_by_remote and not peer_view.can_send

    ours = process_answer(hold, parse(bytes(held_answer)), CAPS)
    assert ours.held_by_us and ours.is_on_hold
    assert ours.can_send and not ours.can_receive

    resume = make_reoffer(hold, "sendrecv")
    assert resume.origin.sess_version == 3
    assert resume.media[0].direction == "sendrecv"
    assert [a for a in resume.media[0].attributes if a[1] is None] == [("sendrecv", None)]


def test_make_reoffer_leaves_disabled_streams_and_drops_session_direction() -> None:
    previous = offer_with("m=audio 6000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n", "a=sendrecv\r\n")
    reoffer = make_reoffer(previous, "inactive")
    assert reoffer.session_direction is None
    assert reoffer.media[0].direction == "inactive"
    assert reoffer.media[1].attributes == []
    assert previous.session_direction == "sendrecv"  # the original is untouched


# ---------------------------------------------------------------- process_answer checks


def answer_with(media: str, session: str = "") -> SessionDescription:
    return offer_with(media, session)


@pytest.mark.parametrize(
    ("answer_media", "message"),
    [
        ("m=audio 7000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n", "has 2 m-lines, the offer had 1"),
        ("m=video 7000 RTP/AVP 0\r\n", "m-line 1 is video, offered audio"),
        ("m=audio 0 RTP/AVP 0\r\n", "rejected our audio stream"),
        ("m=audio 7000 RTP/SAVP 0\r\n", "changed the transport RTP/AVP to RTP/SAVP"),
        ("m=audio 7000 RTP/AVP 18\r\n", "names no codec we offered"),
        ("m=audio 7000 RTP/AVP 9\r\n", "names no codec we offered"),
        ("m=audio 7000 RTP/AVP 0\r\na=sendonly\r\n", "sendonly is not allowed for an offered"),
    ],
)
def test_bad_answers_are_488(answer_media: str, message: str) -> None:
    offer = create_offer(MediaCapabilities(codecs=["PCMU"]), 40000, 1, 1, "sendonly")
    if "sendonly" not in message:
        offer = create_offer(MediaCapabilities(codecs=["PCMU"]), 40000, 1, 1)
    with pytest.raises(SdpError, match=message) as info:
        process_answer(offer, answer_with(answer_media), CAPS)
    assert info.value.status_hint == 488


def test_answer_may_add_formats_that_were_not_offered() -> None:
    """RFC 3264 §6.1: at least one offered format; others MAY be added."""
    offer = create_offer(CAPS, 40000, 1, 1)
    answer = answer_with("m=audio 7000 RTP/AVP 18 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    negotiated = process_answer(offer, answer, CAPS)
    assert (negotiated.codec, negotiated.payload_type) == ("PCMA", 8)
    assert negotiated.telephone_event_pt == 101


def test_rtcp_port_rules() -> None:
    offer = create_offer(MediaCapabilities(rtcp_mux=True), 40000, 1, 1)
    explicit = process_answer(offer, answer_with("m=audio 7000 RTP/AVP 0\r\na=rtcp:7100\r\n"), CAPS)
    assert explicit.remote_rtcp_port == 7100 and not explicit.rtcp_mux
    muxed = answer_with("m=audio 7000 RTP/AVP 0\r\na=rtcp-mux\r\na=rtcp:7100\r\n")
    negotiated = process_answer(offer, muxed, CAPS)
    assert negotiated.rtcp_mux and negotiated.remote_rtcp_port == 7000  # RFC 5761 §5.1.1
    plain = process_answer(offer, answer_with("m=audio 7000 RTP/AVP 0\r\n"), CAPS)
    assert plain.remote_rtcp_port == 7001


def test_media_level_connection_wins() -> None:
    offer = create_offer(CAPS, 40000, 1, 1)
    answer = answer_with("m=audio 7000 RTP/AVP 0\r\nc=IN IP4 127.0.0.9\r\n")
    assert process_answer(offer, answer, CAPS).remote_address == "127.0.0.9"


# ---------------------------------------------------------------- SDES (RFC 4568)

OFFER_KEY = crypto.format_crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(range(30)))
OFFER_KEY_2 = crypto.format_crypto(2, "AES_CM_128_HMAC_SHA1_32", bytes(range(1, 31)))
ANSWER_KEY = crypto.format_crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(range(30, 60)))
SRTP = MediaCapabilities(proto="RTP/SAVP")


def srtp_offer() -> SessionDescription:
    return parse(bytes(create_offer(SRTP, 40000, 1, 1, crypto_lines=[OFFER_KEY, OFFER_KEY_2])))


def test_srtp_offer_and_answer() -> None:
    offer = srtp_offer()
    answer, peer_view = create_answer(offer, SRTP, 41000, 2, 1, crypto_lines=[ANSWER_KEY])
    assert m_line(answer.media[0]) == "m=audio 41000 RTP/SAVP 0 101"
    assert answer.media[0].crypto_lines == [ANSWER_KEY]
    assert peer_view.remote_crypto == [OFFER_KEY, OFFER_KEY_2] and peer_view.is_secure
    ours = process_answer(offer, parse(bytes(answer)), SRTP)
    assert ours.remote_crypto == [ANSWER_KEY]
    assert ours.proto == "RTP/SAVP"


def test_optional_srtp_accepts_savp_when_keys_are_given() -> None:
    answer, negotiated = create_answer(srtp_offer(), CAPS, 41000, 2, 1, crypto_lines=[ANSWER_KEY])
    assert negotiated.is_secure and answer.media[0].proto == "RTP/SAVP"


def test_savp_offer_without_our_keys_is_refused() -> None:
    with pytest.raises(SdpError, match=r"audio RTP/SAVP port 40000") as info:
        create_answer(srtp_offer(), CAPS, 41000, 2, 1)
    assert info.value.status_hint == 488


def test_mandatory_srtp_never_falls_back_to_rtp() -> None:
    plain = parse(bytes(create_offer(CAPS, 40000, 1, 1)))
    with pytest.raises(SdpError, match="we accept PCMU, PCMA over RTP/SAVP"):
        create_answer(plain, SRTP, 41000, 2, 1, crypto_lines=[ANSWER_KEY])


def test_answer_keys_must_reuse_an_offered_tag_and_suite() -> None:
    wrong_tag = crypto.format_crypto(3, "AES_CM_128_HMAC_SHA1_80", bytes(30))
    with pytest.raises(ValueError, match="tag 3 AES_CM_128_HMAC_SHA1_80 was not offered"):
        create_answer(srtp_offer(), SRTP, 41000, 2, 1, crypto_lines=[wrong_tag])
    wrong_suite = crypto.format_crypto(1, "AES_CM_128_HMAC_SHA1_32", bytes(30))
    with pytest.raises(ValueError, match="was not offered"):
        create_answer(srtp_offer(), SRTP, 41000, 2, 1, crypto_lines=[wrong_suite])


def srtp_answer(*keys: str) -> SessionDescription:
    lines = "".join(f"a=crypto:{k}\r\n" for k in keys)
    return answer_with(f"m=audio 7000 RTP/SAVP 0\r\n{lines}")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ((), "exactly one a=crypto line, got 0"),
        ((ANSWER_KEY, ANSWER_KEY), "exactly one a=crypto line, got 2"),
        ((crypto.format_crypto(2, "AES_CM_128_HMAC_SHA1_80", bytes(30)),), "does not match"),
        ((crypto.format_crypto(9, "AES_CM_128_HMAC_SHA1_80", bytes(30)),), "does not match"),
    ],
)
def test_bad_srtp_answers(keys: tuple[str, ...], message: str) -> None:
    with pytest.raises(SdpError, match=message) as info:
        process_answer(srtp_offer(), srtp_answer(*keys), SRTP)
    assert info.value.status_hint == 488


def test_malformed_answer_key_is_a_crypto_error() -> None:
    bad = "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(20)).decode()
    with pytest.raises(crypto.CryptoAttributeError, match="needs a 30-byte"):
        process_answer(srtp_offer(), srtp_answer(bad), SRTP)


# ---------------------------------------------------------------- two endpoints in memory


def test_two_endpoints_agree() -> None:
    alice_caps = MediaCapabilities(local_address="127.0.0.1", codecs=("PCMA", "PCMU"))
    bob_caps = MediaCapabilities(local_address="127.0.0.2", telephone_event_pt=100)
    offer = create_offer(alice_caps, 30000, 1000, 1)
    answer, bob = create_answer(parse(bytes(offer)), bob_caps, 31000, 2000, 1)
    alice = process_answer(offer, parse(bytes(answer)), alice_caps)
    assert (alice.remote_address, alice.remote_port) == ("127.0.0.2", 31000)
    assert (bob.remote_address, bob.remote_port) == ("127.0.0.1", 30000)
    # Bob prefers PCMU, and answers with the offerer's telephone-event number 101.
    assert alice.codec == bob.codec == "PCMU"
    assert alice.telephone_event_pt == bob.telephone_event_pt == 101
    assert alice.can_send and alice.can_receive and bob.can_send and bob.can_receive


def test_a_malformed_offered_key_is_skipped_and_the_good_one_answered() -> None:
    # RFC 4568 §7.1.2: the answerer picks among the offered lines it understands; a broken
    # line (here an unknown key method) must not stop it from answering a good one.
    broken = "7 AES_CM_128_HMAC_SHA1_80 uri:https://keys.example.com/k"
    offer = offer_with(f"m=audio 7000 RTP/SAVP 0\r\na=crypto:{broken}\r\na=crypto:{OFFER_KEY}\r\n")
    answer, negotiated = create_answer(offer, SRTP, 41000, 2, 1, crypto_lines=[ANSWER_KEY])
    assert answer.media[0].crypto_lines == [ANSWER_KEY]
    assert negotiated.remote_crypto == [broken, OFFER_KEY]


def test_processing_an_answer_to_an_offer_without_audio_is_a_local_error() -> None:
    video = offer_with("m=video 7000 RTP/AVP 31\r\n")
    with pytest.raises(ValueError, match="our offer has no enabled audio stream"):
        process_answer(video, answer_with("m=video 7002 RTP/AVP 31\r\n"), CAPS)


def test_media_goes_only_to_a_unicast_ip_literal() -> None:
    """A name in c= would be resolved per packet, a multicast address would reach a group: 488."""
    strict = MediaCapabilities()
    for address, reason in (("host.example.com", "not an IP"), ("224.0.0.1", "multicast")):
        offer = create_offer(MediaCapabilities(local_address="127.0.0.1"), 40000, 1, 1)
        offer.connection = Connection("IN", "IP4", address)
        with pytest.raises(SdpError) as caught:
            create_answer(offer, strict, 50000, 2, 1)
        assert caught.value.status_hint == 488 and reason in str(caught.value)


@pytest.mark.parametrize(
    ("ptime", "used"), [(1, 20), (5, 20), (15, 20), (30, 30), (120, 120), (10000, 20)]
)
def test_peer_ptime_is_honoured_only_within_10_to_120_ms(ptime: int, used: int) -> None:
    """a=ptime:1 would mean 1,000 packets a second: out-of-range values fall back to ours."""
    offer = create_offer(MediaCapabilities(ptime=20), 40000, 1, 1)
    media = offer.media[0]
    media.attributes = [a for a in media.attributes if a[0] != "ptime"] + [("ptime", str(ptime))]
    _, negotiated = create_answer(offer, MediaCapabilities(), 50000, 2, 1)
    assert negotiated.ptime == used
