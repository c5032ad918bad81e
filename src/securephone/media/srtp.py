"""SRTP/SRTCP over pylibsrtp and SDES keying with ``a=crypto`` lines, sans I/O.

* :data:`SUITES` — the crypto-suites we can key, in securephone's default preference order
  (RFC 4568 §6.2, RFC 7714 §12/§14.2), with their key and salt lengths and libsrtp profiles;
  the table itself is :mod:`securephone.media.suites`, re-exported here.
* :class:`SdesNegotiator` — RFC 4568 offer/answer: offer one ``a=crypto`` line per suite, answer
  with one line of our own (same tag, fresh key), check the answer to our offer. It keeps no
  state: our keys travel in our own offered lines, which the caller hands back.
* :class:`SrtpContext` — one call's SRTP/SRTCP contexts (RFC 3711 §3.3/§3.4): outbound with our
  key, inbound with the peer's, replay protection on, failures counted instead of raised.

Choosing among offered lines: RFC 4568 §5.1.1 says the ordering of the offer's ``a=crypto``
lines is significant, the most preferred first. The answerer therefore takes the first line it
can honour, in the OFFERER's order. With ``prefer_local=True`` it takes the acceptable line whose
suite comes first in OUR list instead (offer order breaks ties) — an operator's choice, off by
default.

What we support in a line (RFC 4568 §6.1, §6.3): one ``inline:`` key; a lifetime of at least
:data:`MIN_LIFETIME` packets (we never re-key within a call, and 2^31 packets is ~497 days of
20 ms audio); no MKI (rejected: libsrtp cannot take it through pylibsrtp); the session parameter
``WSH=`` (a hint we may ignore) and any optional ``-``-prefixed parameter. Everything else — KDR,
UNENCRYPTED_SRTP/SRTCP, UNAUTHENTICATED_SRTP, FEC_ORDER, FEC_KEY, unknown parameters — rejects
the line. A rejected line is skipped and the next one tried; the reasons are kept for the 488.

Keys and salts never appear in ``repr``/``str``, error messages or logs. The only way out is
:meth:`SrtpContext.export_keys`, which refuses unless the context was built with
``allow_key_export=True``; the shell writes those entries to an explicit debugging file
(:mod:`securephone.aio.keyexport`). This module does no I/O.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypedDict

import pylibsrtp

try:  # libsrtp's own calls, used directly on the per-packet path (see _direct)
    from pylibsrtp._binding import ffi as _ffi
    from pylibsrtp._binding import lib as _lib
except ImportError:  # pragma: no cover - another pylibsrtp layout: its public methods serve
    _ffi = _lib = None

from securephone.errors import CryptoAttributeError, SrtpError
from securephone.media.rtp import AUDIO_HEADER, RTP_HEADER_SIZE, pack_audio
from securephone.media.suites import DEFAULT_SUITES, SUITES, SrtpSuite
from securephone.sdp import crypto

__all__ = [
    "DEFAULT_SUITES",
    "MIN_LIFETIME",
    "SUITES",
    "KeyExport",
    "SdesChoice",
    "SdesNegotiator",
    "SrtpContext",
    "SrtpError",
    "SrtpSuite",
    "generate_key",
    "libsrtp_profile",
]

log = logging.getLogger(__name__)

MIN_LIFETIME = 2**31
REPLAY_WINDOW = 128  # packets; RFC 3711 §3.3.2 asks for at least 64

_Policy = pylibsrtp.Policy
# libsrtp's srtp_err_status_t values: pylibsrtp raises Error(ERRORS[status]).
_AUTH_FAILURES = frozenset({pylibsrtp.ERRORS[7]})  # srtp_err_status_auth_fail
_REPLAY_FAILURES = frozenset(
    pylibsrtp.ERRORS[i]
    for i in (9, 10, 26)  # replay_fail (bad index), replay_old (index too old), pkt_idx_old
)
_LEADING_TAG = re.compile(r"^[ \t]*(?:a=)?(?:crypto:)?[ \t]*([0-9]+)[ \t]")
_WSH = re.compile(r"WSH=[0-9]{1,5}")

Packet = bytes | bytearray | memoryview


def _suite(name: str) -> SrtpSuite:
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown SRTP crypto-suite {name!r}") from None


def _check_suites(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not names:
        raise ValueError("give a non-empty sequence of SRTP crypto-suite names")
    for name in names:
        _suite(name)
    if len(set(names)) != len(names):
        raise ValueError("SRTP crypto-suites must not repeat")
    return tuple(names)


def generate_key(suite: str) -> bytes:
    """A fresh master key || master salt from ``secrets`` (RFC 3711 §8.1, RFC 4568 §6.1)."""
    return secrets.token_bytes(_suite(suite).key_salt_length)


# --- SDES (RFC 4568) -----------------------------------------------------------------------


@dataclass(frozen=True)
class SdesChoice:
    """The outcome of SDES offer/answer: tag, suite, our key and the peer's (never shown)."""

    tag: int
    suite: str
    local_key: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)

    def context(self, *, allow_key_export: bool = False) -> SrtpContext:
        """The SRTP context for this choice: we send with ``local_key``, receive with the peer's."""
        return SrtpContext(
            self.suite, self.local_key, self.remote_key, allow_key_export=allow_key_export
        )


