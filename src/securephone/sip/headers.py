"""SIP header names and the values the core parses (RFC 3261 §7.3, §20 and the §25 grammar).

Header values reach these parsers already unfolded (a folded line is one line joined by a
single space), so linear white space here is only SP and HTAB. Generic parameters
(``;name=value``) have lower-cased names and unquoted values; :func:`format_params` quotes a
value again when it is not a bare token/host, and always for RFC 3840 feature tags (``+name``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache

from securephone.errors import LocalProtocolError, RemoteProtocolError

from .uri import (
    AbsoluteUri,
    Params,
    SipUri,
    Uri,
    check_param_value,
    drop_params,
    find_param,
    is_valid_host,
    merge_params,
    parse_port,
    parse_uri,
    split_simple_params,
)

TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(TOKEN)
_GEN_VALUE = r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+"
_GEN_VALUE_RE = re.compile(_GEN_VALUE)
_QUOTED_BODY = r'(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*'
_QUOTED_RE = re.compile(rf'"({_QUOTED_BODY})"')
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_NEEDS_ESCAPE_RE = re.compile(r'[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
_PARAM_RE = re.compile(
    rf"[ \t]*;[ \t]*({TOKEN})(?:[ \t]*=[ \t]*(?:({_GEN_VALUE})|\"({_QUOTED_BODY})\"))?"
)
# Parameters without white space or quotes, matched whole and then only split (a fast path
# giving the same result as the general loop below).
_SIMPLE_PARAMS_RE = re.compile(rf"(?:;{TOKEN}(?:={_GEN_VALUE})?)*")
# The common name-addr in one match: optional quoted display name without escapes, or
# display tokens, then <URI> and simple parameters.
_SIMPLE_NAME_ADDR_RE = re.compile(
    r'(?:"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"[ \t]*|([A-Za-z0-9\-.!%*_+`\'~ \t]*))'
    rf"<([^>]*)>((?:;{TOKEN}(?:={_GEN_VALUE})?)*)"
)
# A port the URI parser accepts: 0-65535 in at most five digits.
_PORT_0_65535 = (
    r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[0-5][0-9]{4}|[0-9]{1,4})"
)
_PLAIN_PARAM = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+"
# A name-addr that ``_parse_name_addr`` certainly parses by its fast path: the shape of
# _SIMPLE_NAME_ADDR_RE with, between the brackets, a SIP URI of the shape the URI fast path
# takes (lower-case scheme, plain user, hostname or IPv4 host, a port 0-65535, plain
# parameters). Validation only needs to know that the value parses; the value is built when
# it is read (see ``is_plain_address``).
_PLAIN_ADDRESS_RE = re.compile(
    r'(?:"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"[ \t]*|([A-Za-z0-9\-.!%*_+`\'~ \t]*))'
    r"<(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?([A-Za-z0-9][A-Za-z0-9\-.]*)"
    rf"(?::({_PORT_0_65535}))?((?:;{_PLAIN_PARAM}(?:={_PLAIN_PARAM})?)*)>"
    rf"((?:;{TOKEN}(?:={_GEN_VALUE})?)*)"
)
# One via-parm that ``Via.parse`` certainly accepts: token/token/token, a hostname or IPv4
# host, a port 0-65535 and plain parameters (``is_plain_via`` also refuses a valued rport).
_PLAIN_VIA_RE = re.compile(
    rf"({TOKEN})/({TOKEN})/({TOKEN}) ([A-Za-z0-9][A-Za-z0-9\-.]*)(?::({_PORT_0_65535}))?"
    rf"((?:;{TOKEN}(?:={_GEN_VALUE})?)*)"
)
_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]*")
_ADDR_SPEC_RE = re.compile(r"[^ \t;]+")
_LIST_ITEM_RE = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?$)|<[^>]*>?|[^,"<]+|,', re.S)
_VIA_RE = re.compile(
    rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)
_CSEQ_RE = re.compile(rf"[ \t]*([0-9]+)[ \t]+({TOKEN})[ \t]*")
_DIGITS_RE = re.compile(r"[0-9]+")
_MEDIA_TYPE_RE = re.compile(rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})")
_SIP_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_CSEQ = 2**31
MAX_DELTA_SECONDS = 2**32 - 1

# RFC 3261 §7.3.3 compact forms and later registrations (IANA "Header Fields" registry).
COMPACT: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Transfer-Encoding",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "Flow-Timer",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}

#: Headers whose value is a comma-separated list (RFC 3261 §7.3.1); never the auth headers.
COMMA_LIST_HEADERS = frozenset(
    [
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Route",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    ]
)

#: The URI of a ``Contact: *`` (RFC 3261 §10.2.2); see :attr:`NameAddr.is_wildcard`.
WILDCARD_URI = AbsoluteUri(scheme="*", text="*")


def _error(text: str, status: int = 400) -> RemoteProtocolError:
    return RemoteProtocolError(text, status_hint=status)


@lru_cache(maxsize=1024)
def canonical_name(name: str) -> str:
    """Long, conventionally cased form of a header name (RFC 3261 §7.3.3 compact forms)."""
    lowered = name.lower()
    if lowered in COMPACT:
        return COMPACT[lowered]
    known = _CANONICAL.get(lowered)
    if known is not None:
        return known
    return "-".join(part.capitalize() for part in lowered.split("-"))


def split_comma_values(value: str) -> list[str]:
    """Split a header value on commas outside quoted strings and ``<...>`` (RFC 3261 §7.3.1)."""
    if "," not in value:
        stripped = value.strip(" \t")
        return [stripped] if stripped else []
    items: list[str] = []
    current: list[str] = []
    for match in _LIST_ITEM_RE.finditer(value):
        if match[0] == ",":
            items.append("".join(current).strip(" \t"))
            current = []
        else:
            current.append(match[0])
    items.append("".join(current).strip(" \t"))
    return items


def unquote_string(body: str) -> str:
    """Undo ``quoted-pair`` escapes inside a quoted string (RFC 3261 §25.1)."""
    return _QUOTED_PAIR_RE.sub(r"\1", body) if "\\" in body else body


def quote_string(text: str) -> str:
    """``quoted-string`` for any text without CR/LF (RFC 3261 §25.1)."""
    if "\r" in text or "\n" in text:
        raise LocalProtocolError(f"cannot quote a string containing CR/LF: {text!r}")
    return '"' + _NEEDS_ESCAPE_RE.sub(lambda m: "\\" + m[0], text) + '"'


def parse_params(text: str) -> Params:
    """``*( SEMI generic-param )`` (RFC 3261 §25.1): names lower-cased, quoted values unquoted."""
    text = text.rstrip(" \t")
    if _SIMPLE_PARAMS_RE.fullmatch(text):
        return split_simple_params(text)
    return parse_params_general(text)


def parse_params_general(text: str) -> Params:
    """The general loop of :func:`parse_params` (white space, quoted values)."""
    params: list[tuple[str, str | None]] = []
    text = text.rstrip(" \t")
    pos = 0
    while pos < len(text):
        match = _PARAM_RE.match(text, pos)
        if match is None:
            raise _error(f"bad parameters {text[pos : pos + 40]!r}")
        quoted = match[3]
        value = match[2] if quoted is None else unquote_string(quoted)
        params.append((match[1].lower(), value))
        pos = match.end()
    return tuple(params)


def format_params(params: Params) -> str:
    """Serialize generic parameters, quoting values that are not a bare token or host."""
    parts = []
    for name, value in params:
        if value is None:
            parts.append(f";{name}")
        elif _GEN_VALUE_RE.fullmatch(value) and not name.startswith("+"):
            parts.append(f";{name}={value}")
        else:
            parts.append(f";{name}={quote_string(value)}")
    return "".join(parts)


def _local_params(params: dict[str, str | None]) -> dict[str, str | None]:
    for value in params.values():
        check_param_value(value)
    return params


def parse_delta_seconds(text: str) -> int | None:
    """``delta-seconds`` (RFC 3261 §20.19): digits, capped at 2**32-1; None when malformed."""
    text = text.strip(" \t")
    if not _DIGITS_RE.fullmatch(text):
        return None
    digits = text.lstrip("0") or "0"
    return MAX_DELTA_SECONDS if len(digits) > 10 else min(int(digits), MAX_DELTA_SECONDS)


def parse_sip_date(text: str) -> datetime:
    """``SIP-date`` = RFC 1123 date restricted to GMT (RFC 3261 §20.17); 400 otherwise."""
    match = _SIP_DATE_RE.fullmatch(text.strip(" \t"))
    if match is None:
        raise _error(f"bad Date {text[:60]!r}")
    day, month, year = int(match[2]), _MONTHS.index(match[3]) + 1, int(match[4])
    try:
        return datetime(year, month, day, int(match[5]), int(match[6]), int(match[7]), tzinfo=UTC)
    except ValueError as exc:
        raise _error(f"bad Date {text[:60]!r}") from exc


def parse_media_type(text: str) -> tuple[str, Params]:
    """``media-type`` (RFC 3261 §20.15): lower-cased ``type/subtype`` and its parameters."""
    match = _MEDIA_TYPE_RE.match(text)
    if match is None:
        raise _error(f"bad media type {text[:60]!r}")
    return f"{match[1]}/{match[2]}".lower(), parse_params(text[match.end() :])


def _parse_display_quoted(text: str) -> tuple[str, str]:
    match = _QUOTED_RE.match(text)
    if match is None:
        raise _error("unterminated or malformed quoted display name")
    return unquote_string(match[1]), text[match.end() :].lstrip(" \t")


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``name-addr`` / ``addr-spec`` with header parameters (RFC 3261 §20.10, §20.20, §20.39).

    Used for From, To, Contact, Route and Record-Route. ``display_name`` is unquoted;
    ``Contact: *`` parses to ``is_wildcard=True`` with :data:`WILDCARD_URI`.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = ()
    is_wildcard: bool = False

    def param(self, name: str) -> str | None:
        """Value of a header parameter ("" for a flag), None when absent."""
        return find_param(self.params, name)

    def has_param(self, name: str) -> bool:
        """True when the header parameter is present."""
        return find_param(self.params, name) is not None

    def with_params(self, **params: str | None) -> NameAddr:
        """Replace or add header parameters (None = flag parameter)."""
        return replace(self, params=merge_params(self.params, _local_params(params)))

    def without_params(self, *names: str) -> NameAddr:
        """The same value without the named header parameters."""
        return replace(self, params=drop_params(self.params, names))

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), None when absent or empty."""
        return self.param("tag") or None

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter in seconds (RFC 3261 §20.10), None if absent/bad."""
        value = self.param("expires")
        return None if value is None else parse_delta_seconds(value)

    def __str__(self) -> str:
        if self.is_wildcard:
            return "*"
        display = "" if self.display_name is None else quote_string(self.display_name) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse one ``name-addr`` or ``addr-spec`` plus parameters; 400 when malformed."""
        return _parse_name_addr(text)

    @classmethod
    def _angle(cls, text: str, display: str | None) -> NameAddr:
        """``LAQUOT addr-spec RAQUOT *(SEMI param)``: no white space inside the brackets."""
        end = text.find(">")
        if not text.startswith("<") or end < 0:
            raise _error("expected <URI>")
        return cls(parse_uri(text[1:end]), display, parse_params(text[end + 1 :]))

    @classmethod
    def _addr_spec(cls, text: str) -> NameAddr:
        """A bare URI: it ends at ';' or white space, and must not hold ',' or '?' (§20)."""
        match = _ADDR_SPEC_RE.match(text)
        if match is None:
            raise _error("empty address")
        uri_text = match[0]
        if "," in uri_text or "?" in uri_text:
            raise _error("a URI with ',' or '?' must be enclosed in <> (RFC 3261 §20)")
        return cls(parse_uri(uri_text), None, parse_params(text[match.end() :]))


