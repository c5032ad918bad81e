"""SDP offer/answer for one call's audio stream: the ``CallMedia`` the signalling asks (RFC 3264)."""

from __future__ import annotations

import logging
import secrets

from securephone.sdp import session as sdp_session
from securephone.sdp.offer_answer import (
    MediaCapabilities,
    NegotiatedMedia,
    create_answer,
    create_offer,
    make_reoffer,
    process_answer,
)
from securephone.sdp.session import SdpError, SessionDescription
from securephone.sip.call import MediaError

log = logging.getLogger(__name__)


class SdpMedia:
    """Holds our last local description and the negotiated stream of one call."""

    def __init__(self, caps: MediaCapabilities, port: int) -> None:
        self.caps = caps
        self.port = port
        self.session_id = secrets.randbelow(2**62)
        self.local: SessionDescription | None = None
        self.remote: SessionDescription | None = None
        self.negotiated: NegotiatedMedia | None = None
        self._pending_offer: SessionDescription | None = None

    def _direction(self, hold: bool) -> str:
        return "sendonly" if hold else "sendrecv"

    def create_offer(self, hold: bool) -> bytes:
        """Our (re-)offer; a re-offer keeps the session and bumps the version (RFC 3264 §8)."""
        if self.local is None:
            offer = create_offer(self.caps, self.port, self.session_id, 0, self._direction(hold))
        else:
            offer = make_reoffer(self.local, self._direction(hold))
        self._pending_offer = offer
        self.local = offer
        return offer.to_bytes()

    def receive_offer(self, body: bytes, hold: bool) -> bytes:
        """Answer the peer's (re-)offer; MediaError(488) when nothing is acceptable."""
        try:
            offer = sdp_session.parse(body)
            version = 0 if self.local is None else self.local.origin.sess_version + 1
            answer, negotiated = create_answer(
                offer, self.caps, self.port, self.session_id, version, self._direction(hold)
            )
        except SdpError as exc:
            raise MediaError(str(exc), exc.status_hint) from None
        self.remote, self.local, self.negotiated = offer, answer, negotiated
        self._log()
        return answer.to_bytes()

    def receive_answer(self, body: bytes) -> None:
        """Check the peer's answer to our pending offer."""
        offer = self._pending_offer
        if offer is None:
            raise MediaError("an answer arrived but no offer was pending", 400)
        try:
            answer = sdp_session.parse(body)
            negotiated = process_answer(offer, answer, self.caps)
        except SdpError as exc:
            raise MediaError(str(exc), exc.status_hint) from None
        self._pending_offer = None
        self.remote, self.negotiated = answer, negotiated
        self._log()

    @property
    def remote_hold(self) -> bool:
        """The far end does not want to receive from us (sendonly/inactive, RFC 3264 §8.4)."""
        return self.negotiated is not None and self.negotiated.held_by_remote

    def _log(self) -> None:
        media = self.negotiated
        if media is not None:
            log.info(
                "media: %s/%d to %s:%d, %s (we %s, they %s)",
                media.codec,
                media.clock_rate,
                media.remote_address,
                media.remote_port,
                media.proto,
                media.local_direction,
                media.remote_direction,
            )