@dataclass(frozen=True)
class _Line:
    """One acceptable ``a=crypto`` line."""

    tag: int
    suite: SrtpSuite
    key: bytes = field(repr=False)


class SdesNegotiator:
    """SDES keying for one media line (RFC 4568 §5, §6.1, §7); stateless apart from its settings.

    ``suites`` is our list in preference order (default :data:`DEFAULT_SUITES`);
    ``prefer_local`` makes the answerer pick by our order instead of the offerer's;
    ``min_lifetime`` is the shortest key lifetime (packets) we accept.
    """

    def __init__(
        self,
        suites: Sequence[str] = DEFAULT_SUITES,
        *,
        prefer_local: bool = False,
        min_lifetime: int = MIN_LIFETIME,
    ) -> None:
        self.suites = _check_suites(suites)
        self.prefer_local = prefer_local
        self.min_lifetime = min_lifetime

    def _allowed(self, suites: Sequence[str] | None) -> tuple[str, ...]:
        return self.suites if suites is None else _check_suites(suites)

    def offer_lines(self, suites: Sequence[str] | None = None) -> list[str]:
        """One ``a=crypto`` value per suite, tags 1..n, each with a fresh key (RFC 4568 §5.1.1)."""
        names = self._allowed(suites)
        return [
            crypto.format_crypto(tag, name, generate_key(name))
            for tag, name in enumerate(names, start=1)
        ]

    def answer_lines(
        self, offered: Sequence[str], suites: Sequence[str] | None = None
    ) -> tuple[list[str], SdesChoice]:
        """Accept one offered line: our answer (same tag and suite, our own fresh key) and the
        choice (RFC 4568 §5.1.2, §7.1.2). SrtpError(488) when no line can be honoured."""
        allowed = self._allowed(suites)
        candidates, reasons = self._acceptable(offered, allowed)
        if not candidates:
            raise SrtpError(_no_line_message(reasons), 488, reasons)
        line = self._pick(candidates, allowed)
        key = generate_key(line.suite.name)
        log.info("srtp: answering crypto tag %d with %s", line.tag, line.suite.name)
        answer = crypto.format_crypto(line.tag, line.suite.name, key)
        return [answer], SdesChoice(line.tag, line.suite.name, key, line.key)

    def _acceptable(
        self, offered: Sequence[str], allowed: Sequence[str]
    ) -> tuple[list[_Line], list[str]]:
        if not offered:
            raise SrtpError("the offer has no a=crypto line (RFC 4568 §7.1.2)", 488)
        _reject_duplicate_tags(offered)
        candidates: list[_Line] = []
        reasons: list[str] = []
        for value in offered:
            try:
                candidates.append(_check_line(value, allowed, self.min_lifetime))
            except SrtpError as exc:
                reasons.append(str(exc))
        return candidates, reasons

    def _pick(self, candidates: list[_Line], allowed: Sequence[str]) -> _Line:
        if not self.prefer_local:
            return candidates[0]
        return min(candidates, key=lambda line: allowed.index(line.suite.name))

    def accept_answer(self, answer_lines: Sequence[str], offered: Sequence[str]) -> SdesChoice:
        """Check the answer to our offer (RFC 4568 §5.1.3): exactly one line whose tag and suite
        we offered, with a key we can use. ``offered`` are the values :meth:`offer_lines` gave."""
        if len(answer_lines) != 1:
            raise SrtpError(
                f"the answer must carry exactly one a=crypto line, it has {len(answer_lines)}"
            )
        ours = _our_lines(offered)
        theirs = _check_line(answer_lines[0], tuple(SUITES), self.min_lifetime)
        mine = ours.get(theirs.tag)
        if mine is None:
            raise SrtpError(f"the answer's crypto tag {theirs.tag} was not offered")
        if mine.suite != theirs.suite:
            raise SrtpError(
                f"the answer's crypto tag {theirs.tag} names {theirs.suite.name}, "
                f"but we offered {mine.suite.name} with that tag"
            )
        log.info("srtp: peer accepted crypto tag %d, %s", theirs.tag, theirs.suite.name)
        return SdesChoice(theirs.tag, theirs.suite.name, mine.key, theirs.key)


