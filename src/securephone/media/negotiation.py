"""SDP offer/answer for one call's audio stream: the ``CallMedia`` the signalling asks (RFC 3264).

It also chooses how the SRTP keys are agreed (``media.keying``): SDES lines in the SDP, or a
media-path keying (ZRTP) whose SDP side it handles and whose engine it creates for the stream.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from securephone.errors import MediaError, SdpError, SrtpError
from securephone.media.dtls.certificate import DtlsCertificate
from securephone.media.dtls.profiles import profiles_for_suites
from securephone.media.keying import KeyingMethod, PathKeying, add_alarm
from securephone.media.srtp import DEFAULT_SUITES, SdesChoice, SdesNegotiator
from securephone.media.suites import SUITES
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.keying import ZrtpKeying
from securephone.media.zrtp.session import ZrtpConfig
from securephone.sdp import dtls as sdp_dtls
from securephone.sdp import session as sdp_session
from securephone.sdp.offer_answer import (
    DTLS_PROTO,
    RTP_PROTO,
    SRTP_PROTO,
    MediaCapabilities,
    NegotiatedMedia,
    create_answer,
    create_offer,
    make_reoffer,
    process_answer,
)

if TYPE_CHECKING:
    from securephone.media.dtls.keying import DtlsKeying
from securephone.sdp.session import Attribute, MediaDescription, SessionDescription

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SrtpPolicy:
    """How a call keys its media with SDES (RFC 4568), decided before the first offer.

    ``secure_signalling`` says the SDP travels over TLS (the first hop); SDES keys are never put
    in SDP that crosses plaintext signalling unless ``allow_plaintext_keys`` (labs only).
    """

    mode: str = "mandatory"  # off | optional | mandatory
    suites: tuple[str, ...] = DEFAULT_SUITES
    secure_signalling: bool = False
    allow_plaintext_keys: bool = False
    methods: tuple[KeyingMethod, ...] = (KeyingMethod.SDES,)  # in preference order

    @property
    def keys_allowed(self) -> bool:
        return self.secure_signalling or self.allow_plaintext_keys


@dataclass
class KeyingResources:
    """What the shell lends the media-path keyings of one call."""

    ssrc: int  # the stream's SSRC (ZRTP packets carry it)
    zrtp_cache: ZrtpCache | None = None  # retained secrets; None: no ZRTP on this phone
    zrtp_config: ZrtpConfig | None = None  # what our Hello offers; None: the engine's defaults
    dtls_certificate: DtlsCertificate | None = None  # the media certificate; None: no DTLS


# RFC 5763 §5: the answerer to a=setup:actpass SHOULD be active (it sends the ClientHello, so
# the offerer need not wait for the SIP answer); passive is allowed (RFC 4145 §4.1).
DTLS_ANSWER_TO_ACTPASS = sdp_dtls.Setup.ACTIVE


def opus_fmtp(bitrate: int) -> str:
    """Our Opus ``a=fmtp`` (RFC 7587 §6.1): in-band FEC wanted, at most ``bitrate`` bit/s, no DTX."""
    return f"maxaveragebitrate={bitrate};useinbandfec=1;usedtx=0"


def opus_payload_type(telephone_event_pt: int) -> int:
    """The dynamic payload type we receive Opus on: 111 (as most phones), unless DTMF took it."""
    return 111 if telephone_event_pt != 111 else 110


PLAINTEXT_KEYS = (
    "SDES keys would cross plaintext signalling (use TLS, or allow_sdes_over_plaintext for labs)"
)


class SdpMedia:
    """Holds our last local description, the negotiated stream and its SRTP keys for one call."""

    def __init__(
        self,
        caps: MediaCapabilities,
        port: int,
        srtp: SrtpPolicy | None = None,
        resources: KeyingResources | None = None,
    ) -> None:
        self.srtp = srtp or SrtpPolicy(mode="off")
        proto = SRTP_PROTO if self.srtp.mode == "mandatory" else RTP_PROTO
        self.caps = replace(caps, proto=proto)
        self.port = port
        self.resources = resources
        self.method: KeyingMethod | None = None  # decided by the first offer/answer
        self.path: PathKeying | None = None  # the media-path keying (ZRTP), when chosen
        self.alarms: list[str] = []  # security alarms users must see (refused downgrades)
        self.session_id = secrets.randbelow(2**62)
        self.local: SessionDescription | None = None
        self.remote: SessionDescription | None = None
        self.negotiated: NegotiatedMedia | None = None
        self.keying: SdesChoice | None = None
        self.plain_reason: str | None = "SRTP is off" if self.srtp.mode == "off" else None
        self._sdes = SdesNegotiator(self.srtp.suites)
        self._pending_offer: SessionDescription | None = None
        self._offered_crypto: list[str] = []
        self._tls_id: str | None = None  # our a=tls-id, one per DTLS association (RFC 8842 §4)
        self._dtls_setup: sdp_dtls.Setup | None = None  # our resolved a=setup (active/passive)

    def _direction(self, hold: bool) -> str:
        return "sendonly" if hold else "sendrecv"

    @property
    def encryption(self) -> str:
        """``srtp`` when the stream is keyed (or keyed in the media path), else ``none``."""
        return "srtp" if self.keying is not None or self.path is not None else "none"

    # -- which keying ------------------------------------------------------------------------------
    def _usable(self, method: KeyingMethod) -> bool:
        """A method this call can offer or accept with what the shell lent it."""
        if self.srtp.mode == "off":
            return False
        if method is KeyingMethod.SDES:
            return self.srtp.keys_allowed
        if method is KeyingMethod.ZRTP:
            return self.resources is not None and self.resources.zrtp_cache is not None
        if method is KeyingMethod.DTLS:
            certificate = self.resources.dtls_certificate if self.resources is not None else None
            return certificate is not None and bool(profiles_for_suites(self.srtp.suites))
        return False

    def _zrtp(self) -> ZrtpKeying:
        """The call's ZRTP engine (one per call, kept across re-INVITEs)."""
        if not isinstance(self.path, ZrtpKeying):
            resources = self.resources
            assert resources is not None and resources.zrtp_cache is not None
            self.path = ZrtpKeying(resources.zrtp_cache, resources.ssrc, resources.zrtp_config)
        return self.path

    def _offer_method(self) -> KeyingMethod | None:
        """The first preferred method we can offer; MediaError when encryption is mandatory
        and none is possible (the SDES-over-plaintext rule is the usual reason)."""
        for method in self.srtp.methods:
            if self._usable(method):
                return method
        if self.srtp.mode == "mandatory":
            raise MediaError(f"SRTP is mandatory but {PLAINTEXT_KEYS}", 488, security=True)
        if self.srtp.mode != "off":
            self.plain_reason = f"not offered: {PLAINTEXT_KEYS}"
        return None

    def _answer_method(self, offered: MediaDescription | None) -> KeyingMethod | None:
        """The first preferred method the offer allows (RFC 3264 §6)."""
        if offered is None:
            return None
        for method in self.srtp.methods:
            if not self._usable(method):
                continue
            if method is KeyingMethod.SDES and offered.crypto_lines:
                return method
            # ZRTP runs over RTP/AVP; a peer that speaks it says so with a=zrtp-hash (RFC 6189
            # §8.1): without it a mandatory call is refused at once instead of failing later
            signalled = offered.zrtp_hash is not None
            if method is KeyingMethod.ZRTP and offered.proto == RTP_PROTO and signalled:
                return method
            if method is KeyingMethod.DTLS and sdp_dtls.is_dtls_proto(offered.proto):
                return method
        return None

    # -- offers ------------------------------------------------------------------------------------
    def _offer_crypto(self) -> list[str]:
        """Fresh keys for every offer (RFC 4568 §6.1), or none when SRTP is off or not allowed."""
        mode = self.srtp.mode
        if mode == "off":
            return []
        if not self.srtp.keys_allowed:
            if mode == "mandatory":
                raise MediaError(f"SRTP is mandatory but {PLAINTEXT_KEYS}", 488, security=True)
            self.plain_reason = f"not offered: {PLAINTEXT_KEYS}"
            return []
        return self._sdes.offer_lines()

    def create_offer(self, hold: bool) -> bytes:
        """Our (re-)offer; a re-offer keeps the session and bumps the version (RFC 3264 §8)."""
        if self.local is None:
            self.method = self._offer_method()
        if self.method is KeyingMethod.ZRTP:
            return self._zrtp_offer(hold)
        if self.method is KeyingMethod.DTLS:
            return self._dtls_offer(hold)
        lines = self._offer_crypto()
        if self.local is None:
            offer = create_offer(
                self.caps, self.port, self.session_id, 0, self._direction(hold), lines
            )
        else:
            offer = make_reoffer(self.local, self._direction(hold))
            _replace_crypto(offer, lines)
        self._pending_offer, self._offered_crypto = offer, lines
        self.local = offer
        return offer.to_bytes()

    def _zrtp_offer(self, hold: bool) -> bytes:
        """RTP/AVP with our ``a=zrtp-hash`` (RFC 6189 §8.1): the keys come in the media path."""
        if self.local is None:
            caps = replace(self.caps, proto=RTP_PROTO)
            extra: list[Attribute] = [("zrtp-hash", self._zrtp().sdp_zrtp_hash)]
            offer = create_offer(
                caps,
                self.port,
                self.session_id,
                0,
                self._direction(hold),
                [],
                extra_attributes=extra,
            )
        else:
            offer = make_reoffer(self.local, self._direction(hold))
        self._pending_offer, self._offered_crypto = offer, []
        self.local = offer
        return offer.to_bytes()

    # -- answers -----------------------------------------------------------------------------------
    def receive_offer(self, body: bytes, hold: bool) -> bytes:
        """Answer the peer's (re-)offer; MediaError(488) when nothing is acceptable."""
        try:
            offer = sdp_session.parse(body)
            if self.local is None:
                self.method = self._answer_method(_audio(offer))
            if self.method is KeyingMethod.ZRTP:
                return self._zrtp_answer(offer, hold)
            if self.method is KeyingMethod.DTLS:
                return self._dtls_answer(offer, hold)
            lines, keying = self._answer_crypto(offer)
            version = 0 if self.local is None else self.local.origin.sess_version + 1
            answer, negotiated = create_answer(
                offer, self.caps, self.port, self.session_id, version, self._direction(hold), lines
            )
        except SdpError as exc:
            # mandatory SRTP against an offer with no usable keys is a security refusal
            mandatory = self.srtp.mode == "mandatory" and exc.status_hint == 488
            security = mandatory and not self._offer_keyed(body)
            if security and self.keying is not None:  # a keyed call asked to go without keys
                self._downgrade(f"a re-offer without usable SRTP keys ({exc})")
            raise MediaError(str(exc), exc.status_hint, security=security) from None
        if self.keying is not None and keying is None:
            self._downgrade("a re-offer without SRTP keys would make the call plain RTP")
        if self.keying is not None and keying is not None and _weaker(keying, self.keying):
            self._downgrade(
                f"a re-offer would weaken SRTP from {self.keying.suite} to {keying.suite}"
            )
        self.remote, self.local, self.negotiated = offer, answer, negotiated
        self._keyed(keying, "the offer carried no usable a=crypto line")
        return answer.to_bytes()

    def _downgrade(self, what: str) -> None:
        """Refuse a change that would lower the call's security (488); the call goes on as it was
        and the alarm stays on the call for every interface to show."""
        alarm = f"downgrade refused: {what}"
        if add_alarm(self.alarms, alarm):  # a repeat is refused the same way, not logged again
            log.warning("media %s", alarm)
        raise MediaError(alarm, 488, security=True)

    @staticmethod
    def _offer_keyed(body: bytes) -> bool:
        """The offer is readable and its audio stream carries a=crypto lines."""
        try:
            return bool(_audio_crypto(sdp_session.parse(body)))
        except SdpError:
            return False

    def _zrtp_answer(self, offer: SessionDescription, hold: bool) -> bytes:
        """Answer RTP/AVP with our ``a=zrtp-hash``; the peer's, when given, checks its Hello."""
        zrtp = self._zrtp()
        offered = _audio(offer)
        if self.local is not None:
            self._refuse_zrtp_downgrade(zrtp, offered)
        peer_hash = offered.zrtp_hash if offered is not None else None
        if peer_hash is not None:
            zrtp.set_peer_hello_hash(peer_hash.value)
        caps = replace(self.caps, proto=RTP_PROTO)
        version = 0 if self.local is None else self.local.origin.sess_version + 1
        extra: list[Attribute] = [("zrtp-hash", zrtp.sdp_zrtp_hash)]
        answer, negotiated = create_answer(
            offer,
            caps,
            self.port,
            self.session_id,
            version,
            self._direction(hold),
            extra_attributes=extra,
        )
        self.remote, self.local, self.negotiated = offer, answer, negotiated
        self.keying, self.plain_reason = None, None
        self._log()
        return answer.to_bytes()

    def _refuse_zrtp_downgrade(self, zrtp: ZrtpKeying, offered: MediaDescription | None) -> None:
        """A re-offer in a ZRTP call must keep ZRTP: same ``a=zrtp-hash`` (the same Hello, so
        the same endpoint, RFC 6189 §8.1), RTP/AVP, no SDES keys. Anything else would switch the
        call to keys the signalling path can read, or to another ZRTP endpoint (a relay in the
        middle); it is refused (488, the call goes on as it was) and raised as an alarm.
        """
        if offered is None:
            return  # no active audio stream: nothing is re-keyed
        problem = None
        if offered.proto != RTP_PROTO or offered.crypto_lines:
            problem = f"switch the media to {offered.proto} with SDES keys in the SDP"
        elif zrtp.peer_hello_hash is not None and offered.zrtp_hash is None:
            problem = "drop ZRTP (no a=zrtp-hash)"
        elif (
            zrtp.peer_hello_hash is not None
            and offered.zrtp_hash is not None
            and offered.zrtp_hash.value.lower() != zrtp.peer_hello_hash.lower()
        ):
            problem = "change the ZRTP endpoint (another a=zrtp-hash)"
        if problem is None:
            return
        text = f"a re-INVITE tried to {problem} in a ZRTP-secured call: refused"
        log.warning("SECURITY ALARM: %s", text)
        zrtp.raise_alarm(text)
        raise MediaError(text, 488, security=True)

    def _answer_crypto(self, offer: SessionDescription) -> tuple[list[str], SdesChoice | None]:
        offered = _audio_crypto(offer)
        if self.srtp.mode == "off" or not offered:
            return [], None
        if not self.srtp.keys_allowed:
            if self.srtp.mode == "mandatory":
                raise MediaError(
                    f"refusing to answer with SRTP keys: {PLAINTEXT_KEYS}", 488, security=True
                )
            self.plain_reason = f"not answered with keys: {PLAINTEXT_KEYS}"
            return [], None
        try:
            lines, choice = self._sdes.answer_lines(offered)
        except SrtpError:
            if self.srtp.mode == "mandatory":
                raise
            return [], None
        return lines, choice

    def receive_answer(self, body: bytes) -> None:
        """Check the peer's answer to our pending offer (and its crypto line)."""
        offer = self._pending_offer
        if offer is None:
            raise MediaError("an answer arrived but no offer was pending", 400)
        if self.method is KeyingMethod.ZRTP:
            self._zrtp_answered(offer, body)
            return
        if self.method is KeyingMethod.DTLS:
            self._dtls_answered(offer, body)
            return
        try:
            answer = sdp_session.parse(body)
            negotiated = process_answer(offer, answer, self.caps)
            answered = _audio_crypto(answer)
            keying = None
            if self._offered_crypto and answered:
                keying = self._sdes.accept_answer(answered, self._offered_crypto)
        except SdpError as exc:
            raise MediaError(str(exc), exc.status_hint) from None
        if self.srtp.mode == "mandatory" and keying is None:
            raise MediaError(
                "SRTP is mandatory but the answer carries no crypto line", 488, security=True
            )
        self._pending_offer = None
        self.remote, self.negotiated = answer, negotiated
        self._keyed(keying, "the peer answered without SRTP")

    def _zrtp_answered(self, offer: SessionDescription, body: bytes) -> None:
        """The answer to our ZRTP offer: its ``a=zrtp-hash`` (if any) will check the peer's Hello."""
        try:
            answer = sdp_session.parse(body)
            negotiated = process_answer(offer, answer, replace(self.caps, proto=RTP_PROTO))
            answered = _audio(answer)
            peer_hash = answered.zrtp_hash if answered is not None else None
        except SdpError as exc:
            raise MediaError(str(exc), exc.status_hint) from None
        if peer_hash is not None:
            self._zrtp().set_peer_hello_hash(peer_hash.value)
        self._pending_offer = None
        self.remote, self.negotiated = answer, negotiated
        self._log()

    # -- DTLS-SRTP (RFC 5763, RFC 5764, RFC 8122, RFC 8842) ---------------------------------------
    def _dtls(self) -> DtlsKeying:
        """The call's DTLS-SRTP keying (one association per call, kept across re-INVITEs)."""
        from securephone.media.dtls.keying import DtlsKeying  # pyOpenSSL: only for DTLS calls

        if not isinstance(self.path, DtlsKeying):
            assert self.resources is not None and self.resources.dtls_certificate is not None
            profiles = profiles_for_suites(self.srtp.suites)
            self.path = DtlsKeying(self.resources.dtls_certificate, profiles=profiles)
        return self.path

    def _dtls_caps(self, proto: str = DTLS_PROTO) -> MediaCapabilities:
        """Our capabilities over ``UDP/TLS/RTP/SAVP`` (or the offer's ``SAVPF``, RFC 5124 §6)."""
        return replace(self.caps, proto=proto)

    def _dtls_attributes(self, setup: sdp_dtls.Setup) -> list[Attribute]:
        """``a=fingerprint`` (sha-256), ``a=setup`` and ``a=tls-id`` (RFC 8122 §5, RFC 8842 §4)."""
        if self._tls_id is None:
            self._tls_id = sdp_dtls.new_tls_id()
        return [
            ("fingerprint", str(self._dtls().local_fingerprint)),
            ("setup", setup.value),
            ("tls-id", self._tls_id),
        ]

    def _dtls_offer(self, hold: bool) -> bytes:
        """``UDP/TLS/RTP/SAVP`` with our fingerprint and ``a=setup:actpass`` (RFC 5763 §5)."""
        if self.local is None:
            extra = self._dtls_attributes(sdp_dtls.Setup.ACTPASS)
            offer = create_offer(
                self._dtls_caps(),
                self.port,
                self.session_id,
                0,
                self._direction(hold),
                [],
                extra_attributes=extra,
            )
        else:  # the same association: same fingerprint, setup and tls-id (RFC 8842 §5.5)
            offer = make_reoffer(self.local, self._direction(hold))
        self._pending_offer, self._offered_crypto = offer, []
        self.local = offer
        return offer.to_bytes()

    def _dtls_answer(self, offer: SessionDescription, hold: bool) -> bytes:
        """Answer a DTLS-SRTP offer: active for actpass (RFC 5763 §5), the opposite otherwise."""
        offered = _audio(offer)
        assert offered is not None  # _answer_method chose DTLS from it
        params = sdp_dtls.read_dtls(offer, offered)
        if params.setup is sdp_dtls.Setup.HOLDCONN:
            raise SdpError("a=setup:holdconn: the peer does not want a DTLS association", 488)
        setup = self._dtls_setup or _answer_setup(params.setup)
        version = 0 if self.local is None else self.local.origin.sess_version + 1
        answer, negotiated = create_answer(
            offer,
            self._dtls_caps(offered.proto),
            self.port,
            self.session_id,
            version,
            self._direction(hold),
            extra_attributes=self._dtls_attributes(setup),
        )
        self._dtls_setup = setup
        self._dtls_configure(setup, params, negotiated)
        self.remote, self.local, self.negotiated = offer, answer, negotiated
        self.keying, self.plain_reason = None, None
        self._log()
        return answer.to_bytes()

    def _dtls_answered(self, offer: SessionDescription, body: bytes) -> None:
        """The answer to our DTLS-SRTP offer: its setup decides our role (RFC 4145 §4.1)."""
        try:
            answer = sdp_session.parse(body)
            offered = _audio(offer)
            assert offered is not None
            negotiated = process_answer(offer, answer, self._dtls_caps(offered.proto))
            params = sdp_dtls.read_dtls(answer, answer.media[negotiated.media_index])
            offered_setup = sdp_dtls.parse_setup(offered.attribute_values("setup")[0])
            theirs = sdp_dtls.check_answer_setup(offered_setup, params.setup)
        except SdpError as exc:
            raise MediaError(str(exc), exc.status_hint, security=True) from None
        ours = sdp_dtls.Setup.PASSIVE if theirs is sdp_dtls.Setup.ACTIVE else sdp_dtls.Setup.ACTIVE
        self._dtls_setup = self._dtls_setup or ours
        self._dtls_configure(self._dtls_setup, params, negotiated)
        self._pending_offer = None
        self.remote, self.negotiated = answer, negotiated
        self._log()

    def _dtls_configure(
        self, setup: sdp_dtls.Setup, params: sdp_dtls.DtlsParameters, media: NegotiatedMedia
    ) -> None:
        """Hand role, fingerprints and the peer's RTP address to the DTLS keying."""
        self._dtls().configure(
            sdp_dtls.role(setup),
            params.fingerprints,
            (media.remote_address, media.remote_port),
            integrity=self.srtp.secure_signalling,
        )

    def _keyed(self, keying: SdesChoice | None, plain: str) -> None:
        if keying is not None:
            self.keying, self.plain_reason = keying, None
        elif self.srtp.mode != "off":
            self.keying = None
            self.plain_reason = self.plain_reason or plain
            log.warning("media is NOT encrypted: %s", self.plain_reason)
        self._log()

    @property
    def remote_hold(self) -> bool:
        """The far end does not want to receive from us (sendonly/inactive, RFC 3264 §8.4)."""
        return self.negotiated is not None and self.negotiated.held_by_remote

    def _keying_text(self) -> str:
        if self.keying is not None:
            return f"SDES {self.keying.suite}"
        if self.path is not None:
            return f"keys to be agreed by {self.path.method.label} in the media path"
        return "NOT ENCRYPTED"

    def _log(self) -> None:
        media = self.negotiated
        if media is not None:
            log.info(
                "media: %s/%d to %s:%d, %s, %s (we %s, they %s)",
                media.codec,
                media.clock_rate,
                media.remote_address,
                media.remote_port,
                media.proto,
                self._keying_text(),
                media.local_direction,
                media.remote_direction,
            )


