"""SDP attributes of DTLS-SRTP media: fingerprint, setup, tls-id, rtcp-mux and the protocols.

* ``a=fingerprint:<hash-func> <XX:XX:...>`` — the hash of the certificate the peer will present
  in the DTLS handshake (RFC 8122 §5); :class:`Fingerprint`.
* ``a=setup:active|passive|actpass|holdconn`` — who starts the DTLS handshake (RFC 4145 §4,
  RFC 5763 §5); :class:`Setup`, :func:`answer_setup`, :func:`check_answer_setup`, :func:`role`.
* ``a=tls-id:<id>`` — identifies the DTLS association, so a new one can be told apart from a
  re-offer of the old (RFC 8842 §4); :func:`parse_tls_id`, :func:`new_tls_id`.
* ``a=rtcp-mux`` — RTP and RTCP on one port (RFC 5761 §5.1.1); :func:`rtcp_mux`.
* ``UDP/TLS/RTP/SAVP`` and ``UDP/TLS/RTP/SAVPF`` — the m= line protocols of DTLS-SRTP
  (RFC 5764 §8, RFC 5124 §6); :func:`is_dtls_proto`.

:func:`read_dtls` gathers one media description's attributes (media level first, then session
level, RFC 8122 §5 and RFC 4145 §4) into :class:`DtlsParameters`; :func:`add_dtls` writes ours.
Offer/answer negotiation itself is not here. Every malformed value raises :class:`SdpError`
(400); a DTLS m= line without a usable fingerprint raises it with 488 (RFC 5763 §5).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from securephone.errors import SdpError
from securephone.sdp.session import MediaDescription, SessionDescription

__all__ = [
    "DTLS_PROTOS",
    "HASH_FUNCTIONS",
    "DtlsParameters",
    "DtlsRole",
    "Fingerprint",
    "Setup",
    "add_dtls",
    "answer_setup",
    "check_answer_setup",
    "is_dtls_proto",
    "new_tls_id",
    "parse_setup",
    "parse_tls_id",
    "read_dtls",
    "role",
    "rtcp_mux",
    "usable_fingerprints",
]

# RFC 8122 §5 hash-func names (IANA "Hash Function Textual Names") with their digest sizes.
HASH_FUNCTIONS: dict[str, int] = {
    "sha-1": 20,
    "sha-224": 28,
    "sha-256": 32,
    "sha-384": 48,
    "sha-512": 64,
}
# Registered but forbidden for fingerprints (RFC 8122 §5: MD2 and MD5 MUST NOT be used).
FORBIDDEN_HASH_FUNCTIONS: dict[str, int] = {"md5": 16, "md2": 16}
DTLS_PROTOS = ("UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")
TLS_ID_MIN, TLS_ID_MAX = 20, 255

_HASHLIB_NAMES = {name: name.replace("-", "") for name in HASH_FUNCTIONS}
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 4566 §9 token
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_TLS_ID = re.compile(r"[A-Za-z0-9+/\-_]{20,255}")  # RFC 8842 §4 tls-id-value


@dataclass(frozen=True)
class Fingerprint:
    """One ``a=fingerprint`` value: a hash function name and the certificate's digest.

    ``algorithm`` is the lower-case hash-func (RFC 8122 §5 says it is case-insensitive); it may
    be one we cannot compute (:attr:`is_usable` is then False). ``str()`` gives the RFC 8122
    form: ``sha-256 AB:CD:...`` (upper-case hex, colons).
    """

    algorithm: str
    value: bytes

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse ``<hash-func> <fingerprint>`` (RFC 8122 §5); SdpError(400) if malformed."""
        parts = text.strip(" \t").split()
        if len(parts) != 2:
            raise SdpError("a=fingerprint needs <hash-func> <fingerprint> (RFC 8122 §5)")
        name, digest = parts[0].lower(), parts[1]
        if not _TOKEN.fullmatch(name):
            raise SdpError("a=fingerprint: malformed hash function name (RFC 8122 §5)")
        if not _HEX_PAIRS.fullmatch(digest):
            raise SdpError(
                "a=fingerprint: the fingerprint must be hex byte pairs separated by ':' (RFC 8122 §5)"
            )
        fingerprint = cls(name, bytes.fromhex(digest.replace(":", "")))
        fingerprint._check_length()
        return fingerprint

    @classmethod
    def of_certificate(cls, der: bytes, algorithm: str = "sha-256") -> Fingerprint:
        """The fingerprint of a DER certificate with one of :data:`HASH_FUNCTIONS` (RFC 8122 §5)."""
        name = algorithm.lower()
        if name not in HASH_FUNCTIONS:
            raise ValueError(f"unsupported fingerprint hash function {algorithm!r}")
        return cls(name, hashlib.new(_HASHLIB_NAMES[name], der).digest())

    def _check_length(self) -> None:
        expected = HASH_FUNCTIONS.get(self.algorithm, FORBIDDEN_HASH_FUNCTIONS.get(self.algorithm))
        if expected is not None and len(self.value) != expected:
            raise SdpError(
                f"a=fingerprint: a {self.algorithm} fingerprint has {expected} bytes, "
                f"not {len(self.value)}"
            )

    @property
    def is_usable(self) -> bool:
        """True when we can compute this hash and it is allowed (RFC 8122 §5)."""
        return self.algorithm in HASH_FUNCTIONS

    @property
    def hex(self) -> str:
        """The digest in RFC 8122 form: upper-case hex pairs joined by colons."""
        return self.value.hex(":").upper()

    def matches(self, der: bytes) -> bool:
        """True when this fingerprint is the hash of the DER certificate ``der``."""
        if not self.is_usable:
            return False
        digest = hashlib.new(_HASHLIB_NAMES[self.algorithm], der).digest()
        return hmac.compare_digest(digest, self.value)

    def __str__(self) -> str:
        return f"{self.algorithm} {self.hex}"

    def __repr__(self) -> str:
        return f"Fingerprint({str(self)!r})"