def _no_line_message(reasons: Sequence[str]) -> str:
    return "no acceptable a=crypto line in the offer: " + "; ".join(reasons)


def _leading_tag(value: str) -> int | None:
    match = _LEADING_TAG.match(value)
    return int(match.group(1)) if match else None


def _reject_duplicate_tags(lines: Sequence[str]) -> None:
    """Tags identify a line within its media description and must be unique (RFC 4568 §4)."""
    seen: set[int] = set()
    for value in lines:
        tag = _leading_tag(value)
        if tag in seen:
            raise SrtpError(f"crypto tag {tag} appears twice in the offer (RFC 4568 §4)", 488)
        if tag is not None:
            seen.add(tag)


def _our_lines(offered: Sequence[str]) -> dict[int, _Line]:
    """Our own offered lines by tag; they were made by :meth:`SdesNegotiator.offer_lines`."""
    lines: dict[int, _Line] = {}
    for value in offered:
        try:
            line = _check_line(value, tuple(SUITES), 0)
        except SrtpError as exc:
            raise SrtpError(f"our own offer is unusable: {exc}", 500) from None
        lines[line.tag] = line
    if not lines:
        raise SrtpError("we offered no a=crypto line, so there is no answer to check", 500)
    return lines


def _check_line(value: str, allowed: Sequence[str], min_lifetime: int) -> _Line:
    """Parse one ``a=crypto`` value and keep it only if we can honour all of it."""
    try:
        attr = crypto.parse(value)
    except CryptoAttributeError as exc:
        raise SrtpError(str(exc)) from None  # its messages never quote the key
    suite = _check_suite(attr, allowed)
    key = _single_key(attr, min_lifetime)
    _check_session_params(attr)
    return _Line(attr.tag, suite, key)


def _check_suite(attr: crypto.CryptoAttribute, allowed: Sequence[str]) -> SrtpSuite:
    if attr.suite not in allowed:
        raise SrtpError(f"crypto tag {attr.tag}: unsupported crypto-suite {attr.suite!r}")
    return SUITES[attr.suite]


def _single_key(attr: crypto.CryptoAttribute, min_lifetime: int) -> bytes:
    """One inline key without MKI and with a long enough lifetime (RFC 4568 §6.1)."""
    if len(attr.key_params) != 1:
        raise SrtpError(f"crypto tag {attr.tag}: several master keys (needs MKI) not supported")
    param = attr.key_params[0]
    if param.mki is not None:
        raise SrtpError(f"crypto tag {attr.tag}: MKI not supported")
    if param.lifetime is not None and param.lifetime < min_lifetime:
        raise SrtpError(
            f"crypto tag {attr.tag}: key lifetime {_power(param.lifetime)} is shorter than "
            f"the {_power(min_lifetime)} packets we support (no re-keying within a call)"
        )
    return param.key_salt


def _check_session_params(attr: crypto.CryptoAttribute) -> None:
    """Allow ``WSH=`` and optional ``-`` parameters; refuse the rest (RFC 4568 §6.3)."""
    for param in attr.session_params:
        if param.startswith("-") or _WSH.fullmatch(param):
            continue
        name = param.split("=", 1)[0]  # FEC_KEY=inline:... carries a key: never quote a value
        raise SrtpError(f"crypto tag {attr.tag}: session parameter {name} not supported")


def _power(number: int) -> str:
    is_power = number > 0 and number & (number - 1) == 0
    return f"2^{number.bit_length() - 1}" if is_power else str(number)


# --- SRTP/SRTCP contexts (RFC 3711) ------------------------------------------------------


class KeyExport(TypedDict):
    """One entry of the debugging key export file."""

    suite: str
    key_b64: str
    direction: Literal["outbound", "inbound"]
    ssrc: int | None


