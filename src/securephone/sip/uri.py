"""SIP, SIPS, tel and other URIs (RFC 3261 §19.1 and §25.1, RFC 3966).

Escaping (RFC 3261 §19.1.2): ``user``, ``password``, parameter values and header names and
values are kept exactly as they were on the wire, in their escaped form, so a parsed URI
serializes back to the same text. Parameter *names* are unescaped and lower-cased, so that
``;%6C%72`` is found as the ``lr`` parameter (RFC 4475 §3.1.1.3). Use :func:`unescape` for the
decoded form of any component, and :meth:`SipUri.equivalent` for RFC 3261 §19.1.4 comparison.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import unquote

from securephone.errors import LocalProtocolError, RemoteProtocolError

Params = tuple[tuple[str, str | None], ...]

_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_ESC = r"%[0-9A-Fa-f]{2}"
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESC})+")
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*")
_PARAMCHARS = rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})+"
_URI_PARAM_RE = re.compile(rf"({_PARAMCHARS})(?:=({_PARAMCHARS}))?")
_HNV = rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})"
_URI_HEADER_RE = re.compile(rf"({_HNV}+)=({_HNV}*)")
_NOT_PARAMCHAR_RE = re.compile(r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-_.!~*'()\[\]/:&+$%]")
_NOT_NAMECHAR_RE = re.compile(r"[^A-Za-z0-9\-_.!~*'()\[\]/:&+$]")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-.]*")
_IPV6_REF_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_ABSOLUTE_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):([A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]#]+)")
_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()]+")

# The common SIP URI in one match: lower-case scheme, a user without ';', '?', '/', ':' or
# escapes, a hostname or IPv4 host, a port, parameters without escapes, no headers. Whatever it
# accepts, the general parser accepts with the same result; anything else goes the long way.
_SIMPLE_PARAM = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+"
_SIMPLE_SIP_URI_RE = re.compile(
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?([A-Za-z0-9][A-Za-z0-9\-.]*)"
    rf"(?::([0-9]{{1,5}}))?((?:;{_SIMPLE_PARAM}(?:={_SIMPLE_PARAM})?)*)"
)

# Parameters that must match when either URI has them (RFC 3261 §19.1.4).
_MUST_MATCH_PARAMS = frozenset({"user", "ttl", "method", "maddr", "transport"})


def _error(text: str, status: int = 400) -> RemoteProtocolError:
    return RemoteProtocolError(text, status_hint=status)


def unescape(text: str) -> str:
    """Decode RFC 3261 §19.1.2 ``%HH`` escapes (UTF-8); invalid escapes are left as they are."""
    return unquote(text, errors="surrogateescape") if "%" in text else text


def parse_port(text: str) -> int:
    """A port number 0-65535 (RFC 3261 §25.1 ``port = 1*DIGIT``), else 400."""
    if not _PORT_RE.fullmatch(text) or int(text) > 65535:
        raise _error(f"bad port {text!r}")
    return int(text)


def is_valid_host(host: str) -> bool:
    """True for a hostname, IPv4 address or bracketed IPv6 reference (RFC 3261 §25.1)."""
    if host.startswith("["):
        if not _IPV6_REF_RE.fullmatch(host):
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return _HOSTNAME_RE.fullmatch(host) is not None


def find_param(params: Params, name: str) -> str | None:
    """Value of parameter ``name`` ("" for a flag parameter), None when absent."""
    key = name.lower()
    for pname, value in params:
        if pname == key:
            return "" if value is None else value
    return None


def merge_params(params: Params, updates: Mapping[str, str | None]) -> Params:
    """Replace parameters in place (keeping their position) and append new ones."""
    merged = list(params)
    for name, value in updates.items():
        key = name.lower()
        for index, (pname, _) in enumerate(merged):
            if pname == key:
                merged[index] = (key, value)
                break
        else:
            merged.append((key, value))
    return tuple(merged)


def drop_params(params: Params, names: tuple[str, ...]) -> Params:
    """Parameters without those named (case-insensitive)."""
    keys = {name.lower() for name in names}
    return tuple(item for item in params if item[0] not in keys)


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match[0].encode("utf-8", "surrogateescape"))


def _escape_paramchars(text: str, pattern: re.Pattern[str] = _NOT_PARAMCHAR_RE) -> str:
    """Percent-encode what may not appear in a URI parameter (RFC 3261 §19.1.2)."""
    return pattern.sub(_percent, text) if pattern.search(text) else text


def _format_uri_params(params: Params) -> str:
    parts = []
    for name, value in params:
        parts.append(";" + _escape_paramchars(name, _NOT_NAMECHAR_RE))
        if value is not None:
            parts.append("=" + _escape_paramchars(value))
    return "".join(parts)


def split_simple_params(text: str) -> Params:
    """``;name[=value]...`` already matched as plain characters (no escapes): split only."""
    if not text:
        return ()
    params: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, equals, value = item.partition("=")
        params.append((name.lower(), value if equals else None))
    return tuple(params)


def _parse_uri_params(texts: list[str]) -> Params:
    """``*( ";" uri-parameter )``: names unescaped and lower-cased, values kept escaped."""
    params: list[tuple[str, str | None]] = []
    for text in texts:
        match = _URI_PARAM_RE.fullmatch(text)
        if match is None:
            raise _error(f"bad URI parameter {text!r}")
        params.append((unescape(match[1]).lower(), match[2]))
    return tuple(params)


def _parse_uri_headers(text: str) -> tuple[tuple[str, str], ...]:
    """``headers = "?" header *( "&" header )`` (RFC 3261 §25.1), kept escaped."""
    headers = []
    for item in text.split("&"):
        match = _URI_HEADER_RE.fullmatch(item)
        if match is None:
            raise _error(f"bad URI header {item!r}")
        headers.append((match[1], match[2]))
    return tuple(headers)


def _split_userinfo(rest: str) -> tuple[str | None, str | None, str]:
    """Split ``[userinfo "@"] hostport...``: user and password may hold ';', '?' but never '@'."""
    if rest.count("@") > 1:
        raise _error("more than one '@' in SIP URI")
    userinfo, at, hostpart = rest.partition("@")
    if not at:
        return None, None, rest
    user, colon, password = userinfo.partition(":")
    if not _USER_RE.fullmatch(user) or not _PASSWORD_RE.fullmatch(password):
        raise _error(f"bad userinfo {userinfo!r}")
    return user, (password if colon else None), hostpart


def _parse_hostport(text: str) -> tuple[str, int | None]:
    """``hostport = host [ ":" port ]`` with IPv6 references kept in brackets."""
    if text.startswith("["):
        end = text.find("]") + 1
        host, after = text[:end], text[end:]
        if end == 0 or (after and not after.startswith(":")):
            raise _error(f"bad host {text!r}")
        port_text, colon = after[1:], bool(after)
    else:
        host, sep, port_text = text.partition(":")
        colon = bool(sep)
    if not is_valid_host(host):
        raise _error(f"bad host {host!r}")
    return host, (parse_port(port_text) if colon else None)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1); components escaped as on the wire."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """Value of a URI parameter ("" for a flag parameter), None when absent."""
        return find_param(self.params, name)

    def has_param(self, name: str) -> bool:
        """True when the URI parameter is present (with or without a value)."""
        return find_param(self.params, name) is not None

    def with_params(self, **params: str | None) -> SipUri:
        """Replace or add URI parameters; None (or "") makes a flag parameter such as ``lr``."""
        updates = {name: (value or None) for name, value in params.items()}
        return replace(self, params=merge_params(self.params, updates))

    def without_params(self, *names: str) -> SipUri:
        """The same URI without the named parameters."""
        return replace(self, params=drop_params(self.params, names))

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased (RFC 3261 §19.1.1)."""
        value = self.param("transport")
        return value.lower() if value else None

    @property
    def hostport(self) -> str:
        """``host`` or ``host:port``."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def equivalent(self, other: object) -> bool:
        """URI comparison of RFC 3261 §19.1.4 (unescaped, host case-insensitive, params rules)."""
        if not isinstance(other, SipUri) or self.scheme != other.scheme:
            return False
        if _unesc(self.user) != _unesc(other.user) or _unesc(self.password) != _unesc(
            other.password
        ):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        return _params_equivalent(self.params, other.params) and _headers_key(
            self.headers
        ) == _headers_key(other.headers)

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            password = "" if self.password is None else ":" + self.password
            userinfo = f"{self.user}{password}@"
        text = f"{self.scheme}:{userinfo}{self.hostport}{_format_uri_params(self.params)}"
        if self.headers:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.headers)
        return text

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a SIP/SIPS URI; 416 for another well-formed scheme, 400 for anything malformed."""
        simple = _SIMPLE_SIP_URI_RE.fullmatch(text)
        if simple is not None and (simple[4] is None or int(simple[4]) <= 65535):
            return cls(
                simple[1],
                simple[3],
                simple[2],
                None,
                None if simple[4] is None else int(simple[4]),
                split_simple_params(simple[5]),
            )
        return cls.parse_general(text)

    @classmethod
    def parse_general(cls, text: str) -> SipUri:
        """The full RFC 3261 §25.1 parse (escapes, passwords, IPv6, headers); see ``parse``."""
        scheme, colon, rest = text.partition(":")
        lowered = scheme.lower()
        if not colon or lowered not in ("sip", "sips"):
            well_formed = bool(colon) and _SCHEME_RE.fullmatch(scheme) is not None
            raise _error(f"not a SIP URI: {text[:80]!r}", 416 if well_formed else 400)
        user, password, hostpart = _split_userinfo(rest)
        hostpart, question, header_text = hostpart.partition("?")
        hostport, *param_texts = hostpart.split(";")
        host, port = _parse_hostport(hostport)
        headers = _parse_uri_headers(header_text) if question else ()
        return cls(lowered, host, user, password, port, _parse_uri_params(param_texts), headers)


