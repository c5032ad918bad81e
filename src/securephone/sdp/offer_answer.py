"""The SDP offer/answer model for one audio stream (RFC 3264), with SDES keys (RFC 4568).

Policy, where RFC 3264 leaves a choice:

* **Codec choice.** The answerer picks the first codec in *its own* preference order
  (:attr:`MediaCapabilities.codecs`) that the offer contains, and answers with that single
  codec plus ``telephone-event`` when both sides have it. RFC 3264 §6.1 asks an answerer that
  lists several formats to keep the offerer's order; answering with one codec makes that moot
  and tells the offerer exactly what it will receive (as 3GPP TS 24.229 phones do). Payload
  type numbers are the offerer's (§6.1 SHOULD), so dynamic types such as Opus and
  telephone-event keep the number the offer gave them. Codecs are matched by encoding name
  and clock rate, never by number: ``opus/48000/2`` on a dynamic type (RFC 7587 §7, with our
  ``a=fmtp`` of RFC 7587 §6.1), ``G722/8000`` on static type 9 (RFC 3551 §4.5.2: an 8000 Hz
  RTP clock for 16 kHz audio), ``PCMU``/``PCMA``. Each side's numbers name what *it* receives
  (RFC 3264 §5.1): we send with the peer's number and accept ours
  (:attr:`NegotiatedMedia.local_payload_type`), so an answer that maps a number differently
  from the offer still works.
* **Streams.** The first acceptable ``m=audio`` stream is used; every other stream (video,
  further audio, unknown media, streams we cannot key) is rejected with port 0 in its place,
  keeping the offer's m-line order (§6).
* **SRTP.** An ``RTP/SAVP`` stream is accepted only when the caller supplies answer crypto
  lines; an ``RTP/AVP`` stream is refused when the phone requires SRTP (``proto`` RTP/SAVP):
  no silent fall back to plain RTP. DTLS-SRTP (``UDP/TLS/RTP/SAVP`` or ``…/SAVPF``) is accepted
  only with DTLS-SRTP capabilities; its fingerprint and setup lines are the caller's
  (``media.negotiation``, ``sdp.dtls``).
* **Hold** (§8.4, RFC 6337): a re-offer with ``sendonly`` (or ``inactive`` when we were only
  receiving) and the ``o=`` version incremented — :func:`make_reoffer`, :func:`hold_direction`.
  A ``c=`` of 0.0.0.0 (RFC 2543 hold) means: send neither RTP nor RTCP to that peer (§8.4).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from securephone.errors import CryptoAttributeError, SdpError
from securephone.sdp import crypto
from securephone.sdp.dtls import DTLS_PROTOS, is_dtls_proto
from securephone.sdp.session import (
    DIRECTIONS,
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
)

SRTP_PROTO = "RTP/SAVP"
RTP_PROTO = "RTP/AVP"
DTLS_PROTO = "UDP/TLS/RTP/SAVP"  # DTLS-SRTP (RFC 5764 §8); UDP/TLS/RTP/SAVPF is accepted too
TELEPHONE_EVENT = "telephone-event"
_STATIC_BY_NAME = {m.encoding_name.upper(): m for m in STATIC_PAYLOAD_TYPES.values()}
OPUS = "opus"
DEFAULT_OPUS_FMTP = "maxaveragebitrate=32000;useinbandfec=1;usedtx=0"  # RFC 7587 §6.1


@dataclass(frozen=True)
class MediaCapabilities:
    """What this phone can do for audio; codecs in preference order (RFC 3551 static types)."""

    local_address: str = "127.0.0.1"
    codecs: Sequence[str] = ("PCMU", "PCMA")
    opus_payload_type: int = 111  # dynamic (RFC 3551 §3, RFC 7587 §7)
    opus_fmtp: str = DEFAULT_OPUS_FMTP  # what we want to receive (RFC 7587 §6.1)
    telephone_event: bool = True
    telephone_event_pt: int = 101
    telephone_event_fmtp: str = "0-16"
    ptime: int = 20
    proto: str = RTP_PROTO
    rtcp_mux: bool = False
    # media goes only to a unicast IP literal in c= (names and multicast are refused with 488)
    literal_addresses_only: bool = True
    # our media socket is bound to ``::`` with IPV6_V6ONLY off: it reaches IPv4 peers too
    dual_stack: bool = False
    username: str = "-"
    session_name: str = "-"

    def __post_init__(self) -> None:
        object.__setattr__(self, "codecs", tuple(self.codecs))
        ipaddress.ip_address(self.local_address)  # ValueError for a non-literal address
        _check_config(self)

    @property
    def addrtype(self) -> str:
        """``IP4`` or ``IP6`` for :attr:`local_address` (RFC 4566 §5.7)."""
        return "IP6" if ":" in self.local_address else "IP4"

    def reaches(self, address: str) -> bool:
        """Whether our media socket can send to ``address`` (same family, or dual stack)."""
        return self.dual_stack or (":" in address) == (self.addrtype == "IP6")

    def static_codecs(self) -> list[RtpMap]:
        """The configured codecs that have an RFC 3551 static payload type."""
        return [c for c in self.codec_maps() if c.payload_type < 96]

    def codec_maps(self) -> list[RtpMap]:
        """The configured codecs in preference order, with the payload types we receive them on
        (static for G.722 and G.711, :attr:`opus_payload_type` for ``opus/48000/2``)."""
        return [self._codec_map(name) for name in self.codecs]

    def _codec_map(self, name: str) -> RtpMap:
        if name.upper() == "OPUS":
            return RtpMap(self.opus_payload_type, OPUS, 48000, 2)
        return _STATIC_BY_NAME[name.upper()]

    def fmtp_of(self, codec: RtpMap) -> str | None:
        """Our ``a=fmtp`` parameters for ``codec`` (only Opus has any), or None."""
        return self.opus_fmtp if codec.encoding_name.lower() == OPUS else None


def _check_config(caps: MediaCapabilities) -> None:
    known = set(_STATIC_BY_NAME) - {"CN"} | {"OPUS"}
    unknown = [c for c in caps.codecs if c.upper() not in known]
    if not caps.codecs or unknown:
        raise ValueError(f"codecs must be opus or static audio codecs of RFC 3551, not {unknown}")
    if not 96 <= caps.opus_payload_type <= 127 or (
        caps.telephone_event and caps.opus_payload_type == caps.telephone_event_pt
    ):
        raise ValueError("opus_payload_type must be a free dynamic payload type (96..127)")
    if caps.proto not in (RTP_PROTO, SRTP_PROTO) and not is_dtls_proto(caps.proto):
        raise ValueError(
            f"proto must be {RTP_PROTO}, {SRTP_PROTO} or {' or '.join(DTLS_PROTOS)}, "
            f"not {caps.proto!r}"
        )
    if not 96 <= caps.telephone_event_pt <= 127:
        raise ValueError("telephone_event_pt must be a dynamic payload type (96..127)")
    if not 0 < caps.ptime <= 1000:
        raise ValueError("ptime must be 1..1000 ms")


@dataclass(frozen=True)
class NegotiatedMedia:
    """The outcome of one offer/answer exchange for the audio stream (RFC 3264 §6, §7).

    ``payload_type`` and ``telephone_event_pt`` are the numbers the *remote* side declared,
    i.e. the ones to put in the RTP packets we send to it.
    """

    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    codec: str
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None
    ptime: int
    local_direction: str
    remote_direction: str
    proto: str
    media_index: int = 0
    rtcp_mux: bool = False
    remote_crypto: list[str] = field(default_factory=list)
    channels: int | None = None  # the rtpmap's channel count (2 for opus/48000/2)
    fmtp: str | None = None  # the peer's a=fmtp for the codec: how we must send (RFC 7587 §6.1)
    local_fmtp: str | None = None  # ours: what the peer was asked to send
    local_payload_type: int | None = None  # the number we receive the codec on (RFC 3264 §5.1)

    @property
    def receive_payload_type(self) -> int:
        """The payload type of the codec in packets the peer sends us."""
        return self.payload_type if self.local_payload_type is None else self.local_payload_type

    @property
    def is_secure(self) -> bool:
        """True when the stream is SRTP (RTP/SAVP, RFC 3711)."""
        return "SAVP" in self.proto

    @property
    def can_send(self) -> bool:
        """We may send RTP: we send and the peer receives (RFC 3264 §6.1)."""
        return sends(self.local_direction) and receives(self.remote_direction)

    @property
    def can_receive(self) -> bool:
        """We expect RTP: we receive and the peer sends (RFC 3264 §6.1)."""
        return receives(self.local_direction) and sends(self.remote_direction)

    @property
    def held_by_us(self) -> bool:
        """We put the peer on hold: our side no longer receives (RFC 3264 §8.4)."""
        return not receives(self.local_direction)

    @property
    def held_by_remote(self) -> bool:
        """The peer put us on hold: it no longer receives (RFC 3264 §8.4, RFC 6337 §5)."""
        return not receives(self.remote_direction)

    @property
    def is_on_hold(self) -> bool:
        """Either side holds the call."""
        return self.held_by_us or self.held_by_remote


class _Choice(NamedTuple):
    codec: RtpMap  # with the payload type number the peer receives it on
    telephone_event_pt: int | None
    fmtp: str | None = None  # the peer's a=fmtp for the codec
    local_fmtp: str | None = None  # ours
    local_payload_type: int | None = None  # when we receive it on another number


# ---------------------------------------------------------------- directions


def sends(direction: str) -> bool:
    """True for sendrecv and sendonly (RFC 3264 §5.1)."""
    return direction in ("sendrecv", "sendonly")


def receives(direction: str) -> bool:
    """True for sendrecv and recvonly (RFC 3264 §5.1)."""
    return direction in ("sendrecv", "recvonly")


def direction_of(send: bool, receive: bool) -> str:
    """The direction attribute for a send/receive pair."""
    return {(True, True): "sendrecv", (True, False): "sendonly"}.get(
        (send, receive), "recvonly" if receive else "inactive"
    )


def answer_direction(offered: str, wanted: str) -> str:
    """RFC 3264 §6.1: sendonly → recvonly, recvonly → sendonly, inactive → inactive,
    each narrowed by what we want (e.g. we hold: sendonly/inactive)."""
    return direction_of(sends(wanted) and receives(offered), receives(wanted) and sends(offered))


def hold_direction(current: str) -> str:
    """RFC 3264 §8.4: sendrecv → sendonly, recvonly → inactive (stop receiving)."""
    return direction_of(sends(current), False)


def remote_direction(sdp: SessionDescription, media: MediaDescription) -> str:
    """The peer's direction, with ``c=0.0.0.0`` meaning "do not send to me" (RFC 3264 §8.4)."""
    direction = sdp.direction(media)
    conn = sdp.effective_connection(media)
    if conn is not None and conn.is_null:
        return direction_of(sends(direction), False)
    return direction


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")


