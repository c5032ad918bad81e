"""Messages: RFC 3261 §7 (syntax, folding, compact forms), §8.2.6 (responses), §18.3 (framing),
RFC 5626 §3.5.1 (CRLF keep-alives)."""

from __future__ import annotations

import pytest

from securephone.errors import LocalProtocolError, RemoteProtocolError
from securephone.sip.headers import CSeq, NameAddr, Via
from securephone.sip.message import (
    MAX_HEADER_LINE,
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    REASONS,
    Headers,
    InvalidRequestError,
    Request,
    Response,
    StreamParser,
    is_keepalive,
    make_response,
    parse_message,
)
from securephone.sip.uri import SipUri, TelUri

# RFC 3261 §24.2, message F1 (Alice's INVITE), CRLF line ends, body = the SDP offer.
F1_SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=-\r\n"
    b"c=IN IP4 pc33.atlanta.com\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
F1 = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(F1_SDP)).encode() + b"\r\n\r\n" + F1_SDP
)
CL = b"Content-Length: %d" % len(F1_SDP)
# RFC 3261 §24.2, message F7 (Bob's 200 OK after the proxies), three Via values.
F7 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP server10.biloxi.example.com;branch=z9hG4bK4b43c2ff8.1;"
    b"received=192.0.2.3, SIP/2.0/UDP bigbox3.site3.atlanta.example.com;"
    b"branch=z9hG4bK77ef4c2312983.1\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def with_header(data: bytes, line: bytes) -> bytes:
    """Insert a header line right after the start line."""
    start, rest = data.split(b"\r\n", 1)
    return start + b"\r\n" + line + b"\r\n" + rest


def status_of(data: bytes) -> int:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data)
    return info.value.status_hint


# --- Headers --------------------------------------------------------------------------------


def test_headers_lookup_is_case_insensitive_and_compact_aware() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("CALL-ID", "x"), ("x-custom", "1")])
    assert list(headers) == [("Via", "SIP/2.0/UDP a"), ("Call-ID", "x"), ("X-Custom", "1")]
    assert headers.get("via") == headers.get("V") == "SIP/2.0/UDP a"
    assert headers.get("i") == "x" and headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    assert "call-id" in headers and "I" in headers and "To" not in headers and 5 not in headers
    assert len(headers) == 3


def test_get_all_splits_only_list_headers() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"),
            ("v", "SIP/2.0/TCP c"),
            ("Allow", "INVITE, ACK,BYE"),
            ("Supported", ""),
            ("WWW-Authenticate", 'Digest realm="a", nonce="b, c", qop="auth"'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("Contact", '"Doe, J" <sip:j@x>, <sip:k@y>'),
        ]
    )
    assert headers.get_all("via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/TCP c"]
    assert headers.get_lines("Via") == ["SIP/2.0/UDP a, SIP/2.0/UDP b", "SIP/2.0/TCP c"]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert headers.get_all("k") == []
    assert headers.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b, c", qop="auth"']
    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.get_all("m") == ['"Doe, J" <sip:j@x>', "<sip:k@y>"]
    assert headers.count("Via") == 2


def test_headers_add_prepend_set_remove() -> None:
    headers = Headers([("To", "a"), ("Via", "v1"), ("From", "b"), ("Via", "v2")])
    headers.prepend("Via", "v0")
    headers.prepend("Record-Route", "<sip:p1;lr>")
    assert [v for n, v in headers if n in ("Via", "Record-Route")] == [
        "<sip:p1;lr>",
        "v0",
        "v1",
        "v2",
    ]
    assert next(iter(headers)) == ("Record-Route", "<sip:p1;lr>")
    headers.set("via", "only")
    assert headers.get_lines("Via") == ["only"]
    assert [n for n, _ in headers] == ["Record-Route", "To", "Via", "From"]
    headers.set("Max-Forwards", "70")
    assert list(headers)[-1] == ("Max-Forwards", "70")
    headers.add("x-a", " spaced ")
    assert headers.get("X-A") == "spaced"
    headers.remove("v")
    assert "Via" not in headers
    copy = headers.copy()
    copy.add("Subject", "hi")
    assert "Subject" not in headers and copy != headers