@lru_cache(maxsize=512)
def _parse_name_addr(text: str) -> NameAddr:
    text = text.strip(" \t")
    simple = _SIMPLE_NAME_ADDR_RE.fullmatch(text)
    if simple is not None:
        display = simple[1] if simple[2] is None else (" ".join(simple[2].split()) or None)
        return NameAddr(parse_uri(simple[3]), display, split_simple_params(simple[4]))
    return parse_name_addr_general(text)


def parse_name_addr_general(text: str) -> NameAddr:
    """The general name-addr parse (escaped display names, addr-spec, ``*``); see ``parse``."""
    text = text.strip(" \t")
    if text == "*":
        return NameAddr(WILDCARD_URI, is_wildcard=True)
    if text.startswith('"'):
        quoted, rest = _parse_display_quoted(text)
        return NameAddr._angle(rest, quoted)
    less = text.find("<")
    if less >= 0 and _DISPLAY_TOKENS_RE.fullmatch(text, 0, less):
        display = " ".join(text[:less].split()) or None
        return NameAddr._angle(text[less:], display)
    return NameAddr._addr_spec(text)


def plain_address(value: str) -> re.Match[str] | None:
    """The match when ``value`` is one name-addr that certainly parses (RFC 3261 §20.10, §20.20).

    It holds no comma, so as a Contact/Route/Record-Route line it is a list of one, and it has
    the common form both fast paths take (see ``_PLAIN_ADDRESS_RE``): ``NameAddr.parse`` and
    ``parse_name_addr_list`` succeed on it, giving what ``name_addr_from_plain`` builds from the
    match. None says nothing: such a value needs the parse.
    """
    if "," in value:
        return None
    return _PLAIN_ADDRESS_RE.fullmatch(value.strip(" \t"))