# ---------------------------------------------------------------- offers


def create_offer(
    caps: MediaCapabilities,
    port: int,
    session_id: int,
    version: int,
    direction: str = "sendrecv",
    crypto_lines: Sequence[str] = (),
    *,
    extra_attributes: Sequence[Attribute] = (),
) -> SessionDescription:
    """An initial offer with one audio stream (RFC 3264 §5, §5.1).

    ``crypto_lines`` are ``a=crypto`` values (RFC 4568 §9.2), required for RTP/SAVP;
    ``extra_attributes`` go on the m-line (e.g. ``("zrtp-hash", "1.10 <hex>")``).
    """
    _check_port(port)
    _check_direction(direction)
    if caps.proto == SRTP_PROTO and not crypto_lines:
        raise ValueError("an RTP/SAVP offer needs at least one a=crypto line (RFC 4568)")
    for line in crypto_lines:
        crypto.parse(line)
    sdp = _new_session(caps, session_id, version, Timing())
    sdp.media.append(_offer_media(caps, port, direction, crypto_lines, extra_attributes))
    return sdp


def _offer_media(
    caps: MediaCapabilities,
    port: int,
    direction: str,
    crypto_lines: Sequence[str],
    extra: Sequence[Attribute],
) -> MediaDescription:
    """Our codecs in preference order, then telephone-event (RFC 3264 §5.1, RFC 4733 §7)."""
    pts = [c.payload_type for c in caps.codec_maps()]
    attributes: list[Attribute] = []
    for codec in caps.codec_maps():
        attributes += _codec_attributes(codec, caps.fmtp_of(codec))
    if caps.telephone_event:
        pts.append(caps.telephone_event_pt)
        attributes += _telephone_event_attributes(caps, caps.telephone_event_pt)
    attributes += _common_attributes(caps, caps.rtcp_mux, crypto_lines, extra)
    media = MediaDescription("audio", port, caps.proto, [str(pt) for pt in pts])
    media.attributes = [*attributes, (direction, None)]
    return media


