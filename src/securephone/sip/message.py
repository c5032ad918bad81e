"""SIP messages: Request/Response, parsing, framing and serialization (RFC 3261 §7, §18.3, §20).

``parse_message`` takes one whole message (a UDP datagram); ``StreamParser`` frames messages
on TCP/TLS by Content-Length and counts RFC 5626 §3.5.1 CRLF keep-alives. Every malformed
input raises :class:`RemoteProtocolError` whose ``status_hint`` is the response a UAS should
send (400, 413, 416, 505). When the request line and the header section could be read, the
error is an :class:`InvalidRequestError` carrying the request, so that the caller can answer
with ``make_response(err.request, err.status_hint)`` (RFC 3261 §8.2, RFC 4475 §3).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias, TypeVar

from securephone.errors import LocalProtocolError, RemoteProtocolError

from .headers import (
    COMMA_LIST_HEADERS,
    TOKEN_RE,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    name_addr_from_plain,
    parse_delta_seconds,
    parse_media_type,
    parse_name_addr_list,
    parse_sip_date,
    plain_address,
    plain_via,
    split_comma_values,
    via_from_plain,
)
from .uri import AbsoluteUri, SipUri, Uri, parse_uri

MAX_MESSAGE_SIZE = 65535
MAX_HEADERS = 256
MAX_HEADER_LINE = 8192
SIP_VERSION = "SIP/2.0"

_VERSION_RE = re.compile(r"SIP/[0-9]{1,5}\.[0-9]{1,5}", re.IGNORECASE)
_STATUS_RE = re.compile(r"[1-6][0-9]{2}")
_CONTENT_LENGTH_RE = re.compile(r"[0-9]{1,20}")
_MAX_FORWARDS_RE = re.compile(r"[0-9]{1,10}")
_BAD_REASON_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CALL_ID_RE = re.compile(r"[^ \t\x00-\x1f\x7f]+")
_PLAIN_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+/[A-Za-z0-9\-.!%*_+`'~]+")
_LEADING_CRLF_RE = re.compile(rb"(?:\r\n)*")
_KEEPALIVE_RE = re.compile(rb"[\r\n]+")
_ESSENTIAL = ("Via", "From", "To", "Call-ID", "CSeq")
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type")
_RESPONSE_COPIED = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})
_T = TypeVar("_T")
_ADDRESS_LISTS = ("Contact", "Route", "Record-Route")

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
_CLASS_REASONS = {
    1: "Provisional",
    2: "OK",
    3: "Redirect",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def _error(text: str, status: int = 400) -> RemoteProtocolError:
    return RemoteProtocolError(text, status_hint=status)


def default_reason(status: int) -> str:
    """The usual reason phrase for a status code (RFC 3261 §21), else a class phrase."""
    return REASONS.get(status) or _CLASS_REASONS.get(status // 100, "Unknown")


class Headers:
    """Ordered multimap; lookups are case-insensitive and compact-form aware (RFC 3261 §7.3).

    Names are stored in canonical form; values exactly as received (unfolded, trimmed). Besides
    the ordered lines, the values are indexed by name (built once, on the first look-up) and each
    header value the message accessors parse is kept until the headers change, so a received
    message parses every header at most once (validation and accessors share the result).
    """

    __slots__ = ("_index", "_items", "_parsed")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] | None = None
        self._parsed: dict[str, Any] = {}  # what accessors and validation parsed, by key
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]]) -> Headers:
        """Build from parser output whose names and values were already checked."""
        headers = cls.__new__(cls)
        headers._items = items
        headers._index = None
        headers._parsed = {}
        return headers

    @staticmethod
    def _checked(name: str, value: str) -> tuple[str, str]:
        if not TOKEN_RE.fullmatch(name):
            raise LocalProtocolError(f"bad header name {name!r}")
        if "\r" in value or "\n" in value:
            raise LocalProtocolError(f"header value contains CR/LF: {value!r}")
        return canonical_name(name), value.strip(" \t")

    def _lines(self) -> dict[str, list[str]]:
        """Values by canonical name, in order (rebuilt after a change that reorders lines)."""
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                lines = index.get(name)
                if lines is None:
                    index[name] = [value]
                else:
                    lines.append(value)
            self._index = index
        return index

    def _changed(self) -> None:
        self._index = None
        self._parsed.clear()

    def _values(self, name: str) -> list[str] | None:
        """The values of ``name`` (a canonical name is found without canonicalising it)."""
        index = self._lines()
        values = index.get(name)
        if values is None:
            values = index.get(canonical_name(name))
        return values

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first header line of that name."""
        lines = self._values(name)
        return lines[0] if lines else default

    def get_lines(self, name: str) -> list[str]:
        """Every header line's value, never split on commas."""
        return list(self._values(name) or ())

    def get_all(self, name: str) -> list[str]:
        """Every value; comma lists split for list headers (RFC 3261 §7.3.1), empties dropped."""
        lines = self.get_lines(name)
        if canonical_name(name) not in COMMA_LIST_HEADERS:
            return lines
        return [item for line in lines for item in split_comma_values(line) if item]

    def count(self, name: str) -> int:
        """Number of header lines of that name."""
        return len(self._values(name) or ())

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        item = self._checked(name, value)
        self._items.append(item)
        if self._index is not None:
            self._index.setdefault(item[0], []).append(item[1])
        if self._parsed:
            self._parsed.clear()

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first line of that name, or at the top (Via, Record-Route)."""
        item = self._checked(name, value)
        index = self._position(item[0])
        self._items.insert(0 if index is None else index, item)
        self._changed()

    def set(self, name: str, value: str) -> None:
        """Replace every line of that name by one, at the position of the first (or append)."""
        item = self._checked(name, value)
        index = self._position(item[0])
        self._changed()
        if index is None:
            self._items.append(item)
            return
        rest = [(n, v) for i, (n, v) in enumerate(self._items) if n != item[0] or i < index]
        rest.insert(index, item)
        self._items = rest

    def remove(self, name: str) -> None:
        """Remove every line of that name."""
        key = canonical_name(name)
        self._items = [item for item in self._items if item[0] != key]
        self._changed()

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers._trusted(list(self._items))

    def _position(self, key: str) -> int | None:
        for index, (item_name, _) in enumerate(self._items):
            if item_name == key:
                return index
        return None

    def _cached(self, key: str, parse: Callable[[Headers], _T]) -> _T:
        """``parse(self)``, computed once until the headers change (errors are not kept)."""
        parsed = self._parsed
        if key in parsed:
            return parsed[key]  # type: ignore[no-any-return]
        value = parse(self)
        parsed[key] = value
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._values(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _required(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise _error(f"missing {name} header")
    return value


def _parse_call_id(headers: Headers) -> str:
    value = _required(headers, "Call-ID")
    if not _CALL_ID_RE.fullmatch(value):
        raise _error(f"bad Call-ID {value[:60]!r}")
    return value


def _parse_cseq(headers: Headers) -> CSeq:
    return CSeq.parse(_required(headers, "CSeq"))


# Where validation keeps the matches of a header whose lines were all plain (``_check_plain``):
# ``Headers._parsed[_PLAIN[name]]`` is the list of matches, one per line.
_PLAIN = {name: name + "/plain" for name in ("Via", "From", "To", *_ADDRESS_LISTS)}


def _parse_vias(headers: Headers) -> tuple[Via, ...]:
    plain: list[re.Match[str]] | None = headers._parsed.get("Via/plain")
    if plain is not None:
        return tuple(via_from_plain(match) for match in plain)
    return tuple(via for line in headers.get_lines("Via") for via in Via.parse_list(line))


def _parse_top_via(headers: Headers) -> Via:
    parsed = headers._parsed
    vias: tuple[Via, ...] | None = parsed.get("Via")  # every Via, parsed: no second parse
    if vias:
        return vias[0]
    plain: list[re.Match[str]] | None = parsed.get("Via/plain")
    if plain:
        return via_from_plain(plain[0])
    return Via.parse_list(_required(headers, "Via"))[0]


def _parse_from(headers: Headers) -> NameAddr:
    plain: list[re.Match[str]] | None = headers._parsed.get("From/plain")
    if plain:
        return name_addr_from_plain(plain[0])
    return NameAddr.parse(_required(headers, "From"))


def _parse_to(headers: Headers) -> NameAddr:
    plain: list[re.Match[str]] | None = headers._parsed.get("To/plain")
    if plain:
        return name_addr_from_plain(plain[0])
    return NameAddr.parse(_required(headers, "To"))


def _address_list(headers: Headers, name: str) -> tuple[NameAddr, ...]:
    plain: list[re.Match[str]] | None = headers._parsed.get(_PLAIN[name])
    if plain is not None:
        if len(plain) == 1:
            return (name_addr_from_plain(plain[0]),)
        return tuple(name_addr_from_plain(match) for match in plain)
    return tuple(a for line in headers.get_lines(name) for a in parse_name_addr_list(line))


def _parse_contacts(headers: Headers) -> tuple[NameAddr, ...]:
    return _address_list(headers, "Contact")


def _parse_routes(headers: Headers) -> tuple[NameAddr, ...]:
    return _address_list(headers, "Route")


def _parse_record_routes(headers: Headers) -> tuple[NameAddr, ...]:
    return _address_list(headers, "Record-Route")


_ADDRESS_PARSERS = {
    "Contact": _parse_contacts,
    "Route": _parse_routes,
    "Record-Route": _parse_record_routes,
}


def _parse_max_forwards(headers: Headers) -> int | None:
    value = headers.get("Max-Forwards")
    if value is None:
        return None
    if not _MAX_FORWARDS_RE.fullmatch(value) or int(value) > 255:
        raise _error(f"bad Max-Forwards {value[:30]!r}")
    return int(value)


def _parse_expires(headers: Headers) -> int | None:
    value = headers.get("Expires")
    if value is None:
        return None
    seconds = parse_delta_seconds(value)
    if seconds is None:
        raise _error(f"bad Expires {value[:30]!r}")
    return seconds


def _parse_content_type(headers: Headers) -> str | None:
    value = headers.get("Content-Type")
    if value is None:
        return None
    if _PLAIN_MEDIA_TYPE_RE.fullmatch(value):  # type/subtype alone: what the parse gives
        return value.lower()
    return parse_media_type(value)[0]


class Message:
    """Common part of Request and Response: headers, body and the core header accessors.

    Accessors parse on demand and raise RemoteProtocolError (400) when a required header is
    missing or malformed. Two messages are equal when they serialize to the same bytes.
    """

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = bytes(body)

    def start_line(self) -> str:
        """The request or status line, without CRLF."""
        raise NotImplementedError

    def _required(self, name: str) -> str:
        return _required(self.headers, name)

    @property
    def call_id(self) -> str:
        """Call-ID (RFC 3261 §20.8)."""
        return self.headers._cached("Call-ID", _parse_call_id)

    @property
    def cseq(self) -> CSeq:
        """CSeq (RFC 3261 §20.16)."""
        return self.headers._cached("CSeq", _parse_cseq)

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first (RFC 3261 §20.42); empty when there is none."""
        return list(self.headers._cached("Via", _parse_vias))

    @property
    def top_via(self) -> Via:
        """The topmost Via (RFC 3261 §8.2.6.2, §18.2.2)."""
        return self.headers._cached("Via/top", _parse_top_via)

    @property
    def from_(self) -> NameAddr:
        """From (RFC 3261 §20.20)."""
        return self.headers._cached("From", _parse_from)

    @property
    def to(self) -> NameAddr:
        """To (RFC 3261 §20.39)."""
        return self.headers._cached("To", _parse_to)

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact value (RFC 3261 §20.10); empty when absent."""
        return list(self.headers._cached("Contact", _parse_contacts))

    @property
    def routes(self) -> list[NameAddr]:
        """Every Route value in order (RFC 3261 §20.34)."""
        return list(self.headers._cached("Route", _parse_routes))

    @property
    def record_routes(self) -> list[NameAddr]:
        """Every Record-Route value in order (RFC 3261 §20.30)."""
        return list(self.headers._cached("Record-Route", _parse_record_routes))

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards 0-255 (RFC 3261 §20.22), None when absent."""
        return self.headers._cached("Max-Forwards", _parse_max_forwards)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds (RFC 3261 §20.19), capped at 2**32-1; None if absent."""
        return self.headers._cached("Expires", _parse_expires)

    @property
    def content_type(self) -> str | None:
        """Lower-cased ``type/subtype`` of Content-Type (RFC 3261 §20.15), parameters dropped."""
        return self.headers._cached("Content-Type", _parse_content_type)

    def __bytes__(self) -> bytes:
        """Start line, headers in order, Content-Length always = len(body) (RFC 3261 §7.5)."""
        lines = [self.start_line()]
        length_written = False
        for name, value in self.headers:
            if name == "Content-Length":
                if length_written:
                    continue
                value, length_written = str(len(self.body)), True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8") + self.body

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and bytes(self) == bytes(other)

    __hash__ = None  # type: ignore[assignment]


class Request(Message):
    """A SIP request (RFC 3261 §7.1)."""

    def __init__(
        self,
        method: str,
        uri: Uri,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        if not TOKEN_RE.fullmatch(method):
            raise LocalProtocolError(f"bad method {method!r}")
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self.version = version

    def start_line(self) -> str:
        """``Method SP Request-URI SP SIP-Version``."""
        return f"{self.method} {self.uri} {self.version}"

    def next_in_sequence(self, **changes: str) -> Request:
        """This request sent again as a new transaction: a copy with CSeq + 1 and the header
        values in ``changes`` (header name with ``_`` for ``-``) set, e.g. a retry after 401/407
        or 422 (RFC 3261 §8.1.3.5, RFC 4028 §7.4)."""
        headers = self.headers.copy()
        headers.set("CSeq", f"{self.cseq.seq + 1} {self.method}")
        for name, value in changes.items():
            headers.set(name.replace("_", "-"), value)
        return Request(self.method, self.uri, headers, self.body, self.version)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        if not 100 <= status <= 699 or "\r" in reason or "\n" in reason:
            raise LocalProtocolError(f"bad status line {status} {reason!r}")
        super().__init__(headers, body)
        self.status = status
        self.reason = reason
        self.version = version

    def start_line(self) -> str:
        """``SIP-Version SP Status-Code SP Reason-Phrase``."""
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


class InvalidRequestError(RemoteProtocolError):
    """A request that was read but must be rejected; ``request`` lets the caller answer it.

    When the Request-URI itself was unreadable, ``request.uri`` is an AbsoluteUri with an
    empty scheme holding the raw text.
    """

    def __init__(self, message: str, status_hint: int, request: Request) -> None:
        super().__init__(message, status_hint)
        self.request = request


@dataclass(frozen=True, slots=True)
class _RequestLine:
    method: str
    target: str
    version: str


@dataclass(frozen=True, slots=True)
class _StatusLine:
    status: int
    reason: str


_StartLine: TypeAlias = _RequestLine | _StatusLine


def _parse_version(text: str) -> str:
    """``SIP-Version``: 400 when malformed, 505 when not 2.0 (RFC 3261 §7.1, §21.5.20)."""
    if not _VERSION_RE.fullmatch(text):
        raise _error(f"bad SIP version {text[:20]!r}")
    if text.upper() != SIP_VERSION:
        raise _error(f"unsupported SIP version {text!r}", 505)
    return SIP_VERSION


def _parse_status_line(line: str) -> _StatusLine:
    """``SIP-Version SP Status-Code SP Reason-Phrase`` (RFC 3261 §7.2); reason may be empty."""
    parts = line.split(" ", 2)
    _parse_version(parts[0])
    if len(parts) < 2 or not _STATUS_RE.fullmatch(parts[1]):
        raise _error("bad status code")
    reason = parts[2] if len(parts) == 3 else ""
    if _BAD_REASON_RE.search(reason):
        raise _error("control character in reason phrase")
    return _StatusLine(int(parts[1]), reason)


def _parse_request_line(line: str) -> _RequestLine:
    """``Method SP Request-URI SP SIP-Version`` with single spaces (RFC 3261 §7.1, §25.1)."""
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise _error("malformed Request-Line (exactly single SP separators required)")
    method, target, version = parts
    if not TOKEN_RE.fullmatch(method) or not _VERSION_RE.fullmatch(version):
        raise _error("malformed Request-Line")
    return _RequestLine(method, target, version)


def _parse_start_line(line: str) -> _StartLine:
    if line[:4].upper() == "SIP/":
        return _parse_status_line(line)
    return _parse_request_line(line)


def _decode_head(head: bytes) -> list[str]:
    """Decode the header section as UTF-8 and split it on CRLF; bare CR or LF is an error."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error("header section is not valid UTF-8") from exc
    crlf = text.count("\r\n")
    if text.count("\r") != crlf or text.count("\n") != crlf:
        raise _error("bare CR or LF in header section")
    return text.split("\r\n")


