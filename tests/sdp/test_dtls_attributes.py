"""SDP attributes of DTLS-SRTP: a=fingerprint, a=setup, a=tls-id, a=rtcp-mux, the protocols."""

from __future__ import annotations

import hashlib

import pytest

from securephone.sdp import SdpError, parse
from securephone.sdp.dtls import (
    DtlsParameters,
    DtlsRole,
    Fingerprint,
    Setup,
    add_dtls,
    answer_setup,
    check_answer_setup,
    is_dtls_proto,
    new_tls_id,
    parse_setup,
    parse_tls_id,
    read_dtls,
    role,
    rtcp_mux,
)

# An RFC 8122 §5 style value (sha-256: 32 bytes as upper-case hex pairs).
SHA256_TEXT = "sha-256 " + ":".join(f"{i:02X}" for i in range(32))
OFFER = f"""v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=fingerprint:sha-1 {":".join(["AB"] * 20)}
m=audio 40000 UDP/TLS/RTP/SAVP 0
a=fingerprint:{SHA256_TEXT}
a=setup:actpass
a=tls-id:abcdefghijklmnopqrstuvwxyz012345
a=rtcp-mux
a=rtpmap:0 PCMU/8000
"""


def test_fingerprint_round_trip_in_rfc_8122_form() -> None:
    fp = Fingerprint.parse(SHA256_TEXT)
    assert fp.algorithm == "sha-256" and fp.value == bytes(range(32))
    assert str(fp) == SHA256_TEXT
    assert Fingerprint.parse(str(fp)) == fp


def test_fingerprint_is_lenient_on_case_and_strict_on_form() -> None:
    lower = Fingerprint.parse("SHA-256 " + SHA256_TEXT.split()[1].lower())
    assert lower == Fingerprint.parse(SHA256_TEXT) and str(lower) == SHA256_TEXT


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sha-256", "needs <hash-func> <fingerprint>"),
        ("sha-256 AB:CD extra", "needs <hash-func> <fingerprint>"),
        ("sha-256 ABCD", "hex byte pairs"),
        ("sha-256 AB:CD:", "hex byte pairs"),
        ("sha-256 AB:GG", "hex byte pairs"),
        ("sha-256 " + ":".join(["AB"] * 31), "has 32 bytes, not 31"),
        ("sha-1 " + ":".join(["AB"] * 32), "has 20 bytes, not 32"),
        ("sh(a AB:CD", "malformed hash function"),
    ],
)
def test_bad_fingerprints_are_rejected_clearly(value: str, message: str) -> None:
    with pytest.raises(SdpError, match=message) as info:
        Fingerprint.parse(value)
    assert info.value.status_hint == 400


def test_fingerprint_of_a_certificate_and_matching() -> None:
    der = b"not really a certificate, but bytes to hash"
    for name, func in [("sha-1", "sha1"), ("sha-256", "sha256"), ("sha-512", "sha512")]:
        fp = Fingerprint.of_certificate(der, name)
        assert fp.value == hashlib.new(func, der).digest()
        assert fp.matches(der) and not fp.matches(der + b"!")
    assert not Fingerprint("md5", hashlib.md5(der).digest()).matches(der)
    assert not Fingerprint.parse("md5 " + ":".join(["00"] * 16)).is_usable
    assert not Fingerprint("whirlpool", b"\x01").is_usable
    with pytest.raises(ValueError, match="unsupported"):
        Fingerprint.of_certificate(der, "md5")


def test_setup_values_and_the_answerers_choice() -> None:
    assert parse_setup("actpass") is Setup.ACTPASS
    assert parse_setup(" Active ") is Setup.ACTIVE
    with pytest.raises(SdpError, match="RFC 4145"):
        parse_setup("both")
    # RFC 5763 §5: the answer to actpass is active; RFC 4145 §4.1 for the rest.
    assert answer_setup(Setup.ACTPASS) is Setup.ACTIVE
    assert answer_setup(Setup.ACTIVE) is Setup.PASSIVE
    assert answer_setup(Setup.PASSIVE) is Setup.ACTIVE
    assert answer_setup(Setup.HOLDCONN) is Setup.HOLDCONN
    assert role(Setup.ACTIVE) is DtlsRole.CLIENT and role(Setup.PASSIVE) is DtlsRole.SERVER
    with pytest.raises(ValueError, match="actpass"):
        role(Setup.ACTPASS)