def make_reoffer(previous_local: SessionDescription, direction: str) -> SessionDescription:
    """A re-offer of our last description with a new direction and ``o=`` version + 1.

    RFC 3264 §8 (same m-lines, version incremented) and §8.4 / RFC 6337 §5 for hold:
    pass :func:`hold_direction` of the current direction to hold, "sendrecv" to resume.
    """
    _check_direction(direction)
    sdp = copy.deepcopy(previous_local)
    sdp.origin.sess_version += 1
    sdp.attributes = [a for a in sdp.attributes if a[0] not in DIRECTIONS]
    for media in sdp.media:
        if media.port != 0:
            media.attributes = [a for a in media.attributes if a[0] not in DIRECTIONS]
            media.attributes.append((direction, None))
    return sdp


def _new_session(
    caps: MediaCapabilities, session_id: int, version: int, timing: Timing
) -> SessionDescription:
    origin = Origin(caps.username, session_id, version, "IN", caps.addrtype, caps.local_address)
    return SessionDescription(
        origin=origin,
        session_name=caps.session_name,
        connection=Connection("IN", caps.addrtype, caps.local_address),
        timing=[Timing(timing.start, timing.stop)],
    )


def _rtpmap_value(codec: RtpMap) -> str:
    channels = f"/{codec.channels}" if codec.channels else ""
    return f"{codec.payload_type} {codec.encoding_name}/{codec.clock_rate}{channels}"