@lru_cache(maxsize=512)
def _header_name(name: str) -> str | None:
    """The canonical form of a received header name (trailing white space allowed before the
    colon), None when it is not a token (RFC 3261 §7.3.1)."""
    name = name.rstrip(" \t")
    return canonical_name(name) if TOKEN_RE.fullmatch(name) else None


def _unfold(lines: list[str]) -> list[tuple[str, str]]:
    """Header lines to (canonical name, value), continuation lines joined by one SP (§7.3.1)."""
    raw: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not raw:
                raise _error("continuation line before the first header")
            name, value = raw[-1]
            raw[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        raw.append(_header_line(line))
    return raw


def _parse_head(head: bytes) -> tuple[_StartLine, Headers]:
    """Start line and header section (RFC 3261 §7), with the header count and size limits.

    The values are indexed by name on the first look-up, so no look-up scans the lines.
    """
    lines = _decode_head(head)
    if len(lines) - 1 > MAX_HEADERS:
        raise _error("too many header lines", 413)
    start = _parse_start_line(lines[0])
    folded = b"\r\n " in head or b"\r\n\t" in head
    items = _unfold(lines[1:]) if folded else _header_lines(lines)
    if len(head) > MAX_HEADER_LINE:  # else no value can be longer
        for name, value in items:
            if len(value) > MAX_HEADER_LINE:
                raise _error(f"{name[:40]} header too long", 413)
    return start, Headers._trusted(items)  # indexed by name on the first look-up (validation's)


def _header_lines(lines: list[str]) -> list[tuple[str, str]]:
    """``_header_line`` of every line after the start line, in one loop (no folding)."""
    items = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        canonical = _header_name(name)
        if not colon or canonical is None:
            raise _error(f"malformed header line {line[:40]!r}")
        items.append((canonical, value.strip(" \t")))
    return items


def _header_line(line: str) -> tuple[str, str]:
    """One unfolded ``name: value`` line (RFC 3261 §7.3.1)."""
    name, colon, value = line.partition(":")
    canonical = _header_name(name)
    if not colon or canonical is None:
        raise _error(f"malformed header line {line[:40]!r}")
    return canonical, value.strip(" \t")


def _content_length(headers: Headers) -> int | None:
    """Content-Length (RFC 3261 §20.14): one non-negative integer, else 400."""
    values = headers._lines().get("Content-Length")
    if not values:
        return None
    if len(values) > 1:
        raise _error("more than one Content-Length")
    if not _CONTENT_LENGTH_RE.fullmatch(values[0]):
        raise _error(f"bad Content-Length {values[0][:30]!r}")
    return int(values[0])


def _assemble(start: _StartLine, headers: Headers, body: bytes) -> Request | Response:
    """Build the message object; an unreadable Request-URI is kept as raw text for now."""
    if isinstance(start, _StatusLine):
        return Response(start.status, start.reason, headers, body)
    try:
        uri: Uri = parse_uri(start.target)
    except RemoteProtocolError:
        uri = AbsoluteUri("", start.target)
    return Request(start.method, uri, headers, body, start.version)


def _reject(message: Request | Response, exc: RemoteProtocolError) -> RemoteProtocolError:
    """Attach the request to an error, so the caller can answer it."""
    if isinstance(message, Request) and not isinstance(exc, InvalidRequestError):
        return InvalidRequestError(str(exc), exc.status_hint, message)
    return exc


def _check_essentials(message: Request | Response) -> None:
    """RFC 3261 §8.1.1, §8.2.2: the mandatory headers, once each, and all well-formed."""
    headers = message.headers
    lines = headers._lines()
    for name in _ESSENTIAL:
        if name not in lines:
            raise _error(f"missing {name} header")
    for name in _SINGLE:
        values = lines.get(name)
        if values is not None and len(values) > 1:
            raise _error(f"more than one {name} header")
    _check_plain(headers, lines, "Via", plain_via, _parse_vias)
    if "Via/plain" not in headers._parsed and not message.vias:
        raise _error("empty Via header")
    parsed = headers._parsed
    call_id = lines["Call-ID"][0]
    if not _CALL_ID_RE.fullmatch(call_id):
        raise _error(f"bad Call-ID {call_id[:60]!r}")
    parsed["Call-ID"] = call_id
    parsed["CSeq"] = CSeq.parse(lines["CSeq"][0])
    _check_plain(headers, lines, "From", plain_address, _parse_from)
    _check_plain(headers, lines, "To", plain_address, _parse_to)
    if "Max-Forwards" in lines:
        _ = message.max_forwards
    for name in _ADDRESS_LISTS:
        if name in lines:
            _check_plain(headers, lines, name, plain_address, _ADDRESS_PARSERS[name])
    if "Content-Type" in lines:
        _ = message.content_type
    date = lines.get("Date")
    if date is not None:
        parse_sip_date(date[0])


def _check_plain(
    headers: Headers,
    lines: dict[str, list[str]],
    name: str,
    plain: Callable[[str], re.Match[str] | None],
    parse: Callable[[Headers], object],
) -> None:
    """Check that every line of an address or Via header parses (RFC 3261 §20.10, §20.42).

    When every line has the plain common form (``plain_address``, ``plain_via``) it certainly
    parses, so it is only matched here; the matches are kept and the value is built from them
    when it is read. Otherwise the lines are parsed now (the same parse and the same error as
    the accessor's), and the result kept.
    """
    values = lines.get(name)
    if values is None:
        return
    matches = []
    for value in values:
        match = plain(value)
        if match is None:
            headers._cached(name, parse)
            return
        matches.append(match)
    headers._parsed[_PLAIN[name]] = matches


def _check_request_line(request: Request, target: str) -> None:
    """CSeq method must match; Request-URI must be sip/sips/tel and without headers (§19.1.1)."""
    if request.cseq.method != request.method:
        raise _error("CSeq method does not match the request method")
    uri = request.uri
    if isinstance(uri, AbsoluteUri):
        if uri.scheme:
            raise _error(f"unsupported Request-URI scheme {uri.scheme!r}", 416)
        parse_uri(target)  # raises the precise 400 or 416
    if isinstance(uri, SipUri) and (uri.headers or uri.has_param("method")):
        raise _error("headers or method parameter not allowed in a Request-URI")


def _validate(message: Request | Response, start: _StartLine) -> None:
    """Every parse-level check, raising with the request attached when there is one."""
    try:
        if isinstance(message, Request) and isinstance(start, _RequestLine):
            _parse_version(start.version)
        _check_essentials(message)
        if isinstance(message, Request) and isinstance(start, _RequestLine):
            _check_request_line(message, start.target)
    except RemoteProtocolError as exc:
        raise _reject(message, exc) from exc


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Skip CRLFs before the start line (RFC 3261 §7.5) and split header section and body."""
    start = _LEADING_CRLF_RE.match(data)
    offset = start.end() if start else 0
    end = data.find(b"\r\n\r\n", offset)
    if end < 0:
        raise _error("no empty line after the header section")
    return data[offset:end], data[end + 4 :]


def is_keepalive(data: bytes) -> bool:
    """True for a datagram made only of CR/LF (a CRLF keep-alive, RFC 5626 §3.5.1)."""
    return _KEEPALIVE_RE.fullmatch(data) is not None


def parse_message(data: bytes) -> Request | Response:
    """Parse one whole message, e.g. a UDP datagram (RFC 3261 §7, §18.3).

    Content-Length, when present, must not exceed the bytes available; octets after it are
    ignored. Without it the body is the rest of the datagram.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise _error("message too large", 413)
    head, rest = _split_head(bytes(data))
    start, headers = _parse_head(head)
    message = _assemble(start, headers, rest)
    try:
        length = _content_length(headers)
        if length is not None and length > len(rest):
            raise _error("Content-Length larger than the body received")
    except RemoteProtocolError as exc:
        raise _reject(message, exc) from exc
    if length is not None:
        message.body = rest[:length]
    _validate(message, start)
    return message


_Item: TypeAlias = Request | Response | RemoteProtocolError


class StreamParser:
    """Frames messages on a TCP/TLS byte stream by Content-Length (RFC 3261 §18.3).

    Content-Length is mandatory. A message that is well framed but invalid is consumed and
    reported as its error; a framing error (no or bad Content-Length, oversized data, an
    unreadable header section) breaks the stream: every later call raises and the caller
    should close the connection. CRLFCRLF between messages counts as a keep-alive ping and a
    single CRLF as a pong (RFC 5626 §3.5.1); a ping must be answered with CRLF.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan_from = 0
        self._head: tuple[_StartLine, Headers, int, int] | None = None
        self._ready: deque[_Item] = deque()
        self._broken: RemoteProtocolError | None = None
        self._crlf_pending = False
        self.keepalive_pings = 0
        self.keepalive_pongs = 0

    @property
    def broken(self) -> bool:
        """True after a framing error: the connection cannot be resynchronised."""
        return self._broken is not None

    @property
    def pending(self) -> bool:
        """True when parsed messages or errors wait to be returned by ``feed(b"")``."""
        return bool(self._ready)

    @property
    def partial(self) -> bool:
        """True when the bytes of a message that has not ended yet are buffered."""
        return bool(self._buf.strip(b"\r\n"))

    def take_pings(self) -> int:
        """Return and reset the count of CRLFCRLF pings (each deserves a CRLF pong)."""
        count, self.keepalive_pings = self.keepalive_pings, 0
        return count

    def take_pongs(self) -> int:
        """Return and reset the count of CRLF pongs received."""
        count, self.keepalive_pongs = self.keepalive_pongs, 0
        return count

    def feed_items(self, data: bytes) -> list[_Item]:
        """Buffer data; return every complete message or error, in stream order (never raises)."""
        self._ingest(data)
        items = list(self._ready)
        self._ready.clear()
        return items

    def feed(self, data: bytes) -> list[Request | Response]:
        """Buffer data and return the complete messages (0..n).

        When a bad message is met, the messages before it are returned and its error is raised
        by the next call; after an error, ``feed(b"")`` returns what was buffered behind it
        (check :attr:`pending`). Prefer :meth:`feed_items` to get everything in one call.
        """
        self._ingest(data)
        messages: list[Request | Response] = []
        while self._ready:
            item = self._ready[0]
            if isinstance(item, RemoteProtocolError):
                if messages:
                    break
                self._ready.popleft()
                raise item
            messages.append(item)
            self._ready.popleft()
        return messages

    def _ingest(self, data: bytes) -> None:
        if self._broken is not None:
            self._ready.append(RemoteProtocolError(str(self._broken), self._broken.status_hint))
            return
        self._buf += data
        while True:
            item = self._next_item()
            if item is None:
                return
            self._ready.append(item)
            if self._broken is not None:
                return

    def _break(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        self._broken = exc
        self._buf.clear()
        self._head = None
        return exc

    def _skip_keepalives(self) -> None:
        """Consume CRLFCRLF pings and CRLF pongs at a message boundary (RFC 5626 §3.5.1)."""
        buf = self._buf
        while buf[:2] == b"\r\n":
            if buf[:4] == b"\r\n\r\n" or self._crlf_pending:
                self.keepalive_pings += 1
                del buf[: 4 if buf[:4] == b"\r\n\r\n" else 2]
                self._crlf_pending = False
            else:
                self.keepalive_pongs += 1
                del buf[:2]
                self._crlf_pending = True
        if buf and buf != b"\r":
            self._crlf_pending = False

    def _next_item(self) -> _Item | None:
        if self._head is None:
            self._skip_keepalives()
            try:
                if not self._read_head():
                    return None
            except RemoteProtocolError as exc:
                return self._break(exc)
        assert self._head is not None
        start, headers, body_start, length = self._head
        if len(self._buf) < body_start + length:
            return None
        body = bytes(self._buf[body_start : body_start + length])
        del self._buf[: body_start + length]
        self._head, self._scan_from = None, 0
        message = _assemble(start, headers, body)
        try:
            _validate(message, start)
        except RemoteProtocolError as exc:
            return exc
        return message

    def _read_head(self) -> bool:
        """Parse the header section once it is complete; False while more bytes are needed."""
        end = self._buf.find(b"\r\n\r\n", self._scan_from)
        if end < 0:
            if len(self._buf) > MAX_MESSAGE_SIZE:
                raise _error("message header too large", 413)
            self._scan_from = max(0, len(self._buf) - 3)
            return False
        start, headers = _parse_head(bytes(self._buf[:end]))
        length = _content_length(headers)
        if length is None:
            raise _error("Content-Length is mandatory on stream transports (RFC 3261 §18.3)")
        if end + 4 + length > MAX_MESSAGE_SIZE:
            raise _error("message too large", 413)
        self._head = (start, headers, end + 4, length)
        return True


def make_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6.2).

    Copies every Via (in order), From, To, Call-ID and CSeq, and Timestamp into a 100
    (§8.2.6.1). ``to_tag`` is added to To when To has no tag yet (the To value otherwise keeps
    its original text); that needs a readable To, else RemoteProtocolError (400).
    """
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"bad status code {status}")
    if to_tag is not None and not TOKEN_RE.fullmatch(to_tag):
        raise LocalProtocolError(f"bad To tag {to_tag!r}")
    copied = _RESPONSE_COPIED | ({"Timestamp"} if status == 100 else set())
    items = []
    for name, value in request.headers:
        if name in copied:
            if name == "To" and to_tag is not None:
                value = _with_tag(value, to_tag)
            items.append((name, value))
    return Response(status, reason or default_reason(status), Headers._trusted(items))


def _with_tag(value: str, tag: str) -> str:
    """Append ``;tag=`` to a To value unless it already has a tag (keeps its original form)."""
    if NameAddr.parse(value).tag is not None:
        return value
    return value.rstrip(" \t") + ";tag=" + tag