@pytest.mark.parametrize(
    ("offered", "answered", "ok"),
    [
        (Setup.ACTPASS, Setup.ACTIVE, True),
        (Setup.ACTPASS, Setup.PASSIVE, True),
        (Setup.ACTPASS, Setup.ACTPASS, False),
        (Setup.ACTIVE, Setup.PASSIVE, True),
        (Setup.ACTIVE, Setup.ACTIVE, False),
        (Setup.PASSIVE, Setup.ACTIVE, True),
        (Setup.PASSIVE, Setup.HOLDCONN, False),
        (Setup.HOLDCONN, Setup.HOLDCONN, True),
    ],
)
def test_checking_the_answer_setup(offered: Setup, answered: Setup, ok: bool) -> None:
    if ok:
        assert check_answer_setup(offered, answered) is answered
    else:
        with pytest.raises(SdpError, match="not a valid answer") as info:
            check_answer_setup(offered, answered)
        assert info.value.status_hint == 488


def test_tls_id() -> None:
    assert parse_tls_id("abcdefghij+/-_0123456789") == "abcdefghij+/-_0123456789"
    fresh = new_tls_id()
    assert parse_tls_id(fresh) == fresh and fresh != new_tls_id()
    for bad in ["short", "x" * 256, "abcdefghijklmnopqrstu!", "abcdefghij klmnopqrstu"]:
        with pytest.raises(SdpError, match="RFC 8842"):
            parse_tls_id(bad)


def test_dtls_protocols() -> None:
    assert is_dtls_proto("UDP/TLS/RTP/SAVP") and is_dtls_proto("UDP/TLS/RTP/SAVPF")
    assert not is_dtls_proto("RTP/SAVP") and not is_dtls_proto("RTP/AVP")


def test_read_media_level_first_then_session_level() -> None:
    sdp = parse(OFFER)
    params = read_dtls(sdp, sdp.media[0])
    assert params.fingerprints == (Fingerprint.parse(SHA256_TEXT),)  # media level wins
    assert params.setup is Setup.ACTPASS
    assert params.tls_id == "abcdefghijklmnopqrstuvwxyz012345"
    assert params.rtcp_mux
    session_only = parse(OFFER.replace(f"a=fingerprint:{SHA256_TEXT}\n", ""))
    fps = read_dtls(session_only, session_only.media[0]).fingerprints
    assert [fp.algorithm for fp in fps] == ["sha-1"]


def test_missing_setup_means_active_and_missing_mux_is_false() -> None:
    text = OFFER.replace("a=setup:actpass\n", "").replace("a=rtcp-mux\n", "")
    sdp = parse(text)
    params = read_dtls(sdp, sdp.media[0])
    assert params.setup is Setup.ACTIVE and not params.rtcp_mux


@pytest.mark.parametrize(
    ("change", "message", "status"),
    [
        (("a=fingerprint:sha-1", "a=x-fp:sha-1"), "needs an a=fingerprint", 488),
        (("a=setup:actpass", "a=setup:sideways"), "a=setup must be", 400),
        (("a=setup:actpass", "a=setup:actpass\na=setup:active"), "more than one a=setup", 400),
        (("a=tls-id:abcdefghijklmnopqrstuvwxyz012345", "a=tls-id:x"), "RFC 8842", 400),
        (("a=rtcp-mux", "a=rtcp-mux:yes"), "takes no value", 400),
        (("a=fingerprint:sha-256 00", "a=fingerprint:sha-256 0"), "hex byte pairs", 400),
    ],
)
def test_bad_attributes_are_rejected(change: tuple[str, str], message: str, status: int) -> None:
    text = OFFER
    if change[0] == "a=fingerprint:sha-1":  # remove every fingerprint
        text = "\n".join(line for line in OFFER.split("\n") if "fingerprint" not in line)
    else:
        text = OFFER.replace(change[0], change[1], 1)
    sdp = parse(text)
    with pytest.raises(SdpError, match=message) as info:
        read_dtls(sdp, sdp.media[0])
    assert info.value.status_hint == status


def test_only_md5_fingerprints_are_not_enough() -> None:
    text = "\n".join(line for line in OFFER.split("\n") if "fingerprint" not in line)
    text = text.replace("a=setup", "a=fingerprint:md5 " + ":".join(["00"] * 16) + "\na=setup")
    sdp = parse(text)
    with pytest.raises(SdpError, match="needs an a=fingerprint"):
        read_dtls(sdp, sdp.media[0])


def test_writing_and_reading_back() -> None:
    sdp = parse(OFFER.replace("a=fingerprint:sha-1", "a=x-other:sha-1"))
    media = sdp.media[0]
    media.attributes = [a for a in media.attributes if a[0] == "rtpmap"]
    ours = DtlsParameters(
        fingerprints=(Fingerprint.parse(SHA256_TEXT),),
        setup=answer_setup(Setup.ACTPASS),
        tls_id=new_tls_id(),
        rtcp_mux=True,
    )
    add_dtls(media, ours)
    text = str(sdp)
    assert f"a=fingerprint:{SHA256_TEXT}\r\n" in text
    assert "a=setup:active\r\n" in text and "a=rtcp-mux\r\n" in text
    again = parse(text)
    assert read_dtls(again, again.media[0]) == ours
    assert rtcp_mux(again.media[0])