def usable_fingerprints(fingerprints: Iterable[Fingerprint]) -> tuple[Fingerprint, ...]:
    """The fingerprints whose hash function we support (sha-1 ... sha-512; RFC 8122 §5)."""
    return tuple(fp for fp in fingerprints if fp.is_usable)


# ---------------------------------------------------------------- a=setup


class Setup(enum.Enum):
    """The ``a=setup`` values (RFC 4145 §4)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"


class DtlsRole(enum.Enum):
    """Our side of the DTLS handshake: ``a=setup:active`` is the client (RFC 5763 §5)."""

    CLIENT = "client"
    SERVER = "server"


def parse_setup(value: str) -> Setup:
    """Parse an ``a=setup`` value (RFC 4145 §4; case-insensitive); SdpError(400) otherwise."""
    try:
        return Setup(value.strip(" \t").lower())
    except ValueError:
        raise SdpError(
            "a=setup must be one of active, passive, actpass, holdconn (RFC 4145 §4)"
        ) from None


# RFC 4145 §4.1 table; RFC 5763 §5: an answerer to actpass answers active (it sends the
# ClientHello, so the offerer need not wait for the answer to learn where to send it).
_ANSWER = {
    Setup.ACTPASS: Setup.ACTIVE,
    Setup.ACTIVE: Setup.PASSIVE,
    Setup.PASSIVE: Setup.ACTIVE,
    Setup.HOLDCONN: Setup.HOLDCONN,
}
_ALLOWED_ANSWERS = {
    Setup.ACTPASS: frozenset({Setup.ACTIVE, Setup.PASSIVE}),
    Setup.ACTIVE: frozenset({Setup.PASSIVE}),
    Setup.PASSIVE: frozenset({Setup.ACTIVE}),
    Setup.HOLDCONN: frozenset({Setup.HOLDCONN}),
}


def answer_setup(offered: Setup) -> Setup:
    """The answerer's ``a=setup`` for an offered one (RFC 4145 §4.1, RFC 5763 §5)."""
    return _ANSWER[offered]


def check_answer_setup(offered: Setup, answered: Setup) -> Setup:
    """Check the answer's ``a=setup`` against our offer (RFC 4145 §4.1); SdpError(488) if wrong."""
    if answered not in _ALLOWED_ANSWERS[offered]:
        raise SdpError(
            f"a=setup:{answered.value} is not a valid answer to a=setup:{offered.value} "
            "(RFC 4145 §4.1)",
            488,
        )
    return answered


