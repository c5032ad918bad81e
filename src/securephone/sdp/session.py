"""SDP session descriptions: parse and serialise (RFC 4566 §5, RFC 8866 §5).

The parser is strict where RFC 4566 §5 is strict (``v=`` first, then ``o=`` and ``s=``, the
fixed order of the other lines, one-letter types only, at least one ``t=``, a ``c=`` at
session level or in every media description) and tolerant where real peers differ harmlessly
(``\\n`` or ``\\r\\n`` line ends, runs of spaces between fields, trailing blank lines, an empty
``s=``). Every malformed input raises :class:`SdpError` with ``status_hint`` 400 — never
another exception. Attribute values are checked lazily by the helper that reads them
(``rtpmap()``, ``ptime``...), which raise :class:`SdpError` (400) as well.

Error messages never quote attribute values, so a broken ``a=crypto`` line cannot leak a key
into a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from securephone.errors import SdpError

MAX_SDP_LENGTH = 65536
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

Attribute = tuple[str, str | None]
_T = TypeVar("_T")

_TOKEN_CHARS = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"  # RFC 4566 §9 token-char
_TOKEN = re.compile(_TOKEN_CHARS)
_PROTO = re.compile(f"{_TOKEN_CHARS}(/{_TOKEN_CHARS})*")
_DIGITS = re.compile(r"[0-9]{1,20}")
_SESSION_RANK = {"v": 0, "o": 1, "s": 2, "i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8}
_SESSION_RANK.update({"t": 9, "r": 9, "z": 10, "k": 11, "a": 12})
_MEDIA_RANK = {"m": 0, "i": 1, "c": 2, "b": 3, "k": 4, "a": 5}
_SESSION_ONCE = frozenset("vosiuczk")
_MEDIA_ONCE = frozenset("mik")


class RtpMap(NamedTuple):
    """One ``a=rtpmap`` value (RFC 4566 §6): ``<pt> <encoding>/<clock rate>[/<channels>]``."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None


class ZrtpHash(NamedTuple):
    """An ``a=zrtp-hash:<version> <hex hash>`` value (RFC 6189 §8.1)."""

    version: str
    value: str


# RFC 3551 §6, Table 4: static audio payload types a phone may meet.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap(0, "PCMU", 8000),
    3: RtpMap(3, "GSM", 8000),
    4: RtpMap(4, "G723", 8000),
    8: RtpMap(8, "PCMA", 8000),
    9: RtpMap(9, "G722", 8000),
    13: RtpMap(13, "CN", 8000),
    18: RtpMap(18, "G729", 8000),
}


@dataclass
class Origin:
    """The ``o=`` line (RFC 4566 §5.2)."""

    username: str
    sess_id: int
    sess_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """A ``c=`` line (RFC 4566 §5.7); ``ttl``/``count`` only for multicast addresses."""

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    @property
    def is_null(self) -> bool:
        """``c=IN IP4 0.0.0.0``: RFC 2543 hold; RFC 3264 §8.4 says send no RTP or RTCP."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        suffix = "".join(f"/{n}" for n in (self.ttl, self.count) if n is not None)
        return f"{self.nettype} {self.addrtype} {self.address}{suffix}"


@dataclass
class Bandwidth:
    """A ``b=<bwtype>:<bandwidth>`` line (RFC 4566 §5.8)."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass
class Timing:
    """A ``t=`` line with its ``r=`` lines (RFC 4566 §5.9, §5.10); ``r=`` kept as text."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


def _values(attributes: list[Attribute], name: str) -> list[str]:
    return [value or "" for key, value in attributes if key == name]


def _first_direction(attributes: list[Attribute]) -> str | None:
    return next((key for key, _ in attributes if key in DIRECTIONS), None)


@dataclass
class MediaDescription:
    """One media description, from its ``m=`` line to the next (RFC 4566 §5.14)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    title: str | None = None
    connection: Connection | None = None
    extra_connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name`` ('' for a flag), or None when absent."""
        values = _values(self.attributes, name)
        return values[0] if values else None

    def attribute_values(self, name: str) -> list[str]:
        """The values of every ``a=name`` line, in order."""
        return _values(self.attributes, name)

    def has_attribute(self, name: str) -> bool:
        """True when an ``a=name`` line (flag or valued) is present."""
        return any(key == name for key, _ in self.attributes)

    @property
    def is_rtp(self) -> bool:
        """True for RTP profiles (RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVP...)."""
        return "RTP/" in self.proto

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload type numbers (RFC 4566 §5.14); parse() checked them."""
        return [int(fmt) for fmt in self.formats] if self.is_rtp else []

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Every ``a=rtpmap`` by payload type (RFC 4566 §6); SdpError(400) if malformed."""
        maps: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            rtpmap = _parse_rtpmap(value)
            maps.setdefault(rtpmap.payload_type, rtpmap)
        return maps

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The ``a=rtpmap`` for one payload type, or None."""
        return self.rtpmaps().get(payload_type)

    def codec(self, payload_type: int) -> RtpMap | None:
        """The rtpmap, else the RFC 3551 static assignment for a static payload type."""
        found = self.rtpmap(payload_type)
        if found is None and payload_type < 96:
            return STATIC_PAYLOAD_TYPES.get(payload_type)
        return found

    def fmtp(self, payload_type: int | str) -> str | None:
        """The parameters of ``a=fmtp:<fmt> <params>`` for one format (RFC 4566 §6)."""
        for value in self.attribute_values("fmtp"):
            fmt, _, params = value.partition(" ")
            if fmt == str(payload_type):
                return params.strip(" \t")
        return None

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute (RFC 4566 §6, RFC 3264 §5.1), or None."""
        return _first_direction(self.attributes)

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (RFC 4566 §6); SdpError(400) if not a number."""
        value = self.attribute("ptime")
        return None if value is None else _parse_ptime(value)

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` (RFC 5761 §5.1.1)."""
        return self.has_attribute("rtcp-mux")

    @property
    def rtcp_port(self) -> int | None:
        """The port of ``a=rtcp:<port> [IN IP4 <addr>]`` (RFC 3605 §2.1), or None."""
        value = self.attribute("rtcp")
        return None if value is None else _parse_rtcp(value)[0]

    @property
    def rtcp_address(self) -> str | None:
        """The address of ``a=rtcp`` when it names one (RFC 3605 §2.1), or None."""
        value = self.attribute("rtcp")
        return None if value is None else _parse_rtcp(value)[1]

    @property
    def crypto_lines(self) -> list[str]:
        """The values of the ``a=crypto`` lines (RFC 4568 §9.1), unparsed."""
        return self.attribute_values("crypto")

    @property
    def zrtp_hash(self) -> ZrtpHash | None:
        """``a=zrtp-hash:<version> <hash>`` (RFC 6189 §8.1); SdpError(400) if malformed."""
        value = self.attribute("zrtp-hash")
        return None if value is None else _parse_zrtp_hash(value)

    def to_lines(self) -> list[str]:
        """The media description as SDP lines in RFC 4566 §5 order, without line ends."""
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        lines = [f"m={self.media} {port} {' '.join([self.proto, *self.formats])}"]
        lines += [f"i={self.title}"] if self.title is not None else []
        conns = [self.connection] if self.connection is not None else []
        lines += [f"c={c}" for c in conns + self.extra_connections]
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"k={self.key}"] if self.key is not None else []
        return lines + [_attribute_line(a) for a in self.attributes]


@dataclass
class SessionDescription:
    """A whole SDP session description (RFC 4566 §5); ``parse()`` / ``bytes()`` round-trip."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timing: list[Timing] = field(default_factory=lambda: [Timing()])
    zone_adjustments: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        """Parse SDP text; see the module-level :func:`parse`."""
        return parse(data)

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level ``a=name``, or None."""
        values = _values(self.attributes, name)
        return values[0] if values else None

    @property
    def session_direction(self) -> str | None:
        """The session-level direction attribute, or None (RFC 3264 §5.1)."""
        return _first_direction(self.attributes)

    def direction(self, media: MediaDescription) -> str:
        """The stream's direction: media level, else session level, else sendrecv (§6)."""
        return media.direction or self.session_direction or "sendrecv"

    def effective_connection(self, media: MediaDescription) -> Connection | None:
        """The media-level ``c=``, else the session-level one (RFC 4566 §5.7)."""
        return media.connection if media.connection is not None else self.connection

    def to_lines(self) -> list[str]:
        """The description as SDP lines in RFC 4566 §5 order, without line ends."""
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        lines += [f"i={self.information}"] if self.information is not None else []
        lines += [f"u={self.uri}"] if self.uri is not None else []
        lines += [f"e={e}" for e in self.emails] + [f"p={p}" for p in self.phones]
        lines += [f"c={self.connection}"] if self.connection is not None else []
        lines += [f"b={b}" for b in self.bandwidths]
        for t in self.timing:
            lines += [f"t={t.start} {t.stop}"] + [f"r={r}" for r in t.repeats]
        lines += [f"z={self.zone_adjustments}"] if self.zone_adjustments is not None else []
        lines += [f"k={self.key}"] if self.key is not None else []
        lines += [_attribute_line(a) for a in self.attributes]
        return lines + [line for m in self.media for line in m.to_lines()]

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in self.to_lines())

    def to_bytes(self) -> bytes:
        """UTF-8 bytes with CRLF line ends (RFC 4566 §5)."""
        return str(self).encode("utf-8")

    def __bytes__(self) -> bytes:
        return self.to_bytes()


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return f"a={name}" if value is None else f"a={name}:{value}"


# ---------------------------------------------------------------- parsing

Line = tuple[int, str]  # (1-based line number, "x=value")
SessionHandler = Callable[[SessionDescription, str], None]
MediaHandler = Callable[[MediaDescription, str], None]


def parse(data: str | bytes) -> SessionDescription:
    """Parse an SDP body (RFC 4566 §5); raise SdpError(400) on anything malformed."""
    lines = _split_lines(_decode(data))
    _check_order(lines)
    session_lines, media_sections = _sections(lines)
    _check_mandatory(session_lines)
    sdp = _build_session(session_lines)
    sdp.media = [_build_media(section) for section in media_sections]
    _check_connections(sdp)
    return sdp


def _decode(data: str | bytes) -> str:
    if len(data) > MAX_SDP_LENGTH:
        raise SdpError(f"SDP body larger than {MAX_SDP_LENGTH} bytes")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError(f"SDP is not valid UTF-8 (byte {exc.start})") from None


def _split_lines(text: str) -> list[Line]:
    raw = [line.removesuffix("\r") for line in text.split("\n")]
    while raw and raw[-1] == "":
        raw.pop()
    if not raw:
        raise SdpError("empty SDP body")
    return [_check_line(number, line) for number, line in enumerate(raw, 1)]


def _check_line(number: int, line: str) -> Line:
    if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
        raise SdpError(f"SDP line {number} is not of the form <letter>=<value>")
    if "\r" in line or "\x00" in line:
        raise SdpError(f"SDP line {number} ({line[0]}=) contains CR or NUL")
    if line[0] not in _KNOWN_TYPES:
        raise SdpError(f"SDP line {number}: unknown type letter {line[0]!r} (RFC 4566 §5)")
    return number, line


def _check_order(lines: list[Line]) -> None:
    """RFC 4566 §5: v= first, then a fixed order; some lines at most once per section."""
    if lines[0][1][0] != "v":
        raise SdpError("SDP must start with a v= line (RFC 4566 §5)")
    rank, seen, previous, in_media = 0, set[str](), "", False
    for number, line in lines:
        kind = line[0]
        if kind == "m":
            rank, seen, in_media = 0, set(), True
        rank = _next_rank(number, kind, rank, in_media, previous)
        if kind in (_MEDIA_ONCE if in_media else _SESSION_ONCE) and kind in seen:
            raise SdpError(f"SDP line {number}: more than one {kind}= line")
        seen.add(kind)
        previous = kind


def _next_rank(number: int, kind: str, rank: int, in_media: bool, previous: str) -> int:
    table = _MEDIA_RANK if in_media else _SESSION_RANK
    if kind not in table:
        raise SdpError(f"SDP line {number}: {kind}= is not allowed in a media description")
    if table[kind] < rank or (kind == "r" and previous not in ("t", "r")):
        raise SdpError(f"SDP line {number}: {kind}= is out of order (RFC 4566 §5)")
    return table[kind]


def _check_mandatory(session_lines: list[Line]) -> None:
    kinds = {line[0] for _, line in session_lines}
    for kind in "ost":
        if kind not in kinds:
            raise SdpError(f"SDP has no {kind}= line (RFC 4566 §5)")


def _sections(lines: list[Line]) -> tuple[list[Line], list[list[Line]]]:
    session: list[Line] = []
    media: list[list[Line]] = []
    for item in lines:
        if item[1][0] == "m":
            media.append([])
        (media[-1] if media else session).append(item)
    return session, media


def _build_session(lines: list[Line]) -> SessionDescription:
    sdp = SessionDescription(origin=Origin("-", 0, 0), timing=[])
    for number, line in lines:
        _apply(number, line, _SESSION_HANDLERS[line[0]], sdp)
    return sdp


def _build_media(lines: list[Line]) -> MediaDescription:
    media = MediaDescription(media="", port=0, proto="", formats=[])
    for number, line in lines:
        _apply(number, line, _MEDIA_HANDLERS[line[0]], media)
    return media


def _apply(number: int, line: str, handler: Callable[[_T, str], None], target: _T) -> None:
    try:
        handler(target, line[2:])
    except SdpError as exc:
        raise SdpError(f"SDP line {number} ({line[0]}=): {exc}") from None


def _check_connections(sdp: SessionDescription) -> None:
    if sdp.connection is None and any(m.connection is None for m in sdp.media):
        raise SdpError("SDP needs a c= line at session level or in every media description")


def _fields(value: str, count: int | None = None) -> list[str]:
    parts = [p for p in re.split(r"[ \t]+", value) if p]
    if count is not None and len(parts) != count:
        raise SdpError(f"expected {count} fields, got {len(parts)}")
    return parts


def _number(text: str, what: str, maximum: int | None = None) -> int:
    if not _DIGITS.fullmatch(text):
        raise SdpError(f"{what} is not a decimal number")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpError(f"{what} {value} is larger than {maximum}")
    return value


def _token(text: str, what: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise SdpError(f"{what} is not a valid token")
    return text


def _proto(text: str) -> str:
    if not _PROTO.fullmatch(text):
        raise SdpError("proto is not <token>[/<token>...]")
    return text


def _visible(text: str, what: str) -> str:
    if not text or any(ch.isspace() for ch in text):
        raise SdpError(f"{what} is empty or contains whitespace")
    return text


def _set_version(sdp: SessionDescription, value: str) -> None:
    if value != "0":
        raise SdpError("only SDP version 0 is defined (RFC 4566 §5.1)")


def _set_origin(sdp: SessionDescription, value: str) -> None:
    user, sess_id, sess_version, nettype, addrtype, address = _fields(value, 6)
    sdp.origin = Origin(
        _visible(user, "username"),
        _number(sess_id, "sess-id"),
        _number(sess_version, "sess-version"),
        _token(nettype, "nettype"),
        _token(addrtype, "addrtype"),
        _visible(address, "unicast-address"),
    )


def _set_text(name: str) -> SessionHandler:
    def handler(sdp: SessionDescription, value: str) -> None:
        setattr(sdp, name, value)

    return handler


def _append_text(name: str) -> SessionHandler:
    def handler(sdp: SessionDescription, value: str) -> None:
        getattr(sdp, name).append(value)

    return handler


def _parse_connection(value: str) -> Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (RFC 4566 §5.7)."""
    nettype, addrtype, address = _fields(value, 3)
    host, *extras = address.split("/")
    numbers = [_number(x, "ttl or address count", 2**32) for x in extras]
    if len(numbers) > (1 if addrtype == "IP6" else 2):
        raise SdpError("too many /-suffixes on the connection address")
    if addrtype == "IP6":
        ttl, count = None, (numbers[0] if numbers else None)
    else:
        padded: list[int | None] = [*numbers, None, None]
        ttl, count = padded[0], padded[1]
    _visible(host, "connection-address")
    return Connection(_token(nettype, "nettype"), _token(addrtype, "addrtype"), host, ttl, count)


def _set_connection(sdp: SessionDescription, value: str) -> None:
    sdp.connection = _parse_connection(value)


def _parse_bandwidth(value: str) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep:
        raise SdpError("bandwidth needs <bwtype>:<bandwidth>")
    return Bandwidth(_token(bwtype, "bwtype"), _number(amount, "bandwidth"))


def _add_bandwidth(sdp: SessionDescription, value: str) -> None:
    sdp.bandwidths.append(_parse_bandwidth(value))


def _add_timing(sdp: SessionDescription, value: str) -> None:
    start, stop = _fields(value, 2)
    sdp.timing.append(Timing(_number(start, "start-time"), _number(stop, "stop-time")))


def _add_repeat(sdp: SessionDescription, value: str) -> None:
    parts = _fields(value)
    if len(parts) < 3:
        raise SdpError("r= needs <interval> <duration> <offsets>")
    sdp.timing[-1].repeats.append(" ".join(parts))


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return _token(name, "attribute name"), (rest if sep else None)


def _add_session_attribute(sdp: SessionDescription, value: str) -> None:
    sdp.attributes.append(_parse_attribute(value))


def _set_media(media: MediaDescription, value: str) -> None:
    """``m=<media> <port>[/<count>] <proto> <fmt> ...`` (RFC 4566 §5.14)."""
    parts = _fields(value)
    if len(parts) < 4:
        raise SdpError("m= needs <media> <port> <proto> and at least one <fmt>")
    kind, port, proto, *formats = parts
    number, _, count = port.partition("/")
    media.media, media.proto = _token(kind, "media"), _proto(proto)
    media.port = _number(number, "port", 65535)
    media.port_count = _number(count, "port count", 65535) if count else None
    media.formats = [_token(fmt, "fmt") for fmt in formats]
    if media.is_rtp:
        for fmt in formats:
            _number(fmt, "RTP payload type", 127)


def _set_media_title(media: MediaDescription, value: str) -> None:
    media.title = value


def _add_media_connection(media: MediaDescription, value: str) -> None:
    conn = _parse_connection(value)
    if media.connection is None:
        media.connection = conn
    else:
        media.extra_connections.append(conn)


def _add_media_bandwidth(media: MediaDescription, value: str) -> None:
    media.bandwidths.append(_parse_bandwidth(value))


def _set_media_key(media: MediaDescription, value: str) -> None:
    media.key = value


def _add_media_attribute(media: MediaDescription, value: str) -> None:
    media.attributes.append(_parse_attribute(value))


def _parse_rtpmap(value: str) -> RtpMap:
    """``<payload type> <encoding name>/<clock rate>[/<encoding parameters>]``."""
    try:
        pt, encoding = _fields(value, 2)
        name, rate, *rest = encoding.split("/")
        if len(rest) > 1:
            raise SdpError("too many /-parts")
        channels = _number(rest[0], "channels", 255) if rest else None
        pt_number = _number(pt, "payload type", 127)
        return RtpMap(pt_number, _token(name, "encoding"), _number(rate, "clock rate"), channels)
    except (SdpError, ValueError):
        raise SdpError("malformed a=rtpmap (RFC 4566 §6)") from None


def _parse_ptime(value: str) -> int:
    whole, _, fraction = value.strip(" \t").partition(".")
    if (fraction and not _DIGITS.fullmatch(fraction)) or not _DIGITS.fullmatch(whole):
        raise SdpError("malformed a=ptime (RFC 4566 §6)")
    ptime = int(whole)
    if not 0 < ptime <= 10000:
        raise SdpError("a=ptime out of range (RFC 4566 §6)")
    return ptime


def _parse_rtcp(value: str) -> tuple[int, str | None]:
    parts = _fields(value)
    if len(parts) not in (1, 4) or not _DIGITS.fullmatch(parts[0]) or int(parts[0]) > 65535:
        raise SdpError("malformed a=rtcp (RFC 3605 §2.1)")
    return int(parts[0]), (parts[3].split("/")[0] if len(parts) == 4 else None)


def _parse_zrtp_hash(value: str) -> ZrtpHash:
    parts = _fields(value)
    if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[1]):
        raise SdpError("malformed a=zrtp-hash (RFC 6189 §8.1)")
    return ZrtpHash(parts[0], parts[1].lower())


_SESSION_HANDLERS: dict[str, SessionHandler] = {
    "v": _set_version,
    "o": _set_origin,
    "s": _set_text("session_name"),
    "i": _set_text("information"),
    "u": _set_text("uri"),
    "e": _append_text("emails"),
    "p": _append_text("phones"),
    "c": _set_connection,
    "b": _add_bandwidth,
    "t": _add_timing,
    "r": _add_repeat,
    "z": _set_text("zone_adjustments"),
    "k": _set_text("key"),
    "a": _add_session_attribute,
}
_MEDIA_HANDLERS: dict[str, MediaHandler] = {
    "m": _set_media,
    "i": _set_media_title,
    "c": _add_media_connection,
    "b": _add_media_bandwidth,
    "k": _set_media_key,
    "a": _add_media_attribute,
}
_KNOWN_TYPES = frozenset(_SESSION_HANDLERS) | frozenset(_MEDIA_HANDLERS)
