"""The phone's one SRTP suite table against the RFCs and libsrtp."""

from __future__ import annotations

import pylibsrtp
import pytest

from securephone.media.srtp import libsrtp_profile
from securephone.media.suites import (
    DEFAULT_SUITES,
    REGISTERED_SUITES,
    SUITES,
    key_salt_length,
)

# (key, salt, RTP tag, SRTCP tag) in bytes as the RFCs give them:
# RFC 4568 §6.2.1-§6.2.3, RFC 6188 §5.1-§5.2, RFC 7714 §12 and §14.2.
RFC_LENGTHS = {
    "AES_CM_128_HMAC_SHA1_80": (16, 14, 10, 10),
    "AES_CM_128_HMAC_SHA1_32": (16, 14, 4, 10),
    "F8_128_HMAC_SHA1_80": (16, 14, 10, 10),
    "AES_192_CM_HMAC_SHA1_80": (24, 14, 10, 10),
    "AES_192_CM_HMAC_SHA1_32": (24, 14, 4, 10),
    "AES_256_CM_HMAC_SHA1_80": (32, 14, 10, 10),
    "AES_256_CM_HMAC_SHA1_32": (32, 14, 4, 10),
    "AEAD_AES_128_GCM": (16, 12, 16, 16),
    "AEAD_AES_256_GCM": (32, 12, 16, 16),
}


@pytest.mark.parametrize("name", list(RFC_LENGTHS))
def test_lengths_follow_the_rfcs(name: str) -> None:
    suite = REGISTERED_SUITES[name]
    lengths = (suite.key_length, suite.salt_length, suite.rtp_tag_length, suite.rtcp_tag_length)
    assert lengths == RFC_LENGTHS[name]
    assert key_salt_length(name) == RFC_LENGTHS[name][0] + RFC_LENGTHS[name][1]


def test_registered_suites_are_exactly_those_of_the_rfcs() -> None:
    assert set(REGISTERED_SUITES) == set(RFC_LENGTHS)
    assert key_salt_length("FUTURE_SUITE_9000") is None


def test_implemented_suites_have_a_libsrtp_profile_and_the_rest_none() -> None:
    assert tuple(SUITES) == DEFAULT_SUITES
    for suite in REGISTERED_SUITES.values():
        if suite.name in SUITES:
            assert libsrtp_profile(suite) in {
                pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
                pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
                pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
                pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
            }
        else:
            with pytest.raises(ValueError, match="not implemented"):
                libsrtp_profile(suite)