def is_plain_address(value: str) -> bool:
    """True when ``value`` is one name-addr that certainly parses (see ``plain_address``)."""
    return plain_address(value) is not None


def name_addr_from_plain(match: re.Match[str]) -> NameAddr:
    """The value of a ``plain_address`` match, built without a second parse."""
    quoted, tokens, scheme, user, host, port, uri_params, params = match.groups()
    display = quoted if tokens is None else (" ".join(tokens.split()) or None)
    uri = SipUri(
        scheme,
        host,
        user,
        None,
        None if port is None else int(port),
        split_simple_params(uri_params) if uri_params else (),
    )
    return NameAddr(uri, display, split_simple_params(params) if params else ())


def plain_via(value: str) -> re.Match[str] | None:
    """The match when a Via line is one via-parm that certainly parses (RFC 3261 §20.42).

    No comma (a list of one), single spaces, a plain host and port and parameters without
    quotes or white space, and no ``rport=`` value (whose port the parse checks); ``Via.parse``
    gives what ``via_from_plain`` builds from the match. None says nothing: such a line needs
    the parse.
    """
    if "," in value or "rport=" in value.lower():
        return None
    return _PLAIN_VIA_RE.fullmatch(value)


def is_plain_via(value: str) -> bool:
    """True when a Via line is one via-parm that certainly parses (see ``plain_via``)."""
    return plain_via(value) is not None


