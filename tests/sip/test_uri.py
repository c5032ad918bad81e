"""SIP/SIPS/tel/absolute URIs: RFC 3261 §19.1 (examples of §19.1.3 and §19.1.4), RFC 3966."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securephone.errors import RemoteProtocolError
from securephone.sip.uri import (
    AbsoluteUri,
    SipUri,
    TelUri,
    is_valid_host,
    parse_port,
    parse_uri,
    unescape,
)

# RFC 3261 §19.1.3 "Example SIP and SIPS URIs", each must round-trip byte for byte.
RFC3261_EXAMPLES = [
    "sip:alice@atlanta.com",
    "sip:alice:secretword@atlanta.com;transport=tcp",
    "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sips:1212@gateway.com",
    "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
]


@pytest.mark.parametrize("text", RFC3261_EXAMPLES)
def test_rfc3261_examples_round_trip(text: str) -> None:
    uri = SipUri.parse(text)
    assert str(uri) == text
    assert SipUri.parse(str(uri)) == uri


def test_components() -> None:
    uri = SipUri.parse("sip:alice:secretword@atlanta.com;transport=tcp")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sip",
        "alice",
        "secretword",
        "atlanta.com",
        None,
    )
    assert uri.params == (("transport", "tcp"),) and uri.headers == ()
    phone = SipUri.parse("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert (phone.user, phone.password, phone.param("user")) == ("+1-212-555-1212", "1234", "phone")
    headers = SipUri.parse("sips:alice@atlanta.com?subject=project%20x&priority=urgent")
    assert headers.headers == (("subject", "project%20x"), ("priority", "urgent"))
    day = SipUri.parse("sip:alice;day=tuesday@atlanta.com")
    assert day.user == "alice;day=tuesday" and day.params == ()


def test_ipv6_port_and_case() -> None:
    uri = SipUri.parse("SIPS:Bob@[2001:db8::10]:5061;Transport=TLS;LR")
    assert uri.scheme == "sips" and uri.host == "[2001:db8::10]" and uri.port == 5061
    assert uri.hostport == "[2001:db8::10]:5061"
    assert uri.params == (("transport", "TLS"), ("lr", None))
    assert uri.transport == "tls" and uri.has_param("lr") and uri.param("lr") == ""
    assert str(uri) == "sips:Bob@[2001:db8::10]:5061;transport=TLS;lr"
    assert SipUri.parse("sip:[::1]").hostport == "[::1]"


def test_param_helpers() -> None:
    uri = SipUri.parse("sip:bob@biloxi.com;transport=udp;lr")
    assert uri.param("missing") is None and not uri.has_param("missing")
    changed = uri.with_params(transport="tls", maddr="192.0.2.1", ob=None)
    assert changed.params == (
        ("transport", "tls"),
        ("lr", None),
        ("maddr", "192.0.2.1"),
        ("ob", None),
    )
    assert uri.params == (("transport", "udp"), ("lr", None))  # frozen, unchanged
    assert changed.without_params("LR", "maddr").params == (("transport", "tls"), ("ob", None))
    assert str(changed) == "sip:bob@biloxi.com;transport=tls;lr;maddr=192.0.2.1;ob"
    assert SipUri.parse("sip:h").transport is None


def test_escaped_param_names_are_unescaped_and_reescaped() -> None:
    """RFC 4475 §3.1.1.3: ;%6C%72 is the lr parameter; values keep their escapes."""
    uri = SipUri.parse("sip:h;%6C%72;n%61me=v%61lue")
    assert uri.has_param("lr") and uri.param("name") == "v%61lue"
    assert str(uri) == "sip:h;lr;name=v%61lue"
    tricky = SipUri.parse("sip:h;a%2541=1;sp%20ace")
    assert tricky.params == (("a%41", "1"), ("sp ace", None))
    assert str(tricky) == "sip:h;a%2541=1;sp%20ace"
    assert SipUri.parse(str(tricky)) == tricky


def test_local_param_values_are_escaped() -> None:
    uri = SipUri.parse("sip:h").with_params(x="a b;c", y="")
    assert str(uri) == "sip:h;x=a%20b%3Bc;y"
    assert SipUri.parse(str(uri)).param("x") == "a%20b%3Bc"


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@host",
        "sip:host:",
        "sip:host:99999",
        "sip:host:12a",
        "sip:host;;lr",
        "sip:host;=x",
        "sip:host;a=",
        "sip:a@b@c",
        "sip:host?",
        "sip:host?x",
        "sip:[::1",
        "sip:[zz::1]",
        "sip:[::1]x",
        "sip:ho st",
        "sip:host ",
        "sip:us%zzer@host",
        "sip:user@-host",
        "sip:user:pa:ss@host",
        "sip:<user>@host",
        "sip:host;x=a b",
        "sip",
        "<sip:alice@atlanta.com>",
        "sip:\u00e9@host",
    ],
)
def test_malformed_sip_uris_are_400(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SipUri.parse(text)
    assert info.value.status_hint == 400


@pytest.mark.parametrize("text", ["http://example.com", "mailto:a@b.c", "tel:+1234", "im:x"])
def test_other_schemes_are_416_for_sip_parse(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SipUri.parse(text)
    assert info.value.status_hint == 416


# RFC 3261 §19.1.4: pairs that are equivalent, and pairs that are not.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
]


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_rfc3261_equivalent(left: str, right: str) -> None:
    assert SipUri.parse(left).equivalent(SipUri.parse(right))
    assert SipUri.parse(right).equivalent(SipUri.parse(left))


@pytest.mark.parametrize(("left", "right"), NOT_EQUIVALENT)
def test_rfc3261_not_equivalent(left: str, right: str) -> None:
    assert not SipUri.parse(left).equivalent(SipUri.parse(right))
    assert not SipUri.parse(right).equivalent(SipUri.parse(left))


def test_equivalent_to_other_kinds_is_false() -> None:
    assert not SipUri.parse("sip:a@b").equivalent(AbsoluteUri("sip", "sip:a@b"))


def test_tel_uri() -> None:
    """RFC 3966 §3 numbers with parameters."""
    uri = TelUri.parse("tel:+1-201-555-0123;Ext=42")
    assert uri.number == "+1-201-555-0123" and uri.param("ext") == "42"
    assert str(uri) == "tel:+1-201-555-0123;ext=42"
    local = TelUri.parse("TEL:7042;phone-context=example.com")
    assert local.param("phone-context") == "example.com"
    for bad in ("tel:", "tel:12 34", "tel:+1;;x", "sip:1234", "tel:12@34"):
        with pytest.raises(RemoteProtocolError):
            TelUri.parse(bad)


def test_absolute_uri() -> None:
    uri = AbsoluteUri.parse("HTTP://www.example.com/a?b=c")
    assert uri.scheme == "http" and str(uri) == "HTTP://www.example.com/a?b=c"
    for bad in ("no-colon", "1x:abc", "http:", "http://a b", "http:<x>", 'urn:"q"'):
        with pytest.raises(RemoteProtocolError) as info:
            AbsoluteUri.parse(bad)
        assert info.value.status_hint == 400


def test_parse_uri_dispatch() -> None:
    assert isinstance(parse_uri("sips:a@b"), SipUri)
    assert isinstance(parse_uri("Sip:a@b"), SipUri)
    assert isinstance(parse_uri("tel:+123"), TelUri)
    assert parse_uri("urn:uuid:f81d4fae") == AbsoluteUri("urn", "urn:uuid:f81d4fae")
    with pytest.raises(RemoteProtocolError):
        parse_uri("sip:a b")


def test_unescape_and_helpers() -> None:
    assert unescape("I%20have%20spaces") == "I have spaces"
    assert unescape("null-%00-null") == "null-\x00-null"
    assert unescape("no-escapes") == "no-escapes"
    assert unescape("%C3%A9") == "é"
    assert parse_port("5060") == 5060 and parse_port("0") == 0
    for bad in ("65536", "", "-1", "\u0661\u0662"):
        with pytest.raises(RemoteProtocolError):
            parse_port(bad)
    assert is_valid_host("example.com") and is_valid_host("192.0.2.1")
    assert is_valid_host("[2001:db8::1]")
    assert not is_valid_host("[2001:db8::1") and not is_valid_host("[1:2:3]")
    assert not is_valid_host("") and not is_valid_host("a_b")


# --- property: any URI built from valid parts serializes and parses back to itself --------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_users = st.text(alphabet=_ALNUM + "-_.!~*'()&=+$,;?/", min_size=1, max_size=12)
_labels = st.text(alphabet=_ALNUM, min_size=1, max_size=8)
_hosts = st.one_of(
    st.lists(_labels, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_pnames = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_pvalues = st.one_of(st.none(), st.text(alphabet=_ALNUM + "-_.!~*'()[]/:&+$", min_size=1))
_hnames = st.text(alphabet=_ALNUM, min_size=1, max_size=8)
_hvalues = st.text(alphabet=_ALNUM + "[]/?:+$", max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.one_of(st.none(), _users),
    password=st.one_of(st.none(), st.text(alphabet=_ALNUM + "&=+$,", max_size=6)),
    host=_hosts,
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=st.lists(st.tuples(_pnames, _pvalues), max_size=4),
    headers=st.lists(st.tuples(_hnames, _hvalues), max_size=3),
)
def test_built_uris_round_trip(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: list[tuple[str, str | None]],
    headers: list[tuple[str, str]],
) -> None:
    uri = SipUri(
        scheme,
        host,
        user,
        password if user is not None else None,
        port,
        tuple(params),
        tuple(headers),
    )
    assert SipUri.parse(str(uri)) == uri
    assert parse_uri(str(uri)) == uri
