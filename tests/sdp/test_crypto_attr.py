"""The a=crypto attribute (RFC 4568 §9.1 / §9.2 grammar) and key redaction."""

from __future__ import annotations

import base64
import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securephone.media.suites import key_salt_length
from securephone.sdp import crypto
from securephone.sdp.crypto import (
    REDACTED,
    CryptoAttribute,
    CryptoAttributeError,
    KeyParam,
    format_crypto,
    redact,
)
from securephone.sdp.session import SdpError
from securephone.sdp.session import parse as parse_sdp

# RFC 4568, the example offer (the RFC folds the a=crypto lines for print; on the wire each
# attribute is one line).
RFC4568_OFFER = (
    "v=0\r\n"
    "o=sam 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
    "s=SRTP Discussion\r\n"
    "i=A discussion of Secure RTP\r\n"
    "u=http://www.example.com/seminars/srtp.pdf\r\n"
    "e=marge@example.com (Marge Simpson)\r\n"
    "c=IN IP4 168.2.17.12\r\n"
    "t=2873397496 2873404696\r\n"
    "m=audio 49170 RTP/SAVP 0\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP\r\n"
    "a=crypto:2 F8_128_HMAC_SHA1_80 "
    "inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;"
    "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP\r\n"
)
RFC4568_KEYS = [
    "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
    "MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm",
    "QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5",
]
# RFC 4568, the answer's crypto line (tag 1 accepted, MKI 1 of length 32).
RFC4568_ANSWER_LINE = (
    "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
)
# RFC 4568 §6.1: a key parameter with an MKI and no lifetime.
RFC4568_MKI_ONLY = (
    "1 AES_CM_128_HMAC_SHA1_80 inline:YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1066:4"
)

KEY30 = bytes(range(30))


# ---------------------------------------------------------------- RFC 4568 examples


def test_rfc4568_offer_tag_1() -> None:
    media = parse_sdp(RFC4568_OFFER).media[0]
    first = crypto.parse(media.crypto_lines[0])
    assert (first.tag, first.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    (key,) = first.key_params
    assert key.method == "inline"
    assert key.key_salt == base64.b64decode(RFC4568_KEYS[0])
    assert len(key.key_salt) == 30  # 16-byte master key + 14-byte salt (RFC 4568 §6.2)
    assert key.lifetime == 2**20
    assert key.mki == (1, 4)
    assert first.session_params == ["FEC_ORDER=FEC_SRTP"]
    assert first.is_supported
    first.validate()


def test_rfc4568_offer_tag_2_has_two_keys_and_an_unsupported_suite() -> None:
    second = crypto.parse(parse_sdp(RFC4568_OFFER).media[0].crypto_lines[1])
    assert (second.tag, second.suite) == (2, "F8_128_HMAC_SHA1_80")
    assert [len(k.key_salt) for k in second.key_params] == [30, 30]
    assert [k.lifetime for k in second.key_params] == [2**20, 2**20]
    assert [k.mki for k in second.key_params] == [(1, 4), (2, 4)]
    assert not second.is_supported
    with pytest.raises(CryptoAttributeError, match="unsupported crypto-suite") as info:
        second.validate()
    assert info.value.status_hint == 488


def test_rfc4568_answer_line_and_mki_only_key() -> None:
    answer = crypto.parse(RFC4568_ANSWER_LINE)
    assert answer.key_params[0].mki == (1, 32)
    assert answer.key_params[0].lifetime == 2**20
    mki_only = crypto.parse(RFC4568_MKI_ONLY).key_params[0]
    assert (mki_only.lifetime, mki_only.mki) == (None, (1066, 4))


@pytest.mark.parametrize("line", [RFC4568_ANSWER_LINE, RFC4568_MKI_ONLY])
def test_serialisation_round_trips(line: str) -> None:
    assert str(crypto.parse(line)) == line


def test_rfc4568_offer_lines_round_trip() -> None:
    for line in parse_sdp(RFC4568_OFFER).media[0].crypto_lines:
        assert str(crypto.parse(line)) == line


def test_parse_accepts_the_full_attribute_line_and_tabs() -> None:
    parsed = crypto.parse("a=crypto:7\tAES_CM_128_HMAC_SHA1_32  " + f"inline:{RFC4568_KEYS[0]}\r\n")
    assert (parsed.tag, parsed.suite, parsed.key_params[0].lifetime) == (
        7,
        "AES_CM_128_HMAC_SHA1_32",
        None,
    )


def test_decimal_lifetime_is_kept_as_a_number() -> None:
    parsed = crypto.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEYS[0]}|1000")
    assert parsed.key_params[0].lifetime == 1000
    assert str(parsed).endswith("|1000")


