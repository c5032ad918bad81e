"""SDES keying (RFC 4568) and SRTP contexts (RFC 3711) of securephone.media.srtp."""

from __future__ import annotations

import base64
import logging

import pytest

from securephone.errors import MediaError
from securephone.media.rtp import RtpPacket
from securephone.media.srtp import (
    DEFAULT_SUITES,
    MIN_LIFETIME,
    SUITES,
    SdesChoice,
    SdesNegotiator,
    SrtpContext,
    SrtpError,
    generate_key,
    libsrtp_profile,
)
from securephone.sdp import crypto

KEY30 = bytes(range(30))
B64_30 = base64.b64encode(KEY30).decode()  # AES_CM_128 key||salt
B64_28 = base64.b64encode(bytes(range(28))).decode()  # AEAD_AES_128_GCM key||salt


def rtp(seq: int, ssrc: int = 0x1234ABCD, payload: bytes = b"\xd5" * 160) -> bytes:
    return bytes(RtpPacket(0, seq, seq * 160, ssrc, payload))


def rtcp(ssrc: int = 0x1234ABCD) -> bytes:
    """An RTCP receiver report with no report blocks (RFC 3550 §6.4.2)."""
    return bytes([0x80, 201, 0, 1]) + ssrc.to_bytes(4, "big")


def negotiate(
    offerer: SdesNegotiator | None = None, answerer: SdesNegotiator | None = None
) -> tuple[SdesChoice, SdesChoice]:
    """A full SDES exchange; returns (offerer's choice, answerer's choice)."""
    offerer = offerer or SdesNegotiator()
    answerer = answerer or SdesNegotiator()
    offer = offerer.offer_lines()
    answer, answer_choice = answerer.answer_lines(offer)
    return offerer.accept_answer(answer, offer), answer_choice


def only_reason(lines: list[str], negotiator: SdesNegotiator | None = None) -> str:
    with pytest.raises(SrtpError) as info:
        (negotiator or SdesNegotiator()).answer_lines(lines)
    assert info.value.status == 488
    assert len(info.value.reasons) == 1
    return info.value.reasons[0]


# --- suites and keys -----------------------------------------------------------------------


def test_default_preference_order() -> None:
    assert DEFAULT_SUITES == (
        "AEAD_AES_128_GCM",
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AEAD_AES_256_GCM",
    )


@pytest.mark.parametrize("name", list(SUITES))
def test_every_suite_keys_and_is_supported_by_the_sdp_layer(name: str) -> None:
    suite = SUITES[name]
    assert crypto.parse(crypto.format_crypto(1, name, generate_key(name))).is_supported
    assert len(generate_key(name)) == suite.key_salt_length


def test_suite_table_values() -> None:
    gcm128, cm80, cm32, gcm256 = (SUITES[name] for name in DEFAULT_SUITES)
    assert (gcm128.key_length, gcm128.salt_length, gcm128.rtp_tag_length) == (16, 12, 16)
    assert (cm80.key_length, cm80.salt_length, cm80.rtp_tag_length) == (16, 14, 10)
    assert (cm32.rtp_tag_length, cm32.rtcp_tag_length) == (4, 10)
    assert (gcm256.key_length, gcm256.salt_length) == (32, 12)
    assert len({libsrtp_profile(suite) for suite in SUITES.values()}) == 4


def test_generate_key_is_random_and_checks_the_suite() -> None:
    keys = {generate_key("AES_CM_128_HMAC_SHA1_80") for _ in range(50)}
    assert len(keys) == 50
    with pytest.raises(ValueError, match="unknown SRTP crypto-suite"):
        generate_key("F8_128_HMAC_SHA1_80")


def test_srtp_error_is_a_media_error_with_status() -> None:
    error = SrtpError("nope")
    assert isinstance(error, MediaError)
    assert error.status == 488


def test_negotiator_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        SdesNegotiator(["AES_256_CM_HMAC_SHA1_80"])  # parsed by sdp.crypto, not keyable here
    with pytest.raises(ValueError):
        SdesNegotiator([])
    with pytest.raises(ValueError):
        SdesNegotiator(["AEAD_AES_128_GCM", "AEAD_AES_128_GCM"])
    with pytest.raises(ValueError):
        SdesNegotiator().offer_lines("AEAD_AES_128_GCM")  # a str is not a list of suites


