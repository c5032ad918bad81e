"""The library's ``Call``: an asyncio handle on one call of the core.

It holds no copy of the call's state: every property reads the core's ``CallSession``, and the
handle only adds what the shell owns (the media sockets and pump, a way to wait). Commands go to
the phone (``CallControl``), which runs them in the core and pumps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from securephone.aio.media import MediaChannel
from securephone.aio.netaddr import hostport
from securephone.media.keying import KeyingEvent
from securephone.media.negotiation import SdpMedia
from securephone.media.zrtp.keying import ZrtpKeying
from securephone.sip.callsession import CallSession
from securephone.sip.callstate import CallEnding, CallState
from securephone.sip.events import Event

MAX_CALL_EVENTS = 1000  # a call's own event log is bounded (hold toggles cannot grow it for ever)


@dataclass(frozen=True)
class CallKeyingChanged(Event):
    """The media-path keying of a call (ZRTP) agreed keys, failed, or changed what users see."""

    call_id: str
    keying: KeyingEvent


@dataclass(frozen=True)
class TlsPeerChanged(Event):
    """A SIP-TLS server we dialled showed another key than the one pinned on first use.

    ``refused`` under ``[tls] pinning = "strict"`` (no SIP byte was sent), else only an alarm.
    """

    peer: str  # host:port as dialled
    pinned: str  # SPKI sha-256 (base64) recorded on first use
    seen: str  # what the server showed now
    refused: bool
    message: str


CACHE_MISMATCH_ALARM = (
    "the far end's ZRTP secrets do not match ours (cache mismatch): somebody may be in the "
    "middle, or the far end lost its cache; compare the SAS aloud before trusting this call"
)


def security_alarms(path: dict[str, Any] | None) -> list[str]:
    """What must alarm users about a call's media keying (RFC 6189 §4.3.2: a cache mismatch
    MUST be shown; downgrade attempts refused during the call)."""
    if path is None:
        return []
    alarms = [CACHE_MISMATCH_ALARM] if path.get("cache_mismatch") else []
    found = path.get("alarms")
    return alarms + [str(a) for a in found] if isinstance(found, list) else alarms


class CallControl(Protocol):
    """What a call handle needs from its phone: the clock, the commands, the signalling facts."""

    def now(self) -> float: ...

    def answer(self, call: Call) -> None: ...

    def reject(self, call: Call, status: int = 486) -> None: ...

    def hangup(self, call: Call) -> None: ...

    def hold(self, call: Call) -> None: ...

    def resume(self, call: Call) -> None: ...

    def send_dtmf(self, call: Call, digits: str) -> None: ...

    def confirm_sas(self, call: Call, verified: bool = True) -> None: ...

    def signalling_of(self, call: Call) -> dict[str, Any] | None: ...


class Call:
    """A call placed or received by a ``Phone``: state, media, controls, and a JSON summary."""

    def __init__(self, control: CallControl, session: CallSession) -> None:
        self._control = control
        self._session = session
        self.channel: MediaChannel | None = None
        self.sdp: SdpMedia | None = None
        self.on_digit: Callable[[str], None] | None = None
        self.events: list[Event] = []  # this call's events, in the order they happened
        self._changed = asyncio.Event()

    # -- the core's state, read through ---------------------------------------------------------
    @property
    def key(self) -> str:
        return self._session.key

    @property
    def outgoing(self) -> bool:
        return self._session.outgoing

    @property
    def account(self) -> str | None:
        return self._session.account

    @property
    def remote(self) -> str:
        return self._session.remote

    @property
    def remote_display_name(self) -> str | None:
        """The far end's display name as it gave it: untrusted text, escape before showing."""
        return self._session.remote_display_name

    @property
    def state(self) -> CallState:
        return self._session.state

    @property
    def reason(self) -> str:
        return self._session.reason

    @property
    def status(self) -> int | None:
        return self._session.status

    @property
    def ending(self) -> CallEnding | None:
        """Why the call ended (None while it lives)."""
        return self._session.ending

    @property
    def answered(self) -> bool:
        return self._session.answered

    @property
    def history(self) -> list[tuple[str, str]]:
        return list(self._session.history)

    @property
    def local_hold(self) -> bool:
        return self._session.local_hold

    @property
    def remote_hold(self) -> bool:
        return self._session.remote_hold

    @property
    def created_at(self) -> float:
        return self._session.started_at

    @property
    def connected_at(self) -> float | None:
        return self._session.connected_at

    @property
    def ended_at(self) -> float | None:
        return self._session.ended_at

    @property
    def ended(self) -> bool:
        return self._session.ended

    @property
    def digits(self) -> str:
        """DTMF digits received so far (RFC 4733), the newest ``MAX_DIGITS_KEPT`` of a long call."""
        if self.channel is None:
            return ""
        return "".join(d.digit for d in self.channel.stream.digits)

    # -- events from the phone --------------------------------------------------------------------
    def deliver(self, event: Event) -> None:
        """The phone hands over one of this call's events (in order); waiters wake up."""
        if len(self.events) < MAX_CALL_EVENTS:
            self.events.append(event)
        self._changed.set()

    async def wait_for(self, *states: CallState, timeout: float | None = None) -> CallState:
        """Wait until the call reaches one of ``states`` (or ends); returns the state reached."""

        async def until() -> CallState:
            while self.state not in states and not self.ended:
                self._changed.clear()
                await self._changed.wait()
            return self.state

        return await asyncio.wait_for(until(), timeout)

    async def wait_ended(self, timeout: float | None = None) -> None:
        await self.wait_for(CallState.TERMINATED, timeout=timeout)

    # -- controls ----------------------------------------------------------------------------------
    def answer(self) -> None:
        """Answer an incoming call with the phone's audio source and sink for it."""
        self._control.answer(self)

    def reject(self, status: int = 486) -> None:
        self._control.reject(self, status)

    def hangup(self) -> None:
        """End the call (CANCEL, decline or BYE as the state needs)."""
        self._control.hangup(self)

    def hold(self) -> None:
        self._control.hold(self)

    def resume(self) -> None:
        self._control.resume(self)

    def send_dtmf(self, digits: str) -> None:
        """Send digits as RFC 4733 telephone-events."""
        self._control.send_dtmf(self, digits)

    def confirm_sas(self) -> None:
        """The ZRTP SAS read out by the far end matched ours: remember the peer as verified."""
        self._control.confirm_sas(self, True)

    def reject_sas(self) -> None:
        """The SAS did not match: somebody may be in the middle; the peer is not verified."""
        self._control.confirm_sas(self, False)

    @property
    def zrtp(self) -> ZrtpKeying | None:
        """The call's ZRTP agreement when it has one: ``call.zrtp.sas``, ``.sas_verified`` ..."""
        path = self.sdp.path if self.sdp is not None else None
        return path if isinstance(path, ZrtpKeying) else None

    @property
    def security(self) -> dict[str, Any]:
        """How the media keys were agreed and what users must see of it (SAS, alarms)."""
        sdp, channel = self.sdp, self.channel
        method = sdp.method if sdp is not None else None
        keyed = channel is not None and channel.stream.srtp is not None
        path = sdp.path.summary() if sdp is not None and sdp.path is not None else None
        return {
            "keying": method.label if method is not None else None,
            "end_to_end": bool(method is not None and method.end_to_end),
            "keys_agreed": keyed,
            # DTLS-SRTP: did the peer's fingerprint come over TLS signalling (RFC 5763 §8)?
            "fingerprint_integrity": path.get("fingerprint_integrity") if path else None,
            "path": path,
            "alarms": [*security_alarms(path), *(sdp.alarms if sdp is not None else [])],
        }

    # -- figures -----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Everything a user cares about, for --json, the API and the web pages."""
        end = self.ended_at if self.ended_at is not None else self._control.now()
        duration = 0.0 if self.connected_at is None else end - self.connected_at
        ending = self.ending
        data: dict[str, Any] = {
            "call_id": self.key,
            "direction": "outgoing" if self.outgoing else "incoming",
            "remote": self.remote,
            "remote_display_name": self.remote_display_name,
            "account": self.account,
            "state": self.state.value,
            "reason": self.reason,
            "ending": ending.name.lower() if ending else None,
            "sip_status": self.status,
            "answered": self.answered,
            "duration": round(duration, 3),
            "local_hold": self.local_hold,
            "remote_hold": self.remote_hold,
            "dtmf_received": self.digits,
        }
        data["signalling"] = self._control.signalling_of(self)
        data["media"] = self._media_summary()
        data["security"] = self.security
        return data

    def _media_summary(self) -> dict[str, Any] | None:
        channel, sdp = self.channel, self.sdp
        if channel is None or sdp is None:
            return None
        media = sdp.negotiated
        local = channel.local
        out: dict[str, Any] = {
            "local_rtp": hostport(local[0], local[1]),
            "remote_rtp": None,
            "codec": None,
            "srtp_mode": sdp.srtp.mode,
            "not_encrypted_reason": sdp.plain_reason,
        }
        if media is not None:
            out["remote_rtp"] = hostport(media.remote_address, media.remote_port)
            out["rtpmap"] = f"{media.codec}/{media.clock_rate}"
            out["payload_type"] = media.payload_type
            out["ptime"] = media.ptime
            out["direction"] = media.local_direction
        out.update(channel.stream.stats())
        # the codec as people name it, with its audio bandwidth: "G722 (wideband, 16 kHz)"
        out["codec"] = channel.stream.codec_label or out.get("rtpmap")
        out["audio_rate"] = channel.stream.sample_rate
        out["send_lateness"] = channel.clock.percentiles()
        return out

    def __repr__(self) -> str:
        return f"<Call {self.key[:8]} {self.state.value} {self.remote}>"