def role(setup: Setup) -> DtlsRole:
    """Our DTLS role from our resolved ``a=setup`` (RFC 5763 §5: active is the client)."""
    if setup is Setup.ACTIVE:
        return DtlsRole.CLIENT
    if setup is Setup.PASSIVE:
        return DtlsRole.SERVER
    raise ValueError(f"a=setup:{setup.value} does not decide the DTLS role yet")


# ---------------------------------------------------------------- a=tls-id, a=rtcp-mux, proto


def parse_tls_id(value: str) -> str:
    """Check an ``a=tls-id`` value: 20 to 255 of ALPHA DIGIT + / - _ (RFC 8842 §4)."""
    text = value.strip(" \t")
    if not _TLS_ID.fullmatch(text):
        raise SdpError(
            "a=tls-id must be 20 to 255 characters of letters, digits, '+', '/', '-', '_' "
            "(RFC 8842 §4)"
        )
    return text


def new_tls_id() -> str:
    """A fresh random ``a=tls-id`` (32 characters, 192 bits; RFC 8842 §4)."""
    return secrets.token_urlsafe(24)


def rtcp_mux(media: MediaDescription) -> bool:
    """``a=rtcp-mux`` is present (RFC 5761 §5.1.1); SdpError(400) if it carries a value."""
    values = [value for name, value in media.attributes if name == "rtcp-mux"]
    if any(value is not None for value in values):
        raise SdpError("a=rtcp-mux is a flag and takes no value (RFC 5761 §5.1.1)")
    return bool(values)


def is_dtls_proto(proto: str) -> bool:
    """True for ``UDP/TLS/RTP/SAVP`` and ``UDP/TLS/RTP/SAVPF`` (RFC 5764 §8, RFC 5124 §6)."""
    return proto.upper() in DTLS_PROTOS


# ---------------------------------------------------------------- one media description


@dataclass(frozen=True)
class DtlsParameters:
    """The DTLS-SRTP attributes of one media description."""

    fingerprints: tuple[Fingerprint, ...]
    setup: Setup
    tls_id: str | None = None
    rtcp_mux: bool = False


def read_dtls(sdp: SessionDescription, media: MediaDescription) -> DtlsParameters:
    """Read fingerprint, setup, tls-id and rtcp-mux of one media description.

    ``a=fingerprint`` and ``a=setup`` are taken from the media level when present, else the
    session level (RFC 8122 §5, RFC 4145 §4); a missing ``a=setup`` means ``active``
    (RFC 4145 §4). At least one fingerprint with a supported hash function is required
    (RFC 5763 §5), else SdpError(488).
    """
    fingerprints = tuple(Fingerprint.parse(v) for v in _values(sdp, media, "fingerprint"))
    if not usable_fingerprints(fingerprints):
        raise SdpError(
            "DTLS-SRTP media needs an a=fingerprint with sha-1, sha-224, sha-256, sha-384 or "
            "sha-512 (RFC 8122 §5, RFC 5763 §5)",
            488,
        )
    setups = _values(sdp, media, "setup")
    if len(setups) > 1:
        raise SdpError("more than one a=setup line (RFC 4145 §4)")
    setup = parse_setup(setups[0]) if setups else Setup.ACTIVE
    tls_ids = media.attribute_values("tls-id")
    if len(tls_ids) > 1:
        raise SdpError("more than one a=tls-id line in a media description (RFC 8842 §4)")
    tls_id = parse_tls_id(tls_ids[0]) if tls_ids else None
    return DtlsParameters(fingerprints, setup, tls_id, rtcp_mux(media))


def _values(sdp: SessionDescription, media: MediaDescription, name: str) -> list[str]:
    found = media.attribute_values(name)
    return found if found else [value or "" for key, value in sdp.attributes if key == name]


def add_dtls(media: MediaDescription, params: DtlsParameters) -> None:
    """Append our fingerprint(s), setup, tls-id and rtcp-mux lines to a media description."""
    attributes: list[tuple[str, str | None]] = [
        ("fingerprint", str(fp)) for fp in params.fingerprints
    ]
    attributes.append(("setup", params.setup.value))
    if params.tls_id is not None:
        attributes.append(("tls-id", parse_tls_id(params.tls_id)))
    if params.rtcp_mux:
        attributes.append(("rtcp-mux", None))
    media.attributes.extend(attributes)
