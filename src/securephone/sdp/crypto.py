"""The SDP ``a=crypto`` attribute for SRTP (SDES, RFC 4568).

Grammar (RFC 4568 §9.1 generic, §9.2 SRTP)::

    crypto-attr  = "a=crypto:" tag 1*WSP crypto-suite 1*WSP key-params *(1*WSP session-param)
    tag          = 1*9DIGIT
    key-params   = key-param *(";" key-param)
    key-param    = "inline:" key-salt ["|" lifetime] ["|" mki]
    lifetime     = ["2^"] 1*DIGIT
    mki          = mki-value ":" mki-length     ; mki-length = 1*3DIGIT, 1..128 bytes

:func:`parse` takes the attribute *value* (what follows ``a=crypto:``). It keeps suites it
does not know (``is_supported`` is then False and :meth:`CryptoAttribute.validate` raises),
but rejects a key||salt whose length is wrong for a registered suite. The suites and their
lengths come from the phone's one table, :mod:`securephone.media.suites`. Error messages never
contain key material. :func:`redact` hides every key in an SDP text before it is logged.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from securephone.errors import CryptoAttributeError
from securephone.media.suites import SUITES, key_salt_length

MAX_TAG = 999_999_999
MAX_LIFETIME = 2**48  # RFC 3711 §9.2: at most 2^48 SRTP packets per master key
REDACTED = "<redacted>"

_SUITE = re.compile(r"[A-Za-z0-9_]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_WSP = re.compile(r"[ \t]+")
_VCHAR = re.compile(r"[\x21-\x7e]+")


@dataclass
class KeyParam:
    """One ``inline:<key||salt>[|lifetime][|mki]`` key parameter (RFC 4568 §6.1)."""

    method: str
    key_salt: bytes = field(repr=False)
    lifetime: int | None = None
    mki: tuple[int, int] | None = None  # (value, length in bytes)

    def __str__(self) -> str:
        text = f"{self.method}:{base64.b64encode(self.key_salt).decode('ascii')}"
        if self.lifetime is not None:
            text += "|" + _format_lifetime(self.lifetime)
        if self.mki is not None:
            text += f"|{self.mki[0]}:{self.mki[1]}"
        return text


@dataclass
class CryptoAttribute:
    """An ``a=crypto`` value: tag, crypto-suite, key params, session params (RFC 4568 §4)."""

    tag: int
    suite: str
    key_params: list[KeyParam]
    session_params: list[str] = field(default_factory=list)

    @property
    def is_supported(self) -> bool:
        """True when the suite is one this phone can key (:mod:`securephone.media.suites`)."""
        return self.suite in SUITES

    def validate(self) -> None:
        """Raise CryptoAttributeError unless the suite is supported (RFC 4568 §7.1.2)."""
        if not self.is_supported:
            raise CryptoAttributeError(
                f"crypto tag {self.tag}: unsupported crypto-suite {self.suite!r}", 488
            )

    def __str__(self) -> str:
        keys = ";".join(str(k) for k in self.key_params)
        return " ".join([str(self.tag), self.suite, keys, *self.session_params])


def parse(value: str) -> CryptoAttribute:
    """Parse the value of an ``a=crypto`` line (RFC 4568 §9.1, §9.2 for SRTP)."""
    text = value.removeprefix("a=").removeprefix("crypto:").strip(" \t\r\n")
    parts = _WSP.split(text)
    if len(parts) < 3:
        raise CryptoAttributeError("a=crypto needs <tag> <crypto-suite> <key-params>")
    tag_text, suite, keys_text, *session_params = parts
    tag = _parse_tag(tag_text)
    if not _SUITE.fullmatch(suite):
        raise CryptoAttributeError(f"crypto tag {tag}: malformed crypto-suite")
    keys = [_parse_key_param(tag, suite, item) for item in keys_text.split(";")]
    for param in session_params:
        if not _VCHAR.fullmatch(param):
            raise CryptoAttributeError(f"crypto tag {tag}: malformed session parameter")
    return CryptoAttribute(tag, suite, keys, session_params)


def format_crypto(tag: int, suite: str, key_salt: bytes) -> str:
    """The value of an ``a=crypto`` line with one inline key (RFC 4568 §9.2)."""
    _check_tag(tag)
    _check_length(tag, suite, key_salt)
    return str(CryptoAttribute(tag, suite, [KeyParam("inline", key_salt)]))


def _parse_tag(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise CryptoAttributeError("crypto tag must be 1 to 9 digits (RFC 4568 §9.1)")
    return _check_tag(int(text))


def _check_tag(tag: int) -> int:
    if not 1 <= tag <= MAX_TAG:
        raise CryptoAttributeError(f"crypto tag {tag} outside 1..{MAX_TAG} (RFC 4568 §9.1)")
    return tag


def _parse_key_param(tag: int, suite: str, text: str) -> KeyParam:
    method, sep, info = text.partition(":")
    if not sep or method.lower() != "inline":
        raise CryptoAttributeError(f"crypto tag {tag}: key method must be 'inline'")
    key_text, *rest = info.split("|")
    if len(rest) > 2:
        raise CryptoAttributeError(f"crypto tag {tag}: too many '|' fields in the key param")
    key_salt = _decode_key(tag, key_text)
    _check_length(tag, suite, key_salt)
    lifetime, mki = _parse_lifetime_mki(tag, rest)
    return KeyParam("inline", key_salt, lifetime, mki)


def _decode_key(tag: int, text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4) if "=" not in text else text
    if not _BASE64.fullmatch(padded) or len(padded) % 4:
        raise CryptoAttributeError(f"crypto tag {tag}: key||salt is not valid base64")
    return base64.b64decode(padded, validate=True)  # cannot fail: the pattern checked it


def _check_length(tag: int, suite: str, key_salt: bytes) -> None:
    expected = key_salt_length(suite)
    if expected is not None and len(key_salt) != expected:
        raise CryptoAttributeError(
            f"crypto tag {tag}: {suite} needs a {expected}-byte key||salt, "
            f"got {len(key_salt)} bytes"
        )


def _parse_lifetime_mki(tag: int, fields: list[str]) -> tuple[int | None, tuple[int, int] | None]:
    """``[|lifetime][|mki]``: a lone field with ':' is the MKI (RFC 4568 §6.1)."""
    if len(fields) == 2:
        if ":" in fields[0]:
            raise CryptoAttributeError(f"crypto tag {tag}: the lifetime must come before the MKI")
        return _parse_lifetime(tag, fields[0]), _parse_mki(tag, fields[1])
    if fields and ":" in fields[0]:
        return None, _parse_mki(tag, fields[0])
    return (_parse_lifetime(tag, fields[0]) if fields else None), None


def _parse_lifetime(tag: int, text: str) -> int:
    match = re.fullmatch(r"(2\^)?([0-9]{1,15})", text)
    if match is None:
        raise CryptoAttributeError(f"crypto tag {tag}: lifetime must be 2^n or decimal")
    number = int(match.group(2))
    if match.group(1) and number > 48:
        raise CryptoAttributeError(f"crypto tag {tag}: lifetime exceeds 2^48 (RFC 3711 §9.2)")
    lifetime = 2**number if match.group(1) else number
    if not 1 <= lifetime <= MAX_LIFETIME:
        raise CryptoAttributeError(f"crypto tag {tag}: lifetime outside 1..2^48")
    return lifetime


def _parse_mki(tag: int, text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]{1,40}):([0-9]{1,3})", text)
    if match is None:
        raise CryptoAttributeError(f"crypto tag {tag}: MKI must be <value>:<length>")
    value, length = int(match.group(1)), int(match.group(2))
    if not 1 <= length <= 128:
        raise CryptoAttributeError(f"crypto tag {tag}: MKI length must be 1..128 bytes")
    if value >= 2 ** (8 * length):
        raise CryptoAttributeError(f"crypto tag {tag}: MKI value does not fit in {length} bytes")
    return value, length


def _format_lifetime(lifetime: int) -> str:
    is_power = lifetime > 0 and lifetime & (lifetime - 1) == 0
    return f"2^{lifetime.bit_length() - 1}" if is_power else str(lifetime)


# ---------------------------------------------------------------- redaction

_INLINE_KEY = re.compile(r"(inline:)[ \t]*[^|;\s]*", re.IGNORECASE)
_K_LINE = re.compile(r"^(k=[^:\r\n]*:)[^\r\n]*", re.MULTILINE)
_KEY_MGMT = re.compile(r"^(a=key-mgmt:[ \t]*[^ \t\r\n]+[ \t]+)[^\r\n]*", re.MULTILINE)


def redact(sdp_text: str) -> str:
    """Replace every key in SDP text with ``<redacted>``, for logs and traces.

    Covers every ``inline:`` key anywhere (all ``a=crypto`` key params, ``FEC_KEY=inline:``,
    ``a=acap`` crypto capabilities; RFC 4568 §6.1), obsolete ``k=`` keys (RFC 4566 §5.12) and
    ``a=key-mgmt`` data (RFC 4567). Lifetime and MKI stay visible.
    """
    text = _INLINE_KEY.sub(lambda m: m.group(1) + REDACTED, sdp_text)
    text = _K_LINE.sub(lambda m: m.group(1) + REDACTED, text)
    return _KEY_MGMT.sub(lambda m: m.group(1) + REDACTED, text)