# ---------------------------------------------------------------- key lengths per suite


@pytest.mark.parametrize(
    ("suite", "length", "supported"),
    [
        ("AES_CM_128_HMAC_SHA1_80", 30, True),
        ("AES_CM_128_HMAC_SHA1_32", 30, True),
        ("AEAD_AES_128_GCM", 28, True),
        ("AEAD_AES_256_GCM", 44, True),
        ("AES_256_CM_HMAC_SHA1_80", 46, False),  # RFC 6188: registered, libsrtp profile missing
        ("AES_256_CM_HMAC_SHA1_32", 46, False),
    ],
)
def test_registered_suite_key_lengths(suite: str, length: int, supported: bool) -> None:
    key = bytes(range(100, 100 + length))
    line = format_crypto(3, suite, key)
    assert line == f"3 {suite} inline:{base64.b64encode(key).decode()}"
    parsed = crypto.parse(line)
    assert parsed.key_params[0].key_salt == key
    assert parsed.is_supported is supported
    assert key_salt_length(suite) == length
    short = base64.b64encode(key[:-1]).decode()
    with pytest.raises(
        CryptoAttributeError, match=f"{suite} needs a {length}-byte key\\|\\|salt, got {length - 1}"
    ) as info:
        crypto.parse(f"3 {suite} inline:{short}")
    assert short not in str(info.value)  # never leak key material into logs


def test_unpadded_base64_is_tolerated() -> None:
    key = bytes(46)  # 46 bytes -> 62 base64 characters + "=="
    unpadded = base64.b64encode(key).decode().rstrip("=")
    parsed = crypto.parse(f"1 AES_256_CM_HMAC_SHA1_80 inline:{unpadded}")
    assert parsed.key_params[0].key_salt == key


def test_known_unsupported_suite_length_is_still_checked() -> None:
    with pytest.raises(CryptoAttributeError, match="F8_128_HMAC_SHA1_80 needs a 30-byte"):
        crypto.parse("1 F8_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(16)).decode())


def test_unknown_suite_is_kept_but_not_supported() -> None:
    parsed = crypto.parse("5 FUTURE_SUITE_9000 inline:" + base64.b64encode(bytes(7)).decode())
    assert parsed.suite == "FUTURE_SUITE_9000"
    assert not parsed.is_supported
    assert key_salt_length("FUTURE_SUITE_9000") is None
    with pytest.raises(CryptoAttributeError, match="unsupported crypto-suite 'FUTURE_SUITE_9000'"):
        parsed.validate()


def test_format_crypto_checks_tag_and_length() -> None:
    with pytest.raises(CryptoAttributeError, match="needs a 30-byte"):
        format_crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(16))
    with pytest.raises(CryptoAttributeError, match=r"outside 1\.\.999999999"):
        format_crypto(0, "AES_CM_128_HMAC_SHA1_80", KEY30)


def test_dataclass_serialisation() -> None:
    attr = CryptoAttribute(
        9,
        "AES_CM_128_HMAC_SHA1_80",
        [KeyParam("inline", KEY30, lifetime=2**31, mki=(5, 2)), KeyParam("inline", KEY30)],
        ["KDR=1", "UNENCRYPTED_SRTCP"],
    )
    encoded = base64.b64encode(KEY30).decode()
    assert str(attr) == (
        f"9 AES_CM_128_HMAC_SHA1_80 inline:{encoded}|2^31|5:2;inline:{encoded} "
        "KDR=1 UNENCRYPTED_SRTCP"
    )
    assert crypto.parse(str(attr)) == attr
    assert encoded not in repr(attr.key_params[0])  # key bytes are kept out of repr()


# ---------------------------------------------------------------- errors