def _unesc(text: str | None) -> str | None:
    return None if text is None else unescape(text)


def _params_equivalent(mine: Params, theirs: Params) -> bool:
    """RFC 3261 §19.1.4: some parameters must match if either side has them; others if both do."""
    left = {name: unescape(value or "").lower() for name, value in mine}
    right = {name: unescape(value or "").lower() for name, value in theirs}
    for name in left.keys() | right.keys():
        if name in left and name in right:
            if left[name] != right[name]:
                return False
        elif name in _MUST_MATCH_PARAMS:
            return False
    return True


def _headers_key(headers: tuple[tuple[str, str], ...]) -> frozenset[tuple[str, str]]:
    return frozenset((unescape(name).lower(), unescape(value)) for name, value in headers)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966), number and parameters kept as on the wire."""

    number: str
    params: Params = ()

    def param(self, name: str) -> str | None:
        """Value of a parameter ("" for a flag), None when absent."""
        return find_param(self.params, name)

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_uri_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> TelUri:
        """Parse ``tel:number;params`` (RFC 3966 §3); 400 when malformed."""
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() != "tel":
            raise _error(f"not a tel URI: {text[:80]!r}")
        number, *param_texts = rest.split(";")
        if not _TEL_NUMBER_RE.fullmatch(number):
            raise _error(f"bad telephone number {number!r}")
        return cls(number, _parse_uri_params(param_texts))


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other URI scheme (RFC 3261 §25.1 ``absoluteURI``), kept as text; scheme lower-cased."""

    scheme: str
    text: str

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> AbsoluteUri:
        """Parse ``scheme ":" opaque``; 400 when malformed (spaces, ``<>``, quotes...)."""
        match = _ABSOLUTE_RE.fullmatch(text)
        if match is None:
            raise _error(f"bad URI {text[:80]!r}")
        return cls(match[1].lower(), text)


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse any URI, dispatching on its scheme (RFC 3261 §19.1, §25.1); 400 when malformed."""
    scheme = text.partition(":")[0].lower()
    if scheme in ("sip", "sips"):
        return SipUri.parse(text)
    if scheme == "tel":
        return TelUri.parse(text)
    return AbsoluteUri.parse(text)


def check_param_value(value: str | None) -> None:
    """Refuse locally supplied parameter values that could break the message framing."""
    if value is not None and ("\r" in value or "\n" in value):
        raise LocalProtocolError(f"parameter value contains CR/LF: {value!r}")
