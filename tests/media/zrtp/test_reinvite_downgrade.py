"""A re-INVITE must not take ZRTP away from a ZRTP-secured call (pitfall: linphone-sdk#411).

Two ``SdpMedia`` negotiate ZRTP (RTP/AVP with ``a=zrtp-hash``, RFC 6189 §8.1); then the caller's
re-offers are answered by the callee. A re-offer that keeps ZRTP is answered; one that drops the
``a=zrtp-hash``, switches to SDES keys or names another Hello (another ZRTP endpoint) is refused
with a 488 security error, and the callee's ZRTP keying raises an alarm users see.
"""

from __future__ import annotations

import pytest

from securephone.errors import MediaError
from securephone.media.keying import KeyingMethod, KeyingUpdated
from securephone.media.negotiation import KeyingResources, SdpMedia, SrtpPolicy
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.keying import ZrtpKeying
from securephone.sdp.offer_answer import MediaCapabilities

ZRTP_ONLY = SrtpPolicy(mode="mandatory", methods=(KeyingMethod.ZRTP,))
CRYPTO = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40


def negotiated_pair() -> tuple[SdpMedia, SdpMedia, bytes]:
    caller = SdpMedia(MediaCapabilities(), 40000, ZRTP_ONLY, KeyingResources(1, ZrtpCache.new()))
    callee = SdpMedia(MediaCapabilities(), 42000, ZRTP_ONLY, KeyingResources(2, ZrtpCache.new()))
    offer = caller.create_offer(False)
    caller.receive_answer(callee.receive_offer(offer, False))
    assert callee.method is KeyingMethod.ZRTP and b"a=zrtp-hash:1.10 " in offer
    return caller, callee, caller.create_offer(False)


def alarms(media: SdpMedia) -> list[str]:
    assert isinstance(media.path, ZrtpKeying)
    return media.path.alarms


def test_a_reoffer_that_keeps_zrtp_is_answered() -> None:
    _, callee, reoffer = negotiated_pair()
    answer = callee.receive_offer(reoffer, False)
    assert b"a=zrtp-hash:1.10 " in answer and b"RTP/AVP" in answer
    assert alarms(callee) == []


def _without_hash(sdp: bytes) -> bytes:
    return b"".join(line for line in sdp.splitlines(True) if not line.startswith(b"a=zrtp-hash"))


def _sdes(sdp: bytes) -> bytes:
    return _without_hash(sdp).replace(b"RTP/AVP", b"RTP/SAVP") + CRYPTO.encode() + b"\r\n"


def _other_hello(sdp: bytes) -> bytes:
    start = sdp.index(b"a=zrtp-hash:1.10 ") + len(b"a=zrtp-hash:1.10 ")
    return sdp[:start] + b"0" * 64 + sdp[start + 64 :]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_without_hash, "drop ZRTP"),
        (_sdes, "SDES keys"),
        (_other_hello, "another a=zrtp-hash"),
    ],
    ids=["no-zrtp-hash", "sdes", "other-hello"],
)
def test_a_downgrade_reoffer_is_refused_with_an_alarm(change: object, says: str) -> None:
    _, callee, reoffer = negotiated_pair()
    local_before = callee.local
    assert callable(change)
    with pytest.raises(MediaError) as refused:
        callee.receive_offer(change(reoffer), False)
    assert refused.value.status == 488 and refused.value.security
    assert says in str(refused.value)
    assert callee.local is local_before and callee.method is KeyingMethod.ZRTP  # nothing changed
    (alarm,) = alarms(callee)
    assert says in alarm
    assert isinstance(callee.path, ZrtpKeying)
    event = callee.path.next_event()
    assert isinstance(event, KeyingUpdated) and event.details["alarms"] == [alarm]