def libsrtp_profile(suite: SrtpSuite) -> int:
    """The pylibsrtp profile constant for an implemented suite (ValueError otherwise)."""
    if suite.libsrtp_profile is None:
        raise ValueError(f"SRTP crypto-suite {suite.name} is not implemented")
    profile: int = getattr(_Policy, suite.libsrtp_profile)
    return profile


def _policy(suite: SrtpSuite, key: bytes, ssrc_type: int) -> pylibsrtp.Policy:
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=libsrtp_profile(suite))
    policy.window_size = REPLAY_WINDOW
    policy.allow_repeat_tx = False
    return policy


def _check_key(suite: SrtpSuite, key: bytes, which: str) -> bytes:
    if len(key) != suite.key_salt_length:
        raise ValueError(
            f"{which} key||salt for {suite.name} must be {suite.key_salt_length} bytes, "
            f"got {len(key)}"
        )
    return bytes(key)


class SrtpContext:
    """SRTP and SRTCP for one call (RFC 3711 §3.3, §3.4; RFC 7714 for AES-GCM).

    Outbound packets are protected with ``local_key`` (any SSRC we send), inbound ones checked
    with ``remote_key`` (any SSRC the peer sends; a stream is created only after a packet
    authenticates). Unprotect never raises: a packet failing authentication or the replay
    check (window of :data:`REPLAY_WINDOW`) is dropped and counted.
    """

    def __init__(
        self,
        suite: str,
        local_key: bytes,
        remote_key: bytes,
        *,
        allow_key_export: bool = False,
    ) -> None:
        self.suite = _suite(suite)
        self._local_key = _check_key(self.suite, local_key, "local")
        self._remote_key = _check_key(self.suite, remote_key, "remote")
        self._tx = pylibsrtp.Session(
            _policy(self.suite, self._local_key, _Policy.SSRC_ANY_OUTBOUND)
        )
        self._rx = pylibsrtp.Session(
            _policy(self.suite, self._remote_key, _Policy.SSRC_ANY_INBOUND)
        )
        self._bind()
        self.allow_key_export = allow_key_export
        self.local_ssrc: int | None = None
        self.remote_ssrc: int | None = None
        self.protected = 0
        self.unprotected = 0
        self.rtcp_protected = 0
        self.rtcp_unprotected = 0
        self.auth_failures = 0  # SRTP and SRTCP packets that failed authentication
        self.rtcp_auth_failures = 0  # of which SRTCP (e.g. a peer's RTCP sent in the clear)
        self.replay_failures = 0
        self.errors = 0

    @classmethod
    def from_choice(cls, choice: SdesChoice, *, allow_key_export: bool = False) -> SrtpContext:
        """The context an SDES exchange agreed on."""
        return choice.context(allow_key_export=allow_key_export)

    def rekey(self, suite: str, local_key: bytes, remote_key: bytes) -> None:
        """Take the keys of a new offer/answer, keeping each direction whose key did not change.

        A re-INVITE that keeps the peer's key keeps our receive session, and with it the replay
        window (RFC 3711 §3.3.2): packets from before the re-INVITE cannot be replayed after it.
        """
        new_suite = _suite(suite)
        same_suite = new_suite.name == self.suite.name
        local = _check_key(new_suite, local_key, "local")
        remote = _check_key(new_suite, remote_key, "remote")
        if not same_suite or local != self._local_key:
            self._tx = pylibsrtp.Session(_policy(new_suite, local, _Policy.SSRC_ANY_OUTBOUND))
            self._local_key = local
        if not same_suite or remote != self._remote_key:
            self._rx = pylibsrtp.Session(_policy(new_suite, remote, _Policy.SSRC_ANY_INBOUND))
            self._remote_key = remote
        self.suite = new_suite
        self._bind()

    def _bind(self) -> None:
        """The per-packet calls of the current sessions (after creation and every rekey)."""
        self._tx_protect = _direct(self._tx, "protect")
        self._tx_audio = _direct_audio(self._tx, self._tx_protect)
        self._tx_protect_rtcp = _direct(self._tx, "protect_rtcp")
        self._rx_unprotect = _direct(self._rx, "unprotect")
        self._rx_unprotect_rtcp = _direct(self._rx, "unprotect_rtcp")

    def __repr__(self) -> str:
        return (
            f"<SrtpContext {self.suite.name} protected={self.protected} "
            f"unprotected={self.unprotected} auth_failures={self.auth_failures} "
            f"replay_failures={self.replay_failures}>"
        )

    # -- outbound ------------------------------------------------------------------------------
    def protect(self, rtp: Packet) -> bytes:
        """RTP → SRTP (RFC 3711 §3.3); SrtpError for a packet libsrtp cannot take (a local bug)."""
        srtp = _protect(self._tx_protect, rtp)
        self.protected += 1
        self.local_ssrc = int.from_bytes(rtp[8:12], "big")
        return srtp

    def protect_audio(
        self, payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, payload: bytes
    ) -> bytes:
        """An audio packet's header fields and payload → SRTP (RFC 3550 §5.1, RFC 3711 §3.3).

        The same bytes as ``protect(pack_audio(...))``, but the header is packed and the payload
        copied straight into libsrtp's buffer: no plain packet is built first.
        """
        try:
            srtp = self._tx_audio(payload_type, marker, seq, timestamp, ssrc, payload)
        except (pylibsrtp.Error, ValueError) as exc:
            raise SrtpError(f"SRTP protect failed: {exc}", 500) from None
        self.protected += 1
        self.local_ssrc = ssrc
        return srtp

    def protect_rtcp(self, rtcp: Packet) -> bytes:
        """Compound RTCP → SRTCP with E flag and index (RFC 3711 §3.4)."""
        srtcp = _protect(self._tx_protect_rtcp, rtcp)
        self.rtcp_protected += 1
        self.local_ssrc = int.from_bytes(rtcp[4:8], "big")
        return srtcp

    # -- inbound -------------------------------------------------------------------------------
    def unprotect(self, srtp: Packet) -> bytes | None:
        """SRTP → RTP, or None if it fails authentication, replay or parsing (counted)."""
        rtp = self._unprotect(self._rx_unprotect, srtp)
        if rtp is not None:
            self.unprotected += 1
            self.remote_ssrc = int.from_bytes(rtp[8:12], "big")
        return rtp

    def unprotect_rtcp(self, srtcp: Packet) -> bytes | None:
        """SRTCP → RTCP, or None if it fails authentication, replay or parsing (counted)."""
        failures = self.auth_failures
        rtcp = self._unprotect(self._rx_unprotect_rtcp, srtcp)
        self.rtcp_auth_failures += self.auth_failures - failures
        if rtcp is not None:
            self.rtcp_unprotected += 1
            self.remote_ssrc = int.from_bytes(rtcp[4:8], "big")
        return rtcp

    def _unprotect(self, func: Callable[[bytes], bytes], data: Packet) -> bytes | None:
        try:
            return bytes(func(bytes(data)))
        except pylibsrtp.Error as exc:
            self._count_failure(str(exc))
        except ValueError:  # longer than pylibsrtp's 1500-byte buffer
            self._count_failure("packet is too long")
        return None

    def _count_failure(self, reason: str) -> None:
        if reason in _AUTH_FAILURES:
            self.auth_failures += 1
        elif reason in _REPLAY_FAILURES:
            self.replay_failures += 1
        else:
            self.errors += 1
        log.debug("srtp: dropped an inbound packet: %s", reason)

    # -- figures and debugging -------------------------------------------------------------------
    def stats(self) -> dict[str, str | int]:
        """Counters for call summaries."""
        return {
            "suite": self.suite.name,
            "protected": self.protected,
            "unprotected": self.unprotected,
            "rtcp_protected": self.rtcp_protected,
            "rtcp_unprotected": self.rtcp_unprotected,
            "auth_failures": self.auth_failures,
            "rtcp_auth_failures": self.rtcp_auth_failures,
            "replay_failures": self.replay_failures,
            "errors": self.errors,
        }

    def export_keys(self) -> list[KeyExport]:
        """Both master keys for an explicit debugging export; PermissionError unless the
        context was built with ``allow_key_export=True``. SSRCs are None until seen."""
        if not self.allow_key_export:
            raise PermissionError("SRTP key export is off for this call")
        return [
            self._export(self._local_key, "outbound", self.local_ssrc),
            self._export(self._remote_key, "inbound", self.remote_ssrc),
        ]

    def _export(
        self, key: bytes, direction: Literal["outbound", "inbound"], ssrc: int | None
    ) -> KeyExport:
        key_b64 = base64.b64encode(key).decode("ascii")
        return {"suite": self.suite.name, "key_b64": key_b64, "direction": direction, "ssrc": ssrc}


