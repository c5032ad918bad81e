"""Header names and values: RFC 3261 §7.3 (names, compact forms, lists), §20, §25.1 grammar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securephone.errors import LocalProtocolError, RemoteProtocolError
from securephone.sip.headers import (
    COMPACT,
    WILDCARD_URI,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    format_params,
    parse_delta_seconds,
    parse_media_type,
    parse_name_addr_list,
    parse_params,
    parse_sip_date,
    quote_string,
    split_comma_values,
    unquote_string,
)
from securephone.sip.uri import AbsoluteUri, SipUri, TelUri


def test_compact_forms() -> None:
    """RFC 3261 §7.3.3 (and the later registrations of the IANA registry)."""
    expected = {
        "i": "Call-ID",
        "m": "Contact",
        "f": "From",
        "t": "To",
        "v": "Via",
        "l": "Content-Length",
        "c": "Content-Type",
        "k": "Supported",
        "s": "Subject",
        "e": "Content-Encoding",
        "o": "Event",
        "r": "Refer-To",
        "u": "Allow-Events",
        "x": "Session-Expires",
        "y": "Identity",
        "b": "Referred-By",
    }
    for short, long in expected.items():
        assert COMPACT[short] == long
        assert canonical_name(short) == long and canonical_name(short.upper()) == long


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("www-authenticate", "WWW-Authenticate"),
        ("cseq", "CSeq"),
        ("CSEQ", "CSeq"),
        ("max-forwards", "Max-Forwards"),
        ("record-route", "Record-Route"),
        ("rack", "RAck"),
        ("sip-etag", "SIP-ETag"),
        ("x-my-header", "X-My-Header"),
        ("NEWFANGLEDHEADER", "Newfangledheader"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical
    assert canonical_name(canonical) == canonical


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("", []),
        ("  ", []),
        ("INVITE", ["INVITE"]),
        ("INVITE, ACK ,BYE", ["INVITE", "ACK", "BYE"]),
        ('"Doe, John" <sip:j@x>, <sip:k@y>;q=0.5', ['"Doe, John" <sip:j@x>', "<sip:k@y>;q=0.5"]),
        ("<sip:a@b;x=1,2>, <sip:c>", ["<sip:a@b;x=1,2>", "<sip:c>"]),
        ('"a \\" , b" <sip:x>, c', ['"a \\" , b" <sip:x>', "c"]),
        ("a,,b", ["a", "", "b"]),
        ('"unterminated, x', ['"unterminated, x']),
    ],
)
def test_split_comma_values(value: str, items: list[str]) -> None:
    assert split_comma_values(value) == items


def test_parse_params() -> None:
    """``*(SEMI generic-param)``: SEMI and EQUAL allow white space (RFC 3261 §25.1)."""
    assert parse_params("") == ()
    assert parse_params(" ;  Tag = abc ;lr; q=0.5 ") == (("tag", "abc"), ("lr", None), ("q", "0.5"))
    assert parse_params(';x="a \\"b\\" ;c"') == (("x", 'a "b" ;c'),)
    assert parse_params(";received=[2001:db8::1]") == (("received", "[2001:db8::1]"),)
    for bad in (";;", ";a=", "a=b", ";a=b c", ";a b", ';a="x', ";a=<b>", ";=b", ";a==b"):
        with pytest.raises(RemoteProtocolError):
            parse_params(bad)


def test_format_params_quotes_when_needed() -> None:
    params = (("tag", "abc"), ("lr", None), ("x", "a b"), ("e", ""), ("+sip.instance", "<u:1>"))
    text = format_params(params)
    assert text == ';tag=abc;lr;x="a b";e="";+sip.instance="<u:1>"'
    assert parse_params(text) == params
    assert format_params((("+sip.mobility", "fixed"),)) == ';+sip.mobility="fixed"'


def test_quote_and_unquote() -> None:
    assert quote_string('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert unquote_string('a \\"b\\" \\\\c') == 'a "b" \\c'
    assert quote_string("BEL:\x07") == '"BEL:\\\x07"'
    with pytest.raises(LocalProtocolError):
        quote_string("a\r\nb")


def test_name_addr_forms() -> None:
    """RFC 3261 §20.10, §20.20: quoted and token display names, addr-spec without <>."""
    quoted = NameAddr.parse('"Bob \\"B\\"" <sips:bob@biloxi.com> ;tag=a48s')
    assert quoted.display_name == 'Bob "B"' and quoted.tag == "a48s"
    assert quoted.uri == SipUri.parse("sips:bob@biloxi.com")
    tokens = NameAddr.parse("Anonymous  Caller <sip:c8oqz84zk7z@privacy.org>;tag=hyh8")
    assert tokens.display_name == "Anonymous Caller"
    bare = NameAddr.parse("sip:+12125551212@phone2net.com;tag=887s")
    assert bare.display_name is None and bare.tag == "887s"
    assert isinstance(bare.uri, SipUri) and bare.uri.params == ()
    nospace = NameAddr.parse("caller<sip:caller@example.com>")
    assert nospace.display_name == "caller"
    empty = NameAddr.parse('"" <sip:a@b>')
    assert empty.display_name == "" and str(empty) == '"" <sip:a@b>'
    tel = NameAddr.parse("<tel:+1-201-555-0123>")
    assert isinstance(tel.uri, TelUri)
    other = NameAddr.parse("<urn:service:sos>;x=1")
    assert other.uri == AbsoluteUri("urn", "urn:service:sos") and other.param("x") == "1"


def test_name_addr_uri_params_inside_brackets_only() -> None:
    """RFC 3261 §20.10: parameters after a bare URI are header parameters."""
    inside = NameAddr.parse("<sip:a@b;transport=tcp>;expires=60")
    assert isinstance(inside.uri, SipUri) and inside.uri.transport == "tcp"
    assert inside.expires == 60 and inside.param("transport") is None
    outside = NameAddr.parse("sip:a@b;transport=tcp")
    assert outside.param("transport") == "tcp"
    assert isinstance(outside.uri, SipUri) and outside.uri.transport is None


def test_name_addr_serialization_uses_brackets() -> None:
    addr = NameAddr.parse("sip:a@b;tag=1")
    assert str(addr) == "<sip:a@b>;tag=1"
    assert str(NameAddr.parse("Alice <sip:a@b>")) == '"Alice" <sip:a@b>'
    tagged = addr.with_params(tag="2", ob=None)
    assert str(tagged) == "<sip:a@b>;tag=2;ob" and addr.tag == "1"
    assert tagged.without_params("TAG").params == (("ob", None),)
    assert tagged.has_param("ob") and not tagged.has_param("x")
    with pytest.raises(LocalProtocolError):
        addr.with_params(tag="a\r\nVia: x")


def test_wildcard_contact() -> None:
    star = NameAddr.parse(" * ")
    assert star.is_wildcard and star.uri == WILDCARD_URI and str(star) == "*"
    assert parse_name_addr_list("*") == [star]


def test_expires_param() -> None:
    assert NameAddr.parse("<sip:a@b>;expires=3600").expires == 3600
    assert NameAddr.parse("<sip:a@b>;expires=280297596632815").expires == 2**32 - 1
    assert NameAddr.parse("<sip:a@b>;expires=abc").expires is None
    assert NameAddr.parse("<sip:a@b>").expires is None
    with pytest.raises(RemoteProtocolError):
        NameAddr.parse("<sip:a@b>;tag=")  # EQUAL must be followed by a value
    assert NameAddr.parse("Alice <sip:a@b>;tag").tag is None  # a flag is not a tag value


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 quotbal
        '"Watson, Thomas" < sip:t.watson@example.org >',  # RFC 4475 badaspec
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # RFC 4475 baddn
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 regbadct
        '"Joe" <sip:joe@example.org>;;;;',  # RFC 4475 badinv01
        "<sip:a@b",
        "<sip:a@b> junk",
        '"x" sip:a@b',
        "<>",
        "sip:a@b, sip:c@d",
    ],
)
def test_name_addr_malformed(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        NameAddr.parse(text)
    assert info.value.status_hint == 400


def test_name_addr_list() -> None:
    addrs = parse_name_addr_list('"Doe, John" <sip:j@x>;q=0.7, <sip:k@y>, sip:z@w;expires=5')
    assert [a.display_name for a in addrs] == ["Doe, John", None, None]
    assert [a.param("q") for a in addrs] == ["0.7", None, None]
    assert addrs[2].expires == 5
    for bad in ("", "<sip:a@b>,", "<sip:a@b>,,<sip:c@d>"):
        with pytest.raises(RemoteProtocolError):
            parse_name_addr_list(bad)


def test_via_parse() -> None:
    """RFC 3261 §20.42 and RFC 3581 rport."""
    via = Via.parse("SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7")
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "UDP",
        "erlang.bell-telephone.com",
        5060,
    )
    assert via.branch == "z9hG4bK87asdks7" and via.received is None
    assert via.rport is None and not via.has_rport
    spaced = Via.parse("SIP / 2.0 / tcp  [2001:db8::9] : 5070 ; rport ; received=192.0.2.1")
    assert (spaced.transport, spaced.host, spaced.port) == ("TCP", "[2001:db8::9]", 5070)
    assert spaced.has_rport and spaced.rport is None and spaced.received == "192.0.2.1"
    assert Via.parse("SIP/2.0/UDP h;rport=5061").rport == 5061
    assert Via.parse("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK").transport == "WSS"


def test_via_with_params_and_str() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport")
    answered = via.with_params(received="192.0.2.7", rport="40000")
    assert answered.rport == 40000 and answered.received == "192.0.2.7"
    assert (
        str(answered) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport=40000;received=192.0.2.7"
    )
    assert Via.parse(str(answered)) == answered
    assert via.sent_by == "10.0.0.1:5060"


def test_via_list() -> None:
    vias = Via.parse_list("SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/TCP b:5062;branch=z9hG4bK2")
    assert [(v.host, v.port, v.branch) for v in vias] == [
        ("a", None, "z9hG4bK1"),
        ("b", 5062, "z9hG4bK2"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDPhost",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0/UDP host:",
        "SIP/2.0/UDP ho_st",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP 192.0.2.15;;,;,,",  # RFC 4475 badinv01
        "SIP/2.0/UDP host junk",
    ],
)
def test_via_malformed(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Via.parse_list(text)


def test_cseq() -> None:
    """RFC 3261 §20.16; the number must stay below 2**31 (§8.1.1.5)."""
    assert CSeq.parse("4711 INVITE") == CSeq(4711, "INVITE")
    assert CSeq.parse(" 0009 \t INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(2**31 - 1, "ACK")) == "2147483647 ACK"
    assert CSeq.parse(str(CSeq(2**31 - 1, "ACK"))).seq == 2**31 - 1
    for bad in ("2147483648 INVITE", "36893488147419103232 REGISTER", "1" * 5000 + " A"):
        with pytest.raises(RemoteProtocolError):
            CSeq.parse(bad)
    for bad in ("INVITE", "1", "-1 INVITE", "1 INVITE extra", "1 IN VITE", "\u0661 INVITE", ""):
        with pytest.raises(RemoteProtocolError):
            CSeq.parse(bad)


def test_sip_date() -> None:
    """RFC 3261 §20.17: RFC 1123 date, GMT only."""
    assert parse_sip_date("Sat, 13 Nov 2010 23:29:00 GMT") == datetime(
        2010, 11, 13, 23, 29, tzinfo=UTC
    )
    for bad in (
        "Fri, 01 Jan 2010 16:00:00 EST",  # RFC 4475 baddate
        "Sat, 30 Feb 2010 23:29:00 GMT",
        "13 Nov 2010 23:29:00 GMT",
        "Sat, 13 Nov 2010 25:29:00 GMT",
    ):
        with pytest.raises(RemoteProtocolError):
            parse_sip_date(bad)


def test_media_type_and_delta_seconds() -> None:
    assert parse_media_type("Application/SDP") == ("application/sdp", ())
    assert parse_media_type("multipart/mixed;boundary=7a9cbec02ceef655") == (
        "multipart/mixed",
        (("boundary", "7a9cbec02ceef655"),),
    )
    with pytest.raises(RemoteProtocolError):
        parse_media_type("sdp")
    assert parse_delta_seconds(" 3600 ") == 3600
    assert parse_delta_seconds("9" * 5000) == 2**32 - 1
    assert parse_delta_seconds("-1") is None and parse_delta_seconds("") is None


# --- properties: built values serialize and parse back to themselves ----------------------

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-.!%*_+`'~", min_size=1)
_param_names = _token.map(str.lower)
_values = st.one_of(
    st.none(),
    _token,
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=8),
)
_params = st.lists(st.tuples(_param_names, _values), max_size=4).map(tuple)
_hosts = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9\-.]{0,10})", fullmatch=True),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)


@settings(max_examples=200, deadline=None)
@given(
    transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]),
    host=_hosts,
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=_params,
)
def test_via_round_trip(
    transport: str, host: str, port: int | None, params: tuple[tuple[str, str | None], ...]
) -> None:
    params = tuple((n, v) for n, v in params if n != "rport")
    via = Via(transport, host, port, params)
    assert Via.parse(str(via)) == via
    assert Via.parse_list(f"{via}, {via}") == [via, via]


@settings(max_examples=200, deadline=None)
@given(
    display=st.one_of(
        st.none(),
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n")),
    ),
    user=st.text(alphabet="abcdefghij0123456789.-_", min_size=1, max_size=10),
    host=_hosts,
    params=_params,
)
def test_name_addr_round_trip(
    display: str | None, user: str, host: str, params: tuple[tuple[str, str | None], ...]
) -> None:
    addr = NameAddr(SipUri("sip", host, user), display, params)
    assert NameAddr.parse(str(addr)) == addr
    assert parse_name_addr_list(f"{addr} , {addr}") == [addr, addr]


@settings(max_examples=100, deadline=None)
@given(seq=st.integers(0, 2**31 - 1), method=_token)
def test_cseq_round_trip(seq: int, method: str) -> None:
    assert CSeq.parse(str(CSeq(seq, method))) == CSeq(seq, method)