def _codec_attributes(codec: RtpMap, fmtp: str | None) -> list[Attribute]:
    """``a=rtpmap`` and, when the codec has parameters, ``a=fmtp`` (RFC 4566 §6)."""
    attributes: list[Attribute] = [("rtpmap", _rtpmap_value(codec))]
    return attributes + ([("fmtp", f"{codec.payload_type} {fmtp}")] if fmtp else [])


def _telephone_event_attributes(caps: MediaCapabilities, pt: int) -> list[Attribute]:
    """RFC 4733 §7.1.1: ``a=rtpmap:<pt> telephone-event/8000`` and ``a=fmtp:<pt> 0-16``."""
    return [
        ("rtpmap", f"{pt} {TELEPHONE_EVENT}/8000"),
        ("fmtp", f"{pt} {caps.telephone_event_fmtp}"),
    ]


def _common_attributes(
    caps: MediaCapabilities,
    rtcp_mux: bool,
    crypto_lines: Sequence[str],
    extra: Sequence[Attribute],
) -> list[Attribute]:
    attributes: list[Attribute] = [("ptime", str(caps.ptime))]
    attributes += [("rtcp-mux", None)] if rtcp_mux else []
    attributes += [("crypto", line) for line in crypto_lines]
    return attributes + list(extra)


def _check_port(port: int) -> None:
    if not 0 < port <= 65535:
        raise ValueError(f"port must be 1..65535, not {port}")


# ---------------------------------------------------------------- answers