_Process = Callable[[bytes], bytes]
_TRAILER = {"protect": 16 + 128, "protect_rtcp": 4 + 16 + 128, "unprotect": 0, "unprotect_rtcp": 0}


class _Raw(NamedTuple):
    """What one libsrtp call on a session's own buffer needs (see ``_raw``)."""

    context: Any  # the session's srtp_t
    cdata: Any  # its packet buffer as a C char array
    buffer: Any  # the same buffer as a Python buffer
    call: Callable[[Any, Any, Any], int]  # srtp_protect, srtp_unprotect ...
    length: Any  # an int cell, allocated once
    room: int  # the most a packet may hold before the call (the buffer less the trailer)


def _raw(session: pylibsrtp.Session, method: str) -> _Raw | None:
    """libsrtp's ``srtp_<method>`` with the session's own buffer, or None when pylibsrtp is laid
    out otherwise (its public methods then serve)."""
    try:
        cdata = session._cdata
        return _Raw(
            session._srtp[0],
            cdata,
            session._buffer,
            getattr(_lib, f"srtp_{method}"),
            _ffi.new("int *"),
            len(cdata) - _TRAILER[method],
        )
    except (AttributeError, TypeError, KeyError):  # pragma: no cover - other pylibsrtp
        return None


def _direct(session: pylibsrtp.Session, method: str) -> _Process:
    """``session.<method>`` as one libsrtp call on the session's own buffer.

    pylibsrtp's method allocates a length cell and checks types on every packet; here the cell
    is allocated once. Same checks (the 1500-byte buffer less the trailer), same errors
    (``pylibsrtp.Error`` with libsrtp's status text), same two copies (into libsrtp's buffer,
    out as ``bytes``). Falls back to the public method when pylibsrtp is laid out otherwise.
    """
    raw = _raw(session, method)
    if raw is None:  # pragma: no cover - other pylibsrtp
        public: _Process = getattr(session, method)
        return public
    context, cdata, buffer, call, length, room = raw
    errors, error = pylibsrtp.ERRORS, pylibsrtp.Error

    def process(data: bytes, _keep: pylibsrtp.Session = session) -> bytes:
        size = len(data)
        if size > room:
            raise ValueError("packet is too long")
        buffer[0:size] = data
        length[0] = size
        status = call(context, cdata, length)
        if status:
            raise error(errors[status])
        return bytes(buffer[0 : length[0]])

    return process