# --- offers --------------------------------------------------------------------------------


def test_offer_has_one_line_per_suite_in_order_with_tags_1_to_n() -> None:
    lines = SdesNegotiator().offer_lines()
    attrs = [crypto.parse(line) for line in lines]
    assert [a.tag for a in attrs] == [1, 2, 3, 4]
    assert [a.suite for a in attrs] == list(DEFAULT_SUITES)
    keys = [a.key_params[0].key_salt for a in attrs]
    assert len(set(keys)) == 4
    assert all(a.key_params[0].lifetime is None and a.key_params[0].mki is None for a in attrs)


def test_offer_keys_are_fresh_for_every_offer() -> None:
    negotiator = SdesNegotiator()
    first = negotiator.offer_lines()
    second = negotiator.offer_lines()
    assert {line.split("inline:")[1] for line in first}.isdisjoint(
        line.split("inline:")[1] for line in second
    )


def test_offer_with_chosen_suites() -> None:
    lines = SdesNegotiator().offer_lines(["AES_CM_128_HMAC_SHA1_32", "AEAD_AES_256_GCM"])
    assert [crypto.parse(line).suite for line in lines] == [
        "AES_CM_128_HMAC_SHA1_32",
        "AEAD_AES_256_GCM",
    ]
    assert [crypto.parse(line).tag for line in lines] == [1, 2]


# --- answers -------------------------------------------------------------------------------


def test_answerer_takes_the_offerers_first_line() -> None:
    offer = [
        f"7 AES_CM_128_HMAC_SHA1_32 inline:{B64_30}",
        f"3 AEAD_AES_128_GCM inline:{B64_28}",
    ]
    answer, choice = SdesNegotiator().answer_lines(offer)
    assert (choice.tag, choice.suite) == (7, "AES_CM_128_HMAC_SHA1_32")
    assert choice.remote_key == KEY30
    attr = crypto.parse(answer[0])
    assert (attr.tag, attr.suite) == (7, "AES_CM_128_HMAC_SHA1_32")
    assert attr.key_params[0].key_salt == choice.local_key
    assert choice.local_key != choice.remote_key


def test_answerer_prefers_its_own_order_when_configured() -> None:
    offer = [
        f"7 AES_CM_128_HMAC_SHA1_32 inline:{B64_30}",
        f"3 AEAD_AES_128_GCM inline:{B64_28}",
        f"9 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}",
    ]
    _, choice = SdesNegotiator(prefer_local=True).answer_lines(offer)
    assert (choice.tag, choice.suite) == (3, "AEAD_AES_128_GCM")
    ours = SdesNegotiator(["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"], prefer_local=True)
    assert ours.answer_lines(offer)[1].tag == 9


def test_answerer_only_takes_suites_it_allows() -> None:
    offer = [f"1 AEAD_AES_128_GCM inline:{B64_28}", f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}"]
    _, choice = SdesNegotiator().answer_lines(offer, ["AES_CM_128_HMAC_SHA1_80"])
    assert choice.tag == 2


def test_answer_accepts_prefixed_lines() -> None:
    _, choice = SdesNegotiator().answer_lines(
        [f"a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}"]
    )
    assert choice.tag == 5


def test_answer_keys_are_fresh_for_every_answer() -> None:
    offer = SdesNegotiator().offer_lines()
    answerer = SdesNegotiator()
    first = answerer.answer_lines(offer)[1]
    second = answerer.answer_lines(offer)[1]
    assert first.local_key != second.local_key
    assert first.remote_key == second.remote_key


