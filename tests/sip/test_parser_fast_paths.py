"""The parser's one-match fast paths give exactly what the general parsers give.

``SipUri.parse``, ``parse_params`` and the name-addr parser first try one regular expression
for the common form and fall back to the general RFC 3261 §25.1 parse. For any text, both
must agree: the same value, or both a 400/416 error. Texts are drawn from the characters that
matter to the grammar (separators, quotes, escapes, white space) around common forms.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securephone.errors import RemoteProtocolError
from securephone.sip.headers import (
    NameAddr,
    Via,
    _parse_name_addr,
    _parse_name_addr_tuple,
    _parse_via_tuple,
    is_plain_address,
    is_plain_via,
    name_addr_from_plain,
    parse_name_addr_general,
    parse_name_addr_list,
    parse_params,
    parse_params_general,
    plain_address,
    plain_via,
    via_from_plain,
)
from securephone.sip.uri import SipUri

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PIECES = [
    "sip:", "sips:", "SIP:", "tel:", "alice", "Bob", "@", ":", "5060", "99999", "example.com",
    "10.0.0.1", "[::1]", ";", "=", "tag", "lr", "transport=udp", "%41", "%4", "?", "&", "h=v",
    "<", ">", '"', "\\", " ", "\t", ",", "/", "*", "+", "$", "'", "~", "-", ".", "é", "\x01",
    "65535", "65536", "0", "SIP/2.0/UDP ", "rport", "RPORT=", "branch=z9hG4bK1",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)


def outcome(parse: object, text: str) -> object:
    """The parse result, or the error's status when it raises RemoteProtocolError."""
    assert callable(parse)
    try:
        return parse(text)
    except RemoteProtocolError as exc:
        return ("error", exc.status_hint)


@SETTINGS
@given(st.one_of(texts, texts.map(lambda t: "sip:" + t), texts.map(lambda t: "sip:a@h" + t)))
def test_sip_uri_fast_path_matches_general(text: str) -> None:
    assert outcome(SipUri.parse, text) == outcome(SipUri.parse_general, text)


@SETTINGS
@given(st.one_of(texts, texts.map(lambda t: ";" + t)))
def test_params_fast_path_matches_general(text: str) -> None:
    assert outcome(parse_params, text) == outcome(parse_params_general, text)


@SETTINGS
@given(st.one_of(texts, texts.map(lambda t: "<sip:a@h>" + t), texts.map(lambda t: t + "<sip:x>")))
def test_name_addr_fast_path_matches_general(text: str) -> None:
    _parse_name_addr.cache_clear()
    assert outcome(_parse_name_addr, text) == outcome(parse_name_addr_general, text)


@SETTINGS
@given(
    st.one_of(
        texts,
        texts.map(lambda t: "<sip:" + t + ">"),
        texts.map(lambda t: '"A" <sip:a@h' + t),
        texts.map(lambda t: "<sip:a@h>" + t),
    )
)
def test_a_plain_address_always_parses(text: str) -> None:
    """Validation skips building a plain address; its parse must then never fail."""
    match = plain_address(text)
    assert is_plain_address(text) == (match is not None)
    if match is not None:
        _parse_name_addr_tuple.cache_clear()
        (one,) = parse_name_addr_list(text)
        assert one == NameAddr.parse(text) == parse_name_addr_general(text)
        assert name_addr_from_plain(match) == one  # what a parsed message's reader builds


@SETTINGS
@given(
    st.one_of(
        texts.map(lambda t: "SIP/2.0/UDP " + t),
        texts.map(lambda t: "SIP/2.0/TCP h" + t),
        texts.map(lambda t: "sip/2.0/tls h" + t),
        texts.map(lambda t: "SIP/2.0/UDP h:5060;" + t),
    )
)
def test_a_plain_via_always_parses(text: str) -> None:
    """Validation skips building every Via but the top one; a plain Via must parse."""
    match = plain_via(text)
    assert is_plain_via(text) == (match is not None)
    if match is not None:
        _parse_via_tuple.cache_clear()
        (one,) = Via.parse_list(text)
        assert one == Via.parse(text)
        assert via_from_plain(match) == one  # what a parsed message's reader builds