_ProcessAudio = Callable[[int, bool, int, int, int, bytes], bytes]


def _direct_audio(session: pylibsrtp.Session, protect: _Process) -> _ProcessAudio:
    """Protect an audio packet from its fields: the RTP header is packed and the payload copied
    into the session's own buffer, then one libsrtp call (RFC 3711 §3.3). Same checks and errors
    as :func:`_direct`; falls back to ``protect(pack_audio(...))`` for another pylibsrtp layout.
    """
    raw = _raw(session, "protect")
    if raw is None:  # pragma: no cover - other pylibsrtp

        def packed(pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
            return protect(pack_audio(pt, marker, seq, ts, ssrc, payload))

        return packed
    context, cdata, buffer, call, length, room = raw
    errors, error = pylibsrtp.ERRORS, pylibsrtp.Error
    pack_into = AUDIO_HEADER.pack_into

    def process(
        pt: int,
        marker: bool,
        seq: int,
        ts: int,
        ssrc: int,
        payload: bytes,
        _keep: pylibsrtp.Session = session,
    ) -> bytes:
        size = RTP_HEADER_SIZE + len(payload)
        if size > room:
            raise ValueError("packet is too long")
        # version 2 and no padding, extension or CSRC (0x80); the marker bit over the type
        pack_into(buffer, 0, 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc)
        buffer[RTP_HEADER_SIZE:size] = payload
        length[0] = size
        status = call(context, cdata, length)
        if status:
            raise error(errors[status])
        return bytes(buffer[0 : length[0]])

    return process


def _protect(func: Callable[[bytes], bytes], data: Packet) -> bytes:
    try:
        return bytes(func(bytes(data)))
    except (pylibsrtp.Error, ValueError) as exc:
        raise SrtpError(f"SRTP protect failed: {exc}", 500) from None