GOOD = RFC4568_KEYS[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1 AES_CM_128_HMAC_SHA1_80", "needs <tag> <crypto-suite> <key-params>"),
        ("", "needs <tag> <crypto-suite> <key-params>"),
        (f"0 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}", "tag 0 outside 1..999999999"),
        (f"1000000000 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}", "1 to 9 digits"),
        (f"x AES_CM_128_HMAC_SHA1_80 inline:{GOOD}", "1 to 9 digits"),
        (f"1 AES-CM inline:{GOOD}", "malformed crypto-suite"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{GOOD}", "key method must be 'inline'"),
        (f"1 AES_CM_128_HMAC_SHA1_80 {GOOD}", "key method must be 'inline'"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!", "not valid base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:", "not valid base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:QUJD=RUY=", "not valid base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:QUJDR", "not valid base64"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|2^x", "lifetime must be 2^n or decimal"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|", "lifetime must be 2^n or decimal"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|2^49", "exceeds 2^48"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|0", "lifetime outside 1..2^48"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|1:0", "MKI length must be 1..128"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|1:129", "MKI length must be 1..128"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|256:1", "does not fit in 1 bytes"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|1:2:3", "MKI must be <value>:<length>"),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|1:4|2^20",
            "the lifetime must come before the MKI",
        ),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|2^20|2^20", "MKI must be <value>:<length>"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}|1|1:1|1", "too many '|' fields"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{GOOD} KDR=1\x7f", "malformed session parameter"),
    ],
)
def test_parse_errors(value: str, message: str) -> None:
    with pytest.raises(CryptoAttributeError, match=re.escape(message)) as info:
        crypto.parse(value)
    assert isinstance(info.value, SdpError)
    assert info.value.status_hint == 400
    assert GOOD not in str(info.value)


def test_max_tag_is_accepted() -> None:
    assert crypto.parse(f"999999999 AES_CM_128_HMAC_SHA1_80 inline:{GOOD}").tag == 999_999_999


@given(st.text(max_size=120))
def test_random_values_raise_only_crypto_attribute_error(value: str) -> None:
    with contextlib.suppress(CryptoAttributeError):
        crypto.parse(value)


# ---------------------------------------------------------------- redaction


def test_redact_rfc4568_offer() -> None:
    redacted = redact(RFC4568_OFFER)
    for key in RFC4568_KEYS:
        assert key not in redacted
    assert redacted.count(f"inline:{REDACTED}") == 3
    assert f"inline:{REDACTED}|2^20|1:4 FEC_ORDER=FEC_SRTP" in redacted  # params stay visible
    assert redacted.replace(REDACTED, "") == _strip_keys(RFC4568_OFFER)


def _strip_keys(text: str) -> str:
    for key in RFC4568_KEYS:
        text = text.replace(key, "")
    return text


def test_redact_other_key_carriers() -> None:
    text = (
        "k=clear:supersecret\r\n"
        "a=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAAAsAyO\r\n"
        "a=acap:1 crypto:1 AES_CM_128_HMAC_SHA1_80 INLINE:Secret1|2^20\n"
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:Secret2 FEC_KEY=inline:Secret3|2^20|1:4\n"
        "a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:  Secret4\n"
    )
    redacted = redact(text)
    for secret in ("supersecret", "AQAFgM0X", "Secret1", "Secret2", "Secret3", "Secret4"):
        assert secret not in redacted
    assert "k=clear:<redacted>" in redacted
    assert "a=key-mgmt:mikey <redacted>" in redacted


def test_redact_leaves_keyless_sdp_alone() -> None:
    text = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    assert redact(text) == text


_B64 = st.binary(min_size=1, max_size=48).map(lambda b: base64.b64encode(b).decode())


@given(
    st.lists(
        st.tuples(
            _B64,
            st.sampled_from(["inline:", "INLINE:", "Inline:", "inline:\t"]),
            st.sampled_from(["", "|2^20", "|2^20|1:4", "|7:1", ";", " KDR=1"]),
            st.sampled_from(["\r\n", "\n", " ", ";", "\t"]),
        ),
        min_size=1,
        max_size=5,
    ),
    st.text(alphabet="am=:c yrpto1AES_ \r\n", max_size=20),
)
def test_redact_catches_every_inline_key(
    parts: list[tuple[str, str, str, str]], filler: str
) -> None:
    text = filler + "".join(f"a=crypto:1 X {m}{key}{tail}{sep}" for key, m, tail, sep in parts)
    redacted = redact(text)
    for key, *_ in parts:
        assert key not in redacted