@pytest.mark.parametrize(("name", "value"), [("Bad Name", "x"), ("", "x"), ("X", "a\r\nVia: y")])
def test_headers_refuse_injection(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError):
        Headers().add(name, value)


# --- parsing --------------------------------------------------------------------------------


def test_parse_rfc3261_invite() -> None:
    m = request(F1)
    assert (m.method, m.uri, m.version) == (
        "INVITE",
        SipUri.parse("sip:bob@biloxi.example.com"),
        "SIP/2.0",
    )
    assert m.call_id == "a84b4c76e66710" and m.cseq == CSeq(314159, "INVITE")
    assert m.from_.tag == "1928301774" and m.from_.display_name == "Alice"
    assert m.to.tag is None and m.max_forwards == 70 and m.content_type == "application/sdp"
    assert m.top_via.branch == "z9hG4bKnashds8" and m.body == F1_SDP
    assert [str(c.uri) for c in m.contacts] == ["sip:alice@pc33.atlanta.example.com"]
    assert m.routes == [] and m.record_routes == [] and m.expires is None


def test_parse_rfc3261_response_with_via_lists() -> None:
    m = parse_message(F7)
    assert isinstance(m, Response) and (m.status, m.reason) == (200, "OK")
    assert [v.received for v in m.vias] == ["192.0.2.3", None, "192.0.2.1"]
    assert m.top_via.transport == "TCP" and m.to.tag == "a6c85cf"


def test_compact_names_and_folding() -> None:
    """RFC 3261 §7.3.1 folding (continuation joined by one SP), §7.3.3 compact forms."""
    data = (
        b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n"
        b"t: <sip:carol@chicago.com>\r\nf: Alice\r\n\t<sip:alice@atlanta.com>;tag=1928301774\r\n"
        b"i: a84b4c76e66710\r\nCSeq: 63104\r\n   OPTIONS\r\nm: <sip:alice@pc33.atlanta.com>\r\n"
        b"k: replaces,\r\n  timer\r\nSubject: lunch\r\n  at\t\r\n\t noon\r\nl: 0\r\n\r\n"
    )
    m = request(data)
    assert m.from_.display_name == "Alice" and m.cseq == CSeq(63104, "OPTIONS")
    assert m.headers.get_all("Supported") == ["replaces", "timer"]
    assert m.headers.get("Subject") == "lunch at noon"
    assert bytes(m).count(b"\r\n\r\n") == 1 and b"Call-ID: a84b4c76e66710\r\n" in bytes(m)


def test_udp_content_length_rules() -> None:
    """RFC 3261 §18.3: extra octets ignored; missing octets are an error; absent = the rest."""
    assert request(F1 + b"garbage").body == F1_SDP
    short = F1.replace(CL, b"Content-Length: %d" % (len(F1_SDP) + 1))
    assert short != F1 and status_of(short) == 400
    absent = F1.replace(CL + b"\r\n", b"")
    assert request(absent).body == F1_SDP
    zero = F1.replace(CL, b"Content-Length: 0")
    assert request(zero).body == b""