def test_rejected_lines_are_skipped_for_the_next_one() -> None:
    offer = [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}|2^20|1:4",  # MKI
        f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}|2^20",  # lifetime too short
        f"3 NULL_HMAC_SHA1_80 inline:{B64_30}",  # unknown suite
        f"4 AES_CM_128_HMAC_SHA1_80 inline:{B64_30} UNENCRYPTED_SRTP",
        f"5 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}|2^31",
    ]
    _, choice = SdesNegotiator().answer_lines(offer)
    assert choice.tag == 5


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1 SUPER_CIPHER_9000 inline:" + B64_30, "unsupported crypto-suite 'SUPER_CIPHER_9000'"),
        ("1 F8_128_HMAC_SHA1_80 inline:" + B64_30, "unsupported crypto-suite"),
        ("1 AES_256_CM_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(46)).decode(), "unsupported"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_28, "needs a 30-byte key||salt, got 28"),
        ("1 AEAD_AES_128_GCM inline:" + B64_30, "needs a 28-byte key||salt, got 30"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30[:-2] + "*!", "not valid base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + "|2^20|1:4", "MKI not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + "|1:4", "MKI not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + "|2^30", "lifetime 2^30 is shorter"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + "|1000", "lifetime 1000 is shorter"),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30};inline:{B64_30}",
            "several master keys",
        ),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + " KDR=10", "KDR not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + " UNENCRYPTED_SRTCP", "UNENCRYPTED_SRTCP"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + " UNAUTHENTICATED_SRTP", "UNAUTHENT"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + B64_30 + " FOO_BAR", "FOO_BAR not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 key:" + B64_30, "key method must be 'inline'"),
        ("x AES_CM_128_HMAC_SHA1_80 inline:" + B64_30, "tag must be 1 to 9 digits"),
        ("1 AES_CM_128_HMAC_SHA1_80", "needs <tag> <crypto-suite> <key-params>"),
    ],
)
def test_every_rejection_reason(line: str, reason: str) -> None:
    assert reason in only_reason([line])


