"""SDP parse / serialise (RFC 4566 §5, RFC 8866 §5)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securephone.errors import RemoteProtocolError
from securephone.sdp.session import (
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
    ZrtpHash,
    parse,
)

# RFC 4566 §5, the example session description (identical in RFC 8866 §5).
RFC4566_EXAMPLE = (
    "v=0\r\n"
    "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
    "s=SDP Seminar\r\n"
    "i=A Seminar on the session description protocol\r\n"
    "u=http://www.example.com/seminars/sdp.pdf\r\n"
    "e=j.doe@example.com (Jane Doe)\r\n"
    "c=IN IP4 224.2.17.12/127\r\n"
    "t=2873397496 2873404696\r\n"
    "a=recvonly\r\n"
    "m=audio 49170 RTP/AVP 0\r\n"
    "m=video 51372 RTP/AVP 99\r\n"
    "a=rtpmap:99 h263-1998/90000\r\n"
)

# Every optional line type, in RFC 4566 §5 order, to check the serialiser keeps them all.
FULL = (
    "v=0\r\n"
    "o=- 20518 0 IN IP6 2001:db8::1\r\n"
    "s=Full\r\n"
    "i=info\r\n"
    "u=http://example.com/\r\n"
    "e=a@example.com\r\n"
    "e=b@example.com\r\n"
    "p=+1 617 555-6011\r\n"
    "c=IN IP6 FF15::101/3\r\n"
    "b=CT:1000\r\n"
    "t=2873397496 2873404696\r\n"
    "r=604800 3600 0 90000\r\n"
    "r=7d 1h 0 25h\r\n"
    "t=0 0\r\n"
    "z=2882844526 -1h 2898848070 0\r\n"
    "k=prompt\r\n"
    "a=tool:securephone\r\n"
    "a=empty:\r\n"
    "m=audio 49170/2 RTP/AVP 0 8 101\r\n"
    "i=the audio\r\n"
    "c=IN IP4 224.2.1.1/127/3\r\n"
    "c=IN IP4 224.2.1.5/127\r\n"
    "b=AS:64\r\n"
    "k=clear:not-a-real-key\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=rtcp:53020 IN IP4 126.16.64.4\r\n"
    "a=rtcp-mux\r\n"
    "a=sendonly\r\n"
    "m=application 9 TCP/MSRP *\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "a=accept-types:text/plain\r\n"
)

ZRTP_HASH = "fc96d7a1e2ce2f6a7a0e86f8a8ed1b4be27dab4e3e5cbc3a3cf35a0cf3b8f2b9"


def minimal(media: str = "m=audio 4000 RTP/AVP 0\r\n", session: str = "") -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        + session
        + media
    )


# ---------------------------------------------------------------- RFC 4566 §5 example


def test_rfc4566_example_fields() -> None:
    sdp = parse(RFC4566_EXAMPLE)
    assert sdp.origin == Origin("jdoe", 2890844526, 2890842807, "IN", "IP4", "10.47.16.5")
    assert sdp.session_name == "SDP Seminar"
    assert sdp.information == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"]
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12", ttl=127)
    assert sdp.timing == [Timing(2873397496, 2873404696)]
    assert sdp.session_direction == "recvonly"
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        49170,
        "RTP/AVP",
        ["0"],
    )
    assert video.rtpmap(99) == RtpMap(99, "h263-1998", 90000)
    # No media-level direction: the session-level a=recvonly applies (RFC 4566 §6).
    assert sdp.direction(audio) == "recvonly"
    assert sdp.effective_connection(video) is sdp.connection


def test_rfc4566_example_round_trips_byte_for_byte() -> None:
    sdp = parse(RFC4566_EXAMPLE)
    assert str(sdp) == RFC4566_EXAMPLE
    assert bytes(sdp) == RFC4566_EXAMPLE.encode()
    assert sdp.to_bytes() == RFC4566_EXAMPLE.encode()
    assert parse(bytes(sdp)) == sdp


def test_lf_only_and_bytes_input_are_accepted() -> None:
    lf = RFC4566_EXAMPLE.replace("\r\n", "\n")
    assert parse(lf) == parse(RFC4566_EXAMPLE)
    assert parse(lf.encode()) == parse(RFC4566_EXAMPLE)
    assert str(parse(lf)) == RFC4566_EXAMPLE  # output always uses CRLF


def test_trailing_blank_lines_and_missing_final_newline() -> None:
    assert parse(RFC4566_EXAMPLE + "\r\n\r\n") == parse(RFC4566_EXAMPLE)
    assert parse(RFC4566_EXAMPLE.rstrip("\r\n")) == parse(RFC4566_EXAMPLE)


def test_session_parse_classmethod() -> None:
    assert SessionDescription.parse(RFC4566_EXAMPLE) == parse(RFC4566_EXAMPLE)


def test_every_line_type_round_trips() -> None:
    sdp = parse(FULL)
    assert str(sdp) == FULL
    assert sdp.phones == ["+1 617 555-6011"]
    assert sdp.connection == Connection("IN", "IP6", "FF15::101", None, 3)
    assert [t.repeats for t in sdp.timing] == [["604800 3600 0 90000", "7d 1h 0 25h"], []]
    assert sdp.zone_adjustments == "2882844526 -1h 2898848070 0"
    assert sdp.key == "prompt"
    assert sdp.attribute("tool") == "securephone"
    assert sdp.attribute("empty") == ""  # "a=empty:" is a value, not a flag
    audio, msrp = sdp.media
    assert audio.port_count == 2
    assert audio.title == "the audio"
    assert audio.connection == Connection("IN", "IP4", "224.2.1.1", 127, 3)
    assert audio.extra_connections == [Connection("IN", "IP4", "224.2.1.5", 127)]
    assert [str(b) for b in audio.bandwidths] == ["AS:64"]
    assert msrp.formats == ["*"] and msrp.payload_types == []


def test_runs_of_spaces_between_fields_are_tolerated() -> None:
    text = minimal("m=audio  4000  RTP/AVP  0 8\r\n").replace("o=- 1 1", "o=-  1   1")
    sdp = parse(text)
    assert sdp.origin.sess_version == 1
    assert sdp.media[0].formats == ["0", "8"]


def test_empty_session_name_is_accepted() -> None:
    # RFC 3264 §10 examples all use an empty "s=" line.
    assert parse(minimal().replace("s=-", "s=")).session_name == ""


# ---------------------------------------------------------------- media helpers


def test_media_helpers() -> None:
    sdp = parse(
        minimal(
            "m=audio 4000 RTP/SAVP 0 96 101\r\n"
            "c=IN IP4 192.0.2.7\r\n"
            "a=rtpmap:96 opus/48000/2\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-16\r\n"
            "a=fmtp:96 useinbandfec=1; stereo=0\r\n"
            "a=ptime:30\r\n"
            "a=rtcp:4001 IN IP4 192.0.2.8\r\n"
            "a=rtcp-mux\r\n"
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
            f"a=zrtp-hash:1.10 {ZRTP_HASH.upper()}\r\n"
            "a=inactive\r\n",
            session="a=sendrecv\r\n",
        )
    )
    media = sdp.media[0]
    assert media.payload_types == [0, 96, 101]
    assert media.rtpmap(0) is None
    assert media.codec(0) == RtpMap(0, "PCMU", 8000)  # RFC 3551 static assignment
    assert media.codec(96) == RtpMap(96, "opus", 48000, 2)
    assert media.codec(97) is None
    assert media.fmtp(101) == "0-16"
    assert media.fmtp("96") == "useinbandfec=1; stereo=0"
    assert media.fmtp(0) is None
    assert media.ptime == 30
    assert media.rtcp_port == 4001 and media.rtcp_address == "192.0.2.8"
    assert media.rtcp_mux is True
    assert media.crypto_lines == [
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    ]
    assert media.zrtp_hash == ZrtpHash("1.10", ZRTP_HASH)
    # Media-level direction overrides the session level (RFC 4566 §6).
    assert media.direction == "inactive" and sdp.direction(media) == "inactive"
    assert sdp.effective_connection(media) == Connection("IN", "IP4", "192.0.2.7")


def test_helper_defaults_when_absent() -> None:
    sdp = parse(minimal())
    media = sdp.media[0]
    assert media.ptime is None
    assert media.rtcp_port is None and media.rtcp_address is None
    assert media.rtcp_mux is False
    assert media.crypto_lines == []
    assert media.zrtp_hash is None
    assert media.direction is None and sdp.direction(media) == "sendrecv"


def test_first_rtpmap_wins_for_a_duplicated_payload_type() -> None:
    media = parse(minimal("m=audio 1 RTP/AVP 96\r\na=rtpmap:96 A/8000\r\na=rtpmap:96 B/8000\r\n"))
    assert media.media[0].rtpmap(96) == RtpMap(96, "A", 8000)


def test_ptime_with_fraction_is_truncated() -> None:
    assert parse(minimal("m=audio 1 RTP/AVP 0\r\na=ptime:20.0\r\n")).media[0].ptime == 20


def test_null_connection_is_detected() -> None:
    assert Connection("IN", "IP4", "0.0.0.0").is_null
    assert not Connection("IN", "IP4", "127.0.0.1").is_null


@pytest.mark.parametrize(
    ("attribute", "helper", "message"),
    [
        ("a=rtpmap:0 PCMU", lambda m: m.rtpmap(0), "malformed a=rtpmap"),
        ("a=rtpmap:x PCMU/8000", lambda m: m.rtpmaps(), "malformed a=rtpmap"),
        ("a=rtpmap:0 PCMU/fast", lambda m: m.codec(0), "malformed a=rtpmap"),
        ("a=rtpmap:0 PCMU/8000/1/2", lambda m: m.rtpmap(0), "malformed a=rtpmap"),
        ("a=ptime:soon", lambda m: m.ptime, "malformed a=ptime"),
        ("a=ptime:0", lambda m: m.ptime, "out of range"),
        ("a=rtcp:port", lambda m: m.rtcp_port, "malformed a=rtcp"),
        ("a=rtcp:70000", lambda m: m.rtcp_port, "malformed a=rtcp"),
        ("a=rtcp:5 IN IP4", lambda m: m.rtcp_address, "malformed a=rtcp"),
        ("a=zrtp-hash:1.10 abc", lambda m: m.zrtp_hash, "malformed a=zrtp-hash"),
    ],
)
def test_malformed_attribute_values_raise_sdp_error(
    attribute: str, helper: object, message: str
) -> None:
    media = parse(minimal(f"m=audio 1 RTP/AVP 0\r\n{attribute}\r\n")).media[0]
    with pytest.raises(SdpError, match=message) as info:
        helper(media)  # type: ignore[operator]
    assert info.value.status_hint == 400


# ---------------------------------------------------------------- malformed SDP


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty SDP body"),
        ("\r\n\r\n", "empty SDP body"),
        ("o=- 1 1 IN IP4 127.0.0.1\r\nv=0\r\n", "must start with a v= line"),
        ("v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n", "no o= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n", "no s= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\n", "no t= line"),
        ("v=0\r\ns=-\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n", "line 3: o= is out of order"),
        ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n", "only SDP version 0"),
        ("v=0\r\nv=0\r\n", "more than one v= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nr=1d 1h 0\r\nt=0 0\r\n", "r= is out of order"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nx=1\r\n", "unknown type letter 'x'"),
        ("v=0\r\nhello\r\n", "line 2 is not of the form"),
        ("v=0\r\nV=0\r\n", "line 2 is not of the form"),
        ("v=0\r\no =x\r\n", "line 2 is not of the form"),
        ("v=0\r\n\r\ns=-\r\n", "line 2 is not of the form"),
    ],
)
def test_structure_errors(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message) as info:
        parse(text)
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    ("session", "media", "message"),
    [
        ("", "m=audio 4000 RTP/AVP\r\n", "at least one <fmt>"),
        ("", "m=audio 65536 RTP/AVP 0\r\n", "port 65536 is larger than 65535"),
        ("", "m=audio -1 RTP/AVP 0\r\n", "port is not a decimal number"),
        ("", "m=audio 4000 RTP/AVP 128\r\n", "RTP payload type 128 is larger than 127"),
        ("", "m=audio 4000 RTP/AVP PCMU\r\n", "RTP payload type is not a decimal number"),
        ("", "m=audio 4000 RTP//AVP 0\r\n", "proto is not"),
        ("", "m=audio 4000 RTP/AVP 0\r\nc=IN IP4\r\n", r"line 7 \(c=\): expected 3 fields"),
        ("", "m=audio 4000 RTP/AVP 0\r\nb=AS\r\n", "bandwidth needs"),
        ("", "m=audio 4000 RTP/AVP 0\r\nb=AS:lots\r\n", "bandwidth is not a decimal"),
        ("", "m=audio 4000 RTP/AVP 0\r\na=\r\n", "attribute name is not a valid token"),
        ("", "m=audio 4000 RTP/AVP 0\r\na=bad name:1\r\n", "attribute name is not"),
        ("", "m=audio 4000 RTP/AVP 0\r\na=x\r\nc=IN IP4 1.2.3.4\r\n", "c= is out of order"),
        ("", "m=audio 4000 RTP/AVP 0\r\ni=a\r\ni=b\r\n", "more than one i= line"),
        ("", "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", "t= is not allowed in a media"),
        ("a=x\r\n", "t=0 0\r\nm=audio 1 RTP/AVP 0\r\n", "t= is out of order"),
        ("r=1 2\r\n", "", "r= needs <interval> <duration> <offsets>"),
        ("", "m=audio 4000 RTP/AVP 0\r\nr=1 2 3\r\n", "r= is not allowed in a media"),
        ("", "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 224.0.0.1/1/2/3\r\n", "too many /-suffixes"),
        ("", "m=audio 4000 RTP/AVP 0\r\nc=IN IP6 ff15::1/1/2\r\n", "too many /-suffixes"),
        ("", "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 224.0.0.1/x\r\n", "ttl or address count"),
    ],
)
def test_line_errors(session: str, media: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse(minimal(media, session))


def test_missing_connection_is_rejected() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n"
    with pytest.raises(SdpError, match="needs a c= line"):
        parse(text)
    # ... but a c= in every media description is enough (RFC 4566 §5.7).
    assert parse(text + "c=IN IP4 1.2.3.4\r\n").connection is None


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        ("o=- 1 IN IP4 1.2.3.4", "expected 6 fields, got 5"),
        ("o=- one 1 IN IP4 1.2.3.4", "sess-id is not a decimal number"),
        ("o=- 1 -1 IN IP4 1.2.3.4", "sess-version is not a decimal number"),
        # "@" (0x40) is not a token-char of RFC 4566 §9.
        ("o=- 1 1 I@N IP4 1.2.3.4", "nettype is not a valid token"),
        ("o=- 1 1 IN IP4 1.2.3.4 extra", "expected 6 fields, got 7"),
        # a vertical tab is whitespace but not a field separator (RFC 4566 §5.2: non-ws-string)
        ("o=al\x0bice 1 1 IN IP4 1.2.3.4", "username is empty or contains whitespace"),
    ],
)
def test_origin_errors(origin: str, message: str) -> None:
    text = minimal().replace("o=- 1 1 IN IP4 127.0.0.1", origin)
    with pytest.raises(SdpError, match=message):
        parse(text)


def test_invalid_utf8_nul_and_bare_cr() -> None:
    with pytest.raises(SdpError, match="not valid UTF-8"):
        parse(minimal().encode() + b"a=x:\xff\r\n")
    with pytest.raises(SdpError, match="contains CR or NUL"):
        parse(minimal() + "a=x:\x00\r\n")
    with pytest.raises(SdpError, match="contains CR or NUL"):
        parse(minimal() + "a=x:a\rb\r\n")


def test_oversized_body_is_rejected() -> None:
    with pytest.raises(SdpError, match="larger than"):
        parse(minimal() + "a=x:" + "y" * 70000 + "\r\n")


def test_sdp_error_is_a_remote_protocol_error() -> None:
    error = SdpError("x", 488)
    assert isinstance(error, RemoteProtocolError)
    assert error.status_hint == 488
    assert SdpError("y").status_hint == 400


def test_error_messages_do_not_quote_attribute_values() -> None:
    key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    with pytest.raises(SdpError) as info:
        parse(minimal(f"m=audio 1 RTP/AVP 0\r\na=crypto:1 X inline:{key}\x00\r\n"))
    assert key not in str(info.value)


# ---------------------------------------------------------------- building


def test_build_and_serialise_from_dataclasses() -> None:
    media = MediaDescription("audio", 5004, "RTP/AVP", ["0"], attributes=[("sendonly", None)])
    sdp = SessionDescription(
        origin=Origin("-", 7, 8),
        connection=Connection("IN", "IP4", "127.0.0.1"),
        media=[media],
    )
    assert str(sdp) == (
        "v=0\r\no=- 7 8 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 5004 RTP/AVP 0\r\na=sendonly\r\n"
    )
    assert parse(str(sdp)) == sdp


# ---------------------------------------------------------------- property tests

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=12)
_TOKENS = st.text(alphabet="abcXYZ019-_.+", min_size=1, max_size=8)
_VALUES = st.text(alphabet="abc019 :/-=;", max_size=16).filter(
    lambda v: v == v.strip() or not v.strip()
)


@st.composite
def _media(draw: st.DrawFn) -> MediaDescription:
    rtp = draw(st.booleans())
    formats = draw(
        st.lists(st.integers(0, 127).map(str) if rtp else _TOKENS, min_size=1, max_size=4)
    )
    attrs = draw(st.lists(st.tuples(_TOKENS, st.none() | _TEXT), max_size=4))
    conn = draw(st.none() | st.builds(Connection, st.just("IN"), st.just("IP4"), _TOKENS))
    return MediaDescription(
        media=draw(_TOKENS),
        port=draw(st.integers(0, 65535)),
        proto="RTP/AVP" if rtp else draw(_TOKENS),
        formats=formats,
        title=draw(st.none() | _TEXT),
        connection=conn,
        attributes=attrs,
    )


@st.composite
def _sessions(draw: st.DrawFn) -> SessionDescription:
    origin = Origin(
        draw(_TOKENS),
        draw(st.integers(0, 2**63)),
        draw(st.integers(0, 2**63)),
        "IN",
        "IP4",
        draw(_TOKENS),
    )
    return SessionDescription(
        origin=origin,
        session_name=draw(_TEXT),
        information=draw(st.none() | _TEXT),
        emails=draw(st.lists(_TEXT, max_size=2)),
        connection=Connection("IN", "IP4", draw(_TOKENS)),
        timing=[Timing(draw(st.integers(0, 2**40)), draw(st.integers(0, 2**40)))],
        attributes=draw(st.lists(st.tuples(_TOKENS, st.none() | _TEXT), max_size=3)),
        media=draw(st.lists(_media(), max_size=3)),
    )


@given(_sessions())
def test_generated_descriptions_round_trip(sdp: SessionDescription) -> None:
    assert parse(str(sdp)) == sdp
    assert parse(bytes(sdp)) == sdp


def _exercise_helpers(sdp: SessionDescription) -> None:
    sdp.session_direction  # noqa: B018
    for media in sdp.media:
        sdp.direction(media)
        sdp.effective_connection(media)
        for pt in media.payload_types:
            media.codec(pt)
            media.fmtp(pt)
        media.ptime  # noqa: B018
        media.rtcp_port  # noqa: B018
        media.rtcp_address  # noqa: B018
        media.zrtp_hash  # noqa: B018


def _parse_only_sdp_error(data: str | bytes) -> None:
    try:
        sdp = parse(data)
        _exercise_helpers(sdp)
    except SdpError as exc:
        assert exc.status_hint == 400


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_input_raises_only_sdp_error(data: str | bytes) -> None:
    _parse_only_sdp_error(data)


_SEED = FULL + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^20|1:4\r\n"


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_SEED)),
            st.integers(0, 6),
            st.text(alphabet="v=o0 \r\n/:ma.-x\t\x00é", max_size=4),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_sdp_raises_only_sdp_error(edits: list[tuple[int, int, str]]) -> None:
    text = _SEED
    for position, length, insert in edits:
        text = text[:position] + insert + text[position + length :]
    _parse_only_sdp_error(text)
    _parse_only_sdp_error(text.encode("utf-8"))
