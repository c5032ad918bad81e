"""SdpMedia: which keying a call uses (SDES or ZRTP), what goes in the SDP, and refused downgrades."""

from __future__ import annotations

import pytest

from securephone.errors import MediaError
from securephone.media.keying import MAX_ALARMS, KeyingMethod, add_alarm
from securephone.media.negotiation import KeyingResources, SdpMedia, SrtpPolicy
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.keying import ZrtpKeying
from securephone.sdp import session as sdp_session
from securephone.sdp.offer_answer import MediaCapabilities

SDES, ZRTP = KeyingMethod.SDES, KeyingMethod.ZRTP


def media(
    port: int,
    mode: str = "mandatory",
    methods: tuple[KeyingMethod, ...] = (SDES, ZRTP),
    tls: bool = False,
    zrtp: bool = True,
) -> SdpMedia:
    policy = SrtpPolicy(mode=mode, secure_signalling=tls, methods=methods)
    resources = KeyingResources(ssrc=port, zrtp_cache=ZrtpCache.new() if zrtp else None)
    return SdpMedia(MediaCapabilities(), port, policy, resources)


def audio(body: bytes) -> sdp_session.MediaDescription:
    return sdp_session.parse(body).media[0]


def test_over_plaintext_signalling_sdes_gives_way_to_zrtp() -> None:
    """SDES keys may not cross UDP/TCP signalling; ZRTP needs no keys in SDP."""
    caller, callee = media(40000), media(40002)
    offer = caller.create_offer(False)
    m = audio(offer)
    assert caller.method is ZRTP and m.proto == "RTP/AVP" and not m.crypto_lines
    assert m.zrtp_hash is not None
    answer = callee.receive_offer(offer, False)
    assert callee.method is ZRTP and audio(answer).zrtp_hash is not None
    caller.receive_answer(answer)
    assert isinstance(caller.path, ZrtpKeying) and isinstance(callee.path, ZrtpKeying)
    assert caller.path.peer_hello_hash_signalled and callee.path.peer_hello_hash_signalled
    assert caller.encryption == "srtp"


def test_over_tls_the_first_preference_sdes_is_used() -> None:
    caller, callee = media(40000, tls=True), media(40002, tls=True)
    offer = caller.create_offer(False)
    assert caller.method is SDES and audio(offer).proto == "RTP/SAVP"
    callee.receive_offer(offer, False)
    assert callee.method is SDES and callee.keying is not None and callee.path is None


def test_zrtp_first_is_offered_even_over_tls() -> None:
    caller = media(40000, methods=(ZRTP, SDES), tls=True)
    caller.create_offer(False)
    assert caller.method is ZRTP


def test_mandatory_refuses_an_offer_without_keys_or_zrtp_hash_as_security() -> None:
    plain = SdpMedia(MediaCapabilities(), 40000, SrtpPolicy(mode="off"))
    strict = media(40002)
    with pytest.raises(MediaError) as refused:
        strict.receive_offer(plain.create_offer(False), False)
    assert refused.value.status == 488 and refused.value.security


def test_mandatory_sdes_only_over_plaintext_cannot_offer() -> None:
    with pytest.raises(MediaError) as refused:
        media(40000, methods=(SDES,)).create_offer(False)
    assert refused.value.security and "plaintext signalling" in str(refused.value)


def test_without_a_zrtp_cache_zrtp_is_not_usable() -> None:
    with pytest.raises(MediaError):
        media(40000, zrtp=False).create_offer(False)  # mandatory, no SDES over UDP, no ZRTP


def test_optional_mode_refuses_a_reoffer_that_would_drop_srtp() -> None:
    """A re-INVITE must not silently turn an SRTP call into plain RTP: 488 and an alarm."""
    caller = media(40000, mode="optional", methods=(SDES,), tls=True)
    callee = media(40002, mode="optional", methods=(SDES,), tls=True)
    callee.receive_offer(caller.create_offer(False), False)
    assert callee.keying is not None
    plain = SdpMedia(MediaCapabilities(), 40000, SrtpPolicy(mode="off"))
    reoffer = plain.create_offer(True)
    with pytest.raises(MediaError) as refused:
        callee.receive_offer(reoffer, False)
    assert refused.value.status == 488 and refused.value.security
    assert callee.keying is not None  # the call goes on as it was
    assert callee.alarms and "downgrade refused" in callee.alarms[0]


def test_a_downgrade_repeated_a_thousand_times_is_one_alarm() -> None:
    """The peer decides how often it re-INVITEs: each is refused, the alarm is kept once."""
    caller = media(40000, mode="optional", methods=(SDES,), tls=True)
    callee = media(40002, mode="optional", methods=(SDES,), tls=True)
    callee.receive_offer(caller.create_offer(False), False)
    plain = SdpMedia(MediaCapabilities(), 40000, SrtpPolicy(mode="off"))
    for _ in range(1000):
        with pytest.raises(MediaError) as refused:
            callee.receive_offer(plain.create_offer(True), False)
        assert refused.value.status == 488
    assert len(callee.alarms) == 1


def test_a_call_keeps_at_most_max_alarms_distinct_alarms() -> None:
    alarms: list[str] = []
    assert add_alarm(alarms, "a") and not add_alarm(alarms, "a")
    for n in range(100):
        add_alarm(alarms, f"alarm {n}")
    assert len(alarms) == MAX_ALARMS and alarms[:2] == ["a", "alarm 0"]


def test_a_reoffer_with_a_weaker_suite_is_refused() -> None:
    """An 80-bit-tag call asked to go on with a 32-bit tag: 488 and an alarm."""
    strong = ("AES_CM_128_HMAC_SHA1_80",)
    weak = ("AES_CM_128_HMAC_SHA1_32",)

    def sdes(port: int, suites: tuple[str, ...]) -> SdpMedia:
        policy = SrtpPolicy(mode="mandatory", suites=suites, secure_signalling=True)
        return SdpMedia(MediaCapabilities(), port, policy)

    callee = sdes(40002, strong + weak)
    callee.receive_offer(sdes(40000, strong).create_offer(False), False)
    assert callee.keying is not None and callee.keying.suite == strong[0]
    with pytest.raises(MediaError) as refused:
        callee.receive_offer(sdes(40000, weak).create_offer(False), False)
    assert refused.value.security and "weaken" in str(refused.value)
    assert callee.keying.suite == strong[0] and callee.alarms
