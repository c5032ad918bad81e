"""SRTP protection profiles negotiated by ``use_srtp`` and the keys the DTLS exporter yields.

RFC 5764 §4.1.2 (AES-CM profiles) and RFC 7714 §14.2 (AEAD profiles) name the profiles; each maps
onto a crypto-suite of :mod:`securephone.media.srtp`, whose key and salt lengths apply.
RFC 5764 §4.2: both directions' keys come from one TLS exporter output (RFC 5705) with the
label ``EXTRACTOR-dtls_srtp`` and no context, laid out as

    client_write_SRTP_master_key | server_write_SRTP_master_key |
    client_write_SRTP_master_salt | server_write_SRTP_master_salt

The DTLS client sends with the client keys; the server with the server keys.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from securephone.media.srtp import SUITES, SrtpContext, SrtpSuite

__all__ = [
    "DEFAULT_PROFILES",
    "EXPORTER_LABEL",
    "SrtpKeys",
    "SrtpProfile",
    "keying_material_length",
    "profiles_for_suites",
    "split_keying_material",
]

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"


class SrtpProfile(enum.Enum):
    """A DTLS-SRTP protection profile by its OpenSSL (and IANA registry) name."""

    AEAD_AES_128_GCM = "SRTP_AEAD_AES_128_GCM"  # 0x0007, RFC 7714 §14.2
    AEAD_AES_256_GCM = "SRTP_AEAD_AES_256_GCM"  # 0x0008, RFC 7714 §14.2
    AES128_CM_SHA1_80 = "SRTP_AES128_CM_SHA1_80"  # 0x0001, RFC 5764 §4.1.2
    AES128_CM_SHA1_32 = "SRTP_AES128_CM_SHA1_32"  # 0x0002, RFC 5764 §4.1.2

    @property
    def suite(self) -> SrtpSuite:
        """The SRTP crypto-suite this profile keys (same transforms, same lengths)."""
        return SUITES[_SUITE_NAMES[self]]

    @classmethod
    def from_openssl(cls, name: bytes) -> SrtpProfile | None:
        """The profile OpenSSL reports as negotiated, or None (no or unknown profile)."""
        try:
            return cls(name.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None


_SUITE_NAMES = {
    SrtpProfile.AEAD_AES_128_GCM: "AEAD_AES_128_GCM",
    SrtpProfile.AEAD_AES_256_GCM: "AEAD_AES_256_GCM",
    SrtpProfile.AES128_CM_SHA1_80: "AES_CM_128_HMAC_SHA1_80",
    SrtpProfile.AES128_CM_SHA1_32: "AES_CM_128_HMAC_SHA1_32",
}
DEFAULT_PROFILES: tuple[SrtpProfile, ...] = (
    SrtpProfile.AEAD_AES_128_GCM,
    SrtpProfile.AES128_CM_SHA1_80,
)


def profiles_for_suites(suites: Sequence[str]) -> tuple[SrtpProfile, ...]:
    """The DTLS-SRTP profiles keying the given SRTP suites, in the suites' order (so the phone's
    ``srtp_suites`` preference also decides what ``use_srtp`` offers, RFC 5764 §4.1.1)."""
    by_suite = {profile.suite.name: profile for profile in SrtpProfile}
    return tuple(by_suite[name] for name in suites if name in by_suite)


@dataclass(frozen=True)
class SrtpKeys:
    """Both directions' SRTP master keys and salts for one DTLS association (never shown)."""

    profile: SrtpProfile
    local_key: bytes = field(repr=False)
    local_salt: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)
    remote_salt: bytes = field(repr=False)

    @property
    def local_key_salt(self) -> bytes:
        """Our master key || salt, the form :class:`SrtpContext` takes (RFC 3711 §8.1)."""
        return self.local_key + self.local_salt

    @property
    def remote_key_salt(self) -> bytes:
        """The peer's master key || salt."""
        return self.remote_key + self.remote_salt

    def context(self, *, allow_key_export: bool = False) -> SrtpContext:
        """An SRTP context: we protect with our keys, unprotect with the peer's."""
        return SrtpContext(
            self.profile.suite.name,
            self.local_key_salt,
            self.remote_key_salt,
            allow_key_export=allow_key_export,
        )


def keying_material_length(profile: SrtpProfile) -> int:
    """Bytes to export: two keys and two salts (RFC 5764 §4.2)."""
    return 2 * profile.suite.key_salt_length


def split_keying_material(profile: SrtpProfile, material: bytes, *, is_client: bool) -> SrtpKeys:
    """Cut the exporter output into our and the peer's key and salt (RFC 5764 §4.2)."""
    if len(material) != keying_material_length(profile):
        raise ValueError(
            f"{profile.value} needs {keying_material_length(profile)} bytes of keying material, "
            f"got {len(material)}"
        )
    key_len, salt_len = profile.suite.key_length, profile.suite.salt_length
    client_key, rest = material[:key_len], material[key_len:]
    server_key, rest = rest[:key_len], rest[key_len:]
    client_salt, server_salt = rest[:salt_len], rest[salt_len:]
    if is_client:
        return SrtpKeys(profile, client_key, client_salt, server_key, server_salt)
    return SrtpKeys(profile, server_key, server_salt, client_key, client_salt)