def _answer_setup(offered: sdp_dtls.Setup) -> sdp_dtls.Setup:
    """Our a=setup for the offered one (RFC 4145 §4.1, RFC 5763 §5)."""
    if offered is sdp_dtls.Setup.ACTPASS:
        return DTLS_ANSWER_TO_ACTPASS
    return sdp_dtls.answer_setup(offered)


def _weaker(new: SdesChoice, old: SdesChoice) -> bool:
    """A suite with a shorter key or a shorter authentication tag than the call has now."""
    a, b = SUITES[new.suite], SUITES[old.suite]
    return a.key_length < b.key_length or a.rtp_tag_length < b.rtp_tag_length


def _audio(sdp: SessionDescription) -> MediaDescription | None:
    """The first active audio stream."""
    for media in sdp.media:
        if media.media == "audio" and media.port != 0:
            return media
    return None


def _audio_crypto(sdp: SessionDescription) -> list[str]:
    """The a=crypto values of the first active audio stream."""
    for media in sdp.media:
        if media.media == "audio" and media.port != 0:
            return list(media.crypto_lines)
    return []


def _replace_crypto(sdp: SessionDescription, lines: list[str]) -> None:
    """New keys in a re-offer (RFC 4568 §6.1: fresh keys when the media is re-negotiated)."""
    for media in sdp.media:
        if media.media == "audio" and media.port != 0:
            media.attributes = [a for a in media.attributes if a[0] != "crypto"]
            media.attributes += [("crypto", line) for line in lines]