def create_answer(
    offer: SessionDescription,
    caps: MediaCapabilities,
    port: int,
    session_id: int,
    version: int,
    direction: str = "sendrecv",
    crypto_lines: Sequence[str] = (),
    *,
    extra_attributes: Sequence[Attribute] = (),
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer (RFC 3264 §6): accept one audio stream, reject the rest with port 0.

    Raises SdpError(488) naming what was offered when no audio stream is acceptable.
    ``crypto_lines`` are our answer's ``a=crypto`` values for an RTP/SAVP stream; each must
    reuse the tag and suite of an offered line (RFC 4568 §5.1).
    """
    _check_port(port)
    _check_direction(direction)
    answer = _new_session(caps, session_id, version, (offer.timing or [Timing()])[0])
    negotiated: NegotiatedMedia | None = None
    for index, media in enumerate(offer.media):
        choice = None if negotiated else _acceptable(media, caps, bool(crypto_lines))
        if choice is None:
            answer.media.append(_rejected(media))
            continue
        local = answer_direction(remote_direction(offer, media), direction)
        answer.media.append(
            _answer_media(media, choice, caps, port, local, crypto_lines, extra_attributes)
        )
        negotiated = _negotiated(offer, media, index, choice, local, caps)
    if negotiated is None:
        raise SdpError(_nothing_acceptable(offer, caps), 488)
    return answer, negotiated


def _acceptable(
    media: MediaDescription, caps: MediaCapabilities, have_keys: bool
) -> _Choice | None:
    if media.media != "audio" or media.port == 0 or not _proto_ok(media, caps, have_keys):
        return None
    codec = _choose_codec(media, caps)
    if codec is None:
        return None
    event = _find_format(media, TELEPHONE_EVENT, 8000) if caps.telephone_event else None
    return _Choice(codec, event, media.fmtp(codec.payload_type), caps.fmtp_of(codec))


def _proto_ok(media: MediaDescription, caps: MediaCapabilities, have_keys: bool) -> bool:
    """SAVP needs keys on both sides; plain AVP only when SRTP is not mandatory; DTLS-SRTP
    (the keys come in the media path, RFC 5764) only when we answer with DTLS-SRTP."""
    if is_dtls_proto(media.proto):
        return is_dtls_proto(caps.proto)
    if media.proto == SRTP_PROTO:
        return have_keys and bool(media.crypto_lines)
    return media.proto == RTP_PROTO and caps.proto == RTP_PROTO


def _choose_codec(media: MediaDescription, caps: MediaCapabilities) -> RtpMap | None:
    """The first of *our* codecs the offer has, with the offer's payload type number."""
    for wanted in caps.codec_maps():
        pt = _find_format(media, wanted.encoding_name, wanted.clock_rate)
        if pt is not None:
            return RtpMap(pt, wanted.encoding_name, wanted.clock_rate, wanted.channels)
    return None


def _find_format(media: MediaDescription, name: str, clock_rate: int) -> int | None:
    """The payload type the stream uses for ``name/clock_rate`` (rtpmap or RFC 3551 static).

    The channel count is not compared: RFC 7587 §7 fixes ``opus/48000/2`` whatever is sent,
    and a peer that writes ``opus/48000`` still means Opus.
    """
    for pt in media.payload_types:
        codec = media.codec(pt)
        if codec and codec.encoding_name.upper() == name.upper() and codec.clock_rate == clock_rate:
            return pt
    return None


def _rejected(media: MediaDescription) -> MediaDescription:
    """RFC 3264 §6: a rejected stream keeps its m-line with port 0 and the offered formats."""
    return MediaDescription(media.media, 0, media.proto, list(media.formats))


def _answer_media(
    offered: MediaDescription,
    choice: _Choice,
    caps: MediaCapabilities,
    port: int,
    direction: str,
    crypto_lines: Sequence[str],
    extra: Sequence[Attribute],
) -> MediaDescription:
    # RTP/SAVP carries keys; so does best-effort SRTP: RTP/AVP with a=crypto (RFC 4568 §7.5 note)
    keys = crypto_lines if offered.proto == SRTP_PROTO or offered.crypto_lines else ()
    _check_answer_keys(offered.crypto_lines, keys)
    formats = [str(choice.codec.payload_type)]
    attributes = _codec_attributes(choice.codec, choice.local_fmtp)
    if choice.telephone_event_pt is not None:
        formats.append(str(choice.telephone_event_pt))
        attributes += _telephone_event_attributes(caps, choice.telephone_event_pt)
    mux = offered.rtcp_mux and caps.rtcp_mux
    attributes += _common_attributes(caps, mux, keys, extra)
    media = MediaDescription("audio", port, offered.proto, formats)
    media.attributes = [*attributes, (direction, None)]
    return media


def _check_answer_keys(offered_lines: list[str], answer_lines: Sequence[str]) -> None:
    """RFC 4568 §5.1: an answer's crypto line reuses an offered tag with the same suite."""
    offered = {(a.tag, a.suite) for a in _parse_crypto_lenient(offered_lines)}
    for line in answer_lines:
        ours = crypto.parse(line)
        if (ours.tag, ours.suite) not in offered:
            raise ValueError(f"answer crypto tag {ours.tag} {ours.suite} was not offered")


def _parse_crypto_lenient(lines: Sequence[str]) -> list[crypto.CryptoAttribute]:
    parsed = []
    for line in lines:
        try:
            parsed.append(crypto.parse(line))
        except CryptoAttributeError:
            continue
    return parsed


def _negotiated(
    remote: SessionDescription,
    media: MediaDescription,
    index: int,
    choice: _Choice,
    local_direction: str,
    caps: MediaCapabilities,
    rtcp_mux: bool | None = None,
) -> NegotiatedMedia:
    """The stream as seen from our side, with the remote's addresses and payload types."""
    mux = media.rtcp_mux and caps.rtcp_mux if rtcp_mux is None else rtcp_mux
    conn = remote.effective_connection(media)
    address = conn.address if conn is not None else "0.0.0.0"
    if caps.literal_addresses_only:
        _check_media_address(address)
    _check_reachable(address, caps)
    return NegotiatedMedia(
        remote_address=address,
        remote_port=media.port,
        remote_rtcp_port=_rtcp_port(media, mux),
        codec=choice.codec.encoding_name,
        payload_type=choice.codec.payload_type,
        clock_rate=choice.codec.clock_rate,
        telephone_event_pt=choice.telephone_event_pt,
        channels=choice.codec.channels,
        fmtp=choice.fmtp,
        local_fmtp=choice.local_fmtp,
        local_payload_type=choice.local_payload_type,
        ptime=_ptime(media.ptime, caps.ptime),
        local_direction=local_direction,
        remote_direction=remote_direction(remote, media),
        proto=media.proto,
        media_index=index,
        rtcp_mux=mux,
        remote_crypto=list(media.crypto_lines),
    )


PTIME_RANGE = (10, 120)  # ms: what we honour of a peer's a=ptime (RFC 4566 §6 says "should")


def _ptime(offered: int | None, ours: int) -> int:
    """The peer's packet time when it is a sane multiple of 10 ms in 10–120 ms, else ours.

    A ptime of 1 ms would make us send 1,000 packets a second to whatever address the SDP names.
    """
    low, high = PTIME_RANGE
    if offered is not None and low <= offered <= high and offered % 10 == 0:
        return offered
    return ours


def _check_media_address(address: str) -> None:
    """RFC 4566 allows names and multicast in c=; a phone sends media only to a unicast IP literal
    (a name would be resolved on every packet, multicast would reach a whole group)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise SdpError(
            f"c= {address!r} is not an IP address (names are not accepted)", 488
        ) from None
    if ip.is_multicast:
        raise SdpError(f"c= {address} is a multicast address", 488)


def _check_reachable(address: str, caps: MediaCapabilities) -> None:
    """The peer's c= family must be one our media socket can send to (RFC 4566 §5.7: IP4/IP6).

    Media follows the peer's c= (an IP6 answer to our IP4 offer is fine on a dual-stack socket);
    a family we cannot reach is refused (488) with the reason, instead of a call without audio.
    A hold address (0.0.0.0, ::) carries no family to reach.
    """
    if address in ("0.0.0.0", "::") or not _is_ip(address) or caps.reaches(address):
        return
    theirs, ours = ("IPv6", "IPv4") if ":" in address else ("IPv4", "IPv6")
    raise SdpError(
        f"the peer's media address {address} is {theirs}, but this phone's media address "
        f"{caps.local_address} is {ours} only (listen on :: for both)",
        488,
    )


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _rtcp_port(media: MediaDescription, mux: bool) -> int:
    """RFC 5761 §5.1.1 (muxed: the RTP port), RFC 3605 (a=rtcp), else RTP port + 1."""
    if mux:
        return media.port
    explicit = media.rtcp_port
    return explicit if explicit is not None else media.port + 1


def _nothing_acceptable(offer: SessionDescription, caps: MediaCapabilities) -> str:
    offered = "; ".join(_describe(m) for m in offer.media) or "no media"
    wanted = ", ".join(caps.codecs)
    return (
        f"no acceptable audio stream in the offer (offered: {offered}); "
        f"we accept {wanted} over {caps.proto}"
    )


def _describe(media: MediaDescription) -> str:
    names = []
    for fmt in media.formats[:12]:
        codec = media.codec(int(fmt)) if media.is_rtp else None
        names.append(f"{fmt} {codec.encoding_name}/{codec.clock_rate}" if codec else fmt)
    port = "disabled" if media.port == 0 else f"port {media.port}"
    return f"{media.media} {media.proto} {port} [{', '.join(names)}]"


# ---------------------------------------------------------------- processing an answer


def process_answer(
    offer: SessionDescription, answer: SessionDescription, caps: MediaCapabilities
) -> NegotiatedMedia:
    """Check the peer's answer to our offer (RFC 3264 §6, §7) and return the agreed stream.

    Raises SdpError(488) when the answer breaks RFC 3264 (m-line count or kinds, direction),
    rejects our audio stream, or names no codec we offered and support.
    """
    _check_m_lines(offer, answer)
    index = _offered_audio_index(offer)
    offered, answered = offer.media[index], answer.media[index]
    if answered.port == 0:
        raise SdpError("the answer rejected our audio stream (port 0, RFC 3264 §6)", 488)
    if answered.proto != offered.proto:
        raise SdpError(f"answer changed the transport {offered.proto} to {answered.proto}", 488)
    choice = _answered_codec(offered, answered, caps)
    event = _find_format(answered, TELEPHONE_EVENT, 8000) if caps.telephone_event else None
    local = offer.direction(offered)
    _check_answer_direction(local, answer.direction(answered))
    if answered.proto == SRTP_PROTO or (offered.crypto_lines and answered.crypto_lines):
        _check_answered_keys(offered, answered)
    mux = offered.rtcp_mux and answered.rtcp_mux
    return _negotiated(
        answer, answered, index, choice._replace(telephone_event_pt=event), local, caps, mux
    )


def _check_m_lines(offer: SessionDescription, answer: SessionDescription) -> None:
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"the answer has {len(answer.media)} m-lines, the offer had {len(offer.media)} "
            "(RFC 3264 §6)",
            488,
        )
    for number, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True), 1):
        if ours.media != theirs.media:
            raise SdpError(f"answer m-line {number} is {theirs.media}, offered {ours.media}", 488)


def _offered_audio_index(offer: SessionDescription) -> int:
    for index, media in enumerate(offer.media):
        if media.media == "audio" and media.port != 0:
            return index
    raise ValueError("our offer has no enabled audio stream")


def _answered_codec(
    offered: MediaDescription, answered: MediaDescription, caps: MediaCapabilities
) -> _Choice:
    """RFC 3264 §7: use the first answered format that we offered and support.

    Formats are matched by name and clock rate: the answer's number is what we send with, the
    number we offered is what we receive on (RFC 3264 §5.1), even when the two differ.
    """
    ours = {c.encoding_name.upper(): c for c in caps.codec_maps()}
    for pt in answered.payload_types:
        codec = answered.codec(pt)
        if codec is None or codec.encoding_name.upper() not in ours:
            continue
        offered_pt = _find_format(offered, codec.encoding_name, codec.clock_rate)
        if offered_pt is not None:
            chosen = RtpMap(pt, codec.encoding_name, codec.clock_rate, codec.channels)
            local_fmtp = caps.fmtp_of(ours[codec.encoding_name.upper()])
            return _Choice(chosen, None, answered.fmtp(pt), local_fmtp, offered_pt)
    raise SdpError(f"the answer names no codec we offered (answered: {_describe(answered)})", 488)


def _check_answer_direction(offered: str, answered: str) -> None:
    """RFC 3264 §6.1: the answer may not send where we do not receive, or vice versa."""
    if (sends(answered) and not receives(offered)) or (receives(answered) and not sends(offered)):
        raise SdpError(
            f"answer direction {answered} is not allowed for an offered {offered} (RFC 3264 §6.1)",
            488,
        )


def _check_answered_keys(offered: MediaDescription, answered: MediaDescription) -> None:
    """RFC 4568 §5.1: exactly one a=crypto, with an offered tag and the same suite."""
    lines = answered.crypto_lines
    if len(lines) != 1:
        raise SdpError(f"an SRTP answer needs exactly one a=crypto line, got {len(lines)}", 488)
    theirs = crypto.parse(lines[0])
    offered_suites = {a.tag: a.suite for a in _parse_crypto_lenient(offered.crypto_lines)}
    if offered_suites.get(theirs.tag) != theirs.suite:
        raise SdpError(
            f"answer crypto tag {theirs.tag} {theirs.suite} does not match an offered line", 488
        )
    theirs.validate()