def test_leading_crlf_is_ignored() -> None:
    assert request(b"\r\n\r\n" + F1).method == "INVITE"  # RFC 3261 §7.5


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (F1.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (F1.replace(b"SIP/2.0\r\n", b"SIP/2\r\n", 1), 400),
        (b"SIP/2.1 200 OK\r\n" + F7.split(b"\r\n", 1)[1], 505),
        (b"SIP/2.0 99 Weird\r\n" + F7.split(b"\r\n", 1)[1], 400),
        (b"SIP/2.0 700 Weird\r\n" + F7.split(b"\r\n", 1)[1], 400),
        (b"SIP/2.0 2000 OK\r\n" + F7.split(b"\r\n", 1)[1], 400),
        (F1.replace(b"INVITE sip:", b"INV<ITE sip:", 1), 400),
        (F1.replace(b"INVITE sip:", b"INVITE  sip:", 1), 400),
        (F1.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 ACK"), 400),
        (F1.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400),
        (F1.replace(b"Max-Forwards: 70", b"Max-Forwards: seventy"), 400),
        (F1.replace(b"Call-ID: a84b4c76e66710\r\n", b""), 400),
        (F1.replace(b"Call-ID: a84b4c76e66710", b"Call-ID: a b"), 400),
        (
            F1.replace(b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n", b""),
            400,
        ),
        (with_header(F1, b"To: <sip:other@example.com>"), 400),
        (with_header(F1, b"l: 146"), 400),
        (with_header(F1, b"Date: Sat, 13 Nov 2010 23:29:00 EST"), 400),
        (with_header(F1, b"Contact: sip:a@b?x=y"), 400),
        (with_header(F1, b"Route: <sip:p1;lr"), 400),
        (with_header(F1, b"Content-Type: sdp"), 400),
        (with_header(F1, b"No colon here"), 400),
        (with_header(F1, b"Bad Name: x"), 400),
        (with_header(F1, b"X-Broken: caf\xc3"), 400),
        (with_header(F1, b"X-Bare: a\nb"), 400),
        (with_header(F1, b"X-Bare: a\rb"), 400),
        (F1.replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n folded: before any header\r\n", 1), 400),
        (F1.replace(b"\r\n\r\n", b"\r\n"), 400),
        (b"", 400),
        (b"\r\n\r\n", 400),
        (F1.replace(b"sip:bob@biloxi.example.com SIP", b"sip:bob@biloxi.example.com?x=y SIP"), 400),
        (F1.replace(b"sip:bob@biloxi.example.com SIP", b"sip:b@b;method=BYE SIP"), 400),
        (F1.replace(b"sip:bob@biloxi.example.com SIP", b"mailto:bob@biloxi.example.com SIP"), 416),
    ],
)
def test_malformed_messages(data: bytes, status: int) -> None:
    assert status_of(data) == status


def test_size_limits_are_413() -> None:
    assert status_of(F1 + b"x" * (MAX_MESSAGE_SIZE - len(F1) + 1)) == 413
    assert request(F1 + b"x" * (MAX_MESSAGE_SIZE - len(F1))).body == F1_SDP
    long_value = b"X-Long: " + b"a" * (MAX_HEADER_LINE + 1)
    assert status_of(with_header(F1, long_value)) == 413
    many = b"\r\n".join(b"X-H: %d" % i for i in range(MAX_HEADERS))
    assert status_of(with_header(F1, many)) == 413


def test_errors_carry_the_request_for_an_answer() -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_message(F1.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"))
    assert info.value.status_hint == 400 and info.value.request.method == "INVITE"
    answer = make_response(info.value.request, 400)
    assert answer.headers.get("CSeq") == "314159 BYE" and answer.reason == "Bad Request"


def test_tel_request_uri_is_accepted() -> None:
    m = request(F1.replace(b"sip:bob@biloxi.example.com SIP", b"tel:+1-201-555-0123 SIP"))
    assert m.uri == TelUri("+1-201-555-0123")


def test_properties_raise_400_on_missing_or_malformed() -> None:
    bare = Request("OPTIONS", SipUri("sip", "example.com"))
    for prop in ("call_id", "cseq", "top_via", "from_", "to"):
        with pytest.raises(RemoteProtocolError) as info:
            getattr(bare, prop)
        assert info.value.status_hint == 400
    assert bare.vias == [] and bare.contacts == [] and bare.max_forwards is None
    assert bare.content_type is None and bare.expires is None
    bad = Request("OPTIONS", SipUri("sip", "h"), Headers([("CSeq", "x"), ("Expires", "soon")]))
    for prop in ("cseq", "expires"):
        with pytest.raises(RemoteProtocolError):
            getattr(bad, prop)


# --- building and serializing ---------------------------------------------------------------


def build_invite(body: bytes = b"") -> Request:
    headers = Headers()
    headers.add(
        "Via", str(Via("TLS", "198.51.100.7", 5061, (("branch", "z9hG4bK776"), ("rport", None))))
    )
    headers.add("Max-Forwards", "70")
    headers.add(
        "From", str(NameAddr(SipUri("sips", "example.com", "alice"), "Alice", (("tag", "88"),)))
    )
    headers.add("To", str(NameAddr(SipUri("sips", "example.com", "bob"))))
    headers.add("Call-ID", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6@198.51.100.7")
    headers.add("CSeq", str(CSeq(1, "INVITE")))
    headers.add("Content-Type", "application/sdp")
    return Request("INVITE", SipUri("sips", "example.com", "bob"), headers, body)


def test_build_serialize_parse_round_trip() -> None:
    invite = build_invite(F1_SDP)
    data = bytes(invite)
    assert data.startswith(b"INVITE sips:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TLS ")
    assert data.endswith(CL + b"\r\n\r\n" + F1_SDP)
    parsed = request(data)
    assert parsed == invite
    assert parsed.from_.display_name == "Alice" and parsed.top_via.has_rport
    assert parse_message(bytes(parsed)) == parsed


def test_content_length_is_always_written_from_the_body() -> None:
    invite = build_invite(b"abc")
    invite.headers.add("Content-Length", "999")
    invite.headers.add("l", "5")
    data = bytes(invite)
    assert data.count(b"Content-Length") == 1 and data.endswith(b"Content-Length: 3\r\n\r\nabc")
    assert bytes(build_invite()).endswith(b"Content-Length: 0\r\n\r\n")


def test_response_round_trip_and_equality() -> None:
    parsed = parse_message(F7)
    assert parse_message(bytes(parsed)) == parsed
    assert parsed != request(F1) and parsed != "SIP/2.0 200 OK"
    assert repr(parsed) == "<Response 200 OK>"


def test_constructor_validation() -> None:
    with pytest.raises(LocalProtocolError):
        Request("IN VITE", SipUri("sip", "h"))
    with pytest.raises(LocalProtocolError):
        Response(99, "Nope")
    with pytest.raises(LocalProtocolError):
        Response(200, "OK\r\nVia: x")


# --- make_response --------------------------------------------------------------------------


def test_make_response_copies_the_core_headers() -> None:
    """RFC 3261 §8.2.6.2: Via (all, in order), From, To (+tag), Call-ID, CSeq; nothing else."""
    invite = request(F1)
    invite.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
    invite.headers.add("Record-Route", "<sip:proxy.example.com;lr>")
    invite.headers.add("Timestamp", "54")
    answer = make_response(invite, 180, to_tag="a6c85cf")
    assert (answer.status, answer.reason) == (180, "Ringing")
    assert answer.headers.get_lines("Via") == invite.headers.get_lines("Via")
    assert [n for n, _ in answer.headers] == ["Via", "Via", "To", "From", "Call-ID", "CSeq"]
    assert answer.headers.get("To") == "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf"
    assert answer.to.tag == "a6c85cf" and answer.from_ == invite.from_
    assert answer.body == b"" and parse_message(bytes(answer)) == answer
    trying = make_response(invite, 100)
    assert trying.headers.get("Timestamp") == "54" and trying.to.tag is None


def test_make_response_keeps_an_existing_tag_and_reasons() -> None:
    reinvite = request(F1.replace(b"biloxi.example.com>\r\n", b"biloxi.example.com>;tag=x1\r\n", 1))
    assert make_response(reinvite, 200, to_tag="other").to.tag == "x1"
    assert make_response(reinvite, 486).reason == "Busy Here" == REASONS[486]
    assert make_response(reinvite, 299).reason == "OK"
    assert make_response(reinvite, 603, "Go Away").reason == "Go Away"
    for status in (99, 700):
        with pytest.raises(LocalProtocolError):
            make_response(reinvite, status)
    with pytest.raises(LocalProtocolError):
        make_response(reinvite, 200, to_tag="bad tag")


def test_make_response_tags_a_bare_addr_spec() -> None:
    m = request(
        F1.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"t: sip:bob@biloxi.example.com")
    )
    answer = make_response(m, 200, to_tag="z9")
    assert answer.headers.get("To") == "sip:bob@biloxi.example.com;tag=z9"
    assert answer.to.tag == "z9"


# --- StreamParser (RFC 3261 §18.3) ----------------------------------------------------------


def test_stream_byte_by_byte() -> None:
    parser = StreamParser()
    out: list[Request | Response] = []
    for i in range(len(F1)):
        out += parser.feed(F1[i : i + 1])
        assert len(out) == (1 if i == len(F1) - 1 else 0)
    assert out[0] == parse_message(F1)


def test_stream_several_messages_in_one_chunk_and_split_bodies() -> None:
    parser = StreamParser()
    data = F1 + F7 + F1
    first = parser.feed(data[:-10])
    assert [type(m) for m in first] == [Request, Response]
    rest = parser.feed(data[-10:])
    assert len(rest) == 1 and rest[0] == parse_message(F1)
    assert parser.feed(b"") == []


def test_stream_keepalives() -> None:
    """RFC 5626 §3.5.1: CRLFCRLF is a ping (answer CRLF), a lone CRLF is a pong."""
    parser = StreamParser()
    assert parser.feed(b"\r\n\r\n") == [] and parser.take_pings() == 1
    assert parser.take_pings() == 0
    messages = parser.feed(b"\r\n\r\n" + F1 + b"\r\n\r\n\r\n\r\n" + F7)
    assert len(messages) == 2 and parser.keepalive_pings == 3 and parser.take_pings() == 3
    assert parser.keepalive_pings == 0
    assert parser.feed(b"\r\n") == [] and parser.take_pongs() == 1 and parser.take_pings() == 0
    assert parser.feed(F1)[0].call_id == "a84b4c76e66710"


def test_stream_ping_split_across_reads() -> None:
    parser = StreamParser()
    parser.feed(b"\r\n")
    parser.feed(b"\r\n")
    assert parser.keepalive_pings == 1  # ping detected (its first half also looked like a pong)
    assert parser.feed(F1) != []


def test_stream_requires_content_length() -> None:
    parser = StreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(F1.replace(CL + b"\r\n", b""))
    assert info.value.status_hint == 400 and parser.broken
    with pytest.raises(RemoteProtocolError):
        parser.feed(F1)  # framing is lost for good


@pytest.mark.parametrize(
    "data",
    [
        b"INVITE sip:a@b SIP/2.0\r\nX-Pad: " + b"a" * MAX_MESSAGE_SIZE,
        F1.replace(CL, b"Content-Length: 70000"),
    ],
)
def test_stream_oversize_is_413(data: bytes) -> None:
    parser = StreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(data)
    assert info.value.status_hint == 413 and parser.broken


def test_stream_bad_content_length_breaks() -> None:
    parser = StreamParser()
    items = parser.feed_items(F1 + F1.replace(CL, b"Content-Length: -1"))
    assert isinstance(items[0], Request)
    assert isinstance(items[1], RemoteProtocolError) and parser.broken


def test_stream_invalid_but_framed_message_is_skipped() -> None:
    """A well-framed bad request is consumed; what follows it still parses."""
    bad = F1.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE")
    parser = StreamParser()
    assert len(parser.feed(F1 + bad + F7)) == 1 and parser.pending
    with pytest.raises(InvalidRequestError) as info:
        parser.feed(b"")
    assert info.value.request.method == "INVITE" and not parser.broken
    assert [m.status for m in parser.feed(b"") if isinstance(m, Response)] == [200]
    assert not parser.pending

    items = StreamParser().feed_items(F1 + bad + F7)
    assert [type(item) for item in items] == [Request, InvalidRequestError, Response]


def test_is_keepalive() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n")
    assert not is_keepalive(b"") and not is_keepalive(F1)
