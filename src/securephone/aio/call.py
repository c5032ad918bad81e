"""The library's Call object: one call as a user sees it, over the sans-I/O core and its media."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from securephone.aio.media import MediaChannel
from securephone.media.negotiation import SdpMedia
from securephone.sip.call import CallState

if TYPE_CHECKING:
    from securephone.aio.phone import Phone

ENDED = (CallState.TERMINATED,)


class Call:
    """A call placed or received by a ``Phone``: state, media, controls, and a JSON summary."""

    def __init__(
        self, phone: Phone, key: str, outgoing: bool, remote: str, account: str | None
    ) -> None:
        self.phone = phone
        self.key = key
        self.outgoing = outgoing
        self.remote = remote
        self.account = account
        self.state = CallState.CALLING if outgoing else CallState.INCOMING
        self.reason = ""
        self.status: int | None = None
        self.history: list[tuple[str, str]] = []  # (state, reason)
        self.channel: MediaChannel | None = None
        self.sdp: SdpMedia | None = None
        self.local_hold = False
        self.remote_hold = False
        self.answered = False
        self.created_at = phone.now()
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.digits = ""
        self.remote_display_name: str | None = None  # as the far end gave it: untrusted text
        self.on_digit: Callable[[str], None] | None = None
        self._changed = asyncio.Event()

    # -- state ---------------------------------------------------------------------------------
    def _update(self, state: CallState, reason: str, status: int | None) -> None:
        self.state, self.reason = state, reason
        if status is not None:
            self.status = status
        self.history.append((state.value, reason))
        now = self.phone.now()
        if state is CallState.CONNECTED and self.connected_at is None:
            self.connected_at = now
            self.answered = True
        if state is CallState.TERMINATED:
            self.ended_at = now
            if self.channel is not None:
                self.channel.close()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    @property
    def ended(self) -> bool:
        return self.state is CallState.TERMINATED

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

    # -- controls --------------------------------------------------------------------------------
    def answer(self) -> None:
        """Answer an incoming call with the phone's audio source and sink for it."""
        self.phone.answer_call(self)

    def reject(self, status: int = 486) -> None:
        self.phone.core_call("reject", self.key, status)

    def hangup(self) -> None:
        """End the call (CANCEL, decline or BYE as the state needs)."""
        if not self.ended:
            self.phone.core_call("hangup", self.key)

    def hold(self) -> None:
        self.phone.core_call("hold", self.key, True)

    def resume(self) -> None:
        self.phone.core_call("hold", self.key, False)

    def send_dtmf(self, digits: str) -> None:
        """Send digits as RFC 4733 telephone-events."""
        if self.channel is None:
            raise ValueError("the call has no media yet")
        self.channel.stream.send_dtmf(digits)

    def _digit(self, digit: str) -> None:
        self.digits += digit
        if self.on_digit is not None:
            self.on_digit(digit)

    # -- figures ---------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Everything a user cares about, for --json, the API and the web pages."""
        end = self.ended_at if self.ended_at is not None else self.phone.now()
        duration = 0.0 if self.connected_at is None else end - self.connected_at
        data: dict[str, Any] = {
            "call_id": self.key,
            "direction": "outgoing" if self.outgoing else "incoming",
            "remote": self.remote,
            "remote_display_name": self.remote_display_name,
            "account": self.account,
            "state": self.state.value,
            "reason": self.reason,
            "sip_status": self.status,
            "answered": self.answered,
            "duration": round(duration, 3),
            "local_hold": self.local_hold,
            "remote_hold": self.remote_hold,
            "dtmf_received": self.digits,
        }
        data["signalling"] = self._signalling()
        data["media"] = self._media_summary()
        return data

    def _signalling(self) -> dict[str, Any] | None:
        ua = self.phone.ua
        peer = ua.calls.peer_of(self.key) if ua is not None else None
        return self.phone.signalling(peer) if peer is not None else None

    def _media_summary(self) -> dict[str, Any] | None:
        channel, sdp = self.channel, self.sdp
        if channel is None or sdp is None:
            return None
        media = sdp.negotiated
        local = channel.local
        out: dict[str, Any] = {
            "local_rtp": f"{local[0]}:{local[1]}",
            "remote_rtp": None,
            "codec": None,
            "srtp_mode": sdp.srtp.mode,
            "not_encrypted_reason": sdp.plain_reason,
        }
        if media is not None:
            out["remote_rtp"] = f"{media.remote_address}:{media.remote_port}"
            out["codec"] = f"{media.codec}/{media.clock_rate}"
            out["ptime"] = media.ptime
            out["direction"] = media.local_direction
        out.update(channel.stream.stats())
        out["send_lateness"] = channel.clock.percentiles()
        return out

    def __repr__(self) -> str:
        return f"<Call {self.key[:8]} {self.state.value} {self.remote}>"