def via_from_plain(match: re.Match[str]) -> Via:
    """The value of a ``plain_via`` match, built without a second parse."""
    name, version, transport, host, port, params = match.groups()
    return Via(
        transport.upper(),
        host,
        None if port is None else int(port),
        split_simple_params(params) if params else (),
        f"{name.upper()}/{version}",
    )


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """A comma list of name-addr/addr-spec (Contact, Route, Record-Route); 400 when malformed."""
    return list(_parse_name_addr_tuple(value))


@lru_cache(maxsize=512)
def _parse_name_addr_tuple(value: str) -> tuple[NameAddr, ...]:
    items = split_comma_values(value)
    if not items or "" in items:
        raise _error("empty element in address list")
    return tuple(_parse_name_addr(item) for item in items)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 §20.42, §18.2.1 ``received``, RFC 3581 ``rport``)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def param(self, name: str) -> str | None:
        """Value of a Via parameter ("" for a flag), None when absent."""
        return find_param(self.params, name)

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 §8.1.1.7)."""
        return self.param("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (RFC 3261 §18.2.1)."""
        return self.param("received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value (RFC 3581), None when absent or present without a value."""
        value = self.param("rport")
        return int(value) if value and _DIGITS_RE.fullmatch(value) else None

    @property
    def has_rport(self) -> bool:
        """True when ``rport`` is present, with or without a value."""
        return self.param("rport") is not None

    @property
    def sent_by(self) -> str:
        """``host`` or ``host:port`` as sent."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> Via:
        """Replace or add Via parameters (None = flag parameter such as ``rport``)."""
        return replace(self, params=merge_params(self.params, _local_params(params)))

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one ``via-parm``: sent-protocol LWS sent-by *(SEMI via-params); 400 if bad."""
        match = _VIA_RE.match(text)
        if match is None or not is_valid_host(match[4]):
            raise _error(f"bad Via {text[:80]!r}")
        port = None if match[5] is None else parse_port(match[5])
        params = parse_params(text[match.end() :])
        rport = find_param(params, "rport")
        if rport:
            parse_port(rport)
        protocol = f"{match[1].upper()}/{match[2]}"
        return cls(match[3].upper(), match[4], port, params, protocol)

    @classmethod
    def parse_list(cls, value: str) -> list[Via]:
        """Every via-parm of one header line (comma-separated); 400 when any is malformed."""
        return list(_parse_via_tuple(value))


@lru_cache(maxsize=512)
def _parse_via_tuple(value: str) -> tuple[Via, ...]:
    items = split_comma_values(value)
    if not items or "" in items:
        raise _error("empty Via element")
    return tuple(Via.parse(item) for item in items)


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq (RFC 3261 §20.16): sequence number below 2**31 (§8.1.1.5) and method."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``1*DIGIT LWS Method``; 400 when malformed or out of range."""
        return _parse_cseq(text)


@lru_cache(maxsize=256)
def _parse_cseq(text: str) -> CSeq:
    match = _CSEQ_RE.fullmatch(text)
    if match is None:
        raise _error(f"bad CSeq {text[:60]!r}")
    digits = match[1].lstrip("0") or "0"
    if len(digits) > 10 or int(digits) >= MAX_CSEQ:
        raise _error("CSeq number out of range (must be < 2**31)")
    return CSeq(int(digits), match[2])