def test_common_header_values_are_plain_and_odd_ones_are_not() -> None:
    """The benchmark's and a phone's usual values skip the build at parse time; values that
    would fail, or that need the general parse, are not plain (they are parsed at once)."""
    for value in (
        '"Caller 1" <sip:user1@10.0.0.1>;tag=f11',
        "<sip:callee@example.org>",
        "<sip:user@10.1.2.3:5061;transport=udp>;expires=600",
        "<sip:proxy.example.net;lr>",
    ):
        assert is_plain_address(value), value
    for value in (
        "<sip:a@h:65536>",  # port out of range: the parse raises
        "<sip:a@h>, <sip:b@h>",  # a list: parsed
        "sip:a@h",  # addr-spec without brackets: general parse
        '"A\\"B" <sip:a@h>',  # escaped quote: general parse
        "<tel:+123>",
        "*",
    ):
        assert not is_plain_address(value), value
    assert is_plain_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport")
    assert not is_plain_via("SIP/2.0/UDP 10.0.0.1:5060;rport=99999")  # parse raises
    assert not is_plain_via("SIP/2.0/UDP 10.0.0.1:70000")
    assert not is_plain_via("SIP/2.0/UDP [::1]:5060")  # IPv6 reference: parsed
    assert not is_plain_via("SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b")


def test_common_forms_take_the_fast_path_with_the_general_result() -> None:
    """Hand-picked common values: equal results, and the values a caller reads."""
    uri = "sip:alice@10.0.0.1:5062;transport=udp;lr"
    assert SipUri.parse(uri) == SipUri.parse_general(uri)
    assert SipUri.parse(uri).port == 5062 and SipUri.parse(uri).param("lr") == ""
    value = '"Alice A" <sip:alice@example.com>;tag=abc;expires=60'
    parsed = _parse_name_addr(value)
    assert parsed == parse_name_addr_general(value)
    assert (parsed.display_name, parsed.tag, parsed.expires) == ("Alice A", "abc", 60)
    assert parse_params(";Branch=z9hG4bK1;rport") == (("branch", "z9hG4bK1"), ("rport", None))


@SETTINGS
@given(
    st.lists(
        st.sampled_from(
            [
                '"Caller 1" <sip:user1@10.0.0.1>;tag=f11',
                "Bob <sip:bob@example.org:5070;transport=tcp>;tag=x",
                "<sip:callee@example.org>",
                "sip:plain@example.org;tag=addr-spec",
                '"A\\"B" <sip:a@h>;tag=escaped',
                "<sips:[::1]:5061>",
            ]
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(
        [
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport",
            "SIP/2.0/TLS host.example;branch=z9hG4bK2;received=192.0.2.1",
            "SIP/2.0/UDP [::1]:5060;branch=z9hG4bK3",
            "sip/2.0/tcp h.example:5070;branch=z9hG4bK6;rport",
            "sip/2.0/udp a.example;branch=z9hG4bK4, SIP/2.0/TCP b;branch=z9hG4bK5",
        ]
    ),
)
def test_a_parsed_message_reads_the_same_as_one_built_by_hand(
    contacts: list[str], via: str
) -> None:
    """The reader of a parsed message builds plain values from the matches validation kept;
    a copy of its headers (nothing kept) parses them the general way: same values."""
    from securephone.sip.message import Request, parse_message

    raw = (
        "INVITE sip:bob@example.org SIP/2.0\r\n"
        f"Via: {via}\r\nVia: SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bK9\r\n"
        f"From: {contacts[0]}\r\nTo: {contacts[-1]}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        + "".join(f"Contact: {c}\r\n" for c in contacts)
        + "Record-Route: <sip:p.example;lr>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    parsed = parse_message(raw)
    assert isinstance(parsed, Request)
    fresh = Request(parsed.method, parsed.uri, parsed.headers.copy())
    assert parsed.top_via == fresh.top_via
    assert parsed.vias == fresh.vias
    assert (parsed.from_, parsed.to) == (fresh.from_, fresh.to)
    assert parsed.contacts == fresh.contacts
    assert parsed.record_routes == fresh.record_routes
