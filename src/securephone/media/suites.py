"""The SRTP crypto-suites: the phone's one table of their names, lengths and libsrtp profiles.

Every part of the phone that needs to know a suite reads it here: ``sdp/crypto.py`` checks the
key||salt length of an ``a=crypto`` line, ``media/srtp.py`` keys libsrtp with the profile, and
the configuration (``store/config.py``) accepts the names of the suites we implement. This
module imports nothing from securephone, so that sdp, media and store can all import it
without an import cycle. (The capture verifier, ``verify/keys.py``, keeps its own table on
purpose: it checks captures without trusting the phone's code.)

Sources: RFC 4568 §6.2 (AES_CM_128_HMAC_SHA1_80/_32, F8_128_HMAC_SHA1_80: 128-bit key,
112-bit salt; SRTCP keeps an 80-bit tag even for _32), RFC 6188 §5 (AES_192_CM, AES_256_CM),
RFC 7714 §12 and §14.2 (AEAD_AES_128_GCM, AEAD_AES_256_GCM: 96-bit salt, 128-bit tag).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SUITES", "REGISTERED_SUITES", "SUITES", "SrtpSuite", "key_salt_length"]


@dataclass(frozen=True)
class SrtpSuite:
    """One crypto-suite: master key and salt lengths and tag lengths in bytes, and the name of
    the pylibsrtp ``Policy`` profile constant (None when this phone does not implement it)."""

    name: str
    key_length: int
    salt_length: int
    rtp_tag_length: int
    rtcp_tag_length: int
    libsrtp_profile: str | None = None

    @property
    def key_salt_length(self) -> int:
        """Length of the ``inline:`` key||salt (RFC 4568 §6.1)."""
        return self.key_length + self.salt_length

    @property
    def implemented(self) -> bool:
        """True when the phone can key this suite (libsrtp has a profile for it)."""
        return self.libsrtp_profile is not None


# Implemented suites first, in securephone's default preference order; then the registered
# suites we recognise (their key length is checked) but cannot key.
REGISTERED_SUITES: dict[str, SrtpSuite] = {
    suite.name: suite
    for suite in (
        SrtpSuite("AEAD_AES_128_GCM", 16, 12, 16, 16, "SRTP_PROFILE_AEAD_AES_128_GCM"),
        SrtpSuite("AES_CM_128_HMAC_SHA1_80", 16, 14, 10, 10, "SRTP_PROFILE_AES128_CM_SHA1_80"),
        SrtpSuite("AES_CM_128_HMAC_SHA1_32", 16, 14, 4, 10, "SRTP_PROFILE_AES128_CM_SHA1_32"),
        SrtpSuite("AEAD_AES_256_GCM", 32, 12, 16, 16, "SRTP_PROFILE_AEAD_AES_256_GCM"),
        SrtpSuite("AES_256_CM_HMAC_SHA1_80", 32, 14, 10, 10),
        SrtpSuite("AES_256_CM_HMAC_SHA1_32", 32, 14, 4, 10),
        SrtpSuite("AES_192_CM_HMAC_SHA1_80", 24, 14, 10, 10),
        SrtpSuite("AES_192_CM_HMAC_SHA1_32", 24, 14, 4, 10),
        SrtpSuite("F8_128_HMAC_SHA1_80", 16, 14, 10, 10),
    )
}
# The suites the phone can key, in its default preference order.
SUITES: dict[str, SrtpSuite] = {n: s for n, s in REGISTERED_SUITES.items() if s.implemented}
DEFAULT_SUITES: tuple[str, ...] = tuple(SUITES)


def key_salt_length(name: str) -> int | None:
    """The master key || salt length in bytes of a registered suite, else None."""
    suite = REGISTERED_SUITES.get(name)
    return None if suite is None else suite.key_salt_length