def test_fec_key_session_parameter_is_refused_without_quoting_its_key() -> None:
    secret = base64.b64encode(b"S" * 30).decode()
    text = only_reason([f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30} FEC_KEY=inline:{secret}"])
    assert "FEC_KEY not supported" in text
    assert secret not in text


@pytest.mark.parametrize(
    "suffix",
    ["|2^31", "|2^48", f"|{MIN_LIFETIME}", " WSH=64", " -VENDOR_HINT=3", "|2^31 WSH=128"],
)
def test_accepted_lifetimes_and_session_parameters(suffix: str) -> None:
    _, choice = SdesNegotiator().answer_lines(
        [f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}{suffix}"]
    )
    assert choice.remote_key == KEY30


def test_min_lifetime_is_configurable() -> None:
    lenient = SdesNegotiator(min_lifetime=2**20)
    _, choice = lenient.answer_lines([f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}|2^20"])
    assert choice.tag == 1


def test_duplicate_tags_reject_the_offer() -> None:
    offer = [f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}", f"1 AEAD_AES_128_GCM inline:{B64_28}"]
    with pytest.raises(SrtpError, match="crypto tag 1 appears twice") as info:
        SdesNegotiator().answer_lines(offer)
    assert info.value.status == 488


def test_duplicate_tags_count_even_on_unparseable_lines() -> None:
    offer = [f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}", "2 AEAD_AES_128_GCM inline:!!"]
    with pytest.raises(SrtpError, match="appears twice"):
        SdesNegotiator().answer_lines(offer)


def test_empty_offer() -> None:
    with pytest.raises(SrtpError, match="no a=crypto line") as info:
        SdesNegotiator().answer_lines([])
    assert info.value.status == 488


def test_no_acceptable_line_gives_488_with_every_reason() -> None:
    offer = [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}|1:4",
        f"2 AES_192_CM_HMAC_SHA1_80 inline:{base64.b64encode(bytes(38)).decode()}",
    ]
    with pytest.raises(SrtpError) as info:
        SdesNegotiator().answer_lines(offer)
    assert info.value.status == 488
    assert len(info.value.reasons) == 2
    assert "crypto tag 1: MKI not supported" in str(info.value)
    assert "crypto tag 2: unsupported crypto-suite 'AES_192_CM_HMAC_SHA1_80'" in str(info.value)


# --- checking the answer ---------------------------------------------------------------------


def test_offer_answer_round_trip_agrees_on_suite_and_crossed_keys() -> None:
    ours, theirs = negotiate()
    assert (ours.tag, ours.suite) == (theirs.tag, theirs.suite) == (1, "AEAD_AES_128_GCM")
    assert ours.local_key == theirs.remote_key
    assert ours.remote_key == theirs.local_key
    assert ours.local_key != ours.remote_key


def test_keys_differ_per_call_and_per_direction() -> None:
    calls = [negotiate() for _ in range(5)]
    keys = [key for ours, _ in calls for key in (ours.local_key, ours.remote_key)]
    assert len(set(keys)) == 10


def test_accept_answer_to_a_later_line() -> None:
    offerer = SdesNegotiator()
    offer = offerer.offer_lines()
    _, choice = SdesNegotiator(["AEAD_AES_256_GCM"]).answer_lines(offer)
    assert choice.tag == 4
    answer = [crypto.format_crypto(4, "AEAD_AES_256_GCM", choice.local_key)]
    ours = offerer.accept_answer(answer, offer)
    assert ours.suite == "AEAD_AES_256_GCM"
    assert ours.local_key == crypto.parse(offer[3]).key_params[0].key_salt


def answer_error(answer: list[str]) -> SrtpError:
    offerer = SdesNegotiator()
    offer = offerer.offer_lines()  # tags 1..4 in DEFAULT_SUITES order
    with pytest.raises(SrtpError) as info:
        offerer.accept_answer(answer, offer)
    return info.value


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([], "exactly one a=crypto line, it has 0"),
        (
            [f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}"] * 2,
            "exactly one a=crypto line, it has 2",
        ),
        ([f"9 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}"], "crypto tag 9 was not offered"),
        (
            [f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}"],
            "names AES_CM_128_HMAC_SHA1_80, but we offered AEAD_AES_128_GCM",
        ),
        ([f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_28}"], "needs a 30-byte key||salt"),
        ([f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30[:-1]}$"], "not valid base64"),
        ([f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}|2^31|7:1"], "MKI not supported"),
        ([f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}|2^16"], "lifetime 2^16 is shorter"),
        ([f"2 AES_CM_128_HMAC_SHA1_80 inline:{B64_30} UNENCRYPTED_SRTP"], "UNENCRYPTED_SRTP"),
        ([f"2 NOT_A_SUITE inline:{B64_30}"], "unsupported crypto-suite 'NOT_A_SUITE'"),
    ],
)
def test_accept_answer_rejections(answer: list[str], reason: str) -> None:
    error = answer_error(answer)
    assert reason in str(error)
    assert error.status == 488


def test_accept_answer_without_our_offer() -> None:
    with pytest.raises(SrtpError, match="we offered no a=crypto line"):
        SdesNegotiator().accept_answer([f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64_30}"], [])


# --- SRTP contexts ---------------------------------------------------------------------------


def contexts(suite: str = "AEAD_AES_128_GCM") -> tuple[SrtpContext, SrtpContext]:
    """Caller and callee contexts from a real SDES exchange on one suite."""
    ours, theirs = negotiate(SdesNegotiator([suite]), SdesNegotiator([suite]))
    return ours.context(), SrtpContext.from_choice(theirs)


@pytest.mark.parametrize("suite", list(SUITES))
def test_round_trip_both_directions(suite: str) -> None:
    alice, bob = contexts(suite)
    for seq in range(5):
        packet = rtp(seq)
        srtp = alice.protect(packet)
        assert srtp != packet
        assert len(srtp) == len(packet) + SUITES[suite].rtp_tag_length
        assert packet[12:] not in srtp  # the payload is encrypted
        assert bob.unprotect(srtp) == packet
        back = rtp(seq, ssrc=0x0BADCAFE)
        assert alice.unprotect(bob.protect(back)) == back
    assert bob.unprotect_rtcp(alice.protect_rtcp(rtcp())) == rtcp()
    assert alice.unprotect_rtcp(bob.protect_rtcp(rtcp(0x0BADCAFE))) == rtcp(0x0BADCAFE)
    assert (alice.protected, alice.unprotected, alice.rtcp_protected) == (5, 5, 1)
    assert (bob.protected, bob.unprotected, bob.rtcp_unprotected) == (5, 5, 1)
    assert bob.auth_failures == bob.replay_failures == bob.errors == 0


def test_a_direction_cannot_be_read_with_the_other_directions_key() -> None:
    alice, _ = contexts()
    assert alice.unprotect(alice.protect(rtp(1))) is None  # our own packet, the peer's key
    assert alice.auth_failures == 1


@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("where", [12, 40, -1])  # first payload byte, middle, tag
def test_tampering_is_an_auth_failure(suite: str, where: int) -> None:
    alice, bob = contexts(suite)
    srtp = alice.protect(rtp(100))
    forged = bytearray(srtp)
    forged[where] ^= 0x01
    assert bob.unprotect(bytes(forged)) is None
    assert (bob.auth_failures, bob.replay_failures, bob.unprotected) == (1, 0, 0)
    assert bob.unprotect(srtp) == rtp(100)  # the forgery did not move the replay window


def test_tampered_header_is_an_auth_failure() -> None:
    alice, bob = contexts("AES_CM_128_HMAC_SHA1_80")
    forged = bytearray(alice.protect(rtp(7)))
    forged[1] ^= 0x08  # payload type 0 -> 8: the header is authenticated too
    assert bob.unprotect(bytes(forged)) is None
    assert bob.auth_failures == 1


@pytest.mark.parametrize("suite", list(SUITES))
def test_replay_is_dropped_and_counted(suite: str) -> None:
    alice, bob = contexts(suite)
    srtp = alice.protect(rtp(500))
    assert bob.unprotect(srtp) == rtp(500)
    assert bob.unprotect(srtp) is None
    assert (bob.replay_failures, bob.auth_failures, bob.unprotected) == (1, 0, 1)


def test_packet_older_than_the_window_is_a_replay_failure() -> None:
    alice, bob = contexts()
    old = alice.protect(rtp(1000))
    for seq in range(1001, 1300):
        assert bob.unprotect(alice.protect(rtp(seq))) is not None
    assert bob.unprotect(old) is None  # never seen, but 299 behind: outside the window
    assert bob.replay_failures == 1


def test_reordered_packets_inside_the_window_are_accepted() -> None:
    alice, bob = contexts()
    packets = [alice.protect(rtp(seq)) for seq in range(20)]
    for srtp in reversed(packets):
        assert bob.unprotect(srtp) is not None
    assert bob.unprotected == 20


def test_srtcp_tamper_and_replay() -> None:
    alice, bob = contexts("AES_CM_128_HMAC_SHA1_32")
    srtcp = alice.protect_rtcp(rtcp())
    forged = bytearray(srtcp)
    forged[9] ^= 0x80
    assert bob.unprotect_rtcp(bytes(forged)) is None
    assert bob.unprotect_rtcp(srtcp) == rtcp()
    assert bob.unprotect_rtcp(srtcp) is None
    assert (bob.auth_failures, bob.replay_failures, bob.rtcp_unprotected) == (1, 1, 1)
    assert bob.rtcp_auth_failures == 1


def test_srtcp_failures_are_counted_apart_from_srtp() -> None:
    """SRTCP that fails authentication (e.g. a peer's RTCP not protected as agreed) is counted
    apart as well, so audio failures (SRTP) stay visible on their own."""
    alice, bob = contexts("AES_CM_128_HMAC_SHA1_80")
    bad_rtcp = bytearray(alice.protect_rtcp(rtcp()))
    bad_rtcp[9] ^= 0x80
    assert bob.unprotect_rtcp(bytes(bad_rtcp)) is None
    forged = bytearray(alice.protect(rtp(3)))
    forged[-1] ^= 0x01
    assert bob.unprotect(bytes(forged)) is None
    assert (bob.auth_failures, bob.rtcp_auth_failures) == (2, 1)
    assert bob.stats()["rtcp_auth_failures"] == 1


@pytest.mark.parametrize(
    "garbage", [b"", b"\x80", rtp(1)[:11], rtp(1)[:12], b"\x80" * 1600], ids=repr
)
def test_garbage_never_raises(garbage: bytes) -> None:
    _, bob = contexts()
    assert bob.unprotect(garbage) is None
    assert bob.unprotect_rtcp(garbage) is None
    assert bob.auth_failures + bob.replay_failures + bob.errors == 2
    assert bob.unprotected == bob.rtcp_unprotected == 0


def test_plain_rtp_is_rejected() -> None:
    _, bob = contexts("AES_CM_128_HMAC_SHA1_80")
    assert bob.unprotect(rtp(1)) is None
    assert bob.auth_failures == 1


def test_protect_refuses_what_libsrtp_cannot_take() -> None:
    alice, _ = contexts()
    with pytest.raises(SrtpError, match="SRTP protect failed") as info:
        alice.protect(rtp(1, payload=bytes(1400)))
    assert info.value.status == 500
    with pytest.raises(SrtpError):
        alice.protect(b"\x80")
    assert alice.protected == 0


def test_bytes_like_packets() -> None:
    alice, bob = contexts()
    srtp = alice.protect(bytearray(rtp(3)))
    assert bob.unprotect(memoryview(srtp)) == rtp(3)
    assert bob.unprotect_rtcp(bytearray(alice.protect_rtcp(memoryview(rtcp())))) == rtcp()


def test_context_checks_suite_and_key_lengths() -> None:
    with pytest.raises(ValueError, match="unknown SRTP crypto-suite"):
        SrtpContext("AES_256_CM_HMAC_SHA1_80", bytes(46), bytes(46))
    with pytest.raises(ValueError, match="local key"):
        SrtpContext("AEAD_AES_128_GCM", bytes(30), bytes(28))  # libsrtp alone would take 30
    with pytest.raises(ValueError, match="remote key"):
        SrtpContext("AES_CM_128_HMAC_SHA1_80", bytes(30), bytes(29))


def test_new_ssrc_from_the_peer_is_accepted_after_authenticating() -> None:
    alice, bob = contexts()
    assert bob.unprotect(alice.protect(rtp(1, ssrc=1))) is not None
    assert bob.unprotect(alice.protect(rtp(1, ssrc=2))) is not None
    assert bob.remote_ssrc == 2


def test_stats() -> None:
    alice, bob = contexts("AES_CM_128_HMAC_SHA1_80")
    srtp = alice.protect(rtp(1))
    bob.unprotect(srtp)
    bob.unprotect(srtp)
    bob.unprotect(b"\x80")
    assert bob.stats() == {
        "suite": "AES_CM_128_HMAC_SHA1_80",
        "protected": 0,
        "unprotected": 1,
        "rtcp_protected": 0,
        "rtcp_unprotected": 0,
        "auth_failures": 0,
        "rtcp_auth_failures": 0,
        "replay_failures": 1,
        "errors": 1,
    }


def test_media_stream_packets_round_trip() -> None:
    """What MediaStream.next_packet emits survives protect/unprotect and parses again."""
    alice, bob = contexts()
    packet = RtpPacket(8, 4711, 123456, 0xCAFE0001, b"\x55" * 160, marker=True, csrc=[7])
    plain = bob.unprotect(alice.protect(bytes(packet)))
    assert plain is not None
    assert RtpPacket.parse(plain) == packet


# --- secrecy: keys never in repr, str, errors or logs ---------------------------------------


def key_texts(key: bytes) -> list[str]:
    return [
        base64.b64encode(key).decode(),
        key.hex(),
        key.hex().upper(),
        repr(key),
        base64.b64encode(key[:16]).decode()[:20],
    ]


def test_keys_never_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ours, theirs = negotiate()
    alice, bob = ours.context(), theirs.context()
    bob.unprotect(alice.protect(rtp(1)))
    bob.unprotect(b"\x80" * 40)
    shown = " ".join(
        [repr(ours), str(ours), repr(theirs), repr(alice), str(alice), str(bob), caplog.text]
    )
    assert "AEAD_AES_128_GCM" in shown and "srtp:" in caplog.text
    for key in (ours.local_key, ours.remote_key):
        for text in key_texts(key):
            assert text not in shown


def test_keys_never_in_error_messages() -> None:
    secret = base64.b64encode(b"K" * 28).decode()
    lines = [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{secret}",  # wrong length
        f"2 AEAD_AES_128_GCM inline:{secret}|2^10",  # short lifetime
        f"3 AEAD_AES_128_GCM inline:{secret}|1:2",  # MKI
        f"4 NOPE inline:{secret}",  # unknown suite
    ]
    with pytest.raises(SrtpError) as info:
        SdesNegotiator().answer_lines(lines)
    assert len(info.value.reasons) == 4
    assert secret not in str(info.value)
    assert "KKKK" not in str(info.value)


# --- key export for debugging ------------------------------------------------------------------


def test_key_export_is_off_by_default() -> None:
    alice, _ = contexts()
    with pytest.raises(PermissionError):
        alice.export_keys()


def test_key_export_when_allowed() -> None:
    ours, theirs = negotiate()
    alice = ours.context(allow_key_export=True)
    bob = theirs.context()
    assert [entry["ssrc"] for entry in alice.export_keys()] == [None, None]
    bob.unprotect(alice.protect(rtp(1, ssrc=0xAAAA)))
    alice.unprotect(bob.protect(rtp(1, ssrc=0xBBBB)))
    entries = alice.export_keys()
    assert entries == [
        {
            "suite": "AEAD_AES_128_GCM",
            "key_b64": base64.b64encode(ours.local_key).decode(),
            "direction": "outbound",
            "ssrc": 0xAAAA,
        },
        {
            "suite": "AEAD_AES_128_GCM",
            "key_b64": base64.b64encode(ours.remote_key).decode(),
            "direction": "inbound",
            "ssrc": 0xBBBB,
        },
    ]


def test_rekey_keeping_the_peers_key_keeps_the_replay_window() -> None:
    """A re-INVITE that keeps the peer's key must not let old packets be replayed (RFC 3711 §3.3.2)."""
    suite = "AES_CM_128_HMAC_SHA1_80"
    ours, theirs = generate_key(suite), generate_key(suite)
    receiver = SrtpContext(suite, ours, theirs)
    sender = SrtpContext(suite, theirs, ours)
    packets = [sender.protect(rtp(seq)) for seq in range(1, 4)]
    assert all(receiver.unprotect(p) is not None for p in packets)
    receiver.rekey(suite, generate_key(suite), theirs)  # our key is new, theirs is kept
    assert receiver.unprotect(packets[0]) is None and receiver.replay_failures == 1
    assert receiver.unprotect(sender.protect(rtp(4))) is not None
    # a new key from the peer: a new receive session; packets under the old key fail auth
    new_theirs = generate_key(suite)
    receiver.rekey(suite, generate_key(suite), new_theirs)
    assert receiver.unprotect(sender.protect(rtp(5))) is None
    assert receiver.unprotect(SrtpContext(suite, new_theirs, ours).protect(rtp(6))) is not None


def test_per_packet_calls_give_pylibsrtp_s_own_results() -> None:
    """The direct libsrtp calls (media/srtp.py ``_direct``) against pylibsrtp's methods."""
    import pylibsrtp

    from securephone.media.srtp import _policy, _suite

    suite = _suite("AES_CM_128_HMAC_SHA1_80")
    key = bytes(range(30))
    ours = SrtpContext(suite.name, key, key)
    public = pylibsrtp.Session(_policy(suite, key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    for seq in range(3):
        assert ours.protect(rtp(seq)) == public.protect(rtp(seq))
    assert ours.protect_rtcp(rtcp()) == public.protect_rtcp(rtcp())
    with pytest.raises(SrtpError, match="too long"):
        ours.protect(rtp(9, payload=bytes(1500)))
    assert ours.unprotect(bytes(1600)) is None and ours.errors == 1


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"])
def test_protect_audio_gives_the_bytes_of_protecting_the_packed_packet(suite: str) -> None:
    """``protect_audio`` (fields straight into libsrtp's buffer) against ``protect(pack_audio)``."""
    from securephone.media.rtp import pack_audio

    key = bytes(range(SUITES[suite].key_length + SUITES[suite].salt_length))
    direct, packed = SrtpContext(suite, key, key), SrtpContext(suite, key, key)
    for seq, marker, payload in [
        (7, True, b"\xd5" * 160),
        (8, False, b"\x01" * 20),
        (9, False, b""),
    ]:
        fields = (0, marker, seq, seq * 160, 0x1234ABCD, payload)
        assert direct.protect_audio(*fields) == packed.protect(pack_audio(*fields))
    assert direct.unprotect(direct.protect_audio(8, False, 10, 1600, 0x1234ABCD, b"\x02" * 160))
    assert (direct.protected, direct.local_ssrc) == (4, 0x1234ABCD)
    with pytest.raises(SrtpError, match="too long"):
        direct.protect_audio(0, False, 11, 1760, 0x1234ABCD, bytes(1500))
    assert direct.protected == 4
